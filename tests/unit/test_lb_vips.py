"""The OVN vips of a load balancer, with and without offline backends (pure)."""

from __future__ import annotations

from gateway.services.load_balancers import offline_backends, vips_map

DOC = {"vip": "10.0.0.100", "protocol": "tcp", "health_check": {"interval": 5},
       "listeners": [{"port": 80, "backend_port": 8080}, {"port": 443}],
       "backends": [{"ip": "10.0.0.11"}, {"ip": "10.0.0.12", "port": 9000}]}
PORTS = {"10.0.0.11": "p11", "10.0.0.12": "p12"}


def test_every_listener_maps_every_backend() -> None:
    assert vips_map(DOC) == {"10.0.0.100:80": "10.0.0.11:8080,10.0.0.12:9000",
                             "10.0.0.100:443": "10.0.0.11:443,10.0.0.12:9000"}


def test_offline_backends_leave_the_traffic_path_per_port() -> None:
    monitors = {("10.0.0.11", 8080, "tcp", "p11"): "offline",
                ("10.0.0.11", 443, "tcp", "p11"): "online",
                ("10.0.0.12", 9000, "udp", "p12"): "offline",
                # another tenant's backend with the same address and port
                ("10.0.0.12", 9000, "tcp", "theirs"): "offline"}
    offline = offline_backends(monitors, DOC, PORTS)
    assert offline == frozenset({("10.0.0.11", 8080)})
    assert vips_map(DOC, offline) == {"10.0.0.100:80": "10.0.0.12:9000",
                                      "10.0.0.100:443": "10.0.0.11:443,10.0.0.12:9000"}


def test_all_offline_keeps_all_and_no_check_ignores_the_monitor() -> None:
    offline = frozenset({("10.0.0.11", 8080), ("10.0.0.12", 9000)})
    assert vips_map(DOC, offline)["10.0.0.100:80"] == "10.0.0.11:8080,10.0.0.12:9000"
    assert offline_backends({("10.0.0.11", 8080, "tcp", "p11"): "offline"},
                            {**DOC, "health_check": None}, PORTS) == frozenset()


def test_ipv6_addresses_are_bracketed() -> None:
    doc = {**DOC, "vip": "fd00::100", "backends": [{"ip": "fd00::11"}]}
    assert vips_map(doc)["[fd00::100]:80"] == "[fd00::11]:8080"

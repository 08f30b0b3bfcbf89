"""Gateways (tenant routers), external networks and floating IPs through the API, checked with
packets: routing between attached networks, SNAT to the gateway's external address, floating
IPs in both directions, static routes via a host, two tenants with the same cidrs, and IPv6
from router advertisements.

One external network (172.16.0.0/24 on physnet1, made by an admin) and one outside host on it
serve the whole module: the outside host holds the network's gateway_ip, so it is the upstream
router of every gateway, and its servers answer with the address a connection came from.
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from gateway import sandbox

from helpers.api import ApiClient, patch_ok, post_created, unique
from helpers.dataplane import Hosts, host_addr, ip4, ping, tcp_reply
from helpers.waiting import wait_until

pytestmark = pytest.mark.e2e

POOL = ("172.16.0.10", "172.16.0.200")
EXTERNAL = {"cidr": "172.16.0.0/24", "gateway_ip": "172.16.0.1",
            "allocation_pools": [{"start": POOL[0], "end": POOL[1]}],
            "physical_network": sandbox.PHYSNET}
UPSTREAM = "172.16.0.1"  # the outside host
PEER_PORT = 7000  # the outside host's server: it answers with the connection's source address
SLOW_PEER_PORT = 7001  # the same after a second, so that connections overlap
HOST_PORT = 7100  # servers in tenant hosts answer with the host's name
WAIT = 30  # seconds for flows to follow an API write


def _tag() -> str:
    return uuid.uuid4().hex[:6]


def _in_pool(ip: str) -> bool:
    start, end = (ipaddress.ip_address(a) for a in POOL)
    return start <= ipaddress.ip_address(ip) <= end


@dataclass(frozen=True)
class Outside:
    """The outside host: the upstream router on the external network."""

    hosts: Hosts
    name: str

    def reply(self, ip: str, port: int = HOST_PORT) -> str:
        return tcp_reply(self.hosts, self.name, ip, port)

    def ping(self, ip: str) -> bool:
        return ping(self.hosts, self.name, ip)


@pytest.fixture(scope="module")
def external_net(dp_app: Any) -> Iterator[dict[str, Any]]:
    admin = ApiClient(dp_app.test_client(), unique("admin"), scope="admin")
    resp = admin.post("/v1/external-networks", {"name": unique("ext"), **EXTERNAL})
    assert resp.status_code == 201, resp.get_json()
    net = resp.get_json()
    try:
        yield net
    finally:
        # The tenants' gateways and floating IPs are gone by now (new_tenant purges them).
        assert admin.delete(f"/v1/external-networks/{net['id']}").status_code == 204


@pytest.fixture(scope="module")
def outside_host(dataplane: sandbox.Sandbox,
                 external_net: dict[str, Any]) -> Iterator[Outside]:
    manager = Hosts(dataplane.dir)
    name = f"up{_tag()}"
    try:
        host = manager.add_outside(name, dataplane.nb_unix, external_net["id"])
        assert host.ip_cidr == f"{UPSTREAM}/24"
        manager.start(name, "socat", f"TCP-LISTEN:{PEER_PORT},reuseaddr,fork",
                      "SYSTEM:echo $SOCAT_PEERADDR")
        # -t: socat would close 0.5 s after the client's EOF (nc -N), before the answer.
        manager.start(name, "socat", "-t", "5", f"TCP-LISTEN:{SLOW_PEER_PORT},reuseaddr,fork",
                      "SYSTEM:sleep 1; echo $SOCAT_PEERADDR")
        yield Outside(manager, name)
    finally:
        manager.cleanup()


@pytest.fixture
def outside(outside_host: Outside) -> Outside:
    """The outside host with an empty neighbour table. Each test's gateways take addresses from
    the pool that the previous test's just released, with new MACs; OVN announces them with
    gratuitous ARPs, but Linux ignores a new MAC for an entry updated within the last second
    (neigh locktime), so a cached entry could hold a deleted gateway's MAC for a few seconds."""
    outside_host.hosts.run(outside_host.name, "ip", "neigh", "flush", "dev", "eth0")
    return outside_host


def _seen_from(hosts: Hosts, name: str, port: int = PEER_PORT) -> str:
    """The source address the outside host sees on a connection from tenant host NAME."""
    return tcp_reply(hosts, name, UPSTREAM, port, timeout=3 if port == SLOW_PEER_PORT else 1)


def _wire(hosts: Hosts, name: str, port: dict[str, Any], network: dict[str, Any],
          serve: bool = False) -> None:
    """A host bound to the API port, with its address and a default route via the network's
    gateway_ip; with SERVE, a server on HOST_PORT that answers with the host's name."""
    hosts.add(name, port["id"], port["mac"], host_addr(port, network), network["gateway_ip"])
    if serve:
        hosts.start(name, "socat", f"TCP-LISTEN:{HOST_PORT},reuseaddr,fork", f"SYSTEM:echo {name}")


def _gateway(api: Any, networks: list[dict[str, Any]], external: dict[str, Any] | None = None,
             routes: list[dict[str, str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": unique("gw"),
                            "networks": [{"network_id": n["id"]} for n in networks]}
    if external is not None:
        body["external"] = {"network_id": external["id"], "snat": True}
    if routes is not None:
        body["routes"] = routes
    gw = post_created(api, "/v1/gateways", body)
    # Each network is attached with its gateway_ip unless told otherwise.
    assert {a["network_id"]: a["ip"] for a in gw["networks"]} == {
        n["id"]: n["gateway_ip"] for n in networks}
    if external is not None:
        assert gw["external"]["network_id"] == external["id"]
        assert _in_pool(gw["external"]["ip"]), gw["external"]
    return gw


def test_gateway_routes_between_attached_networks(dp_api: Any, hosts: Hosts) -> None:
    tag = _tag()
    n1, n2 = dp_api.network(cidr="10.1.0.0/24"), dp_api.network(cidr="10.2.0.0/24")
    p1, p2 = dp_api.port(n1["id"]), dp_api.port(n2["id"])
    gw = _gateway(dp_api, [n1, n2])
    _wire(hosts, f"ra{tag}", p1, n1)
    _wire(hosts, f"rb{tag}", p2, n2, serve=True)

    wait_until(lambda: ping(hosts, f"ra{tag}", ip4(p2)), timeout=WAIT, what="N1 -> N2 ping")
    assert ping(hosts, f"rb{tag}", ip4(p1), count=2)
    assert tcp_reply(hosts, f"ra{tag}", ip4(p2), HOST_PORT) == f"rb{tag}"

    # Detaching N2 (a merge patch replaces the list) takes the route away; deleting the
    # gateway answers 204 and the gateway is gone.
    patched = patch_ok(dp_api, f"/v1/gateways/{gw['id']}", {"networks": [{"network_id": n1["id"]}]})
    assert [a["network_id"] for a in patched["networks"]] == [n1["id"]]
    wait_until(lambda: not ping(hosts, f"ra{tag}", ip4(p2)), timeout=WAIT, what="N2 detached")
    assert dp_api.delete(f"/v1/gateways/{gw['id']}").status_code == 204
    assert dp_api.get(f"/v1/gateways/{gw['id']}").status_code == 404


def test_snat_to_the_gateway_external_ip(dp_api: Any, hosts: Hosts, outside: Outside,
                                         external_net: dict[str, Any]) -> None:
    tag = _tag()
    net = dp_api.network(cidr="10.1.0.0/24")
    port = dp_api.port(net["id"])
    gw = _gateway(dp_api, [net], external_net)
    ext_ip = gw["external"]["ip"]
    _wire(hosts, f"sn{tag}", port, net)

    wait_until(lambda: _seen_from(hosts, f"sn{tag}") == ext_ip, timeout=WAIT,
               what="connection from the gateway's external ip")
    assert ping(hosts, f"sn{tag}", UPSTREAM, count=2)

    # Without SNAT the tenant's own address arrives (the outside host routes it back through
    # the gateway). The merge patch keeps the rest of `external`, its ip included.
    patched = patch_ok(dp_api, f"/v1/gateways/{gw['id']}", {"external": {"snat": False}})
    assert patched["external"] == {**gw["external"], "snat": False}
    route = ["ip", "route", "replace", net["cidr"], "via", ext_ip]
    assert outside.hosts.run(outside.name, *route).returncode == 0
    try:
        wait_until(lambda: _seen_from(hosts, f"sn{tag}") == ip4(port), timeout=WAIT,
                   what="connection from the tenant address without SNAT")
    finally:
        outside.hosts.run(outside.name, "ip", "route", "del", net["cidr"])


def test_floating_ip_both_ways_moves_and_goes(dp_api: Any, hosts: Hosts, outside: Outside,
                                              external_net: dict[str, Any]) -> None:
    tag = _tag()
    net = dp_api.network(cidr="10.1.0.0/24")
    p1, p2 = dp_api.port(net["id"]), dp_api.port(net["id"])
    gw = _gateway(dp_api, [net], external_net)
    ext_ip = gw["external"]["ip"]
    h1, h2 = f"fa{tag}", f"fb{tag}"
    _wire(hosts, h1, p1, net, serve=True)
    _wire(hosts, h2, p2, net, serve=True)

    fip = post_created(dp_api, "/v1/floating-ips", {"name": unique("fip"),
                                                "external_network_id": external_net["id"],
                                                "port_id": p1["id"]})
    ip, path = fip["ip"], f"/v1/floating-ips/{fip['id']}"
    assert fip["gateway_id"] == gw["id"]
    assert _in_pool(ip) and ip != ext_ip

    # Inbound through the floating IP, and the port's own connections leave from it; the other
    # port still leaves from the gateway's address.
    wait_until(lambda: outside.reply(ip) == h1, timeout=WAIT, what="outside -> fip -> h1")
    wait_until(lambda: _seen_from(hosts, h1) == ip, timeout=WAIT, what="h1 leaves from the fip")
    wait_until(lambda: _seen_from(hosts, h2) == ext_ip, timeout=WAIT, what="h2 leaves by SNAT")
    assert outside.ping(ip)

    # Re-associated: the address follows the port.
    assert patch_ok(dp_api, path, {"port_id": p2["id"]})["port_id"] == p2["id"]
    wait_until(lambda: outside.reply(ip) == h2, timeout=WAIT, what="outside -> fip -> h2")
    wait_until(lambda: _seen_from(hosts, h2) == ip, timeout=WAIT, what="h2 leaves from the fip")
    wait_until(lambda: _seen_from(hosts, h1) == ext_ip, timeout=WAIT, what="h1 back to SNAT")

    # Disassociated: held, but nothing answers on it.
    assert patch_ok(dp_api, path, {"port_id": None})["port_id"] is None
    wait_until(lambda: not outside.ping(ip), timeout=WAIT, what="fip silent once disassociated")
    assert outside.reply(ip) == ""
    assert dp_api.get(path).get_json()["ip"] == ip
    wait_until(lambda: _seen_from(hosts, h2) == ext_ip, timeout=WAIT, what="h2 back to SNAT")

    # Associated again, then deleted: released, nothing answers.
    patch_ok(dp_api, path, {"port_id": p1["id"]})
    wait_until(lambda: outside.reply(ip) == h1, timeout=WAIT, what="fip back on h1")
    assert dp_api.delete(path).status_code == 204
    assert dp_api.get(path).status_code == 404
    wait_until(lambda: not outside.ping(ip), timeout=WAIT, what="fip silent once deleted")
    assert outside.reply(ip) == ""
    wait_until(lambda: _seen_from(hosts, h1) == ext_ip, timeout=WAIT, what="h1 back to SNAT")


def test_static_route_via_a_host(dp_api: Any, hosts: Hosts) -> None:
    tag = _tag()
    n1, n2 = dp_api.network(cidr="10.1.0.0/24"), dp_api.network(cidr="10.2.0.0/24")
    # The router host sends and receives for addresses that are not its port's own.
    via = dp_api.port(n1["id"], ips=["10.1.0.5"], port_security=False)
    client = dp_api.port(n2["id"])
    route = {"prefix": "10.50.0.0/24", "nexthop": "10.1.0.5"}
    gw = _gateway(dp_api, [n1, n2], routes=[route])
    assert gw["routes"] == [route]
    router, peer = f"sr{tag}", f"sc{tag}"
    _wire(hosts, router, via, n1)
    for command in (("sysctl", "-qw", "net.ipv4.ip_forward=1"),
                    ("ip", "addr", "add", "10.50.0.1/32", "dev", "lo")):
        assert hosts.run(router, *command).returncode == 0
    hosts.start(router, "socat", f"TCP-LISTEN:{HOST_PORT},bind=10.50.0.1,reuseaddr,fork",
                "SYSTEM:echo inner")
    _wire(hosts, peer, client, n2)

    wait_until(lambda: ping(hosts, peer, "10.50.0.1"), timeout=WAIT, what="10.50.0.1 via route")
    assert tcp_reply(hosts, peer, "10.50.0.1", HOST_PORT) == "inner"

    assert patch_ok(dp_api, f"/v1/gateways/{gw['id']}", {"routes": []})["routes"] == []
    wait_until(lambda: not ping(hosts, peer, "10.50.0.1"), timeout=WAIT, what="route removed")
    assert ping(hosts, peer, ip4(via))  # the router host itself is still reachable


def test_tenants_with_the_same_cidrs_each_through_their_own_gateway(
        new_tenant: Any, hosts: Hosts, outside: Outside, external_net: dict[str, Any]) -> None:
    tag = _tag()
    sides = {}
    for side in ("a", "b"):
        api = new_tenant()
        net = api.network(cidr="10.1.0.0/24")
        port = api.port(net["id"])
        gw = _gateway(api, [net], external_net)
        _wire(hosts, f"t{side}{tag}", port, net)
        sides[side] = (port, gw["external"]["ip"])
    (port_a, ext_a), (port_b, ext_b) = sides["a"], sides["b"]
    assert ip4(port_a) == ip4(port_b)  # the same address space, the same first address
    assert ext_a != ext_b

    for side, (_, ext_ip) in sides.items():
        wait_until(lambda side=side, ext_ip=ext_ip: _seen_from(hosts, f"t{side}{tag}") == ext_ip,
                   timeout=WAIT, what=f"tenant {side} leaves from its gateway")
    # At the same time: each connection is held open for a second by the server.
    with ThreadPoolExecutor(max_workers=2) as pool:
        started = time.monotonic()
        seen = dict(zip(sides, pool.map(
            lambda side: _seen_from(hosts, f"t{side}{tag}", SLOW_PEER_PORT), sides),
            strict=True))
        elapsed = time.monotonic() - started
    assert seen == {"a": ext_a, "b": ext_b}
    assert elapsed < 2.0, elapsed  # they overlapped
    for side in sides:
        assert ping(hosts, f"t{side}{tag}", UPSTREAM, count=2)


def _v6_addresses(hosts: Hosts, name: str) -> list[str]:
    """The host's global IPv6 addresses that are ready (past duplicate address detection)."""
    out = hosts.run(name, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
    return [line.split()[3].split("/")[0] for line in out.stdout.splitlines()
            if "tentative" not in line]


def _solicit(hosts: Hosts, name: str) -> None:
    """Accept router advertisements and autoconfigure, then restart IPv6 on eth0 (IPv4 and its
    routes stay), which sends a router solicitation now."""
    for setting in ("accept_ra=1", "autoconf=1", "accept_dad=0", "disable_ipv6=1",
                    "disable_ipv6=0"):
        assert hosts.run(name, "sysctl", "-qw", f"net.ipv6.conf.eth0.{setting}").returncode == 0


def _slaac(hosts: Hosts, name: str, prefix: str) -> str:
    """Wait for a global address in PREFIX from a router advertisement, soliciting again every
    few seconds (the first solicitation may leave before the port's flows are in place)."""
    network = ipaddress.ip_network(prefix)
    last = [0.0]

    def check() -> str | None:
        found = [a for a in _v6_addresses(hosts, name) if ipaddress.ip_address(a) in network]
        if not found and time.monotonic() - last[0] > 4:
            _solicit(hosts, name)
            last[0] = time.monotonic()
        return found[0] if found else None

    return str(wait_until(check, timeout=WAIT, what=f"an address in {prefix} on {name}"))


def _ip6(port: dict[str, Any]) -> str:
    return next(ip for ip in port["ips"] if ipaddress.ip_address(ip).version == 6)


def test_ipv6_hosts_autoconfigure_and_route_across_the_gateway(dp_api: Any,
                                                               hosts: Hosts) -> None:
    tag = _tag()
    stateless = {"ipv6": {"mode": "stateless"}}
    n1 = dp_api.network(cidr="10.11.0.0/24", ipv6_cidr="fd00:1::/64", dhcp=stateless)
    n2 = dp_api.network(cidr="10.12.0.0/24", ipv6_cidr="fd00:2::/64", dhcp=stateless)
    p1, p2 = dp_api.port(n1["id"]), dp_api.port(n2["id"])
    _gateway(dp_api, [n1, n2])
    h1, h2 = f"sa{tag}", f"sb{tag}"
    _wire(hosts, h1, p1, n1)
    _wire(hosts, h2, p2, n2)

    # SLAAC (EUI-64) gives each host the address the API allocated to its port.
    assert _slaac(hosts, h1, "fd00:1::/64") == _ip6(p1)
    assert _slaac(hosts, h2, "fd00:2::/64") == _ip6(p2)
    routes = hosts.run(h1, "ip", "-6", "route", "show", "default").stdout
    assert "proto ra" in routes, routes

    wait_until(lambda: hosts.run(h1, "ping", "-6", "-n", "-c", "1", "-W", "1", _ip6(p2))
               .returncode == 0, timeout=WAIT, what="ping6 N1 -> N2")
    assert hosts.run(h2, "ping", "-6", "-n", "-c", "2", "-i", "0.2", "-W", "1",
                     _ip6(p1)).returncode == 0

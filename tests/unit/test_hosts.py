"""Pure parts of gateway.sandbox.hosts: names, MACs, addressing, and reading a port's MAC."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import sandbox
from gateway.sandbox import hosts


@pytest.mark.parametrize("name", ["a", "web-1", "db_2", "x" * 32])
def test_valid_names(name: str) -> None:
    assert hosts.validate_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", "A", "a/b", "a b", "x" * 33, "a\n"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(hosts.HostError):
        hosts.validate_name(name)


def test_mac_normalized_and_unicast_only() -> None:
    assert hosts.normalize_mac(" 0A:58:0a:00:00:05 ") == "0a:58:0a:00:00:05"
    for bad in ("0a:58:0a:00:00", "0a-58-0a-00-00-05", "zz:58:0a:00:00:05",
                "01:00:5e:00:00:01"):  # the last is multicast
        with pytest.raises(hosts.HostError):
            hosts.normalize_mac(bad)


def test_addressing() -> None:
    hosts.validate_addressing(None, None)
    hosts.validate_addressing("10.0.0.5/24", "10.0.0.1")
    hosts.validate_addressing("fd00::5/64", "fd00::1")
    for ip_cidr, gateway in [("10.0.0.5", None), ("10.0.0.300/24", None), (None, "10.0.0.1"),
                             ("10.0.0.5/24", "nope"), ("10.0.0.5/24", "fd00::1")]:
        with pytest.raises(hosts.HostError):
            hosts.validate_addressing(ip_cidr, gateway)


def test_interface_names_fit_ifnamsiz_and_differ() -> None:
    assert hosts.peer_name("web1") == "v-web1"
    long_names = ["x" * 32, "x" * 31 + "y", "abcdefghijklmn"]
    peers = [hosts.peer_name(n) for n in long_names]
    assert all(len(p) <= 15 for p in peers)
    assert len(set(peers)) == len(peers)


def test_names_derive_from_the_folder(tmp_path: Path) -> None:
    a, b = sandbox.prefix(tmp_path / "a"), sandbox.prefix(tmp_path / "b")
    assert a != b and a.startswith("ovngw-") and len(a) == 14
    assert sandbox.prefix(tmp_path / "a" / ".." / "a") == a
    assert hosts.host_netns(a, "web") == f"{a}-web"


@pytest.mark.parametrize(("text", "mac"), [
    ('{"data":[["0a:58:0a:00:00:05 10.0.0.5",["set",[]]]],'
     '"headings":["addresses","dynamic_addresses"]}', "0a:58:0a:00:00:05"),
    ('{"data":[[["set",["0A:58:0A:00:00:06 10.0.0.6","0a:58:0a:00:00:07 10.0.0.7"]],'
     '["set",[]]]],"headings":["addresses","dynamic_addresses"]}', "0a:58:0a:00:00:06"),
    ('{"data":[["dynamic","8e:a8:e0:00:00:03 10.0.0.3"]],'
     '"headings":["addresses","dynamic_addresses"]}', "8e:a8:e0:00:00:03"),
])
def test_port_mac_from_nbctl_json(text: str, mac: str) -> None:
    assert hosts.mac_from_port_columns(*hosts.parse_port_json(text)) == mac


@pytest.mark.parametrize("text", [
    '{"data":[[["set",[]],["set",[]]]],"headings":["addresses","dynamic_addresses"]}',
    '{"data":[["router",["set",[]]]],"headings":["addresses","dynamic_addresses"]}',
    '{"data":[],"headings":["addresses","dynamic_addresses"]}',
])
def test_port_without_mac(text: str) -> None:
    with pytest.raises(hosts.HostError):
        hosts.mac_from_port_columns(*hosts.parse_port_json(text))

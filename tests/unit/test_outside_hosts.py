"""Pure parts of outside hosts (gateway.sandbox.external): reading an external network from
ovn-nbctl's JSON, the outside host's address and VLAN, and the `host add --external` command
line."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway import cli, sandbox
from gateway.sandbox import external, hosts

NET_ID = "3f0c9a52-8d1e-4a7b-9a57-0d6f4c1b2e11"
DOC = {"id": NET_ID, "name": "ext", "tenant_id": "admin", "cidr": "172.16.0.0/24",
       "gateway_ip": "172.16.0.1",
       "allocation_pools": [{"start": "172.16.0.10", "end": "172.16.0.200"}],
       "physical_network": "physnet1"}


def nbctl_json(*docs: dict[str, Any], kind: str = "external-network") -> str:
    """What `ovn-nbctl --format=json --columns=external_ids find Logical_Switch ...` prints."""
    rows = [[["map", [["ovn-nb-gateway:doc", json.dumps(doc)],
                      ["ovn-nb-gateway:id", str(doc.get("id", NET_ID))],
                      ["ovn-nb-gateway:kind", kind],
                      ["ovn-nb-gateway:tenant", "admin"]]]] for doc in docs]
    return json.dumps({"data": rows, "headings": ["external_ids"]})


def test_external_network_from_nbctl_json() -> None:
    net = external.parse_external_network(nbctl_json(DOC), NET_ID)
    assert net == external.ExternalNetwork(id=NET_ID, cidr="172.16.0.0/24",
                                           gateway_ip="172.16.0.1",
                                           physical_network="physnet1", vlan=None)
    tagged = external.parse_external_network(nbctl_json({**DOC, "vlan": 101}), NET_ID)
    assert tagged.vlan == 101


@pytest.mark.parametrize(("text", "message"), [
    (json.dumps({"data": [], "headings": ["external_ids"]}), "no external network"),
    (nbctl_json(DOC, kind="network"), "no external network"),
    (nbctl_json({**DOC, "id": "another"}), "no external network"),
    (nbctl_json(DOC, DOC), "2 switches"),
    (nbctl_json({k: v for k, v in DOC.items() if k != "cidr"}), "no usable document"),
    (nbctl_json({**DOC, "cidr": "172.16.0.0/33"}), "no usable document"),
    (nbctl_json({**DOC, "vlan": 4095}), "vlan"),
    (nbctl_json({**DOC, "vlan": "101"}), "vlan"),
])
def test_unusable_external_network(text: str, message: str) -> None:
    with pytest.raises(hosts.HostError, match=message):
        external.parse_external_network(text, NET_ID)


@pytest.mark.parametrize(("ip", "address"), [
    (None, "172.16.0.1/24"),  # the upstream router: the network's gateway_ip
    ("172.16.0.250", "172.16.0.250/24"),  # the cidr's prefix length
    ("172.16.0.250/25", "172.16.0.250/25"),  # a prefix given is kept
])
def test_outside_address(ip: str | None, address: str) -> None:
    net = external.parse_external_network(nbctl_json(DOC), NET_ID)
    assert external.outside_address(net, ip) == address


@pytest.mark.parametrize(("gateway_ip", "ip", "message"), [
    ("172.16.0.1", "10.0.0.1", "not in external network"),
    ("172.16.0.1", "172.16.0.255", "broadcast"),
    ("172.16.0.1", "172.16.0.0", "network or broadcast"),
    ("172.16.0.1", "nope", "not an IP address"),
    ("172.16.0.1", "fd00::1", "not in external network"),
    (None, None, "no gateway_ip"),
])
def test_outside_address_refused(gateway_ip: str | None, ip: str | None, message: str) -> None:
    net = external.ExternalNetwork(id=NET_ID, cidr="172.16.0.0/24", gateway_ip=gateway_ip,
                                   physical_network="physnet1")
    with pytest.raises(hosts.HostError, match=message):
        external.outside_address(net, ip)


def test_vlan_range() -> None:
    for good in (None, 1, 101, 4094):
        hosts.validate_vlan(good)
    for bad in (0, 4095, -1, True, "101", 1.0):
        with pytest.raises(hosts.HostError):
            hosts.validate_vlan(bad)  # type: ignore[arg-type]


def test_outside_macs_are_stable_unicast_and_not_the_gateways() -> None:
    mac = hosts.outside_mac("ovngw-12345678", "out")
    assert mac == hosts.outside_mac("ovngw-12345678", "out")
    assert mac != hosts.outside_mac("ovngw-12345678", "out2")
    assert mac != hosts.outside_mac("ovngw-87654321", "out")
    assert hosts.normalize_mac(mac) == mac  # well formed, unicast
    assert int(mac[:2], 16) & 2  # locally administered
    assert not mac.startswith("0a:")  # GATEWAY_MAC_PREFIX space


def parse(*argv: str) -> Any:
    return cli.build_parser().parse_args(["sandbox", "host", "add", *argv])


def test_host_add_takes_a_port_or_an_external_network() -> None:
    args = parse("out", "--external", NET_ID, "--ip", "172.16.0.5")
    assert (args.name, args.external, args.port, args.ip) == ("out", NET_ID, None, "172.16.0.5")
    cli.check_outside_options(args)
    args = parse("vm", "--port", "p1", "--dir", "/tmp/x")
    assert (args.port, args.external, args.dir) == ("p1", None, "/tmp/x")


@pytest.mark.parametrize("argv", [
    ("out",),  # neither
    ("out", "--port", "p1", "--external", NET_ID),  # both
])
def test_host_add_wiring_is_exactly_one(argv: tuple[str, ...],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    assert "--port" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "flag"), [(("--dhcp",), "--dhcp"),
                                             (("--gateway", "172.16.0.1"), "--gateway")])
def test_outside_host_refuses_port_options(extra: tuple[str, ...], flag: str) -> None:
    with pytest.raises(sandbox.SandboxError, match=flag):
        cli.check_outside_options(parse("out", "--external", NET_ID, *extra))

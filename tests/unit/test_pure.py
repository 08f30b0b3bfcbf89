"""Pure logic without OVN: address allocation, DHCP options, JSON merge patch, labels."""

from __future__ import annotations

import copy
import ipaddress
from types import SimpleNamespace
from typing import Any

import pytest
from marshmallow import Schema, ValidationError

from gateway.schemas.common import Labels, Text, UnicastIP, label_key_errors, text_problem
from gateway.services import dhcp, ipam
from gateway.services.networks import foreign_addresses, foreign_ports
from gateway.services.resources import merge_patch

# --------------------------------------------------------------------------------------
# ipam
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("cidr", "gateway"), [
    ("10.0.0.0/24", "10.0.0.1"),
    ("192.168.8.0/21", "192.168.8.1"),
    ("10.1.2.8/29", "10.1.2.9"),
])
def test_default_gateway_is_first_host(cidr: str, gateway: str) -> None:
    assert ipam.default_gateway(cidr) == gateway
    assert ipam.default_gateway(cidr) == str(next(ipaddress.IPv4Network(cidr).hosts()))


def test_reserved_v4_holds_network_broadcast_and_gateway() -> None:
    assert ipam.reserved_v4("10.0.0.0/24", "10.0.0.1") == {"10.0.0.0", "10.0.0.255",
                                                            "10.0.0.1"}
    assert ipam.reserved_v4("10.0.0.0/24", None) == {"10.0.0.0", "10.0.0.255"}
    assert ipam.reserved_v4("10.0.0.0/24", "10.0.0.77") == {"10.0.0.0", "10.0.0.255",
                                                             "10.0.0.77"}


def test_next_free_v4_skips_reserved_and_used() -> None:
    reserved = ipam.reserved_v4("10.0.0.0/29", "10.0.0.1")
    assert ipam.next_free_v4("10.0.0.0/29", reserved) == "10.0.0.2"
    assert ipam.next_free_v4("10.0.0.0/29", reserved | {"10.0.0.2", "10.0.0.3"}) == "10.0.0.4"
    # A hole left by a deleted port is reused before higher addresses.
    assert ipam.next_free_v4("10.0.0.0/29", reserved | {"10.0.0.3"}) == "10.0.0.2"


def test_next_free_v4_never_hands_out_network_or_broadcast() -> None:
    used: set[str] = ipam.reserved_v4("10.0.0.0/29", "10.0.0.1")
    handed = []
    while (ip := ipam.next_free_v4("10.0.0.0/29", used)) is not None:
        handed.append(ip)
        used.add(ip)
    assert handed == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]


def test_next_free_v4_exhausted_is_none() -> None:
    net = ipaddress.IPv4Network("10.9.0.0/28")
    everything = {str(a) for a in net}
    assert ipam.next_free_v4("10.9.0.0/28", everything) is None


@pytest.mark.parametrize(("cidr", "mac", "expected"), [
    ("fe80::/64", "52:54:00:12:34:56", "fe80::5054:ff:fe12:3456"),
    ("2001:db8:1:2::/64", "0a:58:0a:00:00:05", "2001:db8:1:2:858:aff:fe00:5"),
    ("2001:db8::/64", "00:00:00:00:00:01", "2001:db8::200:ff:fe00:1"),
])
def test_eui64(cidr: str, mac: str, expected: str) -> None:
    assert ipam.eui64(cidr, mac) == expected


def test_next_free_v6_prefers_eui64_on_a_64() -> None:
    mac = "0a:58:0a:00:00:05"
    assert ipam.next_free_v6("2001:db8::/64", mac, set()) == ipam.eui64("2001:db8::/64", mac)


def test_next_free_v6_falls_back_when_eui64_is_taken() -> None:
    mac = "0a:58:0a:00:00:05"
    taken = {ipam.eui64("2001:db8::/64", mac)}
    got = ipam.next_free_v6("2001:db8::/64", mac, taken)
    assert got is not None and got not in taken
    assert ipaddress.IPv6Address(got) in ipaddress.IPv6Network("2001:db8::/64")


def test_next_free_v6_on_a_small_prefix() -> None:
    assert ipam.next_free_v6("2001:db8::/120", "0a:58:00:00:00:01", set()) == "2001:db8::1"
    assert ipam.next_free_v6("2001:db8::/120", "0a:58:00:00:00:01",
                             {"2001:db8::1", "2001:db8::2"}) == "2001:db8::3"
    net = ipaddress.IPv6Network("2001:db8::/126")
    assert ipam.next_free_v6(str(net), "0a:58:00:00:00:01", {str(a) for a in net}) is None


def _assert_unicast_local(mac: str) -> None:
    octets = mac.split(":")
    assert len(octets) == 6 and all(len(o) == 2 for o in octets), mac
    first = int(octets[0], 16)
    assert first & 0x02, f"{mac}: not locally administered"
    assert not first & 0x01, f"{mac}: multicast"


def test_random_mac_uses_the_prefix_and_is_unicast_local() -> None:
    for _ in range(50):
        mac = ipam.random_mac("0a:58", set())
        assert mac.startswith("0a:58:")
        _assert_unicast_local(mac)


def test_random_mac_fixes_a_multicast_or_global_prefix() -> None:
    mac = ipam.random_mac("01:00", set())
    assert mac.startswith("02:00:")
    _assert_unicast_local(mac)


def test_random_mac_avoids_macs_in_use() -> None:
    # Only 256 MACs with a 5-octet prefix: fill all but one, the generator must find it.
    prefix = "0a:58:00:00:00"
    in_use = {f"{prefix}:{i:02x}" for i in range(256)} - {f"{prefix}:7f"}
    assert ipam.random_mac(prefix, in_use) == f"{prefix}:7f"


def test_derived_mac_is_stable_and_distinct() -> None:
    a1 = ipam.derived_mac("0a:58", "dhcp-server/a")
    assert a1 == ipam.derived_mac("0a:58", "dhcp-server/a")
    assert a1 != ipam.derived_mac("0a:58", "dhcp-server/b")
    assert a1.startswith("0a:58:")
    _assert_unicast_local(a1)
    _assert_unicast_local(ipam.derived_mac("ff:ff", "x"))


@pytest.mark.parametrize(("ip", "cidrs", "inside"), [
    ("10.0.0.5", ["10.0.0.0/24"], True),
    ("10.0.1.5", ["10.0.0.0/24"], False),
    ("10.0.0.5", ["10.0.0.0/24", None], True),
    ("2001:db8::5", ["10.0.0.0/24", "2001:db8::/64"], True),
    ("2001:db9::5", ["10.0.0.0/24", "2001:db8::/64"], False),
    ("10.0.0.5", ["2001:db8::/64"], False),  # other family: no error, just outside
    ("10.0.0.5", [None], False),
    ("10.0.0.5", [], False),
])
def test_in_network(ip: str, cidrs: list[str | None], inside: bool) -> None:
    assert ipam.in_network(ip, cidrs) is inside


# --------------------------------------------------------------------------------------
# dhcp
# --------------------------------------------------------------------------------------

NETWORK: dict[str, Any] = {
    "id": "n1", "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1", "mtu": 1400,
    "dns_domain": "corp.example",
    "dhcp": {"enabled": True, "lease_time": 3600, "dns_servers": ["10.0.0.53", "2001:db8::53"]},
}


def test_merged_takes_network_values_then_port_overrides() -> None:
    settings = dhcp.merged(NETWORK, {})
    assert settings["lease_time"] == 3600
    assert settings["mtu"] == 1400
    assert settings["domain_name"] == "corp.example"
    over = dhcp.merged(NETWORK, {"lease_time": 120, "mtu": 9000, "domain_name": "x.example",
                                 "dns_servers": None})
    assert over["lease_time"] == 120 and over["mtu"] == 9000
    assert over["domain_name"] == "x.example"
    assert over["dns_servers"] == ["10.0.0.53", "2001:db8::53"]  # None is "not overridden"


def test_merged_does_not_modify_the_network() -> None:
    network = copy.deepcopy(NETWORK)
    dhcp.merged(network, {"lease_time": 60, "ntp_servers": ["10.0.0.9"]})
    assert network == NETWORK


def test_merged_keeps_an_explicit_dhcp_domain_over_dns_domain() -> None:
    network = {**NETWORK, "dhcp": {**NETWORK["dhcp"], "domain_name": "dhcp.example"}}
    assert dhcp.merged(network, {})["domain_name"] == "dhcp.example"


def test_v4_options_basics() -> None:
    options = dhcp.v4_options(NETWORK, dhcp.merged(NETWORK, {}), "0a:58:00:00:00:01")
    assert options["server_id"] == "10.0.0.1"
    assert options["router"] == "10.0.0.1"
    assert options["server_mac"] == "0a:58:00:00:00:01"
    assert options["lease_time"] == "3600"
    assert options["dns_server"] == "{10.0.0.53}"  # only the IPv4 servers
    assert options["domain_name"] == '"corp.example"'
    assert options["mtu"] == "1400"
    assert "classless_static_route" not in options
    assert "ntp_server" not in options
    assert all(isinstance(v, str) for v in options.values())


def test_v4_options_default_lease_and_nothing_optional() -> None:
    network = {"cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1"}
    options = dhcp.v4_options(network, {}, "0a:58:00:00:00:01")
    assert options == {"server_id": "10.0.0.1", "server_mac": "0a:58:00:00:00:01",
                       "router": "10.0.0.1", "lease_time": "43200"}


def test_v4_options_ntp_and_several_dns_servers() -> None:
    options = dhcp.v4_options(NETWORK, {"dns_servers": ["10.0.0.53", "10.0.0.54"],
                                        "ntp_servers": ["10.0.0.7", "10.0.0.8"]}, "m")
    assert options["dns_server"] == "{10.0.0.53, 10.0.0.54}"
    assert options["ntp_server"] == "{10.0.0.7, 10.0.0.8}"


def test_v4_options_only_v6_dns_servers_gives_no_dns_option() -> None:
    options = dhcp.v4_options(NETWORK, {"dns_servers": ["2001:db8::53"]}, "m")
    assert "dns_server" not in options


def test_classless_routes_repeat_the_default_route() -> None:
    routes = [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.254"}]
    options = dhcp.v4_options(NETWORK, {"routes": routes}, "m")
    assert options["classless_static_route"] == \
        "{192.168.0.0/16,10.0.0.254, 0.0.0.0/0,10.0.0.1}"


def test_classless_routes_keep_an_explicit_default_route() -> None:
    routes = [{"destination": "0.0.0.0/0", "nexthop": "10.0.0.254"},
              {"destination": "172.16.0.0/12", "nexthop": "10.0.0.253"}]
    options = dhcp.v4_options(NETWORK, {"routes": routes}, "m")
    assert options["classless_static_route"] == \
        "{0.0.0.0/0,10.0.0.254, 172.16.0.0/12,10.0.0.253}"


def test_v6_options() -> None:
    settings = dhcp.merged(NETWORK, {})
    assert dhcp.v6_options(settings, "0a:58:00:00:00:01") == {
        "server_id": "0a:58:00:00:00:01",
        "dns_server": "{2001:db8::53}",
        "domain_search": '"corp.example"',
    }
    stateless = dhcp.v6_options({"ipv6": {"enabled": True, "mode": "stateless"}}, "m")
    assert stateless == {"server_id": "m", "dhcpv6_stateless": "true"}
    stateful = dhcp.v6_options({"ipv6": {"enabled": True, "mode": "stateful"}}, "m")
    assert "dhcpv6_stateless" not in stateful


# --------------------------------------------------------------------------------------
# merge_patch: RFC 7396, appendix A, and that the inputs stay untouched
# --------------------------------------------------------------------------------------

RFC7396_CASES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC7396_CASES)
def test_merge_patch_rfc7396(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


def test_merge_patch_leaves_its_inputs_alone() -> None:
    target = {"labels": {"a": "1", "b": "2"}, "dhcp": {"routes": [{"x": 1}]}, "name": "n"}
    patch = {"labels": {"a": None, "c": "3"}, "dhcp": {"mtu": 1400}}
    t0, p0 = copy.deepcopy(target), copy.deepcopy(patch)
    result = merge_patch(target, patch)
    assert result == {"labels": {"b": "2", "c": "3"},
                      "dhcp": {"routes": [{"x": 1}], "mtu": 1400}, "name": "n"}
    assert target == t0 and patch == p0


def test_merge_patch_empty_patch_is_identity() -> None:
    target = {"a": {"b": 1}}
    assert merge_patch(target, {}) == target


# --------------------------------------------------------------------------------------
# Labels: Kubernetes syntax for keys ([prefix/]name) and values
# --------------------------------------------------------------------------------------

VALID_KEYS = [
    "app", "a", "A", "App_Name-1.x", "x" * 63, "9lives",
    "app.kubernetes.io/name", "example.com/tier", "a/b", "k8s.io/" + "n" * 63,
    ("s" * 63 + ".") * 3 + "s" * 61 + "/name",  # a 253-character prefix
]
INVALID_KEYS = [
    "", "-app", "app-", ".app", "app.", "_app", "x" * 64, "has space", "tab\there",
    "/app", "app/", "Example.com/app", "exa_mple.com/x", "-a.com/x", "a..b/x",
    "a/b/c", "ü", "app\n", "app\x00", "k8s.io/" + "n" * 64,
    ("s" * 63 + ".") * 3 + "s" * 62 + "/name",  # a 254-character prefix
]
VALID_VALUES = ["", "v", "V1", "1.2.3", "a_b-c.d", "x" * 63]
INVALID_VALUES = ["-v", "v-", ".v", "v.", "_v", "x" * 64, "with space", "a/b", "ü", "v\n",
                  "a:b"]


class _LabelsOnly(Schema):
    labels = Labels()


@pytest.mark.parametrize("key", VALID_KEYS)
def test_valid_label_keys(key: str) -> None:
    assert label_key_errors(key) is None
    assert _LabelsOnly().load({"labels": {key: "v"}}) == {"labels": {key: "v"}}


@pytest.mark.parametrize("key", INVALID_KEYS)
def test_invalid_label_keys(key: str) -> None:
    assert label_key_errors(key) is not None, f"{key!r} accepted"
    with pytest.raises(ValidationError) as err:
        _LabelsOnly().load({"labels": {key: "v"}})
    assert "labels" in err.value.messages


@pytest.mark.parametrize("value", VALID_VALUES)
def test_valid_label_values(value: str) -> None:
    assert _LabelsOnly().load({"labels": {"k": value}}) == {"labels": {"k": value}}


@pytest.mark.parametrize("value", INVALID_VALUES)
def test_invalid_label_values(value: str) -> None:
    with pytest.raises(ValidationError) as err:
        _LabelsOnly().load({"labels": {"k": value}})
    assert "labels" in err.value.messages


@pytest.mark.parametrize("labels", [{"k": 1}, {"k": None}, {"k": ["v"]}, {"k": {"a": "b"}},
                                    ["k=v"], "k=v"])
def test_labels_must_be_a_string_map(labels: Any) -> None:
    with pytest.raises(ValidationError):
        _LabelsOnly().load({"labels": labels})


def test_labels_error_names_the_key() -> None:
    with pytest.raises(ValidationError) as err:
        _LabelsOnly().load({"labels": {"good": "v", "bad key": "v", "other": "-x"}})
    messages = err.value.messages["labels"]
    assert set(messages) >= {"bad key", "other"}
    assert "good" not in messages


# --------------------------------------------------------------------------------------
# ports another tool put on a gateway switch
# --------------------------------------------------------------------------------------

STAMP = {"ovn-nb-gateway:kind": "gw-link", "ovn-nb-gateway:id": "x",
         "ovn-nb-gateway:tenant": "t"}


def _lsp(name: str, addresses: list[str], external_ids: dict[str, str]) -> Any:
    return SimpleNamespace(name=name, addresses=addresses, external_ids=external_ids)


def test_foreign_ports_are_those_without_the_complete_stamp() -> None:
    ours = _lsp("ours", ["0a:58:00:00:00:01 10.0.0.1"], STAMP)
    partial = _lsp("partial", [], {k: v for k, v in STAMP.items() if not k.endswith("id")})
    other = _lsp("other", [], {"owner": "someone"})
    ls = SimpleNamespace(ports=[ours, partial, other])
    assert [p.name for p in foreign_ports(ls)] == ["partial", "other"]


def test_foreign_addresses_read_every_address_form() -> None:
    ls = SimpleNamespace(ports=[
        _lsp("a", ["0A:00:00:00:00:01 10.0.0.5 FD00::5", "0a:00:00:00:00:02 10.0.0.6/24"], {}),
        _lsp("b", ["router", "unknown", "dynamic", "0a:00:00:00:00:03 dynamic",
                   "dynamic 10.0.0.7"], {}),
        _lsp("ours", ["0a:58:00:00:00:09 10.0.0.9"], STAMP),
    ])
    ips, macs = foreign_addresses(ls)
    assert ips == {"10.0.0.5", "fd00::5", "10.0.0.6", "10.0.0.7"}
    assert macs == {"0a:00:00:00:00:01", "0a:00:00:00:00:02", "0a:00:00:00:00:03"}


# --------------------------------------------------------------------------------------
# text and unicast addresses
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "problem"), [
    ("plain text, ünïcode and emoji \U0001F600", None),
    ("nul \x00", "must not contain NUL characters"),
    ("high \ud800", "must not contain lone surrogates (not valid Unicode)"),
    ("low \udfff", "must not contain lone surrogates (not valid Unicode)"),
])
def test_text_problem(value: str, problem: str | None) -> None:
    assert text_problem(value) == problem
    schema = Schema.from_dict({"t": Text()})()
    if problem is None:
        assert schema.load({"t": value}) == {"t": value}
    else:
        with pytest.raises(ValidationError) as caught:
            schema.load({"t": value})
        assert caught.value.messages == {"t": [problem]}


@pytest.mark.parametrize("address", ["0.0.0.0", "255.255.255.255", "127.0.0.53", "224.0.0.1",
                                     "::", "::1", "ff02::1"])
def test_unicast_ip_refuses_what_no_host_can_be(address: str) -> None:
    with pytest.raises(ValidationError):
        Schema.from_dict({"a": UnicastIP()})().load({"a": address})


def test_unicast_ip_normalises_host_addresses() -> None:
    schema = Schema.from_dict({"a": UnicastIP()})()
    assert schema.load({"a": "FD00::0053"}) == {"a": "fd00::53"}
    assert schema.load({"a": "192.0.2.255"}) == {"a": "192.0.2.255"}

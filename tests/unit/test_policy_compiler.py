"""The policy compiler: a policy document -> ACL specifications, and who a policy selects.

Pure: no OVSDB. OVN evaluates higher ACL priorities first, so "evaluated before" below means
"has a higher ACL priority".
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest

from gateway.services import policy_compiler as pc

from helpers.matchtokens import only_generated_tokens

PID = "3f2a9c1e-7b4d-4e8a-9c0f-1a2b3c4d5e6f"
GROUP = "ovngw_p3f2a9c1e7b4d4e8a9c0f1a2b3c4d5e6f"
NET_A = "11111111-1111-4111-8111-111111111111"
NET_B = "22222222-2222-4222-8222-222222222222"
CIDRS = {NET_A: ["10.1.0.0/24", "fd00:1::/64"], NET_B: ["10.2.0.0/24"]}
# The peer set names of tenant t1 (the tenant of policy() below), pinned: the names are
# stable across processes and versions, or a restart would orphan the rows in OVN.
DB4 = "ovngw_sf636df3de02492ae69b2_ip4"  # selector {"app": "db"}
DB6 = "ovngw_sf636df3de02492ae69b2_ip6"
ANY4 = "ovngw_sf18b20ede4ace539a68c_ip4"  # selector {}
ANY6 = "ovngw_sf18b20ede4ace539a68c_ip6"


def policy(**fields: Any) -> dict[str, Any]:
    """A stored policy document; `ingress`/`egress` only when given (absent: no rules for
    that direction, [] : isolated with nothing allowed)."""
    return {"id": PID, "tenant_id": "t1", "name": "p", "selector": {}, "priority": 500,
            "stateful": True, "log": {"enabled": False, "severity": "info"}, **fields}


def compile_(doc: dict[str, Any], cidrs: dict[str, list[str]] | None = None) -> list[pc.AclSpec]:
    return pc.compile_policy(doc, CIDRS if cidrs is None else cidrs)


def by_rule(acls: list[pc.AclSpec]) -> dict[str, pc.AclSpec]:
    out = {a.rule: a for a in acls}
    assert len(out) == len(acls), "rule keys repeat"
    return out


ALLOW_ANY = {"action": "allow"}
DENY_ANY = {"action": "deny"}


# -- names --------------------------------------------------------------------------------


def test_group_and_address_set_names_are_identifiers() -> None:
    assert pc.group_name(PID) == GROUP
    name4 = pc.address_set_name("t1", {"app": "db"}, 4)
    name6 = pc.address_set_name("t1", {"app": "db"}, 6)
    key = pc.selector_key("t1", {"app": "db"})
    assert re.fullmatch(r"[0-9a-f]{20}", key)
    assert name4 == f"ovngw_s{key}_ip4" == DB4
    assert name6 == f"ovngw_s{key}_ip6" == DB6
    assert pc.address_set_name("t1", {}, 4) == ANY4
    assert pc.address_set_name("t1", {}, 6) == ANY6
    for name in (GROUP, name4, name6, ANY4):
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)
        assert len(name) <= 63
    # a peer set can never be taken for a port group name (ovngw_p...) or the other way
    assert not name4.startswith("ovngw_p") and not GROUP.startswith("ovngw_s")


def test_selector_key_hashes_the_canonical_json_of_tenant_and_selector() -> None:
    for tenant, selector in [("t1", {"app": "db"}), ("t1", {}),
                             ("tenant-x", {"b": "2", "a": "1", "app.example.com/x": ""})]:
        canonical = json.dumps([tenant, selector], sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        key = pc.selector_key(tenant, selector)
        assert digest.startswith(key) and len(key) == 20


def test_selector_key_ignores_label_order() -> None:
    one = {"app": "db", "tier": "back", "zone": "a"}
    other = {"zone": "a", "tier": "back", "app": "db"}
    assert list(one) != list(other)
    assert pc.selector_key("t1", one) == pc.selector_key("t1", other)
    for family in (4, 6):
        assert pc.address_set_name("t1", one, family) == pc.address_set_name("t1", other,
                                                                             family)


@pytest.mark.parametrize(("a", "b"), [
    (("t1", {"app": "db"}), ("t2", {"app": "db"})),  # another tenant
    (("t1", {"app": "db"}), ("t1", {"app": "web"})),  # another value
    (("t1", {"app": "db"}), ("t1", {"role": "db"})),  # another key
    (("t1", {"app": "db"}), ("t1", {"app": "db", "x": "1"})),  # one label more
    (("t1", {}), ("t1", {"app": ""})),  # an empty value is not absence
    (("t1", {"ab": "c"}), ("t1", {"a": "bc"})),  # no concatenation ambiguity
    (("ab", {"c": "d"}), ("a", {"bc": "d"})),
    (("t1", {"a": "1", "b": "2"}), ("t1", {"a": "1b", "": "2"})),
])
def test_selector_key_tells_tenants_and_selectors_apart(
        a: tuple[str, dict[str, str]], b: tuple[str, dict[str, str]]) -> None:
    assert pc.selector_key(*a) != pc.selector_key(*b)
    assert pc.address_set_name(*a, 4) != pc.address_set_name(*b, 4)


def test_address_set_names_differ_by_family_only() -> None:
    assert pc.address_set_name("t1", {"a": "b"}, 4)[:-1] == pc.address_set_name(
        "t1", {"a": "b"}, 6)[:-1]
    assert pc.address_set_name("t1", {"a": "b"}, 4) != pc.address_set_name("t1", {"a": "b"}, 6)


# -- priorities -----------------------------------------------------------------------------


def test_lower_policy_priority_number_gives_higher_acl_priority() -> None:
    values = [pc.rule_priority(p, "allow") for p in (0, 1, 100, 500, 999, 1000)]
    assert values == sorted(values, reverse=True)
    assert len(set(values)) == len(values)


@pytest.mark.parametrize("prio", [0, 1, 250, 500, 999, 1000])
def test_deny_sits_above_allow_at_one_priority(prio: int) -> None:
    assert pc.rule_priority(prio, "deny") > pc.rule_priority(prio, "allow")


@pytest.mark.parametrize("prio", [1, 250, 500, 1000])
def test_a_more_urgent_allow_beats_a_less_urgent_deny(prio: int) -> None:
    # A deny never jumps over the allow of a policy with a lower priority number.
    assert pc.rule_priority(prio - 1, "allow") > pc.rule_priority(prio, "deny")


def test_priorities_fit_ovn_range_and_sit_above_default_drop_and_infra() -> None:
    for prio in (0, 1000):
        for action in ("allow", "deny"):
            value = pc.rule_priority(prio, action)
            assert pc.INFRA_ALLOW < value <= 32767
    assert pc.DEFAULT_DROP < pc.INFRA_ALLOW


def test_compiled_priorities_in_one_policy() -> None:
    acls = compile_(policy(priority=10, ingress=[ALLOW_ANY, DENY_ANY], egress=[ALLOW_ANY]))
    rules = by_rule(acls)
    assert rules["ingress/0"].priority == pc.rule_priority(10, "allow")
    assert rules["ingress/1"].priority == pc.rule_priority(10, "deny")
    assert rules["ingress/1"].priority > rules["ingress/0"].priority
    assert rules["egress/0"].priority == pc.rule_priority(10, "allow")
    for direction in ("ingress", "egress"):
        default = rules[f"{direction}/default"]
        infra = rules[f"{direction}/infra"]
        assert default.priority == pc.DEFAULT_DROP
        assert infra.priority == pc.INFRA_ALLOW
        rule_prios = [a.priority for a in acls if a.rule.startswith(direction + "/")
                      and a.rule.split("/")[1].isdigit()]
        assert all(p > infra.priority > default.priority for p in rule_prios)


def test_default_priority_is_500() -> None:
    doc = policy(ingress=[ALLOW_ANY])
    del doc["priority"]
    assert by_rule(compile_(doc))["ingress/0"].priority == pc.rule_priority(500, "allow")


def test_two_policies_order_across_each_other() -> None:
    urgent = by_rule(compile_(policy(priority=100, ingress=[DENY_ANY])))
    relaxed = by_rule(compile_(policy(priority=900, ingress=[ALLOW_ANY])))
    assert urgent["ingress/0"].priority > relaxed["ingress/0"].priority
    assert urgent["ingress/default"].priority == relaxed["ingress/default"].priority


# -- directions, actions, default drop and infra ----------------------------------------------


def test_ingress_rule_shape() -> None:
    rules = by_rule(compile_(policy(ingress=[ALLOW_ANY])))
    assert set(rules) == {"ingress/0", "ingress/default", "ingress/infra"}
    rule = rules["ingress/0"]
    assert rule.direction == "to-lport"
    assert rule.match == f"outport == @{GROUP} && ip"
    assert rule.action == "allow-related"
    default = rules["ingress/default"]
    assert (default.direction, default.match, default.action) == (
        "to-lport", f"outport == @{GROUP} && ip", "drop")
    infra = rules["ingress/infra"]
    assert infra.direction == "to-lport"
    assert infra.action == "allow-stateless"
    assert infra.match == f"outport == @{GROUP} && (nd || nd_rs || nd_ra)"


def test_egress_rule_shape_and_dhcp_infra() -> None:
    rules = by_rule(compile_(policy(egress=[ALLOW_ANY])))
    assert set(rules) == {"egress/0", "egress/default", "egress/infra"}
    assert rules["egress/0"].direction == "from-lport"
    assert rules["egress/0"].match == f"inport == @{GROUP} && ip"
    assert rules["egress/default"].direction == "from-lport"
    assert rules["egress/default"].action == "drop"
    assert rules["egress/default"].match == f"inport == @{GROUP} && ip"
    infra = rules["egress/infra"]
    assert infra.direction == "from-lport"
    assert infra.action == "allow-stateless"
    assert infra.match.startswith(f"inport == @{GROUP} && (")
    for part in ("nd", "nd_rs", "nd_ra", "(udp && udp.src == 68 && udp.dst == 67)",
                 "(udp && udp.src == 546 && udp.dst == 547)"):
        assert part in infra.match


def test_rules_match_ip_only_so_arp_is_never_matched() -> None:
    for acl in compile_(policy(ingress=[DENY_ANY], egress=[DENY_ANY])):
        assert "arp" not in acl.match
        if acl.rule.split("/")[1] != "infra":
            assert " && ip" in acl.match


@pytest.mark.parametrize(("stateful", "allow"), [(True, "allow-related"),
                                                 (False, "allow-stateless")])
def test_stateful_chooses_allow_action(stateful: bool, allow: str) -> None:
    rules = by_rule(compile_(policy(stateful=stateful, ingress=[ALLOW_ANY, DENY_ANY],
                                    egress=[ALLOW_ANY])))
    assert rules["ingress/0"].action == allow
    assert rules["egress/0"].action == allow
    assert rules["ingress/1"].action == "drop"
    assert rules["ingress/default"].action == "drop"
    assert rules["ingress/infra"].action == "allow-stateless"


def test_stateful_rules_need_no_reply_acls() -> None:
    acls = compile_(policy(ingress=[ALLOW_ANY, DENY_ANY], egress=[ALLOW_ANY]))
    assert not [a for a in acls if a.rule.endswith("/reply")]


def test_stateless_allow_gets_a_mirrored_reply_acl() -> None:
    rules = by_rule(compile_(policy(
        stateful=False, priority=42, log={"enabled": True, "severity": "info"},
        ingress=[{"action": "allow", "protocol": "tcp", "ports": [80, "8000-8080"],
                  "peers": [{"cidr": "192.168.0.0/16"}, {"selector": {"app": "lb"}}]}])))
    assert set(rules) == {"ingress/0", "ingress/0/reply", "ingress/default", "ingress/infra",
                          "conntrack"}
    # a never-matching stateful ACL keeps conntrack on for the selected ports' own traffic
    conntrack = rules["conntrack"]
    assert (conntrack.direction, conntrack.priority, conntrack.action, conntrack.match) == (
        "from-lport", pc.CONNTRACK_ON, "allow-related", f"inport == @{GROUP} && ip4 && ip6")
    assert conntrack.priority < pc.DEFAULT_DROP
    rule, reply = rules["ingress/0"], rules["ingress/0/reply"]
    assert rule.direction == "to-lport" and reply.direction == "from-lport"
    assert reply.action == "allow-stateless"
    assert reply.priority == rule.priority == pc.rule_priority(42, "allow")
    lb4, lb6 = (pc.address_set_name("t1", {"app": "lb"}, f) for f in (4, 6))
    assert reply.match == (
        f"inport == @{GROUP} && ip && (ip4.dst == 192.168.0.0/16 || "
        f"ip4.dst == ${lb4} || ip6.dst == ${lb6}) && "
        "tcp && (tcp.src == 80 || (tcp.src >= 8000 && tcp.src <= 8080))")
    assert rule.match == (
        f"outport == @{GROUP} && ip && (ip4.src == 192.168.0.0/16 || "
        f"ip4.src == ${lb4} || ip6.src == ${lb6}) && "
        "tcp && (tcp.dst == 80 || (tcp.dst >= 8000 && tcp.dst <= 8080))")
    assert only_generated_tokens(reply.match)


def test_stateless_egress_reply_comes_back_to_the_port() -> None:
    rules = by_rule(compile_(policy(stateful=False, egress=[
        {"action": "allow", "protocol": "udp", "ports": [53], "peers": [{"network": NET_B}]},
        {"action": "allow", "protocol": "icmp"},
        {"action": "allow"}])))
    assert rules["egress/0/reply"].direction == "to-lport"
    assert rules["egress/0/reply"].match == (
        f"outport == @{GROUP} && ip && (ip4.src == 10.2.0.0/24) && udp && (udp.src == 53)")
    assert rules["egress/1/reply"].match == f"outport == @{GROUP} && ip && (icmp4 || icmp6)"
    assert rules["egress/2/reply"].match == f"outport == @{GROUP} && ip"
    # replies are let through, never isolated: no default drop is added for them
    assert {a.direction for a in rules.values() if a.action == "drop"} == {"from-lport"}


def test_stateless_deny_has_no_reply() -> None:
    rules = by_rule(compile_(policy(stateful=False, ingress=[DENY_ANY])))
    assert set(rules) == {"ingress/0", "ingress/default", "ingress/infra", "conntrack"}


def test_stateful_defaults_to_true() -> None:
    doc = policy(ingress=[ALLOW_ANY])
    del doc["stateful"]
    assert by_rule(compile_(doc))["ingress/0"].action == "allow-related"


@pytest.mark.parametrize(("ingress", "egress", "directions"), [
    (None, None, set()),
    ([ALLOW_ANY], None, {"to-lport"}),
    (None, [DENY_ANY], {"from-lport"}),
    ([ALLOW_ANY], [ALLOW_ANY], {"to-lport", "from-lport"}),
    ([], None, {"to-lport"}),
    (None, [], {"from-lport"}),
    ([], [], {"to-lport", "from-lport"}),
    ([], [ALLOW_ANY], {"to-lport", "from-lport"}),
])
def test_absent_direction_gives_no_acls_and_a_given_one_isolates(
        ingress: list[Any] | None, egress: list[Any] | None, directions: set[str]) -> None:
    given = {k: v for k, v in (("ingress", ingress), ("egress", egress)) if v is not None}
    acls = compile_(policy(**given))
    assert {a.direction for a in acls} == directions
    # each isolated direction: its rules, one default drop, one infra allow
    assert len(acls) == len(ingress or []) + len(egress or []) + 2 * len(directions)


@pytest.mark.parametrize(("direction", "ovn_dir", "port_field"), [
    ("ingress", "to-lport", "outport"), ("egress", "from-lport", "inport")])
def test_an_empty_rule_list_isolates_with_nothing_allowed(direction: str, ovn_dir: str,
                                                          port_field: str) -> None:
    """Kubernetes' default deny: {"selector": {}, "ingress": []}."""
    rules = by_rule(compile_(policy(**{direction: []})))
    assert set(rules) == {f"{direction}/default", f"{direction}/infra"}
    drop = rules[f"{direction}/default"]
    assert (drop.direction, drop.priority, drop.match, drop.action) == (
        ovn_dir, pc.DEFAULT_DROP, f"{port_field} == @{GROUP} && ip", "drop")
    assert rules[f"{direction}/infra"].action == "allow-stateless"  # ND, DHCP still pass
    assert not [a for a in rules.values() if a.action.startswith("allow")
                and a.rule != f"{direction}/infra"]


def test_a_stateless_default_deny_keeps_conntrack_on() -> None:
    rules = by_rule(compile_(policy(stateful=False, ingress=[])))
    assert set(rules) == {"ingress/default", "ingress/infra", "conntrack"}


def test_allows_of_other_policies_add_up_over_a_default_deny() -> None:
    """Every policy's allows sit above every policy's default drop: a default deny and
    allow policies at the default priority let exactly the allowed traffic in."""
    deny_all = compile_(policy(ingress=[]))
    allows = [compile_(policy(id=f"{i}" * 8 + PID[8:], selector={"app": "db"},
                              ingress=[{"action": "allow", "peers": [{"cidr": cidr}]}]))
              for i, cidr in ((1, "10.0.0.2/32"), (2, "10.0.0.3/32"))]
    drops = [a for a in deny_all if a.action == "drop"]
    assert [a.rule for a in drops] == ["ingress/default"]
    allowed = [a for acls in allows for a in acls if a.rule == "ingress/0"]
    assert len(allowed) == 2
    assert all(a.priority > drop.priority for a in allowed for drop in drops)
    assert {a.match.rsplit("== ", 1)[1] for a in allowed} == {"10.0.0.2/32)", "10.0.0.3/32)"}


def test_missing_direction_keys_compile_to_nothing() -> None:
    doc = policy()
    assert "ingress" not in doc and "egress" not in doc
    assert compile_(doc) == []
    assert compile_(policy(ingress=None, egress=None)) == []  # null, as absent


# -- protocols and ports --------------------------------------------------------------------


@pytest.mark.parametrize(("value", "bounds"), [(80, (80, 80)), ("80", (80, 80)),
                                               ("8000-8080", (8000, 8080)),
                                               ("1-65535", (1, 65535))])
def test_port_bounds_of_the_stored_form(value: int | str, bounds: tuple[int, int]) -> None:
    assert pc.port_bounds(value) == bounds


@pytest.mark.parametrize("proto", ["tcp", "udp", "sctp"])
def test_protocol_without_ports(proto: str) -> None:
    rule = by_rule(compile_(policy(ingress=[{"action": "allow", "protocol": proto}])))
    assert rule["ingress/0"].match == f"outport == @{GROUP} && ip && {proto}"


def test_single_port_is_equality() -> None:
    rule = by_rule(compile_(policy(ingress=[{"action": "allow", "protocol": "tcp",
                                             "ports": [80]}])))["ingress/0"]
    assert rule.match == f"outport == @{GROUP} && ip && tcp && (tcp.dst == 80)"


def test_port_range_is_one_range_match_not_one_acl_per_port() -> None:
    acls = compile_(policy(egress=[{"action": "allow", "protocol": "udp",
                                    "ports": ["8000-8080"]}]))
    rules = [a for a in acls if a.rule == "egress/0"]
    assert len(rules) == 1
    assert len(acls) == 3
    assert rules[0].match == (f"inport == @{GROUP} && ip && udp && "
                              "((udp.dst >= 8000 && udp.dst <= 8080))")
    assert "8001" not in rules[0].match


def test_ports_and_ranges_are_ored_in_one_acl() -> None:
    acls = compile_(policy(ingress=[{"action": "deny", "protocol": "sctp",
                                     "ports": [22, "1-65535", "30000-30010"]}]))
    rule = by_rule(acls)["ingress/0"]
    assert rule.match == (f"outport == @{GROUP} && ip && sctp && (sctp.dst == 22 || "
                          "(sctp.dst >= 1 && sctp.dst <= 65535) || "
                          "(sctp.dst >= 30000 && sctp.dst <= 30010))")
    assert rule.action == "drop"


def test_icmp_covers_both_families() -> None:
    rule = by_rule(compile_(policy(ingress=[{"action": "allow", "protocol": "icmp"}])))
    assert rule["ingress/0"].match == f"outport == @{GROUP} && ip && (icmp4 || icmp6)"


def test_any_protocol_adds_no_l4_clause() -> None:
    rule = by_rule(compile_(policy(ingress=[{"action": "allow", "protocol": "any"}])))
    assert rule["ingress/0"].match == f"outport == @{GROUP} && ip"


# -- peers -------------------------------------------------------------------------------------


def test_cidr_peers_use_source_on_ingress_and_destination_on_egress() -> None:
    peers = [{"cidr": "192.168.0.0/16"}, {"cidr": "2001:db8::/32"}]
    rules = by_rule(compile_(policy(ingress=[{"action": "allow", "peers": peers}],
                                    egress=[{"action": "allow", "peers": peers}])))
    assert rules["ingress/0"].match == (f"outport == @{GROUP} && ip && "
                                        "(ip4.src == 192.168.0.0/16 || ip6.src == 2001:db8::/32)")
    assert rules["egress/0"].match == (f"inport == @{GROUP} && ip && "
                                       "(ip4.dst == 192.168.0.0/16 || ip6.dst == 2001:db8::/32)")


def test_network_peer_expands_to_its_cidrs() -> None:
    rules = by_rule(compile_(policy(ingress=[{"action": "allow", "protocol": "tcp",
                                              "ports": [443],
                                              "peers": [{"network": NET_A},
                                                        {"network": NET_B}]}])))
    assert rules["ingress/0"].match == (
        f"outport == @{GROUP} && ip && (ip4.src == 10.1.0.0/24 || ip6.src == fd00:1::/64 || "
        "ip4.src == 10.2.0.0/24) && tcp && (tcp.dst == 443)")


def test_selector_peer_references_both_address_sets() -> None:
    rules = by_rule(compile_(policy(
        ingress=[{"action": "allow", "peers": [{"cidr": "10.9.0.0/16"},
                                               {"selector": {"app": "db"}}]}],
        egress=[{"action": "deny", "peers": [{"selector": {}}]}])))
    assert rules["ingress/0"].match == (
        f"outport == @{GROUP} && ip && (ip4.src == 10.9.0.0/16 || "
        f"ip4.src == ${DB4} || ip6.src == ${DB6})")
    assert rules["egress/0"].match == (
        f"inport == @{GROUP} && ip && (ip4.dst == ${ANY4} || ip6.dst == ${ANY6})")


def test_one_selector_in_two_rules_references_one_set_pair() -> None:
    db = [{"selector": {"app": "db"}}]
    rules = by_rule(compile_(policy(ingress=[{"action": "allow", "peers": db},
                                             {"action": "deny", "peers": db}],
                                    egress=[{"action": "allow", "peers": db}])))
    for key in ("ingress/0", "ingress/1"):
        assert rules[key].match.endswith(f"(ip4.src == ${DB4} || ip6.src == ${DB6})")
    assert rules["egress/0"].match.endswith(f"(ip4.dst == ${DB4} || ip6.dst == ${DB6})")


def test_policies_of_a_tenant_share_the_set_names_and_tenants_do_not() -> None:
    peers = [{"selector": {"app": "db", "tier": "x"}}]
    reordered = [{"selector": {"tier": "x", "app": "db"}}]
    other_id = "4f2a9c1e-7b4d-4e8a-9c0f-1a2b3c4d5e6f"
    mine = by_rule(compile_(policy(ingress=[{"action": "allow", "peers": peers}])))
    also_mine = by_rule(compile_(policy(id=other_id, name="q", priority=3,
                                        egress=[{"action": "deny", "peers": reordered}])))
    theirs = by_rule(compile_(policy(tenant_id="t2",
                                     ingress=[{"action": "allow", "peers": peers}])))
    names = set(re.findall(r"\$(\w+)", mine["ingress/0"].match))
    assert names == {pc.address_set_name("t1", peers[0]["selector"], f) for f in (4, 6)}
    assert set(re.findall(r"\$(\w+)", also_mine["egress/0"].match)) == names
    their_names = set(re.findall(r"\$(\w+)", theirs["ingress/0"].match))
    assert len(their_names) == 2 and not their_names & names
    assert their_names == {pc.address_set_name("t2", peers[0]["selector"], f) for f in (4, 6)}


def test_empty_peer_list_means_any_address() -> None:
    rules = by_rule(compile_(policy(ingress=[{"action": "allow", "peers": []}])))
    assert rules["ingress/0"].match == f"outport == @{GROUP} && ip"


def test_peer_selectors_lists_every_distinct_label_selector_by_key() -> None:
    doc = policy(ingress=[{"action": "allow", "peers": [{"cidr": "10.0.0.0/8"},
                                                        {"selector": {"a": "1"}}]},
                          {"action": "deny"}],
                 egress=[{"action": "allow", "peers": [{"selector": {}},
                                                       {"network": NET_A},
                                                       {"selector": {"b": "2"}}]}])
    assert pc.peer_selectors(doc) == {pc.selector_key("t1", {"a": "1"}): {"a": "1"},
                                      pc.selector_key("t1", {}): {},
                                      pc.selector_key("t1", {"b": "2"}): {"b": "2"}}
    assert pc.peer_selectors(policy()) == {}
    assert pc.peer_selectors(policy(ingress=[ALLOW_ANY], egress=[
        {"action": "allow", "peers": [{"cidr": "10.0.0.0/8"}, {"network": NET_B}]}])) == {}
    assert pc.peer_selectors(policy(ingress=[], egress=[])) == {}


def test_peer_selectors_collapse_repeats_and_label_order() -> None:
    doc = policy(ingress=[{"action": "allow", "peers": [{"selector": {"a": "1", "b": "2"}},
                                                        {"selector": {"b": "2", "a": "1"}}]},
                          {"action": "deny", "peers": [{"selector": {"a": "1", "b": "2"}}]}],
                 egress=[{"action": "allow", "peers": [{"selector": {"b": "2", "a": "1"}}]}])
    found = pc.peer_selectors(doc)
    assert list(found) == [pc.selector_key("t1", {"a": "1", "b": "2"})]
    assert list(found.values()) == [{"a": "1", "b": "2"}]


def test_peer_selectors_are_keyed_by_the_policy_tenant() -> None:
    peers = [{"selector": {"app": "db"}}]
    mine = pc.peer_selectors(policy(ingress=[{"action": "allow", "peers": peers}]))
    theirs = pc.peer_selectors(policy(tenant_id="t2",
                                      ingress=[{"action": "allow", "peers": peers}]))
    assert list(mine) == [pc.selector_key("t1", {"app": "db"})]
    assert list(theirs) == [pc.selector_key("t2", {"app": "db"})]
    assert set(mine) != set(theirs)


# -- logging -----------------------------------------------------------------------------------


def test_logging_marks_rules_and_default_drop_with_severity() -> None:
    rules = by_rule(compile_(policy(log={"enabled": True, "severity": "warning"},
                                    ingress=[ALLOW_ANY, DENY_ANY])))
    for key in ("ingress/0", "ingress/1", "ingress/default"):
        assert rules[key].log is True
        assert rules[key].severity == "warning"


def test_no_logging_means_no_severity() -> None:
    for log in ({"enabled": False, "severity": "alert"}, None):
        acls = compile_(policy(log=log, ingress=[ALLOW_ANY]))
        assert all(a.log is False and a.severity is None for a in acls)


# -- match text is only generated tokens ----------------------------------------------------------


def test_token_checker_rejects_foreign_text() -> None:
    assert only_generated_tokens(f"outport == @{GROUP} && ip && tcp && (tcp.dst == 80)")
    assert not only_generated_tokens(f'outport == @{GROUP} && ip && "x"')
    assert not only_generated_tokens("outport == @other_group && ip")
    assert not only_generated_tokens("ip4.src == $foo")
    assert only_generated_tokens(f"ip4.src == ${DB4} || ip6.src == ${DB6}")
    assert not only_generated_tokens(f"ip4.src == ${DB4}x")
    assert not only_generated_tokens(f"ip4.src == ${GROUP}_i0_0_ip4")  # the old per-rule names
    assert not only_generated_tokens(f"outport == @{GROUP}x && ip")
    assert not only_generated_tokens("ip4.src == 10.0.0.1")
    assert not only_generated_tokens("tcp.dst == 80; drop")


def test_every_compiled_match_is_made_of_generated_tokens() -> None:
    doc = policy(priority=0, log={"enabled": True, "severity": "debug"},
                 ingress=[{"action": "allow", "protocol": "tcp", "ports": [1, "2-9"],
                           "peers": [{"selector": {"a": "b"}}, {"cidr": "10.0.0.0/8"},
                                     {"network": NET_A}]},
                          {"action": "deny", "protocol": "icmp"}],
                 egress=[{"action": "allow", "protocol": "udp", "ports": ["53"],
                          "peers": [{"cidr": "::/0"}]}])
    acls = compile_(doc)
    for acl in acls:
        assert only_generated_tokens(acl.match), acl.match
    assert any(f"${pc.address_set_name('t1', {'a': 'b'}, 4)}" in a.match for a in acls)


# -- selects / peer_selects ----------------------------------------------------------------------


def port(labels: dict[str, str] | None = None, network: str = NET_A) -> dict[str, Any]:
    return {"id": "p", "network_id": network, "labels": labels or {}}


def test_empty_selector_selects_every_port() -> None:
    doc = policy(selector={})
    assert pc.selects(doc, port())
    assert pc.selects(doc, port({"app": "web"}, NET_B))
    assert pc.selects(policy(selector=None), port({"x": "y"}))
    assert pc.selects({"id": PID}, port())  # no selector key at all


def test_selector_needs_every_label_with_equal_value() -> None:
    doc = policy(selector={"app": "web", "tier": "front"})
    assert pc.selects(doc, port({"app": "web", "tier": "front"}))
    assert pc.selects(doc, port({"app": "web", "tier": "front", "extra": "1"}))
    assert not pc.selects(doc, port({"app": "web"}))
    assert not pc.selects(doc, port({"app": "web", "tier": "back"}))
    assert not pc.selects(doc, port({}))
    assert not pc.selects(doc, {"network_id": NET_A})  # a port without labels


def test_empty_label_value_is_not_absence() -> None:
    doc = policy(selector={"app": ""})
    assert pc.selects(doc, port({"app": ""}))
    assert not pc.selects(doc, port({}))


def test_networks_restricts_selection() -> None:
    doc = policy(selector={"app": "web"}, networks=[NET_B])
    assert pc.selects(doc, port({"app": "web"}, NET_B))
    assert not pc.selects(doc, port({"app": "web"}, NET_A))
    assert not pc.selects(doc, port({"app": "db"}, NET_B))
    everything = policy(selector={}, networks=[NET_A, NET_B])
    assert pc.selects(everything, port(network=NET_A))
    assert pc.selects(everything, port(network=NET_B))
    assert not pc.selects(everything, port(network="33333333-3333-4333-8333-333333333333"))


def test_absent_networks_does_not_restrict() -> None:
    assert pc.selects(policy(networks=None), port(network=NET_B))
    doc = policy()
    doc.pop("networks", None)
    assert pc.selects(doc, port(network=NET_B))


def test_networks_compare_as_strings() -> None:
    import uuid

    doc = policy(networks=[uuid.UUID(NET_A)])
    assert pc.selects(doc, port(network=NET_A))
    assert pc.selects(policy(networks=[NET_A]), {"network_id": uuid.UUID(NET_A), "labels": {}})


def test_peer_selects() -> None:
    assert pc.peer_selects({}, port())
    assert pc.peer_selects({}, {"network_id": NET_A})
    assert pc.peer_selects({"app": "db"}, port({"app": "db", "x": "1"}))
    assert not pc.peer_selects({"app": "db"}, port({"app": "web"}))
    assert not pc.peer_selects({"app": "db", "x": "2"}, port({"app": "db", "x": "1"}))
    assert not pc.peer_selects({"app": "db"}, port({}))
    # peer selection ignores the policy's networks: any network of the tenant
    assert pc.peer_selects({"app": "db"}, port({"app": "db"}, NET_B))

"""Policies: the HTTP resource and the Port_Group / Address_Set / ACL / Meter rows behind it."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from conftest import ApiClient, unique
from nbhelpers import PREFIX, _decode, as_list, lsp, owned, rows

MISSING = "00000000-0000-4000-8000-000000000000"

# -- helpers ---------------------------------------------------------------------------------


def _errors(resp: Any) -> dict[str, Any]:
    assert resp.mimetype == "application/problem+json", resp.data
    return resp.get_json().get("errors") or {}


def create(api: Any, **fields: Any) -> dict[str, Any]:
    resp = api.post("/v1/policies", {"name": fields.pop("name", None) or unique("pol"),
                                     **fields})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def group_name(policy_id: str) -> str:
    return "ovngw_p" + policy_id.replace("-", "")


def pg(nbctl: Any, policy_id: str) -> dict[str, Any] | None:
    found = owned(nbctl, "Port_Group", kind="policy", id=policy_id)
    assert len(found) <= 1, found
    return found[0] if found else None


def members(nbctl: Any, policy_id: str) -> set[str]:
    """Names (= port ids) of the Logical_Switch_Ports in the policy's port group."""
    group = pg(nbctl, policy_id)
    assert group is not None, f"no port group for {policy_id}"
    uuids = as_list(group["ports"])
    if not uuids:
        return set()
    out = json.loads(nbctl("--format=json", "--columns=name", "list", "Logical_Switch_Port",
                           *uuids))
    return {row[0] for row in out["data"]}


def acls(nbctl: Any, policy_id: str) -> list[dict[str, Any]]:
    """The ACL rows referenced by the policy's port group, sorted like the rules view."""
    group = pg(nbctl, policy_id)
    assert group is not None
    uuids = set(as_list(group["acls"]))
    found = [r for r in owned(nbctl, "ACL", parent=policy_id) if r["_uuid"] in uuids]
    assert len(found) == len(uuids), "an ACL of the group lacks the ownership keys"
    found.sort(key=lambda a: (a["direction"], -a["priority"],
                              a["external_ids"][PREFIX + "rule"]))
    return found


def acl_by_rule(nbctl: Any, policy_id: str) -> dict[str, dict[str, Any]]:
    return {a["external_ids"][PREFIX + "rule"]: a for a in acls(nbctl, policy_id)}


def address_sets(nbctl: Any, policy_id: str) -> dict[str, list[str]]:
    return {r["name"]: sorted(as_list(r["addresses"]))
            for r in owned(nbctl, "Address_Set", kind="policy-peers", parent=policy_id)}


def peer_set(nbctl: Any, policy_id: str, rule: str = "i0", peer: int = 0,
             family: int = 4) -> list[str]:
    name = f"{group_name(policy_id)}_{rule}_{peer}_ip{family}"
    sets = address_sets(nbctl, policy_id)
    assert name in sets, (name, sets)
    return sets[name]


def record(nbctl: Any, table: str, row_uuid: str) -> dict[str, Any]:
    out = json.loads(nbctl("--format=json", "list", table, row_uuid))
    assert len(out["data"]) == 1, out
    return {h: _decode(v) for h, v in zip(out["headings"], out["data"][0], strict=True)}


def selected(api: Any, policy_id: str) -> int:
    resp = api.get(f"/v1/policies/{policy_id}")
    assert resp.status_code == 200, resp.get_json()
    return int(resp.get_json()["status"]["selected_ports"])


def rule_priority(policy_priority: int, action: str) -> int:
    return 2000 + (1000 - policy_priority) * 2 + (1 if action == "deny" else 0)


_WORDS = frozenset({"inport", "outport", "ip", "ip4", "ip6", "ip4.src", "ip4.dst", "ip6.src",
                    "ip6.dst", "tcp", "udp", "sctp", "tcp.dst", "udp.dst", "sctp.dst",
                    "tcp.src", "udp.src", "sctp.src", "icmp4", "icmp6", "nd", "nd_rs", "nd_ra"})
_TOKEN = re.compile(
    r"(?P<space>\s+)|(?P<op>&&|\|\||==|>=|<=|[()])|"
    r"(?P<group>@ovngw_p[0-9a-f]{32}(?![A-Za-z0-9_]))|"
    r"(?P<set>\$ovngw_p[0-9a-f]{32}_[ie][0-9]+_[0-9]+_ip[46](?![A-Za-z0-9_]))|"
    r"(?P<cidr>[0-9a-f:.]+/[0-9]+)|(?P<int>[0-9]+(?![0-9A-Za-z_.:/]))|"
    r"(?P<word>[A-Za-z_][A-Za-z0-9_.]*)")


def only_generated_tokens(match: str) -> bool:
    pos = 0
    while pos < len(match):
        token = _TOKEN.match(match, pos)
        if token is None or (token.lastgroup == "word" and token.group() not in _WORDS):
            return False
        pos = token.end()
    return True


# -- create and the rows behind it ---------------------------------------------------------


def test_create_returns_resource_and_port_group_of_selected_ports(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.60.0.0/24")
    web1 = api.port(net["id"], labels={"app": "web"})
    web2 = api.port(net["id"], labels={"app": "web", "tier": "front"})
    api.port(net["id"], labels={"app": "db"})
    api.port(net["id"])
    name = unique("pol")
    resp = api.post("/v1/policies", {"name": name, "selector": {"app": "web"},
                                     "ingress": [{"action": "allow", "protocol": "tcp",
                                                  "ports": [80]}]})
    assert resp.status_code == 201, resp.get_json()
    pol = resp.get_json()
    assert resp.headers["Location"].endswith(f"/v1/policies/{pol['id']}")
    assert resp.headers["ETag"] == '"1"'
    assert pol["name"] == name and pol["tenant_id"] == api.tenant and pol["revision"] == 1
    assert pol["status"] == {"selected_ports": 2}
    assert pol["priority"] == 500
    assert pol["stateful"] is True
    assert pol["log"] == {"enabled": False, "severity": "info"}
    assert pol["egress"] == []
    assert pol["ingress"] == [{"action": "allow", "protocol": "tcp", "ports": [80]}]
    group = pg(nbctl, pol["id"])
    assert group is not None
    assert group["name"] == group_name(pol["id"])
    assert group["external_ids"][PREFIX + "tenant"] == api.tenant
    assert members(nbctl, pol["id"]) == {web1["id"], web2["id"]}
    got = api.get(f"/v1/policies/{pol['id']}")
    assert got.status_code == 200 and got.headers["ETag"] == '"1"'
    assert got.get_json() == pol
    listed = api.get("/v1/policies").get_json()["items"]
    assert listed == [pol]


def test_acls_have_direction_priority_match_action_name(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.61.0.0/24", ipv6_cidr="fd00:61::/64")
    pol = create(api, selector={"app": "web"}, priority=100, ingress=[
        {"action": "allow", "protocol": "tcp", "ports": [80, "8000-8080"],
         "peers": [{"cidr": "192.168.0.0/16"}, {"network": net["id"]},
                   {"selector": {"app": "lb"}}]},
        {"action": "deny", "protocol": "icmp"},
    ], egress=[{"action": "allow", "protocol": "udp", "ports": [53]}])
    gid = group_name(pol["id"])
    by_rule = acl_by_rule(nbctl, pol["id"])
    assert set(by_rule) == {"ingress/0", "ingress/1", "ingress/default", "ingress/infra",
                            "egress/0", "egress/default", "egress/infra"}
    expected = {
        "ingress/0": ("to-lport", rule_priority(100, "allow"), "allow-related",
                      f"outport == @{gid} && ip && (ip4.src == 192.168.0.0/16 || "
                      f"ip4.src == 10.61.0.0/24 || ip6.src == fd00:61::/64 || "
                      f"ip4.src == ${gid}_i0_2_ip4 || ip6.src == ${gid}_i0_2_ip6) && "
                      "tcp && (tcp.dst == 80 || (tcp.dst >= 8000 && tcp.dst <= 8080))"),
        "ingress/1": ("to-lport", rule_priority(100, "deny"), "drop",
                      f"outport == @{gid} && ip && (icmp4 || icmp6)"),
        "ingress/default": ("to-lport", 1000, "drop", f"outport == @{gid} && ip"),
        "ingress/infra": ("to-lport", 1001, "allow-stateless",
                          f"outport == @{gid} && (nd || nd_rs || nd_ra)"),
        "egress/0": ("from-lport", rule_priority(100, "allow"), "allow-related",
                     f"inport == @{gid} && ip && udp && (udp.dst == 53)"),
        "egress/default": ("from-lport", 1000, "drop", f"inport == @{gid} && ip"),
    }
    for rule, (direction, priority, action, match) in expected.items():
        acl = by_rule[rule]
        assert (acl["direction"], acl["priority"], acl["action"], acl["match"]) == (
            direction, priority, action, match), rule
    infra = by_rule["egress/infra"]
    assert infra["priority"] == 1001 and infra["action"] == "allow-stateless"
    assert "udp.src == 68 && udp.dst == 67" in infra["match"]
    for acl in by_rule.values():
        assert as_list(acl["name"]) == [f"{api.tenant}/{pol['name']}"]
        assert acl["log"] is False
        assert as_list(acl["severity"]) == [] and as_list(acl["meter"]) == []
        assert acl["external_ids"][PREFIX + "tenant"] == api.tenant
        assert only_generated_tokens(acl["match"]), acl["match"]
    # one ACL per rule: the port range is a range match, not one ACL per port
    assert "tcp.dst == 8001" not in by_rule["ingress/0"]["match"]
    assert len([a for a in by_rule if a.startswith("ingress/0")]) == 1


def test_rules_view_is_what_ovn_holds(api: Any, other_api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.62.0.0/24")
    db = api.port(net["id"], labels={"app": "db"})
    pol = create(api, selector={"app": "web"}, log={"enabled": True, "severity": "notice"},
                 ingress=[{"action": "allow", "peers": [{"selector": {"app": "db"}}]}],
                 egress=[{"action": "deny", "protocol": "sctp"}])
    resp = api.get(f"/v1/policies/{pol['id']}/rules")
    assert resp.status_code == 200, resp.get_json()
    view = resp.get_json()
    assert view["port_group"] == group_name(pol["id"])
    assert view["address_sets"] == address_sets(nbctl, pol["id"])
    assert view["address_sets"] == {f"{group_name(pol['id'])}_i0_0_ip4": db["ips"],
                                    f"{group_name(pol['id'])}_i0_0_ip6": []}
    from_ovn = [{"direction": a["direction"], "priority": a["priority"], "match": a["match"],
                 "action": a["action"], "name": as_list(a["name"])[0], "log": a["log"],
                 "severity": (as_list(a["severity"]) or [None])[0],
                 "rule": a["external_ids"][PREFIX + "rule"]} for a in acls(nbctl, pol["id"])]
    assert view["acls"] == from_ovn
    assert len(view["acls"]) == 6
    assert other_api.get(f"/v1/policies/{pol['id']}/rules").status_code == 404
    assert api.get(f"/v1/policies/{MISSING}/rules").status_code == 404


def test_long_names_give_acl_names_of_at_most_63(client: Any, nbctl: Any) -> None:
    tenant = ("t" + unique("long").replace("-", "") + "x" * 63)[:63]
    api = ApiClient(client, tenant)
    pol = create(api, name="p" * 63, log={"enabled": True}, ingress=[{"action": "allow"}])
    names = {as_list(a["name"])[0] for a in acls(nbctl, pol["id"])}
    assert len(owned(nbctl, "Meter", kind="meter", id=tenant)) == 1
    assert len(names) == 1
    (name,) = names
    assert len(name) <= 63
    assert name == f"{tenant}/{'p' * 63}"[:63]


@pytest.mark.parametrize(("stateful", "allow"), [(True, "allow-related"),
                                                 (False, "allow-stateless")])
def test_stateful_flag_chooses_allow_action(api: Any, nbctl: Any, stateful: bool,
                                            allow: str) -> None:
    pol = create(api, stateful=stateful, ingress=[{"action": "allow"}, {"action": "deny"}])
    assert pol["stateful"] is stateful
    by_rule = acl_by_rule(nbctl, pol["id"])
    assert by_rule["ingress/0"]["action"] == allow
    assert by_rule["ingress/1"]["action"] == "drop"
    # without conntrack the replies of an allowed rule need an ACL of their own
    replies = {k for k in by_rule if k.endswith("/reply")}
    assert replies == (set() if stateful else {"ingress/0/reply"})
    if not stateful:
        reply = by_rule["ingress/0/reply"]
        assert reply["direction"] == "from-lport"
        assert reply["action"] == "allow-stateless"
        assert reply["priority"] == by_rule["ingress/0"]["priority"]
        assert reply["match"] == f"inport == @{group_name(pol['id'])} && ip"


def test_no_rules_in_a_direction_gives_no_acls_for_it(api: Any, nbctl: Any) -> None:
    only_egress = create(api, egress=[{"action": "allow"}])
    assert {a["direction"] for a in acls(nbctl, only_egress["id"])} == {"from-lport"}
    nothing = create(api)
    assert acls(nbctl, nothing["id"]) == []
    assert pg(nbctl, nothing["id"]) is not None


def test_priority_orders_acls_across_policies(api: Any, nbctl: Any) -> None:
    urgent = create(api, priority=0, ingress=[{"action": "allow"}])
    relaxed = create(api, priority=1000, ingress=[{"action": "deny"}])
    tie = create(api, priority=1000, ingress=[{"action": "allow"}])
    urgent_acl = acl_by_rule(nbctl, urgent["id"])["ingress/0"]["priority"]
    relaxed_acl = acl_by_rule(nbctl, relaxed["id"])["ingress/0"]["priority"]
    tie_acl = acl_by_rule(nbctl, tie["id"])["ingress/0"]["priority"]
    assert urgent_acl > relaxed_acl > tie_acl > 1001
    assert relaxed_acl == tie_acl + 1  # deny above allow at a tie


# -- logging and the meter -----------------------------------------------------------------


def test_logging_uses_one_rate_limited_meter_per_tenant(api: Any, other_api: Any,
                                                        nbctl: Any) -> None:
    first = create(api, log={"enabled": True, "severity": "alert"},
                   ingress=[{"action": "deny"}])
    assert first["log"] == {"enabled": True, "severity": "alert"}
    meters = owned(nbctl, "Meter", kind="meter", id=api.tenant)
    assert len(meters) == 1
    meter = meters[0]
    assert meter["external_ids"][PREFIX + "tenant"] == api.tenant
    assert meter["unit"] == "pktps"
    bands = as_list(meter["bands"])
    assert len(bands) == 1
    band = record(nbctl, "Meter_Band", bands[0])
    assert band["action"] == "drop"
    assert 0 < band["rate"] <= 10000
    by_rule = acl_by_rule(nbctl, first["id"])
    for rule in ("ingress/0", "ingress/default"):
        assert by_rule[rule]["log"] is True
        assert as_list(by_rule[rule]["severity"]) == ["alert"]
        assert as_list(by_rule[rule]["meter"]) == [meter["name"]]
    # a second logging policy reuses the meter
    second = create(api, log={"enabled": True}, egress=[{"action": "allow"}])
    assert second["log"] == {"enabled": True, "severity": "info"}
    assert owned(nbctl, "Meter", kind="meter", id=api.tenant) == meters
    by_rule = acl_by_rule(nbctl, second["id"])
    assert as_list(by_rule["egress/0"]["meter"]) == [meter["name"]]
    assert as_list(by_rule["egress/0"]["severity"]) == ["info"]
    # another tenant gets its own
    create(other_api, log={"enabled": True}, egress=[{"action": "allow"}])
    theirs = owned(nbctl, "Meter", kind="meter", id=other_api.tenant)
    assert len(theirs) == 1 and theirs[0]["name"] != meter["name"]
    # deleting a logging policy keeps the tenant's meter for the other one
    assert api.delete(f"/v1/policies/{first['id']}").status_code == 204
    assert owned(nbctl, "Meter", kind="meter", id=api.tenant) == meters


def test_policy_without_logging_has_no_meter(api: Any, nbctl: Any) -> None:
    create(api, ingress=[{"action": "deny"}])
    assert owned(nbctl, "Meter", kind="meter", id=api.tenant) == []


def test_patch_turns_logging_on_and_off(api: Any, nbctl: Any) -> None:
    pol = create(api, ingress=[{"action": "allow"}])
    resp = api.patch(f"/v1/policies/{pol['id']}", {"log": {"enabled": True,
                                                           "severity": "debug"}})
    assert resp.status_code == 200, resp.get_json()
    rule = acl_by_rule(nbctl, pol["id"])["ingress/0"]
    assert rule["log"] is True and as_list(rule["severity"]) == ["debug"]
    assert len(as_list(rule["meter"])) == 1
    resp = api.patch(f"/v1/policies/{pol['id']}", {"log": {"enabled": False}})
    assert resp.status_code == 200, resp.get_json()
    rule = acl_by_rule(nbctl, pol["id"])["ingress/0"]
    assert rule["log"] is False and as_list(rule["meter"]) == []


# -- membership follows the ports ------------------------------------------------------------


def test_new_port_joins_group_and_peer_sets_in_the_same_request(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.63.0.0/24", ipv6_cidr="fd00:63::/64")
    pol = create(api, selector={"app": "web"},
                 ingress=[{"action": "allow", "peers": [{"selector": {"app": "db"}}]}])
    assert pol["status"]["selected_ports"] == 0
    assert peer_set(nbctl, pol["id"]) == [] and peer_set(nbctl, pol["id"], family=6) == []
    web = api.port(net["id"], labels={"app": "web"})
    assert members(nbctl, pol["id"]) == {web["id"]}
    assert selected(api, pol["id"]) == 1
    db = api.port(net["id"], labels={"app": "db"})
    v4 = [ip for ip in db["ips"] if ":" not in ip]
    v6 = [ip for ip in db["ips"] if ":" in ip]
    assert len(v4) == 1 and len(v6) == 1
    assert peer_set(nbctl, pol["id"]) == v4
    assert peer_set(nbctl, pol["id"], family=6) == v6
    assert members(nbctl, pol["id"]) == {web["id"]}


def test_relabelling_moves_a_port(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.64.0.0/24")
    pol = create(api, selector={"app": "web"},
                 ingress=[{"action": "allow", "peers": [{"selector": {"app": "db"}}]}])
    port = api.port(net["id"], labels={"app": "db"})
    assert members(nbctl, pol["id"]) == set()
    assert peer_set(nbctl, pol["id"]) == port["ips"]
    resp = api.patch(f"/v1/ports/{port['id']}", {"labels": {"app": "web"}})
    assert resp.status_code == 200, resp.get_json()
    assert members(nbctl, pol["id"]) == {port["id"]}
    assert peer_set(nbctl, pol["id"]) == []
    assert selected(api, pol["id"]) == 1
    resp = api.patch(f"/v1/ports/{port['id']}", {"labels": {"app": None}})
    assert resp.status_code == 200, resp.get_json()
    assert members(nbctl, pol["id"]) == set()
    assert peer_set(nbctl, pol["id"]) == []
    assert selected(api, pol["id"]) == 0
    resp = api.patch(f"/v1/ports/{port['id']}", {"labels": {"app": "db"}})
    assert resp.status_code == 200, resp.get_json()
    assert peer_set(nbctl, pol["id"]) == port["ips"]


def test_readdressing_a_port_updates_peer_sets(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.65.0.0/24")
    pol = create(api, ingress=[{"action": "allow", "peers": [{"selector": {"app": "db"}}]}])
    db = api.port(net["id"], labels={"app": "db"})
    keep = api.port(net["id"], labels={"app": "db"})
    assert peer_set(nbctl, pol["id"]) == sorted([*db["ips"], *keep["ips"]])
    resp = api.patch(f"/v1/ports/{db['id']}", {"ips": ["10.65.0.77"]})
    assert resp.status_code == 200, resp.get_json()
    assert peer_set(nbctl, pol["id"]) == sorted(["10.65.0.77", *keep["ips"]])


def test_deleting_a_port_removes_it(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.66.0.0/24")
    pol = create(api, selector={"app": "web"},
                 egress=[{"action": "allow", "peers": [{"selector": {"app": "web"}}]}])
    web1 = api.port(net["id"], labels={"app": "web"})
    web2 = api.port(net["id"], labels={"app": "web"})
    assert members(nbctl, pol["id"]) == {web1["id"], web2["id"]}
    assert peer_set(nbctl, pol["id"], "e0") == sorted([*web1["ips"], *web2["ips"]])
    assert api.delete(f"/v1/ports/{web1['id']}").status_code == 204
    assert members(nbctl, pol["id"]) == {web2["id"]}
    assert peer_set(nbctl, pol["id"], "e0") == web2["ips"]
    assert selected(api, pol["id"]) == 1


def test_network_cascade_delete_removes_its_ports_from_policies(api: Any, nbctl: Any) -> None:
    doomed = api.network(cidr="10.67.0.0/24")
    stays = api.network(cidr="10.68.0.0/24")
    pol = create(api, selector={}, ingress=[{"action": "allow",
                                             "peers": [{"selector": {"app": "db"}}]}])
    gone = [api.port(doomed["id"], labels={"app": "db"}) for _ in range(2)]
    kept = api.port(stays["id"], labels={"app": "db"})
    assert members(nbctl, pol["id"]) == {gone[0]["id"], gone[1]["id"], kept["id"]}
    assert api.delete(f"/v1/networks/{doomed['id']}?cascade=true").status_code == 204
    assert members(nbctl, pol["id"]) == {kept["id"]}
    assert peer_set(nbctl, pol["id"]) == kept["ips"]
    assert selected(api, pol["id"]) == 1


def test_same_ip_in_two_networks_stays_while_one_port_has_it(api: Any, nbctl: Any) -> None:
    net1 = api.network(cidr="10.69.0.0/24")
    net2 = api.network(cidr="10.69.0.0/24")
    pol = create(api, ingress=[{"action": "allow", "peers": [{"selector": {"app": "db"}}]}])
    first = api.port(net1["id"], labels={"app": "db"})
    second = api.port(net2["id"], labels={"app": "db"})
    third = api.port(net2["id"], labels={"app": "db"})
    assert first["ips"] == second["ips"]
    assert peer_set(nbctl, pol["id"]) == sorted({*first["ips"], *third["ips"]})
    # deleting one holder keeps the address
    assert api.delete(f"/v1/ports/{first['id']}").status_code == 204
    assert peer_set(nbctl, pol["id"]) == sorted({*second["ips"], *third["ips"]})
    # relabelling the other holder away removes it
    resp = api.patch(f"/v1/ports/{second['id']}", {"labels": {"app": "web"}})
    assert resp.status_code == 200, resp.get_json()
    assert peer_set(nbctl, pol["id"]) == third["ips"]


def test_same_ip_relabel_keeps_the_address_of_the_other_holder(api: Any, nbctl: Any) -> None:
    net1 = api.network(cidr="10.70.0.0/24")
    net2 = api.network(cidr="10.70.0.0/24")
    pol = create(api, ingress=[{"action": "allow", "peers": [{"selector": {"app": "db"}}]}])
    first = api.port(net1["id"], labels={"app": "db"})
    second = api.port(net2["id"], labels={"app": "db"})
    assert first["ips"] == second["ips"]
    resp = api.patch(f"/v1/ports/{first['id']}", {"labels": {"app": "web"}})
    assert resp.status_code == 200, resp.get_json()
    assert peer_set(nbctl, pol["id"]) == second["ips"]


def test_same_ip_survives_cascade_delete_of_the_other_network(api: Any, nbctl: Any) -> None:
    doomed = api.network(cidr="10.83.0.0/24")
    stays = api.network(cidr="10.83.0.0/24")
    pol = create(api, selector={"app": "db"},
                 egress=[{"action": "allow", "peers": [{"selector": {"app": "db"}}]}])
    gone = api.port(doomed["id"], labels={"app": "db"})
    kept = api.port(stays["id"], labels={"app": "db"})
    assert gone["ips"] == kept["ips"]
    assert peer_set(nbctl, pol["id"], "e0") == kept["ips"]
    assert api.delete(f"/v1/networks/{doomed['id']}?cascade=true").status_code == 204
    assert peer_set(nbctl, pol["id"], "e0") == kept["ips"]
    assert members(nbctl, pol["id"]) == {kept["id"]}


def test_ports_created_before_the_policy_are_picked_up(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.71.0.0/24")
    web = api.port(net["id"], labels={"app": "web"})
    db = api.port(net["id"], labels={"app": "db"})
    pol = create(api, selector={"app": "web"},
                 ingress=[{"action": "allow", "peers": [{"selector": {"app": "db"}}]}])
    assert pol["status"]["selected_ports"] == 1
    assert members(nbctl, pol["id"]) == {web["id"]}
    assert peer_set(nbctl, pol["id"]) == db["ips"]


def test_empty_selector_selects_every_tenant_port_and_no_other(api: Any, other_api: Any,
                                                               nbctl: Any) -> None:
    net1 = api.network(cidr="10.72.0.0/24")
    net2 = api.network(cidr="10.73.0.0/24")
    theirs_net = other_api.network(cidr="10.74.0.0/24")
    theirs = other_api.port(theirs_net["id"], labels={"app": "db"})
    mine = [api.port(net1["id"]), api.port(net2["id"], labels={"app": "db"})]
    pol = create(api, selector={}, ingress=[{"action": "allow",
                                             "peers": [{"selector": {}}]}])
    assert pol["status"]["selected_ports"] == 2
    assert members(nbctl, pol["id"]) == {p["id"] for p in mine}
    assert peer_set(nbctl, pol["id"]) == sorted(ip for p in mine for ip in p["ips"])
    later_theirs = other_api.port(theirs_net["id"], labels={"app": "db"})
    later_mine = api.port(net1["id"], labels={"anything": "x"})
    assert members(nbctl, pol["id"]) == {p["id"] for p in [*mine, later_mine]}
    ips = peer_set(nbctl, pol["id"])
    for ip in [*theirs["ips"], *later_theirs["ips"]]:
        assert ip not in ips
    assert selected(api, pol["id"]) == 3


def test_networks_restricts_selection(api: Any, nbctl: Any) -> None:
    net1 = api.network(cidr="10.75.0.0/24")
    net2 = api.network(cidr="10.76.0.0/24")
    in1 = api.port(net1["id"], labels={"app": "web"})
    api.port(net2["id"], labels={"app": "web"})
    pol = create(api, selector={"app": "web"}, networks=[net1["id"]],
                 ingress=[{"action": "allow", "peers": [{"selector": {"app": "web"}}]}])
    assert pol["networks"] == [net1["id"]]
    assert members(nbctl, pol["id"]) == {in1["id"]}
    # peers are not restricted by `networks`
    assert len(peer_set(nbctl, pol["id"])) == 2
    later1 = api.port(net1["id"], labels={"app": "web"})
    api.port(net2["id"], labels={"app": "web"})
    assert members(nbctl, pol["id"]) == {in1["id"], later1["id"]}
    resp = api.patch(f"/v1/policies/{pol['id']}", {"networks": None})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["status"]["selected_ports"] == 4
    assert len(members(nbctl, pol["id"])) == 4


# -- PATCH and DELETE ------------------------------------------------------------------------


def test_patch_recomputes_members_sets_and_acls(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.77.0.0/24")
    web = api.port(net["id"], labels={"app": "web"})
    db = api.port(net["id"], labels={"app": "db"})
    cache = api.port(net["id"], labels={"app": "cache"})
    pol = create(api, selector={"app": "web"}, ingress=[
        {"action": "allow", "protocol": "tcp", "ports": [5432],
         "peers": [{"selector": {"app": "db"}}]}])
    old_acls = {a["_uuid"] for a in acls(nbctl, pol["id"])}
    resp = api.patch(f"/v1/policies/{pol['id']}", {
        "selector": {"app": "db"}, "priority": 10,
        "ingress": [{"action": "deny", "peers": [{"cidr": "10.0.0.0/8"}]},
                    {"action": "allow", "protocol": "udp", "ports": ["1000-2000"],
                     "peers": [{"selector": {"app": "cache"}}]}]})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["revision"] == 2
    assert body["priority"] == 10
    assert body["status"]["selected_ports"] == 1
    assert body["ingress"][1]["ports"] == ["1000-2000"]
    assert members(nbctl, pol["id"]) == {db["id"]}
    gid = group_name(pol["id"])
    # the old selector peer (ingress/0/0) is gone; the new one (ingress/1/0) holds cache
    assert address_sets(nbctl, pol["id"]) == {f"{gid}_i1_0_ip4": cache["ips"],
                                              f"{gid}_i1_0_ip6": []}
    by_rule = acl_by_rule(nbctl, pol["id"])
    assert set(by_rule) == {"ingress/0", "ingress/1", "ingress/default", "ingress/infra"}
    assert by_rule["ingress/0"]["action"] == "drop"
    assert by_rule["ingress/0"]["priority"] == rule_priority(10, "deny")
    assert by_rule["ingress/1"]["match"] == (
        f"outport == @{gid} && ip && (ip4.src == ${gid}_i1_0_ip4 || "
        f"ip6.src == ${gid}_i1_0_ip6) && udp && ((udp.dst >= 1000 && udp.dst <= 2000))")
    assert not old_acls & {a["_uuid"] for a in acls(nbctl, pol["id"])}
    # no ACL of the policy is left behind outside its group
    assert len(owned(nbctl, "ACL", parent=pol["id"])) == 4
    assert web["id"] not in members(nbctl, pol["id"])


def test_patch_peer_selector_in_place_and_rename(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.82.0.0/24")
    db = api.port(net["id"], labels={"app": "db"})
    cache = api.port(net["id"], labels={"app": "cache"})
    pol = create(api, ingress=[{"action": "allow", "peers": [{"selector": {"app": "db"}}]}])
    assert peer_set(nbctl, pol["id"]) == db["ips"]
    new_name = unique("renamed")
    resp = api.patch(f"/v1/policies/{pol['id']}", {
        "name": new_name,
        "ingress": [{"action": "allow", "peers": [{"selector": {"app": "cache"}}]}]})
    assert resp.status_code == 200, resp.get_json()
    assert peer_set(nbctl, pol["id"]) == cache["ips"]
    assert len(address_sets(nbctl, pol["id"])) == 2
    assert {as_list(a["name"])[0] for a in acls(nbctl, pol["id"])} == {
        f"{api.tenant}/{new_name}"}
    # the new peer set keeps following the ports
    later = api.port(net["id"], labels={"app": "cache"})
    assert peer_set(nbctl, pol["id"]) == sorted([*cache["ips"], *later["ips"]])


def test_patch_of_other_fields_keeps_rules_with_ports(api: Any, nbctl: Any) -> None:
    pol = create(api, ingress=[{"action": "allow", "protocol": "tcp",
                                "ports": [22, "8000-8080"]}])
    before = acl_by_rule(nbctl, pol["id"])["ingress/0"]["match"]
    resp = api.patch(f"/v1/policies/{pol['id']}", {"description": "only the text"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["ingress"] == pol["ingress"]
    assert acl_by_rule(nbctl, pol["id"])["ingress/0"]["match"] == before
    resp = api.patch(f"/v1/policies/{pol['id']}", {"priority": 1})
    assert resp.status_code == 200, resp.get_json()
    assert acl_by_rule(nbctl, pol["id"])["ingress/0"]["priority"] == rule_priority(1, "allow")


def test_patch_to_no_rules_drops_the_acls(api: Any, nbctl: Any) -> None:
    pol = create(api, ingress=[{"action": "allow", "peers": [{"selector": {"a": "b"}}]}])
    resp = api.patch(f"/v1/policies/{pol['id']}", {"ingress": []})
    assert resp.status_code == 200, resp.get_json()
    assert acls(nbctl, pol["id"]) == []
    assert address_sets(nbctl, pol["id"]) == {}
    assert owned(nbctl, "ACL", parent=pol["id"]) == []


def test_unchanged_patch_keeps_revision(api: Any) -> None:
    pol = create(api, ingress=[{"action": "allow", "protocol": "tcp", "ports": [80]}])
    resp = api.patch(f"/v1/policies/{pol['id']}", {"priority": 500})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["revision"] == 1


def test_delete_removes_group_sets_acls_and_nothing_else(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.78.0.0/24")
    web = api.port(net["id"], labels={"app": "web"})
    api.port(net["id"], labels={"app": "db"})
    keep = create(api, selector={"app": "web"}, log={"enabled": True},
                  ingress=[{"action": "allow", "peers": [{"selector": {"app": "db"}}]}])
    doomed = create(api, selector={"app": "web"}, log={"enabled": True},
                    ingress=[{"action": "deny", "peers": [{"selector": {"app": "db"}}]}],
                    egress=[{"action": "allow", "peers": [{"selector": {}}]}])
    assert len(address_sets(nbctl, doomed["id"])) == 4

    def others() -> Any:
        return (pg(nbctl, keep["id"]), acls(nbctl, keep["id"]), address_sets(nbctl, keep["id"]),
                owned(nbctl, "Meter", kind="meter", id=api.tenant),
                owned(nbctl, "Port_Group", kind="tenant", id=api.tenant), lsp(nbctl, web["id"]))

    before = others()
    resp = api.delete(f"/v1/policies/{doomed['id']}")
    assert resp.status_code == 204 and resp.data == b""
    assert pg(nbctl, doomed["id"]) is None
    assert owned(nbctl, "Address_Set", parent=doomed["id"]) == []
    assert owned(nbctl, "ACL", parent=doomed["id"]) == []
    assert all(group_name(doomed["id"]) not in a["match"] for a in rows(nbctl, "ACL"))
    assert others() == before
    assert api.get(f"/v1/policies/{doomed['id']}").status_code == 404
    assert api.get(f"/v1/policies/{doomed['id']}/rules").status_code == 404
    assert api.delete(f"/v1/policies/{doomed['id']}").status_code == 404
    # the ports are untouched and still change the remaining policy
    assert members(nbctl, keep["id"]) == {web["id"]}


def test_if_match_on_patch_and_delete(api: Any) -> None:
    pol = create(api)
    path = f"/v1/policies/{pol['id']}"
    assert api.patch(path, {"priority": 7}, headers={"If-Match": '"9"'}).status_code == 412
    resp = api.patch(path, {"priority": 7}, headers={"If-Match": '"1"'})
    assert resp.status_code == 200 and resp.get_json()["revision"] == 2
    assert api.delete(path, headers={"If-Match": '"1"'}).status_code == 412
    assert api.delete(path, headers={"If-Match": '"2"'}).status_code == 204


def test_other_tenant_cannot_see_or_touch_a_policy(api: Any, other_api: Any,
                                                   nbctl: Any) -> None:
    pol = create(api, ingress=[{"action": "allow"}])
    before = (pg(nbctl, pol["id"]), acls(nbctl, pol["id"]))
    path = f"/v1/policies/{pol['id']}"
    for resp in (other_api.get(path), other_api.get(path + "/rules"),
                 other_api.patch(path, {"priority": 1}), other_api.delete(path)):
        assert resp.status_code == 404
    assert other_api.get("/v1/policies").get_json()["items"] == []
    assert (pg(nbctl, pol["id"]), acls(nbctl, pol["id"])) == before


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "field"), [
    ({"ingress": [{"action": "allow", "protocol": "gre"}]}, "ingress.0.protocol"),
    ({"ingress": [{"action": "allow", "protocol": "icmp", "ports": [1]}]}, "ingress.0.ports"),
    ({"egress": [{"action": "allow", "protocol": "any", "ports": [80]}]}, "egress.0.ports"),
    ({"egress": [{"action": "allow", "ports": [80]}]}, "egress.0.ports"),
    ({"ingress": [{"action": "allow", "protocol": "tcp", "ports": ["90-80"]}]},
     "ingress.0.ports.0"),
    ({"ingress": [{"action": "allow", "protocol": "tcp", "ports": [0]}]}, "ingress.0.ports.0"),
    ({"ingress": [{"action": "allow", "protocol": "tcp", "ports": [65536]}]},
     "ingress.0.ports.0"),
    ({"ingress": [{"action": "allow", "protocol": "tcp", "ports": ["0-10"]}]},
     "ingress.0.ports.0"),
    ({"ingress": [{"action": "allow", "protocol": "tcp", "ports": ["1-65536"]}]},
     "ingress.0.ports.0"),
    ({"ingress": [{"action": "allow", "protocol": "udp", "ports": [80, "x"]}]},
     "ingress.0.ports.1"),
    ({"ingress": [{"action": "allow", "protocol": "tcp", "ports": [True]}]},
     "ingress.0.ports.0"),
    ({"ingress": [{"action": "allow", "protocol": "tcp", "ports": [-1]}]}, "ingress.0.ports.0"),
    ({"ingress": [{"action": "allow", "protocol": "tcp", "ports": []}]}, "ingress.0.ports"),
    ({"ingress": [{"action": "allow", "peers": [{"cidr": "10.0.0.1/24"}]}]},
     "ingress.0.peers.0.cidr"),
    ({"ingress": [{"action": "allow", "peers": [{"cidr": "300.0.0.0/8"}]}]},
     "ingress.0.peers.0.cidr"),
    ({"egress": [{"action": "allow", "peers": [{"cidr": "10.0.0.0/8"}, {"cidr": "nope"}]}]},
     "egress.0.peers.1.cidr"),
    ({"ingress": [{"action": "allow", "peers": [{"cidr": "10.0.0.0/8",
                                                 "selector": {"a": "b"}}]}]},
     "ingress.0.peers.0"),
    ({"ingress": [{"action": "allow", "peers": [{}]}]}, "ingress.0.peers.0"),
    ({"ingress": [{"action": "allow", "peers": [{"network": "not-a-uuid"}]}]},
     "ingress.0.peers.0.network"),
    ({"ingress": [{"action": "allow", "peers": [{"port": MISSING}]}]},
     "ingress.0.peers.0.port"),
    ({"ingress": [{"action": "reject"}]}, "ingress.0.action"),
    ({"ingress": [{"protocol": "tcp"}]}, "ingress.0.action"),
    ({"ingress": [{"action": "allow", "colour": "red"}]}, "ingress.0.colour"),
    ({"priority": -1}, "priority"),
    ({"priority": 1001}, "priority"),
    ({"priority": "high"}, "priority"),
    ({"priority": 10.5}, "priority"),
    ({"log": {"enabled": True, "severity": "critical"}}, "log.severity"),
    ({"log": {"enabled": True, "colour": "red"}}, "log.colour"),
    ({"networks": ["not-a-uuid"]}, "networks.0"),
    ({"selector": {"app": "x y"}}, "selector"),
    ({"status": {"selected_ports": 5}}, "status"),
    ({"stateful": "maybe"}, "stateful"),
])
def test_create_validation_names_the_field(api: Any, nbctl: Any, body: dict[str, Any],
                                           field: str) -> None:
    resp = api.post("/v1/policies", {"name": unique("bad"), **body})
    assert resp.status_code == 400, resp.get_json()
    errors = _errors(resp)
    assert any(k == field or k.startswith(field + ".") for k in errors), errors
    assert api.get("/v1/policies").get_json()["items"] == []
    assert owned(nbctl, "Port_Group", kind="policy", tenant=api.tenant) == []


@pytest.mark.parametrize("value", [1, 80, 65535, "65535", "1-1", "1-65535"])
def test_edge_ports_are_accepted(api: Any, value: Any) -> None:
    pol = create(api, ingress=[{"action": "allow", "protocol": "tcp", "ports": [value]}])
    assert pol["ingress"][0]["ports"] in ([value], [int(str(value).split("-")[0])])


@pytest.mark.parametrize(("patch", "field"), [
    ({"priority": 2000}, "priority"),
    ({"ingress": [{"action": "allow", "protocol": "icmp", "ports": [7]}]}, "ingress.0.ports"),
    ({"log": {"severity": "loud"}}, "log.severity"),
    ({"selector": {"bad key": "x"}}, "selector"),
    ({"status": {"selected_ports": 1}}, "status"),
])
def test_patch_validation_names_the_field_and_changes_nothing(
        api: Any, nbctl: Any, patch: dict[str, Any], field: str) -> None:
    pol = create(api, ingress=[{"action": "allow"}])
    before = acls(nbctl, pol["id"])
    resp = api.patch(f"/v1/policies/{pol['id']}", patch)
    assert resp.status_code == 400, resp.get_json()
    errors = _errors(resp)
    assert any(k == field or k.startswith(field + ".") for k in errors), errors
    assert acls(nbctl, pol["id"]) == before
    assert api.get(f"/v1/policies/{pol['id']}").get_json()["revision"] == 1


def test_references_to_another_tenants_network_are_404_naming_the_field(
        api: Any, other_api: Any, nbctl: Any) -> None:
    theirs = other_api.network(cidr="10.79.0.0/24")
    cases = [
        ({"networks": [theirs["id"]]}, "networks.0"),
        ({"ingress": [{"action": "allow", "peers": [{"network": theirs["id"]}]}]},
         "ingress.0.peers.0.network"),
        ({"egress": [{"action": "deny", "peers": [{"cidr": "10.0.0.0/8"},
                                                  {"network": theirs["id"]}]}]},
         "egress.0.peers.1.network"),
        ({"networks": [MISSING]}, "networks.0"),
        ({"ingress": [{"action": "allow", "peers": [{"network": MISSING}]}]},
         "ingress.0.peers.0.network"),
    ]
    for body, field in cases:
        resp = api.post("/v1/policies", {"name": unique("ref"), **body})
        assert resp.status_code == 404, (body, resp.get_json())
        assert field in _errors(resp), (field, resp.get_json())
    mine = api.network(cidr="10.79.0.0/24")
    pol = create(api, networks=[mine["id"]])
    resp = api.patch(f"/v1/policies/{pol['id']}", {"networks": [mine["id"], theirs["id"]]})
    assert resp.status_code == 404
    assert "networks.1" in _errors(resp)
    assert api.get("/v1/policies").get_json()["items"] == [
        api.get(f"/v1/policies/{pol['id']}").get_json()]
    assert len(owned(nbctl, "Port_Group", kind="policy", tenant=api.tenant)) == 1


@pytest.mark.parametrize("where", ["networks", "peer"])
def test_deleting_a_referenced_network_leaves_no_dangling_reference(api: Any,
                                                                    where: str) -> None:
    """Either the network delete is refused while a policy names it, or the policy stops
    naming it: a policy must never be left un-patchable by a reference the user did not send."""
    net = api.network(cidr="10.81.0.0/24")
    body = ({"networks": [net["id"]]} if where == "networks" else
            {"ingress": [{"action": "allow", "peers": [{"network": net["id"]}]}]})
    pol = create(api, **body)
    deleted = api.delete(f"/v1/networks/{net['id']}")
    assert deleted.status_code in (204, 409), deleted.get_json()
    if deleted.status_code == 409:
        assert pol["name"] in deleted.get_json()["detail"]
        assert api.get(f"/v1/networks/{net['id']}").status_code == 200
        assert api.delete(f"/v1/networks/{net['id']}?cascade=true").status_code == 409
        unrelated = api.patch(f"/v1/policies/{pol['id']}", {"description": "still fine"})
        assert unrelated.status_code == 200, unrelated.get_json()
        # once the policy stops naming it, the network goes
        resp = api.patch(f"/v1/policies/{pol['id']}",
                         {"networks": None} if where == "networks" else {"ingress": []})
        assert resp.status_code == 200, resp.get_json()
        assert api.delete(f"/v1/networks/{net['id']}").status_code == 204
        return
    resp = api.patch(f"/v1/policies/{pol['id']}", {"description": "unrelated change"})
    assert resp.status_code == 200, resp.get_json()
    assert net["id"] not in resp.get_data(as_text=True)


@pytest.mark.parametrize("evil", ['a"b', "a$b", "a@b", "a||b", "a b", "a&&b", "x==1", "a)"])
def test_match_syntax_in_labels_and_names_is_rejected(api: Any, evil: str) -> None:
    for body, field in [
        ({"name": evil}, "name"),
        ({"selector": {"app": evil}}, "selector"),
        ({"selector": {evil: "x"}}, "selector"),
        ({"ingress": [{"action": "allow", "peers": [{"selector": {"app": evil}}]}]},
         "ingress.0.peers.0.selector"),
        ({"ingress": [{"action": "allow", "peers": [{"cidr": f"10.0.0.0/8{evil}"}]}]},
         "ingress.0.peers.0.cidr"),
        ({"ingress": [{"action": "allow", "protocol": "tcp", "ports": [f"80{evil}"]}]},
         "ingress.0.ports.0"),
        ({"ingress": [{"action": "allow", "protocol": f"tcp{evil}"}]}, "ingress.0.protocol"),
    ]:
        resp = api.post("/v1/policies", {"name": unique("inj"), **body})
        assert resp.status_code == 400, (body, resp.get_json())
        assert any(k == field or k.startswith(field + ".") for k in _errors(resp)), (
            body, resp.get_json())
    assert api.get("/v1/policies").get_json()["items"] == []


def test_free_text_never_reaches_a_match(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.80.0.0/24", description='"; $x @y || 1 == 1')
    api.port(net["id"], labels={"app": "mysql"}, description='" || @pg')
    pol = create(api, description='outport == @x || "q" $set',
                 labels={"app.example.com/team": "a.b_c-d"},
                 selector={"app.example.com/team": "a.b_c-d"},
                 ingress=[{"action": "allow", "protocol": "tcp", "ports": ["1-65535"],
                           "peers": [{"selector": {"app": "mysql"}}, {"cidr": "fd00::/8"},
                                     {"network": net["id"]}]}],
                 egress=[{"action": "deny", "protocol": "icmp"}])
    for acl in acls(nbctl, pol["id"]):
        assert only_generated_tokens(acl["match"]), acl["match"]
        # (letters outside a-f: these cannot hide inside a generated hex name)
        for text in ("team", "a.b_c-d", "mysql", "app", '"', "$x", "@x", "@y", "@pg"):
            assert text not in acl["match"]


# -- quota -------------------------------------------------------------------------------------


def test_policy_quota_is_409(api: Any, admin_api: Any, nbctl: Any) -> None:
    resp = admin_api.patch(f"/v1/tenants/{api.tenant}/quotas", {"policies": 2})
    assert resp.status_code == 200, resp.get_json()
    create(api)
    create(api)
    resp = api.post("/v1/policies", {"name": unique("pol")})
    assert resp.status_code == 409
    body = resp.get_json()
    assert "quota" in body["detail"] and "policies" in body["detail"]
    assert len(owned(nbctl, "Port_Group", kind="policy", tenant=api.tenant)) == 2
    first = api.get("/v1/policies").get_json()["items"][0]
    assert api.delete(f"/v1/policies/{first['id']}").status_code == 204
    create(api)

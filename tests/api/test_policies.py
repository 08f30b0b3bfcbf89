"""Policies: the HTTP resource and the Port_Group / Address_Set / ACL / Meter rows behind it."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from gateway.services.policy_compiler import selector_key

from helpers.api import ApiClient, unique
from helpers.matchtokens import only_generated_tokens
from helpers.nb import PREFIX, _decode, as_list, lsp, owned, owned_one, rows
from helpers.problems import errors_of, names_field
from helpers.waiting import wait_until

MISSING = "00000000-0000-4000-8000-000000000000"
DB = {"app": "db"}
WEB = {"app": "web"}
CACHE = {"app": "cache"}

# -- helpers ---------------------------------------------------------------------------------


def create(api: Any, **fields: Any) -> dict[str, Any]:
    resp = api.post("/v1/policies", {"name": fields.pop("name", None) or unique("pol"),
                                     **fields})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def group_name(policy_id: str) -> str:
    return "ovngw_p" + policy_id.replace("-", "")


def pg(nbctl: Any, policy_id: str) -> dict[str, Any] | None:
    return owned_one(nbctl, "Port_Group", kind="policy", id=policy_id)


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


_SET_NAME = re.compile(r"ovngw_s([0-9a-f]{20})_ip([46])")
_SET_REF = re.compile(r"\$(ovngw_s[0-9a-f]{20}_ip[46])(?![A-Za-z0-9_])")


def set_name(tenant: str, selector: dict[str, str], family: int = 4) -> str:
    """The shared peer set of (tenant, selector); the key itself is pinned in the unit tests."""
    return f"ovngw_s{selector_key(tenant, selector)}_ip{family}"


def _check_peer_set(row: dict[str, Any], tenant: str) -> None:
    """A shared peer set: named by its key, stamped kind/id/parent/tenant, no policy parent."""
    found = _SET_NAME.fullmatch(row["name"])
    assert found, row["name"]
    key, family = found.groups()
    ids = row["external_ids"]
    assert ids[PREFIX + "kind"] == "policy-peers", ids
    assert ids[PREFIX + "id"] == f"{key}/{family}", ids
    assert ids[PREFIX + "parent"] == key, ids
    assert ids[PREFIX + "tenant"] == tenant, ids
    for ip in as_list(row["addresses"]):
        assert (":" in ip) == (family == "6"), (row["name"], ip)


def set_rows(nbctl: Any, tenant: str) -> dict[str, dict[str, Any]]:
    """Every peer set row of the tenant, by name."""
    found = owned(nbctl, "Address_Set", kind="policy-peers", tenant=tenant)
    for row in found:
        _check_peer_set(row, tenant)
    by_name = {r["name"]: r for r in found}
    assert len(by_name) == len(found), found
    return by_name


def tenant_sets(nbctl: Any, tenant: str) -> dict[str, list[str]]:
    """Every peer set of the tenant: name -> sorted addresses."""
    return {name: sorted(as_list(r["addresses"])) for name, r in set_rows(nbctl, tenant).items()}


def pair(nbctl: Any, tenant: str, selector: dict[str, str]) -> dict[int, dict[str, Any]]:
    """The two rows (by family) of the shared set pair of (tenant, selector); {} if absent."""
    key = selector_key(tenant, selector)
    found = owned(nbctl, "Address_Set", kind="policy-peers", parent=key)
    for row in found:
        _check_peer_set(row, tenant)
    by_family = {int(r["name"][-1]): r for r in found}
    assert len(found) in (0, 2) and len(by_family) == len(found), found
    for family in (4, 6):
        # nothing else in the database has the name (a foreign row would shadow ours)
        assert len(rows(nbctl, "Address_Set", f"name={set_name(tenant, selector, family)}")) \
            == (1 if found else 0)
    return by_family


def address_sets(nbctl: Any, policy_id: str) -> dict[str, list[str]]:
    """The peer sets the policy's ACLs reference, name -> sorted addresses. Every one of them
    must exist, as a shared peer set of the policy's tenant."""
    group = pg(nbctl, policy_id)
    assert group is not None
    tenant = group["external_ids"][PREFIX + "tenant"]
    names = {n for a in acls(nbctl, policy_id) for n in _SET_REF.findall(a["match"])}
    out = {}
    for name in names:
        found = rows(nbctl, "Address_Set", f"name={name}")
        assert len(found) == 1, f"{name} is referenced by policy {policy_id} but missing"
        _check_peer_set(found[0], tenant)
        out[name] = sorted(as_list(found[0]["addresses"]))
    return out


def peer_set(nbctl: Any, policy: dict[str, Any], selector: dict[str, str],
             family: int = 4) -> list[str]:
    """The addresses of the set the policy uses for the selector."""
    name = set_name(policy["tenant_id"], selector, family)
    sets = address_sets(nbctl, policy["id"])
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
    assert "egress" not in pol  # absent stays absent: not isolated for egress
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
    lb4, lb6 = set_name(api.tenant, {"app": "lb"}, 4), set_name(api.tenant, {"app": "lb"}, 6)
    by_rule = acl_by_rule(nbctl, pol["id"])
    assert set(by_rule) == {"ingress/0", "ingress/1", "ingress/default", "ingress/infra",
                            "egress/0", "egress/default", "egress/infra"}
    expected = {
        "ingress/0": ("to-lport", rule_priority(100, "allow"), "allow-related",
                      f"outport == @{gid} && ip && (ip4.src == 192.168.0.0/16 || "
                      f"ip4.src == 10.61.0.0/24 || ip6.src == fd00:61::/64 || "
                      f"ip4.src == ${lb4} || ip6.src == ${lb6}) && "
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
    assert view["address_sets"] == {set_name(api.tenant, {"app": "db"}, 4): db["ips"],
                                    set_name(api.tenant, {"app": "db"}, 6): []}
    assert tenant_sets(nbctl, api.tenant) == view["address_sets"]
    from_ovn = [{"direction": a["direction"], "priority": a["priority"], "match": a["match"],
                 "action": a["action"], "label": a["label"],
                 "name": as_list(a["name"])[0], "log": a["log"],
                 "severity": (as_list(a["severity"]) or [None])[0],
                 "rule": a["external_ids"][PREFIX + "rule"]} for a in acls(nbctl, pol["id"])]
    assert view["acls"] == from_ovn
    assert len(view["acls"]) == 6
    # every rule's ACL carries its own non-zero conntrack label
    labels = [a["label"] for a in view["acls"]]
    assert all(labels) and len(set(labels)) == len(labels)
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
    assert "ingress" not in only_egress
    nothing = create(api)
    assert acls(nbctl, nothing["id"]) == []
    assert pg(nbctl, nothing["id"]) is not None
    assert "ingress" not in nothing and "egress" not in nothing


def test_default_deny_as_kubernetes_writes_it(api: Any, nbctl: Any) -> None:
    """An explicitly empty ingress list isolates ingress with nothing allowed; the absent
    egress does not isolate egress; the stored policy keeps the difference."""
    net = api.network(cidr="10.90.0.0/24")
    port = api.port(net["id"])
    pol = create(api, selector={}, ingress=[])
    assert pol["ingress"] == [] and "egress" not in pol, pol
    assert pol["status"] == {"selected_ports": 1}
    assert api.get(f"/v1/policies/{pol['id']}").get_json() == pol
    group = group_name(pol["id"])
    by_rule = acl_by_rule(nbctl, pol["id"])
    assert set(by_rule) == {"ingress/default", "ingress/infra"}, by_rule
    drop = by_rule["ingress/default"]
    assert (drop["direction"], drop["action"], drop["match"]) == (
        "to-lport", "drop", f"outport == @{group} && ip")
    assert members(nbctl, pol["id"]) == {port["id"]}
    rules = api.get(f"/v1/policies/{pol['id']}/rules").get_json()
    assert {a["rule"] for a in rules["acls"]} == {"ingress/default", "ingress/infra"}

    # [] for egress too: both directions isolated
    both = api.patch(f"/v1/policies/{pol['id']}", {"egress": []})
    assert both.status_code == 200, both.get_json()
    assert both.get_json()["egress"] == [] and both.get_json()["ingress"] == []
    assert set(acl_by_rule(nbctl, pol["id"])) == {"ingress/default", "ingress/infra",
                                                   "egress/default", "egress/infra"}
    # null removes the list: that direction is not isolated any more
    resp = api.patch(f"/v1/policies/{pol['id']}", {"ingress": None, "egress": None})
    assert resp.status_code == 200, resp.get_json()
    assert "ingress" not in resp.get_json() and "egress" not in resp.get_json()
    assert acls(nbctl, pol["id"]) == []
    assert owned(nbctl, "ACL", parent=pol["id"]) == []


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
    assert peer_set(nbctl, pol, DB) == [] and peer_set(nbctl, pol, DB, family=6) == []
    web = api.port(net["id"], labels={"app": "web"})
    assert members(nbctl, pol["id"]) == {web["id"]}
    assert selected(api, pol["id"]) == 1
    db = api.port(net["id"], labels={"app": "db"})
    v4 = [ip for ip in db["ips"] if ":" not in ip]
    v6 = [ip for ip in db["ips"] if ":" in ip]
    assert len(v4) == 1 and len(v6) == 1
    assert peer_set(nbctl, pol, DB) == v4
    assert peer_set(nbctl, pol, DB, family=6) == v6
    assert members(nbctl, pol["id"]) == {web["id"]}


def test_relabelling_moves_a_port(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.64.0.0/24")
    pol = create(api, selector={"app": "web"},
                 ingress=[{"action": "allow", "peers": [{"selector": {"app": "db"}}]}])
    port = api.port(net["id"], labels={"app": "db"})
    assert members(nbctl, pol["id"]) == set()
    assert peer_set(nbctl, pol, DB) == port["ips"]
    resp = api.patch(f"/v1/ports/{port['id']}", {"labels": {"app": "web"}})
    assert resp.status_code == 200, resp.get_json()
    assert members(nbctl, pol["id"]) == {port["id"]}
    assert peer_set(nbctl, pol, DB) == []
    assert selected(api, pol["id"]) == 1
    resp = api.patch(f"/v1/ports/{port['id']}", {"labels": {"app": None}})
    assert resp.status_code == 200, resp.get_json()
    assert members(nbctl, pol["id"]) == set()
    assert peer_set(nbctl, pol, DB) == []
    assert selected(api, pol["id"]) == 0
    resp = api.patch(f"/v1/ports/{port['id']}", {"labels": {"app": "db"}})
    assert resp.status_code == 200, resp.get_json()
    assert peer_set(nbctl, pol, DB) == port["ips"]


def test_readdressing_a_port_updates_peer_sets(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.65.0.0/24")
    pol = create(api, ingress=[{"action": "allow", "peers": [{"selector": {"app": "db"}}]}])
    db = api.port(net["id"], labels={"app": "db"})
    keep = api.port(net["id"], labels={"app": "db"})
    assert peer_set(nbctl, pol, DB) == sorted([*db["ips"], *keep["ips"]])
    resp = api.patch(f"/v1/ports/{db['id']}", {"ips": ["10.65.0.77"]})
    assert resp.status_code == 200, resp.get_json()
    assert peer_set(nbctl, pol, DB) == sorted(["10.65.0.77", *keep["ips"]])


def test_deleting_a_port_removes_it(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.66.0.0/24")
    pol = create(api, selector={"app": "web"},
                 egress=[{"action": "allow", "peers": [{"selector": {"app": "web"}}]}])
    web1 = api.port(net["id"], labels={"app": "web"})
    web2 = api.port(net["id"], labels={"app": "web"})
    assert members(nbctl, pol["id"]) == {web1["id"], web2["id"]}
    assert peer_set(nbctl, pol, WEB) == sorted([*web1["ips"], *web2["ips"]])
    assert api.delete(f"/v1/ports/{web1['id']}").status_code == 204
    assert members(nbctl, pol["id"]) == {web2["id"]}
    assert peer_set(nbctl, pol, WEB) == web2["ips"]
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
    assert peer_set(nbctl, pol, DB) == kept["ips"]
    assert selected(api, pol["id"]) == 1


def test_same_ip_in_two_networks_stays_while_one_port_has_it(api: Any, nbctl: Any) -> None:
    net1 = api.network(cidr="10.69.0.0/24")
    net2 = api.network(cidr="10.69.0.0/24")
    pol = create(api, ingress=[{"action": "allow", "peers": [{"selector": {"app": "db"}}]}])
    first = api.port(net1["id"], labels={"app": "db"})
    second = api.port(net2["id"], labels={"app": "db"})
    third = api.port(net2["id"], labels={"app": "db"})
    assert first["ips"] == second["ips"]
    assert peer_set(nbctl, pol, DB) == sorted({*first["ips"], *third["ips"]})
    # deleting one holder keeps the address
    assert api.delete(f"/v1/ports/{first['id']}").status_code == 204
    assert peer_set(nbctl, pol, DB) == sorted({*second["ips"], *third["ips"]})
    # relabelling the other holder away removes it
    resp = api.patch(f"/v1/ports/{second['id']}", {"labels": {"app": "web"}})
    assert resp.status_code == 200, resp.get_json()
    assert peer_set(nbctl, pol, DB) == third["ips"]


def test_same_ip_relabel_keeps_the_address_of_the_other_holder(api: Any, nbctl: Any) -> None:
    net1 = api.network(cidr="10.70.0.0/24")
    net2 = api.network(cidr="10.70.0.0/24")
    pol = create(api, ingress=[{"action": "allow", "peers": [{"selector": {"app": "db"}}]}])
    first = api.port(net1["id"], labels={"app": "db"})
    second = api.port(net2["id"], labels={"app": "db"})
    assert first["ips"] == second["ips"]
    resp = api.patch(f"/v1/ports/{first['id']}", {"labels": {"app": "web"}})
    assert resp.status_code == 200, resp.get_json()
    assert peer_set(nbctl, pol, DB) == second["ips"]


def test_same_ip_survives_cascade_delete_of_the_other_network(api: Any, nbctl: Any) -> None:
    doomed = api.network(cidr="10.83.0.0/24")
    stays = api.network(cidr="10.83.0.0/24")
    pol = create(api, selector={"app": "db"},
                 egress=[{"action": "allow", "peers": [{"selector": {"app": "db"}}]}])
    gone = api.port(doomed["id"], labels={"app": "db"})
    kept = api.port(stays["id"], labels={"app": "db"})
    assert gone["ips"] == kept["ips"]
    assert peer_set(nbctl, pol, DB) == kept["ips"]
    assert api.delete(f"/v1/networks/{doomed['id']}?cascade=true").status_code == 204
    assert peer_set(nbctl, pol, DB) == kept["ips"]
    assert members(nbctl, pol["id"]) == {kept["id"]}


def test_ports_created_before_the_policy_are_picked_up(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.71.0.0/24")
    web = api.port(net["id"], labels={"app": "web"})
    db = api.port(net["id"], labels={"app": "db"})
    pol = create(api, selector={"app": "web"},
                 ingress=[{"action": "allow", "peers": [{"selector": {"app": "db"}}]}])
    assert pol["status"]["selected_ports"] == 1
    assert members(nbctl, pol["id"]) == {web["id"]}
    assert peer_set(nbctl, pol, DB) == db["ips"]


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
    assert peer_set(nbctl, pol, {}) == sorted(ip for p in mine for ip in p["ips"])
    later_theirs = other_api.port(theirs_net["id"], labels={"app": "db"})
    later_mine = api.port(net1["id"], labels={"anything": "x"})
    assert members(nbctl, pol["id"]) == {p["id"] for p in [*mine, later_mine]}
    ips = peer_set(nbctl, pol, {})
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
    assert len(peer_set(nbctl, pol, WEB)) == 2
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
    cache4, cache6 = set_name(api.tenant, CACHE, 4), set_name(api.tenant, CACHE, 6)
    # the old selector's pair (app=db) is gone; the new one (app=cache) holds cache
    assert address_sets(nbctl, pol["id"]) == {cache4: cache["ips"], cache6: []}
    assert tenant_sets(nbctl, api.tenant) == {cache4: cache["ips"], cache6: []}
    assert pair(nbctl, api.tenant, DB) == {}
    by_rule = acl_by_rule(nbctl, pol["id"])
    assert set(by_rule) == {"ingress/0", "ingress/1", "ingress/default", "ingress/infra"}
    assert by_rule["ingress/0"]["action"] == "drop"
    assert by_rule["ingress/0"]["priority"] == rule_priority(10, "deny")
    assert by_rule["ingress/1"]["match"] == (
        f"outport == @{gid} && ip && (ip4.src == ${cache4} || "
        f"ip6.src == ${cache6}) && udp && ((udp.dst >= 1000 && udp.dst <= 2000))")
    assert not old_acls & {a["_uuid"] for a in acls(nbctl, pol["id"])}
    # no ACL of the policy is left behind outside its group
    assert len(owned(nbctl, "ACL", parent=pol["id"])) == 4
    assert web["id"] not in members(nbctl, pol["id"])


def test_patch_peer_selector_in_place_and_rename(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.82.0.0/24")
    db = api.port(net["id"], labels={"app": "db"})
    cache = api.port(net["id"], labels={"app": "cache"})
    pol = create(api, ingress=[{"action": "allow", "peers": [{"selector": {"app": "db"}}]}])
    assert peer_set(nbctl, pol, DB) == db["ips"]
    new_name = unique("renamed")
    resp = api.patch(f"/v1/policies/{pol['id']}", {
        "name": new_name,
        "ingress": [{"action": "allow", "peers": [{"selector": {"app": "cache"}}]}]})
    assert resp.status_code == 200, resp.get_json()
    assert peer_set(nbctl, pol, CACHE) == cache["ips"]
    assert len(address_sets(nbctl, pol["id"])) == 2
    # no other policy used the old selector: its pair is gone
    assert pair(nbctl, api.tenant, DB) == {}
    assert set(tenant_sets(nbctl, api.tenant)) == {set_name(api.tenant, CACHE, f)
                                                   for f in (4, 6)}
    assert {as_list(a["name"])[0] for a in acls(nbctl, pol["id"])} == {
        f"{api.tenant}/{new_name}"}
    # the new peer set keeps following the ports
    later = api.port(net["id"], labels={"app": "cache"})
    assert peer_set(nbctl, pol, CACHE) == sorted([*cache["ips"], *later["ips"]])


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
    assert len(tenant_sets(nbctl, api.tenant)) == 2
    resp = api.patch(f"/v1/policies/{pol['id']}", {"ingress": None})
    assert resp.status_code == 200, resp.get_json()
    assert "ingress" not in resp.get_json()
    assert acls(nbctl, pol["id"]) == []
    assert address_sets(nbctl, pol["id"]) == {}
    assert tenant_sets(nbctl, api.tenant) == {}
    assert owned(nbctl, "ACL", parent=pol["id"]) == []


def test_patch_to_an_empty_rule_list_keeps_the_direction_isolated(api: Any,
                                                                  nbctl: Any) -> None:
    pol = create(api, ingress=[{"action": "allow", "peers": [{"selector": {"a": "b"}}]}])
    resp = api.patch(f"/v1/policies/{pol['id']}", {"ingress": []})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["ingress"] == []
    assert set(acl_by_rule(nbctl, pol["id"])) == {"ingress/default", "ingress/infra"}
    assert address_sets(nbctl, pol["id"]) == {}  # the peer set went with the rule
    assert tenant_sets(nbctl, api.tenant) == {}


def test_rename_to_a_taken_name_is_409_and_changes_nothing(api: Any, other_api: Any,
                                                           nbctl: Any) -> None:
    first = create(api, ingress=[{"action": "allow", "peers": [{"selector": DB}]}])
    second = create(api, egress=[{"action": "deny"}])
    before = (acls(nbctl, second["id"]), tenant_sets(nbctl, api.tenant))
    resp = api.patch(f"/v1/policies/{second['id']}", {"name": first["name"],
                                                      "priority": 9})
    assert resp.status_code == 409, resp.get_json()
    assert "name" in errors_of(resp)
    assert api.get(f"/v1/policies/{second['id']}").get_json() == second
    assert (acls(nbctl, second["id"]), tenant_sets(nbctl, api.tenant)) == before
    names = [p["name"] for p in api.get("/v1/policies").get_json()["items"]]
    assert sorted(names) == sorted([first["name"], second["name"]])
    resp = api.post("/v1/policies", {"name": first["name"]})
    assert resp.status_code == 409, resp.get_json()
    # the same name in another tenant is fine, and so is renaming to a free name
    assert other_api.post("/v1/policies", {"name": first["name"]}).status_code == 201
    renamed = api.patch(f"/v1/policies/{second['id']}", {"name": unique("free")})
    assert renamed.status_code == 200, renamed.get_json()


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
    # app=db is shared with `keep`; {} is doomed's alone
    assert len(address_sets(nbctl, doomed["id"])) == 4
    assert set(address_sets(nbctl, keep["id"])) < set(address_sets(nbctl, doomed["id"]))
    assert len(tenant_sets(nbctl, api.tenant)) == 4

    def tenant_group() -> dict[str, Any]:
        """The tenant's port group, but for its write-lock counter: policy writes take the
        tenant lock (the peer sets are shared), so that counter moves."""
        (group,) = owned(nbctl, "Port_Group", kind="tenant", id=api.tenant)
        ids = {k: v for k, v in group["external_ids"].items() if k != PREFIX + "lock"}
        return {**group, "external_ids": ids}

    def others() -> Any:
        return (pg(nbctl, keep["id"]), acls(nbctl, keep["id"]), address_sets(nbctl, keep["id"]),
                owned(nbctl, "Meter", kind="meter", id=api.tenant), tenant_group(),
                lsp(nbctl, web["id"]))

    before = others()
    resp = api.delete(f"/v1/policies/{doomed['id']}")
    assert resp.status_code == 204 and resp.data == b""
    assert pg(nbctl, doomed["id"]) is None
    assert owned(nbctl, "Address_Set", parent=doomed["id"]) == []
    assert pair(nbctl, api.tenant, {}) == {}
    assert tenant_sets(nbctl, api.tenant) == address_sets(nbctl, keep["id"])
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


# -- peer sets shared per tenant and selector -------------------------------------------------


def _split(ips: list[str]) -> tuple[list[str], list[str]]:
    return sorted(ip for ip in ips if ":" not in ip), sorted(ip for ip in ips if ":" in ip)


def uuids(nbctl: Any, tenant: str, selector: dict[str, str]) -> dict[int, str]:
    return {family: row["_uuid"] for family, row in pair(nbctl, tenant, selector).items()}


def test_policies_with_one_peer_selector_share_one_set_pair(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.100.0.0/24", ipv6_cidr="fd00:100::/64")
    db = api.port(net["id"], labels=DB)
    first = create(api, selector=WEB, ingress=[{"action": "allow", "peers": [{"selector": DB}]}])
    # the same selector twice in one policy, in both directions, next to other peers
    second = create(api, selector={"app": "lb"}, priority=7,
                    ingress=[{"action": "allow", "peers": [{"selector": DB}]}],
                    egress=[{"action": "deny", "protocol": "tcp", "ports": [22],
                             "peers": [{"cidr": "10.0.0.0/8"}, {"selector": DB}]}])
    v4, v6 = _split(db["ips"])
    assert len(v4) == 1 and len(v6) == 1
    name4, name6 = set_name(api.tenant, DB, 4), set_name(api.tenant, DB, 6)
    expected = {name4: v4, name6: v6}
    assert address_sets(nbctl, first["id"]) == expected
    assert address_sets(nbctl, second["id"]) == expected
    # one pair of rows for the tenant, not one per policy, rule or peer
    assert tenant_sets(nbctl, api.tenant) == expected
    assert len(owned(nbctl, "Address_Set", kind="policy-peers", tenant=api.tenant)) == 2
    assert set(pair(nbctl, api.tenant, DB)) == {4, 6}
    assert owned(nbctl, "Address_Set", parent=first["id"]) == []
    assert owned(nbctl, "Address_Set", parent=second["id"]) == []
    for pol in (first, second):
        view = api.get(f"/v1/policies/{pol['id']}/rules").get_json()
        assert view["address_sets"] == expected
    rules = acl_by_rule(nbctl, second["id"])
    assert rules["ingress/0"]["match"].endswith(f"(ip4.src == ${name4} || ip6.src == ${name6})")
    assert f"ip4.dst == ${name4} || ip6.dst == ${name6}" in rules["egress/0"]["match"]
    # a later port joins the one pair, and both policies see it
    later = api.port(net["id"], labels=DB)
    later4, later6 = _split(later["ips"])
    expected = {name4: sorted([*v4, *later4]), name6: sorted([*v6, *later6])}
    assert address_sets(nbctl, first["id"]) == address_sets(nbctl, second["id"]) == expected
    assert tenant_sets(nbctl, api.tenant) == expected


def test_deleting_one_sharer_keeps_the_set_and_the_last_removes_it(api: Any,
                                                                  nbctl: Any) -> None:
    net = api.network(cidr="10.101.0.0/24")
    db = api.port(net["id"], labels=DB)
    first = create(api, ingress=[{"action": "allow", "peers": [{"selector": DB}]}])
    second = create(api, egress=[{"action": "allow", "peers": [{"selector": DB}]}])
    rows_before = uuids(nbctl, api.tenant, DB)
    expected = {set_name(api.tenant, DB, 4): db["ips"], set_name(api.tenant, DB, 6): []}
    assert tenant_sets(nbctl, api.tenant) == expected

    assert api.delete(f"/v1/policies/{first['id']}").status_code == 204
    # kept as it was: same rows, same addresses
    assert uuids(nbctl, api.tenant, DB) == rows_before
    assert tenant_sets(nbctl, api.tenant) == expected
    assert address_sets(nbctl, second["id"]) == expected
    assert api.get(f"/v1/policies/{second['id']}/rules").get_json()["address_sets"] == expected
    # and it still follows the ports
    later = api.port(net["id"], labels=DB)
    assert peer_set(nbctl, second, DB) == sorted([*db["ips"], *later["ips"]])

    assert api.delete(f"/v1/policies/{second['id']}").status_code == 204
    assert pair(nbctl, api.tenant, DB) == {}
    assert tenant_sets(nbctl, api.tenant) == {}
    # port writes without a set to keep are fine
    api.port(net["id"], labels=DB)
    assert tenant_sets(nbctl, api.tenant) == {}
    # the next policy with the selector gets a new pair holding the current addresses
    third = create(api, ingress=[{"action": "deny", "peers": [{"selector": DB}]}])
    ips = sorted(ip for p in api.get(f"/v1/networks/{net['id']}/ports").get_json()["items"]
                 for ip in p["ips"])
    assert len(ips) == 3
    assert peer_set(nbctl, third, DB) == ips
    assert set(uuids(nbctl, api.tenant, DB).values()).isdisjoint(rows_before.values())


def test_patch_to_another_peer_selector_drops_the_old_set_only_when_unused(
        api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.102.0.0/24")
    db = api.port(net["id"], labels=DB)
    cache = api.port(net["id"], labels=CACHE)
    first = create(api, ingress=[{"action": "allow", "peers": [{"selector": DB}]}])
    second = create(api, egress=[{"action": "allow", "peers": [{"selector": DB}]}])
    db_rows = uuids(nbctl, api.tenant, DB)
    db_sets = {set_name(api.tenant, DB, 4): db["ips"], set_name(api.tenant, DB, 6): []}
    cache_sets = {set_name(api.tenant, CACHE, 4): cache["ips"],
                  set_name(api.tenant, CACHE, 6): []}

    # first moves to app=cache: a new pair; app=db stays for second, untouched
    resp = api.patch(f"/v1/policies/{first['id']}",
                     {"ingress": [{"action": "allow", "peers": [{"selector": CACHE}]}]})
    assert resp.status_code == 200, resp.get_json()
    assert address_sets(nbctl, first["id"]) == cache_sets
    assert address_sets(nbctl, second["id"]) == db_sets
    assert uuids(nbctl, api.tenant, DB) == db_rows
    assert tenant_sets(nbctl, api.tenant) == {**db_sets, **cache_sets}
    cache_rows = uuids(nbctl, api.tenant, CACHE)

    # second moves too: app=db has no user left and goes; app=cache is reused as it is
    resp = api.patch(f"/v1/policies/{second['id']}",
                     {"egress": [{"action": "allow", "peers": [{"selector": CACHE}]}]})
    assert resp.status_code == 200, resp.get_json()
    assert pair(nbctl, api.tenant, DB) == {}
    assert uuids(nbctl, api.tenant, CACHE) == cache_rows
    assert address_sets(nbctl, second["id"]) == cache_sets
    assert tenant_sets(nbctl, api.tenant) == cache_sets

    # moving the selector to another rule and direction, or changing other fields, keeps it
    resp = api.patch(f"/v1/policies/{first['id']}", {
        "priority": 3, "selector": WEB, "ingress": [{"action": "deny"}],
        "egress": [{"action": "deny", "protocol": "udp", "peers": [{"selector": CACHE}]}]})
    assert resp.status_code == 200, resp.get_json()
    assert uuids(nbctl, api.tenant, CACHE) == cache_rows
    assert tenant_sets(nbctl, api.tenant) == cache_sets

    # a policy taking app=db back gets a fresh pair with the current addresses
    resp = api.patch(f"/v1/policies/{second['id']}", {"egress": [
        {"action": "allow", "peers": [{"selector": CACHE}, {"selector": DB}]}]})
    assert resp.status_code == 200, resp.get_json()
    assert address_sets(nbctl, second["id"]) == {**db_sets, **cache_sets}
    assert tenant_sets(nbctl, api.tenant) == {**db_sets, **cache_sets}

    # dropping one of its two selectors while the other policy still uses that one
    resp = api.patch(f"/v1/policies/{second['id']}",
                     {"egress": [{"action": "allow", "peers": [{"selector": DB}]}]})
    assert resp.status_code == 200, resp.get_json()
    assert uuids(nbctl, api.tenant, CACHE) == cache_rows
    assert address_sets(nbctl, first["id"]) == cache_sets
    assert address_sets(nbctl, second["id"]) == db_sets
    assert tenant_sets(nbctl, api.tenant) == {**db_sets, **cache_sets}


def test_a_refused_patch_leaves_the_shared_sets_alone(api: Any, other_api: Any,
                                                      nbctl: Any) -> None:
    net = api.network(cidr="10.103.0.0/24")
    db = api.port(net["id"], labels=DB)
    pol = create(api, ingress=[{"action": "allow", "peers": [{"selector": DB}]}])
    rows_before = uuids(nbctl, api.tenant, DB)
    theirs = other_api.network(cidr="10.103.0.0/24")
    resp = api.patch(f"/v1/policies/{pol['id']}", {"ingress": [
        {"action": "allow", "peers": [{"selector": CACHE}, {"network": theirs["id"]}]}]})
    assert resp.status_code == 404, resp.get_json()
    assert uuids(nbctl, api.tenant, DB) == rows_before
    assert tenant_sets(nbctl, api.tenant) == {set_name(api.tenant, DB, 4): db["ips"],
                                              set_name(api.tenant, DB, 6): []}


def test_a_port_write_updates_a_shared_set_once(api: Any, nbctl: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.ovn.transaction import Txn
    from gateway.services import policies as service

    net = api.network(cidr="10.104.0.0/24", ipv6_cidr="fd00:104::/64")
    users = [create(api, ingress=[{"action": "allow", "peers": [{"selector": DB}]}]),
             create(api, ingress=[{"action": "allow", "peers": [{"selector": DB}]},
                                  {"action": "deny", "peers": [{"selector": DB}]}],
                    egress=[{"action": "allow", "peers": [{"selector": DB}]}]),
             create(api, selector=DB, egress=[{"action": "allow", "peers": [{"selector": DB}]}])]
    key = selector_key(api.tenant, DB)
    name4, name6 = set_name(api.tenant, DB, 4), set_name(api.tenant, DB, 6)

    # (the transaction itself, not its id: a freed attempt's id could be reused)
    reads: list[tuple[Txn, str]] = []
    rebuilds: list[tuple[Txn, str]] = []
    real_get, real_recompute = Txn.get, service._recompute

    def get(self: Txn, table: str, kind: str, resource_id: str) -> Any:
        if table == "Address_Set":
            reads.append((self, resource_id))
        return real_get(self, table, kind, resource_id)

    def recompute(t: Txn, row: Any, *args: Any) -> None:
        rebuilds.append((t, row.name))
        real_recompute(t, row, *args)

    monkeypatch.setattr(Txn, "get", get)
    monkeypatch.setattr(service, "_recompute", recompute)

    def once_each(calls: list[tuple[Txn, str]], expected: set[str]) -> None:
        """Per transaction attempt, each set of the DB pair once (both families change)."""
        per_txn: dict[int, list[str]] = {}
        for txn, what in calls:
            per_txn.setdefault(id(txn), []).append(what)
        assert per_txn, "the port write touched no peer set"
        for seen in per_txn.values():
            assert sorted(seen) == sorted(expected), calls
        calls.clear()

    def check(expected: list[str]) -> None:
        sets = {name4: _split(expected)[0], name6: _split(expected)[1]}
        for pol in users:
            assert address_sets(nbctl, pol["id"]) == sets
        assert tenant_sets(nbctl, api.tenant) == sets

    ids = {f"{key}/4", f"{key}/6"}
    port = api.port(net["id"], labels=DB)
    once_each(reads, ids)
    assert rebuilds == []
    check(port["ips"])
    other = api.port(net["id"], labels=DB)
    once_each(reads, ids)
    check([*port["ips"], *other["ips"]])
    # leaving the selector rebuilds each family of the set once, not once per policy or rule
    resp = api.patch(f"/v1/ports/{port['id']}", {"labels": WEB})
    assert resp.status_code == 200, resp.get_json()
    once_each(reads, ids)
    once_each(rebuilds, {name4, name6})
    check(other["ips"])
    assert members(nbctl, users[2]["id"]) == {other["id"]}
    assert api.delete(f"/v1/ports/{other['id']}").status_code == 204
    once_each(reads, ids)
    once_each(rebuilds, {name4, name6})
    check([])


def test_selectors_equal_up_to_label_order_share_a_set(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.105.0.0/24")
    both = api.port(net["id"], labels={"zone": "a", "app": "db", "tier": "back"})
    api.port(net["id"], labels={"app": "db"})
    one, other = {"app": "db", "tier": "back"}, {"tier": "back", "app": "db"}
    first = create(api, ingress=[{"action": "allow", "peers": [{"selector": one}]}])
    second = create(api, egress=[{"action": "allow", "peers": [{"selector": other}]}])
    expected = {set_name(api.tenant, one, 4): both["ips"], set_name(api.tenant, one, 6): []}
    assert set_name(api.tenant, one) == set_name(api.tenant, other)
    assert address_sets(nbctl, first["id"]) == address_sets(nbctl, second["id"]) == expected
    assert tenant_sets(nbctl, api.tenant) == expected
    rows_before = uuids(nbctl, api.tenant, one)
    # re-sending the selector in the other order changes nothing
    resp = api.patch(f"/v1/policies/{first['id']}",
                     {"ingress": [{"action": "allow", "peers": [{"selector": other}]}]})
    assert resp.status_code == 200, resp.get_json()
    assert uuids(nbctl, api.tenant, one) == rows_before
    # deleting one policy keeps the set for the other, whichever order each used
    assert api.delete(f"/v1/policies/{second['id']}").status_code == 204
    assert uuids(nbctl, api.tenant, one) == rows_before
    assert address_sets(nbctl, first["id"]) == expected
    assert api.delete(f"/v1/policies/{first['id']}").status_code == 204
    assert tenant_sets(nbctl, api.tenant) == {}


def test_tenants_with_one_selector_get_sets_of_their_own(api: Any, other_api: Any,
                                                         nbctl: Any) -> None:
    # the same CIDR in both tenants: the same addresses, in separate sets
    mine_net = api.network(cidr="10.106.0.0/24")
    theirs_net = other_api.network(cidr="10.106.0.0/24")
    mine = api.port(mine_net["id"], labels=DB)
    theirs = other_api.port(theirs_net["id"], labels=DB)
    assert mine["ips"] == theirs["ips"]
    my_pol = create(api, ingress=[{"action": "allow", "peers": [{"selector": DB}]}])
    their_pol = create(other_api, ingress=[{"action": "allow", "peers": [{"selector": DB}]}])
    assert set_name(api.tenant, DB) != set_name(other_api.tenant, DB)
    mine_sets = {set_name(api.tenant, DB, 4): mine["ips"], set_name(api.tenant, DB, 6): []}
    their_sets = {set_name(other_api.tenant, DB, 4): theirs["ips"],
                  set_name(other_api.tenant, DB, 6): []}
    assert address_sets(nbctl, my_pol["id"]) == tenant_sets(nbctl, api.tenant) == mine_sets
    assert address_sets(nbctl, their_pol["id"]) == their_sets
    assert tenant_sets(nbctl, other_api.tenant) == their_sets
    their_rows = uuids(nbctl, other_api.tenant, DB)
    # a port write in one tenant leaves the other tenant's set alone
    resp = api.patch(f"/v1/ports/{mine['id']}", {"labels": WEB})
    assert resp.status_code == 200, resp.get_json()
    assert peer_set(nbctl, my_pol, DB) == []
    assert tenant_sets(nbctl, other_api.tenant) == their_sets
    later = api.port(mine_net["id"], labels=DB)
    assert peer_set(nbctl, my_pol, DB) == later["ips"]
    assert tenant_sets(nbctl, other_api.tenant) == their_sets
    # so does deleting the last user in one tenant
    assert api.delete(f"/v1/policies/{my_pol['id']}").status_code == 204
    assert tenant_sets(nbctl, api.tenant) == {}
    assert uuids(nbctl, other_api.tenant, DB) == their_rows
    assert address_sets(nbctl, their_pol["id"]) == their_sets


def test_shared_set_membership_follows_the_ports(api: Any, nbctl: Any) -> None:
    """Relabel, re-address, delete and the same address in two networks, with the set
    shared by two policies that also use other selectors."""
    net1 = api.network(cidr="10.107.0.0/24")
    net2 = api.network(cidr="10.107.0.0/24")
    first = create(api, selector=WEB, ingress=[{"action": "allow", "peers": [{"selector": DB}]}])
    second = create(api, egress=[{"action": "allow", "peers": [{"selector": DB}]}],
                    ingress=[{"action": "allow", "peers": [{"selector": CACHE},
                                                           {"selector": DB}]}])

    def shared() -> list[str]:
        got = peer_set(nbctl, first, DB)
        assert peer_set(nbctl, second, DB) == got
        assert len(tenant_sets(nbctl, api.tenant)) == 4  # db and cache pairs only
        return got

    one = api.port(net1["id"], labels=DB)
    two = api.port(net2["id"], labels=DB)
    three = api.port(net2["id"], labels=DB)
    assert one["ips"] == two["ips"]
    assert shared() == sorted({*one["ips"], *three["ips"]})
    # re-address
    resp = api.patch(f"/v1/ports/{three['id']}", {"ips": ["10.107.0.77"]})
    assert resp.status_code == 200, resp.get_json()
    assert shared() == sorted({*one["ips"], "10.107.0.77"})
    # relabel one holder of the repeated address away: the other keeps it in
    resp = api.patch(f"/v1/ports/{one['id']}", {"labels": WEB})
    assert resp.status_code == 200, resp.get_json()
    assert shared() == sorted({*two["ips"], "10.107.0.77"})
    assert members(nbctl, first["id"]) == {one["id"]}
    assert peer_set(nbctl, second, CACHE) == []
    # delete the other holder: the address goes
    assert api.delete(f"/v1/ports/{two['id']}").status_code == 204
    assert shared() == ["10.107.0.77"]
    # relabel back: it returns
    resp = api.patch(f"/v1/ports/{one['id']}", {"labels": DB})
    assert resp.status_code == 200, resp.get_json()
    assert shared() == sorted({*one["ips"], "10.107.0.77"})
    assert members(nbctl, first["id"]) == set()
    # a port joining the other selector only touches its set
    cache = api.port(net1["id"], labels=CACHE)
    assert peer_set(nbctl, second, CACHE) == cache["ips"]
    assert shared() == sorted({*one["ips"], "10.107.0.77"})
    assert api.delete(f"/v1/ports/{three['id']}").status_code == 204
    assert shared() == one["ips"]


def test_rules_view_lists_the_sets_the_policy_uses_by_name(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.108.0.0/24")
    ports = {name: api.port(net["id"], labels={"app": name}) for name in ("db", "cache", "web")}
    both = create(api, ingress=[{"action": "allow", "peers": [{"selector": DB},
                                                              {"selector": CACHE}]}])
    db_only = create(api, egress=[{"action": "allow", "peers": [{"selector": DB}]}])
    web_only = create(api, egress=[{"action": "allow", "peers": [{"selector": WEB}]}])
    no_sets = create(api, ingress=[{"action": "allow", "peers": [{"cidr": "10.0.0.0/8"}]}])

    def pair_of(selector: dict[str, str]) -> dict[str, list[str]]:
        return {set_name(api.tenant, selector, 4): ports[selector["app"]]["ips"],
                set_name(api.tenant, selector, 6): []}

    for pol, expected in [(both, {**pair_of(DB), **pair_of(CACHE)}), (db_only, pair_of(DB)),
                          (web_only, pair_of(WEB)), (no_sets, {})]:
        view = api.get(f"/v1/policies/{pol['id']}/rules").get_json()
        assert view["address_sets"] == expected, pol
        assert address_sets(nbctl, pol["id"]) == expected
    assert tenant_sets(nbctl, api.tenant) == {**pair_of(DB), **pair_of(CACHE), **pair_of(WEB)}


def test_a_policy_write_repairs_a_drifted_shared_set(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.109.0.0/24")
    db = api.port(net["id"], labels=DB)
    first = create(api, ingress=[{"action": "allow", "peers": [{"selector": DB}]}])
    rows_before = uuids(nbctl, api.tenant, DB)
    # someone edits the row behind the gateway's back
    nbctl("set", "Address_Set", rows_before[4], 'addresses=["10.109.0.200"]')
    assert tenant_sets(nbctl, api.tenant)[set_name(api.tenant, DB, 4)] == ["10.109.0.200"]
    # The gateway's replica follows asynchronously: wait until it has seen the drift.
    def seen_sets() -> dict[str, Any]:
        return api.get(f"/v1/policies/{first['id']}/rules").get_json()["address_sets"]

    wait_until(lambda: seen_sets()[set_name(api.tenant, DB, 4)] == ["10.109.0.200"], 20,
               interval=0.02, what="the gateway seeing the edited set")
    second = create(api, egress=[{"action": "allow", "peers": [{"selector": DB}]}])
    assert uuids(nbctl, api.tenant, DB) == rows_before
    assert peer_set(nbctl, first, DB) == peer_set(nbctl, second, DB) == db["ips"]


# -- two gateways writing sharers at once ----------------------------------------------------



ROUNDS = 15


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(len(calls), timeout=30)

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def two_gateways(app: Any, second_app: Any, net_cidr: str) -> tuple[ApiClient, ApiClient,
                                                                     dict[str, Any]]:
    """A fresh tenant seen through both gateways, with one app=db port."""
    tenant = unique("race")
    one, two = ApiClient(app.test_client(), tenant), ApiClient(second_app.test_client(), tenant)
    net = one.network(cidr=net_cidr)
    return one, two, one.port(net["id"], labels=DB)


def seen_by(api: Any, policy: dict[str, Any]) -> None:
    wait_until(lambda: api.get(f"/v1/policies/{policy['id']}").get_json().get("revision")
               == policy["revision"], 10, interval=0.01,
               what="the second gateway seeing the policy")


def test_creating_a_sharer_while_the_last_user_goes_keeps_the_set(
        app: Any, second_app: Any, nbctl: Any) -> None:
    """The new policy's ACLs must never name a set the other gateway just deleted."""
    def one_round() -> None:
        one, two, db = two_gateways(app, second_app, "10.110.0.0/24")
        last = create(one, ingress=[{"action": "allow", "peers": [{"selector": DB}]}])
        seen_by(two, last)
        deleted, created = at_once(
            lambda: one.delete(f"/v1/policies/{last['id']}"),
            lambda: two.post("/v1/policies", {"name": unique("pol"), "ingress": [
                {"action": "allow", "peers": [{"selector": DB}]}]}))
        assert deleted.status_code == 204, deleted.get_json()
        assert created.status_code == 201, created.get_json()
        new = created.get_json()
        assert address_sets(nbctl, new["id"]) == {set_name(one.tenant, DB, 4): db["ips"],
                                                  set_name(one.tenant, DB, 6): []}

    for _ in range(ROUNDS):
        one_round()


def test_patching_a_sharer_while_the_last_user_goes_keeps_the_set(
        app: Any, second_app: Any, nbctl: Any) -> None:
    def one_round() -> None:
        one, two, db = two_gateways(app, second_app, "10.111.0.0/24")
        last = create(one, ingress=[{"action": "allow", "peers": [{"selector": DB}]}])
        other = create(one, ingress=[{"action": "allow", "peers": [{"cidr": "10.0.0.0/8"}]}])
        seen_by(two, last)
        seen_by(two, other)
        moved, patched = at_once(
            lambda: one.patch(f"/v1/policies/{last['id']}", {"ingress": []}),
            lambda: two.patch(f"/v1/policies/{other['id']}", {"ingress": [
                {"action": "allow", "peers": [{"selector": DB}]}]}))
        assert moved.status_code == 200, moved.get_json()
        assert patched.status_code == 200, patched.get_json()
        assert address_sets(nbctl, other["id"]) == {set_name(one.tenant, DB, 4): db["ips"],
                                                    set_name(one.tenant, DB, 6): []}

    for _ in range(ROUNDS):
        one_round()


@pytest.mark.parametrize("how", ["delete", "patch"])
def test_the_last_two_users_leaving_at_once_leave_no_set(app: Any, second_app: Any,
                                                         nbctl: Any, how: str) -> None:
    """Each sees the other still using the selector: neither may leave the pair behind."""
    def one_round() -> None:
        one, two, _db = two_gateways(app, second_app, "10.112.0.0/24")
        first = create(one, ingress=[{"action": "allow", "peers": [{"selector": DB}]}])
        second = create(one, egress=[{"action": "allow", "peers": [{"selector": DB}]}])
        seen_by(two, second)
        if how == "delete":
            results = at_once(lambda: one.delete(f"/v1/policies/{first['id']}"),
                              lambda: two.delete(f"/v1/policies/{second['id']}"))
            assert [r.status_code for r in results] == [204, 204]
        else:
            results = at_once(
                lambda: one.patch(f"/v1/policies/{first['id']}", {"ingress": []}),
                lambda: two.patch(f"/v1/policies/{second['id']}", {"egress": []}))
            assert [r.status_code for r in results] == [200, 200]
        assert tenant_sets(nbctl, one.tenant) == {}

    for _ in range(ROUNDS):
        one_round()


def test_two_sharers_taking_a_new_selector_at_once_get_one_pair(app: Any, second_app: Any,
                                                               nbctl: Any) -> None:
    peers = [{"selector": DB}]

    def one_round() -> None:
        one, two, db = two_gateways(app, second_app, "10.113.0.0/24")
        first = create(one, ingress=[{"action": "allow"}])
        second = create(one, egress=[{"action": "allow"}])
        seen_by(two, second)
        results = at_once(
            lambda: one.patch(f"/v1/policies/{first['id']}",
                              {"ingress": [{"action": "allow", "peers": peers}]}),
            lambda: two.patch(f"/v1/policies/{second['id']}",
                              {"egress": [{"action": "allow", "peers": peers}]}))
        assert [r.status_code for r in results] == [200, 200], [r.get_json() for r in results]
        expected = {set_name(one.tenant, DB, 4): db["ips"], set_name(one.tenant, DB, 6): []}
        assert address_sets(nbctl, first["id"]) == address_sets(nbctl, second["id"]) == expected
        assert tenant_sets(nbctl, one.tenant) == expected

    for _ in range(ROUNDS):
        one_round()


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
    errors = errors_of(resp)
    assert names_field(errors, field), errors
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
    errors = errors_of(resp)
    assert names_field(errors, field), errors
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
        assert field in errors_of(resp), (field, resp.get_json())
    mine = api.network(cidr="10.79.0.0/24")
    pol = create(api, networks=[mine["id"]])
    resp = api.patch(f"/v1/policies/{pol['id']}", {"networks": [mine["id"], theirs["id"]]})
    assert resp.status_code == 404
    assert "networks.1" in errors_of(resp)
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
        assert names_field(errors_of(resp), field), (
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

"""Red team of external networks, gateways, floating IPs and load balancers.

Hostile and careless bodies, cross-tenant references, address edges, detach/re-attach
sequences and concurrent writes, each followed by a check of the OVN rows (every row the
gateway owns has its parent, and no address is held twice on one switch).

Tests that pass document guarantees. Each known bug is written as the API should behave and
marked `xfail(strict=True)`: the suite stays green, and fixing the bug turns the test into
an XPASS failure, so the marker has to go with the fix.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

import pytest
from test_concurrency import race

from helpers.api import ApiClient, unique
from helpers.nb import PREFIX, as_list, owned, rows
from helpers.problems import errors_of, names_field

KIND, ID, TENANT, PARENT, DOC = (PREFIX + k for k in ("kind", "id", "tenant", "parent", "doc"))


# -- helpers ---------------------------------------------------------------------------------
def _ext(admin_api: ApiClient, cidr: str, **fields: Any) -> dict[str, Any]:
    resp = admin_api.post("/v1/external-networks", {
        "name": unique("ext"), "cidr": cidr, "physical_network": "physnet1", **fields})
    assert resp.status_code == 201, resp.get_json()
    return dict(resp.get_json())


def _gw(api: ApiClient, **fields: Any) -> Any:
    return api.post("/v1/gateways", {"name": unique("gw"), **fields})


def _lb(api: ApiClient, **fields: Any) -> Any:
    return api.post("/v1/load-balancers", {"name": unique("lb"),
                                           "listeners": [{"port": 80}], **fields})


def _fip(api: ApiClient, **fields: Any) -> Any:
    return api.post("/v1/floating-ips", {"name": unique("fip"), **fields})


def _ok(resp: Any, status: int = 201) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_json()
    return dict(resp.get_json())


def _is(resp: Any, status: int, field: str) -> None:
    body = resp.get_json(silent=True)
    assert resp.status_code == status, body
    assert names_field(errors_of(resp), field), body


def _doc(row: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(row["external_ids"][DOC]))


def _addresses(nbctl: Any, network_id: str) -> list[str]:
    """Every address held on a tenant network's switch: its ports', and the router ports'
    behind its router-type ports (gateways and the lb-router)."""
    (ls,) = owned(nbctl, "Logical_Switch", kind="network", id=network_id)
    lsps = {r["_uuid"]: r for r in rows(nbctl, "Logical_Switch_Port")}
    lrps = {r["name"]: r for r in rows(nbctl, "Logical_Router_Port")}
    found = []
    for uuid in as_list(ls["ports"]):
        lsp = lsps[uuid]
        if lsp["type"] == "router":
            lrp = lrps.get(lsp["options"].get("router-port"))
            found += [n.split("/")[0] for n in as_list(lrp["networks"])] if lrp else []
        else:
            for entry in as_list(lsp["addresses"]):
                found += [w for w in entry.split()[1:] if w not in ("dynamic", "unknown")]
    return found


def _no_address_twice(nbctl: Any, network_id: str) -> None:
    held = Counter(_addresses(nbctl, network_id))
    twice = {ip: n for ip, n in held.items() if n > 1}
    assert not twice, f"addresses held twice on network {network_id}: {twice}"


def consistency_problems(nbctl: Any, tenant: str) -> list[str]:
    """Rows of TENANT the gateway owns without the parent that should hold them."""
    mine = lambda r: r["external_ids"].get(TENANT) == tenant  # noqa: E731
    tables = {t: [r for r in rows(nbctl, t) if mine(r)] for t in (
        "Logical_Router", "Logical_Router_Port", "Logical_Switch", "Logical_Switch_Port",
        "NAT", "Logical_Router_Static_Route", "Load_Balancer", "Address_Set")}
    every_ls = rows(nbctl, "Logical_Switch")
    every_lrp = {r["name"] for r in rows(nbctl, "Logical_Router_Port")}
    routers = {(r["external_ids"][KIND], r["external_ids"][ID]): r
               for r in tables["Logical_Router"]}
    switches = {(r["external_ids"][KIND], r["external_ids"][ID]): r
                for r in tables["Logical_Switch"]}
    lbs = {(r["external_ids"][KIND], r["external_ids"][ID]): r for r in tables["Load_Balancer"]}
    fips = {r["external_ids"][ID]: r for r in tables["Address_Set"]
            if r["external_ids"][KIND] == "floating-ip"}
    problems = []

    def held_by(parent_kind: str, table: str, column: str, row: dict[str, Any]) -> None:
        ids = row["external_ids"]
        parent = routers.get((parent_kind, ids.get(PARENT, "")))
        if parent is None or row["_uuid"] not in as_list(parent[column]):
            problems.append(f"{table} {ids[KIND]} {ids[ID]}: not in {parent_kind} "
                            f"{ids.get(PARENT)}'s {column}")

    for lrp in tables["Logical_Router_Port"]:
        kind = lrp["external_ids"][KIND]
        held_by("gateway" if kind == "gw-port" else kind, "LRP", "ports", lrp)
    for nat in tables["NAT"]:
        held_by("gateway", "NAT", "nat", nat)
        ids = nat["external_ids"]
        if ids[KIND] == "fip-nat":
            fip = fips.get(ids[ID])
            if fip is None or _doc(fip).get("port_id") not in as_list(nat["logical_port"]):
                problems.append(f"NAT fip-nat {ids[ID]}: no floating IP mapping this port")
    for route in tables["Logical_Router_Static_Route"]:
        held_by("gateway", "route", "static_routes", route)
    for lsp in tables["Logical_Switch_Port"]:
        ids = lsp["external_ids"]
        if lsp["type"] != "router":
            continue
        holders = [ls for ls in every_ls if lsp["_uuid"] in as_list(ls["ports"])]
        if len(holders) != 1:
            problems.append(f"LSP {lsp['name']}: on {len(holders)} switches")
        if lsp["options"].get("router-port") not in every_lrp:
            problems.append(f"LSP {lsp['name']}: its router port is gone")
        if ids[KIND] == "lb-router" and ("network", ids[ID]) not in switches:
            problems.append(f"lb-router link {ids[ID]}: its network is gone")
    for kind, key in routers:
        if kind == "lb-router" and ("network", key) not in switches:
            problems.append(f"lb-router {key}: its network is gone")
    for (kind, key), lb in lbs.items():
        if kind == "lb-probe":
            owner = lbs.get(("load-balancer", lb["external_ids"][PARENT]))
            if owner is None or not _doc(owner).get("health_check"):
                problems.append(f"probe load balancer {key}: no health-checked owner")
            continue
        doc = _doc(lb)
        on = {ls["external_ids"].get(ID) for ls in every_ls
              if lb["_uuid"] in as_list(ls["load_balancer"])}
        if on != {str(n) for n in doc["networks"]}:
            problems.append(f"load balancer {key}: on switches {on}, networks {doc['networks']}")
        on_routers = {r["external_ids"][ID] for r in tables["Logical_Router"]
                      if lb["_uuid"] in as_list(r["load_balancer"])}
        if on_routers != {str(g) for g in doc["gateways"]}:
            problems.append(f"load balancer {key}: on routers {on_routers}, "
                            f"gateways {doc['gateways']}")
    return problems


def _consistent(nbctl: Any, tenant: str) -> None:
    problems = consistency_problems(nbctl, tenant)
    assert not problems, problems


def _nothing_left(nbctl: Any, tenant: str) -> None:
    """After deleting everything: no row of the tenant's but the tenant's own port group."""
    for table in ("Logical_Router", "Logical_Router_Port", "Logical_Switch",
                  "Logical_Switch_Port", "NAT", "Logical_Router_Static_Route",
                  "Load_Balancer", "Address_Set", "DHCP_Options"):
        left = [r["name"] if "name" in r else r["_uuid"]
                for r in rows(nbctl, table) if r["external_ids"].get(TENANT) == tenant]
        assert left == [], (table, left)


# -- hostile and careless bodies ---------------------------------------------------------------
BAD_GATEWAY_BODIES: list[tuple[dict[str, Any], str]] = [
    ({"networks": None}, "networks"), ({"routes": None}, "routes"),
    ({"labels": None}, "labels"), ({"networks": [None]}, "networks.0"),
    ({"networks": [{"network_id": None}]}, "networks.0.network_id"),
    ({"networks": ["NET"]}, "networks.0"), ({"networks": {"network_id": "NET"}}, "networks"),
    ({"networks": [{"network_id": "NET", "ip": None}]}, "networks.0.ip"),
    ({"networks": [{"network_id": "NET", "ip": "fd00::1"}]}, "networks.0.ip"),
    ({"external": {"network_id": "EXT", "ip": None}}, "external.ip"),
    ({"external": {"network_id": "EXT", "ip": "fd00::1"}}, "external.ip"),
    ({"external": {"network_id": "EXT", "ip": "::ffff:172.30.1.9"}}, "external.ip"),
    ({"external": {"network_id": "EXT", "snat": None}}, "external.snat"),
    ({"external": {"network_id": "EXT", "snat": []}}, "external.snat"),
    ({"external": {"network_id": 5}}, "external.network_id"), ({"external": []}, "external"),
    ({"routes": [None]}, "routes.0"),
    ({"routes": [{"prefix": None, "nexthop": "10.120.0.5"}]}, "routes.0.prefix"),
    ({"routes": [{"prefix": 5, "nexthop": "10.120.0.5"}]}, "routes.0.prefix"),
    ({"routes": [{"prefix": "10.9.0.0/24\n", "nexthop": "10.120.0.5"}]}, "routes.0.prefix"),
    ({"routes": [{"prefix": "10.9.0.0/24\x00", "nexthop": "10.120.0.5"}]}, "routes.0.prefix"),
    ({"routes": [{"prefix": "10.9.0.1/24", "nexthop": "10.120.0.5"}]}, "routes.0.prefix"),
    ({"routes": [{"prefix": "fd00:9::/64", "nexthop": "10.120.0.5"}]}, "routes.0.nexthop"),
    ({"routes": [{"prefix": "10.9.0.0/24", "nexthop": "10.121.0.5"}]}, "routes.0.nexthop"),
    ({"networks": [{"network_id": "NET"}, {"network_id": "NET"}]}, "networks.1.network_id"),
    ({"routes": [{"prefix": "10.9.0.0/24", "nexthop": "10.120.0.5"}] * 2}, "routes.1"),
    ({"routes": [{"prefix": "10.9.0.0/24", "nexthop": "10.120.0.5"}] * 257}, "routes"),
]


def test_hostile_gateway_bodies_are_400_naming_the_field(
        api: ApiClient, admin_api: ApiClient, nbctl: Any) -> None:
    ext = _ext(admin_api, "172.30.1.0/24")
    net = api.network(cidr="10.120.0.0/24")
    for body, field in BAD_GATEWAY_BODIES:
        text = json.dumps(body).replace('"NET"', json.dumps(net["id"])).replace(
            '"EXT"', json.dumps(ext["id"]))
        body = json.loads(text)
        if "routes" in body and "networks" not in body:
            body["networks"] = [{"network_id": net["id"]}]
        _is(_gw(api, **body), 400, field)
    assert owned(nbctl, "Logical_Router", kind="gateway", tenant=api.tenant) == []


BAD_LB_BODIES: list[tuple[dict[str, Any], str]] = [
    ({"vip": None}, "vip"), ({"external_network_id": None}, "external_network_id"),
    ({"protocol": None}, "protocol"), ({"listeners": None}, "listeners"),
    ({"listeners": []}, "listeners"), ({"listeners": [None]}, "listeners.0"),
    ({"listeners": [{"port": None}]}, "listeners.0.port"),
    ({"listeners": [{"port": True}]}, "listeners.0.port"),
    ({"listeners": [{"port": "80"}]}, "listeners.0.port"),
    ({"listeners": [{"port": 80.0}]}, "listeners.0.port"),
    ({"listeners": [{"port": 0}]}, "listeners.0.port"),
    ({"listeners": [{"port": 80, "backend_port": 65536}]}, "listeners.0.backend_port"),
    ({"listeners": [{"port": p} for p in range(1, 66)]}, "listeners"),
    ({"backends": None}, "backends"), ({"backends": [None]}, "backends.0"),
    ({"backends": [{"ip": None}]}, "backends.0.ip"),
    ({"backends": [{"ip": "10.121.0.5/32"}]}, "backends.0.ip"),
    ({"networks": None}, "networks"), ({"networks": [None]}, "networks.0"),
    ({"networks": ["not-a-uuid"]}, "networks.0"), ({"gateways": None}, "gateways"),
    ({"gateways": [None]}, "gateways.0"), ({"health_check": {"interval": None}},
                                          "health_check.interval"),
    ({"health_check": {"interval": 0}}, "health_check.interval"),
    ({"session_affinity_timeout": 0}, "session_affinity_timeout"),
    ({"session_affinity_timeout": "60"}, "session_affinity_timeout"),
    ({"vip": 5}, "vip"), ({"vip": ["10.121.0.100"]}, "vip"),
    ({"vip": "10.121.0.100/32"}, "vip"), ({"status": {}}, "status"),
]


def test_hostile_load_balancer_bodies_are_400_naming_the_field(
        api: ApiClient, nbctl: Any) -> None:
    for body, field in BAD_LB_BODIES:
        full = {"vip": "10.121.0.100", **body}
        _is(_lb(api, **full) if "listeners" not in body else
            api.post("/v1/load-balancers", {"name": unique("lb"), **full}), 400, field)
    assert owned(nbctl, "Load_Balancer", tenant=api.tenant) == []


def test_hostile_floating_ip_bodies_are_4xx_naming_the_field(
        api: ApiClient, admin_api: ApiClient, nbctl: Any) -> None:
    ext = _ext(admin_api, "172.30.2.0/24")
    net = api.network(cidr="10.122.0.0/24")
    cases = [
        ({"external_network_id": None}, 400, "external_network_id"),
        ({"external_network_id": ext["id"], "ip": None}, 400, "ip"),
        ({"external_network_id": ext["id"], "ip": "fd00::7"}, 400, "ip"),
        ({"external_network_id": ext["id"], "ip": "::ffff:172.30.2.7"}, 400, "ip"),
        ({"external_network_id": ext["id"], "port_id": "not-a-uuid"}, 400, "port_id"),
        ({"external_network_id": ext["id"], "gateway_id": net["id"]}, 400, "gateway_id"),
        ({"external_network_id": net["id"]}, 404, "external_network_id"),  # a tenant net
        ({"external_network_id": ext["id"], "ip": "172.30.2.0"}, 409, "ip"),
        ({"external_network_id": ext["id"], "ip": "172.30.2.255"}, 409, "ip"),
        ({"external_network_id": ext["id"], "ip": ext["gateway_ip"]}, 409, "ip"),
        ({"external_network_id": ext["id"], "ip": "172.30.3.7"}, 409, "ip"),
    ]
    for body, status, field in cases:
        _is(_fip(api, **body), status, field)
    assert owned(nbctl, "Address_Set", kind="floating-ip", tenant=api.tenant) == []
    # The edges that are valid: the last host, and a host outside the pools.
    for ip in ("172.30.2.254", "172.30.2.2"):
        assert _ok(_fip(api, external_network_id=ext["id"], ip=ip))["ip"] == ip


def test_merge_patch_nulls_restore_defaults_and_keep_ovn_consistent(
        api: ApiClient, admin_api: ApiClient, nbctl: Any) -> None:
    ext = _ext(admin_api, "172.30.4.0/24")
    net = api.network(cidr="10.123.0.0/24")
    port = api.port(net["id"])
    gw = _ok(_gw(api, networks=[{"network_id": net["id"]}], labels={"a": "b"},
                 external={"network_id": ext["id"], "snat": False},
                 routes=[{"prefix": "10.99.0.0/24", "nexthop": "10.123.0.9"}]))
    fip = _ok(_fip(api, external_network_id=ext["id"], port_id=port["id"]))
    lb = _ok(_lb(api, vip="10.123.0.100", networks=[net["id"]], gateways=[gw["id"]],
                 backends=[{"ip": port["ips"][0]}], health_check={"interval": 7},
                 session_affinity_timeout=30, labels={"x": "y"}))
    url = f"/v1/gateways/{gw['id']}"
    assert _ok(api.patch(url, {"external": {"snat": None}}), 200)["external"]["snat"] is True
    assert len(owned(nbctl, "NAT", kind="gw-snat", parent=gw["id"])) == 1
    assert _ok(api.patch(url, {"labels": None, "routes": None}), 200)["labels"] == {}
    for body, field in (({"name": None}, "name"), ({"external": {"network_id": None}},
                                                    "external.network_id"),
                        ({"networks": [{"network_id": net["id"], "ip": None}]},
                         "networks.0.ip"), ({"routes": [None]}, "routes.0")):
        _is(api.patch(url, body), 400, field)
    lb_url = f"/v1/load-balancers/{lb['id']}"
    got = _ok(api.patch(lb_url, {"health_check": {"interval": None}}), 200)
    assert got["health_check"]["interval"] == 5
    got = _ok(api.patch(lb_url, {"health_check": None, "session_affinity_timeout": None,
                                 "labels": {"x": None}, "gateways": None}), 200)
    assert "health_check" not in got and "session_affinity_timeout" not in got
    assert got["labels"] == {} and got["gateways"] == []
    (row,) = owned(nbctl, "Load_Balancer", kind="load-balancer", id=lb["id"])
    assert row["options"] == {} and row["ip_port_mappings"] == {}
    for body, field in (({"vip": None}, "vip"), ({"protocol": None}, "protocol"),
                        ({"listeners": None}, "listeners"),
                        ({"backends": [{"ip": None}]}, "backends.0.ip")):
        _is(api.patch(lb_url, body), 400, field)
    assert _ok(api.patch(f"/v1/floating-ips/{fip['id']}", {"port_id": None}), 200)[
        "gateway_id"] is None
    _is(api.patch(f"/v1/floating-ips/{fip['id']}", {"ip": None}), 400, "ip")
    assert _ok(api.patch(url, {"external": None, "networks": None}), 200)["networks"] == []
    _consistent(nbctl, api.tenant)


# -- cross-tenant references ----------------------------------------------------------------
def test_cross_tenant_references_are_404_naming_the_field_and_leak_nothing(
        api: ApiClient, other_api: ApiClient, admin_api: ApiClient, nbctl: Any) -> None:
    ext = _ext(admin_api, "172.30.5.0/24")
    net = api.network(name=unique("secret-net"), cidr="10.124.0.0/24")
    port = api.port(net["id"], name=unique("secret-port"))
    gw = _ok(_gw(api, name=unique("secret-gw"), networks=[{"network_id": net["id"]}],
                 external={"network_id": ext["id"]}))
    fip = _ok(_fip(api, external_network_id=ext["id"], port_id=port["id"]))
    lb = _ok(_lb(api, vip="10.124.0.100", networks=[net["id"]], gateways=[gw["id"]],
                 backends=[{"ip": port["ips"][0]}], health_check={}))
    # The other tenant has look-alikes (same cidr), so nothing is found by address alone.
    onet = other_api.network(cidr="10.124.0.0/24")
    oport = other_api.port(onet["id"])
    ogw = _ok(_gw(other_api, networks=[{"network_id": onet["id"]}],
                  external={"network_id": ext["id"]}))
    olb = _ok(_lb(other_api, vip="10.124.0.100", networks=[onet["id"]]))
    ofip = _ok(_fip(other_api, external_network_id=ext["id"]))
    cases = [
        (_gw(other_api, networks=[{"network_id": net["id"]}]), "networks.0.network_id"),
        (other_api.patch(f"/v1/gateways/{ogw['id']}", {"networks": [
            {"network_id": onet["id"]}, {"network_id": net["id"]}]}), "networks.1.network_id"),
        (_gw(other_api, external={"network_id": net["id"]}), "external.network_id"),
        (_fip(other_api, external_network_id=ext["id"], port_id=port["id"]), "port_id"),
        (other_api.patch(f"/v1/floating-ips/{ofip['id']}", {"port_id": port["id"]}),
         "port_id"),
        (_fip(other_api, external_network_id=net["id"]), "external_network_id"),
        (_lb(other_api, vip="10.124.0.101", networks=[net["id"]]), "networks.0"),
        (_lb(other_api, vip="10.124.0.101", gateways=[gw["id"]]), "gateways.0"),
        (_lb(other_api, external_network_id=net["id"]), "external_network_id"),
        (other_api.patch(f"/v1/load-balancers/{olb['id']}", {"networks": [net["id"]]}),
         "networks.0"),
        (other_api.patch(f"/v1/load-balancers/{olb['id']}", {"gateways": [gw["id"]]}),
         "gateways.0"),
        # An admin acting for one tenant cannot reach into another.
        (admin_api.post("/v1/gateways", {"name": unique("g"), "tenant_id": other_api.tenant,
                                         "networks": [{"network_id": net["id"]}]}),
         "networks.0.network_id"),
        (admin_api.post("/v1/load-balancers", {
            "name": unique("l"), "tenant_id": other_api.tenant, "vip": "10.124.0.102",
            "listeners": [{"port": 80}], "gateways": [gw["id"]]}), "gateways.0"),
        (admin_api.post("/v1/floating-ips", {
            "name": unique("f"), "tenant_id": other_api.tenant, "port_id": port["id"],
            "external_network_id": ext["id"]}), "port_id"),
        (admin_api.patch(f"/v1/load-balancers/{olb['id']}", {"networks": [net["id"]]}),
         "networks.0"),
    ]
    secrets = [net["name"], port["name"], gw["name"], api.tenant, port["ips"][0]]
    for resp, field in cases:
        _is(resp, 404, field)
        text = resp.get_data(as_text=True)
        assert not [s for s in secrets if s in text], (field, text)
    # A health-checked backend at the victim port's address maps to the caller's own port.
    mine = _ok(other_api.patch(f"/v1/load-balancers/{olb['id']}", {
        "backends": [{"ip": port["ips"][0]}], "health_check": {}}), 200)
    (row,) = owned(nbctl, "Load_Balancer", kind="load-balancer", id=mine["id"])
    assert [v.split(":")[0] for v in row["ip_port_mappings"].values()] == [oport["id"]]
    # Items and sub-resources of another tenant are 404, like ones that do not exist.
    for path in (f"/v1/gateways/{gw['id']}", f"/v1/floating-ips/{fip['id']}",
                 f"/v1/load-balancers/{lb['id']}"):
        assert other_api.get(path).status_code == 404
        assert other_api.patch(path, {"labels": {"a": "b"}}).status_code == 404
        assert other_api.delete(path).status_code == 404
    backend = f"/v1/load-balancers/{lb['id']}/backends/{port['ips'][0]}"
    assert other_api.get(backend).status_code == 404
    assert other_api.delete(backend).status_code == 404
    assert other_api.post(f"/v1/load-balancers/{lb['id']}/backends",
                          {"ip": "10.124.0.9"}).status_code == 404
    assert other_api.get(f"/v1/floating-ips?port_id={port['id']}").get_json()["items"] == []
    assert api.get(f"/v1/load-balancers/{lb['id']}").get_json()["revision"] == lb["revision"]
    for who in (api, other_api):
        _consistent(nbctl, who.tenant)


# -- external addresses ----------------------------------------------------------------------
def test_external_address_edges_on_create(api: ApiClient, other_api: ApiClient,
                                          admin_api: ApiClient) -> None:
    ext = _ext(admin_api, "172.30.6.0/24",
               allocation_pools=[{"start": "172.30.6.10", "end": "172.30.6.20"}])
    gw = _ok(_gw(api, external={"network_id": ext["id"]}))
    fip = _ok(_fip(api, external_network_id=ext["id"]))
    for held in (gw["external"]["ip"], fip["ip"], ext["gateway_ip"]):
        _is(_gw(other_api, external={"network_id": ext["id"], "ip": held}), 409, "external.ip")
        _is(_fip(other_api, external_network_id=ext["id"], ip=held), 409, "ip")
        _is(_lb(other_api, external_network_id=ext["id"], vip=held), 409, "vip")
    for edge in ("172.30.6.0", "172.30.6.255", "172.30.7.1"):
        _is(_gw(other_api, external={"network_id": ext["id"], "ip": edge}), 409,
            "external.ip")
        _is(_lb(other_api, external_network_id=ext["id"], vip=edge), 409, "vip")


@pytest.mark.parametrize("target", ["victim-gateway", "victim-fip", "upstream", "broadcast",
                                    "outside"])
def test_patching_external_ip_is_checked_like_a_create(
        target: str, api: ApiClient, other_api: ApiClient, admin_api: ApiClient,
        nbctl: Any) -> None:
    ext = _ext(admin_api, "172.30.8.0/24")
    victim = _ok(_gw(api, external={"network_id": ext["id"]}))
    victim_fip = _ok(_fip(api, external_network_id=ext["id"]))
    attacker = _ok(_gw(other_api, external={"network_id": ext["id"]}))
    ip = {"victim-gateway": victim["external"]["ip"], "victim-fip": victim_fip["ip"],
          "upstream": ext["gateway_ip"], "broadcast": "172.30.8.255",
          "outside": "8.8.8.8"}[target]
    resp = other_api.patch(f"/v1/gateways/{attacker['id']}", {"external": {"ip": ip}})
    _is(resp, 409, "external.ip")
    (lrp,) = rows(nbctl, "Logical_Router_Port", f"name=ovngw-gw-{attacker['id']}-ext")
    assert as_list(lrp["networks"]) == [f"{attacker['external']['ip']}/24"]


def test_adding_external_access_to_an_existing_gateway_allocates_its_address(
        api: ApiClient, admin_api: ApiClient, nbctl: Any) -> None:
    ext = _ext(admin_api, "172.30.9.0/24")
    gw = _ok(_gw(api))
    got = _ok(api.patch(f"/v1/gateways/{gw['id']}", {"external": {"network_id": ext["id"]}}),
              200)
    assert got["external"]["ip"].startswith("172.30.9.")
    _consistent(nbctl, api.tenant)


def test_external_ip_null_reallocates(api: ApiClient, admin_api: ApiClient) -> None:
    ext = _ext(admin_api, "172.30.10.0/24")
    gw = _ok(_gw(api, external={"network_id": ext["id"], "ip": "172.30.10.77"}))
    got = _ok(api.patch(f"/v1/gateways/{gw['id']}", {"external": {"ip": None}}), 200)
    assert got["external"]["ip"] != ""


def test_moving_external_to_another_network_and_back_releases_addresses(
        api: ApiClient, other_api: ApiClient, admin_api: ApiClient, nbctl: Any) -> None:
    one = _ext(admin_api, "172.30.11.0/29")
    two = _ext(admin_api, "172.30.12.0/29")
    net = api.network(cidr="10.125.0.0/24")
    gw = _ok(_gw(api, networks=[{"network_id": net["id"]}],
                 external={"network_id": one["id"], "ip": "172.30.11.5"}))
    url = f"/v1/gateways/{gw['id']}"
    moved = _ok(api.patch(url, {"external": {"network_id": two["id"]}}), 200)
    assert moved["external"]["ip"].startswith("172.30.12.")
    # The old address is free again, for anyone.
    taken = _ok(_fip(other_api, external_network_id=one["id"], ip="172.30.11.5"))
    back = _ok(api.patch(url, {"external": {"network_id": one["id"]}}), 200)
    assert back["external"]["ip"].startswith("172.30.11.")
    assert back["external"]["ip"] != taken["ip"]
    _ok(_fip(other_api, external_network_id=two["id"], ip=moved["external"]["ip"]))
    (nat,) = owned(nbctl, "NAT", kind="gw-snat", parent=gw["id"])
    assert nat["external_ip"] == back["external"]["ip"]
    (route,) = owned(nbctl, "Logical_Router_Static_Route", kind="gw-route", parent=gw["id"])
    assert route["nexthop"] == one["gateway_ip"]
    _consistent(nbctl, api.tenant)


def test_a_gateway_cannot_strand_an_external_load_balancer(
        api: ApiClient, admin_api: ApiClient, nbctl: Any) -> None:
    one = _ext(admin_api, "172.30.13.0/24")
    two = _ext(admin_api, "172.30.14.0/24")
    gw = _ok(_gw(api, external={"network_id": one["id"]}))
    lb = _ok(_lb(api, external_network_id=one["id"], gateways=[gw["id"]]))
    moved = api.patch(f"/v1/gateways/{gw['id']}", {"external": {"network_id": two["id"]}})
    if moved.status_code == 200:  # or the load balancer lets go of the gateway
        assert api.get(f"/v1/load-balancers/{lb['id']}").get_json()["gateways"] == []
    else:
        assert moved.status_code == 409, moved.get_json()
    assert api.patch(f"/v1/load-balancers/{lb['id']}", {"labels": {"a": "b"}}).status_code \
        == 200
    _consistent(nbctl, api.tenant)


@pytest.mark.parametrize("vip", ["fd00::5", "::ffff:172.30.15.50"])
def test_an_ipv6_vip_on_an_external_network_is_4xx(vip: str, api: ApiClient,
                                                   admin_api: ApiClient) -> None:
    ext = _ext(admin_api, "172.30.15.0/24")
    resp = _lb(api, external_network_id=ext["id"], vip=vip)
    assert resp.status_code in (400, 409), resp.get_json()
    assert names_field(errors_of(resp), "vip")


@pytest.mark.parametrize("which", ["upstream", "gateway"])
def test_a_vip_on_an_external_cidr_goes_through_the_external_allocation(
        which: str, api: ApiClient, other_api: ApiClient, admin_api: ApiClient) -> None:
    ext = _ext(admin_api, "172.30.16.0/24")
    victim = _ok(_gw(other_api, external={"network_id": ext["id"]}))
    mine = _ok(_gw(api, external={"network_id": ext["id"]}))
    vip = ext["gateway_ip"] if which == "upstream" else victim["external"]["ip"]
    resp = _lb(api, vip=vip, gateways=[mine["id"]])
    # an external address only through the external network's own allocation
    assert resp.status_code == 400 and names_field(errors_of(resp), "vip"), resp.get_json()


# -- VIPs, attachments and addresses inside tenant networks -----------------------------------
def test_vip_and_router_address_edges(api: ApiClient, nbctl: Any) -> None:
    net = api.network(cidr="10.126.0.0/24")
    gw = _ok(_gw(api, networks=[{"network_id": net["id"], "ip": "10.126.0.254"}]))
    for vip in ("10.126.0.0", "10.126.0.255", "10.126.0.1", "10.126.0.254"):
        _is(_lb(api, vip=vip, networks=[net["id"]]), 409, "vip")
    lb = _ok(_lb(api, vip="10.126.0.253", networks=[net["id"]]))
    for ip, status in (("10.126.0.255", 400), ("10.126.0.0", 400), ("10.127.0.5", 400)):
        _is(api.patch(f"/v1/gateways/{gw['id']}", {"networks": [
            {"network_id": net["id"], "ip": ip}]}), status, "networks.0.ip")
    # The VIP equal to the gateway's address is refused whichever comes first.
    _is(api.patch(f"/v1/networks/{net['id']}", {"gateway_ip": "10.126.0.253"}), 409,
        "gateway_ip")
    assert lb["vip"] not in api.port(net["id"])["ips"]
    _no_address_twice(nbctl, net["id"])
    _consistent(nbctl, api.tenant)


@pytest.mark.parametrize("reserved", ["vip", "probe-source"])
def test_patching_an_attachment_ip_onto_a_reserved_address_is_409(
        reserved: str, api: ApiClient, nbctl: Any) -> None:
    net = api.network(cidr="10.139.0.0/24")
    port = api.port(net["id"])
    lb = _ok(_lb(api, vip="10.139.0.100", networks=[net["id"]],
                 backends=[{"ip": port["ips"][0]}], health_check={}))
    (row,) = owned(nbctl, "Load_Balancer", kind="load-balancer", id=lb["id"])
    source = next(iter(row["ip_port_mappings"].values())).split(":", 1)[1]
    ip = lb["vip"] if reserved == "vip" else source
    _is(_gw(api, networks=[{"network_id": net["id"], "ip": ip}]), 409, "networks.0.ip")
    gw = _ok(_gw(api, networks=[{"network_id": net["id"]}]))
    resp = api.patch(f"/v1/gateways/{gw['id']}", {"networks": [
        {"network_id": net["id"], "ip": ip}]})
    _no_address_twice(nbctl, net["id"])
    _is(resp, 409, "networks.0.ip")


def test_detaching_and_reattaching_a_gateway_network(api: ApiClient, nbctl: Any) -> None:
    net = api.network(cidr="10.127.0.0/24")
    gw = _ok(_gw(api, networks=[{"network_id": net["id"], "ip": "10.127.0.200"}]))
    url = f"/v1/gateways/{gw['id']}"
    for _ in range(2):
        assert _ok(api.patch(url, {"networks": []}), 200)["networks"] == []
        assert owned(nbctl, "Logical_Switch_Port", kind="gw-link", parent=gw["id"]) == []
        assert _ok(api.patch(url, {"networks": [{"network_id": net["id"], "ip":
                                                 "10.127.0.200"}]}), 200)
        _no_address_twice(nbctl, net["id"])
    assert _ok(api.patch(url, {"networks": []}), 200)
    squatter = api.port(net["id"], ips=["10.127.0.200"])
    _is(api.patch(url, {"networks": [{"network_id": net["id"], "ip": "10.127.0.200"}]}),
        409, "networks.0.ip")
    assert _ok(api.patch(url, {"networks": [{"network_id": net["id"]}]}), 200)
    assert squatter["ips"] == ["10.127.0.200"]
    _no_address_twice(nbctl, net["id"])
    _consistent(nbctl, api.tenant)


def test_readding_the_vips_network_checks_the_vip_again(api: ApiClient, nbctl: Any) -> None:
    net = api.network(cidr="10.128.0.0/24")
    lb = _ok(_lb(api, vip="10.128.0.100", networks=[net["id"]]))
    url = f"/v1/load-balancers/{lb['id']}"
    _ok(api.patch(url, {"networks": []}), 200)
    assert owned(nbctl, "Logical_Router", kind="lb-router", id=net["id"]) == []
    api.port(net["id"], ips=["10.128.0.100"])  # released: a port may have it now
    _is(api.patch(url, {"networks": [net["id"]]}), 409, "vip")
    _no_address_twice(nbctl, net["id"])


def test_moving_the_vip_to_another_network_checks_it_there(api: ApiClient,
                                                           nbctl: Any) -> None:
    one = api.network(cidr="10.129.0.0/24")
    two = api.network(cidr="10.129.0.0/24")
    api.port(two["id"], ips=["10.129.0.100"])
    lb = _ok(_lb(api, vip="10.129.0.100", networks=[one["id"]]))
    _is(api.patch(f"/v1/load-balancers/{lb['id']}", {"networks": [two["id"]]}), 409, "vip")
    _no_address_twice(nbctl, two["id"])


def test_removing_the_vips_network_releases_the_vip_and_lb_router(
        api: ApiClient, nbctl: Any) -> None:
    net = api.network(cidr="10.130.0.0/24")
    back = api.network(cidr="10.131.0.0/24")
    ports = [api.port(back["id"]) for _ in range(2)]
    lb = _ok(_lb(api, vip="10.130.0.100", networks=[net["id"], back["id"]],
                 backends=[{"ip": p["ips"][0]} for p in ports], health_check={}))
    other = _ok(_lb(api, vip="10.130.0.101", networks=[net["id"]]))
    (lrp,) = owned(nbctl, "Logical_Router_Port", kind="lb-router", id=net["id"])
    assert sorted(as_list(lrp["networks"])) == ["10.130.0.100/24", "10.130.0.101/24"]
    got = _ok(api.patch(f"/v1/load-balancers/{lb['id']}", {"networks": [back["id"]]}), 200)
    assert got["health_check"]  # the backends' network is not the VIP's
    (lrp,) = owned(nbctl, "Logical_Router_Port", kind="lb-router", id=net["id"])
    assert as_list(lrp["networks"]) == ["10.130.0.101/24"]
    assert api.port(net["id"], ips=["10.130.0.100"])["ips"] == ["10.130.0.100"]
    assert api.delete(f"/v1/load-balancers/{other['id']}").status_code == 204
    assert owned(nbctl, "Logical_Router", kind="lb-router", id=net["id"]) == []
    _no_address_twice(nbctl, net["id"])
    _consistent(nbctl, api.tenant)


@pytest.mark.parametrize("holder", ["allocated-port", "requested-port", "vip"])
def test_the_routers_ipv6_address_is_never_held_twice(holder: str, api: ApiClient,
                                                      nbctl: Any) -> None:
    """The first address of ipv6_cidr is the router's from the start, like gateway_ip:
    never allocated, never given on request, so a gateway attached later finds it free."""
    prefix = "fd00:132::/120" if holder == "allocated-port" else "fd00:132::/64"
    net = api.network(cidr="10.132.0.0/24", ipv6_cidr=prefix)
    if holder == "allocated-port":
        assert api.port(net["id"])["ips"][1] == "fd00:132::2"
    elif holder == "requested-port":
        _is(api.post(f"/v1/networks/{net['id']}/ports",
                     {"name": unique("p"), "ips": ["10.132.0.9", "fd00:132::1"]}), 409, "ips.1")
    else:
        _is(_lb(api, vip="fd00:132::1", networks=[net["id"]]), 409, "vip")
    _ok(_gw(api, networks=[{"network_id": net["id"]}]))
    _no_address_twice(nbctl, net["id"])


def test_an_ipv6_vip_on_the_subnet_router_anycast_address_is_409(api: ApiClient) -> None:
    net = api.network(cidr="10.133.0.0/24", ipv6_cidr="fd00:133::/64")
    _is(_lb(api, vip="fd00:133::", networks=[net["id"]]), 409, "vip")


@pytest.mark.parametrize("field", ["networks", "gateways"])
def test_a_load_balancer_names_a_network_or_gateway_once(field: str, api: ApiClient) -> None:
    net = api.network(cidr="10.134.0.0/24")
    gw = _ok(_gw(api))
    ref = net["id"] if field == "networks" else gw["id"]
    _is(_lb(api, vip="10.134.0.100", **{field: [ref, ref]}), 400, f"{field}.1")


# -- routes ------------------------------------------------------------------------------------
def test_a_route_repeating_the_default_route_is_not_a_second_row(
        api: ApiClient, admin_api: ApiClient, nbctl: Any) -> None:
    ext = _ext(admin_api, "172.30.17.0/24")
    resp = _gw(api, external={"network_id": ext["id"]},
               routes=[{"prefix": "0.0.0.0/0", "nexthop": ext["gateway_ip"]}])
    if resp.status_code == 201:
        found = owned(nbctl, "Logical_Router_Static_Route", kind="gw-route",
                      parent=resp.get_json()["id"])
        assert [(r["ip_prefix"], r["nexthop"]) for r in found] == [
            ("0.0.0.0/0", ext["gateway_ip"])]
    else:
        _is(resp, 400, "routes.0")


@pytest.mark.parametrize("nexthop", ["10.135.0.0", "10.135.0.255", "10.135.0.1", "own-ext"])
def test_a_nexthop_is_a_host_other_than_the_gateway(nexthop: str, api: ApiClient,
                                                    admin_api: ApiClient) -> None:
    ext = _ext(admin_api, "172.30.18.0/24")
    net = api.network(cidr="10.135.0.0/24")
    gw = _ok(_gw(api, networks=[{"network_id": net["id"]}],
                 external={"network_id": ext["id"]}))
    hop = gw["external"]["ip"] if nexthop == "own-ext" else nexthop
    _is(api.patch(f"/v1/gateways/{gw['id']}", {"routes": [
        {"prefix": "10.99.0.0/24", "nexthop": hop}]}), 400, "routes.0.nexthop")


# -- health checks and backends -----------------------------------------------------------------
def test_health_check_on_off_on_with_ports_deleted_in_between(api: ApiClient,
                                                              nbctl: Any) -> None:
    net = api.network(cidr="10.136.0.0/24")
    back = api.network(cidr="10.137.0.0/24")
    ports = [api.port(back["id"]) for _ in range(2)]
    lb = _ok(_lb(api, vip="10.136.0.100", networks=[net["id"]],
                 backends=[{"ip": p["ips"][0]} for p in ports], health_check={}))
    url = f"/v1/load-balancers/{lb['id']}"
    assert len(owned(nbctl, "Load_Balancer", kind="lb-probe", id=lb["id"])) == 1
    _ok(api.patch(url, {"health_check": None}), 200)
    assert owned(nbctl, "Load_Balancer", kind="lb-probe", id=lb["id"]) == []
    (row,) = owned(nbctl, "Load_Balancer", kind="load-balancer", id=lb["id"])
    assert row["ip_port_mappings"] == {} and as_list(row["health_check"]) == []
    assert api.delete(f"/v1/ports/{ports[0]['id']}").status_code == 204
    _is(api.patch(url, {"health_check": {}}), 400, "backends.0.ip")
    assert _ok(api.patch(url, {"backends": [{"ip": ports[1]["ips"][0]}],
                               "health_check": {}}), 200)["health_check"]
    blocked = api.delete(f"/v1/ports/{ports[1]['id']}")
    assert blocked.status_code == 409 and lb["name"] in blocked.get_json()["detail"]
    _ok(api.patch(url, {"health_check": None}), 200)
    assert api.delete(f"/v1/ports/{ports[1]['id']}").status_code == 204
    again = api.port(back["id"], ips=ports[1]["ips"])
    _ok(api.patch(url, {"health_check": {"interval": 3}}), 200)
    (row,) = owned(nbctl, "Load_Balancer", kind="load-balancer", id=lb["id"])
    assert [v.split(":")[0] for v in row["ip_port_mappings"].values()] == [again["id"]]
    (probe,) = owned(nbctl, "Load_Balancer", kind="lb-probe", id=lb["id"])
    assert probe["ip_port_mappings"] == row["ip_port_mappings"]
    _consistent(nbctl, api.tenant)
    assert api.delete(url).status_code == 204
    assert owned(nbctl, "Load_Balancer", tenant=api.tenant) == []


def test_adding_one_backend_names_ip(api: ApiClient) -> None:
    net = api.network(cidr="10.138.0.0/24")
    port = api.port(net["id"])
    lb = _ok(_lb(api, vip="10.138.0.100", networks=[net["id"]],
                 backends=[{"ip": port["ips"][0]}], health_check={}))
    for ip in ("10.138.0.77", "fd00::7", "192.168.1.1"):
        _is(api.post(f"/v1/load-balancers/{lb['id']}/backends", {"ip": ip}), 400, "ip")


def test_lists_at_their_limits(api: ApiClient, nbctl: Any) -> None:
    net = api.network(cidr="10.160.0.0/19")
    backends = [{"ip": f"10.160.{i // 250}.{i % 250 + 2}"} for i in range(4096)]
    lb = _ok(_lb(api, vip="10.160.31.250", networks=[net["id"]] * 1, backends=backends,
                 listeners=[{"port": 1000 + i, "backend_port": 8080} for i in range(64)]))
    (row,) = owned(nbctl, "Load_Balancer", kind="load-balancer", id=lb["id"])
    assert len(row["vips"]) == 64
    assert all(len(v.split(",")) == 4096 for v in row["vips"].values())
    _is(api.post(f"/v1/load-balancers/{lb['id']}/backends", {"ip": "10.160.0.2"}), 409, "ip")
    over = api.patch(f"/v1/load-balancers/{lb['id']}", {"backends": [
        *backends, {"ip": "10.160.31.1"}]})
    _is(over, 400, "backends")
    assert api.delete(f"/v1/load-balancers/{lb['id']}").status_code == 204
    nets = [api.network(cidr=f"10.{161 + i // 32}.{(i % 32) * 8}.0/21") for i in range(64)]
    gw = _ok(_gw(api, networks=[{"network_id": n["id"]} for n in nets], routes=[
        {"prefix": f"192.168.{i}.0/24", "nexthop": f"10.{161 + (i % 64) // 32}."
                                                    f"{((i % 64) % 32) * 8}.{5 + i // 64}"}
        for i in range(256)]))
    assert len(owned(nbctl, "Logical_Router_Port", kind="gw-port", parent=gw["id"])) == 64
    assert len(owned(nbctl, "Logical_Router_Static_Route", kind="gw-route",
                     parent=gw["id"])) == 256
    _is(_gw(api, networks=[{"network_id": n["id"]} for n in nets] + [
        {"network_id": net["id"]}]), 400, "networks")
    _consistent(nbctl, api.tenant)
    assert api.delete(f"/v1/gateways/{gw['id']}").status_code == 204
    assert owned(nbctl, "Logical_Router_Port", kind="gw-port", parent=gw["id"]) == []


# -- whole lifecycles leave nothing behind --------------------------------------
def test_everything_deleted_in_awkward_orders_leaves_no_rows(
        api: ApiClient, admin_api: ApiClient, nbctl: Any) -> None:
    ext = _ext(admin_api, "172.30.19.0/24")
    web = api.network(cidr="10.170.0.0/24", ipv6_cidr="fd00:170::/64")
    db = api.network(cidr="10.171.0.0/24")
    ports = [api.port(web["id"]), api.port(db["id"])]
    gw = _ok(_gw(api, networks=[{"network_id": web["id"]}, {"network_id": db["id"]}],
                 external={"network_id": ext["id"]},
                 routes=[{"prefix": "10.99.0.0/24", "nexthop": "10.171.0.9"}]))
    fip = _ok(_fip(api, external_network_id=ext["id"], port_id=ports[0]["id"]))
    inside = _ok(_lb(api, vip="10.170.0.100", networks=[web["id"], db["id"]],
                     gateways=[gw["id"]], backends=[{"ip": p["ips"][0]} for p in ports],
                     health_check={}))
    outside = _ok(_lb(api, external_network_id=ext["id"], gateways=[gw["id"]],
                      backends=[{"ip": ports[1]["ips"][0]}]))
    _consistent(nbctl, api.tenant)
    # Blocked deletes change nothing.
    before = {t: rows(nbctl, t) for t in ("NAT", "Logical_Router_Port", "Load_Balancer")}
    for path in (f"/v1/gateways/{gw['id']}", f"/v1/networks/{web['id']}?cascade=true",
                 f"/v1/ports/{ports[0]['id']}", f"/v1/external-networks/{ext['id']}"):
        who = admin_api if "external" in path else api
        assert who.delete(path).status_code == 409, path
    assert {t: rows(nbctl, t) for t in before} == before
    assert _ok(api.patch(f"/v1/gateways/{gw['id']}", {"routes": []}), 200)
    assert api.delete(f"/v1/networks/{db['id']}?cascade=true").status_code == 204
    _consistent(nbctl, api.tenant)
    assert api.get(f"/v1/load-balancers/{outside['id']}").get_json()["backends"] == []
    assert _ok(api.patch(f"/v1/floating-ips/{fip['id']}", {"port_id": None}), 200)
    assert api.delete(f"/v1/gateways/{gw['id']}").status_code == 204
    _consistent(nbctl, api.tenant)
    for lb in (inside, outside):
        assert api.get(f"/v1/load-balancers/{lb['id']}").get_json()["gateways"] == []
    for path in (f"/v1/load-balancers/{inside['id']}", f"/v1/load-balancers/{outside['id']}",
                 f"/v1/floating-ips/{fip['id']}", f"/v1/networks/{web['id']}?cascade=true"):
        assert api.delete(path).status_code == 204, path
    _nothing_left(nbctl, api.tenant)
    assert admin_api.delete(f"/v1/external-networks/{ext['id']}").status_code == 204


# -- concurrent writes -----------------------------------------------------------
def test_concurrent_floating_ip_creates_for_one_port(
        app: Any, second_app: Any, tenant: str, admin_api: ApiClient, nbctl: Any) -> None:
    api = ApiClient(app.test_client(), tenant)
    ext = _ext(admin_api, "172.30.20.0/24")
    net = api.network(cidr="10.180.0.0/24")
    port = api.port(net["id"])
    _ok(_gw(api, networks=[{"network_id": net["id"]}], external={"network_id": ext["id"]}))
    responses = race([app, second_app], tenant, 8, lambda c, i: c.post(
        "/v1/floating-ips", {"name": f"f{i}", "external_network_id": ext["id"],
                             "port_id": port["id"]}))
    assert Counter(r.status_code for r in responses) == {201: 1, 409: 7}
    assert len(owned(nbctl, "NAT", kind="fip-nat", tenant=tenant)) == 1
    _consistent(nbctl, tenant)


def _rendezvous(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str,
                when: Any) -> None:
    """Make the first two calls of owner.name that `when(*args)` selects wait for each
    other after reading: both transactions decide on the state before either commits (the
    interleaving two gateway processes get by chance, made certain). Later calls, such as
    a loser's re-run, pass straight through."""
    real = getattr(owner, name)
    barrier, calls, lock = threading.Barrier(2, timeout=5), [0], threading.Lock()

    def paused(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        if when(*args):
            with lock:
                calls[0] += 1
                first_two = calls[0] <= 2
            if first_two:
                try:
                    barrier.wait()
                except threading.BrokenBarrierError:
                    pass
        return found

    monkeypatch.setattr(owner, name, paused)


def test_concurrent_floating_ip_associations_of_one_port(
        app: Any, second_app: Any, tenant: str, admin_api: ApiClient, nbctl: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.services.floating_ips import FloatingIpService

    api = ApiClient(app.test_client(), tenant)
    ext = _ext(admin_api, "172.30.22.0/24")
    net = api.network(cidr="10.183.0.0/24")
    port = api.port(net["id"])
    _ok(_gw(api, networks=[{"network_id": net["id"]}], external={"network_id": ext["id"]}))
    fips = [_ok(_fip(api, external_network_id=ext["id"])) for _ in range(2)]
    _rendezvous(monkeypatch, FloatingIpService, "_wanted",
                lambda _self, _t, doc: str(doc.get("port_id")) == port["id"])
    responses = race([app, second_app], tenant, 2, lambda c, i: c.patch(
        f"/v1/floating-ips/{fips[i]['id']}", {"port_id": port["id"]}))
    monkeypatch.undo()
    nats = owned(nbctl, "NAT", kind="fip-nat", tenant=tenant)
    assert sorted(r.status_code for r in responses) == [200, 409], [
        (n["external_ip"], n["logical_port"]) for n in nats]
    assert len(nats) == 1


def test_concurrent_gateway_creates_attach_a_network_once(
        app: Any, second_app: Any, tenant: str, nbctl: Any) -> None:
    api = ApiClient(app.test_client(), tenant)
    net = api.network(cidr="10.181.0.0/24")
    responses = race([app, second_app], tenant, 8, lambda c, i: c.post(
        "/v1/gateways", {"name": f"g{i}", "networks": [{"network_id": net["id"]}]}))
    assert Counter(r.status_code for r in responses) == {201: 1, 409: 7}
    _no_address_twice(nbctl, net["id"])
    _consistent(nbctl, tenant)


def test_concurrent_external_allocations_across_kinds(
        app: Any, second_app: Any, tenant: str, admin_api: ApiClient, nbctl: Any) -> None:
    ext = _ext(admin_api, "172.30.21.0/28")  # 13 allocatable addresses
    calls = [lambda c, i: c.post("/v1/gateways", {"name": f"g{i}", "external": {
                 "network_id": ext["id"]}}),
             lambda c, i: c.post("/v1/floating-ips", {"name": f"f{i}",
                                                      "external_network_id": ext["id"]}),
             lambda c, i: c.post("/v1/load-balancers", {
                 "name": f"l{i}", "external_network_id": ext["id"],
                 "listeners": [{"port": 80}]})]
    responses = race([app, second_app], tenant, 15, lambda c, i: calls[i % 3](c, i))
    got = Counter(r.status_code for r in responses)
    assert got == {201: 13, 409: 2}, got
    docs = [r.get_json() for r in responses if r.status_code == 201]
    held = [d.get("vip") or d.get("ip") or d["external"]["ip"] for d in docs]
    assert len(set(held)) == 13 and ext["gateway_ip"] not in held
    _consistent(nbctl, tenant)


def test_concurrent_patches_attach_a_network_to_one_gateway(
        app: Any, second_app: Any, tenant: str, nbctl: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.services import gateways as service

    api = ApiClient(app.test_client(), tenant)
    net = api.network(cidr="10.182.0.0/24")
    gws = [_ok(_gw(api)) for _ in range(2)]
    _rendezvous(monkeypatch, service, "gateways_of_network",
                lambda _t, network_id: network_id == net["id"])
    responses = race([app, second_app], tenant, 2, lambda c, i: c.patch(
        f"/v1/gateways/{gws[i]['id']}", {"networks": [{"network_id": net["id"]}]}))
    monkeypatch.undo()
    assert sorted(r.status_code for r in responses) == [200, 409]
    _no_address_twice(nbctl, net["id"])

"""Drift report and repair: rows edited and deleted behind the gateway's back with
ovn-nbctl are reported exactly, repaired back to what the API wrote, and rows of other
tools (also ones that imitate the gateway's) are neither reported nor changed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from gateway.app import monitored
from gateway.ovn import naming

from helpers.api import ApiClient, unique
from helpers.nb import as_list, owned, rows

EXT = {"cidr": "172.16.0.0/24", "gateway_ip": "172.16.0.1",
       "allocation_pools": [{"start": "172.16.0.10", "end": "172.16.0.200"}],
       "physical_network": "physnet1", "vlan": 7}
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
COUNTERS = (naming.LOCK, naming.PREFIX + "alloc")


def _created(api: ApiClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = api.post(path, body)
    assert resp.status_code == 201, (path, resp.get_json())
    return dict(resp.get_json())


@pytest.fixture
def world(api: ApiClient, admin_api: ApiClient) -> dict[str, Any]:
    """One resource of every kind, in one tenant (the external network in the admin's)."""
    ext = _created(admin_api, "/v1/external-networks", {"name": unique("ext"), **EXT})
    net = api.network(cidr="10.61.0.0/24", dns_domain=unique("z") + ".internal",
                      dhcp={"dns_servers": ["10.61.0.53"], "lease_time": 600})
    web = api.port(net["id"], labels={"app": "web"}, hostname="web")
    db = api.port(net["id"], labels={"app": "db"})
    own = api.port(net["id"], labels={"app": "web"}, hostname="own",
                   dhcp={"lease_time": 60})
    record = _created(api, "/v1/dns-records", {"name": unique("rec"),
                                               "fqdn": "api." + net["dns_domain"],
                                               "ips": ["10.61.0.99"]})
    policy = _created(api, "/v1/policies", {
        "name": unique("pol"), "selector": {"app": "web"}, "log": {"enabled": True},
        "ingress": [{"action": "allow", "peers": [{"selector": {"app": "db"}}],
                     "protocol": "tcp", "ports": [80]}],
        "egress": []})
    gateway = _created(api, "/v1/gateways", {
        "name": unique("gw"), "networks": [{"network_id": net["id"]}],
        "external": {"network_id": ext["id"]},
        "routes": [{"prefix": "192.168.50.0/24", "nexthop": "10.61.0.254"}]})
    fip = _created(api, "/v1/floating-ips", {"name": unique("fip"),
                                             "external_network_id": ext["id"],
                                             "port_id": own["id"]})
    lb = _created(api, "/v1/load-balancers", {
        "name": unique("lb"), "vip": "10.61.0.100", "networks": [net["id"]],
        "gateways": [gateway["id"]], "listeners": [{"port": 80, "backend_port": 8080}],
        "backends": [{"ip": db["ips"][0]}], "health_check": {"interval": 5}})
    return {"ext": ext, "net": net, "web": web, "db": db, "own": own, "record": record,
            "policy": policy, "gateway": gateway, "fip": fip, "lb": lb}


def _audit(admin: ApiClient, tenant: str, repair: bool = False, **query: str) -> Any:
    path = "/v1/audit/repair" if repair else "/v1/audit"
    qs = "&".join(f"{k}={v}" for k, v in {"tenant": tenant, **query}.items())
    resp = admin.post(f"{path}?{qs}") if repair else admin.get(f"{path}?{qs}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def _keys(report: dict[str, Any]) -> set[tuple[str, str, str, str, str | None]]:
    return {(f["kind"], f["id"], f["problem"], f["table"], f["column"])
            for f in report["findings"]}


def _normal(value: Any, labels: dict[str, str]) -> Any:
    """An ovn-nbctl JSON value with row uuids replaced by the rows' labels."""
    if isinstance(value, list) and len(value) == 2 and value[0] == "uuid":
        return labels.get(value[1], "<not the tenant's>")
    if isinstance(value, list) and len(value) == 2 and value[0] == "set":
        return sorted((_normal(v, labels) for v in value[1]), key=json.dumps)
    if isinstance(value, list) and len(value) == 2 and value[0] == "map":
        return sorted(([_normal(k, labels), _normal(v, labels)] for k, v in value[1]),
                      key=json.dumps)
    return value


def _raw_rows(nbctl: Any, table: str, condition: str) -> list[dict[str, Any]]:
    out = json.loads(nbctl("--format=json", "find", table, condition))
    return [dict(zip(out["headings"], data, strict=True)) for data in out["data"]]


def tenant_rows(nbctl: Any, tenants: list[str]) -> dict[str, list[str]]:
    """Every row stamped with the tenants, by table, with references by the names (or
    owned ids) of the rows they name and without uuids or counters: two states compare
    equal when the API would have written the same rows."""
    raw: dict[str, list[dict[str, Any]]] = {}
    for table in monitored().tables:
        raw[table] = [r for tenant in tenants for r in _raw_rows(
            nbctl, table, f'external_ids:"{naming.TENANT}"="{tenant}"')]
    labels = {}
    for table, found in raw.items():
        for row in found:
            ids = dict(row["external_ids"][1])
            name = row.get("name")
            labels[row["_uuid"][1]] = f"{table}:" + (
                name if isinstance(name, str) and name and table != "ACL"
                else ids.get(naming.ID, ""))
    out = {}
    for table, found in raw.items():
        normal = []
        for row in found:
            row = {k: v for k, v in row.items() if k not in ("_uuid", "_version")}
            row["external_ids"] = {k: v for k, v in row["external_ids"][1]
                                   if k not in COUNTERS}
            normal.append(json.dumps({k: _normal(v, labels) if k != "external_ids" else v
                                      for k, v in row.items()}, sort_keys=True))
        out[table] = sorted(normal)
    return out


def test_report_names_exactly_what_was_changed_and_repair_restores_it(
        api: ApiClient, admin_api: ApiClient, world: dict[str, Any], nbctl: Any) -> None:
    tenant = api.tenant
    assert _audit(admin_api, tenant) == {"clean": True, "checked": 11, "repaired": False,
                                         "findings": []}
    before = tenant_rows(nbctl, [tenant])
    net, gw, pol, lb = world["net"], world["gateway"], world["policy"], world["lb"]

    # Behind the gateway's back:
    (acl,) = owned(nbctl, "ACL", id=f"{pol['id']}/ingress/0")
    nbctl("set", "ACL", acl["_uuid"], 'match="ip"')
    (dhcp,) = owned(nbctl, "DHCP_Options", id=f"{net['id']}/v4")
    nbctl("destroy", "DHCP_Options", dhcp["_uuid"])
    router = f"ovngw-gw-{gw['id']}"
    nbctl("lr-nat-del", router, "snat", net["cidr"])
    nbctl("lsp-set-addresses", world["db"]["id"], "0a:58:00:00:00:99 10.61.0.250")
    (lrp,) = owned(nbctl, "Logical_Router_Port", id=f"{gw['id']}/{net['id']}")
    nbctl("lrp-del", lrp["name"])
    (group,) = owned(nbctl, "Port_Group", kind="policy", id=pol["id"])
    (web_lsp,) = rows(nbctl, "Logical_Switch_Port", f"name={world['web']['id']}")
    nbctl("remove", "Port_Group", group["_uuid"], "ports", web_lsp["_uuid"])
    (lb_row,) = owned(nbctl, "Load_Balancer", kind="load-balancer", id=lb["id"])
    nbctl("set", "Load_Balancer", lb_row["_uuid"], 'vips={"10.61.0.100:80"="10.61.0.7:80"}')
    (check,) = as_list(lb_row["health_check"])
    nbctl("set", "Load_Balancer_Health_Check", check, "options:interval=99")

    report = _audit(admin_api, tenant)
    assert report["clean"] is False and report["repaired"] is False
    assert _keys(report) == {
        ("policy", pol["id"], "changed", "ACL", "match"),
        ("network", net["id"], "missing", "DHCP_Options", None),
        # Its ports lost their reference to it (OVN drops weak references).
        ("port", world["web"]["id"], "changed", "Logical_Switch_Port", "dhcpv4_options"),
        ("port", world["db"]["id"], "changed", "Logical_Switch_Port", "dhcpv4_options"),
        ("gateway", gw["id"], "missing", "NAT", None),
        ("port", world["db"]["id"], "changed", "Logical_Switch_Port", "addresses"),
        ("gateway", gw["id"], "missing", "Logical_Router_Port", None),
        ("policy", pol["id"], "changed", "Port_Group", "ports"),
        ("load-balancer", lb["id"], "changed", "Load_Balancer", "vips"),
        ("load-balancer", lb["id"], "changed", "Load_Balancer", "health_check"),
    }, json.dumps(report, indent=1)
    by_key = {(f["kind"], f["table"], f["column"]): f for f in report["findings"]}
    assert by_key[("policy", "ACL", "match")]["found"] == "ip"
    assert by_key[("policy", "ACL", "match")]["expected"].startswith("outport == @ovngw_p")
    assert by_key[("port", "Logical_Switch_Port", "addresses")]["found"] == [
        "0a:58:00:00:00:99 10.61.0.250"]
    assert by_key[("policy", "Port_Group", "ports")]["expected"] == sorted(
        [world["web"]["id"], world["own"]["id"]])
    assert by_key[("policy", "Port_Group", "ports")]["found"] == [world["own"]["id"]]
    assert by_key[("load-balancer", "Load_Balancer", "vips")]["found"] == {
        "10.61.0.100:80": "10.61.0.7:80"}
    assert by_key[("gateway", "Logical_Router_Port", None)]["row"] == lrp["name"]
    checks = by_key[("load-balancer", "Load_Balancer", "health_check")]
    (expected,), (found,) = checks["expected"], checks["found"]
    assert expected.startswith("10.61.0.100:80 ") and found.startswith("10.61.0.100:80 ")
    assert json.loads(expected.split(" ", 1)[1])["interval"] == "5"
    assert json.loads(found.split(" ", 1)[1])["interval"] == "99"
    assert by_key[("network", "DHCP_Options", None)]["row"] == f"{net['id']}/v4"
    lost = [f for f in report["findings"] if f["column"] == "dhcpv4_options"]
    assert [(f["expected"], f["found"]) for f in lost] == [([f"{net['id']}/v4"], [])] * 2
    # The report changed nothing.
    assert _keys(_audit(admin_api, tenant)) == _keys(report)

    repaired = _audit(admin_api, tenant, repair=True)
    assert repaired["repaired"] is True and _keys(repaired) == _keys(report)
    assert repaired["remaining"] == [], repaired["remaining"]
    assert _audit(admin_api, tenant)["clean"] is True
    # OVN holds again what the API wrote (the DHCP row is a new one, referenced again).
    assert tenant_rows(nbctl, [tenant]) == before
    (lb_row,) = owned(nbctl, "Load_Balancer", kind="load-balancer", id=lb["id"])
    (check,) = as_list(lb_row["health_check"])
    assert json.loads(nbctl("--format=json", "get", "Load_Balancer_Health_Check", check,
                            "options:interval")) == "5"
    # And the API still works on the repaired rows.
    assert api.patch(f"/v1/networks/{net['id']}", {"dhcp": {"lease_time": 700}}
                     ).status_code == 200
    assert _audit(admin_api, tenant)["clean"] is True


def test_foreign_rows_are_neither_reported_nor_changed(
        api: ApiClient, admin_api: ApiClient, world: dict[str, Any], nbctl: Any) -> None:
    net, tenant, tag = world["net"], api.tenant, unique("f")
    switch = naming.switch_name(net["id"])
    # Rows of another tool: in the gateway's own switch, and ones that imitate its stamps
    # without being complete (no id), or carry its names.
    nbctl("lsp-add", switch, f"{tag}-port", "--", "lsp-set-addresses", f"{tag}-port",
          "0a:00:00:00:00:07 10.61.0.240")
    nbctl("ls-add", f"ovngw-{tag}", "--", "set", "Logical_Switch", f"ovngw-{tag}",
          f'external_ids:"{naming.KIND}"=network', f'external_ids:"{naming.TENANT}"={tenant}')
    nbctl("create", "DHCP_Options", "cidr=10.61.0.0/24", "options:router=10.61.0.9",
          f'external_ids:"{naming.KIND}"=dhcp', f'external_ids:"{naming.PARENT}"={net["id"]}')
    nbctl("pg-add", f"ovngw_p{tag.replace('-', '_')}", f"{tag}-port")
    nbctl("--id=@a", "create", "ACL", "direction=to-lport", "priority=2100", 'match="ip"',
          "action=drop", f'external_ids:"{naming.KIND}"=acl', f"name={tag}", "--", "add",
          "Port_Group", f"ovngw_p{tag.replace('-', '_')}", "acls", "@a")
    nbctl("lr-add", f"ovngw-gw-{tag}", "--", "set", "Logical_Router", f"ovngw-gw-{tag}",
          f'external_ids:"{naming.ID}"={tag}')

    def foreign() -> list[str]:
        found = []
        for table in ("Logical_Switch", "Logical_Switch_Port", "DHCP_Options", "Port_Group",
                      "ACL", "Logical_Router"):
            for row in rows(nbctl, table):
                text = json.dumps(row, sort_keys=True)
                if tag in text or tag.replace("-", "_") in text or (
                        "10.61.0.9" in text and table == "DHCP_Options"):
                    found.append(text)
        return sorted(found)

    seen = foreign()
    assert len(seen) == 6, seen
    # Drift of the gateway's own rows next to them.
    nbctl("lsp-set-addresses", world["web"]["id"], "0a:58:00:00:00:98 10.61.0.251")
    report = _audit(admin_api, tenant)
    assert _keys(report) == {("port", world["web"]["id"], "changed", "Logical_Switch_Port",
                              "addresses")}
    assert tag not in json.dumps(report) and "10.61.0.9" not in json.dumps(report)
    repaired = _audit(admin_api, tenant, repair=True)
    assert repaired["remaining"] == []
    assert tag not in json.dumps(repaired)
    assert _audit(admin_api, tenant)["clean"] is True
    assert foreign() == seen
    (ls,) = owned(nbctl, "Logical_Switch", kind="network", id=net["id"])
    (port,) = rows(nbctl, "Logical_Switch_Port", f"name={tag}-port")
    assert port["_uuid"] in json.dumps(ls["ports"]), "the foreign port left the switch"
    nbctl("lsp-del", f"{tag}-port")  # the network can be deleted by the test's tenant again


def test_orphans_and_dangling_references(api: ApiClient, admin_api: ApiClient,
                                         world: dict[str, Any], nbctl: Any) -> None:
    """A port deleted with ovn-nbctl leaves its floating IP naming it, its own DHCP rows
    and its automatic DNS record behind; a gateway router deleted leaves its links in the
    network's switch."""
    own, fip, tenant = world["own"], world["fip"], api.tenant
    nbctl("lsp-del", own["id"])
    report = _audit(admin_api, tenant)
    keys = _keys(report)
    assert ("floating-ip", fip["id"], "dangling", "NAT", "logical_port") in keys, keys
    assert ("dhcp", own["id"], "orphan", "DHCP_Options", None) in keys, keys
    auto = [f for f in report["findings"] if f["kind"] == "dns-record"]
    assert [(f["problem"], f["table"]) for f in auto] == [("extra", "DNS")], auto
    # The lb-router and the gateway's link are untouched by this and not reported.
    assert {k[0] for k in keys} == {"floating-ip", "dhcp", "dns-record"}, keys
    repaired = _audit(admin_api, tenant, repair=True)
    assert repaired["remaining"] == [], repaired["remaining"]
    assert _audit(admin_api, tenant)["clean"] is True
    assert owned(nbctl, "DHCP_Options", parent=own["id"]) == []
    assert owned(nbctl, "NAT", kind="fip-nat", id=fip["id"]) == []
    now = api.get(f"/v1/floating-ips/{fip['id']}").get_json()
    assert now["port_id"] is None and now["revision"] == fip["revision"] + 1
    assert api.get(f"/v1/dns-records?fqdn=own.{world['net']['dns_domain']}"
                   ).get_json()["items"] == []

    # The gateway's router goes: its links in the network's switch are orphans.
    gw = world["gateway"]
    links = owned(nbctl, "Logical_Switch_Port", kind="gw-link", parent=gw["id"])
    assert links
    nbctl("lr-del", f"ovngw-gw-{gw['id']}")
    report = _audit(admin_api, tenant, kind="gateway")
    # The switch-side links (tenant and external network); the router's rows went with it.
    assert sorted((f["kind"], f["problem"], f["table"], f["id"], f["row"])
                  for f in report["findings"]) == sorted(
        ("gw-link", "orphan", "Logical_Switch_Port", gw["id"], link["name"])
        for link in links), report
    assert len(links) == 2
    repaired = _audit(admin_api, tenant, repair=True, kind="gateway")
    assert repaired["remaining"] == []
    assert owned(nbctl, "Logical_Switch_Port", kind="gw-link", parent=gw["id"]) == []


def test_every_registered_kind_is_audited(app: Any) -> None:
    """A new kind must implement repair() (services.drift.Repairable) and be named in the
    audit's `kind` parameter."""
    from gateway.kinds import KINDS
    from gateway.schemas.audit import KINDS as AUDITED
    from gateway.services.drift import Repairable

    assert set(AUDITED) == {kind.service.kind for kind in KINDS}
    services = app.extensions["gateway"].services
    assert [k.service.kind for k in KINDS
            if not isinstance(services.of(k.service), Repairable)] == []


def test_admin_only_and_strict_queries(api: ApiClient, admin_api: ApiClient) -> None:
    for method, path in (("GET", "/v1/audit"), ("POST", "/v1/audit/repair")):
        resp = api.request(method, path)
        assert resp.status_code == 403, resp.get_data(as_text=True)
        assert resp.mimetype == "application/problem+json"
    for query, field in (("kind=router", "kind"), ("tenant=Not_A_Tenant", "tenant"),
                         ("bogus=1", "bogus")):
        for method, path in (("GET", "/v1/audit"), ("POST", "/v1/audit/repair")):
            resp = admin_api.request(method, f"{path}?{query}")
            assert resp.status_code == 400, resp.get_data(as_text=True)
            assert any(field in k for k in resp.get_json()["errors"]), resp.get_json()
    empty = admin_api.get(f"/v1/audit?tenant={unique('nobody')}").get_json()
    assert empty == {"clean": True, "checked": 0, "repaired": False, "findings": []}


def _cli(nb_db: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OVN_NB_DB": nb_db}
    env.pop("GATEWAY_JWT_SECRET", None)  # the audit serves nothing: no token settings
    return subprocess.run([sys.executable, "-m", "gateway.cli", "audit", *args],
                          capture_output=True, text=True, timeout=120, env=env)


def test_cli_exit_codes(api: ApiClient, nb_sandbox: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.62.0.0/24")
    port = api.port(net["id"])
    db = nb_sandbox.nb_unix
    clean = _cli(db, "--tenant", api.tenant)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "checked 2 resources: no findings" in clean.stdout
    nbctl("lsp-set-addresses", port["id"], "0a:58:00:00:00:97 10.62.0.250")
    drift = _cli(db, "--tenant", api.tenant, "-o", "json")
    assert drift.returncode == 1, drift.stdout + drift.stderr
    report = json.loads(drift.stdout)
    assert _keys(report) == {("port", port["id"], "changed", "Logical_Switch_Port",
                              "addresses")}
    fixed = _cli(db, "--tenant", api.tenant, "--kind", "port", "--repair")
    assert fixed.returncode == 1, fixed.stdout + fixed.stderr
    assert "repaired: 1 restored, 0 remaining" in fixed.stdout
    assert _cli(db, "--tenant", api.tenant).returncode == 0
    assert _cli(db, "--kind", "router").returncode == 2
    bad = _cli(db, "--tenant", "Not_A_Tenant")
    assert bad.returncode == 2 and "--tenant" in bad.stderr
    gone = _cli("unix:/nonexistent/nb.sock", "--timeout", "1")
    assert gone.returncode == 2 and "cannot connect" in gone.stderr

"""Concurrent writers: one gateway with many request threads, and two gateway instances
(separate OVSDB connections, as two processes would have) racing on the same rows."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from helpers.api import ApiClient, unique
from helpers.nb import as_list, dhcp_rows, owned, switch


def race(apps: list[Any], tenant: str, n: int,
         call: Callable[[ApiClient, int], Any], scope: str = "read write") -> list[Any]:
    """Run call(client, i) for i in range(n) at once, request i on apps[i % len(apps)],
    each in its own thread with its own test client."""
    barrier = threading.Barrier(n, timeout=30)

    def one(i: int) -> Any:
        client = ApiClient(apps[i % len(apps)].test_client(), tenant, scope)
        barrier.wait()
        return call(client, i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def _assert_distinct_ports(nbctl: Any, network_id: str, responses: list[Any], n: int) -> None:
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: n}, [r.get_json() for r in responses if r.status_code != 201][:3]
    ports = [r.get_json() for r in responses]
    ips = [p["ips"][0] for p in ports]
    macs = [p["mac"] for p in ports]
    assert len(set(ips)) == n, Counter(ips).most_common(3)
    assert len(set(macs)) == n, Counter(macs).most_common(3)
    assert len({p["id"] for p in ports}) == n

    rows = owned(nbctl, "Logical_Switch_Port", kind="port", parent=network_id)
    assert len(rows) == n
    addresses = [as_list(r["addresses"])[0].split() for r in rows]
    assert len({a[0] for a in addresses}) == n  # macs in OVN
    assert len({a[1] for a in addresses}) == n  # ips in OVN
    assert {a[1] for a in addresses} == set(ips)
    ls = switch(nbctl, network_id)
    assert ls is not None and len(as_list(ls["ports"])) == n


def test_concurrent_port_creates_one_gateway(app: Any, tenant: str, nbctl: Any) -> None:
    api = ApiClient(app.test_client(), tenant)
    net = api.network(cidr="10.80.0.0/24")
    responses = race([app], tenant, 50, lambda c, i: c.post(
        f"/v1/networks/{net['id']}/ports", {"name": f"p{i}"}))
    _assert_distinct_ports(nbctl, net["id"], responses, 50)
    assert {r.get_json()["ips"][0] for r in responses} == {f"10.80.0.{i}" for i in range(2, 52)}


def test_concurrent_port_creates_two_gateways(app: Any, second_app: Any, tenant: str,
                                              nbctl: Any) -> None:
    api = ApiClient(app.test_client(), tenant)
    net = api.network(cidr="10.81.0.0/24")
    responses = race([app, second_app], tenant, 50, lambda c, i: c.post(
        f"/v1/networks/{net['id']}/ports", {"name": f"p{i}"}))
    _assert_distinct_ports(nbctl, net["id"], responses, 50)
    # both gateways see the same 50 ports
    for application in (app, second_app):
        listed = ApiClient(application.test_client(), tenant).get(
            f"/v1/networks/{net['id']}/ports?limit=1000").get_json()["items"]
        assert len(listed) == 50


def test_same_requested_ip_race(app: Any, second_app: Any, tenant: str, nbctl: Any) -> None:
    api = ApiClient(app.test_client(), tenant)
    net = api.network(cidr="10.83.0.0/24")
    responses = race([app, second_app], tenant, 10, lambda c, i: c.post(
        f"/v1/networks/{net['id']}/ports", {"name": f"p{i}", "ips": ["10.83.0.50"]}))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 9
    assert len(owned(nbctl, "Logical_Switch_Port", kind="port", parent=net["id"])) == 1


def test_same_requested_mac_race(app: Any, second_app: Any, tenant: str, nbctl: Any) -> None:
    api = ApiClient(app.test_client(), tenant)
    net = api.network(cidr="10.84.0.0/24")
    responses = race([app, second_app], tenant, 10, lambda c, i: c.post(
        f"/v1/networks/{net['id']}/ports", {"name": f"p{i}", "mac": "0a:58:0a:54:00:99"}))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 9
    assert len(owned(nbctl, "Logical_Switch_Port", kind="port", parent=net["id"])) == 1


def test_readdress_race(app: Any, second_app: Any, tenant: str, nbctl: Any) -> None:
    """Ten existing ports PATCHed to the same new address at once: one gets it."""
    api = ApiClient(app.test_client(), tenant)
    net = api.network(cidr="10.85.0.0/24")
    ports = [api.port(net["id"]) for _ in range(10)]
    responses = race([app, second_app], tenant, 10, lambda c, i: c.patch(
        f"/v1/ports/{ports[i]['id']}", {"ips": ["10.85.0.200"]}))
    assert sorted(r.status_code for r in responses) == [200] + [409] * 9
    rows = owned(nbctl, "Logical_Switch_Port", kind="port", parent=net["id"])
    ips = [as_list(r["addresses"])[0].split()[1] for r in rows]
    assert len(ips) == 10 and len(set(ips)) == 10
    assert ips.count("10.85.0.200") == 1


def test_if_match_race(app: Any, second_app: Any, tenant: str, nbctl: Any) -> None:
    api = ApiClient(app.test_client(), tenant)
    net = api.network(cidr="10.86.0.0/24")
    responses = race([app, second_app], tenant, 10, lambda c, i: c.patch(
        f"/v1/networks/{net['id']}", {"description": f"writer {i}"},
        headers={"If-Match": '"1"'}))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 412: 9}, statuses
    winner = next(r.get_json() for r in responses if r.status_code == 200)
    assert winner["revision"] == 2
    for application in (app, second_app):
        got = ApiClient(application.test_client(), tenant).get(f"/v1/networks/{net['id']}")
        assert got.get_json()["description"] == winner["description"]
        assert got.get_json()["revision"] == 2
    ls = switch(nbctl, net["id"])
    assert ls is not None and ls["external_ids"]["ovn-nb-gateway:revision"] == "2"


def test_unconditional_patch_race_loses_no_update(app: Any, second_app: Any,
                                                  tenant: str) -> None:
    """Ten PATCHes each adding its own label: every one lands, the revision counts them."""
    api = ApiClient(app.test_client(), tenant)
    net = api.network(cidr="10.87.0.0/24")
    responses = race([app, second_app], tenant, 10, lambda c, i: c.patch(
        f"/v1/networks/{net['id']}", {"labels": {f"k{i}": "v"}}))
    assert Counter(r.status_code for r in responses) == {200: 10}
    got = api.get(f"/v1/networks/{net['id']}").get_json()
    assert got["labels"] == {f"k{i}": "v" for i in range(10)}
    assert got["revision"] == 11
    assert sorted(r.get_json()["revision"] for r in responses) == list(range(2, 12))


@pytest.mark.parametrize("attempt", range(3))
def test_duplicate_name_race(app: Any, second_app: Any, tenant: str, nbctl: Any,
                             attempt: int) -> None:
    # the tenant exists already: the race is on its lock, not on creating its row
    ApiClient(app.test_client(), tenant).network(cidr="10.88.255.0/24")
    name = unique("race")
    responses = race([app, second_app], tenant, 10, lambda c, i: c.post(
        "/v1/networks", {"name": name, "cidr": f"10.88.{i}.0/24"}))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: 9}, statuses
    rows = owned(nbctl, "Logical_Switch", kind="network", tenant=tenant)
    assert [r["external_ids"]["ovn-nb-gateway:name"] for r in rows].count(name) == 1
    assert len(rows) == 2


@pytest.mark.parametrize("attempt", range(3))
def test_idempotency_key_race(app: Any, second_app: Any, tenant: str, nbctl: Any,
                              attempt: int) -> None:
    ApiClient(app.test_client(), tenant).network(cidr="10.89.255.0/24")
    body = {"name": unique("idem"), "cidr": "10.89.0.0/24"}
    responses = race([app, second_app], tenant, 10, lambda c, i: c.post(
        "/v1/networks", body, headers={"Idempotency-Key": "same-key"}))
    assert all(r.status_code in (200, 201) for r in responses), \
        [r.get_json() for r in responses if r.status_code not in (200, 201)][:2]
    assert len({r.get_json()["id"] for r in responses}) == 1
    assert len(owned(nbctl, "Logical_Switch", kind="network", tenant=tenant)) == 2


def test_port_creates_racing_dhcp_disable(app: Any, second_app: Any, tenant: str,
                                          nbctl: Any) -> None:
    """Whatever the order, afterwards no port points at a DHCP row and none is left."""
    api = ApiClient(app.test_client(), tenant)
    net = api.network(cidr="10.90.0.0/24")

    def call(c: ApiClient, i: int) -> Any:
        if i == 5:
            return c.patch(f"/v1/networks/{net['id']}", {"dhcp": {"enabled": False}})
        return c.post(f"/v1/networks/{net['id']}/ports", {"name": f"p{i}"})

    responses = race([app, second_app], tenant, 12, call)
    assert Counter(r.status_code for r in responses) == {201: 11, 200: 1}, \
        [r.get_json() for r in responses if r.status_code >= 300][:2]
    assert dhcp_rows(nbctl, net["id"]) == []
    rows = owned(nbctl, "Logical_Switch_Port", kind="port", parent=net["id"])
    assert len(rows) == 11
    assert all(as_list(r["dhcpv4_options"]) == [] for r in rows)


def test_port_creates_racing_cascade_delete(app: Any, second_app: Any, tenant: str,
                                            nbctl: Any) -> None:
    """A network deleted while ports are being added leaves no orphan rows behind."""
    api = ApiClient(app.test_client(), tenant)
    net = api.network(cidr="10.91.0.0/24")
    api.port(net["id"])

    def call(c: ApiClient, i: int) -> Any:
        if i == 4:
            return c.delete(f"/v1/networks/{net['id']}?cascade=true")
        return c.post(f"/v1/networks/{net['id']}/ports", {"name": f"p{i}"})

    responses = race([app, second_app], tenant, 10, call)
    statuses = Counter(r.status_code for r in responses)
    assert statuses[204] == 1 and statuses[201] + statuses[404] == 9, statuses
    assert switch(nbctl, net["id"]) is None
    assert owned(nbctl, "Logical_Switch_Port", kind="port", parent=net["id"]) == []
    assert dhcp_rows(nbctl, net["id"]) == []
    assert api.get("/v1/ports").get_json()["items"] == []
    tenant_rows = owned(nbctl, "Port_Group", kind="tenant", id=tenant)
    assert len(tenant_rows) == 1 and as_list(tenant_rows[0]["ports"]) == []


@pytest.mark.parametrize("attempt", range(2))
def test_rename_race(app: Any, second_app: Any, tenant: str, nbctl: Any,
                     attempt: int) -> None:
    api = ApiClient(app.test_client(), tenant)
    nets = [api.network(cidr=f"10.92.{i}.0/24") for i in range(6)]
    name = unique("target")
    responses = race([app, second_app], tenant, 6, lambda c, i: c.patch(
        f"/v1/networks/{nets[i]['id']}", {"name": name}))
    assert Counter(r.status_code for r in responses) == {200: 1, 409: 5}
    rows = owned(nbctl, "Logical_Switch", kind="network", tenant=tenant)
    assert [r["external_ids"]["ovn-nb-gateway:name"] for r in rows].count(name) == 1


def _policy_rows_match_ports(api: ApiClient, nbctl: Any) -> None:
    """Every policy's port group and every peer address set of the tenant hold exactly what
    the ports that exist now give them."""
    from gateway.services import policy_compiler as pc

    ports = api.get("/v1/ports?limit=1000").get_json()["items"]
    lsp_uuid = {r["name"]: r["_uuid"] for r in owned(nbctl, "Logical_Switch_Port",
                                                       kind="port", tenant=api.tenant)}
    assert set(lsp_uuid) == {p["id"] for p in ports}
    groups = {r["external_ids"]["ovn-nb-gateway:id"]: r
              for r in owned(nbctl, "Port_Group", kind="policy", tenant=api.tenant)}
    for policy in api.get("/v1/policies").get_json()["items"]:
        want = {lsp_uuid[p["id"]] for p in ports if pc.selects(policy, p)}
        assert set(as_list(groups[policy["id"]]["ports"])) == want, policy["name"]
        for selector in pc.peer_selectors(policy).values():
            for family in (4, 6):
                name = pc.address_set_name(api.tenant, selector, family)
                (row,) = [r for r in owned(nbctl, "Address_Set", tenant=api.tenant)
                          if r["name"] == name]
                ips = {ip for p in ports if pc.peer_selects(selector, p) for ip in p["ips"]
                       if (":" in ip) == (family == 6)}
                assert set(as_list(row["addresses"])) == ips, (policy["name"], name)
    tenant_row = owned(nbctl, "Port_Group", kind="tenant", id=api.tenant)[0]
    assert set(as_list(tenant_row["ports"])) == set(lsp_uuid.values())


@pytest.mark.parametrize("attempt", range(3))
def test_cascade_delete_racing_policy_and_port_writes(app: Any, second_app: Any,
                                                      tenant: str, nbctl: Any,
                                                      attempt: int) -> None:
    """A network's cascade delete updates the tenant's shared policy rows; port and policy
    writes racing it on two gateways must leave every group and peer set exact."""
    api = ApiClient(app.test_client(), tenant)
    doomed = api.network(cidr="10.93.0.0/24")
    kept = api.network(cidr="10.94.0.0/24")
    for i in range(4):
        api.port(doomed["id"], labels={"app": "db" if i % 2 else "web"})
    relabelled = [api.port(kept["id"], labels={"app": "web"}) for _ in range(3)]
    web = {"name": unique("web"), "selector": {"app": "web"},
           "ingress": [{"action": "allow", "peers": [{"selector": {"app": "db"}}]}]}
    policy = api.post("/v1/policies", web).get_json()

    def call(c: ApiClient, i: int) -> Any:
        if i == 0:
            return c.delete(f"/v1/networks/{doomed['id']}?cascade=true")
        if i < 4:
            return c.patch(f"/v1/ports/{relabelled[i - 1]['id']}", {"labels": {"app": "db"}})
        if i < 7:
            return c.post(f"/v1/networks/{kept['id']}/ports",
                          {"name": f"n{i}", "labels": {"app": "db" if i % 2 else "web"}})
        if i == 7:
            return c.patch(f"/v1/policies/{policy['id']}",
                           {"egress": [{"action": "allow",
                                        "peers": [{"selector": {"app": "web"}}]}]})
        return c.post("/v1/policies", {"name": f"p{i}", "selector": {"app": "db"},
                                        "ingress": [{"action": "allow", "peers": [
                                            {"selector": {"app": "db"}}]}]})

    responses = race([app, second_app], tenant, 10, call)
    assert all(r.status_code < 300 for r in responses), \
        [r.get_json() for r in responses if r.status_code >= 300][:2]
    assert switch(nbctl, doomed["id"]) is None
    _policy_rows_match_ports(api, nbctl)


@pytest.mark.parametrize("attempt", range(2))
def test_external_addresses_never_collide_under_concurrent_creates(
        app: Any, second_app: Any, tenant: str, attempt: int) -> None:
    """Gateways and floating IPs racing on two gateways for one external network's pool."""
    admin = ApiClient(app.test_client(), unique("ops"), "admin")
    ext = admin.post("/v1/external-networks", {
        "name": unique("ext"), "cidr": "172.20.0.0/24", "physical_network": "physnet1",
        "allocation_pools": [{"start": "172.20.0.10", "end": "172.20.0.29"}]}).get_json()

    def call(c: ApiClient, i: int) -> Any:
        if i % 3 == 0:
            return c.post("/v1/gateways", {"name": f"g{i}",
                                           "external": {"network_id": ext["id"]}})
        return c.post("/v1/floating-ips", {"name": f"f{i}", "external_network_id": ext["id"]})

    responses = race([app, second_app], tenant, 12, call)
    assert all(r.status_code == 201 for r in responses), \
        [r.get_json() for r in responses if r.status_code != 201][:2]
    ips = [(r.get_json().get("external") or {}).get("ip") or r.get_json()["ip"]
           for r in responses]
    assert len(set(ips)) == 12, sorted(ips)

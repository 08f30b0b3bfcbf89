"""Tenant quotas and usage (admin only), and the 409 when a create would exceed a quota."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import DEFAULT_QUOTAS

from helpers.api import ApiClient, unique
from helpers.problems import errors_of

FAMILIES = set(DEFAULT_QUOTAS)


def quotas(admin_api: Any, tenant: str) -> dict[str, int]:
    resp = admin_api.get(f"/v1/tenants/{tenant}/quotas")
    assert resp.status_code == 200, resp.get_json()
    return dict(resp.get_json())


def usage(admin_api: Any, tenant: str) -> dict[str, int]:
    resp = admin_api.get(f"/v1/tenants/{tenant}/usage")
    assert resp.status_code == 200, resp.get_json()
    return dict(resp.get_json())


def set_quotas(admin_api: Any, tenant: str, **limits: Any) -> dict[str, int]:
    resp = admin_api.patch(f"/v1/tenants/{tenant}/quotas", limits)
    assert resp.status_code == 200, resp.get_json()
    return dict(resp.get_json())


# -- reading and changing quotas ----------------------------------------------------------------


def test_defaults_come_from_settings(admin_api: Any, settings: Any) -> None:
    fresh = unique("fresh")
    got = quotas(admin_api, fresh)
    assert got == dict(settings.quotas)
    assert set(got) == FAMILIES
    assert usage(admin_api, fresh) == dict.fromkeys(FAMILIES, 0)


def test_override_and_null_restores_default(admin_api: Any, api: Any, other_api: Any,
                                            settings: Any) -> None:
    defaults = dict(settings.quotas)
    got = set_quotas(admin_api, api.tenant, networks=7, dns_records=0)
    assert got == {**defaults, "networks": 7, "dns_records": 0}
    assert quotas(admin_api, api.tenant) == got
    assert quotas(admin_api, other_api.tenant) == defaults  # per tenant
    got = set_quotas(admin_api, api.tenant, ports=3)
    assert got == {**defaults, "networks": 7, "dns_records": 0, "ports": 3}
    got = set_quotas(admin_api, api.tenant, networks=None)
    assert got == {**defaults, "dns_records": 0, "ports": 3}
    got = set_quotas(admin_api, api.tenant, dns_records=None, ports=None)
    assert got == defaults
    assert quotas(admin_api, api.tenant) == defaults
    # an empty patch changes nothing
    assert set_quotas(admin_api, api.tenant) == defaults


def test_families_not_counted_yet_can_be_set(admin_api: Any, api: Any) -> None:
    got = set_quotas(admin_api, api.tenant, load_balancers=0, gateways=1, floating_ips=2)
    assert (got["load_balancers"], got["gateways"], got["floating_ips"]) == (0, 1, 2)


@pytest.mark.parametrize(("patch", "field"), [
    ({"networks": -1}, "networks"),
    ({"ports": 1_000_001}, "ports"),
    ({"policies": "many"}, "policies"),
    ({"policies": 1.5}, "policies"),
    ({"colour": 3}, "colour"),
])
def test_bad_patch_is_400(admin_api: Any, api: Any, settings: Any, patch: dict[str, Any],
                          field: str) -> None:
    resp = admin_api.patch(f"/v1/tenants/{api.tenant}/quotas", patch)
    assert resp.status_code == 400, resp.get_json()
    assert field in errors_of(resp)
    assert quotas(admin_api, api.tenant) == dict(settings.quotas)


def test_lowering_below_usage_is_409_and_atomic(admin_api: Any, api: Any,
                                                settings: Any) -> None:
    net = api.network(cidr="10.130.0.0/24")
    api.network(cidr="10.131.0.0/24")
    api.port(net["id"])
    resp = admin_api.patch(f"/v1/tenants/{api.tenant}/quotas", {"networks": 1})
    assert resp.status_code == 409, resp.get_json()
    assert "networks" in errors_of(resp)
    assert "2" in resp.get_json()["detail"]
    # one bad family fails the whole patch
    resp = admin_api.patch(f"/v1/tenants/{api.tenant}/quotas", {"policies": 5, "ports": 0})
    assert resp.status_code == 409, resp.get_json()
    assert "ports" in errors_of(resp)
    assert quotas(admin_api, api.tenant) == dict(settings.quotas)
    # exactly the usage is fine
    got = set_quotas(admin_api, api.tenant, networks=2, ports=1)
    assert (got["networks"], got["ports"]) == (2, 1)


def test_usage_counts_the_tenants_own_resources(admin_api: Any, api: Any,
                                                other_api: Any) -> None:
    net1 = api.network(cidr="10.132.0.0/24")
    net2 = api.network(cidr="10.133.0.0/24")
    for net in (net1, net1, net2):
        api.port(net["id"])
    for _ in range(2):
        assert api.post("/v1/policies", {"name": unique("pol")}).status_code == 201
    rec = api.post("/v1/dns-records", {"name": unique("r"), "fqdn": f"u.{unique('z')}.example",
                                       "ips": ["10.0.0.1"]})
    assert rec.status_code == 201
    # the other tenant's resources never count
    theirs = other_api.network(cidr="10.132.0.0/24")
    other_api.port(theirs["id"])
    assert other_api.post("/v1/policies", {"name": unique("pol")}).status_code == 201
    got = usage(admin_api, api.tenant)
    assert got == {**dict.fromkeys(FAMILIES, 0), "networks": 2, "ports": 3, "policies": 2,
                   "dns_records": 1}
    assert usage(admin_api, other_api.tenant) == {
        **dict.fromkeys(FAMILIES, 0), "networks": 1, "ports": 1, "policies": 1}
    # deletes are counted down
    assert api.delete(f"/v1/networks/{net1['id']}?cascade=true").status_code == 204
    assert api.delete(f"/v1/dns-records/{rec.get_json()['id']}").status_code == 204
    got = usage(admin_api, api.tenant)
    assert (got["networks"], got["ports"], got["dns_records"]) == (1, 1, 0)


# -- who may call -------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["read write", "read", "networks:write policies:write dns:write"])
def test_non_admin_is_403(client: Any, scope: str) -> None:
    caller = ApiClient(client, unique("t"), scope)
    for tenant in (caller.tenant, unique("someone")):
        for resp in (caller.get(f"/v1/tenants/{tenant}/quotas"),
                     caller.get(f"/v1/tenants/{tenant}/usage"),
                     caller.patch(f"/v1/tenants/{tenant}/quotas", {"networks": 1000})):
            assert resp.status_code == 403, resp.get_json()
            assert resp.mimetype == "application/problem+json"
    assert ApiClient(client, caller.tenant, "admin").get(
        f"/v1/tenants/{caller.tenant}/quotas").get_json()["networks"] == DEFAULT_QUOTAS[
        "networks"]


def test_no_token_is_401(client: Any, api: Any) -> None:
    resp = client.get(f"/v1/tenants/{api.tenant}/quotas")
    assert resp.status_code == 401
    assert "Bearer" in resp.headers.get("WWW-Authenticate", "")


@pytest.mark.parametrize("tenant", ["Bad_Tenant", "-lead", "a" * 64, "UPPER", "sp%20ace",
                                    "dot.ted"])
def test_bad_tenant_in_path_is_400(admin_api: Any, tenant: str) -> None:
    for resp in (admin_api.get(f"/v1/tenants/{tenant}/quotas"),
                 admin_api.get(f"/v1/tenants/{tenant}/usage"),
                 admin_api.patch(f"/v1/tenants/{tenant}/quotas", {"networks": 1})):
        assert resp.status_code == 400, resp.get_json()
        assert "tenant" in errors_of(resp)


def test_longest_tenant_is_fine(admin_api: Any) -> None:
    tenant = ("q" + unique("x").replace("-", "") + "z" * 63)[:63]
    assert set_quotas(admin_api, tenant, networks=1)["networks"] == 1


# -- exceeding a quota --------------------------------------------------------------------------


def test_network_quota_exceeded_is_409(admin_api: Any, api: Any) -> None:
    set_quotas(admin_api, api.tenant, networks=1)
    api.network(cidr="10.134.0.0/24")
    resp = api.post("/v1/networks", {"name": unique("n"), "cidr": "10.135.0.0/24"})
    assert resp.status_code == 409, resp.get_json()
    assert resp.mimetype == "application/problem+json"
    detail = resp.get_json()["detail"]
    assert "quota" in detail and "networks" in detail and "1" in detail
    assert len(api.get("/v1/networks").get_json()["items"]) == 1
    # an admin creating for the tenant is held to it too
    resp = admin_api.post("/v1/networks", {"name": unique("n"), "cidr": "10.135.0.0/24",
                                           "tenant_id": api.tenant})
    assert resp.status_code == 409, resp.get_json()
    # raising it lets the create through
    set_quotas(admin_api, api.tenant, networks=2)
    api.network(cidr="10.135.0.0/24")


def test_port_quota_exceeded_is_409(admin_api: Any, api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.136.0.0/24")
    set_quotas(admin_api, api.tenant, ports=2)
    first = api.port(net["id"])
    api.port(net["id"])
    resp = api.post(f"/v1/networks/{net['id']}/ports", {"name": unique("p")})
    assert resp.status_code == 409, resp.get_json()
    detail = resp.get_json()["detail"]
    assert "quota" in detail and "ports" in detail and "2" in detail
    assert len(api.get(f"/v1/ports?network_id={net['id']}").get_json()["items"]) == 2
    # freeing one makes room again
    assert api.delete(f"/v1/ports/{first['id']}").status_code == 204
    api.port(net["id"])


def test_zero_quota_blocks_the_first_create(admin_api: Any, api: Any) -> None:
    set_quotas(admin_api, api.tenant, policies=0)
    resp = api.post("/v1/policies", {"name": unique("pol")})
    assert resp.status_code == 409, resp.get_json()
    assert "quota" in resp.get_json()["detail"]


def test_quota_is_per_tenant(admin_api: Any, api: Any, other_api: Any) -> None:
    set_quotas(admin_api, api.tenant, networks=0)
    assert api.post("/v1/networks", {"name": unique("n"),
                                     "cidr": "10.137.0.0/24"}).status_code == 409
    other_api.network(cidr="10.137.0.0/24")


def test_automatic_dns_records_never_push_usage_over_the_quota(admin_api: Any,
                                                              api: Any) -> None:
    """Automatic records either do not count against dns_records, or are held to it: usage
    over the quota would block every later user record and every lowering of the quota."""
    net = api.network(cidr="10.138.0.0/24", dns_domain=f"{unique('q')}.example")
    set_quotas(admin_api, api.tenant, dns_records=1)
    assert api.post("/v1/dns-records", {"name": unique("r"), "fqdn": f"u.{unique('z')}.example",
                                        "ips": ["10.0.0.1"]}).status_code == 201
    resp = api.post(f"/v1/networks/{net['id']}/ports", {"name": unique("p"), "hostname": "h"})
    assert resp.status_code in (201, 409), resp.get_json()
    got = usage(admin_api, api.tenant)
    assert got["dns_records"] <= quotas(admin_api, api.tenant)["dns_records"], got

"""The contract's conventions: request ids, problem bodies, ETag / If-Match, idempotency,
pagination and filters, body size, admin scope, and rows owned by other tools."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from helpers.api import ApiClient, token, unique
from helpers.nb import dhcp_rows, lsp, owned, switch, v4_dhcp_of_network

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "request_id", "errors"}


def assert_problem(resp: Any, status: int, path: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.data[:500])
    assert resp.mimetype == "application/problem+json", resp.mimetype
    body = resp.get_json(force=True)
    assert PROBLEM_KEYS <= set(body), f"missing members {PROBLEM_KEYS - set(body)}: {body}"
    assert body["status"] == status
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["request_id"] == resp.headers["X-Request-ID"]
    if path is not None:
        assert body["instance"] == path
    errors = body["errors"]
    assert isinstance(errors, dict), errors
    for key, messages in errors.items():
        assert isinstance(key, str)
        assert isinstance(messages, list) and messages
        assert all(isinstance(m, str) for m in messages)
    return body


# -- X-Request-ID ----------------------------------------------------------------------------


def test_request_id_echoed_on_success_and_error(api: Any, client: Any) -> None:
    rid = "req-" + uuid.uuid4().hex
    for resp in (api.get("/v1/networks", headers={"X-Request-ID": rid}),
                 api.post("/v1/networks", {"name": unique("n"), "cidr": "10.0.0.0/24"},
                          headers={"X-Request-ID": rid}),
                 api.get(f"/v1/networks/{uuid.uuid4()}", headers={"X-Request-ID": rid}),
                 api.post("/v1/networks", {"name": "x"}, headers={"X-Request-ID": rid}),
                 client.get("/v1/networks", headers={"X-Request-ID": rid}),
                 client.get("/healthz", headers={"X-Request-ID": rid})):
        assert resp.headers.get("X-Request-ID") == rid, (resp.status_code, resp.headers)
        if resp.status_code >= 400:
            assert resp.get_json(force=True)["request_id"] == rid


def test_request_id_generated_when_absent(api: Any, client: Any) -> None:
    seen = set()
    for resp in (api.get("/v1/networks"), api.get("/v1/networks"),
                 api.get(f"/v1/networks/{uuid.uuid4()}"), client.get("/v1/networks"),
                 client.get("/healthz"), client.get("/readyz"),
                 api.post("/v1/networks", {"cidr": "nope"})):
        rid = resp.headers.get("X-Request-ID")
        assert rid, (resp.status_code, resp.headers)
        seen.add(rid)
        if resp.status_code >= 400:
            assert resp.get_json(force=True)["request_id"] == rid
    assert len(seen) == 7  # a fresh id for every request


# -- problem+json ----------------------------------------------------------------------------


def test_problem_400(api: Any) -> None:
    body = assert_problem(api.post("/v1/networks", {"name": unique("n"), "cidr": "10.0.0.1/24"}),
                          400, "/v1/networks")
    assert "cidr" in body["errors"]


def test_problem_401(client: Any) -> None:
    resp = client.get("/v1/networks")
    assert_problem(resp, 401, "/v1/networks")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = client.get("/v1/networks", headers={"Authorization": "Bearer not-a-jwt"})
    assert_problem(resp, 401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    wrong_key = token("t1", secret="another-secret-" + "y" * 40)
    resp = client.get("/v1/networks", headers={"Authorization": f"Bearer {wrong_key}"})
    assert_problem(resp, 401)
    expired = token("t1", ttl=-120)
    resp = client.get("/v1/networks", headers={"Authorization": f"Bearer {expired}"})
    assert_problem(resp, 401)


def test_problem_403(client: Any, tenant: str) -> None:
    reader = ApiClient(client, tenant, "read")
    assert reader.get("/v1/networks").status_code == 200
    assert_problem(reader.post("/v1/networks", {"name": unique("n"), "cidr": "10.0.0.0/24"}),
                   403, "/v1/networks")
    unrelated = ApiClient(client, tenant, "policies:write")
    assert_problem(unrelated.get("/v1/networks"), 403)
    family = ApiClient(client, tenant, "networks:write")
    net = family.network(cidr="10.0.0.0/24")
    assert_problem(reader.delete(f"/v1/networks/{net['id']}"), 403)
    assert reader.get(f"/v1/networks/{net['id']}").status_code == 200


def test_problem_404(api: Any) -> None:
    path = f"/v1/networks/{uuid.uuid4()}"
    assert_problem(api.get(path), 404, path)
    path = f"/v1/ports/{uuid.uuid4()}"
    assert_problem(api.get(path), 404, path)


def test_problem_409(api: Any) -> None:
    net = api.network(cidr="10.0.0.0/24")
    body = assert_problem(api.post("/v1/networks", {"name": net["name"], "cidr": "10.1.0.0/24"}),
                          409, "/v1/networks")
    assert "name" in body["errors"]


def test_problem_412(api: Any) -> None:
    net = api.network(cidr="10.0.0.0/24")
    path = f"/v1/networks/{net['id']}"
    assert_problem(api.patch(path, {"description": "x"}, headers={"If-Match": '"7"'}), 412, path)


def test_problem_413(api: Any) -> None:
    big = {"name": unique("n"), "cidr": "10.0.0.0/24", "description": "x" * (1 << 20)}
    assert_problem(api.post("/v1/networks", big), 413, "/v1/networks")
    assert api.get("/v1/networks").get_json()["items"] == []


def test_body_just_under_the_limit_is_not_413(api: Any) -> None:
    body = {"name": unique("n"), "cidr": "10.0.0.0/24", "description": "x" * ((1 << 20) - 200)}
    assert len(json.dumps(body)) < 1 << 20
    resp = api.post("/v1/networks", body)
    body_out = assert_problem(resp, 400)  # too long a description, but read and judged
    assert "description" in body_out["errors"]


def test_problem_422_idempotency_mismatch(api: Any) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    assert api.post("/v1/networks", {"name": unique("n"), "cidr": "10.0.0.0/24"},
                    headers=key).status_code == 201
    assert_problem(api.post("/v1/networks", {"name": unique("n"), "cidr": "10.0.0.0/24"},
                            headers=key), 422, "/v1/networks")


# -- ETag and If-Match -----------------------------------------------------------------------


def test_etag_is_revision_and_grows(api: Any) -> None:
    net = api.network(cidr="10.0.0.0/24")
    path = f"/v1/networks/{net['id']}"
    revisions = [net["revision"]]
    for i in range(3):
        resp = api.patch(path, {"description": f"change {i}"})
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        assert resp.headers["ETag"] == f'"{body["revision"]}"'
        revisions.append(body["revision"])
        got = api.get(path)
        assert got.headers["ETag"] == f'"{body["revision"]}"'
        assert got.get_json()["revision"] == body["revision"]
        assert got.get_json()["updated_at"] >= net["updated_at"]
    assert revisions == sorted(set(revisions)), revisions
    assert revisions[0] == 1


@pytest.mark.parametrize("patch", [{}, {"description": "same"}, {"labels": {}},
                                   {"labels": {"a": "1"}}, {"gateway_ip": None},
                                   {"gateway_ip": "10.0.0.1"}, {"dhcp": {"lease_time": 43200}}])
def test_patch_without_change_keeps_revision(api: Any, patch: dict[str, Any]) -> None:
    """An ETag names a representation: a PATCH that changes nothing must not move it."""
    net = api.network(cidr="10.0.0.0/24", description="same", labels={"a": "1"})
    path = f"/v1/networks/{net['id']}"
    resp = api.patch(path, patch)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["revision"] == 1
    assert resp.headers["ETag"] == '"1"'
    assert api.get(path).get_json() == net


def test_timestamps_on_patch(api: Any) -> None:
    net = api.network(cidr="10.0.0.0/24")
    resp = api.patch(f"/v1/networks/{net['id']}", {"description": "x"})
    body = resp.get_json()
    assert body["created_at"] == net["created_at"]
    assert body["updated_at"] >= net["updated_at"]
    assert body["id"] == net["id"] and body["tenant_id"] == net["tenant_id"]


def test_if_match_stale_is_412_and_changes_nothing(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.0.0.0/24")
    path = f"/v1/networks/{net['id']}"
    assert api.patch(path, {"description": "v2"}).status_code == 200
    ls_before = switch(nbctl, net["id"])
    dhcp_before = v4_dhcp_of_network(nbctl, net["id"])
    resp = api.patch(path, {"description": "v3", "dhcp": {"lease_time": 600}},
                     headers={"If-Match": '"1"'})
    assert_problem(resp, 412, path)
    assert_problem(api.delete(path, headers={"If-Match": '"1"'}), 412, path)
    assert switch(nbctl, net["id"]) == ls_before
    assert v4_dhcp_of_network(nbctl, net["id"]) == dhcp_before
    got = api.get(path).get_json()
    assert got["revision"] == 2 and got["description"] == "v2"


def test_if_match_current_succeeds(api: Any) -> None:
    net = api.network(cidr="10.0.0.0/24")
    path = f"/v1/networks/{net['id']}"
    resp = api.patch(path, {"description": "a"}, headers={"If-Match": '"1"'})
    assert resp.status_code == 200, resp.get_json()
    etag = resp.headers["ETag"]
    assert etag == '"2"'
    resp = api.patch(path, {"description": "b"}, headers={"If-Match": etag})
    assert resp.status_code == 200
    assert resp.get_json()["revision"] == 3
    assert api.delete(path, headers={"If-Match": '"3"'}).status_code == 204
    assert api.get(path).status_code == 404


def test_if_match_on_ports(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.0.0.0/24")
    port = api.port(net["id"])
    path = f"/v1/ports/{port['id']}"
    before = lsp(nbctl, port["id"])
    assert_problem(api.patch(path, {"enabled": False}, headers={"If-Match": '"5"'}), 412)
    assert_problem(api.delete(path, headers={"If-Match": '"5"'}), 412)
    assert lsp(nbctl, port["id"]) == before
    resp = api.patch(path, {"enabled": False}, headers={"If-Match": '"1"'})
    assert resp.status_code == 200 and resp.headers["ETag"] == '"2"'
    assert api.delete(path, headers={"If-Match": '"2"'}).status_code == 204


@pytest.mark.parametrize("value", ["banana", '"abc"', '"1", "2"', "1.5", '"-1"'])
def test_malformed_if_match_is_400(api: Any, value: str) -> None:
    net = api.network(cidr="10.0.0.0/24")
    path = f"/v1/networks/{net['id']}"
    assert_problem(api.patch(path, {"description": "x"}, headers={"If-Match": value}), 400)
    assert_problem(api.delete(path, headers={"If-Match": value}), 400)
    assert api.get(path).get_json()["revision"] == 1


# -- Idempotency-Key -------------------------------------------------------------------------


def test_idempotent_retry_returns_original(api: Any, nbctl: Any) -> None:
    body = {"name": unique("n"), "cidr": "10.0.0.0/24", "labels": {"a": "b"}}
    key = {"Idempotency-Key": "retry-" + uuid.uuid4().hex}
    first = api.post("/v1/networks", body, headers=key)
    assert first.status_code == 201
    again = api.post("/v1/networks", body, headers=key)
    assert again.status_code in (200, 201)
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.get_json() == first.get_json()
    assert again.headers.get("Location") in (None, first.headers["Location"])
    assert len(owned(nbctl, "Logical_Switch", kind="network", tenant=api.tenant)) == 1
    assert len(api.get("/v1/networks").get_json()["items"]) == 1
    # the same key with another body: 422, nothing new
    resp = api.post("/v1/networks", {**body, "cidr": "10.1.0.0/24"}, headers=key)
    assert_problem(resp, 422)
    assert len(owned(nbctl, "Logical_Switch", kind="network", tenant=api.tenant)) == 1
    # a different key with the same body is a second create, hence a name conflict
    other = api.post("/v1/networks", body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert other.status_code == 409


def test_idempotency_key_is_per_tenant(api: Any, other_api: Any) -> None:
    body = {"name": unique("n"), "cidr": "10.0.0.0/24"}
    key = {"Idempotency-Key": "shared-" + uuid.uuid4().hex}
    mine = api.post("/v1/networks", body, headers=key)
    theirs = other_api.post("/v1/networks", body, headers=key)
    assert mine.status_code == 201 and theirs.status_code == 201
    assert mine.get_json()["id"] != theirs.get_json()["id"]
    assert theirs.get_json()["tenant_id"] == other_api.tenant
    assert [n["id"] for n in other_api.get("/v1/networks").get_json()["items"]] == \
        [theirs.get_json()["id"]]


def test_idempotent_port_create(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.0.0.0/24")
    body = {"name": unique("p")}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = api.post(f"/v1/networks/{net['id']}/ports", body, headers=key)
    again = api.post(f"/v1/networks/{net['id']}/ports", body, headers=key)
    assert first.status_code == 201 and again.status_code in (200, 201)
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.get_json()["ips"] == first.get_json()["ips"]
    assert len(owned(nbctl, "Logical_Switch_Port", kind="port", parent=net["id"])) == 1


# -- lists: pagination and filters ---------------------------------------------------------


def _page_through(api: Any, query: str, limit: int) -> tuple[list[str], list[int]]:
    ids: list[str] = []
    sizes: list[int] = []
    cursor = None
    for _ in range(100):
        url = f"/v1/networks?limit={limit}{query}" + (f"&cursor={cursor}" if cursor else "")
        resp = api.get(url)
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        assert len(body["items"]) <= limit
        ids += [n["id"] for n in body["items"]]
        sizes.append(len(body["items"]))
        cursor = body["next_cursor"]
        if cursor is None:
            return ids, sizes
    raise AssertionError("pagination never ended")


def test_pagination(api: Any) -> None:
    created = {api.network(cidr=f"10.{i}.0.0/24")["id"] for i in range(7)}
    full = [n["id"] for n in api.get("/v1/networks").get_json()["items"]]
    assert set(full) == created
    assert [n["id"] for n in api.get("/v1/networks").get_json()["items"]] == full  # stable
    ids, sizes = _page_through(api, "", 3)
    assert ids == full  # same order, no duplicates, nothing missing
    assert sizes == [3, 3, 1]
    ids, sizes = _page_through(api, "", 7)
    assert ids == full and sizes == [7]
    ids, _ = _page_through(api, "", 1)
    assert ids == full


def test_cursor_survives_deletion_of_its_item(api: Any) -> None:
    for i in range(5):
        api.network(cidr=f"10.{i}.0.0/24")
    full = [n["id"] for n in api.get("/v1/networks").get_json()["items"]]
    page = api.get("/v1/networks?limit=2").get_json()
    assert [n["id"] for n in page["items"]] == full[:2]
    assert api.delete(f"/v1/networks/{full[1]}").status_code == 204
    rest = api.get(f"/v1/networks?limit=10&cursor={page['next_cursor']}").get_json()
    assert [n["id"] for n in rest["items"]] == full[2:]
    assert rest["next_cursor"] is None


def test_pagination_with_filter(api: Any) -> None:
    tagged = set()
    for i in range(7):
        labels = {"tier": "web"} if i % 2 == 0 else {"tier": "db"}
        net = api.network(cidr=f"10.{i}.0.0/24", labels=labels)
        if i % 2 == 0:
            tagged.add(net["id"])
    ids, _ = _page_through(api, "&label=tier=web", 2)
    assert len(ids) == len(set(ids)) == 4
    assert set(ids) == tagged


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=-1", "limit=abc",
                                   "cursor=garbage", "cursor=", "label=novalue",
                                   "name=Not_A_Name"])
def test_bad_list_query_is_400(api: Any, query: str) -> None:
    api.network(cidr="10.0.0.0/24")
    assert_problem(api.get(f"/v1/networks?{query}"), 400)


def test_limit_bounds_accepted(api: Any) -> None:
    api.network(cidr="10.0.0.0/24")
    assert len(api.get("/v1/networks?limit=1").get_json()["items"]) == 1
    assert len(api.get("/v1/networks?limit=1000").get_json()["items"]) == 1


def test_filters(api: Any) -> None:
    a = api.network(cidr="10.0.0.0/24", labels={"env": "prod", "team": "red"})
    b = api.network(cidr="10.1.0.0/24", labels={"env": "prod", "team": "blue"})
    c = api.network(cidr="10.2.0.0/24", labels={"env": "dev"})

    def ids(query: str) -> set[str]:
        resp = api.get(f"/v1/networks?{query}")
        assert resp.status_code == 200, resp.get_json()
        return {n["id"] for n in resp.get_json()["items"]}

    assert ids(f"name={a['name']}") == {a["id"]}
    assert ids(f"name={unique('none')}") == set()
    assert ids("label=env=prod") == {a["id"], b["id"]}
    assert ids("label=env=prod&label=team=blue") == {b["id"]}
    assert ids("label=env=dev&label=team=blue") == set()
    assert ids("label=env=qa") == set()
    assert ids(f"name={c['name']}&label=env=dev") == {c["id"]}
    assert ids(f"name={c['name']}&label=env=prod") == set()


def test_port_list_filters(api: Any) -> None:
    net = api.network(cidr="10.0.0.0/24")
    web = api.port(net["id"], labels={"app": "web"})
    api.port(net["id"], labels={"app": "db"})
    resp = api.get(f"/v1/ports?label=app=web&network_id={net['id']}")
    assert [p["id"] for p in resp.get_json()["items"]] == [web["id"]]
    resp = api.get(f"/v1/networks/{net['id']}/ports?name={web['name']}")
    assert [p["id"] for p in resp.get_json()["items"]] == [web["id"]]


# -- admin ---------------------------------------------------------------------------------


def test_admin_lists_any_tenant(api: Any, other_api: Any, admin_api: Any) -> None:
    name = unique("shared")
    mine = api.network(name, cidr="10.0.0.0/24")
    theirs = other_api.network(name, cidr="10.0.0.0/24")
    resp = admin_api.get(f"/v1/networks?tenant={api.tenant}")
    assert resp.status_code == 200
    assert [n["id"] for n in resp.get_json()["items"]] == [mine["id"]]
    resp = admin_api.get(f"/v1/networks?tenant={other_api.tenant}")
    assert [n["id"] for n in resp.get_json()["items"]] == [theirs["id"]]
    # without ?tenant: every tenant
    resp = admin_api.get(f"/v1/networks?name={name}")
    assert resp.status_code == 200
    assert {(n["id"], n["tenant_id"]) for n in resp.get_json()["items"]} == {
        (mine["id"], api.tenant), (theirs["id"], other_api.tenant)}
    ids, _ = _page_through(admin_api, "", 1000)
    assert {mine["id"], theirs["id"]} <= set(ids)
    assert len(ids) == len(set(ids))
    # admins reach one resource of any tenant by id
    assert admin_api.get(f"/v1/networks/{mine['id']}").get_json()["tenant_id"] == api.tenant


def test_tenant_cannot_list_another_tenant(api: Any, other_api: Any) -> None:
    theirs = other_api.network(cidr="10.0.0.0/24")
    resp = api.get(f"/v1/networks?tenant={other_api.tenant}")
    assert resp.status_code in (400, 403, 404) or theirs["id"] not in {
        n["id"] for n in resp.get_json()["items"]}


def test_admin_creates_for_a_tenant(api: Any, admin_api: Any, nbctl: Any) -> None:
    resp = admin_api.post("/v1/networks", {"name": unique("n"), "cidr": "10.0.0.0/24",
                                           "tenant_id": api.tenant})
    assert resp.status_code == 201, resp.get_json()
    net = resp.get_json()
    assert net["tenant_id"] == api.tenant
    assert api.get(f"/v1/networks/{net['id']}").status_code == 200
    assert [n["id"] for n in api.get("/v1/networks").get_json()["items"]] == [net["id"]]
    ls = switch(nbctl, net["id"])
    assert ls is not None and ls["external_ids"]["ovn-nb-gateway:tenant"] == api.tenant
    # the tenant's name space applies
    resp = admin_api.post("/v1/networks", {"name": net["name"], "cidr": "10.1.0.0/24",
                                           "tenant_id": api.tenant})
    assert_problem(resp, 409)
    resp = admin_api.post("/v1/networks", {"name": unique("n"), "cidr": "10.1.0.0/24",
                                           "tenant_id": "Not A Tenant"})
    assert_problem(resp, 400)
    # admin adds a port to the tenant's network; the port belongs to that tenant
    resp = admin_api.post(f"/v1/networks/{net['id']}/ports", {"name": unique("p")})
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["tenant_id"] == api.tenant
    assert len(api.get("/v1/ports").get_json()["items"]) == 1


# -- rows owned by other tools -------------------------------------------------------------

GW = "ovn-nb-gateway:"


@pytest.fixture
def foreign(nbctl: Any, tenant: str, client: Any) -> Iterator[dict[str, Any]]:
    """Rows created beside the gateway: a switch with a port, a DHCP_Options row and
    switches whose external_ids copy only part of the gateway's ownership keys. Removed
    afterwards, so they cannot disturb other tests sharing the database."""
    tag = uuid.uuid4().hex[:8]
    ls = f"foreign-{tag}"
    lsp_name = str(uuid.uuid4())
    nbctl("ls-add", ls)
    nbctl("lsp-add", ls, lsp_name)
    nbctl("lsp-set-addresses", lsp_name, "0a:58:0a:46:00:02 10.70.0.2")
    dhcp_uuid = nbctl("create", "DHCP_Options", "cidr=10.70.0.0/24",
                      "options:router=10.70.0.1", "options:lease_time=3600",
                      "external_ids:owner=someone-else").strip()
    nbctl("lsp-set-dhcpv4-options", lsp_name, dhcp_uuid)
    ids = {"no_tenant": str(uuid.uuid4()), "no_doc": str(uuid.uuid4())}
    mimics = {
        # kind, tenant and name, but no id
        f"mimic-noid-{tag}": [f'external_ids:"{GW}kind"=network',
                              f'external_ids:"{GW}tenant"={tenant}',
                              f'external_ids:"{GW}name"=mimic-noid-{tag}'],
        # kind and id, but no tenant
        f"mimic-notenant-{tag}": [f'external_ids:"{GW}kind"=network',
                                  f'external_ids:"{GW}id"={ids["no_tenant"]}',
                                  f'external_ids:"{GW}name"=mimic-notenant-{tag}'],
        # kind, id, tenant and name, but not the document the gateway keeps
        f"mimic-nodoc-{tag}": [f'external_ids:"{GW}kind"=network',
                               f'external_ids:"{GW}id"={ids["no_doc"]}',
                               f'external_ids:"{GW}tenant"={tenant}',
                               f'external_ids:"{GW}name"=mimic-nodoc-{tag}'],
    }
    for name, extra in mimics.items():
        nbctl("ls-add", name)
        nbctl("set", "Logical_Switch", name, *extra)
    # A committed gateway write after them means the gateway's replica holds these rows
    # (updates arrive in order), so the tests below see them being ignored, not missed.
    assert ApiClient(client, unique("sync")).post(
        "/v1/networks", {"name": "sync", "cidr": "10.250.0.0/24"}).status_code == 201
    switches = [ls, *mimics]
    yield {"switches": switches, "lsp": lsp_name, "dhcp": dhcp_uuid, "ids": ids,
           "names": [*mimics]}
    for name in switches:
        nbctl("--if-exists", "ls-del", name)
    nbctl("--if-exists", "destroy", "DHCP_Options", dhcp_uuid)


def _snapshot(nbctl: Any, foreign: dict[str, Any]) -> dict[str, str]:
    snap = {f"ls/{s}": nbctl("list", "Logical_Switch", s) for s in foreign["switches"]}
    snap["lsp"] = nbctl("list", "Logical_Switch_Port", foreign["lsp"])
    snap["dhcp"] = nbctl("list", "DHCP_Options", foreign["dhcp"])
    return snap


def _listed(client: Any, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        resp = client.get(path + (f"&cursor={cursor}" if cursor else ""))
        assert resp.status_code == 200, (path, resp.get_json())
        items += resp.get_json()["items"]
        cursor = resp.get_json()["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination never ended")


def _assert_unlisted(items: list[dict[str, Any]], foreign: dict[str, Any]) -> None:
    seen = {i["id"] for i in items} | {i["name"] for i in items}
    hidden = set(foreign["names"]) | set(foreign["ids"].values()) | {foreign["lsp"]}
    assert not seen & hidden


def test_foreign_rows_not_in_tenant_lists(api: Any, foreign: dict[str, Any]) -> None:
    api.network(cidr="10.70.0.0/24")  # the tenant has a network of its own too
    for path in ("/v1/networks?limit=1000", "/v1/ports?limit=1000"):
        items = _listed(api, path)
        _assert_unlisted(items, foreign)
    assert len(_listed(api, "/v1/networks?limit=1000")) == 1
    for name in foreign["names"]:
        resp = api.get(f"/v1/networks?name={name}")
        assert resp.status_code == 200 and resp.get_json()["items"] == []


def test_foreign_rows_not_in_admin_lists(api: Any, admin_api: Any,
                                         foreign: dict[str, Any]) -> None:
    for path in ("/v1/networks?limit=1000", "/v1/ports?limit=1000",
                 f"/v1/networks?limit=1000&tenant={api.tenant}"):
        _assert_unlisted(_listed(admin_api, path), foreign)


@pytest.mark.parametrize("variant", ["no_tenant", "no_doc"])
def test_mimic_switch_ids_are_404(api: Any, admin_api: Any, nbctl: Any,
                                  foreign: dict[str, Any], variant: str) -> None:
    before = _snapshot(nbctl, foreign)
    resource_id = foreign["ids"][variant]
    for client in (api, admin_api):
        path = f"/v1/networks/{resource_id}"
        assert client.get(path).status_code == 404
        assert client.patch(path, {"description": "x"}).status_code == 404
        assert client.delete(path).status_code == 404
        assert client.delete(path + "?cascade=true").status_code == 404
        assert client.get(path + "/ports").status_code == 404
        assert client.post(path + "/ports", {"name": unique("p")}).status_code == 404
    assert _snapshot(nbctl, foreign) == before


def test_foreign_port_id_is_404(api: Any, admin_api: Any, nbctl: Any,
                                foreign: dict[str, Any]) -> None:
    before = _snapshot(nbctl, foreign)
    for client in (api, admin_api):
        path = f"/v1/ports/{foreign['lsp']}"
        assert client.get(path).status_code == 404
        assert client.patch(path, {"enabled": False}).status_code == 404
        assert client.delete(path).status_code == 404
    assert _snapshot(nbctl, foreign) == before


def test_foreign_rows_untouched_by_gateway_writes(api: Any, nbctl: Any,
                                                  foreign: dict[str, Any]) -> None:
    before = _snapshot(nbctl, foreign)
    net = api.network(cidr="10.70.0.0/24", ipv6_cidr="fd00:70::/64",
                      dhcp={"dns_servers": ["10.70.0.53"]})
    api.port(net["id"], dhcp={"lease_time": 120}, ips=["10.70.0.2"])  # as the foreign lsp
    api.port(net["id"], mac="0a:58:0a:46:00:03")
    same_name = api.network(foreign["names"][0], cidr="10.71.0.0/24")
    assert api.patch(f"/v1/networks/{net['id']}",
                     {"dhcp": {"lease_time": 900}}).status_code == 200
    assert api.patch(f"/v1/networks/{net['id']}",
                     {"dhcp": {"enabled": False}}).status_code == 200
    assert api.delete(f"/v1/networks/{net['id']}?cascade=true").status_code == 204
    assert api.delete(f"/v1/networks/{same_name['id']}").status_code == 204
    assert _snapshot(nbctl, foreign) == before
    assert dhcp_rows(nbctl, net["id"]) == []


def test_foreign_port_in_gateway_switch_is_ignored(api: Any, nbctl: Any) -> None:
    """Someone adds a port by hand to a gateway network: not listed, and the gateway
    leaves it in place when it changes the network and adds ports."""
    net = api.network(cidr="10.72.0.0/24")
    ls = switch(nbctl, net["id"])
    assert ls is not None
    intruder = f"intruder-{uuid.uuid4().hex[:8]}"
    nbctl("lsp-add", ls["name"], intruder)
    try:
        before = nbctl("list", "Logical_Switch_Port", intruder)
        port = api.port(net["id"])
        listed = api.get(f"/v1/networks/{net['id']}/ports").get_json()["items"]
        assert [p["id"] for p in listed] == [port["id"]]
        assert api.patch(f"/v1/networks/{net['id']}", {"description": "x"}).status_code == 200
        assert nbctl("list", "Logical_Switch_Port", intruder) == before
    finally:
        nbctl("--if-exists", "lsp-del", intruder)

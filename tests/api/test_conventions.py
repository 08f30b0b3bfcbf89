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


# -- request bodies --------------------------------------------------------------------------

HOSTILE_BODIES = {
    "100k open brackets": "[" * 100_000,
    "labels nested 5000 deep": ('{"name": "n", "cidr": "10.0.0.0/24", "labels": '
                                + '{"a": ' * 5000 + '"x"' + "}" * 5001),
    "integer of 5000 digits": '{"name": "n", "cidr": "10.0.0.0/24", "mtu": ' + "9" * 5000 + "}",
    "nested 100 deep": '{"name": "n", "cidr": "10.0.0.0/24", "dhcp": ' + "[" * 100
                       + "]" * 100 + "}",
    "NaN": '{"name": "n", "cidr": "10.0.0.0/24", "mtu": NaN}',
    "Infinity": '{"name": "n", "cidr": "10.0.0.0/24", "mtu": -Infinity}',
    "not UTF-8": b'{"name": "n", "cidr": "10.0.0.0/24", "description": "\xff"}',
    "truncated": '{"name": "n", "cidr": "10.0.0.0/24"',
}


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
def test_hostile_json_is_400_naming_the_body(api: Any, method: str, body: str | bytes) -> None:
    path = "/v1/networks"
    if method == "PATCH":
        path = f"/v1/networks/{api.network(cidr='10.0.0.0/24')['id']}"
    resp = api.request(method, path, data=body, content_type="application/json")
    problem = assert_problem(resp, 400, path)
    assert list(problem["errors"]) == ["body"], problem
    if method == "POST":
        assert api.get("/v1/networks").get_json()["items"] == []
    else:
        assert api.get(path).get_json()["revision"] == 1


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x",
                                          "application/xml", "application/json-seq",
                                          "application/merge-patch+json", None])
def test_post_with_another_content_type_is_415(api: Any, content_type: str | None) -> None:
    body = json.dumps({"name": unique("n"), "cidr": "10.0.0.0/24"})
    headers = {} if content_type is None else {"Content-Type": content_type}
    resp = api.request("POST", "/v1/networks", data=body, headers=headers)
    problem = assert_problem(resp, 415, "/v1/networks")
    assert "Content-Type" in problem["errors"], problem
    assert resp.headers["Accept-Post"] == "application/json"
    assert api.get("/v1/networks").get_json()["items"] == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "application/json-patch+json", None])
def test_patch_with_another_content_type_is_415(api: Any, content_type: str | None) -> None:
    net = api.network(cidr="10.0.0.0/24")
    path = f"/v1/networks/{net['id']}"
    headers = {} if content_type is None else {"Content-Type": content_type}
    resp = api.request("PATCH", path, data=json.dumps({"description": "x"}), headers=headers)
    assert_problem(resp, 415, path)
    assert resp.headers["Accept-Patch"] == "application/merge-patch+json, application/json"
    assert api.get(path).get_json() == net


@pytest.mark.parametrize("content_type", ["application/merge-patch+json", "application/json",
                                          "application/json; charset=utf-8"])
def test_patch_accepts_merge_patch_and_json(api: Any, content_type: str) -> None:
    net = api.network(cidr="10.0.0.0/24")
    resp = api.request("PATCH", f"/v1/networks/{net['id']}",
                       data=json.dumps({"description": "x"}), content_type=content_type)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["description"] == "x"


def test_post_without_a_body_is_400_for_the_fields(api: Any) -> None:
    body = assert_problem(api.request("POST", "/v1/networks"), 400)
    assert {"name", "cidr"} <= set(body["errors"])


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


@pytest.mark.parametrize("value", ['W/"1"', ' W/"1" ', "W/1"])
def test_weak_if_match_never_matches(api: Any, value: str) -> None:
    """If-Match uses the strong comparison (RFC 9110, 13.1.1): a weak tag matches nothing,
    not even the current revision."""
    net = api.network(cidr="10.0.0.0/24")
    path = f"/v1/networks/{net['id']}"
    body = assert_problem(api.patch(path, {"description": "x"}, headers={"If-Match": value}),
                          412, path)
    assert "weak" in body["detail"], body
    assert_problem(api.delete(path, headers={"If-Match": value}), 412, path)
    assert api.get(path).get_json() == net


def test_if_match_star_means_any_current_revision(api: Any) -> None:
    net = api.network(cidr="10.0.0.0/24")
    path = f"/v1/networks/{net['id']}"
    resp = api.patch(path, {"description": "x"}, headers={"If-Match": "*"})
    assert resp.status_code == 200 and resp.headers["ETag"] == '"2"'
    assert api.delete(path, headers={"If-Match": "*"}).status_code == 204
    assert_problem(api.delete(path, headers={"If-Match": "*"}), 404, path)


@pytest.mark.parametrize("value", ["banana", '"abc"', '"1", "2"', "1.5", '"-1"', 'w/"1"'])
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


def _v1_endpoints() -> list[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """(method, rule, ((variable, converter class name), ...)) of every /v1 endpoint."""
    from gateway.app import create_app
    from gateway.config import Settings

    app = create_app(Settings(jwt_secret="x" * 32), start=False)
    out = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/v1/"):
            variables = tuple((name, type(conv).__name__)
                              for name, conv in rule._converters.items())
            out += [(method, rule.rule, variables) for method in sorted(rule.methods or ())
                    if method not in ("OPTIONS", "HEAD")]
    return out


V1_ENDPOINTS = _v1_endpoints()


def _concrete(rule: str, variables: tuple[tuple[str, str], ...]) -> str:
    """The rule with each variable filled by a value nobody owns."""
    path = rule
    for name, converter in variables:
        spec = path[path.index("<"):path.index(">") + 1]
        value = str(uuid.uuid4()) if converter == "UUIDConverter" \
            else ("10.0.0.9" if name == "ip" else unique("nobody"))
        path = path.replace(spec, value, 1)
    return path


@pytest.mark.parametrize(("method", "rule", "variables"), V1_ENDPOINTS,
                         ids=[f"{m} {r}" for m, r, _ in V1_ENDPOINTS])
def test_unknown_query_parameter_is_400_everywhere(admin_api: Any, method: str, rule: str,
                                                   variables: Any) -> None:
    """Like an unknown body field: named, before anything is looked up or changed."""
    path = _concrete(rule, variables)
    body = {} if method in ("POST", "PATCH", "PUT") else None
    resp = admin_api.request(method, path + "?bogus=1", body)
    problem = assert_problem(resp, 400, path)
    assert problem["errors"] == {"query.bogus": ["Unknown field."]}, problem


def test_unknown_query_parameter_beside_known_ones(api: Any) -> None:
    net = api.network(cidr="10.0.0.0/24")
    port = api.port(net["id"])
    for path in ("/v1/networks?limit=5&colour=blue", f"/v1/ports?network_id={net['id']}"
                 "&colour=blue", f"/v1/networks/{net['id']}/ports?colour=blue"):
        problem = assert_problem(api.get(path), 400)
        assert list(problem["errors"]) == ["query.colour"], problem
    # a port has no cascade: refused, and nothing is deleted
    problem = assert_problem(api.delete(f"/v1/ports/{port['id']}?cascade=true"), 400)
    assert list(problem["errors"]) == ["query.cascade"], problem
    problem = assert_problem(api.delete(f"/v1/networks/{net['id']}?cascade=true&force=1"), 400)
    assert list(problem["errors"]) == ["query.force"], problem
    assert api.get(f"/v1/ports/{port['id']}").status_code == 200
    assert api.get(f"/v1/networks/{net['id']}").status_code == 200
    # an empty query string is no parameter
    assert api.get(f"/v1/ports/{port['id']}?").status_code == 200


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


def test_label_filters_on_one_key_must_all_match(api: Any) -> None:
    db = api.network(cidr="10.0.0.0/24", labels={"app": "db"})
    api.network(cidr="10.1.0.0/24", labels={"app": "web"})

    def ids(query: str) -> list[str]:
        resp = api.get(f"/v1/networks?{query}")
        assert resp.status_code == 200, resp.get_json()
        return [n["id"] for n in resp.get_json()["items"]]

    assert ids("label=app=db&label=app=web") == []
    assert ids("label=app=web&label=app=db") == []
    assert ids("label=app=db&label=app=db") == [db["id"]]
    assert ids("label=app=") == []  # an empty value matches only an empty value


@pytest.mark.parametrize("selector", ["app!=db", "a%20b=c", "app=a%20b", "=db", "-app=db",
                                      "app=-db", "app=" + "v" * 64, "k" * 64 + "=v",
                                      "Example.com/app=db", "app=db%0A", "app%0A=db"])
def test_invalid_label_selector_is_400_naming_label(api: Any, selector: str) -> None:
    api.network(cidr="10.0.0.0/24", labels={"app": "db"})
    for path in ("/v1/networks", "/v1/ports"):
        body = assert_problem(api.get(f"{path}?label={selector}"), 400, path)
        assert list(body["errors"]) == ["label"], body


@pytest.mark.parametrize("selector", ["example.com/app=db", "app.kubernetes.io/name=x",
                                      "a_b=c.d-e", "app="])
def test_valid_label_selectors_are_accepted(api: Any, selector: str) -> None:
    assert api.get(f"/v1/networks?label={selector}").status_code == 200


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

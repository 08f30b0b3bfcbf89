"""Authentication and scopes over HTTP, the audit log, and the token-free ops endpoints.

The 401/403 matrices are built from the application's URL map, so a new /v1 endpoint is
checked without anyone remembering to add it here; an endpoint outside the scope families
the contract names fails `test_every_v1_rule_has_a_scope_family` until it is classified.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import datetime
from typing import Any

import jwt
import pytest

from gateway.app import create_app
from gateway.config import Settings

from helpers.api import SECRET, ApiClient, token, unique

PROBLEM = "application/problem+json"
ADMIN = "<admin>"          # admin-only endpoints
EXTERNAL = "<external>"    # shared objects: tenants may read, only admins write
FAMILIES = ("networks", "policies", "load-balancers", "gateways", "dns")

# The contract's scope family of every /v1 path prefix (API.md, "Resources").
FAMILY_BY_PREFIX = {
    "/v1/networks": "networks",
    "/v1/ports": "networks",
    "/v1/policies": "policies",
    "/v1/load-balancers": "load-balancers",
    "/v1/gateways": "gateways",
    "/v1/floating-ips": "gateways",
    "/v1/dns-records": "dns",
    "/v1/external-networks": EXTERNAL,
    "/v1/tenants": ADMIN,
    "/v1/audit": ADMIN,
    "/v1/connectivity-checks": "networks",
    "/v1/events": "any family",
}
ANY_FAMILY = "any family"
READ_METHODS = ("GET", "HEAD")
# POSTs that only read (API.md: connectivity checks are a read of the networks family).
READ_POSTS = ("/v1/connectivity-checks",)
SKIP_METHODS = ("OPTIONS",)


def _v1_rules() -> list[tuple[str, str, dict[str, str]]]:
    """(rule, method, {variable: converter class name}) of every /v1 endpoint."""
    app = create_app(Settings(jwt_secret="x" * 32), start=False)
    out = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/v1/"):
            continue
        variables = {name: type(conv).__name__ for name, conv in rule._converters.items()}
        for method in sorted(rule.methods or ()):
            if method not in SKIP_METHODS:
                out.append((rule.rule, method, variables))
    return out


V1 = _v1_rules()


def family_of(rule: str) -> str | None:
    for prefix, family in FAMILY_BY_PREFIX.items():
        if rule == prefix or rule.startswith(prefix + "/"):
            return family
    return None


def concrete(rule: str, variables: dict[str, str]) -> str:
    """The rule with each variable filled by a value nobody owns."""
    path = rule
    for name, conv in variables.items():
        value = str(uuid.uuid4()) if conv == "UUIDConverter" else unique("nobody")
        path = path.replace(f"<{_spec(rule, name)}>", value)
    return path


def _spec(rule: str, name: str) -> str:
    start = rule.index(f":{name}>") if f":{name}>" in rule else rule.index(f"<{name}>")
    open_at = rule.rindex("<", 0, start + 1)
    return rule[open_at + 1:rule.index(">", open_at)]


def call(client: Any, method: str, path: str, bearer: str | None = None,
         auth: str | None = None, body: Any = None) -> Any:
    headers = {}
    if auth is not None:
        headers["Authorization"] = auth
    elif bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    kwargs: dict[str, Any] = {}
    if method in ("POST", "PATCH", "PUT"):
        kwargs["data"] = json.dumps({} if body is None else body)
        kwargs["content_type"] = ("application/merge-patch+json" if method == "PATCH"
                                  else "application/json")
    return client.open(path, method=method, headers=headers, **kwargs)


def assert_problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    if resp.request.method == "HEAD":
        return {}
    assert resp.mimetype == PROBLEM, resp.mimetype
    body = resp.get_json(force=True)
    assert body["status"] == status and body["title"], body
    return dict(body)


def assert_401(resp: Any) -> None:
    assert_problem(resp, 401)
    challenge = resp.headers.get("WWW-Authenticate", "")
    assert challenge.split(" ", 1)[0].lower() == "bearer", challenge


def hs256(payload: dict[str, Any], secret: str = SECRET, **headers: Any) -> str:
    return jwt.encode(payload, secret, algorithm="HS256", headers=headers or None)


def good_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": "mallory", "tenant": "acme", "scope": "read write", "iat": now,
              "exp": now + 300}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _unsigned(payload: dict[str, Any]) -> str:
    import base64

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(payload)}."


# --------------------------------------------------------------------------------------
# 401
# --------------------------------------------------------------------------------------

BAD_AUTH = {
    "no header": None,
    "empty header": "",
    "basic scheme": "Basic dXNlcjpwYXNz",
    "token scheme": f"Token {token('acme')}",
    "bearer without token": "Bearer",
    "bearer blank token": "Bearer    ",
    "garbage": "Bearer garbage",
    "three garbage parts": "Bearer aaa.bbb.ccc",
    "expired": "Bearer " + hs256(good_claims(iat=int(time.time()) - 900,
                                             exp=int(time.time()) - 600)),
    "missing exp": "Bearer " + hs256(good_claims(exp=None)),
    "alg none": "Bearer " + _unsigned(good_claims()),
    "other secret": "Bearer " + hs256(good_claims(), "not-the-secret-" + "q" * 40),
    "missing tenant": "Bearer " + hs256(good_claims(tenant=None)),
    "missing sub": "Bearer " + hs256(good_claims(sub=None)),
    "tenant uppercase": "Bearer " + hs256(good_claims(tenant="Acme")),
    "tenant underscore": "Bearer " + hs256(good_claims(tenant="acme_corp")),
    "tenant too long": "Bearer " + hs256(good_claims(tenant="a" * 64)),
    "tenant not a string": "Bearer " + hs256(good_claims(tenant=["acme"])),
    "two tokens": f"Bearer {token('acme')} {token('acme')}",
}


@pytest.mark.parametrize("auth", BAD_AUTH.values(), ids=BAD_AUTH.keys())
def test_bad_credentials_are_401(client: Any, auth: str | None) -> None:
    assert_401(call(client, "GET", "/v1/networks", auth=auth))


@pytest.mark.parametrize("auth", BAD_AUTH.values(), ids=BAD_AUTH.keys())
def test_bad_credentials_create_nothing(client: Any, auth: str | None) -> None:
    tenant = unique("t")
    forged = "Bearer " + hs256(good_claims(tenant=tenant), "not-the-secret-" + "q" * 40)
    resp = call(client, "POST", "/v1/networks", auth=auth if auth is not None else forged,
                body={"name": "net", "cidr": "10.1.0.0/24"})
    assert_401(resp)


NO_CREDENTIALS = ("no header", "empty header", "basic scheme", "token scheme",
                  "bearer without token", "bearer blank token")


@pytest.mark.parametrize("case", BAD_AUTH.keys())
def test_challenge_names_an_error_only_for_a_bad_token(client: Any, case: str) -> None:
    """RFC 6750 3.1: a request without (bearer) credentials gets the bare challenge; one
    whose token does not verify gets error="invalid_token"."""
    resp = call(client, "GET", "/v1/networks", auth=BAD_AUTH[case])
    assert_401(resp)
    want = "Bearer" if case in NO_CREDENTIALS else 'Bearer error="invalid_token"'
    assert resp.headers["WWW-Authenticate"] == want
    assert len(resp.headers.getlist("WWW-Authenticate")) == 1


@pytest.mark.parametrize("scope", ["write\nadmin", "read\tadmin", "write\u00a0admin",
                                   "read  admin"])
def test_scope_with_other_whitespace_is_401_never_admin(client: Any, scope: str) -> None:
    tenant = unique("t")
    bearer = hs256(good_claims(tenant=tenant, scope=scope))
    resp = call(client, "GET", f"/v1/tenants/{tenant}/quotas", bearer=bearer)
    assert_401(resp)
    assert resp.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert "scope" in resp.get_json()["detail"]


def test_exp_as_a_string_is_401(client: Any) -> None:
    bearer = hs256(good_claims(exp="9999999999"))
    assert_401(call(client, "GET", "/v1/networks", bearer=bearer))


def test_bearer_scheme_is_case_insensitive(client: Any) -> None:
    resp = call(client, "GET", "/v1/networks", auth=f"bearer {token(unique('t'))}")
    assert resp.status_code == 200


def test_401_carries_request_id(client: Any) -> None:
    resp = client.get("/v1/networks", headers={"X-Request-ID": "req-401-check"})
    assert_401(resp)
    assert resp.headers["X-Request-ID"] == "req-401-check"
    assert resp.get_json()["request_id"] == "req-401-check"


@pytest.mark.parametrize(("rule", "method", "variables"), V1,
                         ids=[f"{m} {r}" for r, m, _ in V1])
def test_every_v1_endpoint_needs_a_token(client: Any, rule: str, method: str,
                                         variables: dict[str, str]) -> None:
    """Authentication comes before existence, validation and everything else."""
    path = concrete(rule, variables)
    assert_401(call(client, method, path))
    assert_401(call(client, method, path, auth="Bearer garbage"))


@pytest.mark.parametrize(("rule", "method", "variables"), V1,
                         ids=[f"{m} {r}" for r, m, _ in V1])
def test_every_v1_endpoint_needs_a_scope(client: Any, rule: str, method: str,
                                         variables: dict[str, str]) -> None:
    path = concrete(rule, variables)
    assert_problem(call(client, method, path, bearer=token(unique("t"), "")), 403)
    assert_problem(call(client, method, path, bearer=token(unique("t"), "bogus other")), 403)


# --------------------------------------------------------------------------------------
# 403: scope per method, URL-map driven
# --------------------------------------------------------------------------------------

def test_every_v1_rule_has_a_scope_family() -> None:
    unknown = sorted({rule for rule, _, _ in V1 if family_of(rule) is None})
    assert not unknown, (
        f"/v1 rules outside the contract's scope families: {unknown}; add their prefix to "
        "FAMILY_BY_PREFIX in tests/api/test_auth_http.py")


def _scope_cases() -> list[tuple[str, str, dict[str, str], str, bool]]:
    """(rule, method, variables, scope, allowed)."""
    cases = []
    for rule, method, variables in V1:
        family = family_of(rule)
        read = method in READ_METHODS or rule in READ_POSTS
        if family == ADMIN:
            for scope in ("read write", *(f"{f}:write" for f in FAMILIES)):
                cases.append((rule, method, variables, scope, False))
            cases.append((rule, method, variables, "admin", True))
        elif family == EXTERNAL:
            cases.append((rule, method, variables, "admin", True))
            if not read:
                for scope in ("read write", *(f"{f}:write" for f in FAMILIES)):
                    cases.append((rule, method, variables, scope, False))
        elif family == ANY_FAMILY:
            # The change stream spans the families: any read scope opens it, and each
            # event is filtered by its own family's scope (tests/api/test_events.py).
            for scope in ("read", "write", "admin", *(f"{f}:{a}" for f in FAMILIES
                                                      for a in ("read", "write"))):
                cases.append((rule, method, variables, scope, True))
            cases.append((rule, method, variables, "", False))
        elif family is not None:
            cases += [
                (rule, method, variables, "read", read),
                (rule, method, variables, "write", True),
                (rule, method, variables, "read write", True),
                (rule, method, variables, f"{family}:read", read),
                (rule, method, variables, f"{family}:write", True),
                (rule, method, variables, f"{family}:read {family}:write", True),
                (rule, method, variables, "admin", True),
            ]
            for other in FAMILIES:
                if other != family:
                    cases.append((rule, method, variables, f"{other}:write", False))
                    cases.append((rule, method, variables, f"{other}:read", False))
    return cases


SCOPE_CASES = _scope_cases()


@pytest.mark.parametrize(("rule", "method", "variables", "scope", "allowed"), SCOPE_CASES,
                         ids=[f"{m} {r} [{s}]" for r, m, _, s, _ in SCOPE_CASES])
def test_scope_matrix(client: Any, rule: str, method: str, variables: dict[str, str],
                      scope: str, allowed: bool) -> None:
    """Ids nobody owns and empty bodies: an allowed call fails later (404/400), never 401/403,
    and nothing is created."""
    resp = call(client, method, concrete(rule, variables), bearer=token(unique("t"), scope))
    if allowed:
        assert resp.status_code not in (401, 403), (resp.status_code, resp.get_json())
        assert resp.status_code < 500, resp.get_data(as_text=True)
    else:
        assert_problem(resp, 403)


@pytest.fixture
def owned(api: ApiClient) -> dict[str, Any]:
    net = api.network(labels={"app": "web"})
    port = api.port(net["id"])
    return {"network": net, "port": port}


def _same_tenant(api: ApiClient, scope: str) -> ApiClient:
    return ApiClient(api.client, api.tenant, scope)


@pytest.mark.parametrize("scope", ["read", "networks:read", "networks:read policies:write"])
def test_read_only_token_reads_but_cannot_write(api: ApiClient, owned: dict[str, Any],
                                               scope: str) -> None:
    ro = _same_tenant(api, scope)
    net, port = owned["network"], owned["port"]
    assert ro.get("/v1/networks").status_code == 200
    assert ro.get(f"/v1/networks/{net['id']}").status_code == 200
    assert ro.get(f"/v1/ports/{port['id']}").status_code == 200
    assert ro.get(f"/v1/networks/{net['id']}/ports").status_code == 200
    assert ro.get("/v1/ports").status_code == 200
    assert_problem(ro.post("/v1/networks", {"name": unique("n"), "cidr": "10.5.0.0/24"}), 403)
    assert_problem(ro.post(f"/v1/networks/{net['id']}/ports", {"name": unique("p")}), 403)
    assert_problem(ro.patch(f"/v1/networks/{net['id']}", {"description": "x"}), 403)
    assert_problem(ro.patch(f"/v1/ports/{port['id']}", {"description": "x"}), 403)
    assert_problem(ro.delete(f"/v1/ports/{port['id']}"), 403)
    assert_problem(ro.delete(f"/v1/networks/{net['id']}?cascade=true"), 403)
    # Nothing changed.
    assert api.get(f"/v1/networks/{net['id']}").get_json() == net
    assert api.get(f"/v1/ports/{port['id']}").get_json()["revision"] == port["revision"]
    listed = api.get("/v1/networks").get_json()["items"]
    assert [n["id"] for n in listed] == [net["id"]]


@pytest.mark.parametrize("scope", ["networks:write", "write"])
def test_write_scope_implies_read(api: ApiClient, owned: dict[str, Any], scope: str) -> None:
    rw = _same_tenant(api, scope)
    net, port = owned["network"], owned["port"]
    assert rw.get("/v1/networks").status_code == 200
    assert rw.get(f"/v1/networks/{net['id']}").status_code == 200
    created = rw.post("/v1/networks", {"name": unique("n"), "cidr": "10.6.0.0/24"})
    assert created.status_code == 201, created.get_json()
    resp = rw.patch(f"/v1/ports/{port['id']}", {"description": "by " + scope})
    assert resp.status_code == 200, resp.get_json()
    assert rw.delete(f"/v1/ports/{port['id']}").status_code == 204
    assert rw.delete(f"/v1/networks/{created.get_json()['id']}").status_code == 204


@pytest.mark.parametrize("scope", ["policies:write", "policies:read", "dns:write",
                                   "load-balancers:write", "gateways:write"])
def test_other_family_cannot_touch_networks(api: ApiClient, owned: dict[str, Any],
                                            scope: str) -> None:
    other = _same_tenant(api, scope)
    net, port = owned["network"], owned["port"]
    for resp in (other.get("/v1/networks"), other.get(f"/v1/networks/{net['id']}"),
                 other.get(f"/v1/ports/{port['id']}"), other.get("/v1/ports"),
                 other.post("/v1/networks", {"name": unique("n"), "cidr": "10.7.0.0/24"}),
                 other.patch(f"/v1/networks/{net['id']}", {"description": "x"}),
                 other.delete(f"/v1/ports/{port['id']}")):
        assert_problem(resp, 403)
    assert api.get(f"/v1/ports/{port['id']}").status_code == 200


def test_admin_works_across_tenants(api: ApiClient, admin_api: ApiClient,
                                    owned: dict[str, Any]) -> None:
    net, port = owned["network"], owned["port"]
    got = admin_api.get(f"/v1/networks/{net['id']}")
    assert got.status_code == 200 and got.get_json()["tenant_id"] == api.tenant
    listed = admin_api.get(f"/v1/networks?tenant={api.tenant}").get_json()["items"]
    assert [n["id"] for n in listed] == [net["id"]]
    ports = admin_api.get(f"/v1/ports?tenant={api.tenant}").get_json()["items"]
    assert [p["id"] for p in ports] == [port["id"]]
    patched = admin_api.patch(f"/v1/ports/{port['id']}", {"description": "ops was here"})
    assert patched.status_code == 200, patched.get_json()
    assert patched.get_json()["tenant_id"] == api.tenant
    quotas = admin_api.get(f"/v1/tenants/{api.tenant}/quotas")
    assert quotas.status_code == 200, quotas.get_json()
    # ... and the owner sees what the admin did.
    assert api.get(f"/v1/ports/{port['id']}").get_json()["description"] == "ops was here"
    assert admin_api.delete(f"/v1/networks/{net['id']}?cascade=true").status_code == 204
    assert api.get(f"/v1/networks/{net['id']}").status_code == 404


def test_admin_only_endpoints_refuse_tenant_tokens(api: ApiClient) -> None:
    for path in (f"/v1/tenants/{api.tenant}/quotas", f"/v1/tenants/{api.tenant}/usage"):
        assert_problem(api.get(path), 403)  # even for the caller's own tenant
    assert_problem(api.patch(f"/v1/tenants/{api.tenant}/quotas", {"networks": 1000}), 403)


# --------------------------------------------------------------------------------------
# Ops endpoints: no token
# --------------------------------------------------------------------------------------

OPS = {
    "/healthz": "application/json",
    "/readyz": "application/json",
    "/metrics": "text/plain",
    "/openapi.json": "application/json",
    "/docs": "text/html",
    "/docs/static/swagger-ui-bundle.js": "javascript",
    "/docs/static/swagger-ui.css": "text/css",
}


@pytest.mark.parametrize(("path", "kind"), OPS.items(), ids=OPS.keys())
@pytest.mark.parametrize("auth", [None, "Bearer garbage"], ids=["no-token", "bad-token"])
def test_ops_endpoints_need_no_token(client: Any, path: str, kind: str,
                                     auth: str | None) -> None:
    resp = call(client, "GET", path, auth=auth)
    assert resp.status_code == 200, (path, resp.status_code)
    assert kind in resp.content_type, resp.content_type
    assert resp.get_data()
    assert resp.headers.get("X-Request-ID")


def test_docs_page_works_offline(client: Any) -> None:
    html = client.get("/docs").get_data(as_text=True)
    assert "/openapi.json" in html
    assert "http://" not in html and "https://" not in html  # no CDN


# --------------------------------------------------------------------------------------
# Audit log
# --------------------------------------------------------------------------------------

AUDIT_KEYS = {"time", "request_id", "sub", "tenant", "method", "path", "resource_id",
              "outcome"}


def _audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    lines = []
    for record in caplog.records:
        if record.name == "gateway.audit":
            lines.append(json.loads(record.getMessage()))
    return lines


def _outcome_is(line: dict[str, Any], status: int) -> bool:
    return str(status) in str(line["outcome"])


def _check_time(value: str) -> None:
    stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert stamp.tzinfo is not None, value
    assert abs(time.time() - stamp.timestamp()) < 120


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
def test_a_write_emits_one_audit_line(api: ApiClient, caplog: pytest.LogCaptureFixture,
                                      method: str) -> None:
    net = api.network()
    caplog.clear()
    caplog.set_level(logging.INFO, logger="gateway.audit")
    rid = f"audit-{uuid.uuid4().hex[:12]}"
    headers = {"X-Request-ID": rid}
    if method == "POST":
        resp = api.post("/v1/networks", {"name": unique("n"), "cidr": "10.2.0.0/24"},
                        headers=headers)
        status, path = 201, "/v1/networks"
        resource_id = resp.get_json()["id"]
    elif method == "PATCH":
        resp = api.patch(f"/v1/networks/{net['id']}", {"description": "d"}, headers=headers)
        status, path, resource_id = 200, f"/v1/networks/{net['id']}", net["id"]
    else:
        resp = api.delete(f"/v1/networks/{net['id']}", headers=headers)
        status, path, resource_id = 204, f"/v1/networks/{net['id']}", net["id"]
    assert resp.status_code == status
    lines = _audit_lines(caplog)
    assert len(lines) == 1, lines
    line = lines[0]
    assert set(line) >= AUDIT_KEYS, line
    assert line["request_id"] == rid == resp.headers["X-Request-ID"]
    assert line["sub"] == "tester"
    assert line["tenant"] == api.tenant
    assert line["method"] == method
    assert line["path"] == path
    assert line["resource_id"] == resource_id
    assert _outcome_is(line, status), line
    assert line["status"] == status, line
    _check_time(line["time"])


def test_refused_writes_are_audited_too(api: ApiClient, other_api: ApiClient,
                                        caplog: pytest.LogCaptureFixture) -> None:
    net = api.network()
    caplog.set_level(logging.INFO, logger="gateway.audit")
    caplog.clear()
    assert other_api.delete(f"/v1/networks/{net['id']}").status_code == 404
    ro = _same_tenant(api, "read")
    assert ro.patch(f"/v1/networks/{net['id']}", {"description": "x"}).status_code == 403
    lines = _audit_lines(caplog)
    assert len(lines) == 2, lines
    assert lines[0]["tenant"] == other_api.tenant and _outcome_is(lines[0], 404)
    assert lines[1]["tenant"] == api.tenant and _outcome_is(lines[1], 403)


def test_reads_are_not_audited(api: ApiClient, caplog: pytest.LogCaptureFixture) -> None:
    net = api.network()
    caplog.set_level(logging.INFO, logger="gateway.audit")
    caplog.clear()
    api.get("/v1/networks")
    api.get(f"/v1/networks/{net['id']}")
    assert _audit_lines(caplog) == []


def test_no_token_in_any_log_record(client: Any, api: ApiClient, admin_api: ApiClient,
                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    forged = hs256(good_claims(tenant=api.tenant), "not-the-secret-" + "q" * 40)
    expired = hs256(good_claims(tenant=api.tenant, exp=int(time.time()) - 600))
    tokens = [api.headers["Authorization"].split()[1],
              admin_api.headers["Authorization"].split()[1], forged, expired, "garbage-tok3n"]
    net = api.network()
    port = api.port(net["id"])
    api.patch(f"/v1/ports/{port['id']}", {"description": "x"})
    api.post("/v1/networks", {"name": "BAD NAME", "cidr": "nope"})
    admin_api.get(f"/v1/networks?tenant={api.tenant}")
    for bad in tokens[2:]:
        call(client, "POST", "/v1/networks", bearer=bad, body={"name": "x", "cidr": "1"})
        call(client, "GET", f"/v1/networks/{net['id']}", bearer=bad)
    api.delete(f"/v1/ports/{port['id']}")
    assert caplog.records, "expected at least the audit lines"
    for record in caplog.records:
        text = " ".join([record.getMessage(), str(record.args), record.exc_text or "",
                         str(getattr(record, "__dict__", ""))])
        for tok in tokens:
            signature = tok.rsplit(".", 1)[-1]
            assert tok not in text, f"token in log record {record.name}: {text[:200]}"
            if len(signature) > 10:
                assert signature not in text, f"token signature in {record.name}"
        assert "Bearer" not in record.getMessage()

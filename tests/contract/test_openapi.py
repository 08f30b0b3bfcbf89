"""The OpenAPI document: checked in and current, valid, served, complete, and obeyed.

The property-based part drives schemathesis' own strategies and checks with Hypothesis
directly (`schema[path][method].as_strategy()` + `case.call_and_validate`) against the WSGI
app. schemathesis' lazy `pytest.from_fixture(...).parametrize()` loader cannot be used with
pytest 9 (it reads the removed `Function._nodeid`), and an eager `schema.parametrize()`
cannot reach the sandbox-backed app fixture at collection time.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.app import create_app
from gateway.config import Settings
from gateway.openapi import document, to_yaml

from helpers.api import token, unique

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = ROOT / "openapi" / "openapi.yaml"
METHODS = ("get", "post", "patch", "put", "delete")
MAX_EXAMPLES = 25


def _generated() -> dict[str, Any]:
    app = create_app(Settings(jwt_secret="x" * 32), start=False)
    return document(app.extensions["gateway"].api)


GENERATED = _generated()
OPERATIONS = sorted((path, method) for path, item in GENERATED["paths"].items()
                    for method in item if method in METHODS)


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule)


# --------------------------------------------------------------------------------------
# The checked-in document
# --------------------------------------------------------------------------------------

def test_checked_in_document_is_current() -> None:
    want = to_yaml(GENERATED)
    have = CHECKED_IN.read_text() if CHECKED_IN.exists() else ""
    if have != want:
        diff = "".join(list(difflib.unified_diff(
            have.splitlines(keepends=True), want.splitlines(keepends=True),
            "openapi/openapi.yaml (checked in)", "generated from the code", n=1))[:60])
        pytest.fail("openapi/openapi.yaml is out of date with the code: run "
                    "`ovn-nb-gateway openapi` and commit the result.\n" + diff, pytrace=False)


@pytest.mark.parametrize("which", ["checked-in", "generated"])
def test_document_is_valid_openapi(which: str) -> None:
    spec = yaml.safe_load(CHECKED_IN.read_text()) if which == "checked-in" else \
        json.loads(json.dumps(GENERATED))
    validate(spec)
    assert spec["openapi"].startswith("3.")


def test_served_document_is_the_checked_in_one(client: Any, app: Any) -> None:
    resp = client.get("/openapi.json")
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    served = resp.get_json()
    assert served == yaml.safe_load(CHECKED_IN.read_text()), \
        "/openapi.json differs from openapi/openapi.yaml: run `ovn-nb-gateway openapi`"
    assert served == json.loads(json.dumps(document(app.extensions["gateway"].api)))


# --------------------------------------------------------------------------------------
# The document describes exactly the /v1 routes the server has
# --------------------------------------------------------------------------------------

def _served_operations(app: Any) -> set[tuple[str, str]]:
    out = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/v1/"):
            for method in rule.methods or ():
                if method.lower() in METHODS:
                    out.add((_openapi_path(rule.rule), method.lower()))
    return out


def test_document_and_url_map_agree() -> None:
    app = create_app(Settings(jwt_secret="x" * 32), start=False)
    served = _served_operations(app)
    documented = {(p, m) for p, m in OPERATIONS if p.startswith("/v1/")}
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"


def _security(op: dict[str, Any]) -> list[Any]:
    return op.get("security", GENERATED.get("security", []))


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_operation_documents_auth_and_errors(path: str, method: str) -> None:
    op = GENERATED["paths"][path][method]
    responses = op["responses"]
    if path.startswith("/v1/"):
        assert any("bearer" in req for req in _security(op)), "needs the bearer scheme"
        for code in ("401", "403"):
            assert code in responses, f"{method} {path} does not document {code}"
        if "{" in path:
            assert "404" in responses, f"{method} {path} does not document 404"
        if method in ("post", "patch", "put"):
            assert "400" in responses
    for code, response in responses.items():
        if code.startswith(("4", "5")):
            content = response.get("content", {})
            assert "application/problem+json" in content, f"{method} {path} {code}"
    ok = [c for c in responses if c.startswith("2")]
    assert ok, f"{method} {path} documents no success response"


CREATES = [(p, m) for p, m in OPERATIONS if m == "post" and "201" in
           GENERATED["paths"][p][m]["responses"]]


@pytest.mark.parametrize(("path", "method"), CREATES, ids=[f"{m} {p}" for p, m in CREATES])
def test_creates_document_location(path: str, method: str) -> None:
    """API.md: create answers 201 with the full resource and `Location`."""
    headers = GENERATED["paths"][path][method]["responses"]["201"].get("headers", {})
    assert "Location" in headers, f"{method.upper()} {path}: 201 does not document Location"


def test_security_scheme_is_bearer_jwt() -> None:
    schemes = GENERATED["components"]["securitySchemes"]
    assert any(s.get("type") == "http" and s.get("scheme") == "bearer"
               for s in schemes.values())


# --------------------------------------------------------------------------------------
# schemathesis: generated requests against the WSGI app
# --------------------------------------------------------------------------------------

POSITIVE_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
                   response_headers_conformance, response_schema_conformance, ignored_auth]
NEGATIVE_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
                   response_headers_conformance, response_schema_conformance,
                   negative_data_rejection]


@pytest.fixture(scope="module")
def st_schema(app: Any) -> Any:
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


class Owned:
    """Real resources of the fuzzing tenant, so that generated cases also reach existing
    objects instead of only ids nobody has. Recreated when a case deleted them."""

    def __init__(self, client: Any, tenant: str, bearer: str) -> None:
        self.client, self.tenant = client, tenant
        self.headers = {"Authorization": f"Bearer {bearer}"}
        self.ids: dict[str, str] = {}
        self.makers: dict[str, Callable[[], str]] = {
            "network_id": self._network, "port_id": self._port, "record_id": self._record,
            "policy_id": self._policy, "external_network_id": self._external,
            "gateway_id": self._gateway, "floating_ip_id": self._floating_ip,
            "load_balancer_id": self._load_balancer, "ip": lambda: "10.250.0.9",
        }

    def _made(self, key: str, path: str, make: Callable[[], str]) -> str:
        """The resource made once, again when a case deleted it."""
        made = self.ids.get(key)
        if made is None or not self._exists(path.format(made)):
            made = self.ids[key] = make()
        return made

    def _external(self) -> str:
        admin = {"Authorization": f"Bearer {token(self.tenant, 'admin')}"}

        def make() -> str:
            resp = self.client.post("/v1/external-networks", headers=admin, json={
                "name": unique("st"), "cidr": "172.31.0.0/24",
                "physical_network": "physnet1"})
            assert resp.status_code == 201, resp.get_json()
            return str(resp.get_json()["id"])
        return self._made("external_network_id", "/v1/external-networks/{}", make)

    def _gateway(self) -> str:
        return self._made("gateway_id", "/v1/gateways/{}", lambda: self._post(
            "/v1/gateways", {"name": unique("st")}))

    def _load_balancer(self) -> str:
        self._network()  # the backend's network (10.250.0.0/24)
        return self._made("load_balancer_id", "/v1/load-balancers/{}", lambda: self._post(
            "/v1/load-balancers", {"name": unique("st"), "vip": "192.0.2.9",
                                   "listeners": [{"port": 80}],
                                   "backends": [{"ip": "10.250.0.9"}]}))

    def _floating_ip(self) -> str:
        return self._made("floating_ip_id", "/v1/floating-ips/{}", lambda: self._post(
            "/v1/floating-ips", {"name": unique("st"),
                                 "external_network_id": self._external()}))

    def _post(self, path: str, body: dict[str, Any]) -> str:
        resp = self.client.post(path, json=body, headers=self.headers)
        assert resp.status_code == 201, (path, resp.get_json())
        return str(resp.get_json()["id"])

    def _exists(self, path: str) -> bool:
        return bool(self.client.get(path, headers=self.headers).status_code == 200)

    def _network(self) -> str:
        net = self.ids.get("network_id")
        if net is None or not self._exists(f"/v1/networks/{net}"):
            net = self.ids["network_id"] = self._post("/v1/networks", {
                "name": unique("st"), "cidr": "10.250.0.0/24"})
        return net

    def _port(self) -> str:
        port = self.ids.get("port_id")
        if port is None or not self._exists(f"/v1/ports/{port}"):
            port = self.ids["port_id"] = self._post(
                f"/v1/networks/{self._network()}/ports", {"name": unique("st")})
        return port

    def _record(self) -> str:
        rec = self.ids.get("record_id")
        if rec is None or not self._exists(f"/v1/dns-records/{rec}"):
            rec = self.ids["record_id"] = self._post("/v1/dns-records", {
                "name": unique("st"), "fqdn": unique("h") + ".st.example",
                "ips": ["10.250.0.9"]})
        return rec

    def _policy(self) -> str:
        pol = self.ids.get("policy_id")
        if pol is None or not self._exists(f"/v1/policies/{pol}"):
            pol = self.ids["policy_id"] = self._post("/v1/policies", {
                "name": unique("st"), "selector": {"app": "web"},
                "ingress": [{"action": "allow", "protocol": "tcp", "ports": [443]}]})
        return pol

    def value(self, name: str) -> str | None:
        if name == "tenant":
            return self.tenant
        maker = self.makers.get(name)
        return maker() if maker else None


def _run(st_schema: Any, client: Any, path: str, method: str, mode: GenerationMode,
         checks: list[Any]) -> None:
    tenant = unique("st")
    bearer = token(tenant, "admin" if path.startswith(("/v1/tenants", "/v1/external-networks"))
                   else "read write")
    owned = Owned(client, tenant, token(tenant, "read write"))
    operation = st_schema[path][method.upper()]
    counter = iter(range(1 << 30))

    # Fixed headers are not mutated by negative generation: a broken Authorization header
    # would only test the token check, which tests/api/test_auth_http.py covers.
    fixed = {"Authorization": f"Bearer {bearer}"}

    # No feedback sources: by default schemathesis seeds generation with constants it
    # extracts from the application's modules, so every code change would change the cases.
    strategy = operation.as_strategy(generation_mode=mode, headers=fixed,
                                     feedback=FeedbackSources())

    @given(case=strategy)
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    def fuzz(case: Any) -> None:
        if case.path_parameters and next(counter) % 2 == 0 and mode == GenerationMode.POSITIVE:
            for name in list(case.path_parameters):
                real = owned.value(name)
                if real is not None:
                    case.path_parameters[name] = real
        case.call_and_validate(headers=fixed, checks=checks)

    try:
        fuzz()
    except Unsatisfiable:
        if mode != GenerationMode.NEGATIVE:
            raise
        pytest.skip("the operation has nothing schemathesis can make invalid "
                    "(headers are fixed, the path parameter cannot be empty)")


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_schemathesis_positive(st_schema: Any, client: Any, path: str, method: str) -> None:
    """Schema-valid requests: never 5xx, every response as documented, auth enforced."""
    _run(st_schema, client, path, method, GenerationMode.POSITIVE, POSITIVE_CHECKS)


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_schemathesis_negative(st_schema: Any, client: Any, path: str, method: str) -> None:
    """Schema-invalid requests: rejected with a documented 4xx, never 5xx or 2xx."""
    _run(st_schema, client, path, method, GenerationMode.NEGATIVE, NEGATIVE_CHECKS)


IF_MATCH_OPS = [(p, m) for p, m in OPERATIONS if m in ("patch", "delete") and any(
    prm.get("in") == "header" and prm["name"].lower() == "if-match"
    for prm in GENERATED["paths"][p][m].get("parameters", [])
    + GENERATED["paths"][p].get("parameters", []))]
PATCH_BODIES = {"/v1/tenants/{tenant}/quotas": {"networks": 5}}


@pytest.mark.parametrize(("path", "method"), IF_MATCH_OPS,
                         ids=[f"{m} {p}" for p, m in IF_MATCH_OPS])
def test_if_match_is_honoured_where_documented(client: Any, path: str, method: str) -> None:
    """Where the document offers If-Match, a stale revision is 412 and changes nothing."""
    tenant = unique("im")
    owned = Owned(client, tenant, token(tenant, "read write"))
    bearer = token(tenant, "admin" if path.startswith(("/v1/tenants", "/v1/external-networks"))
                   else "read write")
    url = path
    for name in re.findall(r"{([^}]+)}", path):
        value = owned.value(name)
        assert value is not None, f"add a maker for {{{name}}} to Owned in this file"
        url = url.replace(f"{{{name}}}", value)
    headers = {"Authorization": f"Bearer {bearer}", "If-Match": '"987654"'}
    before = client.get(url, headers={"Authorization": f"Bearer {bearer}"}).get_json()
    body = PATCH_BODIES.get(path, {"description": "stale"}) if method == "patch" else None
    resp = client.open(url, method=method.upper(), json=body, headers=headers)
    assert resp.status_code == 412, (resp.status_code, resp.get_data(as_text=True))
    assert client.get(url, headers={"Authorization": f"Bearer {bearer}"}).get_json() == before


# Requests the fuzzer once found answered with 5xx; kept so they stay fixed whatever the
# generator happens to draw next time.
CRASHERS = [
    ("POST", "/v1/policies", {"name": "p", "selector": {},
                              "ingress": [{"action": "allow", "protocol": "tcp",
                                           "ports": ["\u00b2"]}]}),
    ("POST", "/v1/policies", {"name": "p", "selector": {},
                              "ingress": [{"action": "allow", "protocol": "tcp",
                                           "ports": ["\u2460-\u2461"]}]}),
]


@pytest.mark.parametrize(("method", "path", "body"), CRASHERS)
def test_fuzzer_findings_stay_fixed(client: Any, method: str, path: str, body: Any) -> None:
    resp = client.open(path, method=method, json=body,
                       headers={"Authorization": f"Bearer {token(unique('t'))}"})
    assert resp.status_code == 400, (resp.status_code, resp.get_data(as_text=True))
    assert resp.mimetype == "application/problem+json"


def test_every_generated_operation_is_fuzzed() -> None:
    """Guard against an empty parametrization hiding the property tests."""
    assert any(p.startswith("/v1/") for p, _ in OPERATIONS)

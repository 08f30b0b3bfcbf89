"""Tenant isolation, for every /v1 endpoint and method the application serves.

Tenant A owns a network and a port; tenant B, with full read/write scope, tries every
endpoint of the URL map with A's ids. Every item URL must answer exactly what an id that
exists nowhere answers (404 problem, never 403 or 200), lists must never show A's
resources, and A's resources and OVN rows must be unchanged afterwards. An admin sees and
acts on A's resources.

The matrix comes from `app.url_map`, so a new endpoint is checked automatically. What the
test cannot work out by itself it asks for: a path variable without a resolver in
`A_VALUES`, a POST without a valid body in `ITEM_POST_BODIES` / `CREATE_BODIES`, or an
unusual method makes `test_matrix_covers_every_v1_endpoint` (and the endpoint's own case)
fail with what to add.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.api import crud
from gateway.app import create_app, monitored
from gateway.config import Settings
from gateway.kinds import KINDS
from gateway.ovn import naming

from helpers.api import ApiClient, unique
from helpers.problems import errors_of, names_field

PROBLEM = "application/problem+json"
SKIP_METHODS = ("OPTIONS",)


@dataclass
class TenantA:
    api: ApiClient
    resources: dict[str, dict[str, Any]]  # kind -> A's resource of that kind
    label: str

    @property
    def tenant(self) -> str:
        return self.api.tenant

    @property
    def network(self) -> dict[str, Any]:
        return self.resources["network"]

    @property
    def port(self) -> dict[str, Any]:
        return self.resources["port"]

    @property
    def record(self) -> dict[str, Any]:
        return self.resources["dns-record"]

    @property
    def policy(self) -> dict[str, Any]:
        return self.resources["policy"]

    def secrets(self) -> list[str]:
        """Strings that must never reach another tenant."""
        found = [value for kind, doc in self.resources.items() if kind not in SHARED
                 for value in (doc["id"], doc["name"])]
        return [*found, self.label, self.port["mac"], self.network["dns_domain"], self.tenant]

    def with_ids(self, body: Any, shared_only: bool = False) -> Any:
        """An example body with the kinds' sample ids replaced by A's resources (or only by
        those every tenant may use)."""
        text = json.dumps(body)
        for kind in KINDS:
            if kind.service.kind in self.resources and \
                    (kind.service.shared or not shared_only):
                text = text.replace(kind.example.sample_id,
                                    self.resources[kind.service.kind]["id"])
        return json.loads(text)


# -- what the matrix needs to know about each endpoint: from the kind registry ----------

def _collection(kind: crud.Kind[Any]) -> str:
    return kind.location.removesuffix("/{id}")


def _rule_of(path: str) -> str:
    """An example's create path as its URL rule: sample ids become path variables."""
    for kind in KINDS:
        path = path.replace(kind.example.sample_id, f"<uuid:{kind.path_var}>")
    return path


def _fresh(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "name": unique(body["name"])}


# Kinds every tenant reads (admins write them): B sees A's, and may not change them.
SHARED = {kind.service.kind for kind in KINDS if kind.service.shared}
SHARED_RULES = {rule for kind in KINDS if kind.service.shared
                for rule in (_collection(kind), f"{_collection(kind)}/<uuid:{kind.path_var}>")}
ADMIN_WRITES = {_collection(kind) for kind in KINDS if kind.service.admin_writes}

# Path variable -> A's value for it.
A_VALUES: dict[str, Callable[[TenantA], str]] = {
    **{kind.path_var: (lambda a, k=kind: a.resources[k.service.kind]["id"]) for kind in KINDS},
    "tenant": lambda a: a.tenant,
    "ip": lambda a: BACKEND["ip"],  # a backend of A's load balancer (added where needed)
}
# Endpoints only admins may call at all: B gets 403 whatever the tenant in the path.
ADMIN_ONLY_PREFIXES = ("/v1/tenants/", "/v1/audit")
# A valid body for POST on an item URL (a create below another resource).
BACKEND = {"ip": "10.44.0.11"}  # inside A's network
ITEM_POST_BODIES: dict[str, Callable[[TenantA], dict[str, Any]]] = {
    **{_rule_of(kind.example.path): (lambda a, k=kind: {**_fresh(k.example.body),
                                                         "description": "from b"})
       for kind in KINDS if kind.example.path},
    "/v1/load-balancers/<uuid:load_balancer_id>/backends": lambda a: dict(BACKEND),
}
# What an admin's call on A's item needs to exist first.
ADMIN_SETUP: dict[str, Callable[[ApiClient, TenantA], Any]] = {
    "/v1/load-balancers/<uuid:load_balancer_id>/backends/<string:ip>": lambda admin, a:
        admin.post(f"/v1/load-balancers/{a.resources['load-balancer']['id']}/backends",
                   BACKEND),
}
# A valid PATCH body; the default suits every resource (all have `description`).
PATCH_BODIES: dict[str, Callable[[TenantA], dict[str, Any]]] = {
    "/v1/tenants/<string:tenant>/quotas": lambda a: {"networks": 3},
}
DEFAULT_PATCH: Callable[[TenantA], dict[str, Any]] = lambda a: {"description": "changed"}  # noqa: E731
# A valid body for POST on a collection (made by B in its own tenant), and the fields of
# such a body that may name another resource: (field, body referencing A's resource).
CREATE_BODIES: dict[str, Callable[[], dict[str, Any]]] = {
    _collection(kind): (lambda k=kind: _fresh(k.example.body))
    for kind in KINDS if not kind.example.path
}
CREATE_REFERENCES: dict[str, list[tuple[str, Callable[[TenantA], dict[str, Any]]]]] = {
    _collection(kind): [(field, lambda a, f=fragment: a.with_ids(f))
                        for field, fragment in kind.example.references]
    for kind in KINDS if not kind.example.path
}
# Query appended when an admin deletes through a rule (networks with ports need cascade).
ADMIN_DELETE_QUERY = {
    f"{_collection(kind)}/<uuid:{kind.path_var}>": "?cascade=true"
    for kind in KINDS if kind.delete_query is not None}
# POSTs that only read (they compute an answer, create nothing): per rule, bodies from B
# (given a port of B's) that name one of A's resources, with the field that names it.
READ_POSTS: dict[str, list[tuple[str, Callable[[TenantA, dict[str, Any]], dict[str, Any]]]]] = {
    "/v1/connectivity-checks": [
        ("from_port", lambda a, b: {"from_port": a.port["id"], "to": {"ip": "10.44.0.9"},
                                    "protocol": "icmp"}),
        ("to.port", lambda a, b: {"from_port": b["id"], "to": {"port": a.port["id"]},
                                  "protocol": "tcp", "port": 80}),
    ],
}
# Extra filters per list that could select A's resources.
LIST_QUERIES: dict[str, Callable[[TenantA], list[str]]] = {
    "/v1/dns-records": lambda a: [f"?fqdn={a.record['fqdn']}",
                                  f"?fqdn=db.{a.network['dns_domain']}"],
}
# Lists whose admin view with ?tenant=A must contain this resource of A.
LIST_SHOWS = {_collection(kind): (lambda a, k=kind: a.resources[k.service.kind]["id"])
              for kind in KINDS if not kind.service.shared}


# -- the URL map ------------------------------------------------------------------------

@dataclass(frozen=True)
class Endpoint:
    rule: str
    method: str
    variables: tuple[tuple[str, str], ...]  # (name, converter class)

    @property
    def is_item(self) -> bool:
        return bool(self.variables)

    @property
    def admin_only(self) -> bool:
        return self.rule.startswith(ADMIN_ONLY_PREFIXES)

    @property
    def openapi_path(self) -> str:
        return re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", self.rule)

    def uncovered(self) -> str | None:
        """Why the matrix cannot check this endpoint, or None."""
        for name, _ in self.variables:
            if name not in A_VALUES:
                return (f"{self.method} {self.rule}: path variable {name!r} has no resolver in "
                        "A_VALUES (tests/api/test_isolation.py); add one that returns tenant "
                        "A's value, creating the resource in the tenant_a fixture")
        if self.method in ("GET", "HEAD", "DELETE"):
            return None
        if self.method == "PATCH":
            return None if self.is_item else f"PATCH {self.rule}: PATCH on a collection"
        if self.method == "POST" and self.rule in READ_POSTS:
            return None
        if self.admin_only and not self.is_item:
            return None  # test_admin_only_collections_refuse_tenants
        if self.method == "POST":
            table = ITEM_POST_BODIES if self.is_item else CREATE_BODIES
            if self.rule not in table:
                name = "ITEM_POST_BODIES" if self.is_item else "CREATE_BODIES"
                return f"POST {self.rule}: add a valid request body to {name}"
            if not self.is_item and self.rule not in CREATE_REFERENCES:
                return (f"POST {self.rule}: list the body fields that name other resources "
                        "in CREATE_REFERENCES (an empty list if there are none)")
            return None
        return f"{self.method} {self.rule}: no isolation check for this method"

    def path(self, values: dict[str, str]) -> str:
        out = self.rule
        for name, _ in self.variables:
            out = re.sub(rf"<(?:[^<>:]+:)?{re.escape(name)}>", values[name], out)
        return out

    def nowhere(self) -> dict[str, str]:
        """Values for the variables that exist in no tenant."""
        return {name: str(uuid.uuid4()) if conv == "UUIDConverter" else unique("nobody")
                for name, conv in self.variables}

    def of_a(self, a: TenantA) -> dict[str, str]:
        return {name: A_VALUES[name](a) for name, _ in self.variables}


def endpoints_of(app: Any) -> list[Endpoint]:
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/v1/"):
            continue
        variables = tuple(sorted((n, type(c).__name__) for n, c in rule._converters.items()))
        for method in sorted(rule.methods or ()):
            if method not in SKIP_METHODS:
                found.append(Endpoint(rule.rule, method, variables))
    return sorted(found, key=lambda e: (e.rule, e.method))


ENDPOINTS = endpoints_of(create_app(Settings(jwt_secret="x" * 32), start=False))
ITEMS = [e for e in ENDPOINTS if e.is_item]
LISTS = [e for e in ENDPOINTS if not e.is_item and e.method in ("GET", "HEAD")
         and not e.admin_only]
# Collections only admins may call at all (the drift audit): B gets 403, whatever it asks.
ADMIN_COLLECTIONS = [e for e in ENDPOINTS if not e.is_item and e.admin_only]
CREATES = [e for e in ENDPOINTS if not e.is_item and e.method == "POST"
           and e.rule not in READ_POSTS and not e.admin_only]
READS = [e for e in ENDPOINTS if e.method == "POST" and e.rule in READ_POSTS]
OTHERS = [e for e in ENDPOINTS if e not in ITEMS + LISTS + CREATES + READS + ADMIN_COLLECTIONS]


def _ids(endpoints: list[Endpoint]) -> list[str]:
    return [f"{e.method} {e.rule}" for e in endpoints]


def test_matrix_covers_every_v1_endpoint(app: Any) -> None:
    live = endpoints_of(app)
    assert live == ENDPOINTS, "the app's URL map differs from the one the matrix was built from"
    missing = [e.uncovered() for e in live if e.uncovered()]
    missing += [f"{e.method} {e.rule}: neither item, list nor create" for e in OTHERS]
    assert not missing, "endpoints the isolation matrix does not check:\n" + "\n".join(missing)
    stale = (set(ITEM_POST_BODIES) | set(PATCH_BODIES) | set(CREATE_BODIES) | set(READ_POSTS)
             | set(ADMIN_DELETE_QUERY) | set(LIST_SHOWS) | set(LIST_QUERIES)) \
        - {e.rule for e in live}
    assert not stale, f"matrix entries for rules the app no longer has: {sorted(stale)}"


# -- fixtures and helpers ---------------------------------------------------------------

@pytest.fixture
def tenant_a(client: Any) -> TenantA:
    api = ApiClient(client, unique("tenant-a"))
    label = unique("secret")
    net = api.network(cidr="10.44.0.0/24", labels={"iso": label}, description="a's network",
                      dns_domain=unique("zone") + ".example")
    port = api.port(net["id"], labels={"iso": label}, hostname="db")
    resp = api.post("/v1/dns-records", {"name": unique("rec"), "labels": {"iso": label},
                                        "fqdn": "www." + net["dns_domain"],
                                        "ips": ["10.44.0.10"], "networks": [net["id"]]})
    assert resp.status_code == 201, resp.get_json()
    record = resp.get_json()
    resp = api.post("/v1/policies", {
        "name": unique("pol"), "labels": {"iso": label}, "selector": {"iso": label},
        "networks": [net["id"]],
        "ingress": [{"action": "allow", "peers": [{"network": net["id"]}],
                     "protocol": "tcp", "ports": [80]}],
        "egress": [{"action": "deny", "peers": [{"selector": {"iso": label}}]}]})
    assert resp.status_code == 201, resp.get_json()
    a = TenantA(api, {"network": net, "port": port, "dns-record": record,
                      "policy": resp.get_json()}, label)
    admin = ApiClient(client, unique("ops"), "admin")
    for kind in KINDS:  # every other kind, from its registered example
        if kind.service.kind not in a.resources:
            labels = {} if kind.service.shared else {"iso": label}  # B sees shared ones
            body = a.with_ids({**_fresh(kind.example.body), "labels": labels})
            for _, fragment in kind.example.references + kind.example.shared_references:
                body.update(a.with_ids(fragment))
            author = api
            if kind.service.admin_writes:
                author = admin  # in the admin's tenant: every tenant sees it
            resp = author.post(a.with_ids(kind.example.path or _collection(kind)), body)
            assert resp.status_code == 201, (kind.service.kind, resp.get_json())
            a.resources[kind.service.kind] = resp.get_json()
    return a


@pytest.fixture
def tenant_b(client: Any) -> ApiClient:
    b = ApiClient(client, unique("tenant-b"))
    b.network(cidr="10.44.0.0/24")  # B owns something too: lists are not trivially empty
    return b


def _rows(nbctl: Any, table: str, *conditions: str) -> list[dict[str, Any]]:
    raw = json.loads(nbctl("--format=json", "find", table, *conditions))
    rows = [dict(zip(raw["headings"], row, strict=True)) for row in raw["data"]]
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))


def snapshot(a: TenantA, nbctl: Any) -> dict[str, Any]:
    """Everything of A an isolation failure could change: the API view of each resource,
    A's lists, and every OVN row stamped with A's tenant in every table the gateway
    writes, plus the rows of A's network and port by name."""
    owned = f'external_ids:"{naming.TENANT}"="{a.tenant}"'
    rows = {table: _rows(nbctl, table, owned) for table in monitored().tables}
    return {
        **{kind.service.kind: a.api.get(kind.location.format(
            id=a.resources[kind.service.kind]["id"])).get_json() for kind in KINDS},
        **{_collection(kind): a.api.get(_collection(kind)).get_json() for kind in KINDS},
        "rules": a.api.get(f"/v1/policies/{a.policy['id']}/rules").get_json(),
        "rows": rows,
        "ls": _rows(nbctl, "Logical_Switch", f"name={naming.switch_name(a.network['id'])}"),
        "lsp": _rows(nbctl, "Logical_Switch_Port", f"name={a.port['id']}"),
    }


def _normalized_problem(resp: Any, replace: list[str]) -> dict[str, Any]:
    if resp.request.method == "HEAD":
        return {"status": resp.status_code}
    assert resp.mimetype == PROBLEM, (resp.status_code, resp.mimetype,
                                      resp.get_data(as_text=True))
    text = resp.get_data(as_text=True)
    for value in replace:
        text = text.replace(value, "<value>")
    body = json.loads(text)
    body.pop("request_id", None)
    body.pop("instance", None)
    return dict(body)


def _body_for(endpoint: Endpoint, a: TenantA) -> Any:
    if endpoint.method == "PATCH":
        return PATCH_BODIES.get(endpoint.rule, DEFAULT_PATCH)(a)
    if endpoint.method == "POST":
        return ITEM_POST_BODIES[endpoint.rule](a)
    return None


# -- B against A's items ----------------------------------------------------------------

def _item_variants(endpoint: Endpoint, a: TenantA) -> list[dict[str, str]]:
    variants: list[dict[str, str]] = [{}]
    if endpoint.method in ("PATCH", "DELETE"):
        revision = str(a.network["revision"])
        variants += [{"If-Match": f'"{revision}"'}, {"If-Match": '"999"'}, {"If-Match": "*"}]
    if endpoint.method == "POST":
        variants.append({"Idempotency-Key": unique("idem")})
    return variants


@pytest.mark.parametrize("endpoint", ITEMS, ids=_ids(ITEMS))
def test_other_tenant_item_is_404(endpoint: Endpoint, tenant_a: TenantA,
                                  tenant_b: ApiClient, nbctl: Any) -> None:
    if reason := endpoint.uncovered():
        pytest.fail(reason)
    before = snapshot(tenant_a, nbctl)
    expected = 403 if endpoint.admin_only else 404
    if endpoint.rule in SHARED_RULES:
        resp = tenant_b.request(endpoint.method, endpoint.path(endpoint.of_a(tenant_a)),
                                _body_for(endpoint, tenant_a))
        assert resp.status_code == (200 if endpoint.method in ("GET", "HEAD") else 403), \
            resp.get_data(as_text=True)
        assert snapshot(tenant_a, nbctl) == before
        return
    for headers in _item_variants(endpoint, tenant_a):
        body = _body_for(endpoint, tenant_a)
        a_values, nowhere = endpoint.of_a(tenant_a), endpoint.nowhere()
        theirs = tenant_b.request(endpoint.method, endpoint.path(a_values), body,
                                  headers=headers)
        absent = tenant_b.request(endpoint.method, endpoint.path(nowhere), body,
                                  headers=headers)
        what = f"{endpoint.method} {endpoint.rule} {headers} as tenant B"
        assert theirs.status_code == expected, (what, theirs.status_code,
                                                theirs.get_data(as_text=True))
        # Existence must not leak: A's id answers exactly like an id nobody has.
        assert _normalized_problem(theirs, list(a_values.values())) == \
            _normalized_problem(absent, list(nowhere.values())), what
        for secret in tenant_a.secrets():
            if secret not in a_values.values():
                assert secret not in theirs.get_data(as_text=True), (what, secret)
    assert snapshot(tenant_a, nbctl) == before, "tenant B changed tenant A's resources"


def test_creating_a_port_in_another_tenants_network_is_404_naming_network_id(
        tenant_a: TenantA, tenant_b: ApiClient, nbctl: Any) -> None:
    before = snapshot(tenant_a, nbctl)
    for body in ({"name": unique("p")},
                 {"name": unique("p"), "ips": ["10.44.0.50"]},
                 {"name": unique("p"), "mac": "0a:58:0a:2c:00:99", "labels": {"x": "y"}}):
        resp = tenant_b.post(f"/v1/networks/{tenant_a.network['id']}/ports", body)
        assert resp.status_code == 404, resp.get_json()
        assert resp.mimetype == PROBLEM
        problem = resp.get_json()
        assert "network_id" in (problem.get("errors") or {}), problem
        assert tenant_a.network["name"] not in json.dumps(problem)
    # B's own ports are still allocated from B's networks only.
    assert tenant_b.get("/v1/ports").get_json()["items"] == []
    assert snapshot(tenant_a, nbctl) == before


# -- B's lists --------------------------------------------------------------------------

def _queries(endpoint: Endpoint, a: TenantA, document: dict[str, Any]) -> list[str]:
    queries = ["", "?limit=1000", f"?name={a.network['name']}", f"?name={a.port['name']}",
               f"?label=iso={a.label}", *LIST_QUERIES.get(endpoint.rule, lambda a: [])(a)]
    op = (document["paths"].get(endpoint.openapi_path) or {}).get("get") or {}
    for param in op.get("parameters", []):
        if param.get("in") == "query" and param["name"] in A_VALUES \
                and param["name"] != "tenant":
            queries.append(f"?{param['name']}={A_VALUES[param['name']](a)}")
    return queries


@pytest.fixture(scope="module")
def document(app: Any) -> dict[str, Any]:
    from gateway.openapi import document as build

    return build(app.extensions["gateway"].api)


@pytest.mark.parametrize("endpoint", LISTS, ids=_ids(LISTS))
def test_lists_never_show_another_tenants_resources(endpoint: Endpoint, tenant_a: TenantA,
                                                    tenant_b: ApiClient, nbctl: Any,
                                                    document: dict[str, Any]) -> None:
    before = snapshot(tenant_a, nbctl)
    for query in _queries(endpoint, tenant_a, document):
        resp = tenant_b.request(endpoint.method, endpoint.rule + query)
        what = f"{endpoint.method} {endpoint.rule}{query} as tenant B"
        if query.startswith(("?network_id", "?port_id")):
            # Filtering by another tenant's id: either an empty list or the 404 of an id
            # nobody has, never A's resources.
            assert resp.status_code in (200, 404), (what, resp.status_code)
        else:
            assert resp.status_code == 200, (what, resp.get_data(as_text=True))
        text = resp.get_data(as_text=True)
        for secret in tenant_a.secrets():
            assert secret not in text, (what, secret)
        if endpoint.method == "GET" and resp.status_code == 200 and \
                endpoint.rule not in SHARED_RULES:
            for item in resp.get_json()["items"]:
                assert item.get("tenant_id") == tenant_b.tenant, (what, item)
    assert snapshot(tenant_a, nbctl) == before


@pytest.mark.parametrize("endpoint", LISTS, ids=_ids(LISTS))
def test_only_admins_list_another_tenant(endpoint: Endpoint, tenant_a: TenantA,
                                         tenant_b: ApiClient, admin_api: ApiClient) -> None:
    path = f"{endpoint.rule}?tenant={tenant_a.tenant}"
    resp = tenant_b.request(endpoint.method, path)
    assert resp.status_code == 400, (path, resp.status_code, resp.get_data(as_text=True))
    assert resp.mimetype == PROBLEM
    if endpoint.method == "GET":
        assert "tenant" in errors_of(resp), resp.get_json()
        for secret in tenant_a.secrets()[:-1]:
            assert secret not in resp.get_data(as_text=True)
    # The same query for B's own tenant is fine.
    own = tenant_b.request(endpoint.method, f"{endpoint.rule}?tenant={tenant_b.tenant}")
    assert own.status_code in (200, 400), own.get_data(as_text=True)
    # Admins may.
    seen = admin_api.request(endpoint.method, path)
    assert seen.status_code == 200, seen.get_data(as_text=True)
    if endpoint.method == "GET" and endpoint.rule in LIST_SHOWS:
        ids = [item["id"] for item in seen.get_json()["items"]]
        assert LIST_SHOWS[endpoint.rule](tenant_a) in ids
        assert all(item["tenant_id"] == tenant_a.tenant for item in seen.get_json()["items"])


def test_a_sees_its_own_resources(tenant_a: TenantA) -> None:
    """The leak checks above would pass vacuously if A's resources were not listable."""
    a = tenant_a
    assert [n["id"] for n in a.api.get("/v1/networks").get_json()["items"]] == \
        [a.network["id"]]
    assert [p["id"] for p in a.api.get("/v1/ports").get_json()["items"]] == [a.port["id"]]
    assert [n["id"] for n in a.api.get(f"/v1/networks?name={a.network['name']}")
            .get_json()["items"]] == [a.network["id"]]
    assert [p["id"] for p in a.api.get(f"/v1/ports?label=iso={a.label}")
            .get_json()["items"]] == [a.port["id"]]


def test_snapshot_sees_a_rows(tenant_a: TenantA, nbctl: Any) -> None:
    """The 'unchanged' checks compare real rows, not empty lists."""
    snap = snapshot(tenant_a, nbctl)
    assert len(snap["ls"]) == 1 and len(snap["lsp"]) == 1
    rows = snap["rows"]
    def kind_count(table: str, kind: str) -> int:
        return sum(1 for r in rows[table] if f'"{naming.KIND}", "{kind}"' in json.dumps(r))

    assert kind_count("Logical_Switch", "network") == 1
    assert kind_count("Logical_Switch_Port", "port") == 1
    assert rows["DHCP_Options"] and rows["Port_Group"]
    assert len(rows.get("DNS", [])) >= 2  # the user record and the port's automatic one


# -- B's creates ------------------------------------------------------------------------

@pytest.mark.parametrize("endpoint", CREATES, ids=_ids(CREATES))
def test_creates_stay_in_the_callers_tenant(endpoint: Endpoint, tenant_a: TenantA,
                                            tenant_b: ApiClient, nbctl: Any) -> None:
    if reason := endpoint.uncovered():
        pytest.fail(reason)
    before = snapshot(tenant_a, nbctl)
    a_list = tenant_a.api.get(endpoint.rule).get_json()
    if endpoint.rule in ADMIN_WRITES:
        resp = tenant_b.post(endpoint.rule, CREATE_BODIES[endpoint.rule]())
        assert resp.status_code == 403, resp.get_data(as_text=True)
        assert snapshot(tenant_a, nbctl) == before
        return
    def body() -> dict[str, Any]:
        return dict(tenant_a.with_ids(CREATE_BODIES[endpoint.rule](), shared_only=True))

    # Naming A's tenant is refused for non-admins.
    resp = tenant_b.post(endpoint.rule, {**body(), "tenant_id": tenant_a.tenant})
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert "tenant_id" in errors_of(resp), resp.get_json()
    # A reference to one of A's resources is 404 for that field.
    for field, make in CREATE_REFERENCES[endpoint.rule]:
        resp = tenant_b.post(endpoint.rule, {**body(), **make(tenant_a)})
        assert resp.status_code == 404, (field, resp.get_data(as_text=True))
        assert names_field(errors_of(resp), field), resp.get_json()
    # A plain create lands in B's tenant.
    resp = tenant_b.post(endpoint.rule, body())
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["tenant_id"] == tenant_b.tenant
    assert tenant_a.api.get(endpoint.rule).get_json() == a_list
    assert snapshot(tenant_a, nbctl) == before


@pytest.mark.parametrize("endpoint", READS, ids=_ids(READS))
def test_read_only_posts_answer_404_for_another_tenants_resources(
        endpoint: Endpoint, tenant_a: TenantA, tenant_b: ApiClient, nbctl: Any) -> None:
    before = snapshot(tenant_a, nbctl)
    b_port = tenant_b.port(tenant_b.get("/v1/networks").get_json()["items"][0]["id"])
    for field, make in READ_POSTS[endpoint.rule]:
        body = make(tenant_a, b_port)
        theirs = tenant_b.post(endpoint.rule, body)
        absent = tenant_b.post(endpoint.rule, json.loads(
            json.dumps(body).replace(tenant_a.port["id"], str(uuid.uuid4()))))
        assert theirs.status_code == 404, (field, theirs.get_data(as_text=True))
        assert names_field(errors_of(theirs), field), theirs.get_json()
        # Existence must not leak: A's id answers exactly like an id nobody has.
        assert _normalized_problem(theirs, [tenant_a.port["id"]]) == \
            _normalized_problem(absent, []), field
    assert snapshot(tenant_a, nbctl) == before


@pytest.mark.parametrize("endpoint", ADMIN_COLLECTIONS, ids=_ids(ADMIN_COLLECTIONS))
def test_admin_only_collections_refuse_tenants(endpoint: Endpoint, tenant_a: TenantA,
                                               tenant_b: ApiClient, admin_api: ApiClient,
                                               nbctl: Any) -> None:
    before = snapshot(tenant_a, nbctl)
    for query in ("", f"?tenant={tenant_a.tenant}", f"?tenant={tenant_b.tenant}"):
        resp = tenant_b.request(endpoint.method, endpoint.rule + query)
        assert resp.status_code == 403, (query, resp.get_data(as_text=True))
        for secret in tenant_a.secrets():
            assert secret not in resp.get_data(as_text=True), (query, secret)
    assert admin_api.request(endpoint.method,
                             f"{endpoint.rule}?tenant={tenant_a.tenant}").status_code == 200
    assert snapshot(tenant_a, nbctl) == before


def test_updating_to_reference_another_tenants_network_is_404(tenant_a: TenantA,
                                                              tenant_b: ApiClient,
                                                              nbctl: Any) -> None:
    before = snapshot(tenant_a, nbctl)
    own = tenant_b.post("/v1/dns-records", CREATE_BODIES["/v1/dns-records"]())
    assert own.status_code == 201, own.get_json()
    record = own.get_json()
    resp = tenant_b.patch(f"/v1/dns-records/{record['id']}",
                          {"networks": [tenant_a.network["id"]]})
    assert resp.status_code == 404, resp.get_json()
    assert names_field(errors_of(resp), "networks")
    assert tenant_b.get(f"/v1/dns-records/{record['id']}").get_json() == record
    assert snapshot(tenant_a, nbctl) == before


def test_policies_select_only_their_own_tenants_ports(tenant_a: TenantA,
                                                      tenant_b: ApiClient,
                                                      nbctl: Any) -> None:
    """A selector is evaluated inside the caller's tenant, whatever labels others use."""
    a = tenant_a
    before = snapshot(a, nbctl)
    a_selected = before["policy"]["status"]["selected_ports"]
    assert a_selected == 1
    # B's policy that selects A's label, and one that selects everything.
    b_net = tenant_b.get("/v1/networks").get_json()["items"][0]
    stolen = tenant_b.post("/v1/policies", {
        "name": unique("pol"), "selector": {"iso": a.label},
        "ingress": [{"action": "allow", "peers": [{"selector": {"iso": a.label}}]}]})
    assert stolen.status_code == 201, stolen.get_json()
    everything = tenant_b.post("/v1/policies", {"name": unique("pol"), "selector": {}})
    assert everything.status_code == 201, everything.get_json()
    for policy in (stolen.get_json(), everything.get_json()):
        assert policy["status"]["selected_ports"] == 0, policy
        compiled = tenant_b.get(f"/v1/policies/{policy['id']}/rules")
        assert compiled.status_code == 200
        text = compiled.get_data(as_text=True)
        for secret in [*a.secrets(), *a.port["ips"]]:
            assert secret not in text, secret
    # B's port with A's label joins B's policies, never A's.
    b_port = tenant_b.port(b_net["id"], labels={"iso": a.label})
    assert tenant_b.get(f"/v1/policies/{stolen.get_json()['id']}").get_json()[
        "status"]["selected_ports"] == 1
    assert a.api.get(f"/v1/policies/{a.policy['id']}").get_json()[
        "status"]["selected_ports"] == a_selected
    compiled_a = a.api.get(f"/v1/policies/{a.policy['id']}/rules").get_data(as_text=True)
    assert b_port["id"] not in compiled_a and b_port["mac"] not in compiled_a
    assert snapshot(a, nbctl) == before


def test_same_name_in_another_tenant_is_no_conflict(tenant_a: TenantA,
                                                    tenant_b: ApiClient) -> None:
    """A 409 would tell B that A has a network of that name."""
    resp = tenant_b.post("/v1/networks", {"name": tenant_a.network["name"],
                                          "cidr": "10.44.0.0/24"})
    assert resp.status_code == 201, resp.get_json()
    net = resp.get_json()
    resp = tenant_b.post(f"/v1/networks/{net['id']}/ports",
                         {"name": tenant_a.port["name"], "ips": tenant_a.port["ips"],
                          "mac": tenant_a.port["mac"]})
    assert resp.status_code == 201, resp.get_json()


def test_idempotency_keys_are_per_tenant(client: Any, tenant_b: ApiClient) -> None:
    a = ApiClient(client, unique("tenant-a"))
    key = unique("idem")
    body = {"name": unique("n"), "cidr": "10.45.0.0/24"}
    first = a.post("/v1/networks", body, headers={"Idempotency-Key": key})
    assert first.status_code == 201
    again = tenant_b.post("/v1/networks", body, headers={"Idempotency-Key": key})
    assert again.status_code == 201, again.get_json()
    assert again.get_json()["id"] != first.get_json()["id"]
    assert again.get_json()["tenant_id"] == tenant_b.tenant
    other = tenant_b.post("/v1/networks", {**body, "name": unique("n")},
                          headers={"Idempotency-Key": key + "-x"})
    assert other.status_code == 201


# -- admins act on A --------------------------------------------------------------------

@pytest.mark.parametrize("endpoint", ITEMS, ids=_ids(ITEMS))
def test_admin_acts_on_another_tenants_items(endpoint: Endpoint, tenant_a: TenantA,
                                             admin_api: ApiClient) -> None:
    if reason := endpoint.uncovered():
        pytest.fail(reason)
    path = endpoint.path(endpoint.of_a(tenant_a))
    if endpoint.rule in ADMIN_SETUP:
        assert ADMIN_SETUP[endpoint.rule](admin_api, tenant_a).status_code == 201
    if endpoint.method == "DELETE" and endpoint.rule not in ADMIN_DELETE_QUERY:
        # What A built on the resource (kinds registered after it) goes first.
        (kind,) = [k for k in KINDS if endpoint.rule.startswith(_collection(k) + "/<")]
        later_kinds = [] if endpoint.rule != f"{_collection(kind)}/<uuid:{kind.path_var}>" \
            else KINDS[KINDS.index(kind) + 1:]
        for later in reversed(later_kinds):
            doc = tenant_a.resources[later.service.kind]
            gone = admin_api.delete(later.location.format(id=doc["id"]))
            assert gone.status_code == 204, gone.get_data(as_text=True)
    if endpoint.method == "DELETE":
        path += ADMIN_DELETE_QUERY.get(endpoint.rule, "")
        if endpoint.rule in ADMIN_DELETE_QUERY:
            # A's policy names the network: a named network cannot go (409) until it does.
            named = admin_api.request("DELETE", f"/v1/networks/{tenant_a.network['id']}")
            assert named.status_code == 409, named.get_json()
            assert admin_api.delete(f"/v1/policies/{tenant_a.policy['id']}").status_code == 204
    resp = admin_api.request(endpoint.method, path, _body_for(endpoint, tenant_a))
    expected = {"GET": 200, "HEAD": 200, "PATCH": 200, "DELETE": 204, "POST": 201}
    assert resp.status_code == expected[endpoint.method], resp.get_data(as_text=True)
    if endpoint.method in ("GET", "PATCH", "POST") and not endpoint.admin_only \
            and endpoint.rule not in SHARED_RULES:
        doc = resp.get_json()
        for item in doc["items"] if "items" in doc else [doc]:
            assert item.get("tenant_id", tenant_a.tenant) == tenant_a.tenant, doc
    if endpoint.admin_only:
        return
    if endpoint.method == "PATCH":
        again = tenant_a.api.get(path).get_json()
        assert again["description"] == "changed" and again["revision"] == \
            resp.get_json()["revision"]
    if endpoint.method == "DELETE":
        assert tenant_a.api.get(path.split("?")[0]).status_code == 404
    if endpoint.method == "POST":
        created = resp.get_json()
        assert tenant_a.api.get(resp.headers["Location"]).get_json() == created


def test_admin_sees_a_in_lists_only_when_asked(tenant_a: TenantA,
                                               admin_api: ApiClient) -> None:
    scoped = admin_api.get(f"/v1/ports?tenant={tenant_a.tenant}").get_json()["items"]
    assert [p["id"] for p in scoped] == [tenant_a.port["id"]]
    own = admin_api.get(f"/v1/ports?tenant={admin_api.tenant}").get_json()["items"]
    assert own == []

"""POST /v1/connectivity-checks: validation, scope, tenant isolation and the 503s, on the
session's NB-only gateway; and verdicts read from real ovn-trace runs on a NB + SB +
ovn-northd of this module's own (no data plane: the packets are traced, not sent)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.config import Settings

from helpers.api import SECRET, ApiClient, post_created, unique
from helpers.problems import errors_of, names_field
from helpers.southbound import Databases, nb_sb_northd

URL = "/v1/connectivity-checks"
PROBLEM = "application/problem+json"


def _check(api: ApiClient, body: dict[str, Any]) -> Any:
    return api.post(URL, body)


@pytest.fixture
def two_ports(api: ApiClient) -> tuple[dict[str, Any], dict[str, Any]]:
    net = api.network(cidr="10.61.0.0/24")
    return api.port(net["id"]), api.port(net["id"])


# -- validation ---------------------------------------------------------------------------

BAD_BODIES = [
    ({"to": {"ip": "10.0.0.1"}, "protocol": "icmp"}, "from_port"),
    ({"from_port": "not-a-uuid", "to": {"ip": "10.0.0.1"}, "protocol": "icmp"}, "from_port"),
    ({"from_port": "P", "protocol": "icmp"}, "to"),
    ({"from_port": "P", "to": {}, "protocol": "icmp"}, "to"),
    ({"from_port": "P", "to": {"ip": "10.0.0.1", "port": "P"}, "protocol": "icmp"}, "to"),
    ({"from_port": "P", "to": {"ip": "10.0.0.300"}, "protocol": "icmp"}, "to.ip"),
    ({"from_port": "P", "to": {"ip": "224.0.0.1"}, "protocol": "icmp"}, "to.ip"),
    ({"from_port": "P", "to": {"ip": "10.0.0.1", "mac": "x"}, "protocol": "icmp"}, "to.mac"),
    ({"from_port": "P", "to": {"port": 7}, "protocol": "icmp"}, "to.port"),
    ({"from_port": "P", "to": {"ip": "10.0.0.1"}}, "protocol"),
    ({"from_port": "P", "to": {"ip": "10.0.0.1"}, "protocol": "sctp", "port": 1}, "protocol"),
    ({"from_port": "P", "to": {"ip": "10.0.0.1"}, "protocol": "tcp"}, "port"),
    ({"from_port": "P", "to": {"ip": "10.0.0.1"}, "protocol": "udp"}, "port"),
    ({"from_port": "P", "to": {"ip": "10.0.0.1"}, "protocol": "icmp", "port": 80}, "port"),
    ({"from_port": "P", "to": {"ip": "10.0.0.1"}, "protocol": "tcp", "port": 0}, "port"),
    ({"from_port": "P", "to": {"ip": "10.0.0.1"}, "protocol": "tcp", "port": 65536}, "port"),
    ({"from_port": "P", "to": {"ip": "10.0.0.1"}, "protocol": "tcp", "port": "80"}, "port"),
    ({"from_port": "P", "to": {"ip": "10.0.0.1"}, "protocol": "icmp", "extra": 1}, "extra"),
    ({"from_port": "P", "to": {"ip": '10.0.0.1" || 1'}, "protocol": "icmp"}, "to.ip"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES,
                         ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_BODIES)])
def test_bad_bodies_are_400_naming_the_field(api: ApiClient, two_ports: Any,
                                             body: dict[str, Any], field: str) -> None:
    port = two_ports[0]["id"]
    body = {k: ({**v, "port": port} if isinstance(v, dict) and v.get("port") == "P" else v)
            for k, v in body.items()}
    if body.get("from_port") == "P":
        body["from_port"] = port
    resp = _check(api, body)
    assert resp.status_code == 400, resp.get_json()
    assert resp.mimetype == PROBLEM
    assert names_field(errors_of(resp), field), resp.get_json()


def test_not_json_is_400_or_415(api: ApiClient) -> None:
    assert api.post(URL, headers={"Content-Type": "text/plain"}, data="x").status_code == 415
    resp = api.client.post(URL, data="{", headers={**api.headers,
                                                   "Content-Type": "application/json"})
    assert resp.status_code == 400 and "body" in errors_of(resp)


# -- scope and isolation ------------------------------------------------------------------

def test_needs_a_networks_read_scope(client: Any, api: ApiClient, two_ports: Any) -> None:
    body = {"from_port": two_ports[0]["id"], "to": {"port": two_ports[1]["id"]},
            "protocol": "icmp"}
    for scope, allowed in (("networks:read", True), ("read", True), ("networks:write", True),
                           ("policies:read", False), ("load-balancers:write", False)):
        resp = ApiClient(client, api.tenant, scope).post(URL, body)
        # Past the scope check, this gateway (no OVN_SB_DB) answers 503.
        assert resp.status_code == (503 if allowed else 403), (scope, resp.get_json())
    assert client.post(URL, json=body).status_code == 401


def test_another_tenants_ports_are_404_naming_the_field(api: ApiClient, other_api: ApiClient,
                                                        two_ports: Any) -> None:
    mine, theirs = two_ports[0]["id"], other_api.port(
        other_api.network(cidr="10.61.0.0/24")["id"])["id"]
    for body, field in (
            ({"from_port": theirs, "to": {"port": mine}, "protocol": "icmp"}, "from_port"),
            ({"from_port": theirs, "to": {"ip": "10.61.0.3"}, "protocol": "icmp"}, "from_port"),
            ({"from_port": mine, "to": {"port": theirs}, "protocol": "tcp", "port": 22},
             "to.port")):
        resp = _check(api, body)
        assert resp.status_code == 404, resp.get_json()
        assert names_field(errors_of(resp), field), resp.get_json()
        nobody = _check(api, {**body, field.split(".")[0]: str(uuid.uuid4())} if field ==
                        "from_port" else {**body, "to": {"port": str(uuid.uuid4())}})
        assert nobody.get_json()["detail"] == resp.get_json()["detail"]
        assert theirs not in resp.get_data(as_text=True)


def test_without_the_southbound_it_is_503_saying_so(api: ApiClient, two_ports: Any) -> None:
    resp = _check(api, {"from_port": two_ports[0]["id"], "to": {"port": two_ports[1]["id"]},
                        "protocol": "icmp"})
    assert resp.status_code == 503, resp.get_json()
    assert resp.mimetype == PROBLEM and resp.headers.get("Retry-After")
    assert "OVN_SB_DB" in resp.get_json()["detail"]


# -- real traces: NB, SB and ovn-northd --------------------------------------------------

@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Databases]]:
    from gateway.app import create_app

    with nb_sb_northd(tmp_path_factory.mktemp("trace")) as dbs:
        app = create_app(Settings(nb_db=dbs.nb, sb_db=dbs.sb, jwt_secret=SECRET,
                                  ovn_timeout=5.0))
        assert app.extensions["gateway"].nb.wait_ready(15)
        try:
            yield app, dbs
        finally:
            app.extensions["gateway"].stop()


def _synced(dbs: Databases) -> None:
    """Wait until ovn-northd has compiled every northbound change into logical flows."""
    subprocess.run(["ovn-nbctl", f"--db={dbs.nb}", "--timeout=20", "--wait=sb", "sync"],
                   check=True, capture_output=True, timeout=30)


def test_traces_allowed_and_dropped_by_a_named_rule(traced: Any) -> None:
    app, dbs = traced
    api = ApiClient(app.test_client(), unique("tenant"), "read write")
    net = api.network(cidr="10.62.0.0/24")
    web, db = (api.port(net["id"], labels={"app": "web"}),
               api.port(net["id"], labels={"app": "db"}))
    policy = post_created(api, "/v1/policies", {
        "name": "db-in", "selector": {"app": "db"},
        "ingress": [{"action": "deny", "protocol": "icmp"},
                    {"action": "allow", "protocol": "tcp", "ports": [5432]}]})
    _synced(dbs)
    reader = ApiClient(app.test_client(), api.tenant, "networks:read")
    allowed = _check(reader, {"from_port": web["id"], "to": {"port": db["id"]},
                              "protocol": "tcp", "port": 5432})
    assert allowed.status_code == 200, allowed.get_json()
    doc = allowed.get_json()
    assert doc["result"] == "allowed" and doc["complete"] is True
    assert doc["path"] == [{"type": "network", "id": net["id"], "name": net["name"]}]
    assert doc["policy"] == {"id": policy["id"], "name": "db-in", "direction": "ingress",
                             "rule": "ingress/1", "index": 1, "action": "allow"}
    assert doc["packet"]["src_ip"] == web["ips"][0] and doc["packet"]["dst_ip"] == db["ips"][0]
    denied = _check(reader, {"from_port": web["id"], "to": {"port": db["id"]},
                             "protocol": "icmp"}).get_json()
    assert denied["result"] == "dropped"
    assert denied["policy"] == {"id": policy["id"], "name": "db-in", "direction": "ingress",
                                "rule": "ingress/0", "index": 0, "action": "deny"}
    other = _check(reader, {"from_port": web["id"], "to": {"port": db["id"]},
                            "protocol": "udp", "port": 53}).get_json()
    assert other["result"] == "dropped" and other["policy"]["rule"] == "ingress/default"
    assert other["policy"]["action"] == "default-deny" and other["policy"]["index"] is None
    back = _check(reader, {"from_port": db["id"], "to": {"port": web["id"]},
                           "protocol": "icmp"}).get_json()
    assert back["result"] == "allowed" and back["policy"] is None  # web is not isolated


def test_an_address_nothing_answers_for_is_dropped_without_a_trace(traced: Any) -> None:
    app, dbs = traced
    api = ApiClient(app.test_client(), unique("tenant"))
    net = api.network(cidr="10.63.0.0/24")
    port = api.port(net["id"])
    _synced(dbs)
    on_link = _check(api, {"from_port": port["id"], "to": {"ip": "10.63.0.77"},
                           "protocol": "icmp"}).get_json()
    assert on_link["result"] == "dropped" and "10.63.0.77" in on_link["reason"]
    off = _check(api, {"from_port": port["id"], "to": {"ip": "192.0.2.1"},
                       "protocol": "udp", "port": 53}).get_json()
    assert off["result"] == "dropped" and "no gateway" in off["reason"]
    assert off["path"] == [{"type": "network", "id": net["id"], "name": net["name"]}]


def test_the_gateway_answers_for_its_own_address(traced: Any) -> None:
    app, dbs = traced
    api = ApiClient(app.test_client(), unique("tenant"))
    net = api.network(cidr="10.65.0.0/24")
    port = api.port(net["id"])
    gw = post_created(api, "/v1/gateways", {"name": "gw",
                                            "networks": [{"network_id": net["id"]}]})
    _synced(dbs)
    doc = _check(api, {"from_port": port["id"], "to": {"ip": net["gateway_ip"]},
                       "protocol": "icmp"}).get_json()
    assert doc["result"] == "allowed", doc
    assert doc["reason"] == "answered by the gateway's router"
    assert doc["path"][:2] == [{"type": "network", "id": net["id"], "name": net["name"]},
                               {"type": "gateway", "id": gw["id"], "name": "gw"}]


def test_a_southbound_that_does_not_answer_is_503(traced: Any, tmp_path: Any) -> None:
    from gateway.app import create_app

    app, dbs = traced
    api = ApiClient(app.test_client(), unique("tenant"))
    net = api.network(cidr="10.64.0.0/24")
    a, b = api.port(net["id"]), api.port(net["id"])
    broken = create_app(Settings(nb_db=dbs.nb, sb_db=f"unix:{tmp_path}/nothing.sock",
                                 jwt_secret=SECRET, ovn_timeout=1.0))
    assert broken.extensions["gateway"].nb.wait_ready(15)
    try:
        resp = ApiClient(broken.test_client(), api.tenant).post(
            URL, {"from_port": a["id"], "to": {"port": b["id"]}, "protocol": "icmp"})
        assert resp.status_code == 503, resp.get_json()
        assert "ovn-trace" in resp.get_json()["detail"]
    finally:
        broken.extensions["gateway"].stop()

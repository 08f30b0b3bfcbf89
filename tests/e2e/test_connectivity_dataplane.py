"""POST /v1/connectivity-checks compared with real packets between hosts: allowed on one
network, dropped by a named policy rule, routed through a gateway, SNAT to the outside,
and through a load balancer VIP. Each test first sees what real packets do, then asks the
API about the same packet and compares."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gateway import sandbox

from helpers.api import ApiClient, post_created, unique
from helpers.dataplane import Hosts, host_addr, ip4, ping, stays, tcp_reply
from helpers.waiting import wait_until

pytestmark = pytest.mark.e2e

EXTERNAL = {"cidr": "172.18.0.0/24", "gateway_ip": "172.18.0.1",
            "allocation_pools": [{"start": "172.18.0.10", "end": "172.18.0.200"}],
            "physical_network": sandbox.PHYSNET}
UPSTREAM = "172.18.0.1"  # the outside host
PEER_PORT = 7000  # the outside host's server answers with the connection's source address
HOST_PORT, OTHER_PORT = 7100, 7200  # servers in tenant hosts answer with the host's name
WAIT = 30  # seconds for flows to follow an API write


def _tag() -> str:
    return uuid.uuid4().hex[:6]


@pytest.fixture
def check(dp_app: Any, nbctl: Callable[..., str]) -> Callable[..., dict[str, Any]]:
    """check(api, from_port, to, protocol, port=None) -> the 200 answer, once ovn-northd has
    compiled every change so far (the trace reads its logical flows)."""
    def run(api: ApiClient, from_port: dict[str, Any], to: dict[str, Any], protocol: str,
            port: int | None = None) -> dict[str, Any]:
        nbctl("--wait=sb", "sync")
        body: dict[str, Any] = {"from_port": from_port["id"], "to": to, "protocol": protocol}
        if port is not None:
            body["port"] = port
        reader = ApiClient(api.client, api.tenant, "networks:read")
        resp = reader.post("/v1/connectivity-checks", body)
        assert resp.status_code == 200, resp.get_json()
        return dict(resp.get_json())
    return run


def _wire(hosts: Hosts, name: str, port: dict[str, Any], network: dict[str, Any],
          *serve: int) -> None:
    hosts.add(name, port["id"], port["mac"], host_addr(port, network), network["gateway_ip"])
    for listen in serve:
        hosts.start(name, "socat", f"TCP-LISTEN:{listen},reuseaddr,fork", f"SYSTEM:echo {name}")


def _hop(kind: str, doc: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "id": doc["id"], "name": doc["name"]}


def test_allowed_on_one_network(dp_api: Any, hosts: Hosts, check: Any) -> None:
    tag = _tag()
    net = dp_api.network(cidr="10.71.0.0/24")
    a, b = dp_api.port(net["id"]), dp_api.port(net["id"])
    _wire(hosts, f"ca{tag}", a, net)
    _wire(hosts, f"cb{tag}", b, net, HOST_PORT)
    wait_until(lambda: ping(hosts, f"ca{tag}", ip4(b)), timeout=WAIT, what="a -> b ping")
    # The server was started in the background: give it the time to listen.
    wait_until(lambda: tcp_reply(hosts, f"ca{tag}", ip4(b), HOST_PORT) == f"cb{tag}",
               timeout=WAIT, what="a -> b TCP")

    for protocol, port in (("icmp", None), ("tcp", HOST_PORT)):
        doc = check(dp_api, a, {"port": b["id"]}, protocol, port)
        assert doc["result"] == "allowed" and doc["complete"], doc
        assert doc["path"] == [_hop("network", net)]
        assert doc["policy"] is None and doc["translations"] == []
        assert doc["reason"] == f"delivered to port {b['id']}"
    by_ip = check(dp_api, a, {"ip": ip4(b)}, "udp", 53)
    assert by_ip["result"] == "allowed" and by_ip["packet"]["dst_mac"] == b["mac"]


def test_dropped_by_a_policy_rule(dp_api: Any, hosts: Hosts, check: Any) -> None:
    tag = _tag()
    net = dp_api.network(cidr="10.72.0.0/24")
    web = dp_api.port(net["id"], labels={"app": "web"})
    db = dp_api.port(net["id"], labels={"app": "db"})
    _wire(hosts, f"pw{tag}", web, net)
    _wire(hosts, f"pd{tag}", db, net, HOST_PORT, OTHER_PORT)
    wait_until(lambda: tcp_reply(hosts, f"pw{tag}", ip4(db), HOST_PORT) == f"pd{tag}",
               timeout=WAIT, what="web -> db before the policy")
    policy = post_created(dp_api, "/v1/policies", {
        "name": unique("db-in"), "selector": {"app": "db"},
        "ingress": [{"action": "allow", "protocol": "tcp", "ports": [OTHER_PORT]},
                    {"action": "deny", "protocol": "tcp", "ports": [HOST_PORT]}]})
    # Real packets: HOST_PORT is refused from now on, OTHER_PORT still answers.
    wait_until(lambda: tcp_reply(hosts, f"pw{tag}", ip4(db), HOST_PORT) == "",
               timeout=WAIT, what="the deny rule takes effect")
    assert stays(lambda: tcp_reply(hosts, f"pw{tag}", ip4(db), HOST_PORT) == "", 3)
    wait_until(lambda: tcp_reply(hosts, f"pw{tag}", ip4(db), OTHER_PORT) == f"pd{tag}",
               timeout=WAIT, what="the allow rule lets OTHER_PORT in")

    dropped = check(dp_api, web, {"port": db["id"]}, "tcp", HOST_PORT)
    assert dropped["result"] == "dropped", dropped
    assert dropped["policy"] == {"id": policy["id"], "name": policy["name"],
                                 "direction": "ingress", "rule": "ingress/1", "index": 1,
                                 "action": "deny"}
    assert policy["name"] in dropped["reason"] and "ingress/1" in dropped["reason"]
    allowed = check(dp_api, web, {"port": db["id"]}, "tcp", OTHER_PORT)
    assert allowed["result"] == "allowed", allowed
    assert allowed["policy"] == {**dropped["policy"], "rule": "ingress/0", "index": 0,
                                 "action": "allow"}
    # Nothing else is allowed into db: ping is dropped by the policy's default drop.
    assert not ping(hosts, f"pw{tag}", ip4(db), count=2)
    pinged = check(dp_api, web, {"port": db["id"]}, "icmp")
    assert pinged["result"] == "dropped"
    assert pinged["policy"]["rule"] == "ingress/default"
    assert pinged["policy"]["action"] == "default-deny"


def test_routed_through_a_gateway(dp_api: Any, hosts: Hosts, check: Any) -> None:
    tag = _tag()
    n1, n2 = dp_api.network(cidr="10.73.0.0/24"), dp_api.network(cidr="10.74.0.0/24")
    p1, p2 = dp_api.port(n1["id"]), dp_api.port(n2["id"])
    gw = post_created(dp_api, "/v1/gateways", {"name": unique("gw"), "networks": [
        {"network_id": n1["id"]}, {"network_id": n2["id"]}]})
    _wire(hosts, f"ga{tag}", p1, n1)
    _wire(hosts, f"gb{tag}", p2, n2, HOST_PORT)
    wait_until(lambda: ping(hosts, f"ga{tag}", ip4(p2)), timeout=WAIT, what="n1 -> n2 ping")
    wait_until(lambda: tcp_reply(hosts, f"ga{tag}", ip4(p2), HOST_PORT) == f"gb{tag}",
               timeout=WAIT, what="n1 -> n2 TCP")

    doc = check(dp_api, p1, {"port": p2["id"]}, "tcp", HOST_PORT)
    assert doc["result"] == "allowed" and doc["complete"], doc
    assert doc["path"] == [_hop("network", n1), _hop("gateway", gw), _hop("network", n2)]
    assert doc["packet"]["dst_mac"] != p2["mac"]  # sent to the gateway's router port
    # A network the gateway does not route: real packets are lost, and so says the check.
    n3 = dp_api.network(cidr="10.75.0.0/24")
    p3 = dp_api.port(n3["id"])
    _wire(hosts, f"gc{tag}", p3, n3)
    assert not ping(hosts, f"ga{tag}", ip4(p3), count=2)
    lost = check(dp_api, p1, {"port": p3["id"]}, "icmp")
    assert lost["result"] == "dropped", lost


@pytest.fixture(scope="module")
def external_net(dp_app: Any) -> Iterator[dict[str, Any]]:
    admin = ApiClient(dp_app.test_client(), unique("admin"), scope="admin")
    net = post_created(admin, "/v1/external-networks", {"name": unique("ext"), **EXTERNAL})
    try:
        yield net
    finally:
        assert admin.delete(f"/v1/external-networks/{net['id']}").status_code == 204


@pytest.fixture(scope="module")
def outside(dataplane: sandbox.Sandbox, external_net: dict[str, Any]) -> Iterator[Hosts]:
    manager = Hosts(dataplane.dir)
    name = f"co{_tag()}"
    try:
        manager.add_outside(name, dataplane.nb_unix, external_net["id"])
        manager.start(name, "socat", f"TCP-LISTEN:{PEER_PORT},reuseaddr,fork",
                      "SYSTEM:echo $SOCAT_PEERADDR")
        yield manager
    finally:
        manager.cleanup()


def test_snat_to_the_outside(dp_api: Any, hosts: Hosts, check: Any, outside: Hosts,
                             external_net: dict[str, Any]) -> None:
    tag = _tag()
    net = dp_api.network(cidr="10.76.0.0/24")
    port = dp_api.port(net["id"])
    gw = post_created(dp_api, "/v1/gateways", {
        "name": unique("gw"), "networks": [{"network_id": net["id"]}],
        "external": {"network_id": external_net["id"], "snat": True}})
    ext_ip = gw["external"]["ip"]
    _wire(hosts, f"sn{tag}", port, net)
    # The outside host sees the connection come from the gateway's SNAT address.
    wait_until(lambda: tcp_reply(hosts, f"sn{tag}", UPSTREAM, PEER_PORT) == ext_ip,
               timeout=WAIT, what="connection from the SNAT address")

    doc = check(dp_api, port, {"ip": UPSTREAM}, "tcp", PEER_PORT)
    assert doc["result"] == "allowed", doc
    assert doc["complete"], doc  # the router knows the upstream's MAC by now
    assert doc["path"] == [_hop("network", net), _hop("gateway", gw),
                           _hop("external-network", external_net)]
    assert {"type": "snat", "original": ip4(port), "translated": ext_ip,
            "gateway_id": gw["id"]} in doc["translations"], doc["translations"]
    assert doc["reason"] == "leaves through the external network"


def test_through_a_load_balancer_vip(dp_api: Any, hosts: Hosts, check: Any) -> None:
    tag = _tag()
    net = dp_api.network(cidr="10.77.0.0/24")
    client, b1, b2 = (dp_api.port(net["id"]) for _ in range(3))
    backends = {ip4(b1): f"lb1{tag}", ip4(b2): f"lb2{tag}"}
    lb = post_created(dp_api, "/v1/load-balancers", {
        "name": unique("lb"), "vip": "10.77.0.100", "networks": [net["id"]],
        "listeners": [{"port": 80, "backend_port": 8080}],
        "backends": [{"ip": ip} for ip in backends]})
    _wire(hosts, f"lc{tag}", client, net)
    for port, name in ((b1, f"lb1{tag}"), (b2, f"lb2{tag}")):
        _wire(hosts, name, port, net, 8080)
    wait_until(lambda: tcp_reply(hosts, f"lc{tag}", "10.77.0.100", 80) in backends.values(),
               timeout=WAIT, what="client -> VIP reaches a backend")

    doc = check(dp_api, client, {"ip": "10.77.0.100"}, "tcp", 80)
    assert doc["result"] == "allowed", doc
    (translation,) = [t for t in doc["translations"] if t["type"] == "load-balancer"]
    assert translation["original"] == "10.77.0.100:80"
    assert translation["translated"] in {f"{ip}:8080" for ip in backends}
    assert translation["load_balancer_id"] == lb["id"]
    assert doc["load_balancer"]["id"] == lb["id"]
    assert sorted((b["ip"], b["port"], b["result"]) for b in doc["load_balancer"]["backends"]) \
        == sorted((ip, 8080, "allowed") for ip in backends)
    assert doc["path"][0] == _hop("network", net)
    assert {"type": "load-balancer-router", "id": net["id"]} in doc["path"]
    chosen = translation["translated"].split(":")[0]
    assert doc["reason"] == f"delivered to port {(b1 if chosen == ip4(b1) else b2)['id']}"

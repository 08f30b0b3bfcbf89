"""GET /v1/events with a data plane: a port bound by ovn-controller streams its `up`, and
unplugged again its `down` (OVN sets the northbound `up` column; the revision stays); a load
balancer's backend health, which OVN's service monitor decides in the southbound database,
streams as it changes. Writes go through the in-process gateway (`dp_api`), the stream
comes from a `serve` process of its own."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from gateway import sandbox
from gateway.sandbox import hosts as sandbox_hosts

from helpers.api import SECRET, post_created, token, unique
from helpers.dataplane import Hosts, host_addr, ip4
from helpers.serving import Served, gateway_env, serving
from helpers.sse import Stream

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(dataplane: sandbox.Sandbox) -> Iterator[Served]:
    """A real `serve` process on the data-plane sandbox (NB and SB)."""
    assert dataplane.sb_unix is not None
    with tempfile.TemporaryDirectory(prefix="gw-events-dp-") as tmp, \
            serving(gateway_env(dataplane.nb_unix, SECRET, TMPDIR=tmp,
                                OVN_SB_DB=dataplane.sb_unix)) as running:
        yield running


def _post(served: Served, bearer: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = requests.post(served.base + path, json=body, timeout=30,
                         headers={"Authorization": f"Bearer {bearer}"})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def test_a_wired_port_streams_its_up_and_down(served: Served, hosts: Hosts) -> None:
    tenant = unique("ev-dp")
    bearer = token(tenant)
    net = _post(served, bearer, "/v1/networks", {"name": unique("net"),
                                                 "cidr": "10.66.0.0/24"})
    with Stream(served.host, served.port, bearer, "?kinds=ports") as stream:
        port = _post(served, bearer, f"/v1/networks/{net['id']}/ports", {"name": "vm"})
        created = stream.until(lambda e: e.data["id"] == port["id"])[-1]
        assert created.event == "created" and created.data["resource"]["status"] == "down"

        name = f"ev{uuid.uuid4().hex[:6]}"
        hosts.add(name, port["id"], port["mac"], host_addr(port, net))
        up = stream.until(lambda e: e.data["id"] == port["id"] and e.event == "updated",
                          timeout=30)[-1]
        assert up.data["resource"]["status"] == "up", up.data
        assert up.data["revision"] == 1  # a status change OVN made, not an API write
        up_id = up.id

        assert hosts.remove(name)
        down = stream.until(lambda e: e.data["id"] == port["id"] and e.event == "updated",
                            timeout=30)[-1]
        assert down.data["resource"]["status"] == "down", down.data

    # A client that saw `up` and reconnects gets the `down` it missed.
    with Stream(served.host, served.port, bearer, "?kinds=ports", last_event_id=up_id) as again:
        missed = again.until(lambda e: e.data["id"] == port["id"])[-1]
        assert missed.event == "updated" and missed.data["resource"]["status"] == "down"
    requests.delete(f"{served.base}/v1/networks/{net['id']}?cascade=true", timeout=30,
                    headers={"Authorization": f"Bearer {bearer}"})


def test_load_balancer_backend_health_streams(served: Served, dp_api: Any,
                                              hosts: Hosts) -> None:
    net = dp_api.network(cidr="10.67.0.0/24")
    tag = uuid.uuid4().hex[:6]
    backends, servers = {}, {}
    for i in range(2):
        name, port = f"eb{i}{tag}", dp_api.port(net["id"])
        hosts.add(name, port["id"], port["mac"], host_addr(port, net))
        backends[name] = ip4(port)
        servers[name] = hosts.start(name, "socat", "-t", "5", "TCP-LISTEN:8080,reuseaddr,fork",
                                    f"SYSTEM:echo {name}")
    check = {"interval": 1, "timeout": 1, "success_count": 1, "failure_count": 1}

    def health(event: Any) -> dict[str, str]:
        return {b["ip"]: b["status"] for b in event.data["resource"]["status"]["backends"]}

    with Stream(served.host, served.port, token(dp_api.tenant), "?kinds=load-balancers") as s:
        lb = post_created(dp_api, "/v1/load-balancers", {
            "name": unique("lb"), "vip": "10.67.0.100", "networks": [net["id"]],
            "listeners": [{"port": 80, "backend_port": 8080}],
            "backends": [{"ip": ip} for ip in backends.values()], "health_check": check})
        mine = lambda e: e.data["id"] == lb["id"]  # noqa: E731
        s.until(lambda e: mine(e) and set(health(e).values()) == {"online"}, timeout=30)
        dead, alive = sorted(backends)
        proc = servers.pop(dead)
        hosts.procs.remove(proc)
        sandbox_hosts.terminate(proc)
        event = s.until(lambda e: mine(e) and health(e)[backends[dead]] == "offline",
                        timeout=30)[-1]
        assert health(event) == {backends[dead]: "offline", backends[alive]: "online"}
        assert event.event == "updated"

"""GET /v1/events against real `ovn-nb-gateway serve` processes on one northbound database:
changes made through one process appear on another's stream, resume with Last-Event-ID,
reset, tenant and scope isolation, filters, the bounds on open streams, heartbeats, shutdown
with streams open, and the latency of ordinary requests with 100 streams open."""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from helpers.api import SECRET, token, unique
from helpers.serving import Served, gateway_env, serving, stop
from helpers.sse import SseEvent, Stream

PROBLEM = "application/problem+json"


def _serve(nb_sandbox: Any, **extra: str) -> Any:
    tmp = tempfile.mkdtemp(prefix="gw-events-")
    env = gateway_env(nb_sandbox.nb_unix, SECRET, TMPDIR=tmp,
                      **{"GATEWAY_EVENT_HEARTBEAT": "1", **extra})
    return serving(env)


@pytest.fixture(scope="module")
def one(nb_sandbox: Any) -> Iterator[Served]:
    with _serve(nb_sandbox) as running:
        yield running


@pytest.fixture(scope="module")
def two(nb_sandbox: Any) -> Iterator[Served]:
    with _serve(nb_sandbox) as running:
        yield running


@pytest.fixture(scope="module")
def small(nb_sandbox: Any) -> Iterator[Served]:
    """A process with a small window and tight bounds on open streams."""
    with _serve(nb_sandbox, GATEWAY_EVENT_WINDOW="8", GATEWAY_EVENT_STREAMS="3",
                GATEWAY_EVENT_STREAMS_PER_TENANT="2") as running:
        yield running


class Api:
    def __init__(self, served: Served, tenant: str, scope: str = "read write") -> None:
        self.served, self.tenant = served, tenant
        self.token = token(tenant, scope)
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.token}"

    def url(self, path: str) -> str:
        return self.served.base + path

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = self.session.post(self.url(path), json=body, timeout=30)
        assert resp.status_code == 201, resp.text
        return dict(resp.json())

    def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = self.session.patch(self.url(path), json=body, timeout=30)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.url(path), timeout=30, **kwargs)

    def delete(self, path: str) -> None:
        resp = self.session.delete(self.url(path), timeout=30)
        assert resp.status_code == 204, resp.text

    def network(self, **body: Any) -> dict[str, Any]:
        return self.post("/v1/networks", {"name": unique("net"), "cidr": "10.50.0.0/24",
                                          **body})

    def stream(self, query: str = "", last_event_id: str | None = None) -> Stream:
        return Stream(self.served.host, self.served.port, self.token, query, last_event_id)


def _is(kind: str, resource_id: str, type_: str | None = None) -> Any:
    def check(e: SseEvent) -> bool:
        return e.data.get("kind") == kind and e.data.get("id") == resource_id and \
            (type_ is None or e.event == type_)
    return check


def test_a_write_through_one_process_is_seen_on_anothers_stream(one: Served,
                                                                two: Served) -> None:
    tenant = unique("ev")
    writer, reader = Api(one, tenant), Api(two, tenant)
    with reader.stream() as stream:
        assert stream.status == 200, stream.body
        assert stream.headers["content-type"].startswith("text/event-stream")
        net = writer.network(labels={"app": "web"})
        created = stream.until(_is("network", net["id"]))[-1]
        assert created.event == "created"
        assert created.data["type"] == "created" and created.data["revision"] == 1
        # the resource as GET (on the reading process) returns it
        assert created.data["resource"] == reader.get(f"/v1/networks/{net['id']}").json()
        assert created.id and created.id.count(".") == 1
        port = writer.post(f"/v1/networks/{net['id']}/ports", {"name": "p1"})
        event = stream.until(_is("port", port["id"]))[-1]
        assert event.event == "created" and event.data["resource"]["status"] == "down"
        changed = writer.patch(f"/v1/ports/{port['id']}", {"description": "changed"})
        event = stream.until(_is("port", port["id"], "updated"))[-1]
        assert event.data["revision"] == changed["revision"] == 2
        assert event.data["resource"]["description"] == "changed"
        writer.delete(f"/v1/ports/{port['id']}")
        event = stream.until(_is("port", port["id"], "deleted"))[-1]
        assert "resource" not in event.data and event.data["revision"] == 2


def test_resume_after_a_disconnect_misses_nothing(one: Served, two: Served) -> None:
    tenant = unique("ev")
    writer, reader = Api(one, tenant), Api(two, tenant)
    net = writer.network()
    with reader.stream() as first:
        for i in range(3):
            writer.patch(f"/v1/networks/{net['id']}", {"description": f"before {i}"})
        got = first.until(lambda e: e.data.get("revision") == 4)
        last_id = got[-1].id
    # written while no stream is open
    ports = [writer.post(f"/v1/networks/{net['id']}/ports", {"name": f"p{i}"})
             for i in range(5)]
    writer.patch(f"/v1/networks/{net['id']}", {"description": "after"})
    writer.delete(f"/v1/ports/{ports[0]['id']}")
    with reader.stream(last_event_id=last_id) as again:
        events = again.until(_is("port", ports[0]["id"], "deleted"))
        seen = [(e.event, e.data["kind"], e.data["id"], e.data["revision"]) for e in events]
        expected = [("created", "port", p["id"], 1) for p in ports] + \
            [("updated", "network", net["id"], 5), ("deleted", "port", ports[0]["id"], 1)]
        assert seen == expected
        # ids grow by one from where the first stream stopped: nothing in between is missed
        token_, number = str(last_id).split(".")
        assert all(e.id and e.id.split(".")[0] == token_ for e in events)
        assert int(str(events[0].id).split(".")[1]) > int(number)


def test_an_id_that_left_the_window_gets_reset(small: Served, one: Served) -> None:
    tenant = unique("ev")
    api = Api(small, tenant)
    net = api.network()
    with api.stream() as stream:
        api.patch(f"/v1/networks/{net['id']}", {"description": "0"})
        old = stream.until(_is("network", net["id"], "updated"))[-1].id
    for i in range(10):  # more than the window of 8
        api.patch(f"/v1/networks/{net['id']}", {"description": f"{i + 1}"})
    time.sleep(0.5)
    with api.stream(last_event_id=old) as stream:
        first = stream.next()
        assert first is not None and first.event == "reset", first
        assert "list" in first.data["reason"]
        # and it goes on from the head
        api.patch(f"/v1/networks/{net['id']}", {"description": "after the reset"})
        assert stream.until(_is("network", net["id"], "updated"))[-1].data["revision"] == 13
    # an id of another process (or of before a restart) cannot be resumed either
    elsewhere = Api(one, tenant)
    with elsewhere.stream(last_event_id=old) as stream:
        first = stream.next()
        assert first is not None and first.event == "reset"
    page = elsewhere.get(f"/v1/events?cursor={old}").json()
    assert page["reset"] is True and page["items"] == []


def test_another_tenants_events_never_appear(one: Served, two: Served) -> None:
    a, b = Api(one, unique("ev-a")), Api(two, unique("ev-b"))
    admin = Api(two, unique("ops"), "admin")
    with b.stream() as b_stream, admin.stream() as everyone, \
            admin.stream(f"?tenant={a.tenant}") as only_a:
        a_net = a.network(description="secret of a")
        a.post(f"/v1/networks/{a_net['id']}/ports", {"name": "a-port"})
        b_net = Api(one, b.tenant).network()  # written elsewhere, streamed here
        got = b_stream.until(_is("network", b_net["id"]))
        assert all(e.data["resource"]["tenant_id"] == b.tenant for e in got), got
        assert not any(a_net["id"] in str(e.data) or a.tenant in str(e.data) for e in got)
        assert not any(a_net["id"] in str(e.data) for e in b_stream.quiet(1.0))
        # admins see every tenant, or one
        assert everyone.until(_is("network", a_net["id"]))
        assert everyone.until(_is("network", b_net["id"]))
        got = only_a.until(lambda e: e.data.get("kind") == "port")
        assert {e.data["resource"]["tenant_id"] for e in got} == {a.tenant}
        assert not any(b_net["id"] in str(e.data) for e in only_a.quiet(1.0))
    resp = b.get(f"/v1/events?tenant={a.tenant}", headers={"Accept": "text/event-stream"})
    assert resp.status_code == 400 and "tenant" in resp.json()["errors"]


def test_kinds_filter_and_read_scopes(one: Served) -> None:
    tenant = unique("ev")
    api = Api(one, tenant)
    dns_only = Api(one, tenant, "dns:read")
    with api.stream("?kinds=ports") as ports_only, dns_only.stream() as dns_stream, \
            api.stream("?kinds=networks,port") as both:
        net = api.network(dns_domain=unique("z") + ".example")
        port = api.post(f"/v1/networks/{net['id']}/ports", {"name": "p", "hostname": "h"})
        record = api.post("/v1/dns-records", {"name": unique("r"), "fqdn": "x.example.com",
                                              "ips": ["10.50.0.99"]})
        got = ports_only.until(_is("port", port["id"]))
        assert {e.data["kind"] for e in got} == {"port"}
        got = both.until(_is("port", port["id"]))
        assert {e.data["kind"] for e in got} == {"network", "port"}
        got = dns_stream.until(_is("dns-record", record["id"]))
        assert {e.data["kind"] for e in got} == {"dns-record"}  # the port's automatic record too
        assert not any(e.data["kind"] in ("network", "port") for e in dns_stream.quiet(0.5))
    for query, status in (("?kinds=ports,bogus", 400), ("?kinds=", 400)):
        resp = api.get("/v1/events" + query, headers={"Accept": "text/event-stream"})
        assert resp.status_code == status, resp.text
        assert resp.headers["content-type"] == PROBLEM and "kinds" in resp.json()["errors"]
    resp = dns_only.get("/v1/events?kinds=networks", headers={"Accept": "text/event-stream"})
    assert resp.status_code == 403, resp.text
    assert Api(one, tenant, "nothing").get("/v1/events").status_code == 403
    assert requests.get(one.base + "/v1/events", timeout=10).status_code == 401


def test_streams_past_the_bounds_are_429_and_a_closed_stream_frees_its_slot(
        small: Served) -> None:
    a, b = Api(small, unique("ev-a")), Api(small, unique("ev-b"))
    first, second = a.stream(), a.stream()
    assert first.status == second.status == 200
    third = a.stream()  # GATEWAY_EVENT_STREAMS_PER_TENANT=2
    assert third.status == 429 and third.headers["retry-after"]
    assert third.headers["content-type"] == PROBLEM and "PER_TENANT" in third.json()["detail"]
    other = b.stream()
    assert other.status == 200
    over = b.stream()  # GATEWAY_EVENT_STREAMS=3 for the process
    assert over.status == 429 and "GATEWAY_EVENT_STREAMS" in over.json()["detail"]
    first.close()  # noticed at the next heartbeat's write at the latest (1 s here)
    deadline = time.monotonic() + 10
    while True:
        again = a.stream()
        if again.status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert again.status == 200
    for s in (second, other, again):
        s.close()


def test_heartbeats_keep_an_idle_stream_alive(one: Served) -> None:
    api = Api(one, unique("ev"))
    with api.stream() as stream:
        start = time.monotonic()
        beats = []
        while len(beats) < 3:
            item = stream.next(timeout=5, comments=True)
            assert item is not None
            if item.event == "comment" and item.data == "heartbeat":
                beats.append(item.at - start)
        assert beats[-1] < 5, beats  # GATEWAY_EVENT_HEARTBEAT=1


def test_the_json_page_polls_the_window(one: Served) -> None:
    api = Api(one, unique("ev"))
    head = api.get("/v1/events").json()
    assert head["items"] == [] and head["reset"] is False
    net = api.network()
    api.patch(f"/v1/networks/{net['id']}", {"description": "x"})
    deadline = time.monotonic() + 10
    items: list[dict[str, Any]] = []
    cursor = head["last_event_id"]
    while len(items) < 2 and time.monotonic() < deadline:
        page = api.get(f"/v1/events?cursor={cursor}&limit=1").json()
        items += page["items"]
        cursor = page["last_event_id"]
        time.sleep(0.05)
    assert [(i["type"], i["revision"]) for i in items] == [("created", 1), ("updated", 2)]
    assert all(i["tenant_id"] == api.tenant and i["id"] == net["id"] for i in items)


def test_shutdown_ends_open_streams(nb_sandbox: Any) -> None:
    with _serve(nb_sandbox, GATEWAY_EVENT_HEARTBEAT="30") as served:
        api = Api(served, unique("ev"))
        streams = [api.stream() for _ in range(5)]
        assert all(s.status == 200 for s in streams)
        start = time.monotonic()
        stop(served.proc)
        took = time.monotonic() - start
        for s in streams:
            assert s.quiet(2) == [] and s.next(timeout=2) is None  # ended, not cut mid-event
            s.close()
    assert took < 10, took  # not the 30 s of a heartbeat, nor gunicorn's graceful timeout


def _p50(api: Api, path: str, n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        resp = api.get(path)
        times.append(time.perf_counter() - start)
        assert resp.status_code == 200
    return statistics.median(times)


def test_100_open_streams_leave_request_latency_alone(nb_sandbox: Any) -> None:
    with _serve(nb_sandbox, GATEWAY_EVENT_STREAMS_PER_TENANT="100") as served:
        api = Api(served, unique("ev"))
        net = api.network()
        path = f"/v1/networks/{net['id']}"
        _p50(api, path, 50)  # warm up
        without = _p50(api, path, 300)
        streams = [api.stream() for _ in range(100)]
        try:
            assert [s.status for s in streams] == [200] * 100
            assert api.stream().status == 429  # the 101st (GATEWAY_EVENT_STREAMS=100)
            idle = _p50(api, path, 300)
            # and while every stream is sent events: a writer changes the network meanwhile
            stop_writer = threading.Event()

            def write() -> None:
                writer = Api(served, api.tenant)
                i = 0
                while not stop_writer.is_set():
                    writer.patch(path, {"description": f"w{i}"})
                    i += 1
                    time.sleep(0.05)
            thread = threading.Thread(target=write, daemon=True)
            thread.start()
            busy = _p50(api, path, 300)
            stop_writer.set()
            thread.join(10)
            got = streams[-1].until(lambda e: e.data.get("kind") == "network")
            assert got
        finally:
            for s in streams:
                s.close()
        print(f"\nGET p50: {without * 1000:.2f} ms without streams, {idle * 1000:.2f} ms with "
              f"100 idle streams, {busy * 1000:.2f} ms with 100 streams receiving ~20 "
              "events/s")
        assert idle < max(3 * without, without + 0.005), (without, idle)
        assert busy < max(5 * without, without + 0.010), (without, busy)

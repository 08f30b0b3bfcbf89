"""The northbound database goes away and comes back: the gateway says 503 with Retry-After,
quickly and never 500, and recovers on its own.

Uses its own ovsdb-server sandbox (not the session one) and its own app on it."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway import sandbox
from gateway.config import Settings

from helpers.api import SECRET, ApiClient, unique
from helpers.waiting import wait_until

BOUND = 10.0  # no request may take longer than this, whatever the database does
OUTCOME_UNKNOWN = "urn:ovn-nb-gateway:problem:outcome-unknown"


def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    wait_until(predicate, timeout, interval=0.05, what=what)


def _timed(fn: Callable[[], Any]) -> Any:
    start = time.monotonic()
    resp = fn()
    elapsed = time.monotonic() - start
    assert elapsed < BOUND, f"request took {elapsed:.1f} s"
    return resp


def _assert_unavailable(resp: Any) -> None:
    assert resp.status_code == 503, (resp.status_code, resp.data[:300])
    assert int(resp.headers["Retry-After"]) >= 1
    assert resp.headers.get("X-Request-ID")
    if resp.mimetype == "application/problem+json":
        assert resp.get_json()["status"] == 503


@pytest.fixture
def box_dir() -> Iterator[Path]:
    # a short path: unix socket paths are limited to 107 bytes
    directory = Path(tempfile.mkdtemp(prefix="gw-outage-", dir="/tmp"))
    try:
        yield directory
    finally:
        sandbox.stop(directory)
        shutil.rmtree(directory, ignore_errors=True)


def _make_app(nb_db: str) -> Any:
    from gateway.app import create_app

    settings = Settings(nb_db=nb_db, jwt_secret=SECRET, ovn_timeout=3.0, retry_after=3)
    application = create_app(settings)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def outage_app(box_dir: Path) -> Iterator[Any]:
    box = sandbox.start(box_dir)
    application = _make_app(box.nb_unix)
    assert application.extensions["gateway"].nb.wait_ready(15)
    try:
        yield application
    finally:
        application.extensions["gateway"].nb.stop()


def test_outage_gives_503_and_recovers(outage_app: Any, box_dir: Path) -> None:
    client = outage_app.test_client()
    api = ApiClient(client, unique("tenant"))
    assert client.get("/readyz").status_code == 200
    before = api.network(cidr="10.90.0.0/24")
    port = api.port(before["id"])

    assert sandbox.stop(box_dir)
    # right after the stop the gateway may not know yet: whatever it says, quickly, no 500
    resp = _timed(lambda: api.post("/v1/networks", {"name": unique("n"), "cidr": "10.91.0.0/24"}))
    assert resp.status_code in (201, 503), resp.get_json()
    _until(lambda: client.get("/readyz").status_code == 503, BOUND, "/readyz 503")
    ready = client.get("/readyz")
    assert int(ready.headers["Retry-After"]) >= 1
    assert client.get("/healthz").status_code == 200  # the process itself is fine

    _assert_unavailable(_timed(lambda: api.get("/v1/networks")))
    refused = _timed(lambda: api.post("/v1/networks",
                                      {"name": unique("n"), "cidr": "10.92.0.0/24"}))
    _assert_unavailable(refused)
    # nothing was sent: the plain problem, not "outcome unknown"
    assert refused.get_json()["type"] == "about:blank", refused.get_json()
    _assert_unavailable(_timed(lambda: api.get(f"/v1/networks/{before['id']}")))
    _assert_unavailable(_timed(lambda: api.patch(f"/v1/networks/{before['id']}",
                                                 {"description": "x"})))
    _assert_unavailable(_timed(lambda: api.delete(f"/v1/ports/{port['id']}")))
    _assert_unavailable(_timed(lambda: api.get("/v1/ports")))
    _assert_unavailable(_timed(lambda: api.post(f"/v1/networks/{before['id']}/ports",
                                                {"name": unique("p")})))
    # auth and validation problems are still reported as such
    assert client.get("/v1/networks").status_code in (401, 503)

    sandbox.start(box_dir)
    _until(lambda: client.get("/readyz").status_code == 200, 30, "/readyz 200 after restart")
    listed = _timed(lambda: api.get("/v1/networks"))
    assert listed.status_code == 200
    assert before["id"] in {n["id"] for n in listed.get_json()["items"]}
    assert api.get(f"/v1/ports/{port['id']}").status_code == 200
    after = api.network(cidr="10.93.0.0/24")
    assert api.get(f"/v1/networks/{after['id']}").status_code == 200
    assert api.port(after["id"])["ips"] == ["10.93.0.2"]
    resp = api.patch(f"/v1/networks/{before['id']}", {"description": "after the outage"})
    assert resp.status_code == 200, resp.get_json()
    # nothing was half-written during the outage
    names = {n["name"] for n in api.get("/v1/networks").get_json()["items"]}
    assert len(names) in (2, 3)  # the one racing the stop may or may not have landed


def test_gateway_starts_without_database(box_dir: Path) -> None:
    nb_db = f"unix:{box_dir / 'nb.sock'}"
    application = _make_app(nb_db)
    try:
        client = application.test_client()
        api = ApiClient(client, unique("tenant"))
        assert client.get("/healthz").status_code == 200
        resp = client.get("/readyz")
        assert resp.status_code == 503 and int(resp.headers["Retry-After"]) >= 1
        _assert_unavailable(_timed(lambda: api.get("/v1/networks")))
        _assert_unavailable(_timed(lambda: api.post(
            "/v1/networks", {"name": unique("n"), "cidr": "10.94.0.0/24"})))

        sandbox.start(box_dir)
        _until(lambda: client.get("/readyz").status_code == 200, 30, "/readyz 200")
        assert api.network(cidr="10.94.0.0/24")["gateway_ip"] == "10.94.0.1"
    finally:
        application.extensions["gateway"].nb.stop()


def test_frozen_database_bounds_writes(outage_app: Any, box_dir: Path) -> None:
    """A database that accepts nothing but keeps the socket open (SIGSTOP): writes give up
    within the configured timeout with 503, and a retry with the same Idempotency-Key after
    it thaws never makes a second network."""
    client = outage_app.test_client()
    api = ApiClient(client, unique("tenant"))
    api.network(cidr="10.95.0.0/24")
    pid = sandbox.status(box_dir)["pid"]
    assert isinstance(pid, int)
    body = {"name": unique("frozen"), "cidr": "10.96.0.0/24"}
    key = {"Idempotency-Key": "frozen-" + unique("k")}
    os.kill(pid, signal.SIGSTOP)
    try:
        resp = _timed(lambda: api.post("/v1/networks", body, headers=key))
        _assert_unavailable(resp)
        # reads of the replica may still answer; either way, quickly and never 500
        assert _timed(lambda: api.get("/v1/networks")).status_code in (200, 503)
    finally:
        os.kill(pid, signal.SIGCONT)
    _until(lambda: client.get("/readyz").status_code == 200, 30, "/readyz 200 after thaw")
    deadline = time.monotonic() + 20
    while True:  # the queue of the stalled connection drains first
        resp = _timed(lambda: api.post("/v1/networks", body, headers=key))
        if resp.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert resp.status_code in (200, 201), resp.get_json()
    items = api.get(f"/v1/networks?name={body['name']}").get_json()["items"]
    assert [n["id"] for n in items] == [resp.get_json()["id"]]


def test_readyz_notices_a_frozen_database(outage_app: Any, box_dir: Path) -> None:
    """SIGSTOP keeps the socket open, so the connection looks fine; /readyz asks the
    database itself (an OVSDB echo with a deadline) and says 503 when it does not answer."""
    client = outage_app.test_client()
    assert client.get("/readyz").status_code == 200
    pid = sandbox.status(box_dir)["pid"]
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        resp = client.get("/readyz")
        elapsed = time.monotonic() - start
        assert resp.status_code == 503, resp.get_json()
        assert elapsed < 3, f"/readyz took {elapsed:.1f} s"
        assert resp.get_json()["northbound"] == "unresponsive", resp.get_json()
        assert int(resp.headers["Retry-After"]) >= 1
        assert client.get("/healthz").status_code == 200
    finally:
        os.kill(pid, signal.SIGCONT)
    _until(lambda: client.get("/readyz").status_code == 200, 10, "/readyz 200 after thaw")
    assert client.get("/readyz").get_json()["northbound"] == "connected"


def _audit_of(caplog: pytest.LogCaptureFixture, request_id: str) -> dict[str, Any]:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]
    (line,) = [line for line in lines if line["request_id"] == request_id]
    return line


def test_write_timing_out_after_it_was_sent_is_outcome_unknown(
        outage_app: Any, box_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The database stops answering while a write is on its way: the gateway cannot know
    whether it landed, and says so (a 503 of its own type, and `unknown` in the audit
    line). A second write still waiting its turn was never sent: plain 503, and it never
    lands later."""
    caplog.set_level(logging.INFO, logger="gateway.audit")
    tenant = unique("tenant")
    ApiClient(outage_app.test_client(), tenant).network(cidr="10.97.0.0/24")  # warm up
    sent = {"name": unique("sent"), "cidr": "10.98.0.0/24"}
    queued = {"name": unique("queued"), "cidr": "10.99.0.0/24"}
    key = {"Idempotency-Key": "sent-" + unique("k")}
    results: dict[str, Any] = {}

    def post(which: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        api = ApiClient(outage_app.test_client(), tenant)
        results[which] = _timed(lambda: api.post(
            "/v1/networks", body, headers={**headers, "X-Request-ID": f"{which}-{tenant}"}))

    pid = sandbox.status(box_dir)["pid"]
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGSTOP)
    try:
        first = threading.Thread(target=post, args=("sent", sent, key))
        first.start()
        time.sleep(0.5)  # the first write is in the database's socket by now
        second = threading.Thread(target=post, args=("queued", queued, {}))
        second.start()
        first.join(BOUND + 5)
        second.join(BOUND + 5)
    finally:
        os.kill(pid, signal.SIGCONT)

    unknown = results["sent"]
    _assert_unavailable(unknown)
    problem = unknown.get_json()
    assert unknown.mimetype == "application/problem+json"
    assert problem["type"] == OUTCOME_UNKNOWN, problem
    assert problem["status"] == 503
    assert "Idempotency-Key" in problem["detail"], problem
    line = _audit_of(caplog, f"sent-{tenant}")
    assert line["outcome"] == "unknown" and line["status"] == 503, line

    never_sent = results["queued"]
    _assert_unavailable(never_sent)
    assert never_sent.get_json()["type"] == "about:blank", never_sent.get_json()
    line = _audit_of(caplog, f"queued-{tenant}")
    assert line["outcome"] == 503 and line["status"] == 503, line

    client = outage_app.test_client()
    api = ApiClient(client, tenant)
    _until(lambda: client.get("/readyz").status_code == 200, 30, "/readyz 200 after thaw")
    # the write behind the 503 landed after all; the one never sent never does
    _until(lambda: sent["name"] in {n["name"] for n in api.get("/v1/networks")
                                    .get_json()["items"]}, 20, "the sent write to land")
    time.sleep(0.5)
    names = {n["name"] for n in api.get("/v1/networks").get_json()["items"]}
    assert queued["name"] not in names, names
    # the retry the problem asks for answers the landed network, once
    retry = api.post("/v1/networks", sent, headers=key)
    assert retry.status_code == 201 and retry.headers.get("Idempotent-Replayed") == "true"
    assert [n["name"] for n in api.get(f"/v1/networks?name={sent['name']}")
            .get_json()["items"]] == [sent["name"]]

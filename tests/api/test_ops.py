"""Operations endpoints: health, readiness (northbound and, when configured, southbound),
metrics after real requests."""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

from gateway.app import create_app, monitored
from gateway.config import Settings
from gateway.ovn.connection import Northbound


def test_healthz_and_readyz(client: Any) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.get_json()
    assert body["northbound"] == "connected"
    assert body["schema_version"]
    assert "southbound" not in body  # not configured
    # the venv gets python-ovs's C parser from scripts/bootstrap.sh; saying so is the point
    assert body["json_parser"] == "C"


def test_readyz_reports_an_unreachable_southbound_without_failing(settings: Settings,
                                                                  tmp_path: Any) -> None:
    app = create_app(dataclasses.replace(settings, sb_db=f"unix:{tmp_path}/none.sock"))
    nb = app.extensions["gateway"].nb
    try:
        assert nb.wait_ready(15)
        body = app.test_client().get("/readyz").get_json()
        assert body["northbound"] == "connected", body
        assert body["southbound"] == "unreachable", body
    finally:
        nb.stop()


def test_metrics_count_requests_and_transactions(api: Any) -> None:
    api.network()
    text = api.client.get("/metrics").get_data(as_text=True)
    assert 'gateway_http_requests_total{method="POST",route="/v1/networks",status="201"}' in text
    assert 'gateway_ovn_transactions_total{operation="create_network",outcome="ok"}' in text
    assert "gateway_ovn_transaction_duration_seconds_bucket" in text
    assert 'gateway_ovsdb_json_parser{parser="C"} 1.0' in text
    assert "gateway_ovn_batch_size_count" in text


STANDARD_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def _label_values(text: str, label: str) -> set[str]:
    return set(re.findall(rf'^gateway_http_\w+{{.*?\b{label}="([^"]*)"', text, re.M))


def test_metric_labels_come_from_bounded_sets(client: Any) -> None:
    """No token is needed to make a request: a made-up method or path must not add a label
    value (each one would be a new time series, kept until the process ends)."""
    for i in range(20):
        assert client.open("/healthz", method=f"XABCDEFGHIJKL{i}").status_code == 405
        assert client.open(f"/made-up-{i}", method=f"FOO{i}").status_code in (404, 405)
        assert client.get(f"/v1/networks/not-a-uuid-{i}").status_code == 404
    assert client.open("/healthz", method="PROPFIND").status_code == 405
    text = client.get("/metrics").get_data(as_text=True)
    methods = _label_values(text, "method")
    assert "other" in methods
    assert methods <= STANDARD_METHODS | {"other"}, methods
    assert "XABCDEFGHIJKL" not in text and "FOO1" not in text and "made-up" not in text
    routes = _label_values(text, "route")
    assert "unmatched" in routes
    assert all(r == "unmatched" or not re.search(r"\d", r.replace("v1", "")) for r in routes), \
        routes
    statuses = _label_values(text, "status")
    assert all(re.fullmatch(r"[1-5]\d\d", s) for s in statuses), statuses


def test_cors_preflight_and_response_headers_for_configured_origins(settings: Settings) -> None:
    app = create_app(dataclasses.replace(settings, cors_origins=("https://portal.example",)))
    nb = app.extensions["gateway"].nb
    try:
        assert nb.wait_ready(15)
        client = app.test_client()
        pre = client.options("/v1/networks", headers={
            "Origin": "https://portal.example", "Access-Control-Request-Method": "POST"})
        assert pre.status_code == 200
        assert pre.headers["Access-Control-Allow-Origin"] == "https://portal.example"
        assert "POST" in pre.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]
        other = client.options("/v1/networks", headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in other.headers
        resp = client.get("/v1/networks", headers={"Origin": "https://portal.example"})
        assert resp.status_code == 401  # CORS does not replace the token
        assert resp.headers["Access-Control-Allow-Origin"] == "https://portal.example"
    finally:
        nb.stop()


def test_stopping_during_startup_never_raises_and_leaves_no_thread(settings: Settings) -> None:
    # stop() may come at any moment of the background connect (a worker shutting down
    # early); it must neither raise nor leave an IDL thread running.
    for delay in (0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3):
        nb = Northbound(settings, monitored())
        nb.start()
        time.sleep(delay)
        nb.stop()
        assert nb._thread is not None
        nb._thread.join(10)
        assert not nb._thread.is_alive()
        connection = nb.connection
        assert connection is None or not connection.is_running

"""Operations endpoints: health, readiness (northbound and, when configured, southbound),
metrics after real requests."""

from __future__ import annotations

import dataclasses
from typing import Any

from gateway.app import create_app
from gateway.config import Settings


def test_healthz_and_readyz(client: Any) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.get_json()
    assert body["northbound"] == "connected"
    assert body["schema_version"]
    assert "southbound" not in body  # not configured


def test_readyz_reports_an_unreachable_southbound_without_failing(settings: Settings,
                                                                  tmp_path: Any) -> None:
    app = create_app(dataclasses.replace(settings, sb_db=f"unix:{tmp_path}/none.sock"))
    nb = app.extensions["gateway"].nb
    try:
        assert nb.wait_ready(15)
        body = app.test_client().get("/readyz").get_json()
        assert body["northbound"] == "connected"
        assert body["southbound"] == "unreachable"
    finally:
        nb.stop()


def test_metrics_count_requests_and_transactions(api: Any) -> None:
    api.network()
    text = api.client.get("/metrics").get_data(as_text=True)
    assert 'gateway_http_requests_total{method="POST",route="/v1/networks",status="201"}' in text
    assert 'gateway_ovn_transactions_total{operation="create_network",outcome="ok"}' in text
    assert "gateway_ovn_transaction_duration_seconds_bucket" in text

"""Prometheus metrics. Under gunicorn the CLI sets PROMETHEUS_MULTIPROC_DIR so that
/metrics aggregates every worker."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

REQUESTS = Counter("gateway_http_requests_total", "HTTP requests",
                   ["method", "route", "status"])
REQUEST_SECONDS = Histogram("gateway_http_request_duration_seconds", "HTTP request latency",
                            ["method", "route", "status"], buckets=_BUCKETS)
OVN_TXNS = Counter("gateway_ovn_transactions_total", "OVN northbound transactions",
                   ["operation", "outcome"])
OVN_TXN_SECONDS = Histogram("gateway_ovn_transaction_duration_seconds",
                            "OVN northbound transaction latency", ["operation"],
                            buckets=_BUCKETS)

JSON_PARSER = Gauge("gateway_ovsdb_json_parser", "1 for the JSON parser python-ovs uses "
                    "for OVSDB messages: C or PYTHON", ["parser"], multiprocess_mode="max")
# Write requests committed together in one transaction (gateway.ovn.batch).
OVN_BATCH_SIZE = Histogram("gateway_ovn_batch_size",
                           "Write requests committed in one northbound transaction",
                           buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
OVN_BATCH_DEFERRED = Counter("gateway_ovn_batch_deferred_total",
                             "Write requests moved to the next transaction because they "
                             "verify what an earlier request of theirs changed")
OVN_BATCH_SPLITS = Counter("gateway_ovn_batch_splits_total",
                           "Transactions refused as a whole and committed again one "
                           "request at a time")


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST

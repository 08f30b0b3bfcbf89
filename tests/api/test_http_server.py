"""What the HTTP server in front of the app answers by itself, over real HTTP: gunicorn's
limits on the request line and headers, chunked bodies over the size limit, and requests
with made-up methods against the metrics of every worker."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.api import SECRET, token, unique
from helpers.serving import Reply, Served, chunked, exchange, gateway_env, serving

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def served(nb_sandbox: Any) -> Iterator[Served]:
    with tempfile.TemporaryDirectory(prefix="gw-http-") as tmp, \
            serving(gateway_env(nb_sandbox.nb_unix, SECRET, TMPDIR=tmp)) as running:
        yield running


def _get(target: bytes, extra: bytes = b"") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + extra + b"\r\n"


def _assert_problem(reply: Reply, status: int) -> dict[str, Any]:
    assert reply.status == status, (reply.status, reply.body[:300])
    assert reply.headers["content-type"].split(";")[0] == PROBLEM, reply.headers
    body = reply.json()
    assert body["status"] == status and body["title"] and body["detail"], body
    assert body["type"] == "about:blank"
    assert body["errors"] == {}
    assert re.fullmatch(r"[0-9a-f]{32}", reply.headers["x-request-id"]), reply.headers
    assert body["request_id"] == reply.headers["x-request-id"]
    return dict(body)


def test_request_line_over_4094_bytes_is_414_problem(served: Served) -> None:
    _assert_problem(exchange(served, _get(b"/healthz?" + b"a" * 5000)), 414)
    # the limit counts the whole request line ("GET " + target + " HTTP/1.1")
    assert exchange(served, _get(b"/healthz?" + b"a" * 4000)).status == 200


def test_header_field_over_8190_bytes_is_431_problem(served: Served) -> None:
    _assert_problem(exchange(served, _get(b"/healthz", b"X-Big: " + b"a" * 9000 + b"\r\n")),
                    431)
    assert exchange(served, _get(b"/healthz", b"X-Big: " + b"a" * 8000 + b"\r\n")).status == 200


def test_more_than_100_header_fields_is_431_problem(served: Served) -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(120))
    _assert_problem(exchange(served, _get(b"/healthz", many)), 431)
    some = b"".join(b"X-H%d: v\r\n" % i for i in range(90))
    assert exchange(served, _get(b"/healthz", some)).status == 200


def test_a_request_the_server_cannot_parse_is_400_problem(served: Served) -> None:
    _assert_problem(exchange(served, b"GET /healthz HTTP/9.9\r\nHost: t\r\n\r\n"), 400)


def _post(path: str, tenant: str, body: bytes, headers: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
            f"Authorization: Bearer {token(tenant)}\r\nContent-Type: application/json\r\n"
            ).encode() + headers + b"\r\n" + body


def _listed(served: Served, tenant: str) -> list[Any]:
    reply = exchange(served, _get(b"/v1/networks", f"Authorization: Bearer {token(tenant)}\r\n"
                                  .encode()))
    assert reply.status == 200, reply.body
    return list(reply.json()["items"])


def test_chunked_body_over_1_mib_is_413(served: Served) -> None:
    tenant = unique("tenant")
    big = json.dumps({"name": unique("n"), "cidr": "10.0.0.0/24",
                      "description": "x" * (2 << 20)}).encode()
    reply = exchange(served, _post("/v1/networks", tenant, chunked(big),
                                   b"Transfer-Encoding: chunked\r\n"))
    assert reply.status == 413, (reply.status, reply.body[:300])
    assert reply.headers["content-type"] == PROBLEM
    assert reply.json()["detail"] == "request body exceeds 1 MiB"
    # just over the limit, too: not read as a truncated (invalid) document
    edge = json.dumps({"name": "n", "cidr": "10.0.0.0/24",
                       "description": "x" * (1 << 20)}).encode()[: (1 << 20) + 1]
    reply = exchange(served, _post("/v1/networks", tenant, chunked(edge),
                                   b"Transfer-Encoding: chunked\r\n"))
    assert reply.status == 413, (reply.status, reply.body[:300])
    assert _listed(served, tenant) == []


def test_chunked_body_under_the_limit_is_read(served: Served) -> None:
    tenant = unique("tenant")
    body = json.dumps({"name": unique("n"), "cidr": "10.0.0.0/24"}).encode()
    reply = exchange(served, _post("/v1/networks", tenant, chunked(body, 7),
                                   b"Transfer-Encoding: chunked\r\n"))
    assert reply.status == 201, (reply.status, reply.body[:300])
    assert len(_listed(served, tenant)) == 1


def test_made_up_methods_do_not_grow_the_metrics(served: Served) -> None:
    for i in range(10):
        reply = exchange(served, f"XABCDEFGHIJKL{i} /healthz HTTP/1.1\r\nHost: t\r\n"
                                 "Connection: close\r\n\r\n".encode())
        assert reply.status == 405
    text = exchange(served, _get(b"/metrics")).body.decode()
    assert "XABCDEFGHIJKL" not in text
    assert re.search(r'gateway_http_requests_total\{method="other",route="unmatched",'
                     r'status="405"\} (\d+)', text), text[:2000]


def test_metrics_live_in_a_folder_of_their_own(served: Served) -> None:
    folders = list(Path(served.env["TMPDIR"]).glob("ovngw-metrics-*"))
    assert len(folders) == 1 and any(folders[0].iterdir()), folders

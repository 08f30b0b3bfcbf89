"""What the client tests share: tenants with a client, `ovngw` results, and a proxy in front
of the gateway that answers 503 on cue."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.client import Client

from helpers.serving import Served

OUTCOME_UNKNOWN = "urn:ovn-nb-gateway:problem:outcome-unknown"


@dataclass
class Tenant:
    name: str
    token: str
    client: Client


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def yaml(self) -> Any:
        return yaml.safe_load(self.out)

    def table(self) -> list[dict[str, str]]:
        """A table's rows as {header: cell}; columns are separated by two or more spaces."""
        lines = self.out.splitlines()
        starts = [0] + [i for i in range(1, len(lines[0]))
                        if lines[0][i] != " " and lines[0][i - 2:i] == "  "]
        bounds = list(zip(starts, [*starts[1:], None], strict=True))
        heads = [lines[0][a:b].strip() for a, b in bounds]
        return [{h: line[a:b].strip() for h, (a, b) in zip(heads, bounds, strict=True)}
                for line in lines[1:]]

    def fields(self) -> dict[str, str]:
        """The FIELD/VALUE table of one document."""
        return {row["FIELD"]: row["VALUE"] for row in self.table()}


Run = Callable[..., Result]


def ovngw_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user with HOME at HOME and no ovngw settings of their own."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OVNGW_") and k != "XDG_CONFIG_HOME"}
    return {**env, "HOME": str(home), **extra}


# --- a proxy that answers 503 on cue ---------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    answered: int
    upstream: dict[str, str] = field(default_factory=dict)  # the gateway's answer headers


class Flaky:
    """Forwards to the gateway, except that each request takes the next step of `script`:
    "503": answer a plain 503 (nothing forwarded); "lost": forward it, then answer a 503
    outcome-unknown instead of the gateway's reply (the write landed, the reply was lost).
    An empty script forwards everything."""

    def __init__(self, upstream: Served, retry_after: str = "1") -> None:
        self.upstream, self.retry_after = upstream, retry_after
        self.script: list[str] = []
        self.seen: list[Seen] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do(self) -> None:
                proxy.handle(self)

            do_GET = do_POST = do_PATCH = do_DELETE = do

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def requests(self, method: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method]

    def handle(self, req: http.server.BaseHTTPRequestHandler) -> None:
        step = self.script.pop(0) if self.script else "pass"
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else None
        headers = {k.lower(): v for k, v in req.headers.items()}
        seen = Seen(req.command, req.path, headers, 0)
        self.seen.append(seen)
        if step != "503":
            conn = http.client.HTTPConnection(self.upstream.host, self.upstream.port, timeout=60)
            conn.request(req.command, req.path, body=body,
                         headers={k: v for k, v in req.headers.items() if k.lower() != "host"})
            resp = conn.getresponse()
            status, payload = resp.status, resp.read()
            seen.upstream = {k.lower(): v for k, v in resp.getheaders()}
            conn.close()
        if step == "pass":
            kind = seen.upstream.get("content-type", "application/json")
        else:
            status, kind = 503, "application/problem+json"
            lost = step == "lost"
            payload = json.dumps({
                "type": OUTCOME_UNKNOWN if lost else "about:blank",
                "title": "Outcome Unknown" if lost else "Service Unavailable", "status": 503,
                "detail": "the write may or may not have been applied" if lost
                else "the OVN northbound database is not reachable",
                "errors": {}, "request_id": "flaky-proxy"}).encode()
        seen.answered = status
        req.send_response(status)
        req.send_header("Content-Type", kind)
        req.send_header("Content-Length", str(len(payload)))
        if status == 503:
            req.send_header("Retry-After", self.retry_after)
        req.end_headers()
        req.wfile.write(payload)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

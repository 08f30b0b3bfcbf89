#!/usr/bin/env python3
"""The latency floor of the serving stack alone: a bare Flask app on gunicorn, no gateway.

It runs the same server settings and the same client as bench_api.py (one gthread worker,
4 threads, one keep-alive http.client connection, sequential requests), so subtracting this
floor from a bench_api.py figure leaves what the gateway itself costs.

    .venv/bin/python benchmarks/bench_http_floor.py [--samples 2000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flask import Flask, request

app = Flask(__name__)


@app.get("/")
def get_doc() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/")
def post_doc() -> tuple[dict[str, str], int]:
    return dict(request.get_json()), 201


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _measure(port: int, method: str, samples: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = json.dumps({"name": "net-1", "cidr": "10.0.0.0/24"}) if method == "POST" else None
    headers = {"Content-Type": "application/json"} if body else {}
    out = []
    for _ in range(samples + samples // 10):  # the first tenth warms up and is dropped
        start = time.perf_counter()
        conn.request(method, "/", body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        out.append((time.perf_counter() - start) * 1000)
    conn.close()
    return out[samples // 10:]


def start(folder: Path, workers: int = 1, threads: int = 4) -> tuple[subprocess.Popen[bytes], int]:
    """gunicorn serving this app (gthread, `workers` x `threads`, a free loopback port, its
    pidfile in `folder`), once it answers. Stop it with stop(proc)."""
    port = _free_port()
    pidfile = folder / "floor-gunicorn.pid"
    gunicorn = Path(sys.executable).with_name("gunicorn")
    proc = subprocess.Popen(
        [str(gunicorn), "--workers", str(workers), "--worker-class", "gthread",
         "--threads", str(threads), "--bind", f"127.0.0.1:{port}", "--pid", str(pidfile),
         "--log-level", "warning", "--chdir", str(Path(__file__).parent),
         "bench_http_floor:app"], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _measure(port, "GET", 10)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
    except BaseException:
        stop(proc)
        raise
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the master we started (it stops its workers), SIGKILL if it lingers."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        proc, port = start(Path(tmp))
        try:
            print("| request to a bare Flask app on gunicorn | p50 | p99 |")
            print("|---|---:|---:|")
            for method in ("GET", "POST"):
                ms = sorted(_measure(port, method, args.samples))
                p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
                print(f"| {method} / | {statistics.median(ms):.2f} ms | {p99:.2f} ms |")
        finally:
            stop(proc)


if __name__ == "__main__":
    main()

"""`ovn-nb-gateway serve` in a subprocess (gunicorn, real HTTP), and raw HTTP/1.1 exchanges
for what an HTTP client library will not send (huge request lines, chunked bodies)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    host: str
    port: int
    proc: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"


def gateway_env(nb_db: str, secret: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GATEWAY_", "OVN_", "PROMETHEUS_"))}
    env.update({"OVN_NB_DB": nb_db, "GATEWAY_JWT_SECRET": secret, "GATEWAY_WORKERS": "1"})
    env.update(extra)
    return env


@contextmanager
def serving(env: dict[str, str], ready_timeout: float = 30) -> Iterator[Served]:
    """Serve until the block ends, then SIGTERM the process group and wait for the exit."""
    port = free_port()
    env = {**env, "GATEWAY_BIND": f"127.0.0.1:{port}"}
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    served = Served("127.0.0.1", port, proc, env)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            try:
                if exchange(served, b"GET /readyz HTTP/1.1\r\nHost: t\r\n"
                                   b"Connection: close\r\n\r\n").status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError("serve never became ready")
            time.sleep(0.2)
        yield served
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], timeout: float = 40) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        raise AssertionError("serve did not stop on SIGTERM") from None


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


def exchange(served: Served, request: bytes, timeout: float = 20) -> Reply:
    """Send raw bytes, read one response (the server closes or says Content-Length)."""
    with socket.create_connection((served.host, served.port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "-1"))
        while length < 0 or len(body) < length:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            body += chunk
        return Reply(status, headers, body[:length] if length >= 0 else body)


def chunked(body: bytes, size: int = 65536) -> bytes:
    out = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
                   for i in range(0, len(body), size))
    return out + b"0\r\n\r\n"

"""The command line: token minting, configuration refusals, the OpenAPI writer, and `serve`
answering over real HTTP on a sandbox."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from gateway import cli

SECRET = "cli-secret-" + "z" * 30


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "OVN_"))}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], env=full_env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_token_is_a_verifiable_hs256_token() -> None:
    out = run("token", "--tenant", "acme", "--scope", "networks:read", "--sub", "bot",
              "--ttl", "120", env={"GATEWAY_JWT_SECRET": SECRET})
    assert out.returncode == 0, out.stderr
    claims = jwt.decode(out.stdout.strip(), SECRET, algorithms=["HS256"])
    assert (claims["tenant"], claims["scope"], claims["sub"]) == ("acme", "networks:read", "bot")
    assert 110 <= claims["exp"] - time.time() <= 121


@pytest.mark.parametrize(("args", "env", "message"), [
    (("token", "--tenant", "acme"), {}, "GATEWAY_JWT_SECRET"),
    (("token", "--tenant", "Bad_Tenant"), {"GATEWAY_JWT_SECRET": SECRET}, "--tenant"),
    (("token", "--tenant", "acme", "--scope", "read\nadmin"), {"GATEWAY_JWT_SECRET": SECRET},
     "--scope"),
    (("serve",), {}, "no token verification configured"),
    (("serve",), {"GATEWAY_JWT_SECRET": "short"}, "at least 32 characters"),
    (("serve",), {"GATEWAY_JWT_PUBLIC_KEY": "/nonexistent.pem"}, "not found"),
    (("serve",), {"GATEWAY_JWT_SECRET": SECRET, "OVN_NB_DB": "ssl:127.0.0.1:6641"},
     "OVN_NB_SSL_KEY"),
])
def test_refusals_are_clear(args: tuple[str, ...], env: dict[str, str], message: str) -> None:
    out = run(*args, env=env)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_openapi_writes_the_checked_in_document(tmp_path: Path) -> None:
    target = tmp_path / "doc.yaml"
    assert cli.main(["openapi", "-o", str(target)]) == 0
    repo = Path(__file__).resolve().parents[2]
    assert target.read_text() == (repo / "openapi" / "openapi.yaml").read_text()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, token: str | None = None) -> tuple[int, Any]:
    resp = requests.get(url, headers={"Authorization": f"Bearer {token}"} if token else {},
                        timeout=5)
    return resp.status_code, resp.content


def test_serve_answers_over_http_and_stops_on_sigterm(nb_sandbox: Any) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "OVN_"))}
    env.update({"OVN_NB_DB": nb_sandbox.nb_unix, "GATEWAY_JWT_SECRET": SECRET,
                "GATEWAY_BIND": f"127.0.0.1:{port}", "GATEWAY_WORKERS": "2"})
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        status = 0
        token = jwt.encode({"sub": "t", "tenant": "cli-test", "scope": "read",
                            "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
        # Each worker connects on its own after fork; until then it answers 503.
        while time.monotonic() < deadline:
            try:
                status = max(_get(base + "/v1/networks", token)[0] for _ in range(6))
                if status == 200 and all(_get(base + "/v1/networks", token)[0] == 200
                                         for _ in range(6)):
                    break
            except requests.ConnectionError:
                status = 0
            time.sleep(0.2)
        assert status == 200
        assert _get(base + "/v1/networks")[0] == 401
        metrics = _get(base + "/metrics")[1].decode()
        assert "gateway_http_requests_total" in metrics  # aggregated across the workers
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            pytest.fail("serve did not stop on SIGTERM")
        if proc.stderr is not None:
            proc.stderr.close()


def test_serve_removes_its_metrics_folder_on_exit(nb_sandbox: Any, tmp_path: Path) -> None:
    """serve makes a folder for the workers' metrics files; it is gone after SIGTERM. A
    folder given in PROMETHEUS_MULTIPROC_DIR is the operator's: used, and left in place."""
    from helpers.serving import gateway_env, serving

    env = gateway_env(nb_sandbox.nb_unix, SECRET, TMPDIR=str(tmp_path))
    with serving(env) as served:
        folders = list(tmp_path.glob("ovngw-metrics-*"))
        assert len(folders) == 1 and any(folders[0].iterdir()), folders
        assert served.proc.poll() is None
    assert served.proc.returncode == 0
    assert list(tmp_path.glob("ovngw-metrics-*")) == []

    own = tmp_path / "operator-metrics"
    own.mkdir()
    with serving({**env, "PROMETHEUS_MULTIPROC_DIR": str(own)}):
        assert any(own.iterdir())
    assert own.is_dir()
    assert list(tmp_path.glob("ovngw-metrics-*")) == []

"""Fixtures of the client tests: a real gateway (`ovn-nb-gateway serve` on the session's
sandbox database), the `ovngw` command run as a subprocess, and a proxy in front of the
gateway that can answer 503 where the test says so."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from client_support import Flaky, Result, Run, Tenant, ovngw_env

from gateway.client import Client

from helpers.api import SECRET, token, unique
from helpers.serving import Served, gateway_env, serving


@pytest.fixture(scope="session")
def gateway(nb_sandbox: Any) -> Iterator[Served]:
    with serving(gateway_env(nb_sandbox.nb_unix, SECRET)) as served:
        yield served


@pytest.fixture
def acme(gateway: Served) -> Tenant:
    name = unique("cli")
    tok = token(name)
    return Tenant(name, tok, Client(gateway.base, tok))


@pytest.fixture
def admin(gateway: Served) -> Tenant:
    name = unique("ops")
    tok = token(name, "admin")
    return Tenant(name, tok, Client(gateway.base, tok))


@pytest.fixture
def run(tmp_path: Path, gateway: Served, acme: Tenant) -> Run:
    """`ovngw ARGS` as ACME (OVNGW_URL, OVNGW_TOKEN), with a fresh HOME. `env=` replaces
    those variables, `stdin=` is the input, `expect=` the exit code (checked)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)

    def call(*args: str, env: dict[str, str] | None = None, stdin: str | None = None,
             expect: int | None = 0) -> Result:
        variables = ovngw_env(home, **(env if env is not None else
                                      {"OVNGW_URL": gateway.base, "OVNGW_TOKEN": acme.token}))
        proc = subprocess.run([sys.executable, "-m", "gateway.client.cli", *args],
                              env=variables, input=stdin, capture_output=True, text=True,
                              timeout=120)
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        if expect is not None:
            assert result.code == expect, (args, result)
        return result
    return call


@pytest.fixture
def flaky(gateway: Served) -> Iterator[Callable[..., Flaky]]:
    made: list[Flaky] = []

    def make(retry_after: str = "1") -> Flaky:
        made.append(Flaky(gateway, retry_after))
        return made[-1]
    yield make
    for proxy in made:
        proxy.close()

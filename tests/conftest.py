"""Fixtures: a real ovsdb-server per test worker, the app wired to it, API clients.

Tests isolate themselves by tenant (every test gets fresh tenant names), so one database
serves a whole worker's session and nothing has to be reset between tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway import sandbox
from gateway.config import Settings

from helpers.api import SECRET, ApiClient, unique


def _need_ovn() -> None:
    if shutil.which("ovsdb-server") is None and not Path("/usr/sbin/ovsdb-server").exists():
        pytest.skip("ovsdb-server not installed; run scripts/bootstrap.sh")


@pytest.fixture(scope="session")
def nb_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sandbox.Sandbox]:
    _need_ovn()
    directory = tmp_path_factory.mktemp("nb")
    box = sandbox.start(directory)
    yield box
    sandbox.stop(directory)


@pytest.fixture(scope="session")
def settings(nb_sandbox: sandbox.Sandbox) -> Settings:
    return Settings(nb_db=nb_sandbox.nb_unix, jwt_secret=SECRET, ovn_timeout=5.0)


def _connected_app(settings: Settings) -> Iterator[Any]:
    from gateway.app import create_app

    application = create_app(settings)
    application.config["TESTING"] = True
    assert application.extensions["gateway"].nb.wait_ready(15), "gateway never connected"
    yield application
    application.extensions["gateway"].nb.stop()


@pytest.fixture(scope="session")
def app(settings: Settings) -> Iterator[Any]:
    yield from _connected_app(settings)


@pytest.fixture(scope="session")
def second_app(settings: Settings) -> Iterator[Any]:
    """Another gateway on the same database: its own replica and connection (a process)."""
    yield from _connected_app(settings)


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def tenant() -> str:
    return unique("tenant")


@pytest.fixture
def api(client: Any, tenant: str) -> ApiClient:
    return ApiClient(client, tenant)


@pytest.fixture
def other_api(client: Any) -> ApiClient:
    """A second tenant, for isolation checks."""
    return ApiClient(client, unique("other"))


@pytest.fixture
def admin_api(client: Any) -> ApiClient:
    return ApiClient(client, unique("ops"), "admin")


@pytest.fixture
def nbctl(nb_sandbox: sandbox.Sandbox) -> Any:
    def run(*args: str) -> str:
        return subprocess.run(["ovn-nbctl", f"--db={nb_sandbox.nb_unix}", *args],
                              check=True, capture_output=True, text=True, timeout=30).stdout
    return run


@pytest.fixture(scope="session", autouse=True)
def foreign_rows_survive(request: pytest.FixtureRequest) -> Iterator[None]:
    """Rows another tool wrote beside the gateway must come out of the whole session
    exactly as they went in: the gateway never changes what it does not own."""
    if shutil.which("ovn-nbctl") is None:
        yield
        return
    box = request.getfixturevalue("nb_sandbox")

    def nbctl(*args: str) -> str:
        return subprocess.run(["ovn-nbctl", f"--db={box.nb_unix}", *args], check=True,
                              capture_output=True, text=True, timeout=30).stdout

    tag = uuid.uuid4().hex[:8]
    nbctl("ls-add", f"foreign-{tag}", "--", "set", "Logical_Switch", f"foreign-{tag}",
          f"external_ids:owner=other-tool-{tag}", "other_config:subnet=10.99.0.0/24")
    nbctl("lsp-add", f"foreign-{tag}", f"foreign-port-{tag}", "--", "lsp-set-addresses",
          f"foreign-port-{tag}", "0a:00:00:00:00:01 10.99.0.2")
    nbctl("create", "DHCP_Options", "cidr=10.99.0.0/24", "options:router=10.99.0.1",
          f"external_ids:owner=other-tool-{tag}")
    nbctl("pg-add", f"foreign_pg_{tag}", f"foreign-port-{tag}")

    def snapshot() -> str:
        tables = ("Logical_Switch", "Logical_Switch_Port", "DHCP_Options", "Port_Group")
        rows = []
        for table in tables:
            data = json.loads(nbctl("--format=json", "list", table))
            columns = data["headings"]
            for row in data["data"]:
                record = dict(zip(columns, row, strict=True))
                if tag in json.dumps(record):
                    rows.append(json.dumps([table, record], sort_keys=True))
        return "\n".join(sorted(rows))

    before = snapshot()
    assert len(before.splitlines()) == 4, before
    yield
    after = snapshot()
    assert after == before, "rows written by another tool were changed during the session"

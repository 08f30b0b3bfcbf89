"""Fixtures for data-plane tests: one OVN sandbox with a real data plane per test worker.

The sandbox (SB, ovn-northd, ovs-vswitchd with the userspace datapath, ovn-controller) starts
once per xdist worker and is stopped by `sandbox.stop` whatever happens, which also deletes
every host namespace the tests created. Tests isolate themselves with their own logical
switches and host names; `hosts` deletes the hosts a test added when it ends.

`dp_app` is the gateway application on that sandbox's northbound database; `new_tenant`
hands out API clients of fresh tenants and deletes what they created when the test ends.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway import sandbox

from helpers.api import SECRET, ApiClient, unique
from helpers.dataplane import Hosts, ctl

_NEEDED = ("ovsdb-server", "ovn-northd", "ovs-vswitchd", "ovn-controller", "ovs-vsctl",
           "ovn-nbctl", "ovn-sbctl", "ip", "ethtool", "busybox", "ping")


def _which(program: str) -> str | None:
    return shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin:/sbin")


@pytest.fixture(scope="session")
def dataplane_ready() -> None:
    """Skip (not fail) where a data plane cannot run: not root, or OVS/OVN missing."""
    if os.geteuid() != 0:
        pytest.skip("data-plane tests need root (network namespaces, veths, ovs-vswitchd)")
    missing = [p for p in _NEEDED if _which(p) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}; run scripts/bootstrap.sh")


@pytest.fixture(scope="session")
def dataplane(dataplane_ready: None,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[sandbox.Sandbox]:
    directory = tmp_path_factory.mktemp("dp")
    try:
        yield sandbox.start(directory, dataplane=True)
    finally:
        sandbox.stop(directory)  # daemons by pidfile, then every namespace it created


@pytest.fixture(scope="session")
def nbctl(dataplane: sandbox.Sandbox) -> Callable[..., str]:
    """ovn-nbctl on the data-plane sandbox's NB (overrides the NB-only `nbctl`)."""
    return lambda *args: ctl("ovn-nbctl", dataplane.nb_unix, *args)


@pytest.fixture(scope="session")
def sbctl(dataplane: sandbox.Sandbox) -> Callable[..., str]:
    assert dataplane.sb_unix is not None
    sb = dataplane.sb_unix
    return lambda *args: ctl("ovn-sbctl", sb, *args)


@pytest.fixture
def hosts(dataplane: sandbox.Sandbox) -> Iterator[Hosts]:
    manager = Hosts(dataplane.dir)
    try:
        yield manager
    finally:
        manager.cleanup()


@pytest.fixture(scope="session")
def dp_app(dataplane: sandbox.Sandbox) -> Iterator[Any]:
    """The gateway on the data-plane sandbox (NB and SB), connected before tests use it.
    create_app starts the kinds' workers too: with the SB given, the load balancers' health
    watch runs (status.backends and offline backends out of vips need it)."""
    from gateway.app import create_app
    from gateway.config import Settings

    application = create_app(Settings(nb_db=dataplane.nb_unix, sb_db=dataplane.sb_unix,
                                      jwt_secret=SECRET, ovn_timeout=5.0))
    application.config["TESTING"] = True
    gateway = application.extensions["gateway"]
    try:
        assert gateway.nb.wait_ready(15), "the gateway never connected to the sandbox's NB"
        yield application
    finally:
        gateway.stop()  # the workers (health watch), then the NB connection


def _purge(api: Any) -> None:
    """Delete what a test tenant created (load balancers, floating IPs, gateways, policies,
    records, networks with their ports), so that ovn-controller of the long-lived sandbox does
    not keep every test's flows; load balancers, floating IPs and gateways go first, as they
    hold networks, ports and addresses (a network holding a VIP refuses even a cascade)."""
    for kind in ("load-balancers", "floating-ips", "gateways", "policies", "dns-records",
                 "networks"):
        listing = api.get(f"/v1/{kind}?limit=1000").get_json() or {}
        for item in listing.get("items") or []:
            if not item.get("auto"):  # automatic DNS records go with their ports
                query = "?cascade=true" if kind == "networks" else ""
                api.delete(f"/v1/{kind}/{item['id']}{query}")


@pytest.fixture
def new_tenant(dp_app: Any) -> Iterator[Callable[..., Any]]:
    """new_tenant(prefix="tenant") -> an ApiClient (helpers.api) of a fresh tenant."""
    made: list[Any] = []

    def make(prefix: str = "tenant") -> Any:
        api = ApiClient(dp_app.test_client(), unique(prefix))
        made.append(api)
        return api

    try:
        yield make
    finally:
        for api in made:
            _purge(api)


@pytest.fixture
def dp_api(new_tenant: Callable[..., Any]) -> Any:
    """An ApiClient of a fresh tenant on the data-plane gateway."""
    return new_tenant()


@pytest.fixture(scope="session")
def controller_log(dataplane: sandbox.Sandbox) -> Path:
    """The sandbox's ovn-controller log (where acl_log lines land)."""
    daemons = sandbox.status(dataplane.dir)["daemons"]
    assert isinstance(daemons, dict)
    return Path(daemons["controller"]["log"])

"""The gateway on a northbound database that only speaks TLS (`ssl:` remotes).

A CA made in the test signs the database's and the gateway's certificates; ovsdb-server runs
with --private-key/--certificate/--ca-cert and a pssl: remote in a folder of its own, known
by its pidfile. Writes go through, and ovn-nbctl (with the same kind of flags) finds their
rows. A server whose certificate another CA signed, or one that does not trust the gateway's
certificate, is refused: the gateway never becomes ready, every API call answers 503 with
Retry-After, and the log says what failed and which file to look at.

python-ovs keeps the key, certificate and CA files process-wide (`Stream.ssl_set_*`), and
each gateway sets them when it connects. Every gateway of this module therefore uses the
same client files (those of the module's PKI): what differs between the cases is the
server, so the order the tests run in, or another app left running, cannot change what a
test sees. No other test module uses ssl: remotes.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Settings
from gateway.sandbox.process import SandboxError, find_program

from helpers.api import SECRET, ApiClient, unique
from helpers.nb import lsp, switch
from helpers.tls import NB_SCHEMA, CertificateAuthority, KeyPair, TlsNbServer
from helpers.waiting import wait_until

LOGGER = "gateway.ovn.connection"


@dataclass(frozen=True)
class Pki:
    ca: CertificateAuthority  # signs the database's and the gateway's certificates
    server: KeyPair
    client: KeyPair
    rogue_server: KeyPair  # signed by another CA, which the gateway does not trust
    rogue_ca: CertificateAuthority


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    for program in ("ovsdb-server", "ovsdb-tool", "ovn-nbctl"):
        try:
            find_program(program)
        except SandboxError:
            pytest.skip(f"{program} not installed; run scripts/bootstrap.sh")
    if not NB_SCHEMA.exists():
        pytest.skip(f"{NB_SCHEMA} not found")
    # a short path: unix socket paths are limited to 107 bytes
    directory = Path(tempfile.mkdtemp(prefix="gw-tls-", dir="/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def pki(workdir: Path) -> Pki:
    ca = CertificateAuthority(workdir, "ca")
    rogue = CertificateAuthority(workdir, "rogue")
    return Pki(ca, ca.issue("nb-server", server=True), ca.issue("gateway", server=False),
               rogue.issue("nb-server", server=True), rogue)


def _server(workdir: Path, name: str, identity: KeyPair, trusts: Path) -> Iterator[TlsNbServer]:
    directory = workdir / name
    directory.mkdir()
    server = TlsNbServer(directory, identity, trusts)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tls_server(workdir: Path, pki: Pki) -> Iterator[TlsNbServer]:
    yield from _server(workdir, "good", pki.server, pki.ca.cert)


@pytest.fixture
def rogue_server(workdir: Path, pki: Pki) -> Iterator[TlsNbServer]:
    """Its certificate is signed by another CA (it trusts the gateway's, though)."""
    yield from _server(workdir, "rogue", pki.rogue_server, pki.ca.cert)


@pytest.fixture
def distrustful_server(workdir: Path, pki: Pki) -> Iterator[TlsNbServer]:
    """A proper certificate, but it trusts only the other CA: the gateway's is refused."""
    yield from _server(workdir, "distrustful", pki.server, pki.rogue_ca.cert)


def _gateway(remote: str, pki: Pki) -> Any:
    from gateway.app import create_app

    application = create_app(Settings(
        nb_db=remote, ssl_key=str(pki.client.key), ssl_cert=str(pki.client.cert),
        ssl_ca=str(pki.ca.cert), jwt_secret=SECRET, ovn_timeout=3.0, retry_after=2))
    application.config["TESTING"] = True
    return application


@pytest.fixture
def gateway_on(pki: Pki) -> Iterator[Callable[[TlsNbServer], Any]]:
    started: list[Any] = []

    def start(server: TlsNbServer) -> Any:
        application = _gateway(server.remote, pki)
        started.append(application)
        return application

    try:
        yield start
    finally:
        for application in started:
            application.extensions["gateway"].nb.stop()


def _nbctl(server: TlsNbServer, pki: Pki) -> Callable[..., str]:
    def run(*args: str) -> str:
        return subprocess.run(
            ["ovn-nbctl", f"--db={server.remote}", f"--private-key={pki.client.key}",
             f"--certificate={pki.client.cert}", f"--ca-cert={pki.ca.cert}", "--timeout=10",
             *args], check=True, capture_output=True, text=True, timeout=20).stdout
    return run


def test_writes_over_tls(tls_server: TlsNbServer, pki: Pki,
                         gateway_on: Callable[[TlsNbServer], Any]) -> None:
    application = gateway_on(tls_server)
    assert application.extensions["gateway"].nb.wait_ready(15), "never connected over TLS"
    client = application.test_client()
    ready = client.get("/readyz")  # its echo goes over a TLS connection of its own
    assert ready.status_code == 200, ready.get_json()
    assert ready.get_json()["northbound"] == "connected"

    api = ApiClient(client, unique("tenant"))
    network = api.network(cidr="10.120.0.0/24")
    port = api.port(network["id"])
    assert api.get(f"/v1/networks/{network['id']}").status_code == 200

    nbctl = _nbctl(tls_server, pki)
    ls = switch(nbctl, network["id"])
    assert ls is not None, "no logical switch over TLS"
    row = lsp(nbctl, port["id"])
    assert row is not None and port["ips"][0] in str(row["addresses"]), row


def _assert_refused(application: Any) -> None:
    nb = application.extensions["gateway"].nb
    assert not nb.wait_ready(3), "the gateway connected to a server it must not trust"
    client = application.test_client()
    api = ApiClient(client, unique("tenant"))
    ready = client.get("/readyz")
    assert ready.status_code == 503 and int(ready.headers["Retry-After"]) >= 1
    assert ready.get_json()["northbound"] == "unreachable", ready.get_json()
    for resp in (api.get("/v1/networks"),
                 api.post("/v1/networks", {"name": unique("n"), "cidr": "10.121.0.0/24"})):
        assert resp.status_code == 503, (resp.status_code, resp.data[:300])
        assert int(resp.headers["Retry-After"]) >= 1
    assert client.get("/healthz").status_code == 200


def _tls_log_line(caplog: pytest.LogCaptureFixture, *words: str) -> str:
    def found() -> str | None:
        for record in caplog.records:
            text = record.getMessage()
            if record.name == LOGGER and record.levelno >= logging.WARNING and \
                    all(w in text for w in words):
                return text
        return None

    line: str = wait_until(found, 30, 0.1, f"a log line naming {words}")
    return line


def test_server_signed_by_another_ca_is_refused(
        rogue_server: TlsNbServer, pki: Pki, gateway_on: Callable[[TlsNbServer], Any],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    application = gateway_on(rogue_server)
    _assert_refused(application)
    line = _tls_log_line(caplog, rogue_server.remote, "TLS", "certificate verify failed")
    # it says which file decides, so the operator knows what to fix
    assert str(pki.ca.cert) in line and "OVN_NB_SSL_CA" in line, line
    # and nothing was written anywhere
    out = subprocess.run(["ovn-nbctl", f"--db={rogue_server.unix}", "--timeout=10",
                          "--bare", "--columns=name", "list", "Logical_Switch"],
                         check=True, capture_output=True, text=True, timeout=20).stdout
    assert out.strip() == "", out


def test_server_refusing_the_gateway_certificate(
        distrustful_server: TlsNbServer, pki: Pki, gateway_on: Callable[[TlsNbServer], Any],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    application = gateway_on(distrustful_server)
    _assert_refused(application)
    line = _tls_log_line(caplog, distrustful_server.remote, "TLS", "refused")
    assert str(pki.client.cert) in line and "OVN_NB_SSL_CERT" in line, line

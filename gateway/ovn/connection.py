"""The northbound connection of one gateway process.

Opened after fork, in the background: a process whose database is down still starts,
answers /healthz and says 503 with Retry-After everywhere else until the replica is synced.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ovs import jsonrpc, poller, stream
from ovs.db import idl as ovs_idl
from ovsdbapp import exceptions as ovsdbapp_exc
from ovsdbapp.backend.ovs_idl import connection as ovs_connection
from ovsdbapp.backend.ovs_idl import idlutils
from ovsdbapp.backend.ovs_idl import transaction as ovs_transaction

from gateway import metrics
from gateway.config import Settings
from gateway.errors import GatewayError, OutcomeUnknown, RetryTransaction, Unavailable
from gateway.ovn.index import OwnedIndex, Replica, attach
from gateway.ovn.transaction import Txn

LOG = logging.getLogger(__name__)
T = TypeVar("T")
SCHEMA = "OVN_Northbound"
CONSTRAINT_RETRIES = 3


def resolve_remotes(remotes: str) -> str:
    """The OVS Python library only takes addresses; resolve tcp:/ssl: host names first."""
    resolved = []
    for remote in (r.strip() for r in remotes.split(",")):
        proto, _, rest = remote.partition(":")
        host, _, port = rest.rpartition(":")
        if proto in ("tcp", "ssl") and host and not host.startswith("["):
            try:
                ipaddress.ip_address(host)
            except ValueError:
                info = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
                addr = str(info[0][4][0])
                host = f"[{addr}]" if ":" in addr else addr
            remote = f"{proto}:{host}:{port}"
        resolved.append(remote)
    return ",".join(resolved)


class _GatewayIdl(ovs_connection.OvsdbIdl):  # type: ignore[misc]
    replica: Replica

    def post_connect(self) -> None:
        attach(self, self.replica)


class _Abandoned(Exception):
    """The request stopped waiting before its transaction was run: it must never be sent."""


class _ApplyCommand:
    """ovsdbapp command running one request's change function inside the transaction.

    `started` and `abandoned` tell a transaction that timed out before the connection
    thread took it (never sent: it is dropped when its turn comes) from one that was
    already on its way to the database (outcome unknown)."""

    def __init__(self, nb: Northbound, fn: Callable[[Txn], Any]) -> None:
        self.nb, self.fn, self.result = nb, fn, None
        self.lock = threading.Lock()
        self.started = self.abandoned = False

    def run_idl(self, txn: ovs_idl.Transaction) -> None:
        with self.lock:
            if self.abandoned:
                raise _Abandoned()
            self.started = True
        self.result = self.fn(Txn(txn, self.nb.idl, self.nb.indexes()))

    def abandon(self) -> bool:
        """Drop the transaction unless it was already run; True if it never will be."""
        with self.lock:
            self.abandoned = not self.started
            return self.abandoned

    def post_commit(self, txn: ovs_idl.Transaction) -> None:
        pass


class Northbound:
    def __init__(self, settings: Settings, replica: Replica) -> None:
        self.settings = settings
        self.replica = replica
        self.idl: Any = None
        self.connection: ovs_connection.Connection | None = None
        self.schema_version: str | None = None
        self.schema_error: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._connect_loop, name="ovn-nb-connect",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
            connection = self.connection
        if connection is not None:
            connection.stop(timeout=5)

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready:
                return True
            time.sleep(0.05)
        return self.ready

    def _connect_loop(self) -> None:
        if self.settings.ssl_key:
            stream.Stream.ssl_set_private_key_file(self.settings.ssl_key)
            stream.Stream.ssl_set_certificate_file(self.settings.ssl_cert)
            stream.Stream.ssl_set_ca_cert_file(self.settings.ssl_ca)
        delay = 0.2
        while not self._stop.is_set():
            idl = None
            try:
                remotes = resolve_remotes(self.settings.nb_db)
                helper = idlutils.get_schema_helper(remotes, SCHEMA)
                if not self._schema_supported(helper.schema_json):
                    LOG.error("unsupported northbound schema: %s", self.schema_error)
                    self._stop.wait(10)
                    continue
                for table, columns in self.replica.columns.items():
                    helper.register_columns(table, sorted(columns))
                idl = _GatewayIdl(remotes, helper, leader_only=self.settings.leader_only)
                idl.replica = self.replica
                # python-ovs backs off up to 8 s between reconnects; after a RAFT leader
                # dies the new one is elected within ~1-2 s, so retry sooner.
                idl._session.reconnect.set_backoff(250, 2000)
                connection = ovs_connection.Connection(idl, self.settings.ovn_timeout)
                connection.start()
                # Published only once its thread runs: the replica is already synced
                # inside start(), and stop() must not join a thread not yet started.
                with self._lock:
                    if self._stop.is_set():
                        connection.stop(timeout=5)
                        return
                    self.idl, self.connection = idl, connection
                LOG.info("connected to the northbound database (schema %s)",
                         self.schema_version)
                return
            except Exception as exc:  # the database may simply not be up yet
                LOG.warning("northbound database not reachable yet: %s", exc)
                if idl is not None:
                    idl.close()
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def _schema_supported(self, schema: dict[str, Any]) -> bool:
        self.schema_version = schema.get("version")
        tables = schema.get("tables", {})
        for table, columns in self.replica.columns.items():
            if table not in tables:
                self.schema_error = f"no table {table}"
                return False
            missing = columns - set(tables[table].get("columns", {}))
            if missing:
                self.schema_error = f"{table} lacks {sorted(missing)}"
                return False
        self.schema_error = None
        return True

    # -- state ---------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        idl = self.idl
        if idl is None or self.connection is None:
            return False
        return bool(idl._session.is_connected() and idl.state == idl.IDL_S_MONITORING)

    def ensure_ready(self) -> None:
        if not self.ready:
            raise Unavailable("the OVN northbound database is not reachable",
                              self.settings.retry_after)

    def answers(self, timeout: float) -> bool:
        """Whether the database the replica follows answers an OVSDB echo within `timeout`
        seconds, asked over a connection of its own. The replica's connection cannot
        tell: on a unix socket python-ovs sends no inactivity probes, so a server that
        hangs (SIGSTOP, a stuck disk) looks connected for as long as it hangs."""
        idl = self.idl
        if idl is None:
            return False
        remote = idl._session.get_name()
        deadline = time.monotonic() + timeout
        error, strm = stream.Stream.open_block(stream.Stream.open(remote),
                                               max(1, int(timeout * 1000)))
        if error or strm is None:
            return False
        rpc = jsonrpc.Connection(strm)
        try:
            request = jsonrpc.Message.create_request("echo", ["ovn-nb-gateway readyz"])
            if rpc.send(request):
                return False
            while True:
                error, msg = rpc.recv()
                if msg is not None:
                    if msg.type == jsonrpc.Message.T_REPLY and msg.id == request.id:
                        return True
                    continue
                if error != errno.EAGAIN:
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                rpc.run()
                waiter = poller.Poller()
                rpc.wait(waiter)
                rpc.recv_wait(waiter)
                waiter.timer_wait(max(1, int(remaining * 1000)))
                waiter.block()
        finally:
            rpc.close()

    def indexes(self) -> dict[str, OwnedIndex]:
        # Attach again if a schema change rebuilt the tables (cheap when already there).
        return attach(self.idl, self.replica)

    def index(self, table: str) -> OwnedIndex:
        return self.indexes()[table]

    def row(self, table: str, row_uuid: Any) -> Any:
        return self.idl.tables[table].rows.get(row_uuid)

    # -- writes --------------------------------------------------------------------------
    def transact(self, fn: Callable[[Txn], T], operation: str = "write") -> T:
        """Run fn inside one OVSDB transaction; fn is re-run if the replica was stale."""
        self.ensure_ready()
        start = time.perf_counter()
        outcome = "ok"
        try:
            for attempt in range(CONSTRAINT_RETRIES):
                try:
                    return self._commit(fn)
                except RetryTransaction:
                    if attempt == CONSTRAINT_RETRIES - 1:
                        raise Unavailable("the database kept changing under this request; "
                                          "retry", self.settings.retry_after) from None
                    time.sleep(0.01 * (attempt + 1))
            raise AssertionError("unreachable")
        except GatewayError as exc:
            outcome = "rejected" if exc.status < 500 else \
                "unknown" if isinstance(exc, OutcomeUnknown) else "unavailable"
            raise
        except Exception:
            outcome = "error"
            raise
        finally:
            metrics.OVN_TXN_SECONDS.labels(operation).observe(time.perf_counter() - start)
            metrics.OVN_TXNS.labels(operation, outcome).inc()

    def _timed_out(self, command: _ApplyCommand) -> Unavailable:
        """A transaction that never ran is dropped (plain 503: nothing was written); one
        that ran may have reached the database, which did not confirm it in time."""
        if command.abandon():
            return Unavailable("the OVN northbound database did not answer in time; "
                               "nothing was written", self.settings.retry_after)
        return OutcomeUnknown(
            "the OVN northbound database did not confirm this write within "
            f"{self.settings.ovn_timeout:g} s: it may or may not have been applied. Retry "
            "with the same Idempotency-Key (a create) or read the resource again before "
            "retrying (a change or delete; If-Match keeps a retry safe)",
            self.settings.retry_after)

    def _commit(self, fn: Callable[[Txn], T]) -> T:
        command = _ApplyCommand(self, fn)
        txn = ovs_transaction.Transaction(self, self.connection, self.settings.ovn_timeout,
                                          check_error=True, log_errors=False)
        txn.add(command)
        try:
            txn.commit()
        except GatewayError:
            raise
        except ovsdbapp_exc.TimeoutException as exc:
            raise self._timed_out(command) from exc
        except RuntimeError as exc:
            text = str(exc)
            # Two gateways created the same uniquely-named row at once: the loser retries
            # against a replica that now holds the winner's row.
            if "constraint violation" in text or "referential integrity" in text:
                LOG.info("retrying a transaction: %s", text)
                raise RetryTransaction() from exc
            if "timed out" in text:
                raise self._timed_out(command) from exc
            raise
        return command.result  # type: ignore[return-value]

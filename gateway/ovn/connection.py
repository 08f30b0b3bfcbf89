"""The northbound connection of one gateway process.

Opened after fork, in the background: a process whose database is down still starts,
answers /healthz and says 503 with Retry-After everywhere else until the replica is synced.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ovs import json as ovs_json
from ovs import jsonrpc, poller, stream
from ovs import reconnect as ovs_reconnect
from ovs.db import idl as ovs_idl
from ovsdbapp import exceptions as ovsdbapp_exc
from ovsdbapp.backend.ovs_idl import connection as ovs_connection
from ovsdbapp.backend.ovs_idl import idlutils

from gateway import metrics
from gateway.config import Settings
from gateway.errors import GatewayError, OutcomeUnknown, RetryTransaction, Unavailable
from gateway.ovn import conditions
from gateway.ovn.batch import GroupCommit, Member
from gateway.ovn.index import TRIM_AFTER_ROWS, OwnedIndex, Replica, attach, prepare, trim_heap
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


# python-ovs waits after every failed connection attempt, 1 s doubling to 8 s (its
# set_backoff() does not go below 1 s), and moves on to the next remote only after that wait.
# After a RAFT leader dies the gateway may have to try each member before it finds the new
# one, so those waits added up to 2-4 s after the election was over (and a standalone
# database that came back after 2 s was reconnected to after 4 s). Here the remotes are tried
# one after the other at once, and the wait is between rounds: 0.1 s, doubling up to 0.5 s,
# back to 0.1 s once the replica is in sync again. A round is cheap: a dead member refuses
# the connect, a follower answers a schema and a _Server read and is left at once.
ROUND_MIN_BACKOFF_MS = 100
ROUND_MAX_BACKOFF_MS = 500


class _RoundBackoff(ovs_reconnect.Reconnect):  # type: ignore[misc]
    """python-ovs's reconnect FSM, waiting only after a whole round of remotes failed."""

    remotes = 1
    failures = 0  # failed attempts since the replica was last in sync
    round_backoff = 0

    def synced(self) -> None:
        self.failures = self.round_backoff = 0

    def disconnected(self, now: int, error: int) -> None:
        was = self.state
        super().disconnected(now, error)
        if was in (self.Backoff, self.Void) or self.state is not self.Backoff:
            return  # nothing happened, or no retries left (never configured here)
        self.failures += 1
        if self.failures % self.remotes:
            self.backoff = 0
        else:
            self.round_backoff = min(max(2 * self.round_backoff, ROUND_MIN_BACKOFF_MS),
                                     ROUND_MAX_BACKOFF_MS)
            self.backoff = self.round_backoff


def _fast_reconnect(idl: ovs_idl.Idl) -> None:
    session = idl._session
    fsm = session.reconnect
    fsm.__class__ = _RoundBackoff
    fsm.remotes = session.get_num_of_remotes()


class _GatewayIdl(ovs_connection.OvsdbIdl):  # type: ignore[misc]
    replica: Replica

    def cooperative_yield(self) -> None:
        """ovsdbapp sleeps here (for eventlet) once per row of every update: each sleep
        hands the GIL to a request thread, so the one thread that applies updates and
        commits for the whole process waited behind them. Plain threads need no yield."""

    follow: conditions.FollowedRefs | None = None
    FOLLOW_TIMEOUT = 5.0  # seconds run() waits for followed rows before it gives up

    def run(self) -> bool:
        seqno = self.change_seqno
        changed = bool(super().run())
        if self.state == self.IDL_S_MONITORING:
            fsm = self._session.reconnect
            if isinstance(fsm, _RoundBackoff):
                fsm.synced()
            self._follow_refs()
        if self.change_seqno - seqno >= TRIM_AFTER_ROWS:
            trim_heap()  # a dump or a big update: its parsed JSON is garbage now
        return changed

    def notify(self, event: str, row: Any, updates: Any = None) -> None:
        if self.follow is not None:
            self.follow.noticed(row._table.name, row, event == ovs_idl.ROW_DELETE)
        super().notify(event, row, updates)

    def _follow_refs(self) -> None:
        """Bring the non-owned rows owned rows reference (conditions.FOLLOWED) before this
        run() returns: transactions run only between runs, so none of them sees an owned
        switch whose foreign port is not in the replica yet."""
        follow = self.follow
        if follow is None:
            return
        deadline = time.monotonic() + self.FOLLOW_TIMEOUT
        while True:
            changed = follow.update(self)
            if not changed:
                return
            for table, cond in changed.items():
                self.cond_change(table, cond)
            while any(self.tables[t].condition_state.new is not None
                      or self.tables[t].condition_state.requested is not None
                      for t in changed):
                if (not self._session.is_connected() or self.state != self.IDL_S_MONITORING
                        or time.monotonic() > deadline):
                    LOG.warning("rows referenced by owned rows did not arrive in time")
                    return
                waiter = poller.Poller()
                self.wait(waiter)
                waiter.timer_wait(50)
                waiter.block()
                super().run()

    def post_connect(self) -> None:
        attach(self, self.replica)


def tls_problem(remote: str, settings: Settings, timeout: float = 2.0) -> str | None:
    """What keeps a TLS session with an ssl: remote from being set up, in words an operator
    can act on; None when the remote is not ssl:, cannot be reached at all, or accepts.

    python-ovs reports a refused handshake as a bare errno ("Operation not permitted" for a
    certificate that does not verify, "Transport endpoint is not connected" when the server
    refuses the gateway's certificate), so the handshake is tried again here with the
    same files and the same checks (TLS 1.2 or later, the peer's certificate must verify
    against the CA, host names are not checked)."""
    proto, _, rest = remote.partition(":")
    host, _, port = rest.rpartition(":")
    if proto != "ssl" or not host or not port.isdigit():
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(settings.ssl_ca)
    except (OSError, ssl.SSLError) as exc:
        return f"{remote}: cannot use the TLS CA certificate OVN_NB_SSL_CA " \
               f"({settings.ssl_ca}): {exc}"
    try:
        context.load_cert_chain(str(settings.ssl_cert), settings.ssl_key)
    except (OSError, ssl.SSLError) as exc:
        return f"{remote}: cannot use the TLS certificate and key OVN_NB_SSL_CERT " \
               f"({settings.ssl_cert}) and OVN_NB_SSL_KEY ({settings.ssl_key}): {exc}"
    try:
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    except OSError:
        return None  # unreachable: not a TLS problem
    refused = (f"{remote}: TLS handshake failed: the server refused this gateway's "
               f"certificate OVN_NB_SSL_CERT ({settings.ssl_cert}); it must be signed by a CA "
               "the server trusts (its --ca-cert)")
    try:
        with context.wrap_socket(sock) as tls:
            # With TLS 1.3 a server tells that it refuses the client's certificate only
            # after the handshake, in an alert that the first read gets.
            tls.settimeout(min(timeout, 0.5))
            try:
                if tls.recv(1) == b"":
                    return f"{refused} (it closed the connection right after the handshake)"
            except TimeoutError:
                return None  # the server is waiting for a request: TLS works
            except ssl.SSLError as exc:
                return f"{refused}: {exc.reason or exc}"
    except ssl.SSLCertVerificationError as exc:
        return (f"{remote}: TLS handshake failed: certificate verify failed: "
                f"{exc.verify_message}: the server's certificate does not verify against "
                f"OVN_NB_SSL_CA ({settings.ssl_ca})")
    except ssl.SSLError as exc:
        reason = str(exc.reason or exc)
        if "ALERT" in reason and ("CERTIFICATE" in reason or "UNKNOWN_CA" in reason):
            return f"{refused}: {reason}"
        if "WRONG_VERSION_NUMBER" in reason or "EOF" in reason:
            reason += " (the server ended the handshake: is it listening with pssl:?)"
        return f"{remote}: TLS handshake failed: {reason}"
    except OSError as exc:
        return f"{remote}: TLS handshake failed: {exc}"
    finally:
        sock.close()
    return None


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
        self._group: GroupCommit | None = None

    @property
    def json_parser(self) -> str:
        """python-ovs's JSON parser for OVSDB messages: "C" (its C extension, built against
        libopenvswitch) or "PYTHON" (pure Python, far slower on big dumps and updates)."""
        return str(ovs_json.PARSER).upper()

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            metrics.JSON_PARSER.labels(self.json_parser).set(1)
            if self.json_parser == "C":
                LOG.info("OVSDB JSON parser: C")
            else:
                LOG.warning("OVSDB JSON parser: %s. The replica parses updates several times "
                            "slower; install python-ovs with its C extension (see the "
                            "operations guide)", self.json_parser)
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
            remotes = ""
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
                # Before the first monitor request: the initial dump is already filtered.
                for table, cond in conditions.initial(self.replica.tables,
                                                      self.replica.owners).items():
                    idl.cond_change(table, cond)
                idl.follow = conditions.FollowedRefs(self.replica.owners)
                prepare(idl, self.replica)
                _fast_reconnect(idl)
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
                problems = [p for p in (tls_problem(r, self.settings)
                                        for r in remotes.split(",")) if p] \
                    if self.settings.ssl_key and remotes else []
                for problem in problems:
                    LOG.error("cannot connect to the northbound database %s", problem)
                if not problems:
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

    def _timed_out(self, member: Member) -> Unavailable:
        """A transaction that never ran is dropped (plain 503: nothing was written); one
        that ran may have reached the database, which did not confirm it in time."""
        if member.abandon():
            return Unavailable("the OVN northbound database did not answer in time; "
                               "nothing was written", self.settings.retry_after)
        return OutcomeUnknown(
            "the OVN northbound database did not confirm this write within "
            f"{self.settings.ovn_timeout:g} s: it may or may not have been applied. Retry "
            "with the same Idempotency-Key (a create) or read the resource again before "
            "retrying (a change or delete; If-Match keeps a retry safe)",
            self.settings.retry_after)

    def _commit(self, fn: Callable[[Txn], T]) -> T:
        group = self._group
        if group is None:
            with self._lock:
                if self._group is None:
                    self._group = GroupCommit(self, self.settings.batch_max,
                                              self.settings.batch_wait_ms / 1000,
                                              self.settings.ovn_timeout)
                group = self._group
        try:
            member = group.submit(fn)
        except ovsdbapp_exc.TimeoutException:
            raise Unavailable("the OVN northbound database did not answer in time; "
                              "nothing was written", self.settings.retry_after) from None
        if not member.wait(self.settings.ovn_timeout):
            raise self._timed_out(member)
        error = member.error
        if error is None:
            return member.result  # type: ignore[no-any-return]
        if isinstance(error, RuntimeError):
            text = str(error)
            # Two gateways created the same uniquely-named row at once: the loser retries
            # against a replica that now holds the winner's row.
            if "constraint violation" in text or "referential integrity" in text:
                LOG.info("retrying a transaction: %s", text)
                raise RetryTransaction() from error
            if "timed out" in text:
                raise self._timed_out(member) from error
        raise error

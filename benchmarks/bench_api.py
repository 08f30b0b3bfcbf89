#!/usr/bin/env python3
"""Latency of the gateway's API against direct ovsdbapp writes, empty and at 10,000 networks.

One run starts its own northbound sandbox and its own `ovn-nb-gateway serve` (one worker),
measures the API with one keep-alive client (sequential requests), measures the same rows
written directly with ovsdbapp, bulk-fills the database with gateway-shaped rows, measures
everything again and prints a Markdown table (JSON with every figure goes to --out).

    .venv/bin/python benchmarks/bench_api.py [--quick] [--out results.json]

See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import http.client
import json
import math
import multiprocessing
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ovsdbapp.backend.ovs_idl import command as ovs_command
from ovsdbapp.backend.ovs_idl import connection as ovs_connection
from ovsdbapp.backend.ovs_idl import idlutils
from ovsdbapp.schema.ovn_northbound import impl_idl

from gateway import sandbox
from gateway.app import monitored
from gateway.auth import mint
from gateway.ovn import naming
from gateway.sandbox.process import alive
from gateway.services.networks import server_mac

SCHEMA = "OVN_Northbound"
TENANT = "bench"  # the tenant whose requests are measured
DIRECT_TENANT = "bench-direct"  # owner of the rows the direct ovsdbapp baseline writes
ADMIN_TENANT = "bench-admin"
MAC_PREFIX = "0a:58"  # GATEWAY_MAC_PREFIX default; the gateway runs with it
ALLOC = naming.PREFIX + "alloc"  # gateway.services.ports.ALLOC, bumped once per port
LIST_LIMIT = 100

# Operation keys, in table order; "direct_*" are the ovsdbapp baselines.
OPS: dict[str, str] = {
    "create_network": "POST /v1/networks",
    "create_port": "POST /v1/networks/{id}/ports",
    "get_network": "GET /v1/networks/{id}",
    "get_port": "GET /v1/ports/{id}",
    "list_networks": f"GET /v1/networks?limit={LIST_LIMIT}",
    "direct_network": "ovsdbapp: Logical_Switch + DHCP_Options (1 txn)",
    "direct_port": "ovsdbapp: Logical_Switch_Port into switch + port group (1 txn)",
}
METRIC_LINE = re.compile(r"^(gateway_\w+?)_(sum|count)\{(.*)\} (\S+)$", re.MULTILINE)
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
CREATE_PAIRS = (("create_network", "direct_network"), ("create_port", "direct_port"))


def now() -> str:
    """The gateway's timestamp format (gateway.services.resources.now)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def log(message: str) -> None:
    with contextlib.suppress(OSError):  # a closed stderr must not stop the cleanup
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- statistics -------------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 50 samples is the 50th smallest, i.e. the maximum)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(samples_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(samples_ms),
        "p50_ms": round(statistics.median(samples_ms), 3),
        "p90_ms": round(percentile(samples_ms, 90), 3),
        "p99_ms": round(percentile(samples_ms, 99), 3),
        "mean_ms": round(statistics.fmean(samples_ms), 3),
        "min_ms": round(min(samples_ms), 3),
        "max_ms": round(max(samples_ms), 3),
    }


# -- processes --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


_SETTINGS_PROBE = """
import dataclasses, json
from gateway.config import from_env
print(json.dumps(dataclasses.asdict(from_env()), default=str))
"""


def serve_settings(env: dict[str, str]) -> dict[str, Any]:
    """gateway.config.from_env(env) as `serve` will see it, from a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", _SETTINGS_PROBE], env=env, capture_output=True,
                         text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"cannot read the gateway's settings: {out.stderr[-500:]}")
    return dict(json.loads(out.stdout))


class Gateway:
    """`ovn-nb-gateway serve` as a child process: one gunicorn master and its workers.

    By default as bench_api.py runs it (1 worker, `threads` threads, WARNING, quotas
    raised). `workers=None` / `threads=None` leave GATEWAY_WORKERS / GATEWAY_THREADS unset
    (also when the caller's environment has them), so `serve` runs its own defaults; `env`
    replaces the extra settings (log level, quotas) entirely when given; `defaults_only`
    drops every other gateway setting of the caller's environment. `name` keeps the
    log and metrics folder of a restarted gateway apart; `secret` reuses a previous one's.
    """

    def __init__(self, workdir: Path, nb: str, threads: int | None, workers: int | None = 1,
                 env: dict[str, str] | None = None, name: str = "gateway",
                 secret: str | None = None, defaults_only: bool = False) -> None:
        self.port = free_port()
        self.secret = secret or secrets.token_urlsafe(48)
        self.log_path = workdir / f"{name}.log"
        exe = Path(sys.executable).with_name("ovn-nb-gateway")
        program = str(exe) if exe.exists() else shutil.which("ovn-nb-gateway")
        if program is None:
            raise SystemExit("ovn-nb-gateway is not installed in this environment")
        metrics_dir = workdir / ("metrics" if name == "gateway" else f"metrics-{name}")
        metrics_dir.mkdir()
        if env is None:
            env = {
                "GATEWAY_LOG_LEVEL": "WARNING",
                # The measured tenant creates far more than the default quotas allow.
                "GATEWAY_QUOTA_NETWORKS": "1000000",
                "GATEWAY_QUOTA_PORTS": "1000000",
            }
        # defaults_only: nothing of the caller's gateway settings (GATEWAY_*, OVN_NB_*,
        # OVN_SB_DB) reaches serve, so it runs its own defaults for everything not given here
        base = {k: v for k, v in os.environ.items()
                if k not in ("GATEWAY_WORKERS", "GATEWAY_THREADS") and not (
                    defaults_only and k.startswith(("GATEWAY_", "OVN_NB_", "OVN_SB_")))}
        self.env = {
            **base,
            "OVN_NB_DB": nb,
            "GATEWAY_JWT_SECRET": self.secret,
            "GATEWAY_BIND": f"127.0.0.1:{self.port}",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            **env,
        }
        if workers is not None:
            self.env["GATEWAY_WORKERS"] = str(workers)
        if threads is not None:
            self.env["GATEWAY_THREADS"] = str(threads)
        # The settings serve will run with (its own defaults where not given), read by a
        # fresh interpreter from the code on disk now, as serve will read them: not from
        # this process's import, which is stale once the code changes during a run.
        # Callers that give the worker count (bench_api.py and the others) skip the probe.
        self.settings: dict[str, Any] = (
            serve_settings(self.env) if workers is None else
            {"workers": workers, "threads": threads})
        self.workers = int(self.settings["workers"])
        self._log = self.log_path.open("wb")
        self.started = time.monotonic()
        # Own session: a Ctrl-C in the terminal reaches us, and we stop it by its pid.
        self.proc = subprocess.Popen([program, "serve"], env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid = self.proc.pid
        self._workers: set[int] = set()

    def worker_pids(self) -> list[int]:
        kids = children(self.pid)
        self._workers.update(kids)
        return kids

    def worker_pid(self) -> int | None:
        kids = self.worker_pids()
        return kids[0] if len(kids) == 1 else None

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited ({self.proc.returncode}); "
                                   f"see {self.log_path}:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                try:
                    conn.request("GET", "/readyz")
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status == 200 and len(self.worker_pids()) == self.workers:
                        return
                finally:
                    conn.close()
            time.sleep(0.1)
        raise RuntimeError(f"gateway not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        """SIGTERM to the master (it stops its workers), SIGKILL to whatever is left."""
        self.worker_pids()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        for pid in self._workers:  # an orphaned worker would hold the port and the db socket
            deadline = time.monotonic() + 5
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._log.close()


# -- HTTP -------------------------------------------------------------------------------------


class ApiError(RuntimeError):
    pass


class Client:
    """One keep-alive HTTP/1.1 connection; requests are strictly sequential."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                        "Accept": "application/json"}
        self.conn: http.client.HTTPConnection | None = None
        self.reconnects = 0

    def _connect(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.conn.connect()
            self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def call(self, method: str, path: str, body: Any = None, expect: int = 200,
             headers: dict[str, str] | None = None) -> tuple[Any, float]:
        """(decoded JSON, seconds from sending the request to the last byte of the answer)."""
        payload = None if body is None else json.dumps(body).encode()
        hdrs = {**self.headers, **(headers or {})}
        for attempt in (1, 2):
            conn = self._connect()
            try:
                start = time.perf_counter()
                conn.request(method, path, body=payload, headers=hdrs)
                resp = conn.getresponse()
                data = resp.read()
                elapsed = time.perf_counter() - start
            except (http.client.RemoteDisconnected, ConnectionError, BrokenPipeError):
                # gunicorn closes idle keep-alive connections after 2 s (between phases);
                # such a request never reached a worker, so sending it again is safe.
                self.close()
                self.reconnects += 1
                if attempt == 2:
                    raise
                continue
            if resp.getheader("Connection", "").lower() == "close":
                self.close()
            if resp.status != expect:
                raise ApiError(f"{method} {path} -> {resp.status} (wanted {expect}): "
                               f"{data[:500]!r}")
            return (json.loads(data) if data else None), elapsed
        raise AssertionError("unreachable")


# -- rows shaped like the gateway's own -------------------------------------------------------


@dataclass
class Shapes:
    """A network (with one port) and its port as the gateway wrote them, used as templates."""

    network_doc: dict[str, Any]
    network_ids: dict[str, str]
    dhcp_ids: dict[str, str]
    dhcp_options: dict[str, str]
    port_doc: dict[str, Any]
    port_ids: dict[str, str]


@dataclass
class NetworkRows:
    net_id: str
    tenant: str
    switch: str
    switch_ids: dict[str, str]
    cidr: str
    dhcp_options: dict[str, str]
    dhcp_ids: dict[str, str]


@dataclass
class PortRows:
    port_id: str
    address: str
    ids: dict[str, str]


def _encoded(doc: dict[str, Any]) -> str:
    # exactly as gateway.services.resources.Resource.write_ownership encodes it
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def gateway_cidr(index: int, first_octets: tuple[int, int]) -> tuple[str, str]:
    """The index-th /24 of a /10-ish space, and its default gateway (first host)."""
    a, b = first_octets
    third, fourth = b + (index >> 8), index & 255
    return f"{a}.{third}.{fourth}.0/24", f"{a}.{third}.{fourth}.1"


def network_rows(shapes: Shapes, tenant: str, name: str, cidr: str, gateway_ip: str,
                 stamp: str, ports: int | None) -> NetworkRows:
    """What NetworkService.create writes (plus the alloc counter after `ports` port creates)."""
    net_id = str(uuid.uuid4())
    doc = {**shapes.network_doc, "id": net_id, "name": name, "tenant_id": tenant,
           "cidr": cidr, "gateway_ip": gateway_ip, "created_at": stamp, "updated_at": stamp,
           "revision": 1}
    ids = naming.owner_ids("network", net_id, tenant)
    ids[naming.NAME] = name
    ids[naming.REVISION] = "1"
    ids[naming.DOC] = _encoded(doc)
    if ports:
        ids[ALLOC] = str(ports)
    options = {**shapes.dhcp_options, "server_id": gateway_ip, "router": gateway_ip,
               "server_mac": server_mac(MAC_PREFIX, net_id)}
    dhcp_ids = naming.owner_ids("dhcp", f"{net_id}/v4", tenant, parent=net_id)
    return NetworkRows(net_id, tenant, naming.switch_name(net_id), ids, cidr, options, dhcp_ids)


def random_mac() -> str:
    return MAC_PREFIX + "".join(f":{b:02x}" for b in secrets.token_bytes(4))


def port_rows(shapes: Shapes, net: NetworkRows, name: str, ip: str, stamp: str) -> PortRows:
    """What PortService.create writes for a port of `net` that got address `ip`."""
    port_id = str(uuid.uuid4())
    mac = random_mac()
    doc = {**shapes.port_doc, "id": port_id, "name": name, "tenant_id": net.tenant,
           "network_id": net.net_id, "mac": mac, "ips": [ip], "created_at": stamp,
           "updated_at": stamp, "revision": 1}
    ids = naming.owner_ids("port", port_id, net.tenant)
    ids[naming.NAME] = name
    ids[naming.REVISION] = "1"
    ids[naming.DOC] = _encoded(doc)
    ids[naming.PARENT] = net.net_id
    return PortRows(port_id, f"{mac} {ip}", ids)


def check_shape(what: str, ours: dict[str, str], theirs: dict[str, str]) -> None:
    """Refuse to fill with rows the gateway would not have written (its code may change)."""
    if set(ours) != set(theirs):
        raise RuntimeError(f"{what}: external_ids keys {sorted(ours)} differ from the "
                           f"gateway's {sorted(theirs)}; update benchmarks/bench_api.py")
    if naming.DOC in ours:
        mine, gws = json.loads(ours[naming.DOC]), json.loads(theirs[naming.DOC])
        if set(mine) != set(gws):
            raise RuntimeError(f"{what}: document keys {sorted(mine)} differ from the "
                               f"gateway's {sorted(gws)}; update benchmarks/bench_api.py")


# -- direct ovsdbapp --------------------------------------------------------------------------


def nb_api(remote: str, blind: tuple[str, ...] = ()) -> tuple[Any, Any]:
    """OvnNbApiIdlImpl on the gateway's tables; rows of `blind` tables are never sent to us."""
    helper = idlutils.get_schema_helper(remote, SCHEMA)
    for table in monitored().tables:
        helper.register_table(table)
    idl = ovs_connection.OvsdbIdl(remote, helper)
    for table in blind:
        idl.cond_change(table, [False])
    conn = ovs_connection.Connection(idl, timeout=120)
    return impl_idl.OvnNbApiIdlImpl(conn), conn


class _RawInsert(ovs_command.BaseCommand):  # type: ignore[misc]
    """Runs a function on the raw IDL transaction (bulk writes without per-row lookups)."""

    def __init__(self, api: Any, fn: Callable[[Any], None]) -> None:
        super().__init__(api)
        self.fn = fn

    def run_idl(self, txn: Any) -> None:
        self.fn(txn)


class DirectWorker:
    """The baseline: the same rows written by ovsdbapp in one transaction, nothing else.

    It runs in a process of its own (see Direct) with a replica of the same tables as the
    gateway's, so that parsing its replica's updates never steals the HTTP client's time.
    """

    def __init__(self, remote: str) -> None:
        self.api, self.conn = nb_api(remote)
        self.pg = naming.tenant_group_name(DIRECT_TENANT)
        with self.api.transaction(check_error=True) as txn:
            txn.add(self.api.db_create(
                "Port_Group", name=self.pg, external_ids={
                    **naming.owner_ids("tenant", DIRECT_TENANT, DIRECT_TENANT),
                    naming.LOCK: "1"}))

    def create_network(self, net: NetworkRows) -> tuple[float, Any]:
        start = time.perf_counter()
        with self.api.transaction(check_error=True) as txn:
            txn.add(self.api.ls_add(net.switch, external_ids=net.switch_ids))
            dhcp = txn.add(self.api.db_create("DHCP_Options", cidr=net.cidr,
                                              options=net.dhcp_options,
                                              external_ids=net.dhcp_ids))
        return time.perf_counter() - start, dhcp.result

    def create_port(self, net: NetworkRows, dhcp_uuid: Any, port: PortRows) -> float:
        start = time.perf_counter()
        with self.api.transaction(check_error=True) as txn:
            lsp = txn.add(self.api.lsp_add(
                net.switch, port.port_id, addresses=[port.address],
                port_security=[port.address], enabled=[True], dhcpv4_options=[dhcp_uuid],
                external_ids=port.ids))
            txn.add(self.api.pg_add_ports(self.pg, lsp))
        return time.perf_counter() - start

    def has_rows(self, switch: str, port: str) -> bool:
        """Both rows in the replica (taken under the lock: one update is applied whole)."""
        with self.conn.lock:
            return all(idlutils.row_by_value(self.api.idl, table, "name", name, None)
                       is not None for table, name in (("Logical_Switch", switch),
                                                       ("Logical_Switch_Port", port)))

    def counts(self) -> dict[str, int]:
        with self.conn.lock:
            return {table: len(self.api.tables[table].rows) for table in monitored().tables}

    def _find(self, table: str, key: str, value: str) -> Any:
        for row in self.api.tables[table].rows.values():
            if row.external_ids.get(key) == value:
                return row
        return None

    def gateway_rows(self, network_id: str, port_id: str) -> dict[str, Any] | None:
        """A gateway-written network (with a port), its DHCP row and port, as plain data."""
        ls = self._find("Logical_Switch", naming.ID, network_id)
        dhcp = self._find("DHCP_Options", naming.PARENT, network_id)
        lsp = self._find("Logical_Switch_Port", naming.ID, port_id)
        if ls is None or dhcp is None or lsp is None or ALLOC not in ls.external_ids:
            return None
        return {"ls_ids": dict(ls.external_ids), "dhcp_ids": dict(dhcp.external_ids),
                "dhcp_options": dict(dhcp.options), "lsp_ids": dict(lsp.external_ids),
                "addresses": list(lsp.addresses), "port_security": list(lsp.port_security)}


def _direct_main(remote: str, pipe: Connection, factory: Any = None) -> None:
    """The direct baseline's process: runs DirectWorker (or factory) methods sent over the
    pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    try:
        worker = (factory or DirectWorker)(remote)
    except Exception as exc:
        pipe.send(("error", repr(exc)))
        return
    pipe.send(("ok", None))
    try:
        while True:
            try:
                method, args = pipe.recv()
            except EOFError:
                break
            if method == "stop":
                break
            try:
                pipe.send(("ok", getattr(worker, method)(*args)))
            except Exception as exc:
                pipe.send(("error", repr(exc)))
    finally:
        worker.conn.stop(timeout=5)


class Direct:
    """Parent side of the direct baseline: a child process, called through a pipe."""

    def __init__(self, remote: str, factory: Any = None) -> None:
        """factory: a DirectWorker subclass defined at module level (the child imports it)."""
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._pipe, child = ctx.Pipe()
        self.proc = ctx.Process(target=_direct_main, args=(remote, child, factory),
                                name="bench-direct", daemon=True)
        self.proc.start()
        child.close()
        self.pid = self.proc.pid
        self._reply(120)

    def _reply(self, timeout: float) -> Any:
        if not self._pipe.poll(timeout):
            raise RuntimeError(f"direct baseline process gave no answer in {timeout:.0f} s")
        status, value = self._pipe.recv()
        if status != "ok":
            raise RuntimeError(f"direct baseline process: {value}")
        return value

    def call(self, method: str, *args: Any, timeout: float = 120) -> Any:
        self._pipe.send((method, args))
        return self._reply(timeout)

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._pipe.send(("stop", ()))
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()  # SIGTERM to its pid
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self._pipe.close()


# -- measurement ------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    samples: dict[str, list[float]] = field(default_factory=dict)  # ms
    network_ids: list[str] = field(default_factory=list)
    port_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0
    server: dict[str, dict[str, float]] = field(default_factory=dict)  # op -> kind -> mean ms
    foreign_cpu: dict[str, float] = field(default_factory=dict)


class Bench:
    tenant = TENANT  # whose requests are measured

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.box: sandbox.Sandbox | None = None
        self.gateway: Gateway | None = None
        self.direct: Direct | None = None
        self.filler: tuple[Any, Any] | None = None
        self.shapes: Shapes | None = None
        self.client: Client | None = None
        self.admin: Client | None = None
        self.serial = 0  # makes names and cidrs unique across phases

    # -- setup / teardown --
    def start(self) -> None:
        self.start_gateway()
        self.direct = Direct(self.box.nb_unix)

    def start_gateway(self) -> None:
        """The sandbox, `serve` on it, and a tenant and an admin client."""
        t0 = time.perf_counter()
        self.box = sandbox.start(self.workdir / "nb")
        log(f"sandbox: ovsdb-server pid {self.box.pid} on {self.box.nb_unix}")
        self.gateway = self.new_gateway()
        log(f"gateway: pid {self.gateway.pid} on 127.0.0.1:{self.gateway.port}")
        self.gateway.wait_ready(60)
        log(f"gateway ready (worker pids {self.gateway.worker_pids()}) "
            f"in {time.perf_counter() - t0:.1f} s")
        secret = self.gateway.secret
        self.client = Client(self.gateway.port, mint(secret, self.tenant, "read write", "bench",
                                                     7200))
        self.admin = Client(self.gateway.port, mint(secret, ADMIN_TENANT, "admin",
                                                    "bench-admin", 7200))

    def new_gateway(self) -> Gateway:
        """`serve` on the sandbox as this benchmark runs it (subclasses change the settings)."""
        assert self.box is not None
        return Gateway(self.workdir, self.box.nb_unix, self.args.threads)

    def stop(self) -> None:
        """Stop everything this run started, each by its own pid; one failure skips none."""
        steps: list[tuple[str, Callable[[], Any]]] = []
        for client in (self.client, self.admin):
            if client is not None:
                steps.append(("client", client.close))
        if self.gateway is not None:
            steps.append((f"gateway pid {self.gateway.pid}", self.gateway.stop))
        if self.direct is not None:
            steps.append((f"direct baseline pid {self.direct.pid}", self.direct.stop))
        if self.filler is not None:
            steps.append(("fill connection", lambda: self.filler and self.filler[1].stop(5)))
        if self.box is not None:
            box = self.box
            steps.append((f"sandbox ovsdb-server pid {box.pid}", lambda: sandbox.stop(box.dir)))
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # keep going: the rest must stop too
                log(f"stopping {what} failed: {exc!r}")
            else:
                if what != "client":
                    log(f"{what} stopped")

    # -- helpers --
    def next_cidr(self) -> tuple[str, str]:
        self.serial += 1
        return gateway_cidr(self.serial, (10, 0))

    def worker_rss(self) -> int | None:
        assert self.gateway is not None
        return rss_kib(self.gateway.worker_pid())

    def _create_network(self, phase: Phase, tag: str) -> tuple[str, float]:
        assert self.client is not None
        cidr, _ = self.next_cidr()
        doc, elapsed = self.client.call("POST", "/v1/networks",
                                        {"name": f"{phase.name}-{tag}-{self.serial}",
                                         "cidr": cidr}, expect=201)
        return str(doc["id"]), elapsed

    def _create_port(self, network_id: str, tag: str) -> tuple[str, float]:
        assert self.client is not None
        self.serial += 1
        doc, elapsed = self.client.call("POST", f"/v1/networks/{network_id}/ports",
                                        {"name": f"{tag}-{self.serial}"}, expect=201)
        return str(doc["id"]), elapsed

    def capture_shapes(self, network_id: str, port_id: str) -> None:
        """The gateway's own rows (a network with one port) become the fill templates."""
        assert self.direct is not None
        deadline = time.monotonic() + 10
        while (rows := self.direct.call("gateway_rows", network_id, port_id)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway's rows never reached the direct replica")
            time.sleep(0.05)
        self.shapes = Shapes(
            network_doc=json.loads(rows["ls_ids"][naming.DOC]), network_ids=rows["ls_ids"],
            dhcp_ids=rows["dhcp_ids"], dhcp_options=rows["dhcp_options"],
            port_doc=json.loads(rows["lsp_ids"][naming.DOC]), port_ids=rows["lsp_ids"])
        # Check our builders against what the gateway wrote.
        cidr, gw = gateway_cidr(0, (100, 64))
        net = network_rows(self.shapes, TENANT, "shape", cidr, gw, now(), 1)
        port = port_rows(self.shapes, net, "shape", gw, now())
        check_shape("Logical_Switch", net.switch_ids, self.shapes.network_ids)
        check_shape("DHCP_Options", net.dhcp_ids, self.shapes.dhcp_ids)
        check_shape("DHCP_Options.options", net.dhcp_options, self.shapes.dhcp_options)
        check_shape("Logical_Switch_Port", port.ids, self.shapes.port_ids)
        addresses, security = rows["addresses"], rows["port_security"]
        if security != addresses or len(addresses) != 1 or len(addresses[0].split()) != 2:
            raise RuntimeError(f"unexpected port columns {addresses} {security}")

    def scrape(self) -> dict[tuple[str, ...], tuple[float, float]]:
        """The gateway's own histograms: (kind, label...) -> (sum seconds, count)."""
        assert self.admin is not None
        conn = http.client.HTTPConnection("127.0.0.1", self.admin.port, timeout=30)
        try:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        out: dict[tuple[str, ...], tuple[float, float]] = {}
        for match in METRIC_LINE.finditer(text):
            name, part, labels, value = match.groups()
            pairs = dict(LABEL.findall(labels))
            if name == "gateway_http_request_duration_seconds":
                key: tuple[str, ...] = ("http", pairs.get("method", ""), pairs.get("route", ""))
            elif name == "gateway_ovn_transaction_duration_seconds":
                key = ("ovn", pairs.get("operation", ""))
            else:
                continue
            total, count = out.get(key, (0.0, 0.0))
            out[key] = (total + float(value), count) if part == "sum" else \
                (total, count + float(value))
        return out

    def measure(self, phase: Phase) -> None:
        """Every operation: a warm-up, then N sequential samples split over a few rounds, so
        that a change in background load during the phase hits every operation alike."""
        assert self.client is not None and self.direct is not None
        n, warm, rounds = self.args.samples, self.args.warmup, self.args.rounds
        sizes = [n // rounds + (1 if r < n % rounds else 0) for r in range(rounds)]
        t0 = time.perf_counter()
        cpu0 = self.cpu()
        self.client.close()  # a fresh connection for the phase (the last one idled out)
        server: dict[str, dict[str, list[float]]] = {}

        def block(op: str, fns: list[Callable[[], float]]) -> None:
            """Time fns (one request or transaction each); note the gateway's own view."""
            before = self.scrape() if not op.startswith("direct") else {}
            samples = [fn() * 1000 for fn in fns]
            phase.samples.setdefault(op, []).extend(samples)
            if before:
                after = self.scrape()
                for key, (total, count) in after.items():
                    t_before, c_before = before.get(key, (0.0, 0.0))
                    # the route (and transaction kind) that served exactly this block
                    if round(count - c_before) == len(fns) and key[-1] != "/metrics":
                        acc = server.setdefault(op, {}).setdefault(key[0], [0.0, 0.0])
                        acc[0] += total - t_before
                        acc[1] += count - c_before

        # -- the operations --
        def create_network(into: list[str]) -> Callable[[], float]:
            def fn() -> float:
                net_id, elapsed = self._create_network(phase, "net")
                into.append(net_id)
                return elapsed
            return fn

        def create_port(network_id: str, into: list[str]) -> Callable[[], float]:
            def fn() -> float:
                port_id, elapsed = self._create_port(network_id, "port")
                into.append(port_id)
                return elapsed
            return fn

        def get(path: str) -> Callable[[], float]:
            def fn() -> float:
                assert self.client is not None
                return self.client.call("GET", path)[1]
            return fn

        def list_networks() -> float:
            assert self.client is not None
            page, elapsed = self.client.call("GET", f"/v1/networks?limit={LIST_LIMIT}")
            if len(page["items"]) != LIST_LIMIT:
                raise RuntimeError(f"list returned {len(page['items'])} items")
            return elapsed

        def direct_network(into: list[tuple[NetworkRows, Any]]) -> Callable[[], float]:
            def fn() -> float:
                assert self.direct is not None and self.shapes is not None
                cidr, gw = self.next_cidr()
                net = network_rows(self.shapes, DIRECT_TENANT, f"direct-{self.serial}", cidr,
                                   gw, now(), None)
                elapsed, dhcp_uuid = self.direct.call("create_network", net)
                into.append((net, dhcp_uuid))
                return float(elapsed)
            return fn

        def direct_port(net: NetworkRows, dhcp_uuid: Any) -> Callable[[], float]:
            def fn() -> float:
                assert self.direct is not None and self.shapes is not None
                ip = net.dhcp_options["router"].rsplit(".", 1)[0] + ".2"  # first after gw
                self.serial += 1
                port = port_rows(self.shapes, net, f"direct-{self.serial}", ip, now())
                return float(self.direct.call("create_port", net, dhcp_uuid, port))
            return fn

        def top_up_list() -> None:
            """The list must be full (limit items) in every phase to be comparable."""
            assert self.client is not None
            page, _ = self.client.call("GET", f"/v1/networks?limit={LIST_LIMIT}")
            for _ in range(LIST_LIMIT - len(page["items"])):
                self._create_network(phase, "fill")

        # -- warm-up: every operation, untimed --
        warm_nets: list[str] = []
        warm_ports: list[str] = []
        warm_direct: list[tuple[NetworkRows, Any]] = []
        for _ in range(warm):
            create_network(warm_nets)()
        for net_id in warm_nets:
            create_port(net_id, warm_ports)()
        if self.shapes is None:
            self.capture_shapes(warm_nets[0], warm_ports[0])
        top_up_list()
        for i in range(warm):
            get(f"/v1/networks/{warm_nets[i]}")()
            get(f"/v1/ports/{warm_ports[i]}")()
            list_networks()
            direct_network(warm_direct)()
        for net, dhcp_uuid in warm_direct:
            direct_port(net, dhcp_uuid)()

        # -- rounds of samples --
        for k in sizes:
            nets: list[str] = []
            ports: list[str] = []
            direct_nets: list[tuple[NetworkRows, Any]] = []
            block("create_network", [create_network(nets) for _ in range(k)])
            # one port in each new network: the IPAM scan of a network stays the same size
            block("create_port", [create_port(net_id, ports) for net_id in nets])
            phase.network_ids += nets
            phase.port_ids += ports
            block("get_network", [get(f"/v1/networks/{i}") for i in nets])
            block("get_port", [get(f"/v1/ports/{i}") for i in ports])
            block("list_networks", [list_networks] * k)
            block("direct_network", [direct_network(direct_nets) for _ in range(k)])
            block("direct_port", [direct_port(net, dhcp) for net, dhcp in direct_nets])
        for op in OPS:
            s = summary(phase.samples[op])
            log(f"  {phase.name:6} {op:15} p50 {s['p50_ms']:7.2f} ms  p99 {s['p99_ms']:7.2f} ms")
        phase.server = {op: {kind: round(acc[0] / acc[1] * 1000, 3) for kind, acc in v.items()
                             if acc[1]} for op, v in server.items()}
        phase.seconds = time.perf_counter() - t0
        phase.foreign_cpu = self.foreign_cpu(cpu0, self.cpu(), phase.seconds)

    def our_pids(self) -> list[int]:
        pids = [os.getpid()]
        if self.gateway is not None:
            pids.append(self.gateway.pid)
            worker = self.gateway.worker_pid()
            if worker is not None:
                pids.append(worker)
        if self.box is not None:
            pids.append(self.box.pid)
        if self.direct is not None and self.direct.pid is not None:
            pids.append(self.direct.pid)
        return pids

    def cpu(self) -> tuple[float, float]:
        """(CPU seconds used by the whole machine, by this benchmark's processes)."""
        tick = os.sysconf("SC_CLK_TCK")
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        # user nice system idle iowait irq softirq steal: everything but idle and iowait
        busy = sum(int(x) for i, x in enumerate(fields[:8]) if i not in (3, 4))
        ours = 0
        for pid in self.our_pids():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
                ours += int(stat[11]) + int(stat[12])  # utime, stime
        return busy / tick, ours / tick

    @staticmethod
    def foreign_cpu(before: tuple[float, float], after: tuple[float, float],
                    seconds: float) -> dict[str, float]:
        """CPU that other processes on the machine used while we measured (noise)."""
        other = max(0.0, (after[0] - before[0]) - (after[1] - before[1]))
        return {"cpu_seconds": round(other, 2),
                "cores_busy": round(other / seconds, 2) if seconds else 0.0}

    # -- the 10k fill --
    def fill(self) -> dict[str, Any]:
        """Networks x ports, gateway-shaped, in large ovsdbapp transactions."""
        assert self.box is not None and self.shapes is not None and self.admin is not None
        args = self.args
        t0 = time.perf_counter()
        # This connection never receives the (huge) switch, port and DHCP tables back.
        api, conn = nb_api(self.box.nb_unix, blind=("Logical_Switch", "Logical_Switch_Port",
                                                     "DHCP_Options"))
        self.filler = (api, conn)
        tenants = [f"tenant-{i:04d}" for i in range(args.tenants)]
        own_every = max(1, round(1 / args.own_fraction)) if args.own_fraction > 0 else 0

        def tenant_of(i: int) -> str:
            if own_every and i % own_every == 0:
                return TENANT
            return tenants[i % len(tenants)]

        per_tenant: dict[str, int] = {}
        for i in range(args.networks):
            per_tenant[tenant_of(i)] = per_tenant.get(tenant_of(i), 0) + 1

        # one port group per tenant (the gateway's tenant row); the measured tenant has one
        def add_groups(txn: Any) -> None:
            table = api.tables["Port_Group"]
            for tenant, count in per_tenant.items():
                if tenant == TENANT:
                    continue
                row = txn.insert(table)
                row.name = naming.tenant_group_name(tenant)
                row.external_ids = {**naming.owner_ids("tenant", tenant, tenant),
                                    naming.LOCK: str(count * (1 + args.ports_per_network))}

        with api.transaction(check_error=True) as txn:
            txn.add(_RawInsert(api, add_groups))
        groups = {row.name: row for row in api.tables["Port_Group"].rows.values()}

        shapes = self.shapes
        last: tuple[str, str] = ("", "")
        batch_seconds: list[float] = []
        for first in range(0, args.networks, args.batch):
            stamp = now()
            nets: list[tuple[NetworkRows, list[PortRows]]] = []
            for i in range(first, min(first + args.batch, args.networks)):
                cidr, gw = gateway_cidr(i, (100, 64))
                net = network_rows(shapes, tenant_of(i), f"bulk-{i:05d}", cidr, gw, stamp,
                                   args.ports_per_network)
                prefix = gw.rsplit(".", 1)[0]
                ports = [port_rows(shapes, net, f"bulk-{i:05d}-{j}", f"{prefix}.{2 + j}", stamp)
                         for j in range(args.ports_per_network)]
                nets.append((net, ports))

            def write(txn: Any, nets: list[tuple[NetworkRows, list[PortRows]]] = nets) -> None:
                t_ls = api.tables["Logical_Switch"]
                t_lsp = api.tables["Logical_Switch_Port"]
                t_dhcp = api.tables["DHCP_Options"]
                for net, ports in nets:
                    dhcp = txn.insert(t_dhcp)
                    dhcp.cidr = net.cidr
                    dhcp.options = net.dhcp_options
                    dhcp.external_ids = net.dhcp_ids
                    lsps = []
                    group = groups[naming.tenant_group_name(net.tenant)]
                    for port in ports:
                        lsp = txn.insert(t_lsp)
                        lsp.name = port.port_id
                        lsp.addresses = [port.address]
                        lsp.port_security = [port.address]
                        lsp.enabled = [True]
                        lsp.dhcpv4_options = [dhcp]
                        lsp.dhcpv6_options = []
                        lsp.external_ids = port.ids
                        lsps.append(lsp)
                        group.addvalue("ports", lsp)
                    ls = txn.insert(t_ls)
                    ls.name = net.switch
                    ls.ports = lsps
                    ls.external_ids = net.switch_ids

            b0 = time.perf_counter()
            with api.transaction(check_error=True) as txn:
                txn.add(_RawInsert(api, write))
            batch_seconds.append(time.perf_counter() - b0)
            last = (nets[-1][0].net_id, nets[-1][1][-1].port_id if nets[-1][1] else "")
            done = min(first + args.batch, args.networks)
            if done % (args.batch * 5) == 0 or done == args.networks:
                log(f"  filled {done} networks ({time.perf_counter() - t0:.1f} s)")
        write_seconds = time.perf_counter() - t0

        # the gateway has them once its index answers for the last rows written
        t1 = time.perf_counter()
        deadline = time.monotonic() + args.sync_timeout
        while True:
            try:
                self.admin.call("GET", f"/v1/networks/{last[0]}")
                if last[1]:
                    self.admin.call("GET", f"/v1/ports/{last[1]}")
                break
            except ApiError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the gateway never indexed the bulk rows") from None
                time.sleep(0.2)
        gateway_lag = time.perf_counter() - t1
        assert self.direct is not None
        while not self.direct.call("has_rows", naming.switch_name(last[0]), last[1]):
            if time.monotonic() > deadline:
                raise RuntimeError("the direct replica never received the bulk rows")
            time.sleep(0.2)
        direct_lag = time.perf_counter() - t1
        conn.stop(timeout=5)
        self.filler = None
        return {
            "networks": args.networks, "ports": args.networks * args.ports_per_network,
            "batch": args.batch, "transactions": len(batch_seconds),
            "tenants": len(per_tenant),
            "measured_tenant_networks": per_tenant.get(TENANT, 0),
            "write_seconds": round(write_seconds, 2),
            "batch_commit_p50_s": round(statistics.median(batch_seconds), 3),
            "gateway_caught_up_after_s": round(gateway_lag, 2),
            "direct_replica_caught_up_after_s": round(direct_lag, 2),
            "rows_in_replica": self.direct.call("counts"),
        }

    # -- the run --
    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.start()
        empty = Phase("empty")
        log(f"measuring, empty database ({self.args.samples} samples each)")
        self.measure(empty)
        rss_empty = self.worker_rss()
        log(f"filling: {self.args.networks} networks x {self.args.ports_per_network} ports")
        fill = self.fill()
        gc.collect()  # the generated rows are garbage now; keep the client's heap small
        rss_filled_idle = self.worker_rss()
        log(f"fill done: {fill}")
        filled = Phase("filled")
        log("measuring, filled database")
        self.measure(filled)
        rss_filled = self.worker_rss()
        return self.report(empty, filled, fill, {
            "worker_empty_kib": rss_empty, "worker_filled_before_measuring_kib": rss_filled_idle,
            "worker_filled_kib": rss_filled,
            "master_kib": rss_kib(self.gateway.pid if self.gateway else None),
        }, time.perf_counter() - started)

    def report(self, empty: Phase, filled: Phase, fill: dict[str, Any],
               rss: dict[str, int | None], seconds: float) -> dict[str, Any]:
        ops: dict[str, Any] = {}
        for op in OPS:
            entry: dict[str, Any] = {"label": OPS[op]}
            for phase in (empty, filled):
                entry[phase.name] = summary(phase.samples[op])
                for kind, mean in phase.server.get(op, {}).items():
                    entry[phase.name][f"{kind}_mean_ms"] = mean
            e, f = entry["empty"], entry["filled"]
            entry["ratio_p50"] = round(f["p50_ms"] / e["p50_ms"], 3)
            entry["ratio_p99"] = round(f["p99_ms"] / e["p99_ms"], 3)
            ops[op] = entry
        vs_direct = {}
        for api_op, direct_op in CREATE_PAIRS:
            vs_direct[api_op] = {
                phase: round(ops[api_op][phase]["p50_ms"] / ops[direct_op][phase]["p50_ms"], 3)
                for phase in ("empty", "filled")}
        assert self.client is not None and self.admin is not None
        return {
            "ops": ops, "create_vs_direct_p50": vs_direct, "fill": fill, "rss": rss,
            "phase_seconds": {"empty": round(empty.seconds, 1),
                              "filled": round(filled.seconds, 1)},
            "other_processes_cpu": {"empty": empty.foreign_cpu, "filled": filled.foreign_cpu},
            "total_seconds": round(seconds, 1),
            "config": {k: v for k, v in vars(self.args).items() if k != "out"},
            "client_reconnects": self.client.reconnects + self.admin.reconnects,
            "environment": environment(),
            "samples_ms": {phase.name: {op: [round(x, 3) for x in phase.samples[op]]
                                        for op in OPS} for phase in (empty, filled)},
        }


def environment() -> dict[str, Any]:
    import ovs.json

    return {"python": platform.python_version(), "cpus": os.cpu_count(),
            "ovs_json_parser": getattr(ovs.json, "PARSER", "?"),
            "machine": platform.machine(), "time": now()}


def size_label(networks: int) -> str:
    return f"{networks / 1000:g}k" if networks >= 1000 else str(networks)


def markdown(result: dict[str, Any]) -> str:
    ops, fill = result["ops"], result["fill"]
    nets = size_label(fill["networks"])
    lines = [
        f"| operation | empty p50 | empty p99 | {nets} p50 | {nets} p99 "
        f"| ratio {nets}/empty p50 (p99) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for op in ops.values():
        e, f = op["empty"], op["filled"]
        lines.append(f"| {op['label']} | {e['p50_ms']:.2f} ms | {e['p99_ms']:.2f} ms "
                     f"| {f['p50_ms']:.2f} ms | {f['p99_ms']:.2f} ms "
                     f"| {op['ratio_p50']:.2f} ({op['ratio_p99']:.2f}) |")
    lines += ["", f"| create, p50 gateway / direct ovsdbapp | empty | {nets} |",
              "|---|---:|---:|"]
    for api_op, ratios in result["create_vs_direct_p50"].items():
        lines.append(f"| {OPS[api_op]} | {ratios['empty']:.2f}x | {ratios['filled']:.2f}x |")
    lines += ["", "Where the time goes (means in ms; handler = the gateway's own "
              "gateway_http_request_duration_seconds, OVN txn = "
              "gateway_ovn_transaction_duration_seconds):", "",
              "| operation | phase | client | handler | OVN txn | direct ovsdbapp |",
              "|---|---|---:|---:|---:|---:|"]
    direct_of = dict(CREATE_PAIRS)
    for key, op in ops.items():
        if key.startswith("direct"):
            continue
        for phase in ("empty", "filled"):
            fig = op[phase]
            direct = ops[direct_of[key]][phase]["mean_ms"] if key in direct_of else None
            lines.append(
                f"| {op['label']} | {'empty' if phase == 'empty' else nets} "
                f"| {fig['mean_ms']:.2f} | {opt(fig.get('http_mean_ms'))} "
                f"| {opt(fig.get('ovn_mean_ms'))} | {opt(direct)} |")
    rss, other = result["rss"], result["other_processes_cpu"]
    lines += ["", f"Gateway worker RSS: empty {fmt_mib(rss['worker_empty_kib'])}, "
              f"filled {fmt_mib(rss['worker_filled_kib'])} "
              f"(master {fmt_mib(rss['master_kib'])}).",
              f"Fill: {fill['networks']} networks, {fill['ports']} ports in "
              f"{fill['transactions']} transactions, {fill['write_seconds']} s; gateway caught "
              f"up {fill['gateway_caught_up_after_s']} s after the last commit.",
              f"Other processes on this machine kept {other['empty']['cores_busy']} (empty) "
              f"and {other['filled']['cores_busy']} ({nets}) cores busy while measuring.",
              f"Samples per figure: {ops['create_network']['empty']['n']}; "
              f"run took {result['total_seconds']} s.", "", "Targets:"]
    for line in targets(result):
        lines.append(f"- {line}")
    return "\n".join(lines)


def opt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def fmt_mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.0f} MiB"


def targets(result: dict[str, Any]) -> list[str]:
    """The project's targets, each marked met or missed on the figures above."""
    ops, out = result["ops"], []
    nets = size_label(result["fill"]["networks"])
    for api_op, ratios in result["create_vs_direct_p50"].items():
        for phase, ratio in ratios.items():
            out.append(f"{'met   ' if ratio <= 1.5 else 'MISSED'} {OPS[api_op]} p50 within "
                       f"1.5x of direct ovsdbapp ({phase}): {ratio:.2f}x")
    for op in ("get_network", "get_port"):
        for phase in ("empty", "filled"):
            p50 = ops[op][phase]["p50_ms"]
            out.append(f"{'met   ' if p50 < 2 else 'MISSED'} {OPS[op]} p50 under 2 ms "
                       f"({phase}): {p50:.2f} ms")
    for op in ops.values():
        if op["label"].startswith("ovsdbapp"):
            continue
        for which in ("p50", "p99"):
            ratio = op[f"ratio_{which}"]
            out.append(f"{'met   ' if ratio <= 1.2 else 'MISSED'} {op['label']} {which} at "
                       f"{nets} within 1.2x of empty: {ratio:.2f}x")
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="50 samples per figure instead of 300 (same 10k fill)")
    parser.add_argument("--out", default="bench-results.json", help="JSON results file")
    parser.add_argument("--samples", type=int, default=None, help="samples per figure")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up requests per figure")
    parser.add_argument("--networks", type=int, default=10_000, help="networks in the fill")
    parser.add_argument("--ports-per-network", type=int, default=5)
    parser.add_argument("--batch", type=int, default=500, help="networks per fill transaction")
    parser.add_argument("--tenants", type=int, default=1000,
                        help="other tenants the fill spreads its networks over")
    parser.add_argument("--own-fraction", type=float, default=0.01,
                        help="share of filled networks owned by the measured tenant")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds the samples of each figure are split over (10, --quick 5)")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads (1 worker)")
    parser.add_argument("--sync-timeout", type=float, default=300,
                        help="seconds to wait for the gateway to index the fill")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (logs, database) after the run")
    args = parser.parse_args(argv)
    if args.samples is None:
        args.samples = 50 if args.quick else 300
    if args.warmup is None:
        args.warmup = 10 if args.quick else 20
    if args.rounds is None:
        args.rounds = min(args.samples, 5 if args.quick else 10)
    if args.samples < 1 or args.warmup < 1 or not 1 <= args.rounds <= args.samples:
        parser.error("--samples and --warmup must be at least 1, --rounds 1..samples")
    if min(args.networks, args.ports_per_network, args.batch, args.tenants) < 1:
        parser.error("--networks, --ports-per-network, --batch and --tenants must be >= 1")
    if not 0 <= args.own_fraction <= 1:
        parser.error("--own-fraction must be between 0 and 1")
    return args


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM/SIGHUP unwind like Ctrl-C, so the cleanup below always runs."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_bench(make: Callable[[Path], Any], prefix: str,
              keep: bool = False) -> dict[str, Any] | None:
    """make(workdir).run() in a fresh work folder; everything it started is stopped and the
    folder removed (unless keep), also on error or a signal. None: interrupted."""
    # short: the sandbox's unix socket path must fit in sun_path
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    bench = make(workdir)
    try:
        with terminate_as_interrupt():
            try:
                return dict(bench.run())
            finally:
                bench.stop()
    except KeyboardInterrupt:
        log("interrupted; everything started was stopped")
        return None
    except Exception:
        if bench.gateway is not None:
            log(f"gateway log tail:\n{bench.gateway.log_tail()}")
        raise
    finally:
        if keep:
            log(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run_bench(lambda workdir: Bench(args, workdir), "ovngw-bench-", args.keep)
    if result is None:
        return 130
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

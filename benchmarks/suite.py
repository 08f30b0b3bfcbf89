#!/usr/bin/env python3
"""`benchmarks/run`: one run, one table (issue 11, item 1).

Against a northbound sandbox it starts itself and `ovn-nb-gateway serve` started with its
own defaults (GATEWAY_WORKERS / GATEWAY_THREADS never set), it measures:

1. p50/p99 of create/get/list/patch/delete of every resource kind, one keep-alive client;
2. the same network and port rows written directly: ovsdbapp one row per transaction,
   ovsdbapp 32 rows per transaction, and `ovn-nbctl` one invocation per row;
3. network creates/s under `wrk` at 1, 8 and 32 connections (one tenant, and many),
   beside the serial and the batching ovsdbapp client and a bare Flask app on the same
   gunicorn settings;
4. all that again with --size ports/networks present (created through the gateway), the
   resident memory of every gateway process and its time from start to /readyz 200 (empty,
   at size, and with as many foreign ports present);

and prints one Markdown table on stdout (progress on stderr).

    benchmarks/run [--quick] [--size 100000:10000] [--only latency,throughput,scale]
                   [--duration 10] [--out table.md] [--json results.json] [--keep]

See benchmarks/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench_http_floor
from bench_api import (
    DIRECT_TENANT,
    ApiError,
    Bench,
    Client,
    Direct,
    DirectWorker,
    Gateway,
    NetworkRows,
    Shapes,
    _RawInsert,
    children,
    gateway_cidr,
    log,
    nb_api,
    network_rows,
    now,
    percentile,
    port_rows,
    rss_kib,
    run_bench,
)

from gateway import sandbox
from gateway.auth import mint
from gateway.ovn import naming

ROOT = Path(__file__).resolve().parent.parent
TENANT = "run-bench"  # the single client's tenant
ADMIN_TENANT = "run-admin"
WRK_ONE = "wrk-one"
QUOTA_MAX = 1_000_000  # the most PATCH /v1/tenants/{t}/quotas accepts
QUOTAS_ALL = {k: QUOTA_MAX for k in ("networks", "ports", "policies", "load_balancers",
                                     "gateways", "floating_ips", "dns_records")}
MERGE = {"Content-Type": "application/merge-patch+json"}
LIST_LIMIT = 100
BATCH = 32  # rows per transaction of the batching ovsdbapp client
KINDS = ("networks", "ports", "dns_records", "policies", "load_balancers", "gateways",
         "floating_ips", "external_networks")
OPS = ("create", "get", "list", "patch", "delete")
KIND_LABEL = {"networks": "networks", "ports": "ports", "dns_records": "DNS records",
              "policies": "policies", "load_balancers": "load balancers",
              "gateways": "gateways", "floating_ips": "floating IPs",
              "external_networks": "external networks (admin)"}
COLLECTION = {"networks": "networks", "ports": "ports", "dns_records": "dns-records",
              "policies": "policies", "load_balancers": "load-balancers",
              "gateways": "gateways", "floating_ips": "floating-ips",
              "external_networks": "external-networks"}
# every sample of a metric whose name mentions batching (the group commit's, once it lands)
BATCH_METRIC = re.compile(r"^(gateway_\w*batch\w*?)(?:\{[^}]*\})? (\S+)$", re.MULTILINE)
# Settings fields that are not performance settings (secrets, keys, addresses, CORS)
NOT_SETTINGS = ("jwt", "ssl", "bind", "cors", "nb_db", "sb_db", "quotas", "mac_prefix",
                "gateway_chassis")


# -- small helpers ----------------------------------------------------------------------------


def p50(values: list[float]) -> float:
    return statistics.median(values)


def p99(values: list[float]) -> float:
    return percentile(values, 99)


def sh(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20,
                              cwd=ROOT).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def json_parser() -> str:
    """What the venv's python-ovs parses JSON with, asked as the issue asks it."""
    out = sh(sys.executable, "-c", "import ovs.json; print(ovs.json.PARSER)")
    return out or "?"


def ovs_str(value: str) -> str:
    """A string atom for ovn-nbctl's command line (quoted, C/JSON escapes)."""
    return json.dumps(value)


def ovs_map(mapping: dict[str, str]) -> str:
    return "{" + ",".join(f"{ovs_str(k)}={ovs_str(v)}" for k, v in mapping.items()) + "}"


class Statuses:
    """Thread-safe status counts of a batch of requests."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def add(self, status: str) -> None:
        with self.lock:
            self.counts[status] += 1

    def bad(self, ok: tuple[int, ...]) -> int:
        return sum(n for s, n in self.counts.items() if not (s.isdigit() and int(s) in ok))


class Pool:
    """N threads with a keep-alive connection each, for population and cleanup: every
    status is counted, nothing is retried."""

    def __init__(self, port: int, concurrency: int) -> None:
        self.port = port
        self.concurrency = concurrency
        self.local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            self.local.conn = conn
        return conn

    def _one(self, task: tuple[str, str, str, Any], statuses: Statuses) -> Any:
        method, path, token, body = task
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        payload = None if body is None else json.dumps(body)
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.request(method, path, body=payload, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionError, BrokenPipeError):
                # an idle keep-alive connection closed by gunicorn: never reached a worker
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    statuses.add("connection error")
                    return None
                continue
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self.local.conn = None
                statuses.add(type(exc).__name__)
                return None
            statuses.add(str(resp.status))
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                self.local.conn = None
            if 200 <= resp.status < 300 and data:
                return json.loads(data)
            return None
        return None

    def run(self, tasks: list[tuple[str, str, str, Any]],
            progress: str = "") -> tuple[list[Any], Statuses, float]:
        statuses = Statuses()
        results: list[Any] = [None] * len(tasks)
        step = max(1, len(tasks) // 10)
        t0 = time.perf_counter()
        done = [0]

        stop = threading.Event()

        def worker(index: int) -> None:
            for i in range(index, len(tasks), self.concurrency):
                if stop.is_set():  # the run was interrupted: leave after this request
                    break
                results[i] = self._one(tasks[i], statuses)
                with statuses.lock:
                    done[0] += 1
                    if progress and done[0] % step == 0:
                        log(f"  {progress}: {done[0]}/{len(tasks)} "
                            f"({time.perf_counter() - t0:.0f} s)")
            conn = getattr(self.local, "conn", None)
            if conn is not None:
                conn.close()
                self.local.conn = None

        with concurrent.futures.ThreadPoolExecutor(self.concurrency) as ex:
            try:
                for f in [ex.submit(worker, i) for i in range(self.concurrency)]:
                    f.result()
            except BaseException:
                stop.set()
                raise
        return results, statuses, time.perf_counter() - t0


# -- wrk --------------------------------------------------------------------------------------

WRK_LUA = r"""-- generated by benchmarks/suite.py: POST @PATH@ with a new name per request
local tokens = {@TOKENS@}
local tag = "@TAG@"
local threads = {}
local nthreads = 0

function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
  table.insert(threads, thread)
end

function init(args)
  n = 0
  counts = {}
end

function request()
  n = n + 1
  local tok = tokens[((n + tid * 7) % #tokens) + 1]
  local body = string.format('{"name":"%s-%d-%d","cidr":"10.%d.%d.0/24"}',
                             tag, tid, n, math.floor(n / 256) % 256, n % 256)
  return wrk.format("POST", "@PATH@", {["Authorization"] = "Bearer " .. tok,
                    ["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  local k = tostring(status)
  counts[k] = (counts[k] or 0) + 1
end

function done(summary, latency, requests)
  local agg = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts") or {}
    for k, v in pairs(c) do agg[k] = (agg[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(agg) do table.insert(parts, string.format('"%s":%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"duration_us":%d,"requests":%d,"errors":{"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d},"p50_us":%d,"p99_us":%d,"status":{%s}}\n',
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), table.concat(parts, ",")))
end
"""


def wrk_run(workdir: Path, port: int, path: str, tokens: list[str], connections: int,
            duration: float, tag: str) -> dict[str, Any]:
    """wrk POSTing `path` with unique names for `duration` s; statuses counted per request."""
    script = workdir / f"wrk-{tag}.lua"
    script.write_text(WRK_LUA.replace("@PATH@", path).replace("@TAG@", tag).replace(
        "@TOKENS@", ", ".join(f'"{t}"' for t in tokens)))
    threads = min(2, connections)
    cmd = ["/usr/bin/wrk" if Path("/usr/bin/wrk").exists() else "wrk", f"-t{threads}",
           f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "30s",
           "-s", str(script), f"http://127.0.0.1:{port}"]
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          timeout=duration + 120)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCHJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout[-800:]}"
                           f"{proc.stderr[-800:]}")
    out = json.loads(line.split(" ", 1)[1])
    seconds = out["duration_us"] / 1e6
    ok = sum(n for s, n in out["status"].items() if 200 <= int(s) < 300)
    out.update(seconds=round(seconds, 2), ok=ok, per_s=round(ok / seconds, 1),
               non_2xx=sum(n for s, n in out["status"].items() if not 200 <= int(s) < 300),
               socket_errors=sum(v for k, v in out["errors"].items() if k != "status"),
               connections=connections, threads=threads)
    return out


# -- the direct baseline (runs in a child process, see bench_api.Direct) -----------------------


class SuiteDirect(DirectWorker):  # type: ignore[misc]
    """bench_api's direct ovsdbapp worker plus batches, a timed write loop and cleanup."""

    def create_networks(self, nets: list[NetworkRows]) -> tuple[float, list[Any]]:
        start = time.perf_counter()
        with self.api.transaction(check_error=True) as txn:
            dhcps = []
            for net in nets:
                txn.add(self.api.ls_add(net.switch, external_ids=net.switch_ids))
                dhcps.append(txn.add(self.api.db_create(
                    "DHCP_Options", cidr=net.cidr, options=net.dhcp_options,
                    external_ids=net.dhcp_ids)))
        return time.perf_counter() - start, [d.result for d in dhcps]

    def create_ports(self, net: NetworkRows, dhcp_uuid: Any, ports: list[Any]) -> float:
        start = time.perf_counter()
        with self.api.transaction(check_error=True) as txn:
            for port in ports:
                lsp = txn.add(self.api.lsp_add(
                    net.switch, port.port_id, addresses=[port.address],
                    port_security=[port.address], enabled=[True],
                    dhcpv4_options=[dhcp_uuid], external_ids=port.ids))
                txn.add(self.api.pg_add_ports(self.pg, lsp))
        return time.perf_counter() - start

    def write_loop(self, shapes: Shapes, seconds: float, batch: int,
                   first: int) -> dict[str, Any]:
        """Networks (switch + DHCP options, as the gateway writes them) for `seconds`,
        `batch` per transaction, one after the other; rows are built inside the loop, as a
        real client builds them."""
        rows = txns = 0
        index = first
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            nets = []
            for _ in range(batch):
                index += 1
                cidr, gw = gateway_cidr(index % 60000, (10, 0))
                nets.append(network_rows(shapes, DIRECT_TENANT, f"loop-{index}", cidr, gw,
                                         now(), None))
            self.create_networks(nets)
            rows += batch
            txns += 1
        elapsed = time.perf_counter() - start
        return {"rows": rows, "transactions": txns, "seconds": round(elapsed, 2),
                "per_s": round(rows / elapsed, 1), "last": index}

    def cleanup(self) -> int:
        """Delete every row the baselines wrote (their tenant's switches and DHCP options;
        the ports go with their switches), in large transactions."""
        with self.conn.lock:
            switches = [r.name for r in self.api.tables["Logical_Switch"].rows.values()
                        if r.external_ids.get(naming.TENANT) == DIRECT_TENANT]
            dhcps = [r.uuid for r in self.api.tables["DHCP_Options"].rows.values()
                     if r.external_ids.get(naming.TENANT) == DIRECT_TENANT]
        for i in range(0, max(len(switches), len(dhcps)), 2000):
            with self.api.transaction(check_error=True) as txn:
                for name in switches[i:i + 2000]:
                    txn.add(self.api.ls_del(name, if_exists=True))
                for u in dhcps[i:i + 2000]:
                    txn.add(self.api.db_destroy("DHCP_Options", u))
        return len(switches)


# -- the run ----------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    latency: dict[str, list[float]] = field(default_factory=dict)  # "kind op" -> ms
    latency_errors: dict[str, int] = field(default_factory=dict)  # "kind op" -> not expected
    direct: dict[str, list[float]] = field(default_factory=dict)  # "kind how" -> ms per row
    direct_txn: dict[str, list[float]] = field(default_factory=dict)  # batched: ms per txn
    wrk: dict[str, dict[str, Any]] = field(default_factory=dict)  # "who c" -> wrk result
    loops: dict[str, dict[str, Any]] = field(default_factory=dict)  # serial / batched
    cleanup: dict[str, Any] = field(default_factory=dict)
    other_cores: float | None = None


class Suite(Bench):
    tenant = TENANT

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        super().__init__(args, workdir)
        self.restarts = 0
        self.floor: Any = None
        self.tokens: dict[str, str] = {}
        self.ext_id = ""
        self.fixture_nets: dict[str, str] = {}
        self.attach: list[str] = []
        self.result: dict[str, Any] = {"phases": {}, "memory": {}, "ready": {}}
        self.started_at = time.perf_counter()
        self.loop_index = 0
        self.nbctl_uuid: dict[str, str] = {}
        self.cpu_mark = self.cpu()

    # -- processes --
    def new_gateway(self) -> Gateway:
        """`serve` as its defaults run it: only the database, the secret, the port and the
        metrics folder are given (no workers, threads, log level or quotas)."""
        assert self.box is not None
        name = "gateway" if self.restarts == 0 else f"gateway-{self.restarts}"
        secret = self.gateway.secret if self.gateway is not None else None
        self.restarts += 1
        return Gateway(self.workdir, self.box.nb_unix, threads=None, workers=None, env={},
                       name=name, secret=secret, defaults_only=True)

    def our_pids(self) -> list[int]:
        pids = [os.getpid()]
        if self.gateway is not None:
            pids += [self.gateway.pid, *children(self.gateway.pid)]
        if self.box is not None:
            pids.append(self.box.pid)
        if self.direct is not None and self.direct.pid is not None:
            pids.append(self.direct.pid)
        if self.floor is not None:
            pids += [self.floor[0].pid, *children(self.floor[0].pid)]
        return pids

    def cpu(self) -> tuple[float, float]:
        busy, ours = super().cpu()
        t = os.times()  # children we reaped: wrk, ovn-nbctl, stopped gateways
        return busy, ours + t.children_user + t.children_system

    def other_cores(self) -> float:
        """Cores other processes kept busy since the last call (noise in the figures)."""
        before, self.cpu_mark = self.cpu_mark, self.cpu()
        t0 = getattr(self, "_cpu_t", self.started_at)
        self._cpu_t = time.perf_counter()
        seconds = self._cpu_t - t0
        other = (self.cpu_mark[0] - before[0]) - (self.cpu_mark[1] - before[1])
        return round(max(0.0, other) / seconds, 2) if seconds > 0 else 0.0

    def stop(self) -> None:
        if self.floor is not None:
            try:
                bench_http_floor.stop(self.floor[0])
                log(f"flask floor pid {self.floor[0].pid} stopped")
            except Exception as exc:
                log(f"stopping the flask floor failed: {exc!r}")
            self.floor = None
        super().stop()

    def restart_gateway(self, label: str) -> None:
        """Stop `serve` and start it again on the same database; time it to ready."""
        assert self.gateway is not None
        log(f"restarting the gateway ({label})")
        self.gateway.stop()
        self.gateway = self.new_gateway()
        self.result["ready"][label] = self.wait_ready_timed()
        settings = self.read_settings()
        if settings != self.settings:  # the code changed during the run
            self.result.setdefault("settings_changed", {})[label] = settings
            log(f"  WARNING: serve's settings changed since the first start: {settings}")
        for client in (self.client, self.admin):
            if client is not None:
                client.close()
                client.port = self.gateway.port
        log(f"  ready: {self.result['ready'][label]}")

    def wait_ready_timed(self, timeout: float = 900) -> dict[str, Any]:
        """Seconds from starting `serve` to the first /readyz 200, and to every worker
        forked and 10 /readyz 200 in a row on fresh connections (whichever worker takes
        each)."""
        gw = self.gateway
        assert gw is not None
        first = None
        streak = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if gw.proc.poll() is not None:
                raise RuntimeError(f"gateway exited ({gw.proc.returncode}):\n{gw.log_tail()}")
            status = 0
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
                try:
                    conn.request("GET", "/readyz")
                    resp = conn.getresponse()
                    resp.read()
                    status = resp.status
                finally:
                    conn.close()
            elapsed = time.monotonic() - gw.started
            if status == 200:
                if first is None:
                    first = elapsed
                forked = len(gw.worker_pids())
                # every worker forked (or, should the count serve reports differ from the
                # processes it forks, none more for 30 s), then 10 answers in a row
                if forked == gw.workers or (forked and elapsed - first > 30):
                    streak += 1
                    if streak >= 10:
                        if forked != gw.workers:
                            log(f"  WARNING: {forked} workers forked, settings say "
                                f"{gw.workers}")
                        return {"first_200_s": round(first, 2), "all_s": round(elapsed, 2),
                                "workers": forked}
                time.sleep(0.01)
            else:
                streak = 0
                time.sleep(0.05)
        raise RuntimeError(f"gateway not ready within {timeout:.0f} s:\n{gw.log_tail()}")

    def memory(self, label: str) -> None:
        """VmRSS of the master and of every worker, and of ovsdb-server, now."""
        assert self.gateway is not None and self.box is not None
        workers = sorted(self.gateway.worker_pids())
        entry = {"master": rss_kib(self.gateway.pid),
                 "workers": [rss_kib(pid) for pid in workers],
                 "ovsdb_server": rss_kib(self.box.pid)}
        self.result["memory"][label] = entry
        log(f"  RSS {label}: master {mib(entry['master'])}, workers "
            f"{', '.join(mib(w) for w in entry['workers'])} "
            f"(ovsdb-server {mib(entry['ovsdb_server'])})")

    # -- setup --
    def token(self, tenant: str, scope: str = "read write") -> str:
        if tenant not in self.tokens:
            assert self.gateway is not None
            self.tokens[tenant] = mint(self.gateway.secret, tenant, scope, f"run-{tenant}",
                                       24 * 3600)
        return self.tokens[tenant]

    def raise_quotas(self, tenants: list[str]) -> None:
        """Quotas up per tenant through the API (the settings of `serve` stay default)."""
        assert self.admin is not None
        for t in tenants:
            self.admin.call("PATCH", f"/v1/tenants/{t}/quotas", QUOTAS_ALL, headers=MERGE)

    def setup(self) -> None:
        """The sandbox and `serve` on it (timed to ready), clients, quotas and fixtures."""
        self.box = sandbox.start(self.workdir / "nb")
        log(f"sandbox: ovsdb-server pid {self.box.pid} on {self.box.nb_unix}")
        self.gateway = self.new_gateway()
        log(f"gateway: pid {self.gateway.pid} on 127.0.0.1:{self.gateway.port}")
        self.result["ready"]["empty"] = self.wait_ready_timed()
        log(f"gateway ready: {self.result['ready']['empty']}")
        self.admin_token = mint(self.gateway.secret, ADMIN_TENANT, "admin", "run-admin",
                                24 * 3600)
        self.client = Client(self.gateway.port, self.token(TENANT))
        self.admin = Client(self.gateway.port, self.admin_token)
        self.raise_quotas([TENANT, WRK_ONE, *self.wrk_tenants()])
        self.settings = self.read_settings()
        log(f"gateway settings: {self.settings}")
        post = self.post
        self.ext_id = post(self.admin, "/v1/external-networks", {
            "name": "run-ext", "cidr": "172.16.0.0/16", "physical_network": "physnet1"})
        for name, cidr in (("run-ports", "10.240.0.0/16"), ("run-lb", "10.250.0.0/16")):
            self.fixture_nets[name] = post(self.client, "/v1/networks",
                                           {"name": name, "cidr": cidr})
        # the direct baseline and the templates of its rows (a gateway network + port)
        self.direct = Direct(self.box.nb_unix, SuiteDirect)
        net = post(self.client, "/v1/networks", {"name": "run-shape", "cidr": "10.241.0.0/24"})
        port = post(self.client, f"/v1/networks/{net}/ports", {"name": "run-shape"})
        self.capture_shapes(net, port)
        self.memory("empty, fresh start")

    def read_settings(self) -> dict[str, Any]:
        """What `serve` runs with: gateway.config.from_env on the environment it was given
        (the code's own defaults), checked against the worker processes actually forked,
        and whatever the gateway's /metrics says about batching."""
        assert self.gateway is not None
        out = {k: v for k, v in self.gateway.settings.items()
               if not k.startswith(NOT_SETTINGS)}
        out["worker_pids"] = len(self.gateway.worker_pids())
        out["batch_metrics"] = sorted(self.batch_metrics())
        return out

    def metrics_text(self) -> str:
        assert self.gateway is not None
        conn = http.client.HTTPConnection("127.0.0.1", self.gateway.port, timeout=30)
        try:
            conn.request("GET", "/metrics")
            return conn.getresponse().read().decode()
        finally:
            conn.close()

    def batch_metrics(self) -> dict[str, float]:
        """Metrics named *batch* in /metrics (the group commit's), summed over labels;
        histogram buckets left out."""
        out: dict[str, float] = {}
        for name, value in BATCH_METRIC.findall(self.metrics_text()):
            if not name.endswith(("_bucket", "_created")):
                out[name] = out.get(name, 0.0) + float(value)
        return out

    def batch_delta(self, before: dict[str, float]) -> dict[str, float]:
        """What the batch metrics counted since `before`; mean of each histogram."""
        after = self.batch_metrics()
        delta = {k: v - before.get(k, 0.0) for k, v in after.items()}
        for name in list(delta):
            if name.endswith("_count") and delta[name] > 0:
                base = name[:-len("_count")]
                delta[base + "_mean"] = round(delta.get(base + "_sum", 0.0) / delta[name], 2)
        return delta

    def wrk_tenants(self) -> list[str]:
        return [f"wrk-{i:03d}" for i in range(self.args.wrk_tenants)]

    @staticmethod
    def post(client: Client | None, path: str, body: dict[str, Any]) -> str:
        assert client is not None
        doc, _ = client.call("POST", path, body, expect=201)
        return str(doc["id"])

    # -- 1. single-client latency of every kind --
    def create_body(self, kind: str) -> tuple[str, dict[str, Any]]:
        self.serial += 1
        n = self.serial
        if kind == "networks":
            return "/v1/networks", {"name": f"n-{n}", "cidr": gateway_cidr(n % 60000, (10, 0))[0]}
        if kind == "ports":
            return f"/v1/networks/{self.fixture_nets['run-ports']}/ports", {"name": f"p-{n}"}
        if kind == "dns_records":
            return "/v1/dns-records", {"name": f"d-{n}", "fqdn": f"h{n}.run.internal",
                                       "ips": ["10.240.0.5"]}
        if kind == "policies":
            return "/v1/policies", {"name": f"pol-{n}", "selector": {"app": "web"},
                                    "ingress": [{"action": "allow", "protocol": "tcp",
                                                 "ports": [80]}]}
        if kind == "load_balancers":
            vip = f"10.250.{1 + (n // 250) % 250}.{2 + n % 250}"
            return "/v1/load-balancers", {
                "name": f"lb-{n}", "vip": vip, "networks": [self.fixture_nets["run-lb"]],
                "listeners": [{"port": 80, "backend_port": 8080}],
                "backends": [{"ip": "10.250.0.10"}, {"ip": "10.250.0.11"}]}
        if kind == "gateways":
            net = self.attach.pop()
            return "/v1/gateways", {"name": f"g-{n}", "networks": [{"network_id": net}],
                                    "external": {"network_id": self.ext_id}}
        if kind == "floating_ips":
            return "/v1/floating-ips", {"name": f"f-{n}", "external_network_id": self.ext_id}
        if kind == "external_networks":
            m = n % 512
            return "/v1/external-networks", {"name": f"x-{n}",
                                             "cidr": f"198.{18 + m // 256}.{m % 256}.0/24",
                                             "physical_network": "physnet1"}
        raise AssertionError(kind)

    def latency_round(self, phase: PhaseResult | None, k: int) -> None:
        """k of each operation of every kind, kind by kind: create, get, list, patch,
        delete (so the database ends where it started)."""
        assert self.client is not None and self.admin is not None
        for kind in KINDS:
            client = self.admin if kind == "external_networks" else self.client
            coll = COLLECTION[kind]
            if kind == "gateways":
                while len(self.attach) < k:  # networks to attach, one per gateway
                    self.attach.append(self.post(self.client, "/v1/networks", {
                        "name": f"att-{len(self.attach)}-{self.serial}",
                        "cidr": f"10.242.{len(self.attach) % 256}.0/24"}))
                attach_before = list(self.attach)
            samples: dict[str, list[float]] = {op: [] for op in OPS}
            errors: Counter[str] = Counter()

            def timed(op: str, method: str, path: str, body: Any = None, expect: int = 200,
                      headers: dict[str, str] | None = None, client: Client = client,
                      samples: dict[str, list[float]] = samples,
                      errors: Counter[str] = errors) -> Any:
                """One request; an unexpected answer is counted (the first of each
                operation per round is logged), not timed, and the run goes on."""
                try:
                    doc, t = client.call(method, path, body, expect=expect, headers=headers)
                except ApiError as exc:
                    errors[op] += 1
                    if errors[op] == 1:
                        log(f"  ERROR {exc}")
                    return None
                samples[op].append(t * 1000)
                return doc

            ids = []
            for _ in range(k):
                path, body = self.create_body(kind)
                doc = timed("create", "POST", path, body, expect=201)
                if doc is not None:
                    ids.append(doc["id"])
            for i in ids:
                timed("get", "GET", f"/v1/{coll}/{i}")
            for _ in range(k):
                timed("list", "GET", f"/v1/{coll}?limit={LIST_LIMIT}")
            for i in ids:
                timed("patch", "PATCH", f"/v1/{coll}/{i}",
                      {"description": f"patched {self.serial}"}, headers=MERGE)
            for i in ids:
                timed("delete", "DELETE", f"/v1/{coll}/{i}", expect=204)
            if phase is not None:
                for op, count in errors.items():
                    key = f"{kind} {op}"
                    phase.latency_errors[key] = phase.latency_errors.get(key, 0) + count
            if kind == "gateways":
                self.attach = attach_before  # free again
            if phase is not None:
                for op, values in samples.items():
                    phase.latency.setdefault(f"{kind} {op}", []).extend(values)

    def latency(self, phase: PhaseResult) -> None:
        n, rounds = self.args.samples, self.args.rounds
        log(f"[{phase.name}] latency: {n} samples of each operation, {rounds} rounds")
        self.latency_round(None, self.args.warmup)
        sizes = [n // rounds + (1 if r < n % rounds else 0) for r in range(rounds)]
        for r, k in enumerate(sizes):
            self.latency_round(phase, k)
            log(f"  round {r + 1}/{rounds} done")
        for kind in KINDS:
            log("  " + "  ".join(
                f"{kind} {op} {p50(phase.latency[f'{kind} {op}']):.2f}" for op in OPS))
        self.direct_latency(phase)

    # -- 2. the same rows, direct --
    def direct_latency(self, phase: PhaseResult) -> None:
        assert self.direct is not None and self.shapes is not None and self.box is not None
        n = self.args.samples
        log(f"[{phase.name}] direct writes: ovsdbapp 1/txn x {n}, {BATCH}/txn x "
            f"{self.args.batches}, ovn-nbctl x {self.args.nbctl_samples}")

        def new_net(tag: str) -> NetworkRows:
            self.serial += 1
            cidr, gw = gateway_cidr(self.serial % 60000, (10, 0))
            return network_rows(self.shapes, DIRECT_TENANT, f"{tag}-{self.serial}", cidr, gw,
                                now(), None)

        def new_port(net: NetworkRows, index: int) -> Any:
            self.serial += 1
            ip = net.dhcp_options["router"].rsplit(".", 1)[0] + f".{2 + index}"
            return port_rows(self.shapes, net, f"dp-{self.serial}", ip, now())

        # one row per transaction (a port into each network just written)
        for warm in (True, False):
            count = self.args.warmup if warm else n
            nets = []
            for _ in range(count):
                net = new_net("d1")
                seconds, dhcps = self.direct.call("create_networks", [net])
                nets.append((net, dhcps[0]))
                if not warm:
                    phase.direct.setdefault("networks ovsdbapp-1", []).append(seconds * 1000)
            for net, dhcp in nets:
                seconds = self.direct.call("create_ports", net, dhcp, [new_port(net, 0)])
                if not warm:
                    phase.direct.setdefault("ports ovsdbapp-1", []).append(seconds * 1000)
        # BATCH rows per transaction (ports: BATCH ports into one new network)
        for _ in range(self.args.batches):
            nets = [new_net("d32") for _ in range(BATCH)]
            seconds, dhcps = self.direct.call("create_networks", nets)
            phase.direct_txn.setdefault("networks", []).append(seconds * 1000)
            phase.direct.setdefault("networks ovsdbapp-32", []).append(seconds * 1000 / BATCH)
            ports = [new_port(nets[0], i) for i in range(BATCH)]
            seconds = self.direct.call("create_ports", nets[0], dhcps[0], ports)
            phase.direct_txn.setdefault("ports", []).append(seconds * 1000)
            phase.direct.setdefault("ports ovsdbapp-32", []).append(seconds * 1000 / BATCH)
        # ovn-nbctl, one invocation per row
        db = f"--db={self.box.nb_unix}"
        pg = naming.tenant_group_name(DIRECT_TENANT)
        t_nbctl = time.perf_counter()
        for i in range(self.args.nbctl_samples + 2):  # the first two warm up
            if i >= 5 and time.perf_counter() - t_nbctl > self.args.nbctl_budget:
                log(f"  ovn-nbctl: stopped after {i - 2} samples (--nbctl-budget)")
                break
            net = new_net("dn")
            t0 = time.perf_counter()
            out = subprocess.run(
                ["ovn-nbctl", "--no-leader-only", db, "--", "ls-add", net.switch,
                 "--", "set", "Logical_Switch", net.switch,
                 f"external_ids={ovs_map(net.switch_ids)}",
                 "--", "create", "DHCP_Options", f"cidr={net.cidr}",
                 f"options={ovs_map(net.dhcp_options)}",
                 f"external_ids={ovs_map(net.dhcp_ids)}"],
                capture_output=True, text=True, timeout=300)
            t_net = time.perf_counter() - t0
            if out.returncode != 0:
                raise RuntimeError(f"ovn-nbctl failed: {out.stderr.strip()}")
            dhcp = out.stdout.split()[-1]
            port = new_port(net, 0)
            t0 = time.perf_counter()
            out = subprocess.run(
                ["ovn-nbctl", "--no-leader-only", db, "--", "--id=@p", "create",
                 "Logical_Switch_Port", f"name={port.port_id}",
                 f"addresses={ovs_str(port.address)}", f"port_security={ovs_str(port.address)}",
                 "enabled=true", f"dhcpv4_options={dhcp}", f"external_ids={ovs_map(port.ids)}",
                 "--", "add", "Logical_Switch", net.switch, "ports", "@p",
                 "--", "add", "Port_Group", pg, "ports", "@p"],
                capture_output=True, text=True, timeout=300)
            t_port = time.perf_counter() - t0
            if out.returncode != 0:
                raise RuntimeError(f"ovn-nbctl failed: {out.stderr.strip()}")
            if i >= 2:
                phase.direct.setdefault("networks nbctl", []).append(t_net * 1000)
                phase.direct.setdefault("ports nbctl", []).append(t_port * 1000)
        for key, values in phase.direct.items():
            log(f"  {key}: p50 {p50(values):.2f} ms p99 {p99(values):.2f} ms per row")
        removed = self.direct.call("cleanup", timeout=600)
        log(f"  removed the {removed} baseline networks (and their ports)")

    # -- 3. writes/s --
    def throughput(self, phase: PhaseResult) -> None:
        assert self.gateway is not None and self.direct is not None
        d = self.args.duration
        log(f"[{phase.name}] throughput: wrk {d:g} s per run at {self.args.connections} "
            "connections")
        one = [self.token(WRK_ONE)]
        many = [self.token(t) for t in self.wrk_tenants()]

        def loop(how: str, batch: int) -> None:
            assert self.direct is not None
            res = self.direct.call("write_loop", self.shapes, d, batch, self.loop_index,
                                   timeout=d + 300)
            self.loop_index = res["last"]
            phase.loops[how] = res
            log(f"  ovsdbapp {how} ({batch}/txn): {res['per_s']} rows/s")
            removed = self.direct.call("cleanup", timeout=600)
            log(f"  removed the {removed} networks it wrote")

        # the serial client runs before and after the gateway's runs (the machine's load
        # moves); the baseline is the mean of the two
        loop("serial before", 1)
        for who, tokens in (("one", one), (f"{len(many)}", many)):
            for c in self.args.connections:
                tag = f"w{secrets.token_hex(3)}"
                before = self.batch_metrics()
                res = wrk_run(self.workdir, self.gateway.port, "/v1/networks", tokens, c, d, tag)
                res["batch"] = self.batch_delta(before)
                phase.wrk[f"gateway {who} {c}"] = res
                log(f"  gateway, {who} tenant(s), {c} conn: {res['per_s']}/s, "
                    f"non-2xx {res['non_2xx']} {res['status']}, socket errors "
                    f"{res['socket_errors']}, p50 {res['p50_us'] / 1000:.1f} ms, "
                    f"p99 {res['p99_us'] / 1000:.1f} ms, batch {res['batch']}")
                self.delete_networks([WRK_ONE] if who == "one" else self.wrk_tenants(),
                                     phase, f"gateway {who} {c}")
        loop("serial after", 1)
        loop("batched", BATCH)
        a_, b_ = phase.loops["serial before"]["per_s"], phase.loops["serial after"]["per_s"]
        phase.loops["serial"] = {"per_s": round((a_ + b_) / 2, 1), "before": a_, "after": b_}
        if phase.name == "empty":
            self.flask_floor(phase)

    def flask_floor(self, phase: PhaseResult) -> None:
        s = self.settings
        self.floor = bench_http_floor.start(self.workdir, s["workers"], s["threads"])
        try:
            for c in self.args.connections:
                res = wrk_run(self.workdir, self.floor[1], "/", ["-"], c, self.args.duration,
                              f"floor{c}")
                phase.wrk[f"floor {c}"] = res
                log(f"  flask floor ({s['workers']}x{s['threads']}), {c} conn: "
                    f"{res['per_s']}/s, non-2xx {res['non_2xx']}")
        finally:
            bench_http_floor.stop(self.floor[0])
            self.floor = None

    def list_all(self, tenant: str) -> list[str]:
        """Every network id of the tenant (its own token, pages of 1000)."""
        assert self.gateway is not None
        client = Client(self.gateway.port, self.token(tenant))
        ids: list[str] = []
        cursor = ""
        try:
            while True:
                page, _ = client.call("GET", f"/v1/networks?limit=1000{cursor}")
                ids += [item["id"] for item in page["items"]]
                if not page.get("next_cursor"):
                    return ids
                cursor = f"&cursor={page['next_cursor']}"
        finally:
            client.close()

    def delete_networks(self, tenants: list[str], phase: PhaseResult, key: str) -> None:
        """What a wrk run created goes again, through the API, so runs and phases stay
        comparable."""
        assert self.gateway is not None
        t0 = time.perf_counter()
        statuses = Statuses()
        deleted = passes = 0
        for _ in range(5):
            # requests wrk left in flight when it stopped may still commit: list again
            tasks = [("DELETE", f"/v1/networks/{i}", self.token(t), None)
                     for t in tenants for i in self.list_all(t)]
            if not tasks:
                break
            _, st, _ = Pool(self.gateway.port, 16).run(tasks)
            statuses.counts.update(st.counts)
            deleted += len(tasks)
            passes += 1
            time.sleep(0.5)
        seconds = time.perf_counter() - t0
        phase.cleanup[key] = {"deleted": deleted, "seconds": round(seconds, 1),
                              "statuses": dict(statuses.counts), "passes": passes}
        bad = statuses.bad((204,))
        log(f"  deleted its {deleted} networks in {seconds:.1f} s"
            + (f"; NOT 204: {bad} {dict(statuses.counts)}" if bad else ""))

    # -- 4. at size --
    def populate(self) -> dict[str, Any]:
        """--size networks and ports through the gateway, by many concurrent clients, over
        --pop-tenants tenants; ports spread evenly over the networks."""
        assert self.gateway is not None
        ports, networks = self.args.size
        tenants = [f"pop-{i:03d}" for i in range(self.args.pop_tenants)]
        self.raise_quotas(tenants)
        conc = self.args.pop_concurrency
        log(f"populating through the gateway: {networks} networks, {ports} ports, "
            f"{len(tenants)} tenants, {conc} concurrent clients")
        pool = Pool(self.gateway.port, conc)
        t0 = time.perf_counter()
        owner = [tenants[i % len(tenants)] for i in range(networks)]
        tasks: list[tuple[str, str, str, Any]] = [
            ("POST", "/v1/networks", self.token(owner[i]),
             {"name": f"pop-{i}", "cidr": f"10.{64 + i // 256}.{i % 256}.0/24"})
            for i in range(networks)]
        docs, net_status, net_s = pool.run(tasks, "networks")
        ids = [(doc["id"], owner[i]) for i, doc in enumerate(docs) if doc]
        if not ids:
            raise RuntimeError(f"no network created: {dict(net_status.counts)}")
        # port r of every network, then port r+1: concurrent requests hit many tenants
        tasks = [("POST", f"/v1/networks/{ids[i % len(ids)][0]}/ports",
                  self.token(ids[i % len(ids)][1]), {"name": f"pp-{i}"})
                 for i in range(ports)]
        _, port_status, port_s = pool.run(tasks, "ports")
        total = time.perf_counter() - t0
        out = {"networks": networks, "ports": ports, "tenants": len(tenants),
               "concurrency": conc, "seconds": round(total, 1),
               "network_seconds": round(net_s, 1), "port_seconds": round(port_s, 1),
               "rows_per_s": round((networks + ports) / total, 1),
               "network_statuses": dict(net_status.counts),
               "port_statuses": dict(port_status.counts),
               "not_201": net_status.bad((201,)) + port_status.bad((201,))}
        log(f"population: {out}")
        return out

    def foreign(self, count: int) -> dict[str, Any]:
        """`count` Logical_Switch_Ports on switches of another tool (no gateway keys), written
        directly with ovsdbapp in large transactions by a connection that does not read them
        back."""
        assert self.box is not None
        per_switch = 100
        api, conn = nb_api(self.box.nb_unix, blind=("Logical_Switch", "Logical_Switch_Port",
                                                     "DHCP_Options"))
        self.filler = (api, conn)
        t0 = time.perf_counter()
        try:
            for first in range(0, count, 5000):
                chunk = range(first, min(first + 5000, count))

                def write(txn: Any, chunk: range = chunk) -> None:
                    t_ls = api.tables["Logical_Switch"]
                    t_lsp = api.tables["Logical_Switch_Port"]
                    for s in range(chunk.start, chunk.stop, per_switch):
                        lsps = []
                        for j in range(s, min(s + per_switch, chunk.stop)):
                            lsp = txn.insert(t_lsp)
                            lsp.name = f"foreign-{j}"
                            lsp.addresses = [f"0a:00:{j >> 16 & 255:02x}:{j >> 8 & 255:02x}:"
                                             f"{j & 255:02x}:01 192.168.{j >> 8 & 255}."
                                             f"{j & 255}"]
                            lsp.external_ids = {"neutron:device_owner": "compute:nova",
                                                "neutron:port_name": f"vm-{j}"}
                            lsps.append(lsp)
                        ls = txn.insert(t_ls)
                        ls.name = f"foreign-sw-{s // per_switch}"
                        ls.ports = lsps
                        ls.external_ids = {"neutron:network_name": f"net-{s // per_switch}"}

                with api.transaction(check_error=True) as txn:
                    txn.add(_RawInsert(api, write))
        finally:
            conn.stop(timeout=5)
            self.filler = None
        seconds = time.perf_counter() - t0
        log(f"  {count} foreign ports on {-(-count // per_switch)} switches in {seconds:.1f} s")
        return {"ports": count, "switches": -(-count // per_switch), "seconds": round(seconds, 1)}

    # -- the run --
    def phase(self, name: str) -> PhaseResult:
        phase = PhaseResult(name)
        self.result["phases"][name] = phase  # partial figures count if the run stops
        self.other_cores()
        try:
            if "latency" in self.args.only:
                self.latency(phase)
            if "throughput" in self.args.only:
                self.throughput(phase)
        finally:
            phase.other_cores = self.other_cores()
        return phase

    def measure_all(self) -> None:
        self.phase("empty")
        if "latency" in self.args.only or "throughput" in self.args.only:
            self.memory("empty, after the measurements")
        if "scale" not in self.args.only:
            return
        self.result["population"] = self.populate()
        self.memory("at size, after population")
        self.restart_gateway("size")
        self.memory("at size, fresh start")
        self.phase("size")
        if "latency" in self.args.only or "throughput" in self.args.only:
            self.memory("at size, after the measurements")
        if self.args.foreign:
            log(f"adding {self.args.foreign} foreign ports")
            self.result["foreign"] = self.foreign(self.args.foreign)
            self.restart_gateway("foreign")
            self.memory("with foreign rows, fresh start")

    def run(self) -> dict[str, Any]:
        self.result["env"] = environment_line_facts()
        self.result["load_before"] = loadavg()
        self.setup()
        self.result["settings"] = self.settings
        try:
            self.measure_all()
        except (KeyboardInterrupt, Exception) as exc:
            # What was measured so far is still printed, marked as partial; everything is
            # stopped by run_bench as always.
            import traceback

            log("STOPPED EARLY: " + "".join(traceback.format_exception_only(exc)).strip())
            if not isinstance(exc, KeyboardInterrupt):
                log(traceback.format_exc())
            self.result["stopped_early"] = (type(exc).__name__ + ": " + str(exc))[:300]
        with contextlib.suppress(Exception):
            self.result["batch_end"] = self.batch_metrics()
        self.result["load_after"] = loadavg()
        self.result["seconds"] = round(time.perf_counter() - self.started_at, 1)
        return self.result


# -- the table --------------------------------------------------------------------------------


def mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.0f}"


def gateway_tree_hash() -> str:
    """sha1 of every file under gateway/ (names and contents): tells apart runs of the
    same commit with different uncommitted code."""
    digest = hashlib.sha1(usedforsecurity=False)
    for path in sorted((ROOT / "gateway").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:10]


def environment_line_facts() -> dict[str, Any]:
    commit = sh("git", "rev-parse", "--short", "HEAD")
    dirty = bool(sh("git", "status", "--porcelain", "--", "gateway", "pyproject.toml"))
    return {"cores": os.cpu_count(), "cpu": cpu_model(),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": commit + (f" + uncommitted changes (gateway/ sha1 {gateway_tree_hash()})"
                                if dirty else ""),
            "json_parser": json_parser(), "python": platform.python_version()}


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def fmt_ms(values: list[float] | None) -> str:
    if not values:
        return "-"
    return f"{p50(values):.2f} / {p99(values):.2f}"


def size_label(size: tuple[int, int]) -> str:
    def short(n: int) -> str:
        return f"{n / 1000:g}k" if n >= 1000 else str(n)
    return f"{short(size[0])} ports / {short(size[1])} networks"


def markdown(result: dict[str, Any], args: argparse.Namespace) -> str:
    env, st = result["env"], result["settings"]
    phases: dict[str, PhaseResult] = result["phases"]
    empty, size = phases.get("empty"), phases.get("size")
    at = size_label(args.size) if "scale" in args.only else "size (not run: no scale in --only)"
    settings = ", ".join(f"{k} {v}" for k, v in st.items()
                         if k not in ("worker_pids", "batch_metrics"))
    batch_txt = ("batch metrics: " + ", ".join(st["batch_metrics"]) if st["batch_metrics"]
                 else "no batch metric in /metrics")
    lines = [
        f"Machine: {env['cores']} cores, {env['cpu']}; {env['date']}; commit {env['commit']}; "
        f"ovs JSON parser: {env['json_parser']}; gateway: `ovn-nb-gateway serve` with its "
        f"defaults ({settings}; worker processes forked: {st['worker_pids']}; {batch_txt}); load "
        f"average before {result['load_before']}, after {result['load_after']}; run took "
        f"{result['seconds']:.0f} s."
        + "".join(f" **Settings changed before the {label} restart (code changed during the "
                  f"run): {', '.join(f'{k} {v}' for k, v in ch.items() if st.get(k) != v)}.**"
                  for label, ch in result.get("settings_changed", {}).items())
        + (f" **PARTIAL: the run stopped early ({result['stopped_early']}); a dash is a "
           "figure it did not reach.**" if result.get("stopped_early") else ""),
        "",
        f"| figure | empty | at {at} | at size / empty | vs baseline (empty · at size) |",
        "|---|---:|---:|---:|---|",
    ]

    def row(label: str, a: str, b: str, r: str = "-", base: str = "-") -> None:
        lines.append(f"| {label} | {a} | {b} | {r} | {base} |")

    def section(title: str) -> None:
        lines.append(f"| **{title}** | | | | |")

    def lat(ph: PhaseResult | None, key: str, direct: bool = False) -> list[float] | None:
        if ph is None:
            return None
        return (ph.direct if direct else ph.latency).get(key)

    def p50_of(v: list[float] | None) -> float | None:
        return p50(v) if v else None

    if "latency" in args.only:
        section("single client, one request at a time: p50 / p99 ms")
        for kind in KINDS:
            for op in OPS:
                key = f"{kind} {op}"
                e, s = lat(empty, key), lat(size, key)
                base = "-"
                if op == "create" and kind in ("networks", "ports"):
                    dk = f"{kind} ovsdbapp-1"
                    base = (f"{ratio(p50_of(e), p50_of(lat(empty, dk, True)))} · "
                            f"{ratio(p50_of(s), p50_of(lat(size, dk, True)))} "
                            "direct 1/txn p50")
                label = f"{KIND_LABEL[kind]} {op}"
                if op == "list":
                    label += f" (limit {LIST_LIMIT})"
                r = "-"
                if e and s:
                    r = f"{p50(s) / p50(e):.2f} / {p99(s) / p99(e):.2f}"
                def errs(ph: PhaseResult | None, key: str = key) -> str:
                    n = ph.latency_errors.get(key, 0) if ph is not None else 0
                    return f" ({n} errors)" if n else ""
                row(label, fmt_ms(e) + errs(empty), fmt_ms(s) + errs(size), r, base)
        section("same rows written directly, one client: p50 / p99 ms per row")
        names = {"ovsdbapp-1": "ovsdbapp, 1 row per transaction",
                 "ovsdbapp-32": f"ovsdbapp, {BATCH} rows per transaction (per row)",
                 "nbctl": "ovn-nbctl, 1 invocation per row"}
        for kind, what in (("networks", "network (Logical_Switch + DHCP_Options)"),
                           ("ports", "port (Logical_Switch_Port + Port_Group)")):
            for how, name in names.items():
                key = f"{kind} {how}"
                e, s = lat(empty, key, True), lat(size, key, True)
                r = f"{p50(s) / p50(e):.2f} / {p99(s) / p99(e):.2f}" if e and s else "-"
                base = ("baseline" if how == "ovsdbapp-1" else
                        f"{ratio(p50_of(e), p50_of(lat(empty, f'{kind} ovsdbapp-1', True)))} · "
                        f"{ratio(p50_of(s), p50_of(lat(size, f'{kind} ovsdbapp-1', True)))}")
                row(f"{what}: {name}", fmt_ms(e), fmt_ms(s), r, base)
    if "throughput" in args.only:
        section(f"network creates/s under wrk ({args.duration:g} s each; in brackets: non-2xx "
                "and socket errors if any, wrk's p99 latency, mean requests per transaction "
                "from the gateway's batch metric), vs the serial ovsdbapp client")

        def per_s(ph: PhaseResult | None, key: str, loop: bool = False) -> float | None:
            if ph is None:
                return None
            src = ph.loops if loop else ph.wrk
            return src[key]["per_s"] if key in src else None

        def fmt_wrk(ph: PhaseResult | None, key: str) -> str:
            if ph is None or key not in ph.wrk:
                return "-"
            w = ph.wrk[key]
            errs = w["non_2xx"] + w["socket_errors"]
            mean = w.get("batch", {}).get("gateway_ovn_batch_size_mean")
            if mean is None:  # any other batch histogram's mean
                mean = next((v for k, v in w.get("batch", {}).items()
                             if k.endswith("_mean")), None)
            notes = ([f"**{errs} errors**"] if errs else []) + [
                f"p99 {w['p99_us'] / 1000:.0f} ms"] + (
                [f"batch {mean:.1f}"] if mean is not None else [])
            return f"{w['per_s']:.0f}" + (f" ({', '.join(notes)})" if notes else "")

        serial_e, serial_s = per_s(empty, "serial", True), per_s(size, "serial", True)
        who_many = f"{args.wrk_tenants}"
        for who, label in (("one", "1 tenant"), (who_many, f"{args.wrk_tenants} tenants")):
            for c in args.connections:
                key = f"gateway {who} {c}"
                e, s = per_s(empty, key), per_s(size, key)
                row(f"gateway, {label}, {c} connection{'s' if c > 1 else ''}",
                    fmt_wrk(empty, key), fmt_wrk(size, key), ratio(s, e),
                    f"{ratio(e, serial_e)} · {ratio(s, serial_s)}")
        for how, label in (("serial", "ovsdbapp client, 1 row per transaction (rows/s; "
                                      "mean of a run before and one after the gateway's)"),
                           ("batched", f"ovsdbapp client, {BATCH} rows per transaction "
                                       "(rows/s)")):
            e, s = per_s(empty, how, True), per_s(size, how, True)

            def cell(ph: PhaseResult | None, v: float | None, how: str = how) -> str:
                if v is None or ph is None:
                    return "-"
                if how == "serial":  # mean of the runs before and after the gateway's
                    lp = ph.loops["serial"]
                    return f"{v:.0f} ({lp['before']:.0f} before, {lp['after']:.0f} after)"
                return f"{v:.0f}"
            row(label, cell(empty, e), cell(size, s),
                ratio(s, e), "baseline" if how == "serial" else
                f"{ratio(e, serial_e)} · {ratio(s, serial_s)}")
        for c in args.connections:
            key = f"floor {c}"
            e = per_s(empty, key)
            row(f"bare Flask app, same gunicorn settings, {c} connection"
                f"{'s' if c > 1 else ''} (requests/s)", fmt_wrk(empty, key), "-", "-",
                f"{ratio(e, serial_e)} · -")
    if "scale" in args.only:
        mem, ready = result["memory"], result["ready"]
        section("resident memory (VmRSS, MiB) and start-up")

        def mem_cell(label: str, which: str) -> str:
            m = mem.get(label)
            if m is None:
                return "-"
            if which == "workers":
                return " / ".join(mib(w) for w in m["workers"]) or "-"
            return mib(m[which])

        def mem_num(label: str, which: str) -> float | None:
            m = mem.get(label)
            if m is None:
                return None
            vals = m["workers"] if which == "workers" else [m[which]]
            vals = [v for v in vals if v is not None]
            return max(vals) if vals else None

        for which, name in (("master", "gunicorn master"), ("workers", "each worker")):
            e = mem_num("empty, fresh start", which)
            s = mem_num("at size, fresh start", which)
            row(f"{name}, fresh start", mem_cell("empty, fresh start", which),
                mem_cell("at size, fresh start", which), ratio(s, e), "-")
            if "empty, after the measurements" in mem:
                e2 = mem_num("empty, after the measurements", which)
                s2 = mem_num("at size, after the measurements", which)
                row(f"{name}, after the measurements",
                    mem_cell("empty, after the measurements", which),
                    mem_cell("at size, after the measurements", which), ratio(s2, e2), "-")
            row(f"{name}, right after population (not restarted)", "-",
                mem_cell("at size, after population", which), "-", "-")
        row("ovsdb-server, fresh start of the gateway", mem_cell("empty, fresh start",
                                                                 "ovsdb_server"),
            mem_cell("at size, fresh start", "ovsdb_server"), "-", "-")
        re_, rs = ready.get("empty"), ready.get("size")

        def rd(x: dict[str, Any] | None) -> str:
            return "-" if x is None else f"{x['first_200_s']:.2f} s ({x['all_s']:.2f} s)"
        row("`serve` start to first /readyz 200 (all workers, 10 in a row)", rd(re_), rd(rs),
            ratio(rs and rs["first_200_s"], re_ and re_["first_200_s"]), "-")
        pop = result.get("population")
        if pop:
            row(f"population through the gateway ({pop['concurrency']} clients, "
                f"{pop['tenants']} tenants)", "-",
                f"{pop['seconds']:.0f} s ({pop['rows_per_s']:.0f} creates/s"
                + (f"; {pop['not_201']} not 201" if pop["not_201"] else "") + ")", "-", "-")
        if "foreign" in result:
            f = result["foreign"]
            fr = ready.get("foreign")
            fl = "with foreign rows, fresh start"
            label = f"+ {f['ports']:,} foreign ports ({f['switches']} switches, written "
            label += f"directly in {f['seconds']:.0f} s)"
            section(label + ": against the same size without them")
            for which, name in (("master", "gunicorn master"), ("workers", "each worker")):
                s = mem_num("at size, fresh start", which)
                x = mem_num(fl, which)
                row(f"{name}, fresh start", mem_cell("at size, fresh start", which),
                    mem_cell(fl, which), "-", f"{ratio(x, s)} of at size without")
            row("`serve` start to first /readyz 200 (all workers)", rd(rs), rd(fr), "-",
                f"{ratio(fr and fr['first_200_s'], rs and rs['first_200_s'])} of at size "
                "without")
    lines += ["", "Columns: *empty* = fresh database, *at size* = with the population present "
              "(created through the gateway); ratios compare figures of this run only. Other "
              "processes on the machine kept " + ", ".join(
                  f"{ph.other_cores} cores busy ({name})" for name, ph in phases.items()
                  if ph.other_cores is not None) + " while measuring."]
    lines += targets(result, args)
    return "\n".join(lines)


def targets(result: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """Issue 11's targets, each marked met or MISSED on the figures above."""
    phases: dict[str, PhaseResult] = result["phases"]
    out: list[str] = []

    def mark(ok: bool, text: str) -> None:
        out.append(f"- {'met' if ok else '**MISSED**'}: {text}")

    for name, ph in phases.items():
        if ph.wrk and "serial" in ph.loops:
            c = max(args.connections)
            for who in ("one", f"{args.wrk_tenants}"):
                w = ph.wrk.get(f"gateway {who} {c}")
                if w:
                    r = w["per_s"] / ph.loops["serial"]["per_s"]
                    mark(r >= 1.0, f"writes/s at {c} connections ({name}, "
                         f"{'1 tenant' if who == 'one' else who + ' tenants'}) >= 1.0x the "
                         f"serial ovsdbapp client (aim 1.5x): {r:.2f}x")
        for kind in ("networks", "ports"):
            g, d = ph.latency.get(f"{kind} create"), ph.direct.get(f"{kind} ovsdbapp-1")
            if g and d:
                r = p50(g) / p50(d)
                mark(r <= 2.0, f"{kind} create p50 <= 2x the direct transaction ({name}): "
                     f"{r:.2f}x")
    e, s = phases.get("empty"), phases.get("size")
    if e and s and e.latency and s.latency:
        worst = max((p50(s.latency[k]) / p50(e.latency[k]), k) for k in e.latency
                     if k in s.latency)
        mark(worst[0] <= 1.2, f"every p50 at size <= 1.2x empty: worst {worst[1]} "
             f"{worst[0]:.2f}x")
    mem = result["memory"].get("at size, fresh start")
    if mem:
        biggest = max([mem["master"] or 0, *[w or 0 for w in mem["workers"]]])
        mark(biggest <= 300 * 1024, f"<= 300 MiB resident per process at size (fresh start): "
             f"largest {biggest / 1024:.0f} MiB")
    fmem = result["memory"].get("with foreign rows, fresh start")
    if mem and fmem:
        grow = max((f or 0) - (m or 0) for f, m in zip(fmem["workers"], mem["workers"],
                                                       strict=False))
        mark(grow <= 0.05 * max(mem["workers"]) if mem["workers"] else False,
             f"foreign rows add nothing: largest worker grew {max(0, grow) / 1024:.0f} MiB")
    ready = result["ready"].get("size")
    if ready:
        mark(ready["first_200_s"] <= 10, f"ready within 10 s at size: "
             f"{ready['first_200_s']:.2f} s")
    return ["", "Targets (issue 11):", *out] if out else []


# -- command line -----------------------------------------------------------------------------


def parse_size(text: str) -> tuple[int, int]:
    try:
        ports, networks = (int(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError("--size is PORTS:NETWORKS, e.g. 100000:10000") from None
    if ports < 0 or networks < 1:
        raise argparse.ArgumentTypeError("--size needs at least 1 network")
    return ports, networks


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="develop: --size 10000:1000, 30 samples, 3 s wrk runs")
    parser.add_argument("--size", type=parse_size, default=None,
                        help="PORTS:NETWORKS present in the second phase (100000:10000)")
    parser.add_argument("--only", default="latency,throughput,scale",
                        help="comma-separated: latency, throughput, scale (default all)")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds per wrk run and per ovsdbapp loop (10, quick 3)")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    parser.add_argument("--json", default=None, help="write every figure as JSON here")
    parser.add_argument("--samples", type=int, default=None,
                        help="single-client samples per operation (200, quick 30)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (5, quick 2)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed warm-up per operation")
    parser.add_argument("--batches", type=int, default=None,
                        help=f"transactions of {BATCH} rows timed (20, quick 5)")
    parser.add_argument("--nbctl-samples", type=int, default=None,
                        help="ovn-nbctl invocations per row kind (30, quick 10)")
    parser.add_argument("--nbctl-budget", type=float, default=60,
                        help="seconds of ovn-nbctl per phase, after at least 3 samples "
                             "(each invocation reads the whole database: seconds at size)")
    parser.add_argument("--connections", default="1,8,32", help="wrk connection counts")
    parser.add_argument("--wrk-tenants", type=int, default=32,
                        help="tenants the spread wrk runs pick among (default 32)")
    parser.add_argument("--pop-tenants", type=int, default=100,
                        help="tenants the population is spread over (default 100)")
    parser.add_argument("--pop-concurrency", type=int, default=32,
                        help="concurrent clients creating the population (default 32)")
    parser.add_argument("--foreign", type=int, default=None,
                        help="foreign ports added at the end (default: the size's ports; 0: "
                             "skip)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    q = args.quick
    args.size = args.size or ((10_000, 1_000) if q else (100_000, 10_000))
    args.duration = args.duration or (3.0 if q else 10.0)
    args.samples = args.samples or (30 if q else 200)
    args.rounds = args.rounds or (2 if q else 5)
    args.batches = args.batches or (5 if q else 20)
    args.nbctl_samples = args.nbctl_samples or (10 if q else 30)
    args.foreign = args.size[0] if args.foreign is None else args.foreign
    args.only = {x.strip() for x in args.only.split(",") if x.strip()}
    if not args.only <= {"latency", "throughput", "scale"} or not args.only:
        parser.error("--only takes latency, throughput, scale (comma-separated)")
    try:
        args.connections = [int(c) for c in args.connections.split(",")]
    except ValueError:
        parser.error("--connections is a comma-separated list of integers")
    if args.samples < args.rounds or min(args.connections) < 1:
        parser.error("--samples must be >= --rounds, connections >= 1")
    if "throughput" in args.only and not Path("/usr/bin/wrk").exists() and \
            shutil.which("wrk") is None:
        parser.error("wrk is not installed (apt-get install wrk)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    result = run_bench(lambda workdir: Suite(args, workdir), "ovngw-run-", args.keep)
    if result is None:
        return 130
    table = markdown(result, args)
    print(table, flush=True)
    if args.out:
        Path(args.out).write_text(table + "\n")
    if args.json:
        def default(o: Any) -> Any:
            if isinstance(o, PhaseResult):
                return o.__dict__
            return str(o)
        data = {**result, "args": {k: (sorted(v) if isinstance(v, set) else v)
                                   for k, v in vars(args).items()}}
        Path(args.json).write_text(json.dumps(data, indent=1, default=default) + "\n")
    log(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Resident memory and time to ready of a gateway process at scale (issue 11, item 3/5).

    .venv/bin/python benchmarks/scale_probe.py --ports 10000            # develop
    .venv/bin/python benchmarks/scale_probe.py --ports 100000 --foreign 100000

One run, in --dir (default: a fresh folder under /tmp):
1. starts a northbound sandbox (gateway.sandbox) and measures `ovn-nb-gateway serve` (one
   worker) on the empty database: time from exec to `/readyz` 200, RSS of the worker;
2. writes --networks networks and --ports ports (spread evenly) through the gateway's own
   services in this process: the very code the API runs (bodies loaded by the API's
   schemas, Resource.create), only many creates per OVSDB transaction (one port per network
   per transaction, so address allocation sees every earlier port); the rows are exactly the
   ones the API writes;
3. restarts `serve` --restarts times and reports the same figures; then, with --foreign N,
   adds N rows another tool wrote (switches with ports, neutron-like, none of our stamps)
   and measures again.
--inprocess also builds the replica inside this process (time, RSS delta, and with
--tracemalloc the top allocation sites). --keep leaves the sandbox running (stop it with
`ovn-nb-gateway sandbox stop --dir DIR/nb`); --reuse DIR measures a database filled before.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from ovs.db import idl as ovs_idl
from ovsdbapp.backend.ovs_idl import idlutils

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api import Gateway, log, rss_kib

from gateway import kinds, sandbox
from gateway.api import networks as networks_api
from gateway.api import ports as ports_api
from gateway.app import monitored
from gateway.auth import Principal
from gateway.config import Settings
from gateway.ovn.connection import Northbound
from gateway.services.catalog import Services
from gateway.services.networks import NetworkService
from gateway.services.ports import PortService

SCHEMA = "OVN_Northbound"
BIG = 10_000_000


def self_rss_kib() -> int:
    return rss_kib(os.getpid()) or 0


# -- filling through the services ---------------------------------------------------------------


class Filler:
    """The gateway's services in this process, committing many creates per transaction."""

    def __init__(self, remote: str) -> None:
        quotas = {k: BIG for k in Settings().quotas}
        self.settings = Settings(nb_db=remote, jwt_secret="x" * 32, quotas=quotas)
        self.nb = Northbound(self.settings, monitored())
        # Every kind, as the app has them: their hooks run on each create, as in the API.
        self.services = Services(self.nb, self.settings, [k.service for k in kinds.KINDS])
        self.nb.start()
        if not self.nb.wait_ready(120):
            raise RuntimeError("the filler's replica did not sync")
        self.net_schema = networks_api.KIND.schema()
        self.port_schema = ports_api.KIND.schema()

    def batch(self, calls: list[Any], what: str) -> None:
        """Run the creates' transaction functions one after the other in one transaction."""
        fns: list[Any] = []
        self.nb.transact = lambda fn, operation="write": fns.append(fn)  # type: ignore
        try:
            for call in calls:
                call()
        finally:
            del self.nb.transact
        self.nb.transact(lambda t: [fn(t) for fn in fns], what)

    def fill(self, networks: int, ports: int, tenants: int, batch: int) -> list[str]:
        nets = self.services.of(NetworkService)
        port_service = self.services.of(PortService)
        principals = [Principal(f"probe-{i}", f"probe-{i}", frozenset({"read", "write"}))
                      for i in range(tenants)]
        start = time.perf_counter()
        net_ids: list[tuple[Principal, str]] = []
        for first in range(0, networks, batch):
            calls = []
            for i in range(first, min(first + batch, networks)):
                who = principals[i % tenants]
                body = self.net_schema.load({
                    "name": f"net-{i}", "cidr": f"10.{(i >> 8) & 255}.{i & 255}.0/24"
                    if i < 65536 else f"172.{16 + (i >> 16)}.{(i >> 8) & 255}.0/24"})
                calls.append(lambda who=who, body=body: nets.create(who, body))
            self.batch(calls, "probe_networks")
        for entry in self.nb.index("Logical_Switch").entries("network"):
            net_ids.append((next(p for p in principals if p.tenant == entry.tenant), entry.id))
        log(f"{len(net_ids)} networks in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        done = 0
        per_round = min(batch, len(net_ids))
        while done < ports:
            calls = []
            for k in range(min(per_round, ports - done)):
                who, net_id = net_ids[(done + k) % len(net_ids)]
                body = self.port_schema.load({"name": f"port-{done + k}",
                                              "labels": {"app": f"a{(done + k) % 7}"}})
                calls.append(lambda who=who, body=body, net_id=net_id:
                             port_service.create(who, body, parent_id=net_id))
            self.batch(calls, "probe_ports")
            done += len(calls)
            if done % 10000 < per_round:
                log(f"{done} ports ({time.perf_counter() - start:.1f} s)")
        return [n for _, n in net_ids]

    def stop(self) -> None:
        self.nb.stop()


# -- rows another tool wrote ---------------------------------------------------------------------


def foreign_fill(remote: str, rows: int, batch: int = 2000) -> None:
    """`rows` rows without our stamps: switches of ten ports each, as neutron writes them
    (the writer replicates them too: a short-lived process of its own is fine)."""
    helper = idlutils.get_schema_helper(remote, SCHEMA)
    for table in ("Logical_Switch", "Logical_Switch_Port"):
        helper.register_table(table)
    idl = ovs_idl.Idl(remote, helper)
    deadline = time.monotonic() + 60
    while idl.state != idl.IDL_S_MONITORING:
        idl.run()
        if time.monotonic() > deadline:
            raise RuntimeError("foreign writer could not connect")
        time.sleep(0.01)
    written = 0
    tag = uuid.uuid4().hex[:6]
    while written < rows:
        txn = ovs_idl.Transaction(idl)
        count = min(batch, rows - written)
        n = written
        while n < written + count:  # a switch, then up to ten of its ports
            ls = txn.insert(idl.tables["Logical_Switch"])
            ls.name = f"neutron-{uuid.uuid4()}"
            ls.external_ids = {"neutron:network_name": f"other-{tag}-{n}",
                               "neutron:revision_number": "2", "neutron:mtu": "1442"}
            n += 1
            ports = []
            for _ in range(min(10, written + count - n)):
                lsp = txn.insert(idl.tables["Logical_Switch_Port"])
                mac = "fa:16:3e:" + ":".join(f"{b:02x}" for b in uuid.uuid4().bytes[:3])
                address = f"{mac} 192.168.{(n >> 8) & 255}.{n & 255}"
                lsp.name = str(uuid.uuid4())
                lsp.addresses = [address]
                lsp.port_security = [address]
                lsp.external_ids = {
                    "neutron:cidrs": f"192.168.{(n >> 8) & 255}.{n & 255}/24",
                    "neutron:device_id": str(uuid.uuid4()), "neutron:device_owner": "compute:nova",
                    "neutron:network_name": f"other-{tag}", "neutron:port_name": "",
                    "neutron:project_id": tag, "neutron:revision_number": "4",
                    "neutron:security_group_ids": str(uuid.uuid4())}
                ports.append(lsp)
                n += 1
            ls.ports = ports
        status = txn.commit_block()
        if status not in (txn.SUCCESS, txn.UNCHANGED):
            raise RuntimeError(f"foreign rows: {status} {txn.get_error()}")
        written += count
    idl.close()
    log(f"{rows} foreign rows written")


# -- measuring ------------------------------------------------------------------------------------


def serve_figures(workdir: Path, remote: str, restarts: int, label: str) -> dict[str, Any]:
    ready, rss, master = [], [], []
    for i in range(restarts):
        run_dir = Path(tempfile.mkdtemp(prefix=f"serve-{label}-{i}-", dir=workdir))
        start = time.perf_counter()
        gw = Gateway(run_dir, remote, 4)
        try:
            gw.wait_ready(300)
            ready.append(time.perf_counter() - start)
            time.sleep(1.0)  # let the worker settle after its first requests
            rss.append((rss_kib(gw.worker_pid()) or 0) / 1024)
            master.append((rss_kib(gw.pid) or 0) / 1024)
        finally:
            gw.stop()
    out = {"ready_s": round(statistics.median(ready), 2), "ready_all": [round(r, 2) for r in ready],
           "worker_rss_mib": round(statistics.median(rss), 1),
           "master_rss_mib": round(statistics.median(master), 1)}
    log(f"[{label}] serve: ready {out['ready_all']} s, worker RSS {out['worker_rss_mib']} MiB,"
        f" master RSS {out['master_rss_mib']} MiB")
    return out


def inprocess_figures(remote: str, trace: bool, label: str) -> dict[str, Any]:
    """Build the replica in this process: what the index and the IDL cost, alone."""
    import tracemalloc
    gc.collect()
    before = self_rss_kib()
    if trace:
        tracemalloc.start(8)
    settings = Settings(nb_db=remote, jwt_secret="x" * 32)
    nb = Northbound(settings, monitored())
    start = time.perf_counter()
    nb.start()
    if not nb.wait_ready(600):
        raise RuntimeError("in-process replica did not sync")
    took = time.perf_counter() - start
    gc.collect()
    after = self_rss_kib()
    out: dict[str, Any] = {"ready_s": round(took, 2),
                           "rss_delta_mib": round((after - before) / 1024, 1),
                           "rows": {t: len(nb.idl.tables[t].rows) for t in nb.replica.tables}}
    if trace:
        snap = tracemalloc.take_snapshot()
        tracemalloc.stop()
        top = snap.statistics("lineno")[:15]
        out["top"] = [f"{s.size / 1048576:.1f} MiB {s.count} {s.traceback[0]}" for s in top]
        for line in out["top"]:
            log("  " + line)
    nb.stop()
    log(f"[{label}] in process: ready {out['ready_s']} s, +{out['rss_delta_mib']} MiB")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ports", type=int, default=10000)
    parser.add_argument("--networks", type=int, default=None, help="default: ports / 10")
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--foreign", type=int, default=0, help="rows another tool wrote")
    parser.add_argument("--batch", type=int, default=500, help="creates per transaction")
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="--dir holds a filled database")
    parser.add_argument("--keep", action="store_true", help="leave the sandbox running")
    parser.add_argument("--inprocess", action="store_true")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--skip-empty", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--serve-pythonpath", default=None,
                        help="measure `serve` with the gateway package found here (another "
                        "version's tree, e.g. from `git archive`); the fill uses this one")
    args = parser.parse_args()
    if args.serve_pythonpath:
        os.environ["PYTHONPATH"] = args.serve_pythonpath
    networks = args.networks if args.networks is not None else max(1, args.ports // 10)
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="scale-probe-"))
    workdir.mkdir(parents=True, exist_ok=True)
    import ovs.json
    results: dict[str, Any] = {"ports": args.ports, "networks": networks,
                               "serve_pythonpath": args.serve_pythonpath,
                               "foreign": args.foreign, "json_parser": ovs.json.PARSER}
    box = sandbox.start(workdir / "nb")
    log(f"sandbox: ovsdb-server pid {box.pid} on {box.nb_unix}; json parser {ovs.json.PARSER}")
    try:
        if not args.reuse:
            if not args.skip_empty:
                results["empty"] = serve_figures(workdir, box.nb_unix, args.restarts, "empty")
            filler = Filler(box.nb_unix)
            try:
                filler.fill(networks, args.ports, args.tenants, args.batch)
            finally:
                filler.stop()
        results["filled"] = serve_figures(workdir, box.nb_unix, args.restarts, "filled")
        if args.inprocess:
            results["filled_inprocess"] = inprocess_figures(box.nb_unix, args.tracemalloc,
                                                            "filled")
        if args.foreign:
            foreign_fill(box.nb_unix, args.foreign)
            results["foreign"] = serve_figures(workdir, box.nb_unix, args.restarts, "foreign")
            if args.inprocess:
                results["foreign_inprocess"] = inprocess_figures(box.nb_unix, False, "foreign")
    finally:
        if not args.keep:
            sandbox.stop(box.dir)
            log(f"sandbox stopped ({box.dir})")
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()

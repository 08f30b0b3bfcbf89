#!/usr/bin/env python3
"""Gateways and floating IPs through a real gateway process, empty and with 1,000 floating IPs.

One run starts its own northbound sandbox and `ovn-nb-gateway serve` (one worker, as
bench_api.py does: its process, client and cleanup are reused from there), then measures,
with one keep-alive client and strictly sequential requests:

  - POST /v1/gateways with 10 attached networks and an external network with SNAT, and the
    DELETE of that gateway (the same 10 networks are attached again every time);
  - POST /v1/floating-ips with a port_id, and its DELETE (the same port every time);
  - PATCH /v1/floating-ips/{id} moving one floating IP between two ports;

first with no other floating IP on the external network, then again after the same tenant
allocated 1,000 unassigned floating IPs there (--fips), and prints p50/p99 of both and the
ratio as a Markdown table.

    .venv/bin/python benchmarks/bench_gateways.py [--samples 300] [--fips 1000] [--out r.json]

See benchmarks/README.md for what the figures mean.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_api import Bench, Client, environment, log, run_bench, summary

TENANT = "bench-gw"
ADMIN_TENANT = "bench-admin"
EXT_CIDR = "172.16.0.0/16"  # 65,533 allocatable addresses: room for any --fips
MERGE = {"Content-Type": "application/merge-patch+json"}
QUOTAS = {"floating_ips": 1_000_000, "ports": 1_000_000, "networks": 1_000_000,
          "gateways": 1_000_000}

# Operation keys in table order; the value is the table label.
OPS: dict[str, str] = {
    "create_gateway": "POST /v1/gateways (N networks + external, SNAT)",
    "delete_gateway": "DELETE /v1/gateways/{id}",
    "create_fip": "POST /v1/floating-ips (with port_id)",
    "delete_fip": "DELETE /v1/floating-ips/{id}",
    "move_fip": "PATCH /v1/floating-ips/{id} {port_id} (re-associate)",
}
# Which server-side observation belongs to which operation of a block:
# HTTP method -> op, and prefix of the OVN transaction's operation label -> op.
BLOCKS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "gateway": ({"POST": "create_gateway", "DELETE": "delete_gateway"},
                {"create_": "create_gateway", "delete_": "delete_gateway"}),
    "fip": ({"POST": "create_fip", "DELETE": "delete_fip"},
            {"create_": "create_fip", "delete_": "delete_fip"}),
    "move": ({"PATCH": "move_fip"}, {"update_": "move_fip"}),
}


@dataclass
class Phase:
    name: str
    samples: dict[str, list[float]] = field(default_factory=dict)  # op -> ms
    server: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # op->kind->[s, n]
    seconds: float = 0.0
    foreign_cpu: dict[str, float] = field(default_factory=dict)


class GatewayBench(Bench):
    """bench_api.Bench without the direct baseline and the fill: its stop(), scrape() and
    CPU accounting are used as they are."""

    tenant = TENANT

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        super().__init__(args, workdir)
        self.ext_id = ""
        self.attach_ids: list[str] = []  # the networks every measured gateway attaches
        self.fip_ports: list[str] = []  # [create port, move port A, move port B]
        self.moving_fip = ""
        self.moves = 0
        self.seed_stats: dict[str, Any] = {}

    # -- setup --
    def start(self) -> None:
        self.start_gateway()  # no direct-ovsdbapp baseline here

    def post(self, path: str, body: dict[str, Any], client: Client | None = None) -> str:
        doc, _ = (client or self.client).call("POST", path, body, expect=201)  # type: ignore[union-attr]
        return str(doc["id"])

    def prepare(self) -> None:
        """External network, quotas, the networks to attach and the floating IP setup."""
        assert self.admin is not None
        self.admin.call("PATCH", f"/v1/tenants/{TENANT}/quotas", QUOTAS, headers=MERGE)
        self.ext_id = self.post("/v1/external-networks", {
            "name": "ext", "cidr": EXT_CIDR, "physical_network": "physnet1"}, self.admin)
        self.attach_ids = [self.post("/v1/networks", {"name": f"attach-{i}",
                                                      "cidr": f"10.1.{i}.0/24"})
                           for i in range(self.args.networks)]
        # the floating IPs' ports sit on a network of a gateway of their own
        net = self.post("/v1/networks", {"name": "fip-net", "cidr": "10.200.0.0/24"})
        self.post("/v1/gateways", {"name": "fip-gw", "networks": [{"network_id": net}],
                                   "external": {"network_id": self.ext_id}})
        self.fip_ports = [self.post(f"/v1/networks/{net}/ports", {"name": f"fip-port-{i}"})
                          for i in range(3)]
        self.moving_fip = self.post("/v1/floating-ips", {
            "name": "moving", "external_network_id": self.ext_id,
            "port_id": self.fip_ports[1]})

    # -- the operations (each returns client seconds) --
    def gateway_cycle(self) -> tuple[float, float]:
        assert self.client is not None
        self.serial += 1
        doc, created = self.client.call("POST", "/v1/gateways", {
            "name": f"gw-{self.serial}",
            "networks": [{"network_id": n} for n in self.attach_ids],
            "external": {"network_id": self.ext_id}}, expect=201)
        if len(doc["networks"]) != len(self.attach_ids) or not doc["external"].get("ip"):
            raise RuntimeError(f"unexpected gateway document: {doc}")
        _, deleted = self.client.call("DELETE", f"/v1/gateways/{doc['id']}", expect=204)
        return created, deleted

    def fip_cycle(self) -> tuple[float, float]:
        assert self.client is not None
        self.serial += 1
        doc, created = self.client.call("POST", "/v1/floating-ips", {
            "name": f"fip-{self.serial}", "external_network_id": self.ext_id,
            "port_id": self.fip_ports[0]}, expect=201)
        if not doc.get("gateway_id"):
            raise RuntimeError(f"floating IP not associated: {doc}")
        _, deleted = self.client.call("DELETE", f"/v1/floating-ips/{doc['id']}", expect=204)
        return created, deleted

    def move(self) -> float:
        assert self.client is not None
        self.moves += 1
        port = self.fip_ports[1 + self.moves % 2]
        doc, elapsed = self.client.call("PATCH", f"/v1/floating-ips/{self.moving_fip}",
                                        {"port_id": port}, headers=MERGE)
        if doc["port_id"] != port:
            raise RuntimeError(f"re-associate did not move: {doc}")
        return elapsed

    # -- measurement --
    def block(self, phase: Phase, kind: str, k: int) -> None:
        """k iterations of one kind of operation, with the gateway's own view of them."""
        methods, txns = BLOCKS[kind]
        before = self.scrape()
        for _ in range(k):
            if kind == "move":
                phase.samples.setdefault("move_fip", []).append(self.move() * 1000)
                continue
            created, deleted = self.gateway_cycle() if kind == "gateway" else self.fip_cycle()
            ops = list(methods.values())
            phase.samples.setdefault(ops[0], []).append(created * 1000)
            phase.samples.setdefault(ops[1], []).append(deleted * 1000)
        for key, (total, count) in self.scrape().items():
            t_before, c_before = before.get(key, (0.0, 0.0))
            if round(count - c_before) != k or key[-1] == "/metrics":
                continue
            if key[0] == "http":
                op = methods.get(key[1])
            else:
                op = next((o for p, o in txns.items() if key[1].startswith(p)), None)
            if op is not None:
                acc = phase.server.setdefault(op, {}).setdefault(key[0], [0.0, 0.0])
                acc[0] += total - t_before
                acc[1] += count - c_before

    def measure(self, phase: Phase) -> None:  # type: ignore[override]
        n, rounds = self.args.samples, self.args.rounds
        sizes = [n // rounds + (1 if r < n % rounds else 0) for r in range(rounds)]
        assert self.client is not None
        self.client.close()  # a fresh connection (the last one may have idled out)
        for _ in range(self.args.warmup):
            self.gateway_cycle()
            self.fip_cycle()
            self.move()
        t0, cpu0 = time.perf_counter(), self.cpu()
        for k in sizes:  # interleaved, so that background load hits every operation alike
            for kind in BLOCKS:
                self.block(phase, kind, k)
        phase.seconds = time.perf_counter() - t0
        phase.foreign_cpu = self.foreign_cpu(cpu0, self.cpu(), phase.seconds)
        for op in OPS:
            s = summary(phase.samples[op])
            log(f"  {phase.name:6} {op:15} p50 {s['p50_ms']:7.2f} ms  p99 {s['p99_ms']:7.2f} ms")

    def seed(self) -> None:
        """--fips unassigned floating IPs on the same external network, same tenant."""
        assert self.client is not None and self.admin is not None
        t0 = time.perf_counter()
        deadline = t0 + self.args.seed_timeout
        times: list[float] = []
        for i in range(self.args.fips):
            if time.perf_counter() > deadline:
                raise RuntimeError(f"seeding stopped after {i} floating IPs: slower than "
                                   f"--seed-timeout {self.args.seed_timeout:.0f} s")
            _, elapsed = self.client.call("POST", "/v1/floating-ips", {
                "name": f"seed-{i}", "external_network_id": self.ext_id}, expect=201)
            times.append(elapsed * 1000)
        usage, _ = self.admin.call("GET", f"/v1/tenants/{TENANT}/usage")
        tenth = max(1, len(times) // 10)
        self.seed_stats = {
            "fips": self.args.fips, "seconds": round(time.perf_counter() - t0, 1),
            "first_tenth_p50_ms": round(statistics.median(times[:tenth]), 2) if times else None,
            "last_tenth_p50_ms": round(statistics.median(times[-tenth:]), 2) if times else None,
            "tenant_floating_ips": usage["floating_ips"]}
        log(f"seeded: {self.seed_stats}")

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.start()
        self.prepare()
        empty, filled = Phase("empty"), Phase("filled")
        log(f"measuring, no other floating IPs ({self.args.samples} samples each)")
        self.measure(empty)
        log(f"seeding {self.args.fips} unassigned floating IPs")
        self.seed()
        log(f"measuring, {self.args.fips} floating IPs")
        self.measure(filled)
        return self.report(empty, filled, time.perf_counter() - started)

    def report(self, empty: Phase, filled: Phase,  # type: ignore[override]
               seconds: float) -> dict[str, Any]:
        ops: dict[str, Any] = {}
        for op, label in OPS.items():
            entry: dict[str, Any] = {"label": label}
            for phase in (empty, filled):
                entry[phase.name] = summary(phase.samples[op])
                for kind, (total, count) in phase.server.get(op, {}).items():
                    entry[phase.name][f"{kind}_mean_ms"] = round(total / count * 1000, 3)
            entry["ratio_p50"] = round(entry["filled"]["p50_ms"] / entry["empty"]["p50_ms"], 3)
            entry["ratio_p99"] = round(entry["filled"]["p99_ms"] / entry["empty"]["p99_ms"], 3)
            ops[op] = entry
        assert self.client is not None and self.admin is not None
        return {
            "ops": ops, "seed": self.seed_stats, "total_seconds": round(seconds, 1),
            "phase_seconds": {"empty": round(empty.seconds, 1),
                              "filled": round(filled.seconds, 1)},
            "other_processes_cpu": {"empty": empty.foreign_cpu, "filled": filled.foreign_cpu},
            "config": {k: v for k, v in vars(self.args).items() if k != "out"},
            "client_reconnects": self.client.reconnects + self.admin.reconnects,
            "environment": environment(),
            "samples_ms": {p.name: {op: [round(x, 3) for x in p.samples[op]] for op in OPS}
                           for p in (empty, filled)},
        }


def opt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown(result: dict[str, Any], fips: int, networks: int) -> str:
    big = f"{fips:,} FIPs"
    lines = [f"| operation | empty p50 | empty p99 | {big} p50 | {big} p99 "
             f"| ratio p50 (p99) |", "|---|---:|---:|---:|---:|---:|"]
    for op in result["ops"].values():
        e, f = op["empty"], op["filled"]
        label = op["label"].replace("N networks", f"{networks} networks")
        lines.append(f"| {label} | {e['p50_ms']:.2f} ms | {e['p99_ms']:.2f} ms "
                     f"| {f['p50_ms']:.2f} ms | {f['p99_ms']:.2f} ms "
                     f"| {op['ratio_p50']:.2f} ({op['ratio_p99']:.2f}) |")
    lines += ["", "Where the time goes (means in ms; handler = "
              "gateway_http_request_duration_seconds, OVN txn = "
              "gateway_ovn_transaction_duration_seconds):", "",
              "| operation | phase | client | handler | OVN txn |", "|---|---|---:|---:|---:|"]
    for key, op in result["ops"].items():
        for phase, name in (("empty", "empty"), ("filled", big)):
            fig = op[phase]
            lines.append(f"| {key} | {name} | {fig['mean_ms']:.2f} "
                         f"| {opt(fig.get('http_mean_ms'))} | {opt(fig.get('ovn_mean_ms'))} |")
    seed, other = result["seed"], result["other_processes_cpu"]
    lines += ["", f"Seed: {seed['fips']} unassigned floating IPs in {seed['seconds']} s "
              f"(create p50 {seed['first_tenth_p50_ms']} ms over the first tenth, "
              f"{seed['last_tenth_p50_ms']} ms over the last); the tenant then held "
              f"{seed['tenant_floating_ips']}.",
              f"Other processes kept {other['empty']['cores_busy']} (empty) and "
              f"{other['filled']['cores_busy']} ({big}) cores busy while measuring.",
              f"Samples per figure: {result['ops']['create_gateway']['empty']['n']}; "
              f"run took {result['total_seconds']} s."]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=300, help="samples per figure")
    parser.add_argument("--rounds", type=int, default=10,
                        help="rounds the samples of each figure are split over")
    parser.add_argument("--warmup", type=int, default=10,
                        help="untimed cycles of every operation before each phase")
    parser.add_argument("--fips", type=int, default=1000,
                        help="floating IPs allocated before the second phase")
    parser.add_argument("--networks", type=int, default=10,
                        help="networks attached to each measured gateway (at most 64)")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads (1 worker)")
    parser.add_argument("--seed-timeout", type=float, default=300,
                        help="give up if seeding the floating IPs takes longer (seconds)")
    parser.add_argument("--out", default=None, help="also write every figure as JSON here")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (gateway.log, database) after the run")
    args = parser.parse_args(argv)
    if args.samples < 1 or args.warmup < 0 or not 1 <= args.rounds <= args.samples:
        parser.error("--samples >= 1, --warmup >= 0, --rounds 1..samples")
    if not 1 <= args.networks <= 64 or not 0 <= args.fips <= 60_000:
        parser.error("--networks 1..64, --fips 0..60000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run_bench(lambda workdir: GatewayBench(args, workdir), "ovngw-bgw-", args.keep)
    if result is None:
        return 130
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result, args.fips, args.networks))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())

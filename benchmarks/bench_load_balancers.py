#!/usr/bin/env python3
"""Load balancers through a real gateway process: create with 1, 100 and 1,000 backends, and
adding one backend to a load balancer of 10 and of 1,000 backends.

One run starts its own northbound sandbox and `ovn-nb-gateway serve` (process, client and
cleanup from bench_api.py, set up as bench_gateways.py does), then measures with one
keep-alive client and strictly sequential requests, interleaving the operations in rounds
so that background load hits each alike, and prints p50/p99 as a Markdown table.

    .venv/bin/python benchmarks/bench_load_balancers.py [--samples 60] [--big 1000]

Adding a backend either with POST /v1/load-balancers/{id}/backends (the one backend) or as
a merge patch of `backends` (arrays are replaced whole, so the request carries, and the
gateway validates and answers, the whole list); the OVN write is the `vips` map either way.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from bench_api import run_bench, summary
from bench_gateways import GatewayBench

MERGE = {"Content-Type": "application/merge-patch+json"}
QUOTAS = {"load_balancers": 1_000_000, "networks": 1_000}


def backends(n: int, offset: int = 0) -> list[dict[str, Any]]:
    """n addresses of 10.0.0.0/16, from 10.0.1.0 on."""
    return [{"ip": f"10.0.{1 + (offset + i) // 250}.{1 + (offset + i) % 250}"}
            for i in range(n)]


class LoadBalancerBench(GatewayBench):
    def prepare(self) -> None:  # type: ignore[override]
        assert self.admin is not None
        self.admin.call("PATCH", f"/v1/tenants/{self.tenant}/quotas", QUOTAS, headers=MERGE)
        self.network = self.post("/v1/networks", {"name": "lb-net", "cidr": "10.0.0.0/16"})
        self.small = self.post("/v1/load-balancers", {
            "name": "small", "vip": "10.0.0.200", "networks": [self.network],
            "listeners": [{"port": 80, "backend_port": 8080}], "backends": backends(10)})
        self.big = self.post("/v1/load-balancers", {
            "name": "big", "vip": "10.0.0.201", "networks": [self.network],
            "listeners": [{"port": 80, "backend_port": 8080}],
            "backends": backends(self.args.big)})
        self.extra = 0

    def create(self, n: int) -> float:
        client = self.client
        assert client is not None
        self.serial += 1
        doc, created = client.call("POST", "/v1/load-balancers", {
            "name": f"lb-{self.serial}", "vip": f"10.0.0.{10 + self.serial % 180}",
            "listeners": [{"port": 80, "backend_port": 8080}], "backends": backends(n)},
            expect=201)
        client.call("DELETE", f"/v1/load-balancers/{doc['id']}", expect=204)
        return created

    def post_one(self, lb_id: str) -> float:
        """POST /backends adding one, then (untimed) DELETE of it."""
        client = self.client
        assert client is not None
        self.extra += 1
        (backend,) = backends(1, 60_000 // 2 + self.extra % 100)
        _, elapsed = client.call("POST", f"/v1/load-balancers/{lb_id}/backends", backend,
                                 expect=201)
        client.call("DELETE", f"/v1/load-balancers/{lb_id}/backends/{backend['ip']}",
                    expect=204)
        return elapsed

    def add_one(self, lb_id: str, n: int) -> float:
        """PATCH adding one backend to n, then (untimed) back to n."""
        client = self.client
        assert client is not None
        self.extra += 1
        grown = backends(n) + backends(1, 60_000 // 2 + self.extra % 100)
        _, elapsed = client.call("PATCH", f"/v1/load-balancers/{lb_id}", {"backends": grown},
                                 headers=MERGE)
        client.call("PATCH", f"/v1/load-balancers/{lb_id}", {"backends": backends(n)},
                    headers=MERGE)
        return elapsed

    def run(self) -> dict[str, Any]:  # type: ignore[override]
        self.start()
        self.prepare()
        ops = {f"POST, {n} backends": (lambda n=n: self.create(n)) for n in (1, 100,
                                                                         self.args.big)}
        ops["POST /backends: +1 to 10"] = lambda: self.post_one(self.small)
        ops[f"POST /backends: +1 to {self.args.big}"] = lambda: self.post_one(self.big)
        ops["PATCH backends: +1 to 10"] = lambda: self.add_one(self.small, 10)
        ops[f"PATCH backends: +1 to {self.args.big}"] = lambda: self.add_one(self.big,
                                                                            self.args.big)
        samples: dict[str, list[float]] = {name: [] for name in ops}
        for _ in range(self.args.warmup):
            for op in ops.values():
                op()
        rounds = self.args.rounds
        for r in range(rounds):
            for name, op in ops.items():
                for _ in range(self.args.samples // rounds + (r < self.args.samples % rounds)):
                    samples[name].append(op() * 1000)
        return {name: summary(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=60, help="samples per figure")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--big", type=int, default=1000, help="backends of the big one")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads (1 worker)")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= args.samples or not 100 <= args.big <= 4096:
        parser.error("--rounds 1..samples, --big 100..4096")
    result = run_bench(lambda workdir: LoadBalancerBench(args, workdir), "ovngw-blb-")
    if result is None:
        return 130
    print("| operation | p50 | p99 |\n|---|---:|---:|")
    for name, s in result.items():
        print(f"| {name} | {s['p50_ms']:.2f} ms | {s['p99_ms']:.2f} ms |")
    print()
    for way in ("POST /backends", "PATCH backends"):
        small, big = result[f"{way}: +1 to 10"], result[f"{way}: +1 to {args.big}"]
        print(f"adding one backend with {way}, {args.big} vs 10 backends: p50 ratio "
              f"{big['p50_ms'] / small['p50_ms']:.2f}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())


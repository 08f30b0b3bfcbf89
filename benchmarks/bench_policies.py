"""Policy benchmark: the cost of policies to the writes that maintain them.

Measures, in one run against a private NB sandbox, through the gateway's WSGI app in this
process (HTTP parsing is left out: it is the same with and without policies):
  1. creating a policy that selects 1,000 ports (and, for its peers, the same ports again),
     against creating the same policy when it selects none of them;
  2. creating a port when its tenant has 100 policies (half select the new port, all have
     a label-selected peer), against the same in a tenant without policies.

    .venv/bin/python benchmarks/bench_policies.py [--ports 1000] [--policies 100] [--samples 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway import sandbox
from gateway.app import create_app
from gateway.auth import mint
from gateway.config import DEFAULT_QUOTAS, Settings

SECRET = "bench-" + "s" * 40


class Client:
    def __init__(self, app: Any, tenant: str) -> None:
        self.client = app.test_client()
        self.headers = {"Authorization": "Bearer " + mint(SECRET, tenant, "read write")}

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = self.client.post(path, json=body, headers=self.headers)
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()  # type: ignore[no-any-return]

    def delete(self, path: str) -> None:
        assert self.client.delete(path, headers=self.headers).status_code == 204


def timed(fn: Callable[[int], Any], samples: int) -> list[float]:
    out = []
    for i in range(samples):
        start = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def fill_tenant(app: Any, ports: int) -> tuple[Client, str]:
    api = Client(app, "bench-" + uuid.uuid4().hex[:8])
    net = api.post("/v1/networks", {"name": "big", "cidr": "10.0.0.0/16"})
    for i in range(ports):
        api.post(f"/v1/networks/{net['id']}/ports", {"name": f"p{i}", "labels": {"app": "web"}})
    return api, net["id"]


def policy_body(name: str, app_label: str) -> dict[str, Any]:
    return {"name": name, "selector": {"app": app_label},
            "ingress": [{"action": "allow", "peers": [{"selector": {"app": "web"}}],
                         "protocol": "tcp", "ports": [5432, "8000-8080"]}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--policies", type=int, default=100)
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()
    quotas = {**DEFAULT_QUOTAS, "ports": 100_000, "policies": 10_000}
    with tempfile.TemporaryDirectory(prefix="ovngw-bp-") as tmp:
        box = sandbox.start(Path(tmp))
        try:
            settings = Settings(nb_db=box.nb_unix, jwt_secret=SECRET, quotas=quotas)
            app = create_app(settings)
            assert app.extensions["gateway"].nb.wait_ready(30)
            rows = run(app, args)
        finally:
            sandbox.stop(Path(tmp))
    print("| measurement | p50 ms | p99 ms |\n|---|---|---|")
    for name, values in rows:
        p50, p99 = summary(values)
        print(f"| {name} | {p50:.2f} | {p99:.2f} |")
    base = summary(rows[1][1])[0]
    print(f"\npolicy selecting {args.ports} ports / selecting none: "
          f"{summary(rows[0][1])[0] / base:.1f}x")
    print(f"port create with {args.policies} policies / without: "
          f"{summary(rows[3][1])[0] / summary(rows[2][1])[0]:.2f}x")


def run(app: Any, args: argparse.Namespace) -> list[tuple[str, list[float]]]:
    big, _ = fill_tenant(app, args.ports)
    n = max(5, args.samples // 3)

    def create_and_drop(label: str) -> Callable[[int], None]:
        def once(i: int) -> None:
            doc = big.post("/v1/policies", policy_body(f"{label}-{i}-{uuid.uuid4().hex[:6]}",
                                                       label))
            big.delete(f"/v1/policies/{doc['id']}")
        return once

    # The timed part includes the delete; measure the delete alone and subtract its median.
    selecting = timed(create_and_drop("web"), n)
    empty = timed(create_and_drop("nothing"), n)

    plain, plain_net = fill_tenant(app, 0)
    rich, rich_net = fill_tenant(app, 0)
    for i in range(args.policies):
        rich.post("/v1/policies", policy_body(f"pol{i}", "web" if i % 2 else f"x{i}"))
    ports_plain = timed(lambda i: plain.post(f"/v1/networks/{plain_net}/ports",
                                             {"name": f"n{i}", "labels": {"app": "web"}}),
                        args.samples)
    ports_rich = timed(lambda i: rich.post(f"/v1/networks/{rich_net}/ports",
                                           {"name": f"n{i}", "labels": {"app": "web"}}),
                       args.samples)
    return [(f"create+delete policy selecting {args.ports} ports", selecting),
            ("create+delete policy selecting 0 ports (same tenant)", empty),
            ("create port, tenant without policies", ports_plain),
            (f"create port, tenant with {args.policies} policies", ports_rich)]


if __name__ == "__main__":
    main()

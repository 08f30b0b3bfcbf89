"""Group commit: write requests arriving together share one OVSDB transaction, and each
keeps the outcome it would have had alone (gateway.ovn.batch).

The gateway here waits 100 ms before each transaction so that requests racing through a
barrier land in one batch; the batch-size metric proves that they did."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from prometheus_client import REGISTRY

from gateway.config import Settings
from gateway.errors import Conflict
from gateway.ovn import tables

from helpers.api import ApiClient, unique
from helpers.nb import owned, switch


@pytest.fixture(scope="module")
def batched(settings: Settings) -> Iterator[Any]:
    from gateway.app import create_app

    application = create_app(dataclasses.replace(settings, batch_wait_ms=100))
    application.config["TESTING"] = True
    assert application.extensions["gateway"].nb.wait_ready(15)
    yield application
    application.extensions["gateway"].nb.stop()


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


class Batches:
    """Requests committed and transactions used between start and the end of a block."""

    def __enter__(self) -> Batches:
        self.requests = -_sample("gateway_ovn_batch_size_sum")
        self.transactions = -_sample("gateway_ovn_batch_size_count")
        self.deferred = -_sample("gateway_ovn_batch_deferred_total")
        self.splits = -_sample("gateway_ovn_batch_splits_total")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.requests += _sample("gateway_ovn_batch_size_sum")
        self.transactions += _sample("gateway_ovn_batch_size_count")
        self.deferred += _sample("gateway_ovn_batch_deferred_total")
        self.splits += _sample("gateway_ovn_batch_splits_total")


def race(app: Any, n: int, call: Callable[[int], tuple[ApiClient, Callable[[ApiClient], Any]]]
         ) -> list[Any]:
    """call(i) -> (client, request); all n requests are let go at once."""
    barrier = threading.Barrier(n, timeout=30)

    def one(i: int) -> Any:
        client, request = call(i)
        barrier.wait()
        return request(client)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def test_each_request_keeps_its_own_outcome(batched: Any, nbctl: Any) -> None:
    tenant = unique("gc")
    dup = unique("dup")
    missing = str(uuid.uuid4())

    def call(i: int) -> tuple[ApiClient, Callable[[ApiClient], Any]]:
        client = ApiClient(batched.test_client(), tenant)
        if i % 3 == 0:  # the same name six times: one wins, five are 409
            return client, lambda c: c.post("/v1/networks",
                                             {"name": dup, "cidr": "10.1.0.0/24"})
        if i % 3 == 1:  # a port on a network that does not exist: 404, inside the batch
            return client, lambda c: c.post(f"/v1/networks/{missing}/ports",
                                             {"name": unique("p")})
        return client, lambda c: c.post("/v1/networks", {"name": f"ok-{i}",
                                                         "cidr": f"10.2.{i}.0/24"})

    with Batches() as batches:
        responses = race(batched, 18, call)
    by_kind: dict[int, Counter[int]] = {k: Counter() for k in range(3)}
    for i, resp in enumerate(responses):
        by_kind[i % 3][resp.status_code] += 1
    assert by_kind[0] == {201: 1, 409: 5}
    assert by_kind[1] == {404: 6}
    assert by_kind[2] == {201: 6}
    assert all(r.get_json()["errors"].get("name") for i, r in enumerate(responses)
               if i % 3 == 0 and r.status_code == 409)
    # exactly the successful creates are in OVN, each complete, nothing of the failures
    switches = owned(nbctl, "Logical_Switch", kind="network", tenant=tenant)
    assert len(switches) == 7
    for resp in responses:
        if resp.status_code == 201:
            assert switch(nbctl, resp.get_json()["id"]) is not None
    # and they shared transactions
    assert batches.requests >= 7
    assert batches.transactions < batches.requests, vars(batches)


def test_if_match_in_one_batch_lets_one_change_through(batched: Any) -> None:
    tenant = unique("gc")
    net = ApiClient(batched.test_client(), tenant).network(cidr="10.3.0.0/24")

    def call(i: int) -> tuple[ApiClient, Callable[[ApiClient], Any]]:
        return ApiClient(batched.test_client(), tenant), lambda c: c.patch(
            f"/v1/networks/{net['id']}", {"labels": {"writer": str(i)}},
            headers={"If-Match": f'"{net["revision"]}"'})

    with Batches() as batches:
        responses = race(batched, 8, call)
    assert Counter(r.status_code for r in responses) == {200: 1, 412: 7}
    winner = next(r.get_json() for r in responses if r.status_code == 200)
    now = ApiClient(batched.test_client(), tenant).get(f"/v1/networks/{net['id']}").get_json()
    assert now["revision"] == net["revision"] + 1
    assert now["labels"] == winner["labels"]
    # the seven read the winner's revision in the shared transaction: 412, not a retry
    assert batches.deferred == 0 and batches.requests >= 1


def test_quota_holds_within_one_batch(batched: Any, admin_api: Any) -> None:
    tenant = unique("gc")
    assert admin_api.patch(f"/v1/tenants/{tenant}/quotas", {"networks": 4}).status_code == 200

    def call(i: int) -> tuple[ApiClient, Callable[[ApiClient], Any]]:
        return ApiClient(batched.test_client(), tenant), lambda c: c.post(
            "/v1/networks", {"name": f"q-{i}", "cidr": f"10.4.{i}.0/24"})

    with Batches() as batches:
        responses = race(batched, 10, call)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 4, 409: 6}, [r.get_json() for r in responses]
    assert batches.transactions < batches.requests, vars(batches)
    listed = ApiClient(batched.test_client(), tenant).get("/v1/networks").get_json()["items"]
    assert len(listed) == 4


def test_one_idempotency_key_in_one_batch_creates_once(batched: Any, nbctl: Any) -> None:
    tenant = unique("gc")
    body = {"name": unique("n"), "cidr": "10.5.0.0/24"}
    key = {"Idempotency-Key": uuid.uuid4().hex}

    def call(i: int) -> tuple[ApiClient, Callable[[ApiClient], Any]]:
        return ApiClient(batched.test_client(), tenant), lambda c: c.post(
            "/v1/networks", body, headers=key)

    responses = race(batched, 8, call)
    assert {r.status_code for r in responses} <= {200, 201}
    assert len({r.get_json()["id"] for r in responses}) == 1
    assert len(owned(nbctl, "Logical_Switch", kind="network", tenant=tenant)) == 1


def test_ports_of_one_network_in_one_batch_get_distinct_addresses(batched: Any) -> None:
    tenant = unique("gc")
    net = ApiClient(batched.test_client(), tenant).network(cidr="10.6.0.0/28")

    def call(i: int) -> tuple[ApiClient, Callable[[ApiClient], Any]]:
        return ApiClient(batched.test_client(), tenant), lambda c: c.post(
            f"/v1/networks/{net['id']}/ports", {"name": f"p-{i}"})

    responses = race(batched, 13, call)  # a /28 has 13 addresses left beside the gateway
    assert Counter(r.status_code for r in responses) == {201: 13}
    ips = [r.get_json()["ips"][0] for r in responses]
    macs = [r.get_json()["mac"] for r in responses]
    assert len(set(ips)) == 13 and len(set(macs)) == 13
    full = ApiClient(batched.test_client(), tenant).post(
        f"/v1/networks/{net['id']}/ports", {"name": "one-too-many"})
    assert full.status_code == 409


def test_a_transaction_refused_whole_is_committed_request_by_request(
        batched: Any, nbctl: Any) -> None:
    """Another tool holds the unique name the gateway gives a new tenant's group: every
    first write of that tenant is refused by the database. Writes of other tenants that
    shared its transaction are committed again on their own and succeed."""
    squatted, fine = unique("gc"), unique("gc")
    name = "ovngw_tenant_" + squatted.replace("-", "_")
    nbctl("pg-add", name)
    try:
        def call(i: int) -> tuple[ApiClient, Callable[[ApiClient], Any]]:
            tenant = squatted if i == 0 else fine
            return ApiClient(batched.test_client(), tenant), lambda c: c.post(
                "/v1/networks", {"name": f"s-{i}", "cidr": f"10.7.{i}.0/24"})

        with Batches() as batches:
            responses = race(batched, 6, call)
        assert responses[0].status_code == 503
        assert [r.status_code for r in responses[1:]] == [201] * 5
        assert batches.splits >= 1
        assert len(owned(nbctl, "Logical_Switch", kind="network", tenant=fine)) == 5
        assert owned(nbctl, "Logical_Switch", kind="network", tenant=squatted) == []
    finally:
        nbctl("pg-del", name)


def test_a_failed_request_leaves_nothing_of_its_writes(batched: Any, nbctl: Any) -> None:
    """Straight at the committer: of two change functions in one transaction, the one that
    inserts a row, changes another and deletes a third before failing leaves all three as
    they were; the other commits."""
    nb = batched.extensions["gateway"].nb
    api = ApiClient(batched.test_client(), unique("gc"))
    nets = {name: api.network(cidr=f"10.8.{i}.0/24")["id"]
            for i, name in enumerate(("kept", "changed", "deleted"))}
    tag = unique("gc")
    shared: dict[str, int] = {}

    def failing(t: Any) -> None:
        shared["failing"] = id(t.txn)
        t.insert(tables.LS, name=f"{tag}-inserted")
        t.get(tables.LS, "network", nets["changed"]).setkey("external_ids", "gc-touched", "yes")
        t.get(tables.LS, "network", nets["deleted"]).delete()
        raise Conflict("changed its mind")

    def succeeding(t: Any) -> str:
        shared["succeeding"] = id(t.txn)
        t.insert(tables.LS, name=f"{tag}-committed")
        t.get(tables.LS, "network", nets["kept"]).setkey("external_ids", "gc-touched", "yes")
        return "done"

    outcomes: dict[str, Any] = {}

    def run(label: str, fn: Callable[[Any], Any]) -> None:
        try:
            outcomes[label] = nb.transact(fn)
        except Conflict as exc:
            outcomes[label] = exc

    try:
        threads = [threading.Thread(target=run, args=a)
                   for a in (("failing", failing), ("succeeding", succeeding))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert isinstance(outcomes["failing"], Conflict)
        assert outcomes["succeeding"] == "done"
        assert shared["failing"] == shared["succeeding"]  # one IDL transaction for both
        names = set(nbctl("--bare", "--columns=name", "list", "Logical_Switch").split())
        assert f"{tag}-committed" in names and f"{tag}-inserted" not in names
        assert all(switch(nbctl, net) is not None for net in nets.values())
        assert "gc-touched" not in nbctl("get", "Logical_Switch", f"ovngw-{nets['changed']}",
                                      "external_ids")
        assert "gc-touched" in nbctl("get", "Logical_Switch", f"ovngw-{nets['kept']}",
                                  "external_ids")
        # the replica agrees: the deleted switch is back in its index and rows
        entry = nb.index(tables.LS).by_id("network", nets["deleted"])
        assert entry is not None and nb.row(tables.LS, entry.row_uuid) is not None
        assert api.get(f"/v1/networks/{nets['deleted']}").status_code == 200
    finally:
        nbctl("--if-exists", "ls-del", f"{tag}-committed")

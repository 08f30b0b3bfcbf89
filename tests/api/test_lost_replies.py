"""A write whose commit succeeded but whose reply was lost (a RAFT leader dying at that
moment) is re-run by the transaction layer against the new state. The re-run must report
the write that happened, not a conflict with itself.

The loss is simulated by running every request's change function a second time, in a new
transaction, right after the first one committed, which is what ovsdbapp does after a
reconnect."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gateway.ovn.connection import Northbound

from helpers.nb import lsp


@pytest.fixture
def replies_lost(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    original = Northbound.transact

    def twice(self: Northbound, fn: Any, operation: str = "write") -> Any:
        original(self, fn, operation)
        return original(self, fn, operation)

    monkeypatch.setattr(Northbound, "transact", twice)
    yield


def test_create_rerun_returns_its_own_resource(api: Any, nbctl: Any, replies_lost: None) -> None:
    net = api.network(cidr="10.111.0.0/24")
    resp = api.post(f"/v1/networks/{net['id']}/ports", {"name": "once"})
    assert resp.status_code == 201, resp.get_json()
    assert "Idempotent-Replayed" not in resp.headers
    listed = api.get(f"/v1/networks/{net['id']}/ports").get_json()["items"]
    assert [p["id"] for p in listed] == [resp.get_json()["id"]]
    assert lsp(nbctl, resp.get_json()["id"]) is not None


def test_update_rerun_with_if_match_is_not_412(api: Any, replies_lost: None) -> None:
    net = api.network(cidr="10.112.0.0/24")
    resp = api.patch(f"/v1/networks/{net['id']}", {"description": "new"},
                     headers={"If-Match": '"1"'})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["revision"] == 2
    assert api.get(f"/v1/networks/{net['id']}").get_json()["revision"] == 2


def test_delete_rerun_is_not_404(api: Any, replies_lost: None) -> None:
    net = api.network(cidr="10.113.0.0/24")
    assert api.delete(f"/v1/networks/{net['id']}").status_code == 204
    assert api.get(f"/v1/networks/{net['id']}").status_code == 404


def test_a_real_conflict_still_is_one(api: Any, replies_lost: None) -> None:
    api.network(name="taken", cidr="10.114.0.0/24")
    resp = api.post("/v1/networks", {"name": "taken", "cidr": "10.115.0.0/24"})
    assert resp.status_code == 409
    resp = api.delete("/v1/networks/00000000-0000-4000-8000-000000000000")
    assert resp.status_code == 404

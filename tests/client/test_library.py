"""The client library against a real gateway: documents, errors, names, cursors, retries."""

from __future__ import annotations

import ast
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from client_support import Flaky, Tenant

from gateway.client import (
    AmbiguousName,
    BadRequest,
    Client,
    Conflict,
    Forbidden,
    NotFound,
    OutcomeUnknown,
    PreconditionFailed,
    ServiceUnavailable,
    Unauthorized,
    Unreachable,
)

from helpers.api import token, unique
from helpers.serving import Served, free_port


def test_crud_with_if_match(acme: Tenant) -> None:
    gw = acme.client
    net = gw.networks.create({"name": "web", "cidr": "10.0.0.0/24", "labels": {"app": "web"}})
    assert net["revision"] == 1 and net["tenant_id"] == acme.name
    assert gw.networks.get(net["id"]) == net
    changed = gw.networks.update(net["id"], {"description": "front"}, if_match=1)
    assert changed["revision"] == 2 and changed["description"] == "front"
    with pytest.raises(PreconditionFailed) as stale:
        gw.networks.update(net["id"], {"description": "again"}, if_match=1)
    assert stale.value.status == 412 and "revision is 2" in stale.value.detail
    with pytest.raises(PreconditionFailed):
        gw.networks.delete(net["id"], if_match='"1"')
    gw.networks.delete(net["id"], if_match=changed["revision"])
    with pytest.raises(NotFound):
        gw.networks.get(net["id"])


def test_problem_documents_name_the_field(acme: Tenant, gateway: Served) -> None:
    gw = acme.client
    with pytest.raises(BadRequest) as bad:
        gw.networks.create({"name": "web", "cidr": "10.0.0.300/24"})
    assert bad.value.status == 400 and list(bad.value.errors) == ["cidr"]
    assert bad.value.message.startswith("cidr: ") and bad.value.request_id
    gw.networks.create({"name": "web", "cidr": "10.0.0.0/24"})
    with pytest.raises(Conflict) as dup:
        gw.networks.create({"name": "web", "cidr": "10.1.0.0/24"})
    assert dup.value.errors == {"name": ["a network named 'web' exists"]}
    with pytest.raises(Unauthorized):
        list(Client(gateway.base, "not-a-token").networks.list())
    reader = Client(gateway.base, token(acme.name, "networks:read"))
    with pytest.raises(Forbidden) as denied:
        reader.networks.create({"name": "other", "cidr": "10.2.0.0/24"})
    assert "networks:write" in denied.value.detail


def test_names_resolve_to_ids(acme: Tenant, admin: Tenant, gateway: Served) -> None:
    gw = acme.client
    net = gw.networks.create({"name": "db", "cidr": "10.1.0.0/24"})
    port = gw.ports.create({"name": "db-1"}, network_id=gw.networks.resolve("db"))
    assert port["network_id"] == net["id"]
    assert gw.ports.resolve("db-1") == port["id"] == gw.ports.resolve(port["id"])
    with pytest.raises(NotFound) as missing:
        gw.networks.resolve("nope", field="--network")
    assert missing.value.errors == {"--network": ["no network named 'nope'"]}
    # an admin sees every tenant's "db": the name alone is ambiguous, the tenant settles it
    other = Client(gateway.base, token(unique("cli")))
    other.networks.create({"name": "db", "cidr": "10.1.0.0/24"})
    with pytest.raises(AmbiguousName):
        admin.client.networks.resolve("db")
    assert admin.client.networks.resolve("db", tenant=acme.name) == net["id"]


def test_lists_follow_cursors_and_filters(acme: Tenant, flaky: Callable[..., Flaky]) -> None:
    proxy = flaky()
    gw = Client(proxy.url, acme.token)
    net = gw.networks.create({"name": "many", "cidr": "10.3.0.0/24"})
    made = [gw.ports.create({"name": f"p{i}", "labels": {"even": str(i % 2 == 0).lower()}},
                            network_id=net["id"])["id"] for i in range(5)]
    before = len(proxy.requests("GET"))
    listed = [p["id"] for p in gw.ports.list(page_size=2, network_id=net["id"])]
    assert listed == sorted(made)  # every item once, in the API's (id) order
    pages = proxy.requests("GET")[before:]
    assert len(pages) == 3 and "cursor=" in pages[1].path and "cursor=" in pages[2].path
    even = list(gw.ports.list(label={"even": "true"}, network_id=net["id"]))
    assert sorted(p["name"] for p in even) == ["p0", "p2", "p4"]
    assert [p["name"] for p in gw.ports.list(name="p3")] == ["p3"]


def test_create_retries_a_lost_reply_with_the_same_key(acme: Tenant,
                                                      flaky: Callable[..., Flaky]) -> None:
    """The first POST lands but its reply is a 503 outcome-unknown; the client waits the
    Retry-After and sends the same key, which answers the network the first POST made."""
    proxy = flaky(retry_after="1")
    proxy.script = ["lost"]
    started = time.monotonic()
    net = Client(proxy.url, acme.token).networks.create({"name": "once", "cidr": "10.4.0.0/24"})
    assert time.monotonic() - started >= 1.0
    posts = proxy.requests("POST")
    assert [p.answered for p in posts] == [503, 201]
    keys = {p.headers["idempotency-key"] for p in posts}
    assert len(keys) == 1 and uuid.UUID(keys.pop()).version == 4
    assert posts[1].upstream.get("idempotent-replayed") == "true"
    assert [n["id"] for n in acme.client.networks.list(name="once")] == [net["id"]]


def test_a_given_key_is_kept_across_plain_503s(acme: Tenant,
                                               flaky: Callable[..., Flaky]) -> None:
    proxy = flaky(retry_after="0")
    proxy.script = ["503", "503"]
    gw = Client(proxy.url, acme.token)
    net = gw.networks.create({"name": "keyed", "cidr": "10.5.0.0/24"}, idempotency_key="k-1")
    assert [p.headers["idempotency-key"] for p in proxy.requests("POST")] == ["k-1"] * 3
    again = acme.client.networks.create({"name": "keyed", "cidr": "10.5.0.0/24"},
                                        idempotency_key="k-1")
    assert again["id"] == net["id"]


def test_reads_retry_changes_do_not_repeat_an_unknown_outcome(
        acme: Tenant, flaky: Callable[..., Flaky]) -> None:
    net = acme.client.networks.create({"name": "web", "cidr": "10.6.0.0/24"})
    proxy = flaky(retry_after="0")
    gw = Client(proxy.url, acme.token)
    proxy.script = ["503", "503"]
    assert gw.networks.get(net["id"])["id"] == net["id"]
    assert len(proxy.requests("GET")) == 3
    # a PATCH whose reply was lost may have been applied: raised, not sent again
    proxy.script = ["lost"]
    with pytest.raises(OutcomeUnknown):
        gw.networks.update(net["id"], {"description": "x"})
    assert len(proxy.requests("PATCH")) == 1
    assert acme.client.networks.get(net["id"])["description"] == "x"  # it had landed
    # a plain 503 wrote nothing: a PATCH is sent again
    proxy.script = ["503"]
    assert gw.networks.update(net["id"], {"description": "y"})["description"] == "y"
    assert len(proxy.requests("PATCH")) == 3


def test_retries_are_bounded(acme: Tenant, flaky: Callable[..., Flaky]) -> None:
    proxy = flaky(retry_after="0")
    proxy.script = ["503"] * 10
    with pytest.raises(ServiceUnavailable) as down:
        list(Client(proxy.url, acme.token, retries=3).networks.list())
    assert len(proxy.seen) == 3 and down.value.retry_after == 0
    # a Retry-After beyond the time left is not waited for
    slow = flaky(retry_after="30")
    slow.script = ["503"] * 10
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        Client(slow.url, acme.token, retry_time=5).networks.create(
            {"name": "late", "cidr": "10.7.0.0/24"})
    assert time.monotonic() - started < 5 and len(slow.seen) == 1
    with pytest.raises(Unreachable):
        Client(f"http://127.0.0.1:{free_port()}", acme.token, retries=2).networks.get(
            str(uuid.uuid4()))


def test_admin_kinds(admin: Tenant, acme: Tenant) -> None:
    ext = admin.client.external_networks.create({
        "name": unique("ext"), "cidr": "172.16.9.0/24", "physical_network": "physnet1"})
    assert acme.client.external_networks.resolve(ext["name"]) == ext["id"]  # tenants read
    quotas: dict[str, Any] = admin.client.update_quotas(acme.name, {"networks": 3})
    assert quotas["networks"] == 3 and admin.client.quotas(acme.name) == quotas
    assert admin.client.usage(acme.name)["networks"] == 0
    with pytest.raises(Forbidden):
        acme.client.quotas(acme.name)
    admin.client.external_networks.delete(ext["id"])


def test_the_client_needs_no_server_packages() -> None:
    """It runs on a laptop: importing it (library and command) pulls in no Flask, ovsdbapp,
    ovs or other gateway package."""
    probe = ("import sys, gateway.client, gateway.client.cli\n"
             "print(sorted({m.split('.')[0] for m in sys.modules}))\n"
             "print(sorted(m for m in sys.modules if m.startswith('gateway.')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)
    top, ours = (ast.literal_eval(line) for line in done.stdout.splitlines())
    assert not {"flask", "ovsdbapp", "ovs", "marshmallow", "jwt", "werkzeug"} & set(top)
    assert ours == ["gateway.client", "gateway.client.api", "gateway.client.cli"]

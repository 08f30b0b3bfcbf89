"""What scripts rely on: exit codes, the one-line problem message, configuration from flags,
environment and config-file contexts, names or ids, paging, and retries with one key."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from client_support import Flaky, Run, Tenant, ovngw_env

from helpers.api import token, unique
from helpers.serving import Served, free_port


def one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err.strip()


def test_problems_print_one_line_naming_the_field(run: Run, acme: Tenant,
                                                  gateway: Served) -> None:
    bad = run("networks", "create", "web", "--cidr", "10.0.0.300/24", expect=3)
    assert one_line(bad.err).startswith("ovngw: 400 invalid request: cidr: not a valid")
    assert bad.out == ""
    unknown = run("networks", "create", "web", "--cidr", "10.0.0.0/24", "--set", "colour=red",
                  expect=3)
    assert one_line(unknown.err).startswith("ovngw: 400 invalid request: colour: Unknown field.")
    run("networks", "create", "web", "--cidr", "10.0.0.0/24")
    dup = run("networks", "create", "web", "--cidr", "10.1.0.0/24", expect=6)
    assert one_line(dup.err).startswith("ovngw: 409 conflict: name: a network named 'web' exists")
    stale = run("networks", "update", "web", "--description", "x", "--if-match", "7", expect=7)
    assert one_line(stale.err).startswith(
        "ovngw: 412 precondition failed: revision is 1, If-Match asked for 7")
    missing = run("ports", "create", "p1", "--network", "nope", expect=5)
    assert one_line(missing.err) == "ovngw: 404 not found: --network: no network named 'nope'"
    run("networks", "show", str(uuid.uuid4()), expect=5)
    reader = {"OVNGW_URL": gateway.base, "OVNGW_TOKEN": token(acme.name, "networks:read")}
    denied = run("networks", "delete", "web", env=reader, expect=4)
    assert one_line(denied.err).startswith("ovngw: 403 forbidden: token lacks scope")
    expired = {"OVNGW_URL": gateway.base, "OVNGW_TOKEN": "garbage"}
    assert one_line(run("networks", "list", env=expired, expect=4).err).startswith(
        "ovngw: 401 unauthorized: malformed token")
    down = {"OVNGW_URL": f"http://127.0.0.1:{free_port()}", "OVNGW_TOKEN": acme.token}
    assert one_line(run("--retries", "1", "networks", "list", env=down, expect=8).err).startswith(
        "ovngw: unavailable:")


def test_usage_errors_exit_2(run: Run, tmp_path: Path) -> None:
    run("networks", "frobnicate", expect=2)
    run("networks", "update", "web", expect=2)  # nothing to change
    run("networks", "create", "web", "--set", "novalue", expect=2)
    run("networks", "create", "web", "-f", str(tmp_path / "absent.json"), expect=2)
    no_url = run("networks", "list", env={}, expect=2)
    assert "no gateway URL" in one_line(no_url.err)


def test_names_or_ids_and_ambiguous_names(run: Run, acme: Tenant, admin: Tenant,
                                          gateway: Served) -> None:
    net = acme.client.networks.create({"name": "db", "cidr": "10.1.0.0/24"})
    port = run("ports", "create", "db-1", "--network", net["id"], "-o", "id").out.strip()
    assert run("ports", "show", "db-1", "-o", "id").out.strip() == port
    assert run("ports", "show", port, "-o", "json").json()["name"] == "db-1"
    other = {"OVNGW_URL": gateway.base, "OVNGW_TOKEN": token(unique("cli"))}
    run("networks", "create", "db", "--cidr", "10.1.0.0/24", env=other)
    # the tenant sees only its own "db"; an admin sees two and must say which tenant
    as_admin = {"OVNGW_URL": gateway.base, "OVNGW_TOKEN": admin.token}
    ambiguous = run("networks", "show", "db", env=as_admin, expect=1)
    assert "2 networks are named 'db'" in one_line(ambiguous.err)
    shown = run("networks", "show", "db", "--tenant", acme.name, "-o", "json", env=as_admin)
    assert shown.json()["id"] == net["id"]
    rows = run("networks", "list", "--name", "db", env=as_admin).table()
    assert len(rows) == 2 and acme.name in {r["TENANT"] for r in rows}  # two tenants shown
    # an admin creating for a tenant resolves the tenant's names
    made = run("ports", "create", "db-2", "--network", "db", "--tenant", acme.name,
               "-o", "json", env=as_admin).json()
    assert made["network_id"] == net["id"] and made["tenant_id"] == acme.name


def test_lists_follow_cursors(run: Run, acme: Tenant, flaky: Callable[..., Flaky],
                              gateway: Served) -> None:
    net = acme.client.networks.create({"name": "many", "cidr": "10.2.0.0/24"})
    for i in range(5):
        acme.client.ports.create({"name": f"p{i}"}, network_id=net["id"])
    proxy = flaky()
    via = {"OVNGW_URL": proxy.url, "OVNGW_TOKEN": acme.token}
    items = run("ports", "list", "--network", "many", "--page-size", "2", "-o", "json",
                env=via).json()
    assert sorted(p["name"] for p in items) == ["p0", "p1", "p2", "p3", "p4"]
    assert sum("/v1/ports?" in s.path for s in proxy.requests("GET")) == 3  # 2 + 2 + 1
    assert len(run("ports", "list", "--limit", "3", "-o", "yaml").yaml()) == 3
    names = run("ports", "list", "-o", "id").out.split()
    assert len(names) == 5 and all(uuid.UUID(n) for n in names)


def test_create_retries_with_the_same_key(run: Run, acme: Tenant,
                                          flaky: Callable[..., Flaky]) -> None:
    """A plain 503, then a 503 after the create landed: ovngw waits Retry-After each time
    and sends the same Idempotency-Key, so exactly one network exists."""
    proxy = flaky(retry_after="1")
    proxy.script = ["503", "lost"]
    via = {"OVNGW_URL": proxy.url, "OVNGW_TOKEN": acme.token}
    made = run("networks", "create", "once", "--cidr", "10.3.0.0/24", "-o", "json",
               env=via).json()
    posts = proxy.requests("POST")
    assert [p.answered for p in posts] == [503, 503, 201]
    assert len({p.headers["idempotency-key"] for p in posts}) == 1
    assert posts[2].upstream.get("idempotent-replayed") == "true"
    assert [n["id"] for n in acme.client.networks.list()] == [made["id"]]
    # a PATCH whose outcome is unknown is not repeated: exit 8, and the one line says so
    proxy.script = ["lost"]
    failed = run("networks", "update", made["id"], "--description", "x", env=via, expect=8)
    assert one_line(failed.err).startswith("ovngw: 503 outcome unknown: ")
    assert len(proxy.requests("PATCH")) == 1
    # a key given on the command line is the one sent
    proxy.script = ["503"]
    run("networks", "create", "twice", "--cidr", "10.4.0.0/24", "--idempotency-key", "mine-1",
        env=via)
    assert [p.headers["idempotency-key"] for p in proxy.requests("POST")[3:]] == ["mine-1"] * 2


def write_config(path: Path, url: str, good: str, bad: str, current: str = "good") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "token").write_text(good + "\n")
    path.write_text(yaml.safe_dump({"current_context": current, "contexts": {
        "good": {"url": url, "token": good},
        "bad": {"url": url, "token": bad},
        "filed": {"url": url, "token_file": str(path.parent / "token")},
        "elsewhere": {"url": f"http://127.0.0.1:{free_port()}", "token": good}}}))
    return path


def test_config_file_contexts(run: Run, acme: Tenant, gateway: Served, tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_config(home / ".config" / "ovngw" / "config.yaml", gateway.base, acme.token, "bad")
    acme.client.networks.create({"name": "web", "cidr": "10.0.0.0/24"})

    def names(*args: str, **env: str) -> list[str]:
        return [r["NAME"] for r in run(*args, "networks", "list", env=env).table()]

    assert names() == ["web"]  # ~/.config/ovngw/config.yaml, its current_context
    assert names("--context", "filed") == ["web"]
    assert names(OVNGW_CONTEXT="filed") == ["web"]
    run("--context", "bad", "networks", "list", env={}, expect=4)
    run("networks", "list", env={"OVNGW_CONTEXT": "bad"}, expect=4)
    run("--retries", "1", "--context", "elsewhere", "networks", "list", env={}, expect=8)
    run("--context", "nope", "networks", "list", env={}, expect=2)
    # OVNGW_CONFIG points elsewhere; XDG_CONFIG_HOME moves the default
    other = write_config(tmp_path / "etc" / "ovngw.yaml", gateway.base, acme.token, "bad",
                         current="bad")
    run("networks", "list", env={"OVNGW_CONFIG": str(other)}, expect=4)
    assert names("--config", str(other), "--context", "good") == ["web"]
    run("networks", "list", env={"OVNGW_CONFIG": str(tmp_path / "none.yaml")}, expect=2)
    xdg = tmp_path / "xdg"
    write_config(xdg / "ovngw" / "config.yaml", gateway.base, acme.token, "bad", current="bad")
    run("networks", "list", env={"XDG_CONFIG_HOME": str(xdg)}, expect=4)


def test_flags_override_env_override_file(run: Run, acme: Tenant, gateway: Served,
                                          tmp_path: Path) -> None:
    write_config(tmp_path / "home" / ".config" / "ovngw" / "config.yaml", gateway.base,
                 acme.token, "bad")
    run("networks", "list", env={"OVNGW_TOKEN": "bad"}, expect=4)  # env over the file
    run("--token", acme.token, "networks", "list", env={"OVNGW_TOKEN": "bad"})  # flag over env
    dead = f"http://127.0.0.1:{free_port()}"
    run("--retries", "1", "networks", "list", env={"OVNGW_URL": dead}, expect=8)
    run("networks", "list", "--url", gateway.base, env={"OVNGW_URL": dead})
    # a context named with --context is a flag: its token never goes to OVNGW_URL
    run("--context", "good", "networks", "list", env={"OVNGW_TOKEN": "bad", "OVNGW_URL": dead})


@pytest.mark.parametrize("installed", [True, False])
def test_the_installed_command(installed: bool, acme: Tenant, gateway: Served,
                               tmp_path: Path) -> None:
    """The `ovngw` entry point (when the package is installed) and `python -m`."""
    script = Path(sys.executable).parent / "ovngw"
    if installed and not script.exists():
        pytest.skip("ovngw is not installed in this environment (pip install -e .)")
    command = [str(script)] if installed else [sys.executable, "-m", "gateway.client"]
    env = ovngw_env(tmp_path, OVNGW_URL=gateway.base, OVNGW_TOKEN=acme.token)
    done = subprocess.run([*command, "networks", "create", "web", "--cidr", "10.0.0.0/24",
                           "-o", "id"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert acme.client.networks.get(done.stdout.strip())["name"] == "web"


def test_body_sources_file_then_flags_then_set(run: Run, acme: Tenant, tmp_path: Path) -> None:
    body = tmp_path / "net.json"
    body.write_text('{"name": "filed", "cidr": "10.9.0.0/24", "mtu": 1300, "labels": {"a": "1"},'
                    ' "dhcp": {"lease_time": 60}}')
    made = run("networks", "create", "-f", str(body), "--mtu", "1400", "--label", "b=2",
               "--set", "mtu=1450", "--set", "dhcp.dns_servers=[\"10.9.0.53\"]",
               "--set", "description=two words", "-o", "json").json()
    assert (made["name"], made["mtu"], made["labels"]) == ("filed", 1450, {"a": "1", "b": "2"})
    assert made["dhcp"]["lease_time"] == 60 and made["dhcp"]["dns_servers"] == ["10.9.0.53"]
    assert made["description"] == "two words"
    patch = tmp_path / "patch.yaml"
    patch.write_text("labels:\n  a: null\ndescription: null\n")
    changed = run("networks", "update", "filed", "--from-file", str(patch), "-o", "json").json()
    assert changed["labels"] == {"b": "2"} and "description" not in changed

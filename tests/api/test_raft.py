"""The gateway on a RAFT cluster of three northbound databases, and a leader failover.

The cluster runs in a short folder of its own under /tmp: every member keeps its database,
pidfile, log and control socket there, listens on a unix socket and on a loopback tcp port
for clients, and is stopped through its pidfile (never by name), also when a test fails.

The gateway is given the three tcp remotes (comma-separated) and stays leader-only, as by
default. Its writes must land once and only once across a SIGKILL of the leader: while the
cluster elects a new one it may answer 503 with Retry-After, quickly and never 500, and a
retry with the same Idempotency-Key must never create a second port.

How long a failover costs is measured too, with writers running all along: the span from
the first 503 to the last, and the time until a write sent after the failure succeeds, must
stay within the election timer + 2 s after each SIGKILL of the leader, and within the
outage + 1 s when a standalone database is stopped and started again. CI does 3 of each;
GATEWAY_FAILOVER_RUNS=10 (with -s) measures more and prints min/median/max.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway import sandbox
from gateway.config import Settings
from gateway.sandbox.process import SandboxError, alive, find_program, run_tool

from helpers.api import SECRET, ApiClient, unique
from helpers.failover import Window, WriteLoad, spread, window
from helpers.nb import PREFIX, as_list, rows, switch
from helpers.waiting import wait_until

SCHEMA = Path("/usr/share/ovn/ovn-nb.ovsschema")
DATABASE = "OVN_Northbound"
MEMBERS = 3
OVN_TIMEOUT = 5.0  # the gateway's own bound on one OVSDB transaction
REQUEST_BOUND = OVN_TIMEOUT + 3.0  # no single request may take longer, whatever the cluster does
CLUSTER_READY = 20.0  # all members joined and one of them leads
WRITES_BEFORE_KILL = 5
WRITES_AFTER_KILL = 60
FAILOVER_BUDGET = 40.0  # every write after the kill must have succeeded within this
RETRY_SLEEP = 0.2
FAILOVER_RUNS = int(os.environ.get("GATEWAY_FAILOVER_RUNS", "3"))
FAILOVER_SLACK = 2.0  # the 503 window may exceed the election timer by this much
RESTART_OUTAGE = 2.0  # a standalone database is down this long
RESTART_SLACK = 1.0  # and the 503 window may exceed the outage by this much


def _installed(program: str) -> bool:
    try:
        find_program(program)
    except SandboxError:
        return False
    return True


def _need_tools() -> None:
    missing = [p for p in ("ovsdb-tool", "ovsdb-server", "ovs-appctl", "ovn-nbctl")
               if not _installed(p)]
    if missing or not SCHEMA.exists():
        pytest.skip(f"needs {', '.join(missing) or SCHEMA}; run scripts/bootstrap.sh")


def _free_ports(n: int) -> list[int]:
    """N distinct loopback ports free right now (held open together while picked)."""
    socks = []
    try:
        for _ in range(n):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    wait_until(predicate, timeout, interval=0.1, what=what)


@dataclass(frozen=True)
class Member:
    """One ovsdb-server of the cluster, with nbN.{db,pid,log,ctl,sock} in the folder."""

    dir: Path
    n: int
    raft_port: int
    client_port: int

    def path(self, ext: str) -> Path:
        return self.dir / f"nb{self.n}.{ext}"

    @property
    def raft(self) -> str:
        return f"tcp:127.0.0.1:{self.raft_port}"

    @property
    def remote(self) -> str:
        return f"tcp:127.0.0.1:{self.client_port}"

    def pid(self) -> int | None:
        """The live pid the pidfile names, only if it still is an ovsdb-server."""
        try:
            pid = int(self.path("pid").read_text().strip())
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except (OSError, ValueError):
            return None
        return pid if comm == "ovsdb-server" and alive(pid) else None

    def start(self) -> None:
        run_tool("ovsdb-server", "--detach", "--no-chdir",
                 f"--pidfile={self.path('pid')}", f"--log-file={self.path('log')}",
                 f"--unixctl={self.path('ctl')}",
                 f"--remote=punix:{self.path('sock')}",
                 f"--remote=ptcp:{self.client_port}:127.0.0.1",
                 str(self.path("db")))
        assert self.pid() is not None, f"ovsdb-server nb{self.n} exited; see {self.path('log')}"

    def kill(self) -> int:
        pid = self.pid()
        assert pid is not None, f"nb{self.n} is not running"
        os.kill(pid, signal.SIGKILL)
        _until(lambda: not alive(pid), 5, f"nb{self.n} (pid {pid}) gone")
        self.path("pid").unlink(missing_ok=True)  # a killed server cannot remove it
        return pid

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not alive(pid):
                break
        self.path("pid").unlink(missing_ok=True)

    def status(self) -> dict[str, str]:
        """`cluster/status` as a dict of its "Key: value" lines ({} when it cannot answer)."""
        try:
            out = run_tool("ovs-appctl", "--timeout=5", "-t", str(self.path("ctl")),
                           "cluster/status", DATABASE, timeout=10)
        except SandboxError:  # it also reports timeouts
            return {}
        return dict(re.findall(r"^([A-Z][A-Za-z ]*): (.*)$", out, re.MULTILINE))

    def server_id(self) -> str:
        return self.status().get("Server ID", "?").split()[0]


class Cluster:
    def __init__(self, directory: Path) -> None:
        ports = _free_ports(2 * MEMBERS)
        self.members = [Member(directory, i + 1, ports[i], ports[MEMBERS + i])
                        for i in range(MEMBERS)]

    def create(self) -> None:
        first, *others = self.members
        run_tool("ovsdb-tool", "create-cluster", str(first.path("db")), str(SCHEMA), first.raft)
        for member in others:
            run_tool("ovsdb-tool", "join-cluster", str(member.path("db")), DATABASE, member.raft,
                     first.raft)
        for member in self.members:
            member.start()
        _until(self.settled, CLUSTER_READY, "a 3-member cluster with a leader")

    def settled(self) -> bool:
        """Every running member is a cluster member and knows the same leader."""
        statuses = [m.status() for m in self.members if m.pid() is not None]
        if not statuses or any(s.get("Status") != "cluster member" for s in statuses):
            return False
        leaders = [s for s in statuses if s.get("Role") == "leader"]
        if len(leaders) != 1:
            return False
        sid = leaders[0]["Server ID"].split()[0]
        return all(s.get("Leader") in (sid, "self") for s in statuses)

    def election_timer(self) -> float:
        """The cluster's election timer, in seconds."""
        return int(self.leader().status()["Election timer"]) / 1000

    def rejoined(self, member: Member) -> bool:
        """MEMBER is running again, a cluster member that follows the current leader."""
        status = member.status()
        new_leader = self.leader().server_id() if self.settled() else None
        return status.get("Status") == "cluster member" and status.get("Leader") == new_leader

    def leader(self) -> Member:
        found = [m for m in self.members if m.pid() is not None
                 and m.status().get("Role") == "leader"]
        assert len(found) == 1, [(m.n, m.status().get("Role")) for m in self.members]
        return found[0]

    def remotes(self, members: list[Member] | None = None) -> str:
        return ",".join(m.remote for m in (members or self.members))

    def stop(self) -> None:
        for member in self.members:
            member.stop()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    _need_tools()
    # a short path: unix socket paths are limited to 107 bytes
    directory = Path(tempfile.mkdtemp(prefix="gw-raft-", dir="/tmp"))
    nb_cluster = Cluster(directory)
    try:
        nb_cluster.create()
        yield nb_cluster
    finally:
        nb_cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _make_app(nb_db: str) -> Any:
    from gateway.app import create_app

    application = create_app(Settings(nb_db=nb_db, jwt_secret=SECRET, ovn_timeout=OVN_TIMEOUT,
                                      retry_after=1))
    application.config["TESTING"] = True
    assert application.extensions["gateway"].nb.wait_ready(15), "gateway never connected"
    return application


@pytest.fixture(scope="module")
def gateway_app(cluster: Cluster) -> Iterator[Any]:
    application = _make_app(cluster.remotes())
    try:
        yield application
    finally:
        application.extensions["gateway"].nb.stop()


def _nbctl(remotes: str, *options: str) -> Callable[..., str]:
    def run(*args: str) -> str:
        return run_tool("ovn-nbctl", f"--db={remotes}", "--timeout=10", *options, *args,
                        timeout=20)
    return run


def _ports_in_ovn(nbctl: Callable[..., str], network_id: str) -> list[dict[str, Any]]:
    """The logical switch ports of the network's switch, and the switch's port count agrees."""
    ls = switch(nbctl, network_id)
    assert ls is not None, f"no logical switch for network {network_id}"
    lsps = [r for r in rows(nbctl, "Logical_Switch_Port")
            if r["external_ids"].get(PREFIX + "parent") == network_id]
    assert len(as_list(ls["ports"])) == len(lsps), (len(as_list(ls["ports"])), len(lsps))
    return lsps


def _list_ports(api: ApiClient, network_id: str) -> list[dict[str, Any]]:
    resp = api.get(f"/v1/networks/{network_id}/ports?limit=1000")
    assert resp.status_code == 200, (resp.status_code, resp.data[:300])
    items: list[dict[str, Any]] = resp.get_json()["items"]
    return items


def test_writes_land_in_every_member(cluster: Cluster, gateway_app: Any) -> None:
    api = ApiClient(gateway_app.test_client(), unique("tenant"))
    assert gateway_app.test_client().get("/readyz").status_code == 200
    network = api.network(cidr="10.70.0.0/24")
    ports = [api.port(network["id"]) for _ in range(3)]

    nbctl = _nbctl(cluster.remotes())
    lsps = _ports_in_ovn(nbctl, network["id"])
    assert sorted(r["name"] for r in lsps) == sorted(p["id"] for p in ports)
    # every member holds the rows, not only the leader
    for member in cluster.members:
        local = _nbctl(f"unix:{member.path('sock')}", "--no-leader-only")
        _until(lambda local=local: {r["name"] for r in rows(local, "Logical_Switch_Port")}
               >= {p["id"] for p in ports}, 10, f"the ports on nb{member.n}")


@dataclass
class Outcome:
    name: str
    key: str
    attempts: int = 0
    unavailable: int = 0
    first_503: str = ""  # how long the first 503 took and what it said
    response: Any = None
    done_at: float = 0.0


def _create_until_done(api: ApiClient, network_id: str, outcome: Outcome, deadline: float,
                       errors: list[str]) -> None:
    """POST one port, retrying on 503 with the same Idempotency-Key until it succeeds."""
    body = {"name": outcome.name}
    while True:
        outcome.attempts += 1
        start = time.monotonic()
        resp = api.post(f"/v1/networks/{network_id}/ports", body,
                        headers={"Idempotency-Key": outcome.key})
        elapsed = time.monotonic() - start
        if elapsed > REQUEST_BOUND:
            errors.append(f"{outcome.name} attempt {outcome.attempts}: {resp.status_code} "
                          f"after {elapsed:.1f} s (bound {REQUEST_BOUND} s)")
        if resp.status_code == 503:
            assert int(resp.headers["Retry-After"]) >= 1
            outcome.unavailable += 1
            if not outcome.first_503:
                outcome.first_503 = f"{elapsed:.2f} s: {resp.get_json().get('detail')}"
            assert time.monotonic() < deadline, (
                f"{outcome.name} still 503 after {outcome.attempts} attempts: "
                f"{resp.get_json()}")
            time.sleep(RETRY_SLEEP)
            continue
        assert resp.status_code == 201, (outcome.name, outcome.attempts, resp.status_code,
                                         resp.data[:500])
        outcome.response = resp
        outcome.done_at = time.monotonic()
        return


def test_leader_failover(cluster: Cluster, gateway_app: Any) -> None:
    tenant = unique("tenant")
    api = ApiClient(gateway_app.test_client(), tenant)
    network = api.network(cidr="10.71.0.0/24")
    tag = uuid.uuid4().hex[:8]
    outcomes = [Outcome(f"fo-{i:02d}", f"raft-{tag}-{i:02d}")
                for i in range(WRITES_BEFORE_KILL + WRITES_AFTER_KILL)]
    errors: list[str] = []

    for outcome in outcomes[:WRITES_BEFORE_KILL]:
        _create_until_done(api, network["id"], outcome, time.monotonic() + REQUEST_BOUND,
                           errors)
        assert outcome.unavailable == 0, "503 before any failure"

    leader = cluster.leader()
    survivors = [m for m in cluster.members if m is not leader]
    # the kill lands while the next write is in flight (or about to be)
    killed: list[float] = []
    killer = threading.Timer(0.002, lambda: (leader.kill(), killed.append(time.monotonic())))
    killer.start()
    deadline = time.monotonic() + FAILOVER_BUDGET
    try:
        for outcome in outcomes[WRITES_BEFORE_KILL:]:
            _create_until_done(api, network["id"], outcome, deadline, errors)
    finally:
        killer.join()
    assert killed, "the leader was not killed"
    assert not errors, errors

    done = [o.done_at for o in outcomes]
    gaps = [b - a for a, b in itertools.pairwise(done)]
    longest = max(gaps)
    worst = outcomes[gaps.index(longest) + 1]
    retried = [o for o in outcomes if o.unavailable]
    replayed = [o for o in outcomes if o.response.headers.get("Idempotent-Replayed")]
    print(f"\nRAFT failover: killed nb{leader.n}; longest gap between two successful writes "
          f"{longest:.2f} s (before {worst.name}); {len(retried)} writes saw 503 "
          f"({sum(o.unavailable for o in outcomes)} in all), {len(replayed)} were replays; "
          f"last write done {done[-1] - killed[0]:.2f} s after the kill")
    for o in retried:
        print(f"  {o.name}: {o.unavailable} x 503, the first after {o.first_503}")
    # A replay normally answers a retry. On a first attempt it means the dying leader
    # committed the transaction without acknowledging it and ovsdbapp re-ran the request
    # after reconnecting, which then found its own row by the key. The port still exists
    # exactly once, which is what is checked below.
    for o in replayed:
        if not o.unavailable:
            print(f"  {o.name}: replayed on its first attempt (its own commit, re-run)")

    # every create landed exactly once: distinct ids, names, addresses, and as many rows
    docs = [o.response.get_json() for o in outcomes]
    n = len(outcomes)
    assert len({d["id"] for d in docs}) == n
    assert [d["name"] for d in docs] == [o.name for o in outcomes]
    ips = [d["ips"][0] for d in docs]
    macs = [d["mac"] for d in docs]
    assert len(set(ips)) == n, Counter(ips).most_common(3)
    assert len(set(macs)) == n, Counter(macs).most_common(3)

    nbctl = _nbctl(cluster.remotes(survivors))
    lsps = _ports_in_ovn(nbctl, network["id"])
    names = Counter(r["external_ids"][PREFIX + "name"] for r in lsps)
    assert names == Counter(o.name for o in outcomes), names.most_common(3)
    assert {r["name"] for r in lsps} == {d["id"] for d in docs}
    addresses = [as_list(r["addresses"])[0].split() for r in lsps]
    assert sorted(a[0] for a in addresses) == sorted(macs)
    assert sorted(a[1] for a in addresses) == sorted(ips)
    assert {d["id"] for d in _list_ports(api, network["id"])} == {d["id"] for d in docs}

    # the killed member comes back on its own database file and rejoins
    leader.start()
    _until(lambda: cluster.rejoined(leader), 20, f"nb{leader.n} rejoining the cluster")

    # another gateway process on the same cluster sees everything the first one wrote
    second = _make_app(cluster.remotes())
    try:
        other = ApiClient(second.test_client(), tenant)
        want = {d["id"] for d in docs}

        def sees_all() -> bool:
            resp = other.get(f"/v1/networks/{network['id']}/ports?limit=1000")
            return resp.status_code == 200 and {p["id"] for p in resp.get_json()["items"]} == want

        _until(sees_all, 15, "the second gateway seeing every port")
        assert other.get(f"/v1/ports/{docs[-1]['id']}").get_json()["ips"] == [ips[-1]]
        # and both keep writing through the cluster with its restarted member
        late = other.port(network["id"])
        _until(lambda: api.get(f"/v1/ports/{late['id']}").status_code == 200, 10,
               "the first gateway seeing the second's port")
    finally:
        second.extensions["gateway"].nb.stop()


def test_failover_window(cluster: Cluster, gateway_app: Any) -> None:
    """Writers keep writing while the leader is SIGKILLed, FAILOVER_RUNS times: each time the
    span from the first 503 to the last stays within the election timer + 2 s, every write
    after that succeeds, and nothing but 200 and 503 (with Retry-After) is ever answered."""
    bound = cluster.election_timer() + FAILOVER_SLACK
    windows: list[Window] = []
    with WriteLoad(gateway_app, request_bound=REQUEST_BOUND) as load:
        for run in range(FAILOVER_RUNS):
            start = time.monotonic()
            assert load.wait_recovered(start, 15), f"run {run}: writers not writing"
            leader = cluster.leader()
            killed = time.monotonic()
            leader.kill()
            gone = time.monotonic()  # no request sent from now on can reach the old leader
            assert load.wait_recovered(gone, FAILOVER_BUDGET), \
                f"run {run}: writes still failing {FAILOVER_BUDGET} s after the kill"
            settled = time.monotonic() + 0.5  # late 503s would show here
            time.sleep(0.5)
            windows.append(window(load.since(killed, settled), killed, gone))
            print(f"\nkill {run + 1} (nb{leader.n}): {windows[-1]}")
            leader.start()
            _until(lambda leader=leader: cluster.rejoined(leader), 20,
                   f"nb{leader.n} rejoining the cluster")
    print(f"\nRAFT leader SIGKILL x {len(windows)}, election timer {bound - FAILOVER_SLACK:g} s: "
          f"503 window min/median/max {spread(w.window for w in windows)}; recovered "
          f"{spread(w.recovered for w in windows)}; longest request "
          f"{spread(w.longest for w in windows)}")
    assert not load.errors, load.errors[:10]
    too_long = [(i + 1, str(w)) for i, w in enumerate(windows)
                if w.window > bound or w.recovered > bound]
    assert not too_long, f"503 window or recovery above {bound:g} s: {too_long}"


def test_standalone_restart_window() -> None:
    """A standalone database stopped and started again RESTART_OUTAGE s later: the span
    from the first 503 to the last stays within the outage + 1 s, every time."""
    _need_tools()
    directory = Path(tempfile.mkdtemp(prefix="gw-restart-", dir="/tmp"))
    windows: list[tuple[float, Window]] = []
    try:
        box = sandbox.start(directory)
        application = _make_app(box.nb_unix)
        try:
            with WriteLoad(application, request_bound=REQUEST_BOUND) as load:
                for run in range(FAILOVER_RUNS):
                    start = time.monotonic()
                    assert load.wait_recovered(start, 15), f"run {run}: writers not writing"
                    stopped = time.monotonic()
                    assert sandbox.stop(directory)
                    gone = time.monotonic()
                    time.sleep(RESTART_OUTAGE)
                    sandbox.start(directory)
                    outage = time.monotonic() - stopped
                    assert load.wait_recovered(gone, FAILOVER_BUDGET), \
                        f"run {run}: writes still failing after the restart"
                    settled = time.monotonic() + 0.5
                    time.sleep(0.5)
                    windows.append((outage, window(load.since(stopped, settled), stopped, gone)))
                    print(f"\nrestart {run + 1}: outage {outage:.2f} s, {windows[-1][1]}")
        finally:
            application.extensions["gateway"].nb.stop()
    finally:
        sandbox.stop(directory)
        shutil.rmtree(directory, ignore_errors=True)
    print(f"\nstandalone restart x {len(windows)}: outage {spread(o for o, _ in windows)}; "
          f"503 window {spread(w.window for _, w in windows)}; recovered "
          f"{spread(w.recovered for _, w in windows)}")
    assert not load.errors, load.errors[:10]
    too_long = [(i + 1, f"outage {o:.2f} s", str(w)) for i, (o, w) in enumerate(windows)
                if max(w.window, w.recovered) > o + RESTART_SLACK]
    assert not too_long, \
        f"503 window or recovery above the outage + {RESTART_SLACK:g} s: {too_long}"

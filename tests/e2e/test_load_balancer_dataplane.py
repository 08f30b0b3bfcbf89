"""Load balancers through the API, checked with packets: a VIP inside a network spreads
connections over its backends, follows backend changes and health checks, keeps a client on
one backend with session affinity but never on a dead one, balances UDP, and serves an
external-network VIP to an outside host through a gateway.

Session affinity with a health check relies on the gateway's health watch (HealthWatch):
OVN 23.03 alone keeps a client on its backend after the service monitor marks it offline
(the control test shows it with the watch paused); the watch takes offline backends out of
the traffic load balancer's vips while a probe load balancer keeps them monitored.

Backends are hosts bound to the tenant's ports, each running a server that answers with the
host's name; a client host on the same network connects to the VIP. Servers are started and
stopped by pid (Hosts.start / sandbox_hosts.terminate), never by name.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from gateway import sandbox
from gateway.sandbox import hosts as sandbox_hosts
from gateway.services.load_balancers import HealthWatch

from helpers.api import ApiClient, patch_ok, post_created, unique
from helpers.dataplane import Hosts, host_addr, ip4, tcp_reply
from helpers.nb import rows
from helpers.waiting import wait_until

pytestmark = pytest.mark.e2e

CIDR = "10.60.0.0/24"
VIP = "10.60.0.100"  # ports get the first addresses of the cidr
VIP_PORT, BACKEND_PORT = 80, 8080
LISTENERS = [{"port": VIP_PORT, "backend_port": BACKEND_PORT}]
FAST_CHECK = {"interval": 1, "timeout": 1, "success_count": 1, "failure_count": 1}
ROUNDS = 20  # connections per sample
WAIT = 30  # seconds for flows to follow an API write
HEALTH_WAIT = 15  # seconds for a health change to reach the traffic path

# One datagram to VIP PORT, and the answer printed (nothing after a second). A socat client
# would wait its -t timeout after every answer too; this one returns as soon as it has one.
UDP_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
s.connect((sys.argv[1], int(sys.argv[2])))
s.send(b"hello\\n")
try:
    print(s.recv(512).decode().strip())
except OSError:
    pass
"""

# Answers every datagram on PORT with NAME, from one process. (`socat UDP-RECVFROM:PORT,fork
# SYSTEM:...` loses datagrams that follow closely, even on loopback: the child forked for one
# datagram shares the socket, reads the next one and writes it to its finished SYSTEM.)
UDP_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
while True:
    _, peer = s.recvfrom(512)
    s.sendto(sys.argv[2].encode() + b"\\n", peer)
"""

EXTERNAL: dict[str, Any] = {"cidr": "172.16.9.0/24", "gateway_ip": "172.16.9.1",
            "allocation_pools": [{"start": "172.16.9.10", "end": "172.16.9.200"}],
            "physical_network": sandbox.PHYSNET}


def _tag() -> str:
    return uuid.uuid4().hex[:6]


@dataclass
class Site:
    """One tenant network with a client host and backend hosts serving on BACKEND_PORT."""

    api: Any
    hosts: Hosts
    net: dict[str, Any]
    client: str
    backends: dict[str, dict[str, Any]]  # host name -> its API port
    udp: bool = False
    servers: dict[str, subprocess.Popen[Any]] = field(default_factory=dict)

    def serve(self, name: str) -> None:
        argv = ([sys.executable, "-c", UDP_SERVER, str(BACKEND_PORT), name] if self.udp else
                ["socat", "-t", "5", f"TCP-LISTEN:{BACKEND_PORT},reuseaddr,fork",
                 f"SYSTEM:echo {name}"])
        self.servers[name] = self.hosts.start(name, *argv)

    def stop(self, name: str) -> None:
        """Stop NAME's server now (by its process group); Hosts.cleanup no longer owns it."""
        proc = self.servers.pop(name)
        self.hosts.procs.remove(proc)
        sandbox_hosts.terminate(proc)

    def ip(self, name: str) -> str:
        return ip4(self.backends[name])

    def reply(self, vip: str = VIP, port: int = VIP_PORT) -> str:
        """Which backend answers one new connection (datagram) of the client ('' if none)."""
        if not self.udp:
            return tcp_reply(self.hosts, self.client, vip, port)
        try:
            out = self.hosts.run(self.client, sys.executable, "-c", UDP_CLIENT, vip, str(port),
                                 timeout=10)
        except subprocess.TimeoutExpired:
            return ""
        return out.stdout.strip()

    def sample(self, count: int = ROUNDS) -> Counter[str]:
        return Counter(self.reply() for _ in range(count))


def _site(api: Any, hosts: Hosts, backends: int = 2, udp: bool = False,
          gateway_route: bool = False) -> Site:
    tag = _tag()
    net = api.network(cidr=CIDR)
    client_port = api.port(net["id"])
    route = net["gateway_ip"] if gateway_route else None
    hosts.add(f"lc{tag}", client_port["id"], client_port["mac"], host_addr(client_port, net),
              route)
    site = Site(api, hosts, net, f"lc{tag}", {}, udp)
    for i in range(backends):
        name, port = f"lb{i}{tag}", api.port(net["id"])
        hosts.add(name, port["id"], port["mac"], host_addr(port, net), route)
        site.backends[name] = port
        site.serve(name)
    return site


def _lb(site: Site, **fields: Any) -> dict[str, Any]:
    """A load balancer on VIP in the site's network, over all its backends."""
    backends = [{"ip": site.ip(n)} for n in site.backends]
    body = {"name": unique("lb"), "vip": VIP, "networks": [site.net["id"]],
            "listeners": LISTENERS, "backends": backends, **fields}
    lb = post_created(site.api, "/v1/load-balancers", body)
    assert lb["vip"] == VIP
    return lb


def _health(site: Site, lb: dict[str, Any]) -> dict[str, str]:
    """Backend host name -> status from GET status.backends."""
    got = site.api.get(f"/v1/load-balancers/{lb['id']}").get_json()
    by_ip = {b["ip"]: b["status"] for b in got["status"]["backends"]
             if b["port"] == BACKEND_PORT}
    return {n: by_ip.get(site.ip(n), "absent") for n in site.backends}


def _settled(site: Site, expected: set[str], streak: int = 10) -> Callable[[], bool]:
    """A check: STREAK new connections in a row are answered, all by backends in EXPECTED."""
    def check() -> bool:
        return all(site.reply() in expected for _ in range(streak))
    return check


def _ovn_lb(nbctl: Callable[..., str], lb: dict[str, Any], probe: bool = False) -> dict[str, Any]:
    name = f"ovngw-lb-{lb['id']}" + ("-probe" if probe else "")
    (row,) = rows(nbctl, "Load_Balancer", f"name={name}")
    return row


def _monitor(sbctl: Callable[..., str], port: dict[str, Any]) -> list[str]:
    """Statuses of the SB Service_Monitor rows probing PORT's address on BACKEND_PORT."""
    found = rows(sbctl, "Service_Monitor", f'logical_port="{port["id"]}"',
                 f'ip="{ip4(port)}"', f"port={BACKEND_PORT}")
    return [str(r["status"]) for r in found]


def _health_watch(app: Any) -> HealthWatch:
    (watch,) = [w for w in app.extensions["gateway"].services.workers
                if isinstance(w, HealthWatch)]
    return watch


# --- the tests -----------------------------------------------------------------------------


def test_vip_spreads_connections_over_backends(dp_api: Any, hosts: Hosts) -> None:
    site = _site(dp_api, hosts)
    lb = _lb(site)
    names = set(site.backends)
    wait_until(lambda: site.reply() in names, timeout=WAIT, what="client -> VIP")
    seen = site.sample()
    assert set(seen) == names, seen  # every connection answered, by both backends

    # 2. A backend taken out through the API gets no new connections.
    kept, gone = sorted(names)
    patched = patch_ok(dp_api, f"/v1/load-balancers/{lb['id']}",
                       {"backends": [{"ip": site.ip(kept)}]})
    assert [b["ip"] for b in patched["backends"]] == [site.ip(kept)]
    wait_until(_settled(site, {kept}), timeout=WAIT, what=f"{gone} no longer chosen")
    assert site.sample() == Counter({kept: ROUNDS})


def test_health_check_takes_a_dead_backend_out_and_back(dp_api: Any, hosts: Hosts) -> None:
    site = _site(dp_api, hosts)
    lb = _lb(site, health_check=FAST_CHECK)
    names = set(site.backends)
    wait_until(lambda: set(_health(site, lb).values()) == {"online"}, timeout=WAIT,
               what="both backends online")
    wait_until(lambda: set(site.sample()) == names, timeout=WAIT, what="both backends answer")

    dead, alive = sorted(names)
    site.stop(dead)
    wait_until(lambda: _health(site, lb) == {dead: "offline", alive: "online"},
               timeout=HEALTH_WAIT, what=f"{dead} offline")
    wait_until(_settled(site, {alive}), timeout=HEALTH_WAIT, what=f"only {alive} answers")
    assert site.sample() == Counter({alive: ROUNDS})

    site.serve(dead)
    wait_until(lambda: set(_health(site, lb).values()) == {"online"}, timeout=HEALTH_WAIT,
               what=f"{dead} online again")
    wait_until(lambda: dead in site.sample(), timeout=HEALTH_WAIT, what=f"{dead} answers again")


def test_session_affinity_keeps_a_client_on_one_backend(dp_api: Any, hosts: Hosts) -> None:
    site = _site(dp_api, hosts)
    _lb(site, session_affinity_timeout=60)
    names = set(site.backends)
    wait_until(lambda: site.reply() in names, timeout=WAIT, what="client -> VIP")
    seen = site.sample(30)
    assert len(seen) == 1 and set(seen) <= names, seen


def _pinned_client(dp_api: Any, hosts: Hosts, samples: int) -> tuple[Any, Any, str, str]:
    """A load balancer with affinity and a fast health check, both backends online, and
    the client's backend: (site, load balancer, pinned backend, the other one)."""
    site = _site(dp_api, hosts)
    lb = _lb(site, session_affinity_timeout=60, health_check=FAST_CHECK)
    names = set(site.backends)
    wait_until(lambda: set(_health(site, lb).values()) == {"online"}, timeout=WAIT,
               what="both backends online")
    wait_until(lambda: site.reply() in names, timeout=WAIT, what="client -> VIP")
    seen = site.sample(samples)
    assert len(seen) == 1 and set(seen) <= names, seen
    (pinned,) = seen
    (other,) = names - {pinned}
    return site, lb, pinned, other


def test_affinity_never_pins_a_client_to_a_dead_backend(
        dp_api: Any, hosts: Hosts, nbctl: Callable[..., str],
        sbctl: Callable[..., str]) -> None:
    site, lb, pinned, other = _pinned_client(dp_api, hosts, samples=ROUNDS)
    key = f"{VIP}:{VIP_PORT}"
    both = {f"{site.ip(n)}:{BACKEND_PORT}" for n in site.backends}
    assert set(_ovn_lb(nbctl, lb)["vips"][key].split(",")) == both

    site.stop(pinned)
    wait_until(_settled(site, {other}), timeout=HEALTH_WAIT,
               what=f"the client moved from the dead {pinned} to {other}")
    assert site.sample() == Counter({other: ROUNDS})
    assert _health(site, lb) == {pinned: "offline", other: "online"}
    # The traffic load balancer leaves the dead backend out; the probe one still holds it,
    # and OVN keeps probing it.
    assert _ovn_lb(nbctl, lb)["vips"][key] == f"{site.ip(other)}:{BACKEND_PORT}"
    assert set(_ovn_lb(nbctl, lb, probe=True)["vips"][key].split(",")) == both
    assert _monitor(sbctl, site.backends[pinned]) == ["offline"]

    site.serve(pinned)
    wait_until(lambda: _health(site, lb)[pinned] == "online", timeout=HEALTH_WAIT,
               what=f"{pinned} online again")
    wait_until(lambda: set(_ovn_lb(nbctl, lb)["vips"][key].split(",")) == both,
               timeout=HEALTH_WAIT, what=f"{pinned} back in the vips")
    assert _monitor(sbctl, site.backends[pinned]) == ["online"]


def test_control_without_the_health_watch_affinity_pins_to_the_dead_backend(
        dp_app: Any, dp_api: Any, hosts: Hosts, monkeypatch: pytest.MonkeyPatch) -> None:
    """What OVN 23.03 does alone, the gateway's health watch paused: the service monitor
    marks the client's backend offline, yet affinity keeps sending every new connection of
    the client there. The watch resumed, the client moves."""
    site, lb, pinned, other = _pinned_client(dp_api, hosts, samples=10)

    monkeypatch.setattr(_health_watch(dp_app), "sweep", lambda: 0)
    site.stop(pinned)
    wait_until(lambda: _health(site, lb)[pinned] == "offline", timeout=HEALTH_WAIT,
               what=f"{pinned} offline")
    time.sleep(2)  # longer than the watch takes to move the client (about 1.5 s)
    assert site.sample() == Counter({"": ROUNDS})  # every one to the dead backend

    monkeypatch.undo()
    wait_until(_settled(site, {other}), timeout=HEALTH_WAIT,
               what=f"the client moved to {other} once the watch runs")


def test_health_of_tenants_with_the_same_addresses_stays_apart(
        new_tenant: Any, hosts: Hosts, nbctl: Callable[..., str],
        sbctl: Callable[..., str]) -> None:
    a, b = _site(new_tenant(), hosts), _site(new_tenant(), hosts)
    lb_a, lb_b = _lb(a, health_check=FAST_CHECK), _lb(b, health_check=FAST_CHECK)
    assert sorted(map(ip4, a.backends.values())) == sorted(map(ip4, b.backends.values()))
    ports = [*a.backends.values(), *b.backends.values()]
    # Ready by the southbound itself (the API's view is what is under test).
    wait_until(lambda: all(_monitor(sbctl, p) == ["online"] for p in ports), timeout=WAIT,
               what="every backend online in the southbound")
    dead, alive = sorted(a.backends)
    a.stop(dead)
    # OVN keeps one monitor per logical port: A's says offline, B's (same ip) online.
    wait_until(lambda: _monitor(sbctl, a.backends[dead]) == ["offline"],
               timeout=HEALTH_WAIT, what="A's backend offline in the southbound")
    b_twin = next(n for n, p in b.backends.items() if ip4(p) == a.ip(dead))
    assert _monitor(sbctl, b.backends[b_twin]) == ["online"]
    key = f"{VIP}:{VIP_PORT}"

    def apart() -> bool:
        return (_health(a, lb_a) == {dead: "offline", alive: "online"}
                and set(_health(b, lb_b).values()) == {"online"}
                and _ovn_lb(nbctl, lb_a)["vips"][key] == f"{a.ip(alive)}:{BACKEND_PORT}"
                and len(_ovn_lb(nbctl, lb_b)["vips"][key].split(",")) == 2)

    wait_until(apart, timeout=5, what="each tenant sees its own backends' health")


def test_udp_vip(dp_api: Any, hosts: Hosts) -> None:
    site = _site(dp_api, hosts, udp=True)
    _lb(site, protocol="udp")
    names = set(site.backends)
    wait_until(lambda: site.reply() in names, timeout=WAIT, what="client -> UDP VIP")
    seen = site.sample()
    assert set(seen) == names, seen


# --- an external-network VIP -----------------------------------------------------------------


@pytest.fixture(scope="module")
def external_net(dp_app: Any) -> Iterator[dict[str, Any]]:
    admin = ApiClient(dp_app.test_client(), unique("admin"), scope="admin")
    net = post_created(admin, "/v1/external-networks", {"name": unique("ext"), **EXTERNAL})
    try:
        yield net
    finally:
        # The tenants' load balancers and gateways are gone by now (new_tenant purges them).
        assert admin.delete(f"/v1/external-networks/{net['id']}").status_code == 204


def test_outside_host_reaches_an_external_vip(dp_api: Any, hosts: Hosts,
                                              dataplane: sandbox.Sandbox,
                                              external_net: dict[str, Any]) -> None:
    site = _site(dp_api, hosts, gateway_route=True)
    gw = post_created(dp_api, "/v1/gateways", {
        "name": unique("gw"), "networks": [{"network_id": site.net["id"]}],
        "external": {"network_id": external_net["id"]}})
    lb = post_created(dp_api, "/v1/load-balancers", {
        "name": unique("lb"), "external_network_id": external_net["id"],
        "gateways": [gw["id"]], "listeners": LISTENERS,
        "backends": [{"ip": site.ip(n)} for n in site.backends]})
    vip = lb["vip"]  # allocated from the pool, like the gateway's address
    pool = [ipaddress.IPv4Address(a) for a in EXTERNAL["allocation_pools"][0].values()]
    assert pool[0] <= ipaddress.IPv4Address(vip) <= pool[1], vip
    assert vip != gw["external"]["ip"]
    outside = f"lo{_tag()}"
    hosts.add_outside(outside, dataplane.nb_unix, external_net["id"])
    names = set(site.backends)
    wait_until(lambda: tcp_reply(hosts, outside, vip, VIP_PORT) in names, timeout=WAIT,
               what="outside -> external VIP")
    seen = Counter(tcp_reply(hosts, outside, vip, VIP_PORT) for _ in range(ROUNDS))
    assert set(seen) == names, seen

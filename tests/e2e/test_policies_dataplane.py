"""Network policies made through /v1/policies, checked with packets on a real data plane.

Every test gets a fresh tenant with one network and three hosts labelled app=db, app=web and
app=other, each running TCP servers (socat, stopped by process group). Semantics under test
(API.md "Policies"): a port selected by a policy with ingress (egress) rules is isolated in that
direction; rules are ordered by policy priority, deny first at equal priority; replies of
allowed stateful connections pass; membership follows the ports' labels.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway import sandbox

from helpers.dataplane import Hosts, host_addr, ip4, ping, stays, tcp_reply
from helpers.waiting import wait_until

pytestmark = pytest.mark.e2e

CONVERGE = 30.0  # seconds an API change may take to reach the flows (seen: about 1 s)
ROLES = ("db", "web", "other")
SERVERS = {"db": (5432, 8080), "web": (5432,), "other": (5432,)}


@dataclass
class Trio:
    api: Any
    net: dict[str, Any]
    ports: dict[str, dict[str, Any]]  # role -> API port
    hosts: Hosts
    tag: str

    def host(self, role: str) -> str:
        return f"{role[0]}{self.tag}"

    def ip(self, role: str) -> str:
        return ip4(self.ports[role])

    def reply(self, src: str, dst: str, port: int) -> str:
        return tcp_reply(self.hosts, self.host(src), self.ip(dst), port)

    def connects(self, src: str, dst: str, port: int) -> bool:
        """A TCP connection from SRC to DST:PORT gets the server's greeting."""
        return self.reply(src, dst, port) == f"{dst}{port}"

    def pings(self, src: str, dst: str, count: int = 1) -> bool:
        return ping(self.hosts, self.host(src), self.ip(dst), count=count)

    def policy(self, body: dict[str, Any]) -> dict[str, Any]:
        body = {"name": f"p-{uuid.uuid4().hex[:8]}", **body}
        resp = self.api.post("/v1/policies", body)
        assert resp.status_code == 201, resp.get_json()
        return dict(resp.get_json())

    def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = self.api.patch(path, body)
        assert resp.status_code == 200, resp.get_json()
        return dict(resp.get_json())

    # Convergence: poll until a connection is (not) possible; then assert the rest directly.
    def until_connects(self, src: str, dst: str, port: int) -> None:
        wait_until(lambda: self.connects(src, dst, port), CONVERGE,
                   what=f"{src} -> {dst}:{port} connects")

    def until_blocked(self, src: str, dst: str, port: int) -> None:
        wait_until(lambda: not self.connects(src, dst, port), CONVERGE,
                   what=f"{src} -> {dst}:{port} blocked")


def _allow_5432_from_web_on_db(**extra: Any) -> dict[str, Any]:
    return {"selector": {"app": "db"},
            "ingress": [{"action": "allow", "peers": [{"selector": {"app": "web"}}],
                         "protocol": "tcp", "ports": [5432]}], **extra}


@pytest.fixture
def trio(dp_api: Any, hosts: Hosts) -> Iterator[Trio]:
    """db, web and other on one network, wired, servers up, everything reachable."""
    tag = uuid.uuid4().hex[:6]
    net = dp_api.network(cidr="10.70.0.0/24")
    ports = {role: dp_api.port(net["id"], name=f"{role}-{tag}", labels={"app": role})
             for role in ROLES}
    t = Trio(dp_api, net, ports, hosts, tag)
    for role in ROLES:
        hosts.add(t.host(role), ports[role]["id"], ports[role]["mac"],
                  host_addr(ports[role], net))
        for port in SERVERS[role]:
            # Greets with role+port, e.g. "db5432"; the hosts fixture stops it by group.
            hosts.start(t.host(role), "socat", f"TCP-LISTEN:{port},reuseaddr,fork",
                        f"SYSTEM:echo {role}{port}")
    wait_until(lambda: t.pings("web", "db") and t.pings("other", "db"), CONVERGE,
               what="hosts reach each other")
    for src, dst, port in (("web", "db", 5432), ("web", "db", 8080), ("db", "web", 5432),
                           ("other", "db", 5432), ("web", "other", 5432)):
        t.until_connects(src, dst, port)  # the servers listen; no policy yet
    yield t


def test_ingress_allow_isolates_the_selected_port(trio: Trio) -> None:
    policy = trio.policy(_allow_5432_from_web_on_db())
    assert policy["status"]["selected_ports"] == 1

    trio.until_blocked("web", "db", 8080)  # isolated: what no rule allows is dropped
    assert trio.connects("web", "db", 5432)
    assert not trio.connects("other", "db", 5432)  # not a selected peer
    assert not trio.pings("web", "db")  # ICMP is not allowed
    # web is not isolated, and replies to db's own connections pass.
    assert trio.pings("db", "web", count=2)
    assert trio.connects("db", "web", 5432)
    # Ports no policy selects still accept everything.
    assert trio.connects("web", "other", 5432)
    assert trio.pings("web", "other")


def test_stateful_replies_of_the_isolated_ports_own_connections(trio: Trio) -> None:
    # db is isolated for ingress with a rule that lets nothing of ours in.
    trio.policy({"selector": {"app": "db"},
                 "ingress": [{"action": "allow", "peers": [{"cidr": "192.0.2.0/24"}],
                              "protocol": "tcp", "ports": [9]}]})
    trio.until_blocked("web", "db", 5432)
    assert not trio.pings("other", "db")
    # Connections db opens itself get their replies (conntrack), to both neighbours.
    assert trio.connects("db", "web", 5432)
    assert trio.connects("db", "other", 5432)
    assert trio.pings("db", "other", count=2)


def test_egress_rule_limits_destinations(trio: Trio) -> None:
    trio.policy({"selector": {"app": "web"},
                 "egress": [{"action": "allow", "peers": [{"selector": {"app": "db"}}],
                             "protocol": "tcp", "ports": [5432]}]})
    trio.until_blocked("web", "other", 5432)
    assert trio.connects("web", "db", 5432)
    assert not trio.connects("web", "db", 8080)  # only 5432 to db
    assert not trio.pings("web", "db")
    # web is not isolated for ingress: others reach it, its replies pass the egress ACLs.
    assert trio.connects("other", "web", 5432)
    assert trio.connects("db", "web", 5432)


def test_explicit_deny_wins_by_priority_and_swapping_reverses(trio: Trio) -> None:
    web = [{"selector": {"app": "web"}}]
    deny = trio.policy({"selector": {"app": "db"}, "priority": 100,
                        "ingress": [{"action": "deny", "peers": web, "protocol": "tcp",
                                     "ports": [5432]}]})
    allow = trio.policy({"selector": {"app": "db"}, "priority": 500,
                         "ingress": [{"action": "allow", "peers": web, "protocol": "tcp",
                                      "ports": [5432]}]})
    trio.until_blocked("web", "db", 5432)
    assert stays(lambda: not trio.connects("web", "db", 5432), 1.5)

    # Swap: the allow (now 100) is evaluated before the deny (now 500).
    trio.patch(f"/v1/policies/{deny['id']}", {"priority": 500})
    # In between both sit at 500: deny wins at equal priority.
    assert stays(lambda: not trio.connects("web", "db", 5432), 1.5)
    trio.patch(f"/v1/policies/{allow['id']}", {"priority": 100})
    trio.until_connects("web", "db", 5432)
    assert not trio.connects("other", "db", 5432)  # still isolated otherwise

    # And back again.
    trio.patch(f"/v1/policies/{allow['id']}", {"priority": 900})
    trio.until_blocked("web", "db", 5432)


def test_relabelled_ports_gain_and_lose_access(trio: Trio) -> None:
    policy = trio.policy(_allow_5432_from_web_on_db())
    trio.until_blocked("other", "db", 5432)
    assert trio.connects("web", "db", 5432)
    web = f"/v1/ports/{trio.ports['web']['id']}"

    trio.patch(web, {"labels": {"app": "other"}})
    trio.until_blocked("web", "db", 5432)
    trio.patch(web, {"labels": {"app": "web"}})
    trio.until_connects("web", "db", 5432)
    # The other host gains access by taking the label.
    trio.patch(f"/v1/ports/{trio.ports['other']['id']}", {"labels": {"app": "web"}})
    trio.until_connects("other", "db", 5432)

    # The selected port itself: relabelled, it leaves the policy and is open again.
    trio.patch(f"/v1/ports/{trio.ports['db']['id']}", {"labels": {"app": "db-old"}})
    trio.until_connects("web", "db", 8080)
    assert trio.pings("web", "db")
    after = trio.api.get(f"/v1/policies/{policy['id']}").get_json()
    assert after["revision"] == policy["revision"]  # the policy itself was never touched
    assert after["status"]["selected_ports"] == 0


def test_deleting_the_policy_restores_open_traffic(trio: Trio) -> None:
    policy = trio.policy(_allow_5432_from_web_on_db())
    trio.until_blocked("web", "db", 8080)
    assert not trio.pings("web", "db")

    assert trio.api.delete(f"/v1/policies/{policy['id']}").status_code == 204
    trio.until_connects("web", "db", 8080)
    assert trio.pings("web", "db")
    assert trio.connects("other", "db", 5432)
    assert trio.connects("web", "db", 5432)


def test_stateless_allow(trio: Trio) -> None:
    policy = trio.policy(_allow_5432_from_web_on_db(stateful=False))
    rules = trio.api.get(f"/v1/policies/{policy['id']}/rules").get_json()
    assert {a["action"] for a in rules["acls"] if a["rule"] == "ingress/0"} == \
        {"allow-stateless"}
    trio.until_blocked("web", "db", 8080)
    # Forward packets match the stateless rule; db's answers leave through a port that is
    # not isolated for egress and reach a port that is not isolated for ingress.
    assert trio.connects("web", "db", 5432)
    assert not trio.connects("other", "db", 5432)
    # db's own connections get their replies whether or not other policies make the switch
    # stateful: a stateless policy keeps conntrack on for them (rule "conntrack").
    assert trio.connects("db", "web", 5432)
    assert trio.pings("db", "web")


def test_cidr_peer_port_range_and_icmp(trio: Trio) -> None:
    trio.policy({"selector": {"app": "db"}, "ingress": [
        {"action": "allow", "peers": [{"cidr": f"{trio.ip('web')}/32"}], "protocol": "tcp",
         "ports": ["5000-5500"]},
        {"action": "allow", "peers": [{"selector": {"app": "other"}}], "protocol": "icmp"}]})
    trio.until_blocked("web", "db", 8080)  # outside the range
    assert trio.connects("web", "db", 5432)  # inside it, from the cidr
    assert not trio.connects("other", "db", 5432)  # not from the cidr
    assert trio.pings("other", "db", count=2)  # icmp from app=other
    assert not trio.pings("web", "db")  # but not from web


def test_deleted_peer_address_is_forgotten(trio: Trio) -> None:
    policy = trio.policy(_allow_5432_from_web_on_db())
    trio.until_blocked("other", "db", 5432)
    assert trio.connects("web", "db", 5432)

    # web goes away; a newcomer without the label gets its address.
    old_ip = trio.ip("web")
    assert trio.api.delete(f"/v1/ports/{trio.ports['web']['id']}").status_code == 204
    assert trio.hosts.remove(trio.host("web"))
    newcomer = trio.api.port(trio.net["id"], ips=[old_ip], labels={"app": "new"})
    name = f"n{trio.tag}"
    trio.hosts.add(name, newcomer["id"], newcomer["mac"], host_addr(newcomer, trio.net))
    for role in ("db", "other"):  # they still remember web's MAC for that address
        trio.hosts.run(trio.host(role), "ip", "neigh", "flush", "all")
    wait_until(lambda: ping(trio.hosts, name, trio.ip("other")), CONVERGE,
               what="newcomer wired")
    assert tcp_reply(trio.hosts, name, trio.ip("other"), 5432) == "other5432"
    assert stays(lambda: tcp_reply(trio.hosts, name, trio.ip("db"), 5432) == "", 1.0)
    sets = trio.api.get(f"/v1/policies/{policy['id']}/rules").get_json()["address_sets"]
    assert all(ips == [] for ips in sets.values()), sets


def test_stateless_allow_next_to_a_stateful_policy(trio: Trio) -> None:
    """A stateful policy on *another* port of the network must not break a stateless one."""
    trio.policy(_allow_5432_from_web_on_db(stateful=False))
    trio.until_blocked("web", "db", 8080)
    assert trio.connects("web", "db", 5432)

    trio.policy({"selector": {"app": "other"},
                 "ingress": [{"action": "allow", "peers": [{"selector": {"app": "web"}}]}]})
    trio.until_blocked("db", "other", 5432)  # the second policy is in the flows
    assert trio.connects("web", "other", 5432)
    # db is isolated for ingress only and web by no policy: db's answers must reach web.
    # (Failed before the stateless reply ACL: the switch became stateful, the SYN bypassed
    # conntrack as allow-stateless, and db's SYN-ACK was ct.inv in db's zone -> dropped.)
    assert trio.connects("web", "db", 5432), "stateless allow broken by a stateful neighbour"


def test_readdressed_peer_keeps_access(trio: Trio) -> None:
    policy = trio.policy(_allow_5432_from_web_on_db())
    trio.until_blocked("other", "db", 5432)
    assert trio.connects("web", "db", 5432)

    old = trio.ip("web")
    trio.ports["web"] = trio.patch(f"/v1/ports/{trio.ports['web']['id']}",
                                   {"ips": ["10.70.0.50"]})
    host = trio.host("web")
    trio.hosts.run(host, "ip", "addr", "del", f"{old}/24", "dev", "eth0")
    trio.hosts.run(host, "ip", "addr", "add", "10.70.0.50/24", "dev", "eth0")
    wait_until(lambda: trio.pings("web", "other"), CONVERGE, what="web re-addressed")

    # Still labelled app=web: the peer set follows the new address.
    wait_until(lambda: trio.connects("web", "db", 5432), CONVERGE,
               what="re-addressed web -> db:5432")
    sets = trio.api.get(f"/v1/policies/{policy['id']}/rules").get_json()["address_sets"]
    assert sorted(ip for ips in sets.values() for ip in ips) == ["10.70.0.50"]


def test_isolated_port_keeps_arp_and_dhcp(trio: Trio, tmp_path: Path) -> None:
    web = [{"selector": {"app": "web"}}]
    trio.policy({"selector": {"app": "db"},
                 "ingress": [{"action": "allow", "peers": web, "protocol": "tcp",
                              "ports": [5432]}],
                 "egress": [{"action": "allow", "peers": web, "protocol": "tcp",
                             "ports": [5432]}]})
    trio.until_blocked("db", "other", 5432)  # egress isolated
    assert not trio.connects("web", "db", 8080)  # ingress isolated
    assert trio.connects("db", "web", 5432)
    # ARP is never matched by the rules: fresh neighbour lookups both ways still work.
    for role in ("web", "db"):
        trio.hosts.run(trio.host(role), "ip", "neigh", "flush", "all")
    assert trio.connects("web", "db", 5432)
    # DHCP from OVN gets through both ways.
    script = tmp_path / "udhcpc.sh"
    script.write_text('#!/bin/sh\necho "event=$1 ip=$ip"\n')
    script.chmod(0o755)
    out = trio.hosts.run(trio.host("db"), "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f",
                         "-t", "3", "-T", "1", "-s", str(script), timeout=20)
    assert f"event=bound ip={trio.ip('db')}" in out.stdout, out.stdout + out.stderr


def _acl_log_lines(log: Path, since: int, name: str) -> list[str]:
    with log.open("rb") as f:
        f.seek(since)
        text = f.read().decode(errors="replace")
    return [line for line in text.splitlines() if "acl_log" in line and f'name="{name}"' in line]


def test_acl_logging_names_the_policy(trio: Trio, controller_log: Path) -> None:
    start = controller_log.stat().st_size
    policy = trio.policy(_allow_5432_from_web_on_db(
        log={"enabled": True, "severity": "warning"}))
    trio.until_blocked("other", "db", 5432)
    assert trio.connects("web", "db", 5432)
    name = f"{trio.api.tenant}/{policy['name']}"

    def logged() -> list[str]:
        return _acl_log_lines(controller_log, start, name)

    def verdicts() -> set[str]:
        return {m.group(1) for line in logged()
                if (m := re.search(r"verdict=(\w+)", line))}

    wait_until(lambda: {"allow", "drop"} <= verdicts(), timeout=30, what="acl_log lines")
    lines = logged()
    assert all("severity=warning" in line for line in lines), lines
    drop = [line for line in lines if "verdict=drop" in line]
    assert any(f"nw_src={trio.ip('other')}" in line and f"nw_dst={trio.ip('db')}" in line
               and "tp_dst=5432" in line for line in drop), drop
    allow = [line for line in lines if "verdict=allow" in line]
    assert any(f"nw_src={trio.ip('web')}" in line and "tp_dst=5432" in line
               for line in allow), allow


def _trace(dataplane: sandbox.Sandbox, trio: Trio, src: str, dst: str,
           port: int) -> tuple[str, bool, str]:
    """ovn-trace of the first packet of a new TCP connection SRC -> DST:PORT.

    Returns (the ls_out_acl stage's text, whether the packet is output to DST's port, the
    whole trace). Both ct_next()s are told the connection is new, as for a real SYN.
    """
    s, d = trio.ports[src], trio.ports[dst]
    flow = (f'inport == "{s["id"]}" && eth.src == {s["mac"]} && eth.dst == {d["mac"]} && '
            f"ip4.src == {ip4(s)} && ip4.dst == {ip4(d)} && ip.ttl == 64 && "
            f"tcp && tcp.dst == {port}")
    out = subprocess.run(["ovn-trace", f"--db={dataplane.sb_unix}", "--no-friendly-names",
                          "--ct=new", "--ct=new", f"ovngw-{trio.net['id']}", flow],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    # Stages look like " 4. ls_out_acl (northd.c:6445): MATCH, priority P, uuid U" followed
    # by their indented actions.
    acl = re.search(r"^ *\d+\. ls_out_acl .*?(?=^ *\d+\. |^\S|\Z)", out.stdout,
                    re.MULTILINE | re.DOTALL)
    delivered = f'/* output to "{d["id"]}"' in out.stdout
    return (acl.group(0) if acl else ""), delivered, out.stdout


def test_ovn_trace_agrees_with_the_packets(trio: Trio, dataplane: sandbox.Sandbox) -> None:
    policy = trio.policy(_allow_5432_from_web_on_db())
    trio.until_blocked("other", "db", 5432)
    assert trio.connects("web", "db", 5432)
    group = "ovngw_p" + policy["id"].replace("-", "")

    acl, delivered, text = _trace(dataplane, trio, "web", "db", 5432)
    assert delivered, text
    assert f"outport == @{group}" in acl and "tcp.dst == 5432" in acl, text
    assert "drop;" not in acl, text

    for src, port in (("other", 5432), ("web", 8080)):
        assert not trio.connects(src, "db", port)
        acl, delivered, text = _trace(dataplane, trio, src, "db", port)
        assert not delivered, text
        assert "drop;" in acl and f"outport == @{group} && ip)" in acl, text


def test_default_deny_then_allow_policies_add_up(trio: Trio) -> None:
    """Kubernetes' default deny, {"selector": {}, "ingress": []}: every port is isolated for
    ingress with nothing allowed. Allow policies at the default priority then add up:
    exactly their sources get in, a third source stays out."""
    extra = trio.api.port(trio.net["id"], name=f"extra-{trio.tag}", labels={"app": "extra"})
    name = f"x{trio.tag}"
    trio.hosts.add(name, extra["id"], extra["mac"], host_addr(extra, trio.net))
    wait_until(lambda: tcp_reply(trio.hosts, name, trio.ip("db"), 5432) == "db5432", CONVERGE,
               what="the third source reaches db")

    deny_all = trio.policy({"selector": {}, "ingress": []})
    trio.until_blocked("web", "db", 5432)
    assert not trio.connects("other", "db", 5432)
    assert not trio.connects("db", "web", 5432)  # {} selects every port
    assert not trio.pings("web", "other")
    assert stays(lambda: tcp_reply(trio.hosts, name, trio.ip("db"), 5432) == "", 1.0)
    assert deny_all["ingress"] == [] and "egress" not in deny_all
    assert deny_all["status"]["selected_ports"] == 4

    for source in ("web", "other"):
        trio.policy({"selector": {"app": "db"},
                     "ingress": [{"action": "allow", "peers": [{"selector": {"app": source}}],
                                  "protocol": "tcp", "ports": [5432]}]})
    trio.until_connects("web", "db", 5432)
    trio.until_connects("other", "db", 5432)
    # Egress was left out, so it is not isolated: the allowed sources' SYNs leave them, and
    # the replies of the allowed connections pass the sources' isolated ingress.
    assert stays(lambda: tcp_reply(trio.hosts, name, trio.ip("db"), 5432) == "", 1.5)
    assert not trio.connects("web", "db", 8080)  # only what an allow names
    assert not trio.connects("db", "web", 5432)  # web is still isolated itself

"""The data-plane sandbox itself, driven with ovn-nbctl (not the gateway API): hosts bind to
logical switch ports, talk to each other, get DHCP leases from OVN, reach an outside host
through a hand-made gateway router, and two sandboxes stay apart."""

from __future__ import annotations

import functools
import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway import sandbox
from gateway.sandbox import hosts as sandbox_hosts

from helpers.dataplane import Hosts, ctl, tcp_reply
from helpers.waiting import wait_until

pytestmark = pytest.mark.e2e


def _tag() -> str:
    return uuid.uuid4().hex[:6]


def _switch(nbctl: Callable[..., str], name: str, ports: dict[str, tuple[str, str]]) -> None:
    """A logical switch with ports {name: (mac, ip)}, addresses and port security "MAC IP"."""
    args = ["ls-add", name]
    for port, (mac, ip) in ports.items():
        args += ["--", "lsp-add", name, port,
                 "--", "lsp-set-addresses", port, f"{mac} {ip}",
                 "--", "lsp-set-port-security", port, f"{mac} {ip}"]
    nbctl(*args)


def _up(nbctl: Callable[..., str], port: str) -> bool:
    return nbctl("get", "Logical_Switch_Port", port, "up").strip() == "true"


def _ping(hosts: Hosts, name: str, ip: str, count: int = 1) -> bool:
    return hosts.run(name, "ping", "-c", str(count), "-i", "0.2", "-W", "1", ip).returncode == 0


def test_chassis_registered(dataplane: sandbox.Sandbox, sbctl: Callable[..., str]) -> None:
    assert dataplane.dataplane and dataplane.sb_unix
    assert sandbox.system_id(dataplane.dir) in sbctl("--bare", "--columns=name", "list",
                                                     "Chassis").split()
    st = sandbox.status(dataplane.dir)
    daemons = st["daemons"]
    assert isinstance(daemons, dict)
    assert all(d["running"] for d in daemons.values()), daemons
    # A gateway chassis, its physical network on the provider bridge.
    chassis = sbctl("get", "Chassis", sandbox.system_id(dataplane.dir), "other_config")
    assert "enable-chassis-as-gw" in chassis and "physnet1:br-ex" in chassis, chassis
    ovs = functools.partial(ctl, "ovs-vsctl", f"unix:{dataplane.dir / 'db.sock'}")
    assert ovs("list-br").split() == [sandbox.EXTERNAL_BRIDGE, sandbox.BRIDGE]
    assert ovs("get", "Bridge", sandbox.EXTERNAL_BRIDGE, "datapath_type").strip() == "netdev"
    # Idempotent: a second start changes nothing.
    assert sandbox.start(dataplane.dir, dataplane=True) == dataplane


def test_binding_ping_and_tcp(nbctl: Callable[..., str], sbctl: Callable[..., str],
                              dataplane: sandbox.Sandbox, hosts: Hosts) -> None:
    tag = _tag()
    p1, p2 = f"p1-{tag}", f"p2-{tag}"
    _switch(nbctl, f"ls-{tag}", {p1: ("0a:00:00:00:01:01", "10.10.0.11"),
                                 p2: ("0a:00:00:00:01:02", "10.10.0.12")})
    assert not _up(nbctl, p1)
    hosts.add(f"a{tag}", p1, "0a:00:00:00:01:01", "10.10.0.11/24")
    hosts.add(f"b{tag}", p2, "0a:00:00:00:01:02", "10.10.0.12/24")

    # (b) the binding: `up` in the NB within ~10 s of wiring, bound to this sandbox's chassis.
    wait_until(lambda: _up(nbctl, p1) and _up(nbctl, p2), timeout=30)
    chassis = sbctl("--bare", "--columns=_uuid", "find", "Chassis",
                    f"name={sandbox.system_id(dataplane.dir)}").strip()
    bound = sbctl("--bare", "--columns=chassis", "find", "Port_Binding", f"logical_port={p1}")
    assert bound.strip() == chassis

    # (a) ping both ways (the first packets may race the last flows: retry briefly).
    wait_until(lambda: _ping(hosts, f"a{tag}", "10.10.0.12"), timeout=20)
    assert _ping(hosts, f"b{tag}", "10.10.0.11", count=3)

    # TCP to a server started in a host, stopped by its process group.
    server = hosts.start(f"b{tag}", "socat", "TCP-LISTEN:8080,reuseaddr,fork",
                         f"SYSTEM:echo b{tag}")
    wait_until(lambda: hosts.run(f"a{tag}", "nc", "-w", "2", "10.10.0.12", "8080")
                .stdout.strip() == f"b{tag}", timeout=20)
    assert sandbox_hosts.terminate(server) is not None
    assert hosts.run(f"a{tag}", "nc", "-w", "1", "10.10.0.12", "8080").stdout == ""

    # Port security: a spoofed source address does not get through.
    hosts.run(f"a{tag}", "ip", "addr", "add", "10.10.0.99/24", "dev", "eth0")
    spoofed = hosts.run(f"a{tag}", "ping", "-c", "1", "-W", "1", "-I", "10.10.0.99",
                        "10.10.0.12")
    assert spoofed.returncode != 0


def test_dhcp_lease(nbctl: Callable[..., str], hosts: Hosts, tmp_path: Path) -> None:
    tag = _tag()
    port = f"d-{tag}"
    mac = "0a:00:00:00:02:05"
    _switch(nbctl, f"ls-{tag}", {port: (mac, "10.20.0.5")})
    options = nbctl("create", "DHCP_Options", "cidr=10.20.0.0/24",
                    'options={lease_time="3600", router="10.20.0.1", '
                    'server_id="10.20.0.1", server_mac="0a:00:00:00:02:01"}').strip()
    nbctl("lsp-set-dhcpv4-options", port, options)
    name = f"d{tag}"
    host = hosts.add(name, port, mac)  # no address: DHCP sets it
    wait_until(lambda: _up(nbctl, port), timeout=30)

    script = tmp_path / "udhcpc.sh"
    script.write_text('#!/bin/sh\necho "event=$1 ip=$ip subnet=$subnet router=$router '
                      'lease=$lease serverid=$serverid"\n')
    script.chmod(0o755)
    out = hosts.run(name, "busybox", "udhcpc", "-i", host.iface, "-n", "-q", "-f",
                    "-t", "5", "-T", "1", "-s", str(script), timeout=30)
    assert out.returncode == 0, out.stderr
    bound = [line for line in out.stdout.splitlines() if line.startswith("event=bound")]
    assert bound, out.stdout + out.stderr
    fields = dict(word.split("=", 1) for word in bound[0].split())
    assert fields["ip"] == "10.20.0.5"
    assert fields["subnet"] == "255.255.255.0"
    assert fields["router"] == "10.20.0.1"
    assert fields["lease"] == "3600"
    assert fields["serverid"] == "10.20.0.1"


def _external_switch(nbctl: Callable[..., str], name: str, doc: dict[str, object]) -> None:
    """An external network as the gateway stores it: a switch with the ownership keys, the API
    document, and a localnet port on the document's physical network (and VLAN)."""
    keys = {"kind": "external-network", "id": str(doc["id"]), "tenant": "admin",
            "doc": json.dumps(doc)}
    args = ["ls-add", name, "--", "set", "Logical_Switch", name,
            *(f'external_ids:"ovn-nb-gateway:{k}"={json.dumps(v)}' for k, v in keys.items()),
            "--", "lsp-add", name, f"ln-{name}", "--", "lsp-set-type", f"ln-{name}", "localnet",
            "--", "lsp-set-addresses", f"ln-{name}", "unknown",
            "--", "lsp-set-options", f"ln-{name}", f"network_name={doc['physical_network']}"]
    if doc.get("vlan") is not None:
        args += ["--", "set", "Logical_Switch_Port", f"ln-{name}", f"tag={doc['vlan']}"]
    nbctl(*args)


def test_outside_host_behind_a_hand_made_gateway_router(
        nbctl: Callable[..., str], dataplane: sandbox.Sandbox, hosts: Hosts) -> None:
    tag = _tag()
    ext, tenant, router = f"ext-{tag}", f"ten-{tag}", f"lr-{tag}"
    doc = {"id": str(uuid.uuid4()), "name": ext, "tenant_id": "admin",
           "cidr": "198.51.100.0/24", "gateway_ip": "198.51.100.1",
           "allocation_pools": [{"start": "198.51.100.10", "end": "198.51.100.200"}],
           "physical_network": sandbox.PHYSNET, "vlan": 101}
    vm_mac = "0a:00:00:00:05:05"
    _external_switch(nbctl, ext, doc)
    _switch(nbctl, tenant, {f"vm-{tag}": (vm_mac, "10.50.7.5")})
    try:
        nbctl("lr-add", router,
              "--", "lrp-add", router, f"{router}-ext", "0a:00:00:00:05:01", "198.51.100.10/24",
              "--", "lrp-set-gateway-chassis", f"{router}-ext", sandbox.system_id(dataplane.dir),
              "10",
              "--", "lrp-add", router, f"{router}-ten", "0a:00:00:00:05:02", "10.50.7.1/24",
              *_router_port(ext, f"{router}-ext"), *_router_port(tenant, f"{router}-ten"),
              "--", "lr-route-add", router, "0.0.0.0/0", "198.51.100.1",
              "--", "lr-nat-add", router, "snat", "198.51.100.10", "10.50.7.0/24")
        outside = hosts.add_outside(f"out{tag}", dataplane.nb_unix, str(doc["id"]))
        # The outside host plays the upstream router: the network's gateway_ip, on VLAN 101.
        assert (outside.ip_cidr, outside.vlan, outside.bridge) == ("198.51.100.1/24", 101,
                                                                  sandbox.EXTERNAL_BRIDGE)
        assert outside.port_name is None
        ovs = functools.partial(ctl, "ovs-vsctl", f"unix:{dataplane.dir / 'db.sock'}")
        assert ovs("get", "Port", outside.peer, "tag").strip() == "101"
        assert ovs("iface-to-br", outside.peer).strip() == sandbox.EXTERNAL_BRIDGE
        assert ovs("get", "Interface", outside.peer, "external_ids").strip() == "{}"
        hosts.add(f"vm{tag}", f"vm-{tag}", vm_mac, "10.50.7.5/24", "10.50.7.1")

        wait_until(lambda: _ping(hosts, f"vm{tag}", "198.51.100.1"), timeout=30,
                   what="tenant host -> outside host")
        # The outside host sees the tenant's connections come from the SNAT address.
        hosts.start(f"out{tag}", "socat", "TCP-LISTEN:7100,reuseaddr,fork",
                    "SYSTEM:echo $SOCAT_PEERADDR")
        wait_until(lambda: tcp_reply(hosts, f"vm{tag}", "198.51.100.1", 7100)
                   == "198.51.100.10", timeout=20, what="connection from the SNAT address")
    finally:
        nbctl("--if-exists", "lr-del", router, "--", "--if-exists", "ls-del", tenant,
              "--", "--if-exists", "ls-del", ext)


def _router_port(switch: str, lrp: str) -> list[str]:
    lsp = f"{switch}-to-{lrp}"
    return ["--", "lsp-add", switch, lsp, "--", "lsp-set-type", lsp, "router",
            "--", "lsp-set-addresses", lsp, "router",
            "--", "lsp-set-options", lsp, f"router-port={lrp}"]


def test_two_sandboxes_are_isolated(nbctl: Callable[..., str], dataplane: sandbox.Sandbox,
                                    hosts: Hosts, tmp_path: Path) -> None:
    # The same switch, port and host names in both sandboxes; only the addresses differ.
    ports = {"iso-a": ("0a:00:00:00:03:01", "10.30.0.1"),
             "iso-b": ("0a:00:00:00:03:02", "10.30.0.2")}
    tag = _tag()
    _switch(nbctl, f"iso-{tag}", {f"iso-a-{tag}": ports["iso-a"]})
    hosts.add(f"iso{tag}", f"iso-a-{tag}", "0a:00:00:00:03:01", "10.30.0.1/24")

    other_dir = tmp_path / "other"
    try:
        other = sandbox.start(other_dir, dataplane=True)
        assert sandbox.system_id(other_dir) != sandbox.system_id(dataplane.dir)
        assert sandbox.netns_name(other_dir) != sandbox.netns_name(dataplane.dir)
        other_nbctl = functools.partial(ctl, "ovn-nbctl", other.nb_unix)
        _switch(other_nbctl, f"iso-{tag}", {f"iso-a-{tag}": ("0a:00:00:00:03:03", "10.30.0.3"),
                                            f"iso-b-{tag}": ports["iso-b"]})
        other_hosts = Hosts(other.dir)
        other_hosts.add(f"iso{tag}", f"iso-a-{tag}", "0a:00:00:00:03:03", "10.30.0.3/24")
        other_hosts.add(f"isob{tag}", f"iso-b-{tag}", "0a:00:00:00:03:02", "10.30.0.2/24")
        # The other data plane works on its own ...
        wait_until(lambda: _ping(other_hosts, f"iso{tag}", "10.30.0.2"), timeout=20)
        # ... and neither sandbox reaches into the other.
        assert not _ping(hosts, f"iso{tag}", "10.30.0.2")
        assert not _ping(other_hosts, f"isob{tag}", "10.30.0.1")
        assert ctl("ovn-sbctl", str(other.sb_unix), "--bare", "--columns=name", "list",
                   "Chassis").split() == [sandbox.system_id(other_dir)]
        pids = [p for d in _daemons(other_dir).values() if isinstance(p := d["pid"], int)]
        namespaces = sandbox.tracked_netns(other_dir)
        assert len(namespaces) == 3
    finally:
        sandbox.stop(other_dir)

    # stop() left nothing of the other sandbox and did not touch this one.
    assert not set(namespaces) & _netns()
    assert all(not Path(f"/proc/{pid}").exists() or _zombie(pid) for pid in pids)
    assert not any(d["running"] for d in _daemons(other_dir).values())
    assert set(sandbox.tracked_netns(dataplane.dir)) <= _netns()
    assert sandbox.status(dataplane.dir)["dataplane"] is True


def _daemons(dir: Path) -> dict[str, dict[str, object]]:
    daemons = sandbox.status(dir)["daemons"]
    assert isinstance(daemons, dict)
    return daemons


def _netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] in "ZX"
    except OSError:
        return True

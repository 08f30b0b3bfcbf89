"""Hosts in a data-plane sandbox: one network namespace per host, wired to a logical port.

A host ``NAME`` of the sandbox in DIR is the network namespace ``<prefix>-NAME`` holding one
end of a veth pair (``eth0``); the other end lives in the sandbox's own namespace, on
``br-int``, with ``external_ids:iface-id`` naming the logical switch port it binds to. An
*outside* host (gateway.sandbox.external) is plugged into the provider bridge ``br-ex``
instead, with no logical port, VLAN-tagged when its external network has a VLAN. Every
host is recorded in the sandbox folder (hosts.json, and its namespace in the sandbox's netns
list), so ``sandbox.stop`` removes it even if ``del_host`` is never called.

Commands run in a host see its network only (``ip netns exec``): processes, files and users are
shared with the machine. Stop what you start in a host by its pid or process group, never by
name.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import signal
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gateway.sandbox.lifecycle import BRIDGE, EXTERNAL_BRIDGE, VSWITCHD, vsctl
from gateway.sandbox.netns import (
    HOSTS_FILE,
    delete_netns,
    existing_netns,
    track_netns,
    untrack_netns,
)
from gateway.sandbox.process import SandboxError, find_program, netns_name, prefix, run_tool

IFACE = "eth0"  # the host's interface, inside its own namespace
_IFNAMSIZ = 15  # interface names are at most 15 bytes
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


class HostError(SandboxError):
    """A sandbox host could not be created, found or used."""


@dataclass(frozen=True)
class Host:
    name: str
    netns: str  # the host's network namespace
    iface: str  # its interface, inside netns
    peer: str  # the other end of the veth, on `bridge` in the sandbox's namespace
    port_name: str | None  # the logical switch port it binds to (iface-id); None outside
    mac: str
    ip_cidr: str | None = None
    gateway: str | None = None
    bridge: str = BRIDGE  # br-int, or br-ex for an outside host
    vlan: int | None = None  # the access tag of its port on br-ex
    external_network: str | None = None  # an outside host's external network id


# --- pure helpers ------------------------------------------------------------------------------


def validate_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise HostError(f"host name {name!r} must match [a-z0-9][a-z0-9_-]{{0,31}}")
    return name


def normalize_mac(mac: str) -> str:
    mac = mac.strip().lower()
    if not _MAC_RE.fullmatch(mac):
        raise HostError(f"{mac!r} is not a MAC address like 0a:58:0a:00:00:05")
    if int(mac[:2], 16) & 1:
        raise HostError(f"{mac} is a multicast address; a host needs a unicast MAC")
    return mac


def validate_addressing(ip_cidr: str | None, gateway: str | None) -> None:
    if ip_cidr is not None:
        if "/" not in ip_cidr:
            raise HostError(f"{ip_cidr!r} needs a prefix length, like 10.0.0.5/24")
        try:
            ipaddress.ip_interface(ip_cidr)
        except ValueError as exc:
            raise HostError(f"{ip_cidr!r} is not an address with a prefix length") from exc
    if gateway is not None:
        if ip_cidr is None:
            raise HostError("a gateway needs an address (ip_cidr) on the host")
        try:
            gw = ipaddress.ip_address(gateway)
        except ValueError as exc:
            raise HostError(f"{gateway!r} is not an IP address") from exc
        if gw.version != ipaddress.ip_interface(ip_cidr).version:
            raise HostError(f"gateway {gateway} and address {ip_cidr} differ in IP version")


def validate_vlan(vlan: int | None) -> None:
    if vlan is not None and (isinstance(vlan, bool) or not isinstance(vlan, int)
                             or not 1 <= vlan <= 4094):
        raise HostError(f"vlan {vlan!r} must be an integer from 1 to 4094")


def outside_mac(box_prefix: str, name: str) -> str:
    """A MAC for outside host NAME: locally administered, unicast, stable, never one of the
    gateway's (their first octet is 0a)."""
    digest = hashlib.sha256(f"{box_prefix}/{name}".encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x0E, *digest[:5]))


def host_netns(box_prefix: str, name: str) -> str:
    return f"{box_prefix}-{name}"


def peer_name(name: str) -> str:
    """The br-int end of host NAME's veth: 'v-NAME', or 'v-' and a hash when NAME is long."""
    candidate = f"v-{name}"
    if len(candidate) <= _IFNAMSIZ:
        return candidate
    return "v-" + hashlib.sha256(name.encode()).hexdigest()[: _IFNAMSIZ - 3] + "h"


def mac_from_port_columns(addresses: list[str], dynamic_addresses: list[str]) -> str:
    """The MAC of a logical switch port from its `addresses` and `dynamic_addresses` columns.

    `addresses` entries look like "MAC IP...", "dynamic", "MAC dynamic", "router" or
    "unknown"; with "dynamic" alone the MAC is the first word of `dynamic_addresses`.
    """
    for entry in [*addresses, *dynamic_addresses]:
        words = entry.split()
        if words and _MAC_RE.fullmatch(words[0].lower()):
            return words[0].lower()
    raise HostError(f"no MAC address in addresses {addresses!r} "
                    f"(dynamic_addresses {dynamic_addresses!r})")


def _ovsdb_strings(value: Any) -> list[str]:
    """An OVSDB JSON value of a string set column: "x", ["set", [...]], or []."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and len(value) == 2 and value[0] == "set":
        return [v for v in value[1] if isinstance(v, str)]
    return []


def parse_port_json(text: str) -> tuple[list[str], list[str]]:
    """`ovn-nbctl --format=json --columns=addresses,dynamic_addresses list LSP X` output."""
    doc = json.loads(text)
    if not doc.get("data"):
        raise HostError("logical switch port not found")
    row = dict(zip(doc["headings"], doc["data"][0], strict=True))
    return _ovsdb_strings(row.get("addresses")), _ovsdb_strings(row.get("dynamic_addresses"))


def port_mac(nb_db: str, port_name: str) -> str:
    """Ask the NB database (ovn-nbctl) for the MAC of logical switch port PORT_NAME."""
    try:
        out = run_tool("ovn-nbctl", f"--db={nb_db}", "--timeout=10", "--format=json",
                       "--columns=addresses,dynamic_addresses", "list",
                       "Logical_Switch_Port", port_name, timeout=15)
    except SandboxError as exc:
        raise HostError(f"logical switch port {port_name!r}: {exc}") from exc
    return mac_from_port_columns(*parse_port_json(out))


# --- the record --------------------------------------------------------------------------------


def _load(dir: Path) -> dict[str, Host]:
    try:
        raw = json.loads((dir / HOSTS_FILE).read_text())
    except FileNotFoundError:
        return {}
    return {name: Host(**fields) for name, fields in raw.items()}


def _save(dir: Path, hosts: dict[str, Host]) -> None:
    path = dir / HOSTS_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({n: asdict(h) for n, h in sorted(hosts.items())}, indent=1))
    tmp.replace(path)


def list_hosts(dir: Path) -> list[Host]:
    return sorted(_load(dir.resolve()).values(), key=lambda h: h.name)


def get_host(dir: Path, name: str) -> Host:
    host = _load(dir.resolve()).get(name)
    if host is None:
        raise HostError(f"no host {name!r} in sandbox {dir}")
    return host


# --- lifecycle ---------------------------------------------------------------------------------


def _ip(*args: str) -> None:
    run_tool("ip", *args)


def add_host(dir: Path, name: str, port_name: str, mac: str, ip_cidr: str | None = None,
             gateway: str | None = None) -> Host:
    """Create host NAME wired to logical switch port PORT_NAME, its interface up with MAC.

    IP_CIDR (e.g. "10.0.0.5/24") and a default route via GATEWAY are set only when given;
    otherwise the interface has no address (run `busybox udhcpc -i eth0` in it for DHCP).
    The port's binding (`up` in the NB) follows within a second or two.
    """
    if not port_name:
        raise HostError("a host needs the name of a logical switch port")
    return _plug(dir, name, mac, ip_cidr, gateway, port_name=port_name)


def add_outside_host(dir: Path, name: str, ip_cidr: str, external_network: str,
                     vlan: int | None = None) -> Host:
    """Create host NAME on the provider bridge br-ex (no logical port), with IP_CIDR and, when
    VLAN is given, as an access port of that VLAN. gateway.sandbox.external.add reads the
    external network's address and VLAN from the NB and calls this."""
    validate_vlan(vlan)
    mac = outside_mac(prefix(dir.resolve()), name)
    return _plug(dir, name, mac, ip_cidr, None, bridge=EXTERNAL_BRIDGE, vlan=vlan,
                 external_network=external_network)


def _plug(dir: Path, name: str, mac: str, ip_cidr: str | None, gateway: str | None,
          port_name: str | None = None, bridge: str = BRIDGE, vlan: int | None = None,
          external_network: str | None = None) -> Host:
    dir = dir.resolve()
    validate_name(name)
    mac = normalize_mac(mac)
    validate_addressing(ip_cidr, gateway)
    if VSWITCHD.pid(dir) is None:
        raise HostError(f"sandbox {dir} has no data plane running; start it with "
                        "dataplane=True (`ovn-nb-gateway sandbox start --dataplane`)")
    hosts = _load(dir)
    if name in hosts:
        raise HostError(f"host {name!r} already exists in sandbox {dir}")
    peer = peer_name(name)
    if any(h.peer == peer for h in hosts.values()):
        raise HostError(f"host {name!r} would reuse interface name {peer}; pick another name")
    host = Host(name=name, netns=host_netns(prefix(dir), name), iface=IFACE, peer=peer,
                port_name=port_name, mac=mac, ip_cidr=ip_cidr, gateway=gateway, bridge=bridge,
                vlan=vlan, external_network=external_network)
    # Recorded before anything exists, so stop() cleans up after a failure half way.
    track_netns(dir, host.netns)
    hosts[name] = host
    _save(dir, hosts)
    try:
        _create(dir, host)
    except SandboxError as exc:
        with contextlib.suppress(SandboxError):
            del_host(dir, name)
        raise HostError(f"host {name!r}: {exc}") from exc
    return host


def _create(dir: Path, host: Host) -> None:
    ns, box_ns = host.netns, netns_name(dir)
    if ns not in existing_netns():
        _ip("netns", "add", ns)
    # Both ends are born outside the root namespace: nothing ever appears there.
    _ip("-n", box_ns, "link", "add", "name", host.peer, "type", "veth",
        "peer", "name", IFACE, "netns", ns)
    _ip("-n", ns, "link", "set", "dev", "lo", "up")
    _ip("-n", ns, "link", "set", "dev", IFACE, "address", host.mac)
    # Checksum offload would leave partial checksums that OVN's own responders (DHCP, DNS)
    # and the userspace datapath never complete: replies and some TCP get lost.
    run_tool("ip", "netns", "exec", ns, find_program("ethtool"), "-K", IFACE, "tx", "off")
    _ip("-n", ns, "link", "set", "dev", IFACE, "up")
    if host.ip_cidr is not None:
        _ip("-n", ns, "addr", "add", host.ip_cidr, "dev", IFACE)
    if host.gateway is not None:
        _ip("-n", ns, "route", "add", "default", "via", host.gateway, "dev", IFACE)
    _ip("-n", box_ns, "link", "set", "dev", host.peer, "up")
    settings: list[str] = []
    if host.port_name is not None:
        settings += ["--", "set", "Interface", host.peer,
                     f"external_ids:iface-id={json.dumps(host.port_name)}"]
    if host.vlan is not None:  # an access port: br-ex tags what the host sends, untags to it
        settings += ["--", "set", "Port", host.peer, f"tag={host.vlan}"]
    vsctl(dir, "--", "--may-exist", "add-port", host.bridge, host.peer, *settings)


def del_host(dir: Path, name: str) -> bool:
    """Stop what runs in host NAME, unplug it and delete its namespace; False if unknown."""
    dir = dir.resolve()
    hosts = _load(dir)
    host = hosts.get(name)
    if host is None:
        return False
    if VSWITCHD.pid(dir) is not None:
        vsctl(dir, "--", "--if-exists", "del-port", host.bridge, host.peer)
    box_ns = netns_name(dir)
    present = existing_netns()
    if box_ns in present:
        with contextlib.suppress(SandboxError):  # gone already when the host ns was deleted
            _ip("-n", box_ns, "link", "del", "dev", host.peer)
    if host.netns in present:
        delete_netns(host.netns)
    untrack_netns(dir, host.netns)
    del hosts[name]
    _save(dir, hosts)
    return True


def _in_host(dir: Path, name: str, argv: list[str]) -> list[str]:
    if not argv:
        raise HostError("no command given")
    host = get_host(dir, name)
    return [find_program("ip"), "netns", "exec", host.netns, *argv]


def exec_in_host(dir: Path, name: str, argv: list[str], timeout: float | None = 30.0,
                 check: bool = False, capture: bool = True,
                 input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ARGV in host NAME's network namespace and wait for it (text mode).

    With CAPTURE (the default) stdout and stderr are returned and stdin is /dev/null (or
    INPUT); without it all three are the caller's. A TIMEOUT raises
    subprocess.TimeoutExpired after killing the command.
    """
    return subprocess.run(
        _in_host(dir, name, argv), capture_output=capture, text=True, timeout=timeout,
        check=check, input=input,
        stdin=None if input is not None or not capture else subprocess.DEVNULL,
    )


def start_in_host(dir: Path, name: str, argv: list[str],
                  **popen_kwargs: Any) -> subprocess.Popen[Any]:
    """Start ARGV in host NAME in a process group of its own, and return at once.

    Stop it with terminate(proc): it signals the group, never anything by name. Keyword
    arguments go to subprocess.Popen (stdout, stderr, text, ...); stdin defaults to
    /dev/null and output to the caller's.
    """
    popen_kwargs.setdefault("stdin", subprocess.DEVNULL)
    popen_kwargs["start_new_session"] = True
    return subprocess.Popen(_in_host(dir, name, argv), **popen_kwargs)


def terminate(proc: subprocess.Popen[Any], timeout: float = 5.0) -> int | None:
    """SIGTERM the process group of a start_in_host process, SIGKILL after TIMEOUT; reap it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


_UDHCPC_SCRIPT = """#!/bin/sh
# busybox udhcpc hook: configure the lease on the interface and print what was offered.
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    echo "lease ip=$ip mask=$mask router=$router dns=$dns domain=$domain lease=$lease" \\
         "mtu=$mtu staticroutes=$staticroutes ntpsrv=$ntpsrv"
    ;;
esac
exit 0
"""


def dhcp(dir: Path, name: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """Get and apply a DHCP lease in a host with busybox udhcpc; stdout has a `lease` line."""
    script = dir / "udhcpc.sh"
    if not script.exists():
        script.write_text(_UDHCPC_SCRIPT)
        script.chmod(0o755)
    host = get_host(dir, name)
    return exec_in_host(dir, name, ["busybox", "udhcpc", "-i", host.iface, "-n", "-q",
                                    "-t", "5", "-T", "1", "-s", str(script)], timeout=timeout)

"""A local OVN sandbox in one folder: the northbound database, and on request a data plane.

Every daemon keeps its pidfile, log and control socket inside the sandbox folder, so several
sandboxes can run side by side and each is stopped through its own pidfile, never by name.

With ``dataplane=True`` the sandbox also runs a southbound database, ``ovn-northd``, an Open
vSwitch (its own database and ``ovs-vswitchd`` with the userspace datapath) and
``ovn-controller``. Its chassis is a gateway chassis (``ovn-cms-options=enable-chassis-as-gw``)
whose physical network ``physnet1`` is the provider bridge ``br-ex``
(``ovn-bridge-mappings``), where outside hosts (gateway.sandbox.external) plug in. The switch
and the controller run inside a network namespace of the sandbox's own (named from the
folder), so two sandboxes never share tap devices, bridge management sockets or hosts; the
databases and ``ovn-northd`` stay in the root namespace on unix sockets. Namespaces the
sandbox creates are listed in its folder, and stop() deletes them.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.sandbox.netns import HOSTS_FILE, ensure_netns, remove_tracked_netns, tracked_netns
from gateway.sandbox.process import (
    INSTALL_HINT,
    STOP_TIMEOUT,
    Daemon,
    SandboxError,
    alive,
    check_port_free,
    create_db,
    find_program,
    netns_name,
    run_tool,
    system_id,
    unix_path,
    wait_connectable,
    wait_gone,
)

NB_SCHEMA = Path("/usr/share/ovn/ovn-nb.ovsschema")
SB_SCHEMA = Path("/usr/share/ovn/ovn-sb.ovsschema")
VSWITCH_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
_DP_HINT = ("run scripts/bootstrap.sh (Debian packages ovn-central, ovn-host, "
            "openvswitch-switch, iproute2)")
_CHASSIS_TIMEOUT = 30.0
_VSCTL_TIMEOUT = 20  # seconds ovs-vsctl waits for ovs-vswitchd to apply a change

BRIDGE = "br-int"
EXTERNAL_BRIDGE = "br-ex"
PHYSNET = "physnet1"



@dataclass(frozen=True)
class Sandbox:
    dir: Path
    nb_unix: str  # "unix:/abs/dir/nb.sock"
    nb_tcp: str | None  # "tcp:127.0.0.1:PORT" when a tcp port was requested
    pid: int
    sb_unix: str | None = None  # "unix:/abs/dir/sb.sock" when the data plane runs
    dataplane: bool = False


_NB = Daemon("nb", "ovsdb-server")
_SB = Daemon("sb", "ovsdb-server")
_NORTHD = Daemon("northd", "ovn-northd")
_VSDB = Daemon("vswitch-db", "ovsdb-server")
VSWITCHD = Daemon("vswitchd", "ovs-vswitchd", in_netns=True)
_CONTROLLER = Daemon("controller", "ovn-controller", in_netns=True, unixctl=False)
# In start order; stop() walks this backwards: dependents go first.
_DAEMONS: tuple[Daemon, ...] = (_NB, _SB, _NORTHD, _VSDB, VSWITCHD, _CONTROLLER)
_DATAPLANE = _DAEMONS[1:]


def _tcp_ports(dir: Path) -> set[int]:
    """Ports of the running NB server's ptcp remotes, asked of it rather than remembered."""
    out = run_tool("ovs-appctl", "-t", str(_NB.ctl(dir)), "ovsdb-server/list-remotes")
    return {int(r.split(":")[1]) for r in out.split() if r.startswith("ptcp:")}


# --- the data plane ----------------------------------------------------------------------------


def vsctl(dir: Path, *args: str, wait: bool = True) -> str:
    db = f"unix:{dir / 'db.sock'}"
    flags = [f"--timeout={_VSCTL_TIMEOUT}"] if wait else ["--no-wait"]
    return run_tool("ovs-vsctl", f"--db={db}", *flags, *args, timeout=_VSCTL_TIMEOUT + 5)


def _chassis_registered(dir: Path) -> bool:
    out = run_tool("ovn-sbctl", f"--db=unix:{dir / 'sb.sock'}", "--timeout=5", "--bare",
                   "--columns=name", "find", "Chassis", f"name={system_id(dir)}", timeout=10)
    return out.strip() == system_id(dir)


def _start_dataplane(dir: Path, nb_sock: str) -> str:
    """Start whatever part of the data plane is not running; return the SB socket path."""
    for program in ("ovn-northd", "ovs-vswitchd", "ovn-controller", "ovs-vsctl", "ovn-sbctl",
                    "ip"):
        try:
            find_program(program)
        except SandboxError:
            raise SandboxError(f"{program} is not installed; {_DP_HINT}") from None
    if os.geteuid() != 0:
        raise SandboxError("the data plane needs root (network namespaces, veths, a switch)")
    sb_sock = unix_path(dir / "sb.sock")
    vs_sock = unix_path(dir / "db.sock")
    # Sockets the daemons create themselves; the pid has at most 7 digits.
    for extra in ("ovn-controller.4194304.ctl", f"{BRIDGE}.snoop", f"{EXTERNAL_BRIDGE}.snoop",
                  *(f"{d.name}.ctl" for d in _DATAPLANE if d.unixctl)):
        unix_path(dir / extra)

    # The southbound database and ovn-northd, in the root namespace.
    pid = _SB.pid(dir)
    if pid is None:
        create_db(dir / "sb.db", SB_SCHEMA, _DP_HINT)
        pid = _SB.launch(dir, f"--remote=punix:{sb_sock}", str(dir / "sb.db"))
    wait_connectable(socket.AF_UNIX, sb_sock, pid)
    if _NORTHD.pid(dir) is None:
        _NORTHD.launch(dir, f"--ovnnb-db=unix:{nb_sock}", f"--ovnsb-db=unix:{sb_sock}")

    # Open vSwitch: its database in the root namespace, the switch in the sandbox's.
    ensure_netns(dir, netns_name(dir))
    pid = _VSDB.pid(dir)
    if pid is None:
        create_db(dir / "conf.db", VSWITCH_SCHEMA, _DP_HINT)
        pid = _VSDB.launch(dir, f"--remote=punix:{vs_sock}", str(dir / "conf.db"))
    wait_connectable(socket.AF_UNIX, vs_sock, pid)
    ids = {
        "system-id": system_id(dir),
        "hostname": system_id(dir),
        "ovn-remote": f"unix:{sb_sock}",
        "ovn-encap-type": "geneve",
        "ovn-encap-ip": "127.0.0.1",
        "ovn-bridge": BRIDGE,
        "ovn-bridge-datapath-type": "netdev",
        "ovn-bridge-mappings": f"{PHYSNET}:{EXTERNAL_BRIDGE}",
        "ovn-cms-options": "enable-chassis-as-gw",
    }
    vsctl(dir, "init", "--", "set", "Open_vSwitch", ".",
          *(f"external_ids:{k}={json.dumps(v)}" for k, v in ids.items()), wait=False)
    if VSWITCHD.pid(dir) is None:
        VSWITCHD.launch(dir, f"unix:{vs_sock}")
    # Without --no-wait, ovs-vsctl returns once ovs-vswitchd has created the bridges.
    vsctl(dir,
          "--", "--may-exist", "add-br", BRIDGE,
          "--", "set", "Bridge", BRIDGE, "datapath_type=netdev", "fail-mode=secure",
          "other-config:disable-in-band=true",
          "--", "--may-exist", "add-br", EXTERNAL_BRIDGE,
          "--", "set", "Bridge", EXTERNAL_BRIDGE, "datapath_type=netdev")

    controller = _CONTROLLER.pid(dir)
    if controller is None:
        controller = _CONTROLLER.launch(dir, f"unix:{vs_sock}")
    deadline = time.monotonic() + _CHASSIS_TIMEOUT
    while not _chassis_registered(dir):
        if not alive(controller):
            raise SandboxError(f"ovn-controller exited; see {_CONTROLLER.log(dir)}")
        if time.monotonic() > deadline:
            raise SandboxError(
                f"chassis {system_id(dir)} did not register in the southbound database within "
                f"{_CHASSIS_TIMEOUT:.0f} s; see {_CONTROLLER.log(dir)}")
        time.sleep(0.1)
    return sb_sock


def _dataplane_running(dir: Path) -> bool:
    return all(d.pid(dir) is not None for d in _DATAPLANE)


# --- start, stop, status -----------------------------------------------------------------------


def start(dir: Path, tcp_port: int | None = None, dataplane: bool = False) -> Sandbox:
    """Start the sandbox in DIR, or complete and return the one already running there.

    With DATAPLANE, also the southbound database, ovn-northd, Open vSwitch and
    ovn-controller; this returns only once the chassis has registered in the southbound
    database. Without it, a data plane already running is left alone and reported.
    """
    if tcp_port is not None and not 0 < tcp_port < 65536:
        # Port 0 binds a port we could only learn from the log; callers pick a free one.
        raise SandboxError(f"tcp_port must be 1-65535, not {tcp_port}")
    dir = dir.resolve()
    dir.mkdir(parents=True, exist_ok=True)
    nb_sock = unix_path(dir / "nb.sock")
    remote = f"ptcp:{tcp_port}:127.0.0.1"  # loopback only: this database has no auth
    pid = _NB.pid(dir)
    if pid is None:
        create_db(dir / "nb.db", NB_SCHEMA, INSTALL_HINT)
        tcp_args = []
        if tcp_port is not None:
            check_port_free(tcp_port)
            tcp_args = [f"--remote={remote}"]
        pid = _NB.launch(dir, f"--remote=punix:{nb_sock}", *tcp_args, str(dir / "nb.db"))
    elif tcp_port is not None and tcp_port not in _tcp_ports(dir):
        # Converge rather than fail: the running server gains the tcp remote asked for.
        check_port_free(tcp_port)
        run_tool("ovs-appctl", "-t", str(_NB.ctl(dir)), "ovsdb-server/add-remote", remote)
    wait_connectable(socket.AF_UNIX, nb_sock, pid)
    if tcp_port is not None:
        wait_connectable(socket.AF_INET, ("127.0.0.1", tcp_port), pid)
    nb_tcp = None if tcp_port is None else f"tcp:127.0.0.1:{tcp_port}"
    if dataplane:
        _start_dataplane(dir, nb_sock)
    running = dataplane or _dataplane_running(dir)
    return Sandbox(dir=dir, nb_unix=f"unix:{nb_sock}", nb_tcp=nb_tcp, pid=pid,
                   sb_unix=f"unix:{dir / 'sb.sock'}" if running else None, dataplane=running)


def _stop_vswitchd(dir: Path) -> bool:
    pid = VSWITCHD.pid(dir)
    if pid is None:
        return False
    # A plain SIGTERM leaves the userspace datapath's tap devices behind.
    with contextlib.suppress(SandboxError):
        run_tool("ovs-appctl", "--timeout=5", "-t", str(VSWITCHD.ctl(dir)), "exit", "--cleanup",
                 timeout=10)
    if not wait_gone(pid, STOP_TIMEOUT):
        VSWITCHD.stop(dir)
    VSWITCHD.pidfile(dir).unlink(missing_ok=True)
    return True


def stop(dir: Path) -> bool:
    """Stop every daemon of the sandbox by its pidfile, in reverse start order, then delete
    the network namespaces it created (its hosts' and its own); True if any was running."""
    dir = dir.resolve()
    stopped = [_stop_vswitchd(dir) if d is VSWITCHD else d.stop(dir) for d in reversed(_DAEMONS)]
    stopped.append(remove_tracked_netns(dir))
    return any(stopped)


def _hosts(dir: Path) -> list[str]:
    try:
        return sorted(json.loads((dir / HOSTS_FILE).read_text()))
    except (OSError, ValueError):
        return []


def status(dir: Path) -> dict[str, object]:
    dir = dir.resolve()
    pid = _NB.pid(dir)
    ports: set[int] = set()
    if pid is not None:
        # Status serves humans and health checks: a server dying mid-query is not an error.
        with contextlib.suppress(SandboxError, OSError):
            ports = _tcp_ports(dir)
    daemons = {}
    for d in _DAEMONS:
        dpid = d.pid(dir)
        daemons[d.name] = {"program": d.program, "running": dpid is not None, "pid": dpid,
                           "log": str(d.log(dir)),
                           "ctl": str(d.ctl(dir)) if dpid is not None else None}
    dataplane = _dataplane_running(dir)
    return {
        "running": pid is not None,
        "pid": pid,
        "nb": f"unix:{dir / 'nb.sock'}",
        "nb_tcp": [f"tcp:127.0.0.1:{p}" for p in sorted(ports)],
        "dir": str(dir),
        "dataplane": dataplane,
        "sb": f"unix:{dir / 'sb.sock'}" if _SB.pid(dir) is not None else None,
        "chassis": system_id(dir) if dataplane else None,
        "netns": tracked_netns(dir),
        "hosts": _hosts(dir),
        "daemons": daemons,
    }

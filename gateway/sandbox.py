"""A local OVN sandbox in one folder: the northbound database, and on request a data plane.

Every daemon keeps its pidfile, log and control socket inside the sandbox folder, so several
sandboxes can run side by side and each is stopped through its own pidfile, never by name.

With ``dataplane=True`` the sandbox also runs a southbound database, ``ovn-northd``, an Open
vSwitch (its own database and ``ovs-vswitchd`` with the userspace datapath) and
``ovn-controller``. The switch and the controller run inside a network namespace of the
sandbox's own (named from the folder), so two sandboxes never share tap devices, bridge
management sockets or hosts; the databases and ``ovn-northd`` stay in the root namespace on
unix sockets. Namespaces the sandbox creates are listed in its folder, and stop() deletes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

NB_SCHEMA = Path("/usr/share/ovn/ovn-nb.ovsschema")
SB_SCHEMA = Path("/usr/share/ovn/ovn-sb.ovsschema")
VSWITCH_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
_HINT = "run scripts/bootstrap.sh (Debian packages ovn-central, openvswitch-switch)"
_DP_HINT = ("run scripts/bootstrap.sh (Debian packages ovn-central, ovn-host, "
            "openvswitch-switch, iproute2)")
_UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL
_READY_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
_CHASSIS_TIMEOUT = 30.0
_VSCTL_TIMEOUT = 20  # seconds ovs-vsctl waits for ovs-vswitchd to apply a change

NETNS_FILE = "netns"  # the network namespaces this sandbox created, one per line
HOSTS_FILE = "hosts.json"  # gateway.hosts' record of the sandbox hosts
BRIDGE = "br-int"
EXTERNAL_BRIDGE = "br-ex"
PHYSNET = "physnet1"


class SandboxError(Exception):
    """The sandbox could not be started or inspected."""


@dataclass(frozen=True)
class Sandbox:
    dir: Path
    nb_unix: str  # "unix:/abs/dir/nb.sock"
    nb_tcp: str | None  # "tcp:127.0.0.1:PORT" when a tcp port was requested
    pid: int
    sb_unix: str | None = None  # "unix:/abs/dir/sb.sock" when the data plane runs
    dataplane: bool = False


def _exe(program: str) -> str:
    # Debian puts ovsdb-server in /usr/sbin, which a non-root PATH often lacks.
    found = shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin:/sbin")
    if found is None:
        raise SandboxError(f"{program} is not installed; {_HINT}")
    return found


def _run(*argv: str, env: Mapping[str, str] | None = None, timeout: float = 30) -> str:
    """Run a tool to completion and return its stdout; failure raises SandboxError."""
    # Output goes to files, not pipes: a detaching daemon that held a pipe open would hang us.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            rc = subprocess.run(
                [_exe(argv[0]), *argv[1:]],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=timeout, check=False,
                env=None if env is None else {**os.environ, **env},
            ).returncode
        except subprocess.TimeoutExpired as exc:
            raise SandboxError(f"{' '.join(argv[:3])} did not finish within {timeout} s") from exc
        out.seek(0)
        err.seek(0)
        if rc != 0:
            detail = err.read().decode(errors="replace").strip()
            raise SandboxError(f"{' '.join(argv[:3])} failed (exit {rc}): {detail}")
        return out.read().decode(errors="replace")


def _unix_path(path: Path) -> str:
    if len(os.fsencode(path)) > _UNIX_PATH_MAX:
        raise SandboxError(
            f"socket path {str(path)!r} exceeds the AF_UNIX limit of {_UNIX_PATH_MAX} bytes; "
            "use a shorter sandbox folder"
        )
    return str(path)


def _alive(pid: int) -> bool:
    # kill(pid, 0) also succeeds on a zombie, and PID 1 here may be slow to reap detached
    # daemons, so read the process state instead.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


def _terminate(pids: Iterable[int], timeout: float = 2.0) -> None:
    """SIGTERM the given pids, then SIGKILL whatever is still alive after TIMEOUT."""
    pids = [p for p in pids if p != os.getpid()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = [p for p in pids if _alive(p)]
        if not pids:
            return


# --- naming ------------------------------------------------------------------------------------


def prefix(dir: Path) -> str:
    """The sandbox's unique name prefix, derived from its folder: 'ovngw-' and 8 hex digits.

    It names the sandbox's network namespace, its chassis (system-id) and, followed by '-' and
    a host name, each host's namespace.
    """
    digest = hashlib.sha256(os.fsencode(dir.resolve())).hexdigest()
    return f"ovngw-{digest[:8]}"


def netns_name(dir: Path) -> str:
    """The network namespace where the sandbox's ovs-vswitchd and ovn-controller run."""
    return prefix(dir)


def system_id(dir: Path) -> str:
    """The chassis name of the sandbox's ovn-controller."""
    return prefix(dir)


def _rundir_env(dir: Path) -> dict[str, str]:
    # ovn-controller refuses --unixctl and puts ovn-controller.PID.ctl in OVN_RUNDIR;
    # ovs-vswitchd puts BRIDGE.mgmt/.snoop in OVS_RUNDIR, and ovn-controller looks for
    # br-int.mgmt there. The default /var/run would be shared by every sandbox.
    return {"OVS_RUNDIR": str(dir), "OVN_RUNDIR": str(dir)}


# --- daemons -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Daemon:
    """One OVS/OVN daemon of a sandbox, with NAME.pid, NAME.log and NAME.ctl in the folder."""

    name: str
    program: str  # also what /proc/PID/comm must say before a pid is trusted or signalled
    in_netns: bool = False  # runs inside the sandbox's network namespace
    unixctl: bool = True  # False: refuses --unixctl; its socket is OVN_RUNDIR/PROGRAM.PID.ctl

    def pidfile(self, dir: Path) -> Path:
        return dir / f"{self.name}.pid"

    def log(self, dir: Path) -> Path:
        return dir / f"{self.name}.log"

    def ctl(self, dir: Path) -> Path:
        if self.unixctl:
            return dir / f"{self.name}.ctl"
        return dir / f"{self.program}.{self.pid(dir) or 0}.ctl"

    def pid(self, dir: Path) -> int | None:
        """The live pid the pidfile names, only if it still is this daemon (pids get reused)."""
        try:
            pid = int(self.pidfile(dir).read_text().strip())
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except (OSError, ValueError):
            return None
        return pid if comm == self.program[:15] and _alive(pid) else None

    def launch(self, dir: Path, *args: str) -> int:
        argv = [
            self.program, "--detach", "--no-chdir",
            f"--pidfile={self.pidfile(dir)}",
            f"--log-file={self.log(dir)}",
        ]
        if self.unixctl:
            argv.append(f"--unixctl={_unix_path(self.ctl(dir))}")
        argv += args
        if self.in_netns:
            argv = ["ip", "netns", "exec", netns_name(dir), _exe(self.program), *argv[1:]]
        _run(*argv, env=_rundir_env(dir))
        pid = self.pid(dir)
        if pid is None:
            raise SandboxError(f"{self.program} exited at once; see {self.log(dir)}")
        return pid

    def stop(self, dir: Path) -> bool:
        pid = self.pid(dir)
        if pid is None:
            return False
        deadline = time.monotonic() + _STOP_TIMEOUT
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):  # it may exit between check and kill
                os.kill(pid, sig)
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not _alive(pid):
                break
            deadline = time.monotonic() + 2.0  # SIGKILL is not refusable; a short wait suffices
        # A killed daemon cannot remove its own pidfile; a stale one would mislead status.
        self.pidfile(dir).unlink(missing_ok=True)
        return True


_NB = _Daemon("nb", "ovsdb-server")
_SB = _Daemon("sb", "ovsdb-server")
_NORTHD = _Daemon("northd", "ovn-northd")
_VSDB = _Daemon("vswitch-db", "ovsdb-server")
_VSWITCHD = _Daemon("vswitchd", "ovs-vswitchd", in_netns=True)
_CONTROLLER = _Daemon("controller", "ovn-controller", in_netns=True, unixctl=False)
# In start order; stop() walks this backwards: dependents go first.
_DAEMONS: tuple[_Daemon, ...] = (_NB, _SB, _NORTHD, _VSDB, _VSWITCHD, _CONTROLLER)
_DATAPLANE = _DAEMONS[1:]


def _wait_connectable(family: int, address: str | tuple[str, int], pid: int) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    while True:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            try:
                sock.connect(address)
                return
            except OSError as exc:
                if not _alive(pid) or time.monotonic() > deadline:
                    raise SandboxError(f"ovsdb-server not accepting on {address}: {exc}") from exc
        time.sleep(0.05)


def _check_port_free(port: int) -> None:
    # ovsdb-server only logs a failed bind and keeps running, and the readiness probe would
    # then reach whoever holds the port: refuse a taken port up front instead.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ovsdb-server binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise SandboxError(f"tcp port {port} on 127.0.0.1 is not free: {exc}") from exc


def _tcp_ports(dir: Path) -> set[int]:
    """Ports of the running NB server's ptcp remotes, asked of it rather than remembered."""
    out = _run("ovs-appctl", "-t", str(_NB.ctl(dir)), "ovsdb-server/list-remotes")
    return {int(r.split(":")[1]) for r in out.split() if r.startswith("ptcp:")}


def _create_db(db: Path, schema: Path, hint: str) -> None:
    if db.exists():
        return
    if not schema.exists():
        raise SandboxError(f"{schema} not found; {hint}")
    # Create under a temporary name so an interrupted create never leaves a broken db.
    tmp = db.with_name(db.name + ".tmp")
    tmp.unlink(missing_ok=True)
    _run("ovsdb-tool", "create", str(tmp), str(schema))
    tmp.replace(db)


# --- network namespaces ------------------------------------------------------------------------


def tracked_netns(dir: Path) -> list[str]:
    """The namespaces this sandbox created (or was about to create), oldest first."""
    try:
        lines = (dir / NETNS_FILE).read_text().split()
    except FileNotFoundError:
        return []
    return list(dict.fromkeys(lines))


def _write_lines(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{line}\n" for line in lines))
    tmp.replace(path)


def track_netns(dir: Path, name: str) -> None:
    """Record NAME before creating it, so that stop() deletes it even after a crash."""
    names = tracked_netns(dir)
    if name not in names:
        _write_lines(dir / NETNS_FILE, [*names, name])


def untrack_netns(dir: Path, name: str) -> None:
    names = tracked_netns(dir)
    if name in names:
        _write_lines(dir / NETNS_FILE, [n for n in names if n != name])


def existing_netns() -> set[str]:
    out = _run("ip", "netns", "list")
    # Lines look like "name" or "name (id: 3)".
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def netns_pids(name: str) -> list[int]:
    try:
        out = _run("ip", "netns", "pids", name)
    except SandboxError:
        return []
    return [int(p) for p in out.split() if p.isdigit()]


def delete_netns(name: str) -> None:
    """Stop what still runs in namespace NAME (by pid) and delete it."""
    _terminate(netns_pids(name))
    _run("ip", "netns", "delete", name)


def _ensure_netns(dir: Path, name: str) -> None:
    track_netns(dir, name)
    if name not in existing_netns():
        _run("ip", "netns", "add", name)
    _run("ip", "-n", name, "link", "set", "dev", "lo", "up")


def _remove_netns(dir: Path) -> bool:
    """Delete every namespace the sandbox created, hosts first and its own last."""
    if not (dir / NETNS_FILE).exists():
        return False  # an NB-only sandbox never created one (and may lack iproute2)
    own = netns_name(dir)
    names = [n for n in tracked_netns(dir) if n != own] + [own]
    present = existing_netns()
    removed = False
    for name in names:
        if name in present:
            delete_netns(name)
            removed = True
        untrack_netns(dir, name)
    (dir / NETNS_FILE).unlink(missing_ok=True)
    (dir / HOSTS_FILE).unlink(missing_ok=True)
    return removed


# --- the data plane ----------------------------------------------------------------------------


def _vsctl(dir: Path, *args: str, wait: bool = True) -> str:
    db = f"unix:{dir / 'db.sock'}"
    flags = [f"--timeout={_VSCTL_TIMEOUT}"] if wait else ["--no-wait"]
    return _run("ovs-vsctl", f"--db={db}", *flags, *args, timeout=_VSCTL_TIMEOUT + 5)


def _chassis_registered(dir: Path) -> bool:
    out = _run("ovn-sbctl", f"--db=unix:{dir / 'sb.sock'}", "--timeout=5", "--bare",
               "--columns=name", "find", "Chassis", f"name={system_id(dir)}", timeout=10)
    return out.strip() == system_id(dir)


def _start_dataplane(dir: Path, nb_sock: str) -> str:
    """Start whatever part of the data plane is not running; return the SB socket path."""
    for program in ("ovn-northd", "ovs-vswitchd", "ovn-controller", "ovs-vsctl", "ovn-sbctl",
                    "ip"):
        try:
            _exe(program)
        except SandboxError:
            raise SandboxError(f"{program} is not installed; {_DP_HINT}") from None
    if os.geteuid() != 0:
        raise SandboxError("the data plane needs root (network namespaces, veths, a switch)")
    sb_sock = _unix_path(dir / "sb.sock")
    vs_sock = _unix_path(dir / "db.sock")
    # Sockets the daemons create themselves; the pid has at most 7 digits.
    for extra in ("ovn-controller.4194304.ctl", f"{BRIDGE}.snoop", f"{EXTERNAL_BRIDGE}.snoop",
                  *(f"{d.name}.ctl" for d in _DATAPLANE if d.unixctl)):
        _unix_path(dir / extra)

    # The southbound database and ovn-northd, in the root namespace.
    pid = _SB.pid(dir)
    if pid is None:
        _create_db(dir / "sb.db", SB_SCHEMA, _DP_HINT)
        pid = _SB.launch(dir, f"--remote=punix:{sb_sock}", str(dir / "sb.db"))
    _wait_connectable(socket.AF_UNIX, sb_sock, pid)
    if _NORTHD.pid(dir) is None:
        _NORTHD.launch(dir, f"--ovnnb-db=unix:{nb_sock}", f"--ovnsb-db=unix:{sb_sock}")

    # Open vSwitch: its database in the root namespace, the switch in the sandbox's.
    _ensure_netns(dir, netns_name(dir))
    pid = _VSDB.pid(dir)
    if pid is None:
        _create_db(dir / "conf.db", VSWITCH_SCHEMA, _DP_HINT)
        pid = _VSDB.launch(dir, f"--remote=punix:{vs_sock}", str(dir / "conf.db"))
    _wait_connectable(socket.AF_UNIX, vs_sock, pid)
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
    _vsctl(dir, "init", "--", "set", "Open_vSwitch", ".",
           *(f"external_ids:{k}={json.dumps(v)}" for k, v in ids.items()), wait=False)
    if _VSWITCHD.pid(dir) is None:
        _VSWITCHD.launch(dir, f"unix:{vs_sock}")
    # Without --no-wait, ovs-vsctl returns once ovs-vswitchd has created the bridges.
    _vsctl(dir,
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
        if not _alive(controller):
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
    nb_sock = _unix_path(dir / "nb.sock")
    remote = f"ptcp:{tcp_port}:127.0.0.1"  # loopback only: this database has no auth
    pid = _NB.pid(dir)
    if pid is None:
        _create_db(dir / "nb.db", NB_SCHEMA, _HINT)
        tcp_args = []
        if tcp_port is not None:
            _check_port_free(tcp_port)
            tcp_args = [f"--remote={remote}"]
        pid = _NB.launch(dir, f"--remote=punix:{nb_sock}", *tcp_args, str(dir / "nb.db"))
    elif tcp_port is not None and tcp_port not in _tcp_ports(dir):
        # Converge rather than fail: the running server gains the tcp remote asked for.
        _check_port_free(tcp_port)
        _run("ovs-appctl", "-t", str(_NB.ctl(dir)), "ovsdb-server/add-remote", remote)
    _wait_connectable(socket.AF_UNIX, nb_sock, pid)
    if tcp_port is not None:
        _wait_connectable(socket.AF_INET, ("127.0.0.1", tcp_port), pid)
    nb_tcp = None if tcp_port is None else f"tcp:127.0.0.1:{tcp_port}"
    if dataplane:
        _start_dataplane(dir, nb_sock)
    running = dataplane or _dataplane_running(dir)
    return Sandbox(dir=dir, nb_unix=f"unix:{nb_sock}", nb_tcp=nb_tcp, pid=pid,
                   sb_unix=f"unix:{dir / 'sb.sock'}" if running else None, dataplane=running)


def _stop_vswitchd(dir: Path) -> bool:
    pid = _VSWITCHD.pid(dir)
    if pid is None:
        return False
    # A plain SIGTERM leaves the userspace datapath's tap devices behind.
    with contextlib.suppress(SandboxError):
        _run("ovs-appctl", "--timeout=5", "-t", str(_VSWITCHD.ctl(dir)), "exit", "--cleanup",
             timeout=10)
    if not _wait_gone(pid, _STOP_TIMEOUT):
        _VSWITCHD.stop(dir)
    _VSWITCHD.pidfile(dir).unlink(missing_ok=True)
    return True


def stop(dir: Path) -> bool:
    """Stop every daemon of the sandbox by its pidfile, in reverse start order, then delete
    the network namespaces it created (its hosts' and its own); True if any was running."""
    dir = dir.resolve()
    stopped = [_stop_vswitchd(dir) if d is _VSWITCHD else d.stop(dir) for d in reversed(_DAEMONS)]
    stopped.append(_remove_netns(dir))
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

"""A local OVN northbound database sandbox: one folder, loopback only.

Every daemon keeps its pidfile, log and control socket inside the sandbox folder, so several
sandboxes can run side by side and each is stopped through its own pidfile, never by name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

NB_SCHEMA = Path("/usr/share/ovn/ovn-nb.ovsschema")
_HINT = "run scripts/bootstrap.sh (Debian packages ovn-central, openvswitch-switch)"
_UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL
_READY_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


class SandboxError(Exception):
    """The sandbox could not be started or inspected."""


@dataclass(frozen=True)
class Sandbox:
    dir: Path
    nb_unix: str  # "unix:/abs/dir/nb.sock"
    nb_tcp: str | None  # "tcp:127.0.0.1:PORT" when a tcp port was requested
    pid: int


def _exe(program: str) -> str:
    # Debian puts ovsdb-server in /usr/sbin, which a non-root PATH often lacks.
    found = shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin")
    if found is None:
        raise SandboxError(f"{program} is not installed; {_HINT}")
    return found


def _run(*argv: str) -> str:
    """Run an OVS tool to completion and return its stdout; failure raises SandboxError."""
    # Output goes to files, not pipes: a detaching daemon that held a pipe open would hang us.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            rc = subprocess.run(
                [_exe(argv[0]), *argv[1:]],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=30, check=False,
            ).returncode
        except subprocess.TimeoutExpired as exc:
            raise SandboxError(f"{argv[0]} did not finish within 30 s") from exc
        out.seek(0)
        err.seek(0)
        if rc != 0:
            detail = err.read().decode(errors="replace").strip()
            raise SandboxError(f"{argv[0]} {argv[1]} failed (exit {rc}): {detail}")
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


@dataclass(frozen=True)
class _Daemon:
    """One OVS/OVN daemon of a sandbox, with NAME.pid, NAME.log and NAME.ctl in the folder.

    The data-plane extension (SB db, ovn-northd, ovs-vswitchd, ovn-controller) adds one
    instance per daemon to _DAEMONS and launches it with its own arguments.
    """

    name: str
    program: str  # also what /proc/PID/comm must say before a pid is trusted or signalled

    def pidfile(self, dir: Path) -> Path:
        return dir / f"{self.name}.pid"

    def ctl(self, dir: Path) -> Path:
        return dir / f"{self.name}.ctl"

    def pid(self, dir: Path) -> int | None:
        """The live pid the pidfile names, only if it still is this daemon (pids get reused)."""
        try:
            pid = int(self.pidfile(dir).read_text().strip())
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except (OSError, ValueError):
            return None
        return pid if comm == self.program[:15] and _alive(pid) else None

    def launch(self, dir: Path, *args: str) -> int:
        _run(
            self.program, "--detach", "--no-chdir",
            f"--pidfile={self.pidfile(dir)}",
            f"--log-file={dir / f'{self.name}.log'}",
            f"--unixctl={_unix_path(self.ctl(dir))}",
            *args,
        )
        pid = self.pid(dir)
        if pid is None:
            raise SandboxError(f"{self.program} exited at once; see {dir / f'{self.name}.log'}")
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
_DAEMONS: tuple[_Daemon, ...] = (_NB,)  # stop() walks this backwards: dependents go first


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


def start(dir: Path, tcp_port: int | None = None) -> Sandbox:
    """Start the NB ovsdb-server in DIR, or return the one already running there."""
    if tcp_port is not None and not 0 < tcp_port < 65536:
        # Port 0 binds a port we could only learn from the log; callers pick a free one.
        raise SandboxError(f"tcp_port must be 1-65535, not {tcp_port}")
    dir = dir.resolve()
    dir.mkdir(parents=True, exist_ok=True)
    nb_sock = _unix_path(dir / "nb.sock")
    remote = f"ptcp:{tcp_port}:127.0.0.1"  # loopback only: this database has no auth
    pid = _NB.pid(dir)
    if pid is None:
        db = dir / "nb.db"
        if not db.exists():
            if not NB_SCHEMA.exists():
                raise SandboxError(f"{NB_SCHEMA} not found; {_HINT}")
            # Create under a temporary name so an interrupted create never leaves a broken db.
            tmp = dir / "nb.db.tmp"
            tmp.unlink(missing_ok=True)
            _run("ovsdb-tool", "create", str(tmp), str(NB_SCHEMA))
            tmp.replace(db)
        tcp_args = []
        if tcp_port is not None:
            _check_port_free(tcp_port)
            tcp_args = [f"--remote={remote}"]
        pid = _NB.launch(dir, f"--remote=punix:{nb_sock}", *tcp_args, str(db))
    elif tcp_port is not None and tcp_port not in _tcp_ports(dir):
        # Converge rather than fail: the running server gains the tcp remote asked for.
        _check_port_free(tcp_port)
        _run("ovs-appctl", "-t", str(_NB.ctl(dir)), "ovsdb-server/add-remote", remote)
    _wait_connectable(socket.AF_UNIX, nb_sock, pid)
    if tcp_port is not None:
        _wait_connectable(socket.AF_INET, ("127.0.0.1", tcp_port), pid)
    nb_tcp = None if tcp_port is None else f"tcp:127.0.0.1:{tcp_port}"
    return Sandbox(dir=dir, nb_unix=f"unix:{nb_sock}", nb_tcp=nb_tcp, pid=pid)


def stop(dir: Path) -> bool:
    """Stop every daemon of the sandbox by its pidfile; True if any was running."""
    dir = dir.resolve()
    return any([d.stop(dir) for d in reversed(_DAEMONS)])  # a list: stop all, not the first


def status(dir: Path) -> dict[str, object]:
    dir = dir.resolve()
    pid = _NB.pid(dir)
    ports: set[int] = set()
    if pid is not None:
        # Status serves humans and health checks: a server dying mid-query is not an error.
        with contextlib.suppress(SandboxError, OSError):
            ports = _tcp_ports(dir)
    return {
        "running": pid is not None,
        "pid": pid,
        "nb": f"unix:{dir / 'nb.sock'}",
        "nb_tcp": [f"tcp:127.0.0.1:{p}" for p in sorted(ports)],
        "dir": str(dir),
    }

"""Processes of a sandbox: running OVS tools, and daemons known by their pidfiles.

A pid is trusted (or signalled) only while /proc says it still is the expected program:
pids get reused, and the sandbox never kills by name.
"""

from __future__ import annotations

import contextlib
import hashlib
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

_UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL
_READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
INSTALL_HINT = "run scripts/bootstrap.sh (Debian packages ovn-central, openvswitch-switch)"


class SandboxError(Exception):
    """The sandbox could not be started or inspected."""


def find_program(program: str) -> str:
    # Debian puts ovsdb-server in /usr/sbin, which a non-root PATH often lacks.
    found = shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin:/sbin")
    if found is None:
        raise SandboxError(f"{program} is not installed; {INSTALL_HINT}")
    return found


def run_tool(*argv: str, env: Mapping[str, str] | None = None, timeout: float = 30) -> str:
    """Run a tool to completion and return its stdout; failure raises SandboxError."""
    # Output goes to files, not pipes: a detaching daemon that held a pipe open would hang us.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            rc = subprocess.run(
                [find_program(argv[0]), *argv[1:]],
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


def unix_path(path: Path) -> str:
    if len(os.fsencode(path)) > _UNIX_PATH_MAX:
        raise SandboxError(
            f"socket path {str(path)!r} exceeds the AF_UNIX limit of {_UNIX_PATH_MAX} bytes; "
            "use a shorter sandbox folder"
        )
    return str(path)


def alive(pid: int) -> bool:
    # kill(pid, 0) also succeeds on a zombie, and PID 1 here may be slow to reap detached
    # daemons, so read the process state instead.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def terminate_pids(pids: Iterable[int], timeout: float = 2.0) -> None:
    """SIGTERM the given pids, then SIGKILL whatever is still alive after TIMEOUT."""
    pids = [p for p in pids if p != os.getpid()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = [p for p in pids if alive(p)]
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

@dataclass(frozen=True)
class Daemon:
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
        return pid if comm == self.program[:15] and alive(pid) else None

    def launch(self, dir: Path, *args: str) -> int:
        argv = [
            self.program, "--detach", "--no-chdir",
            f"--pidfile={self.pidfile(dir)}",
            f"--log-file={self.log(dir)}",
        ]
        if self.unixctl:
            argv.append(f"--unixctl={unix_path(self.ctl(dir))}")
        argv += args
        if self.in_netns:
            argv = ["ip", "netns", "exec", netns_name(dir), find_program(self.program), *argv[1:]]
        run_tool(*argv, env=_rundir_env(dir))
        pid = self.pid(dir)
        if pid is None:
            raise SandboxError(f"{self.program} exited at once; see {self.log(dir)}")
        return pid

    def stop(self, dir: Path) -> bool:
        pid = self.pid(dir)
        if pid is None:
            return False
        deadline = time.monotonic() + STOP_TIMEOUT
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):  # it may exit between check and kill
                os.kill(pid, sig)
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not alive(pid):
                break
            deadline = time.monotonic() + 2.0  # SIGKILL is not refusable; a short wait suffices
        # A killed daemon cannot remove its own pidfile; a stale one would mislead status.
        self.pidfile(dir).unlink(missing_ok=True)
        return True


def wait_connectable(family: int, address: str | tuple[str, int], pid: int) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    while True:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            try:
                sock.connect(address)
                return
            except OSError as exc:
                if not alive(pid) or time.monotonic() > deadline:
                    raise SandboxError(f"ovsdb-server not accepting on {address}: {exc}") from exc
        time.sleep(0.05)


def check_port_free(port: int) -> None:
    # ovsdb-server only logs a failed bind and keeps running, and the readiness probe would
    # then reach whoever holds the port: refuse a taken port up front instead.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ovsdb-server binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise SandboxError(f"tcp port {port} on 127.0.0.1 is not free: {exc}") from exc


def create_db(db: Path, schema: Path, hint: str) -> None:
    if db.exists():
        return
    if not schema.exists():
        raise SandboxError(f"{schema} not found; {hint}")
    # Create under a temporary name so an interrupted create never leaves a broken db.
    tmp = db.with_name(db.name + ".tmp")
    tmp.unlink(missing_ok=True)
    run_tool("ovsdb-tool", "create", str(tmp), str(schema))
    tmp.replace(db)

"""The NB sandbox against a real ovsdb-server: start, reuse, stop, by pidfile only."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import sandbox

needs_ovsdb = pytest.mark.skipif(
    shutil.which("ovsdb-server") is None,
    reason="ovsdb-server is not on PATH; run scripts/bootstrap.sh to install OVN",
)


@pytest.fixture
def sandbox_dir(tmp_path: Path) -> Iterator[Path]:
    dir = tmp_path / "sb"
    yield dir
    sandbox.stop(dir)  # never leave a daemon behind, even when the test failed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _nbctl(db: str, *args: str) -> str:
    return subprocess.run(
        ["ovn-nbctl", f"--db={db}", *args], capture_output=True, text=True, timeout=30, check=True
    ).stdout


def _pid_exists(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@needs_ovsdb
def test_start_reuse_stop(sandbox_dir: Path) -> None:
    sb = sandbox.start(sandbox_dir)
    assert sb.nb_unix == f"unix:{sandbox_dir.resolve() / 'nb.sock'}"
    assert sb.nb_tcp is None
    assert _nbctl(sb.nb_unix, "ls-list") == ""
    _nbctl(sb.nb_unix, "ls-add", "sw0")
    assert "sw0" in _nbctl(sb.nb_unix, "ls-list")

    st = sandbox.status(sandbox_dir)
    assert st["running"] is True
    assert st["pid"] == sb.pid
    assert st["nb"] == sb.nb_unix

    again = sandbox.start(sandbox_dir)
    assert again == sb

    assert sandbox.stop(sandbox_dir) is True
    assert not _pid_exists(sb.pid)
    assert sandbox.status(sandbox_dir)["running"] is False
    assert sandbox.stop(sandbox_dir) is False

    # The database outlives the server: a restart keeps the rows.
    restarted = sandbox.start(sandbox_dir)
    assert restarted.pid != sb.pid
    assert "sw0" in _nbctl(restarted.nb_unix, "ls-list")


@needs_ovsdb
def test_tcp_remote_on_loopback(sandbox_dir: Path) -> None:
    port = _free_port()
    sb = sandbox.start(sandbox_dir, tcp_port=port)
    assert sb.nb_tcp == f"tcp:127.0.0.1:{port}"
    _nbctl(sb.nb_tcp, "ls-add", "sw1")
    assert "sw1" in _nbctl(sb.nb_unix, "ls-list")
    assert sandbox.status(sandbox_dir)["nb_tcp"] == [sb.nb_tcp]

    # Asking a running sandbox for another port adds that remote instead of restarting.
    other = _free_port()
    again = sandbox.start(sandbox_dir, tcp_port=other)
    assert again.pid == sb.pid
    assert "sw1" in _nbctl(f"tcp:127.0.0.1:{other}", "ls-list")


@needs_ovsdb
def test_stale_pidfile_is_ignored(sandbox_dir: Path) -> None:
    sandbox_dir.mkdir()
    # Our own pid is alive but is not an ovsdb-server: it must never be signalled.
    (sandbox_dir / "nb.pid").write_text(f"{os.getpid()}\n")
    assert sandbox.status(sandbox_dir)["running"] is False
    assert sandbox.stop(sandbox_dir) is False
    sb = sandbox.start(sandbox_dir)
    assert sb.pid != os.getpid()


def test_socket_path_too_long(tmp_path: Path) -> None:
    with pytest.raises(sandbox.SandboxError, match="AF_UNIX"):
        sandbox.start(tmp_path / ("d" * 120))


def test_bad_port() -> None:
    with pytest.raises(sandbox.SandboxError, match="tcp_port"):
        sandbox.start(Path("unused"), tcp_port=0)


@needs_ovsdb
def test_taken_port_is_refused(sandbox_dir: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        # Otherwise ovsdb-server would start without its tcp remote and the probe would
        # reach the holder instead.
        with pytest.raises(sandbox.SandboxError, match="not free"):
            sandbox.start(sandbox_dir, tcp_port=port)
    assert sandbox.status(sandbox_dir)["running"] is False

"""A northbound and southbound database with ovn-northd, without a data plane (no root):
what ovn-trace needs. NB-only sandboxes of other tests are left alone, because ovn-northd
writes back to its northbound (port `up` columns)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gateway import sandbox
from gateway.sandbox.process import Daemon, create_db, unix_path, wait_connectable

SB_SCHEMA = Path("/usr/share/ovn/ovn-sb.ovsschema")
_SB = Daemon("trace-sb", "ovsdb-server")
_NORTHD = Daemon("trace-northd", "ovn-northd")


@dataclass(frozen=True)
class Databases:
    nb: str  # unix:...
    sb: str


@contextmanager
def nb_sb_northd(directory: Path) -> Iterator[Databases]:
    """Start NB, SB and ovn-northd in DIRECTORY; stop them (by pidfile) afterwards."""
    box = sandbox.start(directory)
    try:
        sb_sock = unix_path(directory / "trace-sb.sock")
        create_db(directory / "trace-sb.db", SB_SCHEMA, "install ovn-central")
        pid = _SB.launch(directory, f"--remote=punix:{sb_sock}", str(directory / "trace-sb.db"))
        wait_connectable(socket.AF_UNIX, sb_sock, pid)
        _NORTHD.launch(directory, f"--ovnnb-db={box.nb_unix}", f"--ovnsb-db=unix:{sb_sock}")
        yield Databases(box.nb_unix, f"unix:{sb_sock}")
    finally:
        _NORTHD.stop(directory)
        _SB.stop(directory)
        sandbox.stop(directory)


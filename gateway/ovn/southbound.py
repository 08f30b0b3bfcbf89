"""Short read-only queries of the southbound database (optional, OVN_SB_DB): which chassis
may host gateway ports, and where a port is bound. Answers are cached for a few seconds so
a burst of requests costs one query; an unreachable southbound answers "unknown"."""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from typing import Any

from ovs import jsonrpc, poller, stream

LOG = logging.getLogger(__name__)
TTL = 5.0
_cache: dict[tuple[str, str], tuple[float, Any]] = {}
_lock = threading.Lock()


def _select(remote: str, table: str, columns: list[str], timeout: float,
            where: list[Any] | None = None) -> list[dict[str, Any]]:
    """One `select` transaction against the first remote that answers."""
    for address in remote.split(","):
        error, conn = stream.Stream.open_block(stream.Stream.open(address.strip()),
                                               int(timeout * 1000))
        if error or conn is None:
            continue
        rpc = jsonrpc.Connection(conn)
        try:
            request = jsonrpc.Message.create_request("transact", [
                "OVN_Southbound", {"op": "select", "table": table, "where": where or [],
                                   "columns": columns}])
            rpc.send(request)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                rpc.run()
                error, reply = rpc.recv()
                if reply is not None and reply.id == request.id:
                    return list(reply.result[0].get("rows", [])) if reply.result else []
                if error and error != 11:  # EAGAIN: nothing yet
                    break
                wait = poller.Poller()
                rpc.wait(wait)
                rpc.recv_wait(wait)
                wait.timer_wait(100)
                wait.block()
        finally:
            rpc.close()
    raise OSError(f"southbound database {remote} did not answer")


def _cached(remote: str, key: str, fetch: Any, ttl: float = TTL) -> Any:
    now = time.monotonic()
    with _lock:
        hit = _cache.get((remote, key))
        if hit is not None and hit[0] > now:
            return hit[1]
    value = fetch()
    with _lock:
        _cache[(remote, key)] = (now + ttl, value)
    return value


def _map(value: Any) -> dict[str, str]:
    return dict(value[1]) if isinstance(value, list) and value and value[0] == "map" else {}


def gateway_chassis(remote: str, timeout: float = 1.0) -> list[str]:
    """Chassis marked enable-chassis-as-gw, by name (sorted: a stable priority order)."""
    def fetch() -> list[str]:
        rows = _select(remote, "Chassis", ["name", "other_config", "external_ids"], timeout)
        found = []
        for row in rows:
            options = _map(row.get("other_config")).get("ovn-cms-options") or \
                _map(row.get("external_ids")).get("ovn-cms-options", "")
            if "enable-chassis-as-gw" in options.split(","):
                found.append(str(row["name"]))
        return sorted(found)
    try:
        return list(_cached(remote, "gw-chassis", fetch))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        LOG.warning("southbound: no gateway chassis list: %s", exc)
        return []


def bound_chassis(remote: str, timeout: float = 1.0) -> dict[str, str]:
    """logical port -> chassis name, for the chassis-redirect ports of gateway ports."""
    def fetch() -> dict[str, str]:
        chassis = {row["_uuid"][1]: str(row["name"]) for row in
                   _select(remote, "Chassis", ["_uuid", "name"], timeout)}
        bound = {}
        for row in _select(remote, "Port_Binding", ["logical_port", "chassis"], timeout,
                           [["type", "==", "chassisredirect"]]):
            ref = row.get("chassis")
            if isinstance(ref, list) and ref and ref[0] == "uuid" and ref[1] in chassis:
                bound[str(row["logical_port"])] = chassis[ref[1]]
        return bound
    try:
        return dict(_cached(remote, "bound", fetch))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        LOG.warning("southbound: no port bindings: %s", exc)
        return {}


def service_monitors(remote: str, timeout: float = 1.0,
                     ttl: float = 1.0) -> dict[tuple[str, int, str, str], str]:
    """(backend ip, port, protocol, logical port) -> online | offline, from OVN's service
    monitor. The logical port tells apart tenants whose backends share addresses."""
    def fetch() -> dict[tuple[str, int, str, str], str]:
        found = {}
        for row in _select(remote, "Service_Monitor",
                           ["ip", "port", "protocol", "logical_port", "status"], timeout):
            status = row.get("status")
            protocol = row.get("protocol")
            if isinstance(status, str) and status in ("online", "offline"):
                proto = protocol if isinstance(protocol, str) else "tcp"
                found[(str(row["ip"]), int(row["port"]), proto,
                       str(row["logical_port"]))] = status
        return found
    try:
        return dict(_cached(remote, "monitors", fetch, ttl))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        LOG.warning("southbound: no service monitors: %s", exc)
        return {}


class TraceError(Exception):
    """ovn-trace is missing, failed or took too long; the message says which."""


# Every ct_next of a trace sees a new connection (the default, trk,est, would skip the
# ACLs the way an established connection does). A packet meets fewer than this many.
_CT_NEW = ["--ct=new"] * 12


def trace(remote: str, microflow: str, timeout: float, lb_dst: str | None = None,
          ssl: tuple[str, str, str] | None = None) -> str:
    """ovn-trace's detailed output for MICROFLOW, read from the southbound database at
    REMOTE. Run without a shell; the caller builds MICROFLOW from parsed values only."""
    program = shutil.which("ovn-trace") or shutil.which("ovn-trace", path="/usr/bin:/usr/sbin")
    if program is None:
        raise TraceError("ovn-trace is not installed on the gateway's host (Debian: ovn-common)")
    argv = [program, f"--db={remote}", "--no-friendly-names", "--detailed", *_CT_NEW]
    if ssl is not None:
        argv += [f"--private-key={ssl[0]}", f"--certificate={ssl[1]}", f"--ca-cert={ssl[2]}"]
    if lb_dst is not None:
        argv.append(f"--lb-dst={lb_dst}")
    argv.append(microflow)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise TraceError(f"ovn-trace did not answer within {timeout:g} s "
                         f"(southbound database {remote})") from None
    except OSError as exc:
        raise TraceError(f"ovn-trace could not run: {exc}") from None
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise TraceError(f"ovn-trace failed against {remote}: {why}")
    return done.stdout

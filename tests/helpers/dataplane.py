"""Helpers of the data-plane tests: hosts on a sandbox, and probes between them."""

from __future__ import annotations

import ipaddress
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.sandbox import external as sandbox_external
from gateway.sandbox import hosts as sandbox_hosts


def ctl(program: str, db: str, *args: str) -> str:
    return subprocess.run([program, f"--db={db}", "--timeout=10", *args], check=True,
                          capture_output=True, text=True, timeout=20).stdout


class Hosts:
    """Adds hosts to one sandbox and removes them (and what runs in them) afterwards."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.names: list[str] = []
        self.procs: list[subprocess.Popen[Any]] = []

    def add(self, name: str, port: str, mac: str, ip_cidr: str | None = None,
            gateway: str | None = None) -> sandbox_hosts.Host:
        self.names.append(name)
        return sandbox_hosts.add_host(self.dir, name, port, mac, ip_cidr, gateway)

    def add_outside(self, name: str, nb_db: str, network_id: str,
                    ip: str | None = None) -> sandbox_hosts.Host:
        """An outside host on br-ex, on external network NETWORK_ID (read from NB_DB)."""
        self.names.append(name)
        return sandbox_external.add(self.dir, name, nb_db, network_id, ip)

    def run(self, name: str, *argv: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
        return sandbox_hosts.exec_in_host(self.dir, name, list(argv), timeout=timeout)

    def start(self, name: str, *argv: str) -> subprocess.Popen[Any]:
        proc = sandbox_hosts.start_in_host(self.dir, name, list(argv),
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def remove(self, name: str) -> bool:
        """Unplug and delete one host now (what runs in it is stopped by del_host)."""
        if name in self.names:
            self.names.remove(name)
        return sandbox_hosts.del_host(self.dir, name)

    def cleanup(self) -> None:
        for proc in self.procs:
            sandbox_hosts.terminate(proc)
        for name in reversed(self.names):
            sandbox_hosts.del_host(self.dir, name)


# --- probes between hosts -----------------------------------------------------------------------


def stays(check: Callable[[], Any], seconds: float, interval: float = 0.3) -> bool:
    """True if CHECK holds on every probe during SECONDS (for 'still blocked' assertions)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not check():
            return False
        time.sleep(interval)
    return bool(check())


def host_addr(port: dict[str, Any], network: dict[str, Any]) -> str:
    """The port's first IPv4 address with the network's prefix length, e.g. 10.0.0.2/24."""
    prefix = ipaddress.ip_network(network["cidr"]).prefixlen
    v4 = next(ip for ip in port["ips"] if ipaddress.ip_address(ip).version == 4)
    return f"{v4}/{prefix}"


def ip4(port: dict[str, Any]) -> str:
    return next(ip for ip in port["ips"] if ipaddress.ip_address(ip).version == 4)


def ping(hosts: Hosts, name: str, ip: str, count: int = 1, wait: int = 1) -> bool:
    return hosts.run(name, "ping", "-n", "-c", str(count), "-i", "0.2", "-W", str(wait),
                     ip).returncode == 0


def tcp_reply(hosts: Hosts, name: str, ip: str, port: int, timeout: int = 1) -> str:
    """What a server at IP:PORT says to a connection from host NAME ('' when none)."""
    try:
        out = hosts.run(name, "nc", "-n", "-w", str(timeout), "-N", ip, str(port),
                        timeout=timeout + 10)
    except subprocess.TimeoutExpired:
        return ""
    return out.stdout.strip()

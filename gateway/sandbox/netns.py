"""Network namespaces of a sandbox: its own and its hosts', recorded in the folder before
they are created so that stop() deletes them even after a crash."""

from __future__ import annotations

from pathlib import Path

from gateway.sandbox.process import SandboxError, netns_name, run_tool, terminate_pids

NETNS_FILE = "netns"  # the network namespaces this sandbox created, one per line
HOSTS_FILE = "hosts.json"  # gateway.sandbox.hosts' record of the sandbox hosts


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
    out = run_tool("ip", "netns", "list")
    # Lines look like "name" or "name (id: 3)".
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def netns_pids(name: str) -> list[int]:
    try:
        out = run_tool("ip", "netns", "pids", name)
    except SandboxError:
        return []
    return [int(p) for p in out.split() if p.isdigit()]


def delete_netns(name: str) -> None:
    """Stop what still runs in namespace NAME (by pid) and delete it."""
    terminate_pids(netns_pids(name))
    run_tool("ip", "netns", "delete", name)


def ensure_netns(dir: Path, name: str) -> None:
    track_netns(dir, name)
    if name not in existing_netns():
        run_tool("ip", "netns", "add", name)
    run_tool("ip", "-n", name, "link", "set", "dev", "lo", "up")


def remove_tracked_netns(dir: Path) -> bool:
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

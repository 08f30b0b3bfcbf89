"""A local OVN sandbox in one folder: the northbound database, and on request a data plane.

The interface callers use is re-exported here (``from gateway import sandbox``;
``sandbox.start``, ``sandbox.stop``, ``sandbox.status``, ``sandbox.Sandbox``...). Modules:

- ``lifecycle``: the daemons of a sandbox and its data plane; start, stop, status.
- ``process``: running OVS tools, and daemons known by their pidfiles (never by name).
- ``netns``: the network namespaces a sandbox creates, recorded in its folder.
- ``hosts``: hosts (network namespaces wired to logical ports) on a sandbox's data plane;
  import it as ``from gateway.sandbox import hosts``.
"""

from __future__ import annotations

from gateway.sandbox.lifecycle import (
    BRIDGE,
    EXTERNAL_BRIDGE,
    PHYSNET,
    Sandbox,
    start,
    status,
    stop,
)
from gateway.sandbox.netns import (
    HOSTS_FILE,
    NETNS_FILE,
    delete_netns,
    existing_netns,
    track_netns,
    tracked_netns,
    untrack_netns,
)
from gateway.sandbox.process import SandboxError, alive, netns_name, prefix, system_id

__all__ = [
    "BRIDGE", "EXTERNAL_BRIDGE", "HOSTS_FILE", "NETNS_FILE", "PHYSNET", "Sandbox",
    "SandboxError", "alive", "delete_netns", "existing_netns", "netns_name", "prefix",
    "start", "status", "stop", "system_id", "track_netns", "tracked_netns", "untrack_netns",
]

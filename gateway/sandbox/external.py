"""Outside hosts: the world beyond a sandbox's external networks.

An external network of the API is a ``Logical_Switch`` with a ``localnet`` port on a physical
network; the sandbox maps its one physical network (``physnet1``) to the provider bridge
``br-ex``. An outside host is a sandbox host plugged into ``br-ex`` (gateway.sandbox.hosts'
``add_outside_host``), an access port of the network's VLAN when it has one. It plays the
upstream router: by default it takes the network's ``gateway_ip``, where gateways send their
default route.

The external network is read from the northbound database with ``ovn-nbctl``: the switch whose
``external_ids`` carry ``ovn-nb-gateway:kind=external-network`` and ``ovn-nb-gateway:id``, with
the API document as JSON in ``ovn-nb-gateway:doc``.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.sandbox.hosts import Host, HostError, add_outside_host, validate_vlan
from gateway.sandbox.lifecycle import PHYSNET
from gateway.sandbox.process import SandboxError, run_tool

_KEY = "ovn-nb-gateway:"
KIND = "external-network"


@dataclass(frozen=True)
class ExternalNetwork:
    id: str
    cidr: str  # e.g. "172.16.0.0/24"
    gateway_ip: str | None
    physical_network: str
    vlan: int | None = None


# --- pure helpers ------------------------------------------------------------------------------


def _decode_map(value: Any) -> dict[str, str]:
    """An OVSDB JSON map column: ["map", [[key, value], ...]]."""
    if isinstance(value, list) and len(value) == 2 and value[0] == "map":
        return {str(k): str(v) for k, v in value[1]}
    return {}


def parse_external_network(text: str, network_id: str) -> ExternalNetwork:
    """`ovn-nbctl --format=json --columns=external_ids find Logical_Switch ...` output, the
    rows found for NETWORK_ID: exactly one, carrying a usable document."""
    out = json.loads(text)
    found = [_decode_map(dict(zip(out["headings"], row, strict=True)).get("external_ids"))
             for row in out.get("data") or []]
    found = [ids for ids in found if ids.get(_KEY + "kind") == KIND
             and ids.get(_KEY + "id") == network_id]
    if not found:
        raise HostError(f"no external network {network_id!r} in the northbound database")
    if len(found) > 1:
        raise HostError(f"{len(found)} switches claim to be external network {network_id!r}")
    try:
        doc = json.loads(found[0][_KEY + "doc"])
        net = ExternalNetwork(id=network_id, cidr=str(doc["cidr"]),
                              gateway_ip=doc.get("gateway_ip"),
                              physical_network=str(doc["physical_network"]),
                              vlan=doc.get("vlan"))
        ipaddress.ip_network(net.cidr)
    except (KeyError, TypeError, ValueError) as exc:
        raise HostError(f"external network {network_id!r} has no usable document: "
                        f"{exc!r}") from exc
    validate_vlan(net.vlan)
    return net


def outside_address(net: ExternalNetwork, ip: str | None = None) -> str:
    """The outside host's address with the network's prefix length: IP, or else the network's
    gateway_ip (the outside host plays the upstream router). IP may carry its own prefix."""
    cidr = ipaddress.ip_network(net.cidr)
    if ip is None:
        if not net.gateway_ip:
            raise HostError(f"external network {net.id} has no gateway_ip; give --ip")
        ip = net.gateway_ip
    try:
        iface = ipaddress.ip_interface(ip if "/" in ip else f"{ip}/{cidr.prefixlen}")
    except ValueError as exc:
        raise HostError(f"{ip!r} is not an IP address") from exc
    if iface.ip not in cidr:
        raise HostError(f"{iface.ip} is not in external network {net.id}'s cidr {net.cidr}")
    if iface.ip in (cidr.network_address, cidr.broadcast_address) and cidr.prefixlen < 31:
        raise HostError(f"{iface.ip} is the network or broadcast address of {net.cidr}")
    return str(iface)


# --- the sandbox -------------------------------------------------------------------------------


def external_network(nb_db: str, network_id: str) -> ExternalNetwork:
    """Ask the NB database (ovn-nbctl) for external network NETWORK_ID."""
    try:
        out = run_tool("ovn-nbctl", f"--db={nb_db}", "--timeout=10", "--format=json",
                       "--columns=external_ids", "find", "Logical_Switch",
                       f'external_ids:"{_KEY}kind"="{KIND}"',
                       f'external_ids:"{_KEY}id"={json.dumps(network_id)}', timeout=15)
    except SandboxError as exc:
        raise HostError(f"external network {network_id!r}: {exc}") from exc
    return parse_external_network(out, network_id)


def add(dir: Path, name: str, nb_db: str, network_id: str, ip: str | None = None) -> Host:
    """Put outside host NAME on external network NETWORK_ID (read from NB_DB)."""
    net = external_network(nb_db, network_id)
    if net.physical_network != PHYSNET:
        raise HostError(f"external network {network_id} is on physical network "
                        f"{net.physical_network!r}; the sandbox bridges only {PHYSNET!r}")
    return add_outside_host(dir, name, outside_address(net, ip), network_id, net.vlan)

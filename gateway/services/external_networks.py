"""External networks: a logical switch with a localnet port on a physical network, and
the allocation of its addresses to gateways and floating IPs."""

from __future__ import annotations

import ipaddress
from typing import Any

from gateway.errors import BadRequest, Conflict, NotFound
from gateway.ovn import naming
from gateway.ovn.tables import LS, LSP
from gateway.ovn.transaction import Txn, bump_counter
from gateway.services.lifecycle import Hooks, ResourceEvent
from gateway.services.networks import complete_gateway_ip
from gateway.services.resources import TENANT_COLUMNS, Doc, Resource, stored_doc

KIND = "external-network"
ALLOC = naming.PREFIX + "alloc"


def localnet_name(network_id: str) -> str:
    return f"ovngw-ext-{network_id}-localnet"


def _pools(doc: Doc) -> list[tuple[int, int]]:
    net = ipaddress.IPv4Network(doc["cidr"])
    pools = doc.get("allocation_pools") or [
        {"start": str(net.network_address + 1), "end": str(net.broadcast_address - 1)}]
    return [(int(ipaddress.IPv4Address(p["start"])), int(ipaddress.IPv4Address(p["end"])))
            for p in pools]


def complete_external(doc: Doc) -> Doc:
    """Defaults and cross-field checks shared by create and update."""
    net = complete_gateway_ip(doc)
    hosts = (int(net.network_address) + 1, int(net.broadcast_address) - 1)
    for i, (start, end) in enumerate(_pools(doc)):
        if not hosts[0] <= start <= end <= hosts[1]:
            raise BadRequest.field(f"allocation_pools.{i}",
                                   f"start <= end, both host addresses of {doc['cidr']}")
    return doc


def in_cidr(doc: Doc, ip: str) -> bool:
    return ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(doc["cidr"])


def locate(t: Txn, network_id: str, field: str) -> tuple[Any, Doc]:
    """An external network by id (every tenant may use one); 404 naming the field."""
    row = t.get(LS, KIND, str(network_id))
    if row is None:
        raise NotFound.field(field, "external network")
    return row, stored_doc(row)


def held_key(network_id: str, ip: str) -> str:
    """The lookup key value of an address held on an external network."""
    return f"{network_id}/{ip}"


# Where the last search of each external network ended, in this process: the next one
# starts there instead of walking every held address again (a hint only; every candidate
# is still checked).
_cursor: dict[str, int] = {}


def allocate(t: Txn, hooks: Hooks, ls: Any, network: Doc, requested: str | None,
             field: str, keep: str | None = None) -> str:
    """An address of the external network no gateway, floating IP or load balancer holds
    (`keep`: the caller's own current one). The counter's verify serialises concurrent
    allocations."""
    bump_counter(ls, ALLOC)

    def taken(ip: str) -> bool:
        return ip != keep and (ip == network["gateway_ip"]
                               or hooks.address_taken(t, network, ip))

    if requested:
        net = ipaddress.IPv4Network(network["cidr"])
        if not in_cidr(network, requested) or requested in (
                str(net.network_address), str(net.broadcast_address)):
            raise Conflict.field(field, f"not a host address of {network['cidr']}")
        if taken(requested):
            raise Conflict.field(field, "in use on the external network")
        return requested
    pools = _pools(network)
    size = sum(end - start + 1 for start, end in pools)
    start_at = _cursor.get(network["id"], 0) % max(size, 1)
    for step in range(size):
        offset = (start_at + step) % size
        candidate = str(ipaddress.IPv4Address(_nth(pools, offset)))
        if not taken(candidate):
            _cursor[network["id"]] = offset + 1
            return candidate
    raise Conflict.field(field, "no free address left on the external network")


def _nth(pools: list[tuple[int, int]], offset: int) -> int:
    for start, end in pools:
        if offset <= end - start:
            return start + offset
        offset -= end - start + 1
    raise IndexError(offset)


class ExternalNetworkService(Resource):
    """Admins write external networks; every tenant reads them. Deleting one in use is
    refused by the kinds that use it (lifecycle.ResourceEvent)."""

    kind = KIND
    table = LS
    shared = True
    admin_writes = True
    monitors = {**TENANT_COLUMNS, LS: frozenset({"name", "ports", "external_ids"}),
                LSP: frozenset({"name", "type", "addresses", "options", "tag",
                                "external_ids"})}

    def write_new(self, t: Txn, doc: Doc, parent: Any, tenant_row: Any) -> Any:
        complete_external(doc)
        ls = t.insert(LS, name=f"ovngw-ext-{doc['id']}")
        localnet = t.insert(LSP, name=localnet_name(doc["id"]), type="localnet",
                            addresses=["unknown"],
                            options={"network_name": doc["physical_network"]},
                            external_ids=naming.owner_ids("localnet", doc["id"],
                                                          doc["tenant_id"], parent=doc["id"]))
        if doc.get("vlan"):
            localnet.tag = [doc["vlan"]]
        ls.ports = [localnet]
        return ls

    def complete(self, doc: Doc) -> None:
        complete_external(doc)

    def apply_update(self, t: Txn, row: Any, old: Doc, new: Doc) -> None:
        if new["gateway_ip"] != old["gateway_ip"] or \
                new.get("allocation_pools") != old.get("allocation_pools"):
            bump_counter(row, ALLOC)
            if self.hooks.address_taken(t, new, new["gateway_ip"]):
                raise Conflict.field("gateway_ip", "held by a gateway or floating IP")
        self.hooks.resource_changing(t, ResourceEvent(KIND, new["tenant_id"], old, new))

    def repair(self, t: Txn, row: Any, doc: Doc) -> list[Any]:
        """Drift repair (services.drift): the switch's name and its localnet port."""
        if row.name != f"ovngw-ext-{doc['id']}":
            row.name = f"ovngw-ext-{doc['id']}"
        wanted = {"name": localnet_name(doc["id"]), "type": "localnet",
                  "addresses": ["unknown"], "options": {"network_name": doc["physical_network"]},
                  "tag": [doc["vlan"]] if doc.get("vlan") else []}
        localnet = t.get(LSP, "localnet", doc["id"])
        if localnet is None:
            localnet = t.insert(LSP, **wanted, external_ids=naming.owner_ids(
                "localnet", doc["id"], doc["tenant_id"], parent=doc["id"]))
            row.addvalue("ports", localnet)
            return []
        for column, value in wanted.items():
            if getattr(localnet, column) != value:
                setattr(localnet, column, value)
        return []

    def remove(self, t: Txn, row: Any, doc: Doc, cascade: bool) -> None:
        self.hooks.resource_changing(t, ResourceEvent(KIND, doc["tenant_id"], doc, None))
        row.delete()  # its localnet port goes with it

"""Lifecycle hooks: how one kind reacts to another kind's events inside the same OVN
transaction. Ports and networks announce what happens to them; the kinds that care
(DNS records, policies, gateways, load balancers, ...) listen, so the announcing kind never
knows who listens. A listener that writes rows shared across a tenant's resources takes the
tenant lock itself (`tenants.lock`, once per transaction)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.ovn.transaction import Txn

Doc = dict[str, Any]


@dataclass(frozen=True)
class PortEvent:
    """A port was created (old is None), changed, or deleted (new is None)."""

    tenant: str
    lsp: Any  # the port's Logical_Switch_Port row
    old: Doc | None
    new: Doc | None
    network: Doc  # the port's network, as stored
    ls: Any  # the network's Logical_Switch row
    cascade: bool = False  # deleted because its network goes (?cascade=true)

    @property
    def port_id(self) -> str:
        return str((self.new or self.old or {})["id"])


@dataclass(frozen=True)
class NetworkEvent:
    """A network was created (old is None), changed, or is being deleted (new is None)."""

    tenant: str
    ls: Any
    old: Doc | None
    new: Doc | None
    cascade: bool = False  # a delete that may take dependent resources with it


@dataclass(frozen=True)
class ResourceEvent:
    """Any other kind's resource changes (new is None: it is being deleted)."""

    kind: str
    tenant: str
    old: Doc | None
    new: Doc | None
    cascade: bool = False


class Listener:
    """What a kind may react to; every default does nothing."""

    def port_changed(self, t: Txn, event: PortEvent) -> None:
        """Follow a port's addresses, labels, hostname or removal."""

    def network_changed(self, t: Txn, event: NetworkEvent) -> None:
        """Follow a network's creation or change."""

    def network_deleting(self, t: Txn, event: NetworkEvent) -> None:
        """Raise Conflict, naming what blocks the delete; or, with event.cascade (or for
        what does not block), remove or detach what this kind holds on the network."""

    def resource_changing(self, t: Txn, event: ResourceEvent) -> None:
        """Follow, or refuse with Conflict, a change or delete of another kind's resource."""

    def reserved_addresses(self, t: Txn, network: Doc) -> set[str]:
        """Addresses of a tenant network this kind holds, which no port may be given."""
        return set()

    def address_taken(self, t: Txn, network: Doc, ip: str) -> bool:
        """Whether this kind holds `ip` on an external network (an indexed lookup, so
        allocation costs the same with 10 or 10,000 addresses held)."""
        return False


class Hooks:
    """The registered listeners, called in registration order."""

    def __init__(self) -> None:
        self.listeners: list[Listener] = []

    def register(self, listener: Listener) -> None:
        if listener not in self.listeners:
            self.listeners.append(listener)

    def port_changed(self, t: Txn, event: PortEvent) -> None:
        for listener in self.listeners:
            listener.port_changed(t, event)

    def network_changed(self, t: Txn, event: NetworkEvent) -> None:
        for listener in self.listeners:
            listener.network_changed(t, event)

    def network_deleting(self, t: Txn, event: NetworkEvent) -> None:
        for listener in self.listeners:
            listener.network_deleting(t, event)

    def resource_changing(self, t: Txn, event: ResourceEvent) -> None:
        for listener in self.listeners:
            listener.resource_changing(t, event)

    def address_taken(self, t: Txn, network: Doc, ip: str) -> bool:
        return any(listener.address_taken(t, network, ip) for listener in self.listeners)

    def reserved_addresses(self, t: Txn, network: Doc) -> set[str]:
        taken: set[str] = set()
        for listener in self.listeners:
            taken |= listener.reserved_addresses(t, network)
        return taken

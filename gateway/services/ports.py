"""Ports: logical switch ports whose addresses, port security and DHCP come from the
network; addresses are allocated inside the write transaction."""

from __future__ import annotations

from typing import Any

from gateway.auth import Principal
from gateway.errors import Conflict, NotFound
from gateway.ovn import naming
from gateway.ovn.tables import LS, LSP
from gateway.ovn.transaction import Txn, bump_counter
from gateway.services import ipam, tenants
from gateway.services.lifecycle import Hooks, Listener, NetworkEvent, PortEvent
from gateway.services.networks import DhcpRows, check_dhcp_addresses, foreign_addresses
from gateway.services.resources import TENANT_COLUMNS, Doc, Resource, stored_doc

ALLOC = naming.PREFIX + "alloc"


def in_use(t: Txn, hooks: Hooks, network: Doc,
           skip_port: str | None = None) -> tuple[set[str], set[str]]:
    """Addresses and MACs of the network's other ports, plus its reserved addresses, those
    other kinds hold in it and those of ports another tool put on its switch (from the
    index: committed state, which the allocation counter's verify keeps honest; the
    switch's `ports`, verified too)."""
    ips = ipam.reserved_v4(network["cidr"], network["gateway_ip"])
    if network.get("ipv6_cidr"):
        ips.add(ipam.router_v6(network["ipv6_cidr"]))
    ips |= hooks.reserved_addresses(t, network)
    macs: set[str] = set()
    ls = t.get(LS, "network", network["id"])
    if ls is not None:
        ls.verify("ports")
        foreign_ips, macs = foreign_addresses(ls)
        ips |= foreign_ips
    for entry in t.entries(LSP, "port", parent=network["id"]):
        if entry.id == skip_port or entry.doc is None:
            continue
        macs.add(entry.doc["mac"])
        ips.update(entry.doc["ips"])
    return ips, macs


def assign_addresses(t: Txn, hooks: Hooks, network: Doc, doc: Doc, mac_prefix: str,
                     skip_port: str | None = None) -> None:
    used_ips, used_macs = in_use(t, hooks, network, skip_port)
    if doc.get("mac"):
        if doc["mac"] in used_macs:
            raise Conflict.field("mac", "in use by another port of this network")
    else:
        doc["mac"] = ipam.random_mac(mac_prefix, used_macs)
    if doc.get("ips"):
        for i, ip in enumerate(doc["ips"]):
            if not ipam.in_network(ip, (network["cidr"], network.get("ipv6_cidr"))):
                raise Conflict.field(f"ips.{i}", "outside the network's cidr")
            if ip in used_ips:
                raise Conflict.field(f"ips.{i}", "in use in this network")
        if len(set(doc["ips"])) != len(doc["ips"]):
            raise Conflict.field("ips", "the same address twice")
        return
    v4 = ipam.next_free_v4(network["cidr"], used_ips)
    if v4 is None:
        raise Conflict.field("ips", "no free address left in the network")
    doc["ips"] = [v4]
    if network.get("ipv6_cidr"):
        v6 = ipam.next_free_v6(network["ipv6_cidr"], doc["mac"], used_ips)
        if v6 is not None:
            doc["ips"].append(v6)


def bump_allocation(ls: Any) -> None:
    """Two processes re-addressing ports of one network must not both pass the checks."""
    bump_counter(ls, ALLOC)


def write_port_columns(lsp: Any, doc: Doc, dhcp_rows: dict[str, Any]) -> None:
    address = " ".join([doc["mac"], *doc["ips"]])
    lsp.addresses = [address]
    lsp.port_security = [address] if doc.get("port_security", True) else []
    lsp.enabled = [bool(doc.get("enabled", True))]
    lsp.dhcpv4_options = [dhcp_rows["v4"]] if "v4" in dhcp_rows else []
    lsp.dhcpv6_options = [dhcp_rows["v6"]] if "v6" in dhcp_rows else []


def port_dhcp_rows(t: Txn, dhcp_rows: DhcpRows, network: Doc, doc: Doc,
                   network_rows: dict[str, Any] | None = None) -> dict[str, Any]:
    """A port with overrides gets rows of its own; the others share the network's."""
    if doc.get("dhcp"):
        return dhcp_rows.sync(t, doc["id"], doc["tenant_id"], network, doc["dhcp"])
    dhcp_rows.drop(t, doc["id"])
    return network_rows if network_rows is not None else dhcp_rows.rows(t, network["id"])


class PortService(Resource, Listener):
    """Ports announce their changes (lifecycle.PortEvent); they follow their network's DHCP
    and gateway address, and block (or, with cascade, go with) its delete."""

    kind = "port"
    quota = "ports"
    table = LSP
    monitors = {**TENANT_COLUMNS,
                LS: frozenset({"name", "ports", "external_ids"}),
                LSP: frozenset({"name", "addresses", "port_security", "enabled", "up",
                                "dhcpv4_options", "dhcpv6_options", "external_ids"})}
    # Policy membership and address allocation read these on every port write.
    index_fields = frozenset({"id", "labels", "ips", "mac", "network_id"})

    @property
    def dhcp(self) -> DhcpRows:
        return DhcpRows(self.settings.mac_prefix)

    def read_only_fields(self) -> tuple[str, ...]:
        return ("network_id",)

    def parent_key(self, doc: Doc) -> str | None:
        return str(doc["network_id"])

    def default_tenant(self, principal: Principal, parent_id: str | None) -> str:
        """An admin creating a port acts for the network's tenant unless it names one."""
        entry = self.nb.index(LS).by_id("network", str(parent_id))
        if principal.is_admin and entry is not None:
            return entry.tenant
        return principal.tenant

    def resolve_parent(self, t: Txn, principal: Principal, tenant: str,
                       parent_id: str | None) -> Any:
        ls = self.locate(t, principal, str(parent_id), field="network_id", kind="network",
                         table=LS)
        if ls.external_ids.get(naming.TENANT) != tenant:
            raise NotFound.field("network_id", "network")
        return ls

    def network_of(self, t: Txn, doc: Doc) -> tuple[Any, Doc]:
        ls = t.get(LS, "network", doc["network_id"])
        return ls, stored_doc(ls)

    def write_new(self, t: Txn, doc: Doc, parent: Any, tenant_row: Any) -> Any:
        network = stored_doc(parent)
        doc["network_id"] = network["id"]
        check_dhcp_addresses(network, doc.get("dhcp") or {})
        assign_addresses(t, self.hooks, network, doc, self.settings.mac_prefix)
        lsp = t.insert(LSP, name=doc["id"])
        write_port_columns(lsp, doc, port_dhcp_rows(t, self.dhcp, network, doc))
        parent.addvalue("ports", lsp)
        bump_allocation(parent)
        tenant_row.addvalue("ports", lsp)
        self.hooks.port_changed(t, PortEvent(doc["tenant_id"], lsp, None, doc, network, parent))
        return lsp

    def apply_update(self, t: Txn, row: Any, old: Doc, new: Doc) -> None:
        ls, network = self.network_of(t, old)
        if new.get("dhcp") != old.get("dhcp"):
            check_dhcp_addresses(network, new.get("dhcp") or {})
        if new.get("mac") != old["mac"] or new.get("ips") != old["ips"]:
            assign_addresses(t, self.hooks, network, new, self.settings.mac_prefix,
                             skip_port=old["id"])
            bump_allocation(ls)
            self.write_ownership(row, new)  # listeners read the allocated addresses
        write_port_columns(row, new, port_dhcp_rows(t, self.dhcp, network, new))
        self.hooks.port_changed(t, PortEvent(new["tenant_id"], row, old, new, network, ls))

    def repair(self, t: Txn, row: Any, doc: Doc) -> list[Any]:
        """Drift repair (services.drift): the port's columns, its DHCP rows and its place in
        the tenant's port group, as written (policy groups are the policies' own)."""
        _, network = self.network_of(t, doc)
        if row.name != doc["id"]:
            row.name = doc["id"]
        write_port_columns(row, doc, port_dhcp_rows(t, self.dhcp, network, doc))
        group = t.get(tenants.TABLE, tenants.KIND, doc["tenant_id"]) or \
            tenants.lock(t, doc["tenant_id"])
        if row not in group.ports:
            group.addvalue("ports", row)
        return []

    def remove(self, t: Txn, row: Any, doc: Doc, cascade: bool) -> None:
        ls, network = self.network_of(t, doc)
        self.dhcp.drop(t, doc["id"])
        self.hooks.port_changed(t, PortEvent(doc["tenant_id"], row, doc, None, network, ls,
                                             cascade))
        ls.delvalue("ports", row)
        # ovsdb-server 3.1 keeps a weak reference to a row deleted in the same transaction
        # that modifies the referring row (the tenant lock does): drop it explicitly.
        tenants.lock(t, doc["tenant_id"]).delvalue("ports", row)
        row.delete()

    def derive(self, row: Any, doc: Doc) -> Doc:
        up = list(row.up) if hasattr(row, "up") else []
        return {**doc, "status": "up" if up and up[0] else "down"}

    # -- what ports do when their network changes -----------------------------------------
    def network_changed(self, t: Txn, event: NetworkEvent) -> None:
        old, new = event.old, event.new
        if old is None or new is None:
            return
        if new["gateway_ip"] != old["gateway_ip"]:
            # The ports' addresses as the index keeps them, as address allocation reads them.
            for entry in t.entries(LSP, "port", parent=new["id"]):
                if entry.doc is not None and new["gateway_ip"] in entry.doc["ips"]:
                    raise Conflict.field("gateway_ip", "in use by a port of this network")
            # Held by another kind (a VIP, a probe source, a router's own address)?
            if new["gateway_ip"] in self.hooks.reserved_addresses(t, old) - {old["gateway_ip"]}:
                raise Conflict.field("gateway_ip", "reserved in this network (a load "
                                     "balancer VIP or probe source, or a router address)")
        network_rows = self.dhcp.rows(t, new["id"])
        for lsp in t.rows(LSP, "port", parent=new["id"]):
            rows = port_dhcp_rows(t, self.dhcp, new, stored_doc(lsp), network_rows)
            lsp.dhcpv4_options = [rows["v4"]] if "v4" in rows else []
            lsp.dhcpv6_options = [rows["v6"]] if "v6" in rows else []

    def network_deleting(self, t: Txn, event: NetworkEvent) -> None:
        assert event.old is not None
        ports = list(t.rows(LSP, "port", parent=event.old["id"]))
        if ports and not event.cascade:
            raise Conflict(f"network has {len(ports)} ports; delete them or use ?cascade=true")
        for lsp in ports:
            self.remove(t, lsp, stored_doc(lsp), cascade=True)

"""Networks: a logical switch with its DHCPv4 (and DHCPv6) options."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from gateway.errors import BadRequest, Conflict
from gateway.ovn import naming
from gateway.ovn.tables import DHCP, LS, LSP
from gateway.ovn.transaction import Txn
from gateway.services import dhcp, ipam
from gateway.services.lifecycle import NetworkEvent
from gateway.services.resources import TENANT_COLUMNS, Doc, Resource


def complete_gateway_ip(doc: Doc) -> ipaddress.IPv4Network:
    """An IPv4 cidr of /29 or larger and its gateway_ip (default: the first host), a host
    address of it: for tenant and external networks alike."""
    net = ipaddress.IPv4Network(doc["cidr"])
    if net.prefixlen > 29:
        raise BadRequest.field("cidr", "prefix too long: at most /29")
    if not doc.get("gateway_ip"):
        doc["gateway_ip"] = ipam.default_gateway(doc["cidr"])
    gw = ipaddress.IPv4Address(doc["gateway_ip"])
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        raise BadRequest.field("gateway_ip", f"must be a host address of {doc['cidr']}")
    return net


def complete_network(doc: Doc) -> Doc:
    """Defaults and cross-field checks shared by create and update."""
    complete_gateway_ip(doc)
    if doc.get("ipv6_cidr") and ipaddress.IPv6Network(doc["ipv6_cidr"]).prefixlen > 120:
        raise BadRequest.field("ipv6_cidr", "prefix too long: at most /120")
    check_dhcp_addresses(doc, doc.get("dhcp") or {})
    return doc


def check_dhcp_addresses(network: Doc, settings: Doc) -> None:
    """DHCP settings (the network's, or a port's overrides) against the network: servers of
    a family it serves, none on its network or broadcast address, next hops on it."""
    net = ipaddress.IPv4Network(network["cidr"])
    edges = {net.network_address, net.broadcast_address}
    for i, server in enumerate(settings.get("dns_servers") or []):
        address = ipaddress.ip_address(server)
        if address.version == 6 and not network.get("ipv6_cidr"):
            raise BadRequest.field(f"dhcp.dns_servers.{i}",
                                   "an IPv6 server on a network without ipv6_cidr: only "
                                   "DHCPv6 offers IPv6 servers")
        if address in edges:
            raise BadRequest.field(f"dhcp.dns_servers.{i}",
                                   f"the network or broadcast address of {network['cidr']}")
    for i, server in enumerate(settings.get("ntp_servers") or []):
        if ipaddress.IPv4Address(server) in edges:
            raise BadRequest.field(f"dhcp.ntp_servers.{i}",
                                   f"the network or broadcast address of {network['cidr']}")
    for i, route in enumerate(settings.get("routes") or []):
        nexthop = ipaddress.IPv4Address(route["nexthop"])
        if nexthop not in net:
            raise BadRequest.field(f"dhcp.routes.{i}.nexthop", f"not inside {network['cidr']}")
        if nexthop in edges:
            raise BadRequest.field(f"dhcp.routes.{i}.nexthop",
                                   f"must be a host address of {network['cidr']}")


def owned(row: Any) -> bool:
    """Whether a row carries the gateway's complete ownership stamp (kind, id and tenant):
    the gateway's own ports of every kind (port, gw-link, lb-router, localnet...)."""
    ids = row.external_ids or {}
    return bool(ids.get(naming.KIND) and ids.get(naming.ID) and ids.get(naming.TENANT))


def foreign_ports(ls: Any) -> list[Any]:
    """Ports another tool put on one of the gateway's switches (as of this transaction)."""
    return [lsp for lsp in ls.ports if not owned(lsp)]


_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def foreign_addresses(ls: Any) -> tuple[set[str], set[str]]:
    """The IPs and MACs the foreign ports of a switch hold, from their `addresses` entries
    ("MAC IP ...", also "MAC dynamic" and "dynamic IP"; the words "router", "unknown" and
    "dynamic" hold nothing the gateway could know)."""
    ips: set[str] = set()
    macs: set[str] = set()
    for lsp in foreign_ports(ls):
        for word in " ".join(lsp.addresses).lower().split():
            if _MAC.fullmatch(word):
                macs.add(word)
                continue
            try:
                ips.add(str(ipaddress.ip_interface(word).ip))
            except ValueError:
                continue  # router, unknown, dynamic
    return ips, macs


def server_mac(settings_prefix: str, network_id: str) -> str:
    return ipam.derived_mac(settings_prefix, "dhcp-server/" + network_id)


class DhcpRows:
    """The DHCP_Options rows of a network (parent = network id) or of a port with overrides."""

    def __init__(self, mac_prefix: str) -> None:
        self.mac_prefix = mac_prefix

    def rows(self, t: Txn, owner_id: str) -> dict[str, Any]:
        """The owner's rows as of this transaction (the index only knows committed ones)."""
        if (DHCP, owner_id) in t.inserted:
            return dict(t.inserted[(DHCP, owner_id)])
        found = {}
        for row in t.rows(DHCP, "dhcp", parent=owner_id):
            found["v6" if ":" in row.cidr else "v4"] = row
        return found

    def wanted(self, network: Doc, overrides: Doc) -> dict[str, tuple[str, dict[str, str]]]:
        settings = dhcp.merged(network, overrides)
        if not settings.get("enabled", True):
            return {}
        mac = server_mac(self.mac_prefix, network["id"])
        out = {"v4": (network["cidr"], dhcp.v4_options(network, settings, mac))}
        if network.get("ipv6_cidr") and (settings.get("ipv6") or {}).get("enabled", True):
            out["v6"] = (network["ipv6_cidr"], dhcp.v6_options(settings, mac))
        return out

    def sync(self, t: Txn, owner_id: str, tenant: str, network: Doc,
             overrides: Doc) -> dict[str, Any]:
        """Make the owner's rows match; returns {"v4": row?, "v6": row?}."""
        have = self.rows(t, owner_id)
        result = {}
        for family, (cidr, options) in self.wanted(network, overrides).items():
            row = have.pop(family, None)
            if row is None:
                row = t.insert(DHCP, cidr=cidr, options=options, external_ids=naming.owner_ids(
                    "dhcp", f"{owner_id}/{family}", tenant, parent=owner_id))
            elif dict(row.options) != options:
                row.options = options
            result[family] = row
        for row in have.values():
            row.delete()
        t.inserted[(DHCP, owner_id)] = result
        return result

    def drop(self, t: Txn, owner_id: str) -> None:
        for row in self.rows(t, owner_id).values():
            row.delete()
        t.inserted[(DHCP, owner_id)] = {}


class NetworkService(Resource):
    """Networks announce their changes (lifecycle.NetworkEvent); what follows a network
    (ports' DHCP, DNS records, policies, gateways) listens."""

    kind = "network"
    quota = "networks"
    table = LS
    monitors = {**TENANT_COLUMNS, LS: frozenset({"name", "ports", "external_ids"}),
                LSP: frozenset({"name", "addresses", "external_ids"}),
                DHCP: frozenset({"cidr", "options", "external_ids"})}

    @property
    def dhcp(self) -> DhcpRows:
        return DhcpRows(self.settings.mac_prefix)

    def write_new(self, t: Txn, doc: Doc, parent: Any, tenant_row: Any) -> Any:
        complete_network(doc)
        row = t.insert(LS, name=naming.switch_name(doc["id"]))
        self.dhcp.sync(t, doc["id"], doc["tenant_id"], doc, {})
        self.hooks.network_changed(t, NetworkEvent(doc["tenant_id"], row, None, doc))
        return row

    def lookup_keys(self, doc: Doc) -> dict[str, str]:
        return {"dns_domain": doc["dns_domain"]} if doc.get("dns_domain") else {}

    def complete(self, doc: Doc) -> None:
        complete_network(doc)

    def apply_update(self, t: Txn, row: Any, old: Doc, new: Doc) -> None:
        self.dhcp.sync(t, new["id"], new["tenant_id"], new, {})
        self.hooks.network_changed(t, NetworkEvent(new["tenant_id"], row, old, new))

    def repair(self, t: Txn, row: Any, doc: Doc) -> list[Any]:
        """Drift repair (services.drift): the switch's name and the DHCP rows, as written."""
        if row.name != naming.switch_name(doc["id"]):
            row.name = naming.switch_name(doc["id"])
        rows = self.dhcp.sync(t, doc["id"], doc["tenant_id"], doc, {})
        for family, (cidr, _) in self.dhcp.wanted(doc, {}).items():
            if rows[family].cidr != cidr:
                rows[family].cidr = cidr
        return []

    def remove(self, t: Txn, row: Any, doc: Doc, cascade: bool) -> None:
        row.verify("ports")  # a port another tool adds meanwhile re-runs this check
        foreign = sorted(str(lsp.name) for lsp in foreign_ports(row))
        if foreign:
            # Deleting the switch would delete them too, cascade or not.
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more"
                                              if len(foreign) > 5 else "")
            raise Conflict(f"the network's switch {row.name} has ports not made by "
                           f"ovn-nb-gateway ({shown}), which it never deletes; remove them "
                           "with the tool that added them first")
        self.hooks.network_deleting(t, NetworkEvent(doc["tenant_id"], row, doc, None, cascade))
        self.dhcp.drop(t, doc["id"])
        row.delete()

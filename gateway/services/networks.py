"""Networks: a logical switch with its DHCPv4 (and DHCPv6) options."""

from __future__ import annotations

import ipaddress
from typing import Any

from gateway.errors import BadRequest
from gateway.ovn import naming
from gateway.ovn.tables import DHCP, LS
from gateway.ovn.transaction import Txn
from gateway.services import dhcp, ipam
from gateway.services.lifecycle import NetworkEvent
from gateway.services.resources import TENANT_COLUMNS, Doc, Resource


def complete_network(doc: Doc) -> Doc:
    """Defaults and cross-field checks shared by create and update."""
    net = ipaddress.IPv4Network(doc["cidr"])
    if net.prefixlen > 29:
        raise BadRequest.field("cidr", "prefix too long: at most /29")
    if not doc.get("gateway_ip"):
        doc["gateway_ip"] = ipam.default_gateway(doc["cidr"])
    gw = ipaddress.IPv4Address(doc["gateway_ip"])
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        raise BadRequest.field("gateway_ip", f"must be a host address of {doc['cidr']}")
    for i, route in enumerate((doc.get("dhcp") or {}).get("routes") or []):
        if ipaddress.IPv4Address(route["nexthop"]) not in net:
            raise BadRequest.field(f"dhcp.routes.{i}.nexthop", f"not inside {doc['cidr']}")
    if doc.get("ipv6_cidr") and ipaddress.IPv6Network(doc["ipv6_cidr"]).prefixlen > 120:
        raise BadRequest.field("ipv6_cidr", "prefix too long: at most /120")
    return doc


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

    def remove(self, t: Txn, row: Any, doc: Doc, cascade: bool) -> None:
        self.hooks.network_deleting(t, NetworkEvent(doc["tenant_id"], row, doc, None, cascade))
        self.dhcp.drop(t, doc["id"])
        row.delete()

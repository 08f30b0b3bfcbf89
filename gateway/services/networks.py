"""Networks: a logical switch with its DHCPv4 (and DHCPv6) options."""

from __future__ import annotations

import ipaddress
from typing import Any

from gateway.errors import BadRequest, Conflict
from gateway.ovn import naming
from gateway.ovn.transaction import Txn
from gateway.services import dhcp, dns, ipam, policies
from gateway.services.resources import Doc, Resource, stored_doc

LS = "Logical_Switch"
LSP = "Logical_Switch_Port"
DHCP = "DHCP_Options"


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
        return result


class NetworkService(Resource):
    kind = "network"
    family = "networks"
    quota = "networks"
    table = LS

    @property
    def dhcp(self) -> DhcpRows:
        return DhcpRows(self.settings.mac_prefix)

    def write_new(self, t: Txn, doc: Doc, parent: Any, tenant_row: Any) -> Any:
        complete_network(doc)
        row = t.insert(LS, name=naming.switch_name(doc["id"]))
        self.dhcp.sync(t, doc["id"], doc["tenant_id"], doc, {})
        dns.link_new_network(t, row, doc["tenant_id"])
        return row

    def lookup_keys(self, doc: Doc) -> dict[str, str]:
        return {"dns_domain": doc["dns_domain"]} if doc.get("dns_domain") else {}

    def complete(self, doc: Doc) -> None:
        complete_network(doc)

    def apply_update(self, t: Txn, row: Any, old: Doc, new: Doc) -> None:
        if new["gateway_ip"] != old["gateway_ip"]:
            # The ports' addresses as the index keeps them, as address allocation reads them.
            for entry in t.entries(LSP, "port", parent=new["id"]):
                if entry.doc is not None and new["gateway_ip"] in entry.doc["ips"]:
                    raise Conflict.field("gateway_ip", "in use by a port of this network")
        rows = self.dhcp.sync(t, new["id"], new["tenant_id"], new, {})
        from gateway.services.ports import relink_ports  # ports depend on networks, not back
        relink_ports(t, self.dhcp, new, rows)
        if new.get("dns_domain") != old.get("dns_domain"):
            for port in t.rows(LSP, "port", parent=new["id"]):
                dns.sync_port_record(t, stored_doc(port), port.name, new, row, "dns_domain")

    def remove(self, t: Txn, row: Any, doc: Doc, cascade: bool) -> None:
        named_by = policies.policies_naming_network(t, doc["tenant_id"], doc["id"])
        if named_by:
            # Dropping the id would widen or silently change those policies.
            raise Conflict(f"network is named by policies {', '.join(sorted(named_by))}; "
                           "change them first")
        ports = list(t.rows(LSP, "port", parent=doc["id"]))
        if ports and not cascade:
            raise Conflict(f"network has {len(ports)} ports; delete them or use ?cascade=true")
        for port in ports:
            for dhcp_row in self.dhcp.rows(t, port.name).values():
                dhcp_row.delete()
            dns.sync_port_record(t, None, port.name, None, row)
            policies.on_port_change(t, doc["tenant_id"], port, stored_doc(port), None)
            row.delvalue("ports", port)
            port.delete()
        for dhcp_row in self.dhcp.rows(t, doc["id"]).values():
            dhcp_row.delete()
        dns.forget_network(t, doc["id"])
        row.delete()


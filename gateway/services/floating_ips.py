"""Floating IPs: an external address mapped 1:1 to a port by a distributed dnat_and_snat
NAT row on the gateway that serves the port's network. The document lives on an
Address_Set holding the address (a root row that exists while the address is held, also
unassigned)."""

from __future__ import annotations

import ipaddress
from typing import Any

from gateway.errors import Conflict, NotFound
from gateway.ovn import naming
from gateway.ovn.tables import AS, LR, LSP, NAT
from gateway.ovn.transaction import Txn
from gateway.services import external_networks as ext
from gateway.services import ipam
from gateway.services.gateways import KIND as GATEWAY
from gateway.services.gateways import gateways_of_network
from gateway.services.lifecycle import Listener, PortEvent, ResourceEvent
from gateway.services.resources import TENANT_COLUMNS, Doc, Resource, now, stored_doc

KIND = "floating-ip"
NAT_KIND = "fip-nat"


def _v4(ips: list[str]) -> str | None:
    return next((ip for ip in ips if ipaddress.ip_address(ip).version == 4), None)


class FloatingIpService(Resource, Listener):
    """Floating IPs follow their ports (address changes, deletes) and their gateways, and
    hold addresses of external networks."""

    kind = KIND
    quota = "floating_ips"
    table = AS
    lock_tenant_on_write = True  # one floating IP per port, decided across writes
    monitors = {**TENANT_COLUMNS, AS: frozenset({"name", "addresses", "external_ids"}),
                NAT: frozenset({"type", "external_ip", "logical_ip", "logical_port",
                                "external_mac", "external_ids"}),
                LR: frozenset({"nat", "external_ids"}),
                LSP: frozenset({"name", "external_ids"})}

    def lookup_keys(self, doc: Doc) -> dict[str, str]:
        keys = {"ext": str(doc["external_network_id"]),
                "held": ext.held_key(str(doc["external_network_id"]), doc["ip"])}
        if doc.get("port_id"):
            keys["port"] = str(doc["port_id"])
        if doc.get("gateway_id"):
            keys["gateway"] = str(doc["gateway_id"])
        return keys

    def write_new(self, t: Txn, doc: Doc, parent: Any, tenant_row: Any) -> Any:
        ls, network = ext.locate(t, str(doc["external_network_id"]), "external_network_id")
        doc["ip"] = ext.allocate(t, self.hooks, ls, network, doc.get("ip"), "ip")
        row = t.insert(AS, name="ovngw_fip_" + doc["id"].replace("-", "_"),
                       addresses=[doc["ip"]])
        self.associate(t, doc)
        return row

    def apply_update(self, t: Txn, row: Any, old: Doc, new: Doc) -> None:
        self.associate(t, new)

    def remove(self, t: Txn, row: Any, doc: Doc, cascade: bool) -> None:
        self.associate(t, {**doc, "port_id": None})
        row.delete()

    def repair(self, t: Txn, row: Any, doc: Doc) -> list[Any]:
        """Drift repair (services.drift): the address set and the NAT row, changed in place
        where it is still on the right router. A port deleted behind the gateway's back
        leaves the floating IP unassociated, as deleting it through the API does."""
        name = "ovngw_fip_" + doc["id"].replace("-", "_")
        if row.name != name:
            row.name = name
        if list(row.addresses) != [doc["ip"]]:
            row.addresses = [doc["ip"]]
        port_id = doc.get("port_id")
        if port_id and t.get(LSP, "port", str(port_id)) is None:
            self._rewrite(t, row, {"port_id": None})
            return [(NAT, doc["id"], "logical_port", str(port_id))]
        if port_id:
            gateway_row, wanted = self._wanted(t, doc)
            nat = t.get(NAT, NAT_KIND, doc["id"])
            if nat is not None and nat.external_ids.get(naming.PARENT) == \
                    gateway_row.external_ids[naming.ID]:
                for column, value in wanted.items():
                    if getattr(nat, column) != value:
                        setattr(nat, column, value)
                return []
        self.associate(t, doc)
        return []

    def read_only_fields(self) -> tuple[str, ...]:
        return ("gateway_id",)

    def complete(self, doc: Doc) -> None:
        doc.setdefault("port_id", None)
        doc.setdefault("gateway_id", None)

    # -- the NAT row ------------------------------------------------------------------------
    def associate(self, t: Txn, doc: Doc) -> None:
        """Make the NAT row match doc["port_id"], filling doc["gateway_id"]."""
        wanted: dict[str, Any] | None = None
        gateway_row = None
        doc.setdefault("port_id", None)
        if doc.get("port_id"):
            gateway_row, wanted = self._wanted(t, doc)
        doc["gateway_id"] = gateway_row.external_ids[naming.ID] if gateway_row else None
        nat = t.get(NAT, NAT_KIND, doc["id"])
        if nat is not None:
            owner = t.get(LR, GATEWAY, nat.external_ids.get(naming.PARENT, ""))
            same = owner is not None and gateway_row is not None and owner.uuid == \
                gateway_row.uuid and all(getattr(nat, k) == v for k, v in (wanted or {}).items())
            if same:
                return
            if owner is not None:
                owner.delvalue("nat", nat)
            nat.delete()
        if wanted is not None and gateway_row is not None:
            nat = t.insert(NAT, **wanted, external_ids=naming.owner_ids(
                NAT_KIND, doc["id"], doc["tenant_id"], parent=doc["gateway_id"]))
            gateway_row.addvalue("nat", nat)

    def _wanted(self, t: Txn, doc: Doc) -> tuple[Any, dict[str, Any]]:
        port_id = str(doc["port_id"])
        lsp = t.get(LSP, "port", port_id)
        if lsp is None or lsp.external_ids.get(naming.TENANT) != doc["tenant_id"]:
            raise NotFound.field("port_id", "port")
        for other in t.rows_by_key(AS, KIND, "port", port_id):
            if other.external_ids.get(naming.ID) != doc["id"]:
                raise Conflict.field("port_id", "the port already has floating IP "
                                     f"{stored_doc(other)['ip']}")
        port = stored_doc(lsp)
        logical_ip = _v4(port["ips"])
        if logical_ip is None:
            raise Conflict.field("port_id", "the port has no IPv4 address")
        gateways = gateways_of_network(t, port["network_id"])
        external = (stored_doc(gateways[0]).get("external") or {}) if gateways else {}
        if not external:
            raise Conflict.field("port_id", "the port's network is not attached to a gateway "
                                 "with an external network")
        if str(external["network_id"]) != str(doc["external_network_id"]):
            raise Conflict.field("port_id", "the port's gateway is on another external "
                                 "network")
        return gateways[0], {
            "type": "dnat_and_snat", "external_ip": doc["ip"], "logical_ip": logical_ip,
            # Distributed: the port's own chassis answers for the address.
            "logical_port": [port_id],
            "external_mac": [ipam.derived_mac(self.settings.mac_prefix, "fip/" + doc["id"])]}

    def _rewrite(self, t: Txn, row: Any, changes: Doc) -> None:
        old = stored_doc(row)
        new = {**old, **changes}
        self.associate(t, new)
        if new != old:
            new.update(revision=old["revision"] + 1, updated_at=now())
            self.write_ownership(row, new)

    # -- what floating IPs do when ports and gateways change ------------------------------
    def port_changed(self, t: Txn, event: PortEvent) -> None:
        for row in list(t.rows_by_key(AS, KIND, "port", event.port_id)):
            if event.new is None:
                self._rewrite(t, row, {"port_id": None})
            elif _v4(event.new["ips"]) != _v4((event.old or {}).get("ips") or []):
                self._rewrite(t, row, {})

    def resource_changing(self, t: Txn, event: ResourceEvent) -> None:
        if event.kind == ext.KIND and event.old is not None and event.new is None:
            held = sorted(stored_doc(r)["ip"] for r in
                          t.rows_by_key(AS, KIND, "ext", event.old["id"]))
            if held:
                raise Conflict("external network holds floating IPs "
                               f"{', '.join(held)}; release them first")
            return
        if event.kind != GATEWAY or event.old is None:
            return
        for row in list(t.rows_by_key(AS, KIND, "gateway", event.old["id"])):
            doc = stored_doc(row)
            if doc.get("gateway_id") != event.old["id"] or not doc.get("port_id"):
                continue  # already moved or released in this transaction
            if event.new is None:
                raise Conflict(f"gateway serves floating IP {doc['ip']}; release or "
                               "disassociate it first")
            try:
                self._rewrite(t, row, {})
            except Conflict:
                raise Conflict(f"the change leaves floating IP {doc['ip']} without a "
                               "gateway; release or disassociate it first") from None

    def address_taken(self, t: Txn, network: Doc, ip: str) -> bool:
        return bool(t.indexes[AS].ids_by_key(KIND, "held", ext.held_key(network["id"], ip)))

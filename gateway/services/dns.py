"""DNS records served by OVN's own responder: a DNS row per record, referenced from the
logical switches of the networks that should resolve it.

User records name their networks or (without `networks`) cover every network of the tenant,
now and later. Ports with a `hostname` on a network with a `dns_domain` get an automatic
record (A/AAAA and PTR) that follows the port in the same transaction.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from gateway.errors import BadRequest, Conflict, NotFound
from gateway.ovn import naming
from gateway.ovn.index import OwnedIndex
from gateway.ovn.tables import DNS, LS, LSP
from gateway.ovn.transaction import Txn
from gateway.services import tenants
from gateway.services.lifecycle import Listener, NetworkEvent, PortEvent
from gateway.services.resources import TENANT_COLUMNS, Doc, Resource, now, own, stored_doc

KIND = "dns-record"
MAX_NAME = 253  # characters of a domain name in text form (RFC 1035, without the root dot)
AUTO_NAMESPACE = uuid.UUID("4d1f3c52-4b8e-4a57-9a3e-6f1d8c2b7e10")


def ovn_records(fqdn: str, ips: list[str], with_ptr: bool) -> dict[str, str]:
    records = {fqdn: " ".join(ips)}
    if with_ptr:
        for ip in ips:
            records[ipaddress.ip_address(ip).reverse_pointer] = fqdn
    return records


def check_fqdn(t: Txn, tenant: str, fqdn: str, own_id: str | None, field: str) -> None:
    """One record per name in a tenant. Names of other tenants do not matter: a record only
    ever answers on its own tenant's networks, and looking would reveal their zones."""
    for row in t.rows_by_key(DNS, KIND, "fqdn", fqdn, tenant):
        if row.external_ids.get(naming.ID) != own_id:
            raise Conflict.field(field, f"{fqdn} already has a record")


def switches_for(t: Txn, tenant: str, doc: Doc) -> dict[str, Any]:
    if doc.get("networks") is None:
        return {r.external_ids[naming.ID]: r for r in t.rows(LS, "network", tenant=tenant)}
    found = {}
    for i, network_id in enumerate(doc["networks"]):
        row = t.get(LS, "network", str(network_id))
        if row is None or row.external_ids.get(naming.TENANT) != tenant:
            raise NotFound.field(f"networks.{i}", "network")
        found[str(network_id)] = row
    return found


def relink(t: Txn, record: Any, before: dict[str, Any], after: dict[str, Any]) -> None:
    for network_id, ls in before.items():
        if network_id not in after:
            ls.delvalue("dns_records", record)
    for network_id, ls in after.items():
        if network_id not in before:
            ls.addvalue("dns_records", record)


def record_keys(doc: Doc) -> dict[str, str]:
    keys = {"fqdn": doc["fqdn"], "origin": "user"}
    if doc.get("networks") is None:
        keys["scope"] = "all"
    for network_id in doc.get("networks") or []:
        keys["net." + str(network_id)] = "1"
    return keys


def forget_network(t: Txn, tenant: str, network_id: str) -> None:
    """Records that named a deleted network stop naming it (OVN drops the weak reference)."""
    for row in list(t.rows_by_key(DNS, KIND, "net." + network_id, "1")):
        tenants.lock(t, tenant)  # record documents are the tenant's shared rows
        doc = stored_doc(row)
        if doc.get("auto"):
            continue
        doc["networks"] = [n for n in doc["networks"] if str(n) != network_id]
        doc["revision"] += 1
        doc["updated_at"] = now()
        own(row, KIND, doc, None, keys=record_keys(doc))


def link_new_network(t: Txn, ls: Any, tenant: str) -> None:
    """A new network resolves the tenant's records that cover every network."""
    for record in t.rows_by_key(DNS, KIND, "scope", "all", tenant):
        ls.addvalue("dns_records", record)


def _auto_record_wanted(port: Doc | None, network: Doc | None) -> bool:
    return bool(port and network and port.get("hostname") and network.get("dns_domain"))


def sync_port_record(t: Txn, port: Doc | None, port_id: str, network: Doc | None,
                     ls: Any, field: str = "hostname") -> None:
    """Create, update or delete the automatic record of one port; `field` is the request
    field a name conflict is reported on."""
    record_id = str(uuid.uuid5(AUTO_NAMESPACE, port_id))
    row = t.get(DNS, KIND, record_id)
    if not _auto_record_wanted(port, network):
        if row is not None:
            ls.delvalue("dns_records", row)  # explicit: see ports.PortService.remove
            row.delete()
        return
    assert port is not None and network is not None
    fqdn = f"{port['hostname']}.{network['dns_domain']}"
    if len(fqdn) > MAX_NAME:
        raise BadRequest.field(field, f"the automatic DNS name <hostname>.<dns_domain> would "
                                      f"be {len(fqdn)} characters long; at most {MAX_NAME}")
    check_fqdn(t, port["tenant_id"], fqdn, record_id, field)
    old = stored_doc(row) if row is not None else None
    stamp = now()
    doc = {"id": record_id, "name": "auto-" + port_id, "tenant_id": port["tenant_id"],
           "fqdn": fqdn, "ips": list(port["ips"]), "networks": [network["id"]], "auto": True,
           "port_id": port_id, "labels": {},
           "description": f"automatic record of port {port['name']}",
           "created_at": old["created_at"] if old else stamp}
    if old is not None and all(old.get(k) == v for k, v in doc.items()):
        return
    doc["updated_at"] = stamp
    doc["revision"] = old["revision"] + 1 if old else 1
    records = ovn_records(fqdn, doc["ips"], with_ptr=True)
    if row is None:
        row = t.insert(DNS, records=records)
        ls.addvalue("dns_records", row)
    else:
        row.records = records
    own(row, KIND, doc, port_id, keys={"fqdn": fqdn, "origin": "auto"})


class DnsRecordService(Resource, Listener):
    """User records, and the automatic records that follow ports and networks."""

    kind = KIND
    quota = "dns_records"
    table = DNS
    monitors = {**TENANT_COLUMNS, DNS: frozenset({"records", "external_ids"}),
                LS: frozenset({"dns_records", "external_ids"}),
                LSP: frozenset({"external_ids"})}

    # -- what DNS does when ports and networks change ------------------------------------
    def port_changed(self, t: Txn, event: PortEvent) -> None:
        if not (_auto_record_wanted(event.old, event.network)
                or _auto_record_wanted(event.new, event.network)):
            return
        tenants.lock(t, event.tenant)  # fqdns are unique per tenant
        sync_port_record(t, event.new, event.port_id, event.network, event.ls)

    def network_changed(self, t: Txn, event: NetworkEvent) -> None:
        old, new = event.old, event.new
        assert new is not None
        if old is None:
            link_new_network(t, event.ls, event.tenant)
            return
        if new.get("dns_domain") == old.get("dns_domain"):
            return
        tenants.lock(t, event.tenant)
        for port in t.rows(LSP, "port", parent=new["id"]):
            sync_port_record(t, stored_doc(port), port.name, new, event.ls, "dns_domain")

    def network_deleting(self, t: Txn, event: NetworkEvent) -> None:
        assert event.old is not None
        forget_network(t, event.tenant, event.old["id"])

    def write_new(self, t: Txn, doc: Doc, parent: Any, tenant_row: Any) -> Any:
        if doc["name"].startswith("auto-"):
            raise BadRequest.field("name", "names starting with auto- are reserved")
        check_fqdn(t, doc["tenant_id"], doc["fqdn"], None, "fqdn")
        doc["auto"] = False
        switches = switches_for(t, doc["tenant_id"], doc)
        row = t.insert(DNS, records=ovn_records(doc["fqdn"], doc["ips"], with_ptr=False))
        relink(t, row, {}, switches)
        return row

    def before_change(self, doc: Doc) -> None:
        self._refuse_auto(doc)

    def apply_update(self, t: Txn, row: Any, old: Doc, new: Doc) -> None:
        if new["name"].startswith("auto-"):
            raise BadRequest.field("name", "names starting with auto- are reserved")
        check_fqdn(t, new["tenant_id"], new["fqdn"], new["id"], "fqdn")
        new["auto"] = False
        row.records = ovn_records(new["fqdn"], new["ips"], with_ptr=False)
        relink(t, row, switches_for(t, old["tenant_id"], old),
               switches_for(t, new["tenant_id"], new))

    def remove(self, t: Txn, row: Any, doc: Doc, cascade: bool) -> None:
        # Explicitly off every switch (see ports.PortService.remove); a network deleted
        # meanwhile has no reference left to drop.
        linked = {i: ls for i in doc.get("networks") or []
                  if (ls := t.get(LS, "network", str(i))) is not None}
        relink(t, row, switches_for(t, doc["tenant_id"], doc) if doc.get("networks") is None
               else linked, {})
        row.delete()

    def repair(self, t: Txn, row: Any, doc: Doc) -> list[Any]:
        """Drift repair (services.drift): the records and the switches that resolve them;
        an automatic record whose port is gone goes, as it would with the port."""
        switches = list(t.rows(LS, "network", tenant=doc["tenant_id"]))
        if doc.get("auto") and t.get(LSP, "port", str(doc.get("port_id"))) is None:
            for ls in switches:
                if row in ls.dns_records:
                    ls.delvalue("dns_records", row)
            row.delete()
            return []
        records = ovn_records(doc["fqdn"], doc["ips"], with_ptr=bool(doc.get("auto")))
        if dict(row.records) != records:
            row.records = records
        named = None if doc.get("networks") is None else {str(n) for n in doc["networks"]}
        for ls in switches:
            wanted = named is None or ls.external_ids.get(naming.ID) in named
            if wanted and row not in ls.dns_records:
                ls.addvalue("dns_records", row)
            elif not wanted and row in ls.dns_records:
                ls.delvalue("dns_records", row)
        return []

    def lookup_keys(self, doc: Doc) -> dict[str, str]:
        return record_keys(doc)

    def used(self, index: OwnedIndex, tenant: str) -> int:
        return index.count_by_key(KIND, "origin", "user", tenant)  # automatic ones are free

    def read_only_fields(self) -> tuple[str, ...]:
        return ("auto", "port_id")

    @staticmethod
    def _refuse_auto(doc: Doc) -> None:
        if doc.get("auto"):
            raise Conflict("automatic record: change the port's hostname or the network's "
                           "dns_domain instead")

"""Network policies: a port group per policy holding the selected ports, address sets for
label-selected peers, and the compiled ACLs on the port group. Membership follows the ports:
every port write calls on_port_change() inside its own transaction."""

from __future__ import annotations

import ipaddress
from typing import Any

from gateway.errors import NotFound
from gateway.ovn import naming
from gateway.ovn.transaction import Txn
from gateway.services import policy_compiler as pc
from gateway.services.resources import Doc, Resource, stored_doc

PG = "Port_Group"
AS = "Address_Set"
ACL = "ACL"
METER = "Meter"
LS = "Logical_Switch"
LSP = "Logical_Switch_Port"
KIND = "policy"
PEERS = "policy-peers"
LOG_RATE = 100  # log lines per second per tenant; more are dropped by the meter


def _family_ips(port: Doc, family: int) -> set[str]:
    return {ip for ip in port.get("ips") or [] if ipaddress.ip_address(ip).version == family}


def _meter(t: Txn, tenant: str) -> str:
    name = "ovngw_log_" + tenant.replace("-", "_")
    if t.get(METER, "meter", tenant) is None and (METER, tenant) not in t.inserted:
        band = t.insert("Meter_Band", action="drop", rate=LOG_RATE, burst_size=LOG_RATE)
        t.inserted[(METER, tenant)] = t.insert(
            METER, name=name, unit="pktps", bands=[band],
            external_ids=naming.owner_ids("meter", tenant, tenant))
    return name


def _network_cidrs(t: Txn, policy: Doc) -> dict[str, list[str]]:
    cidrs: dict[str, list[str]] = {}
    for direction in ("ingress", "egress"):
        for i, rule in enumerate(policy.get(direction) or []):
            for j, peer in enumerate(rule.get("peers") or []):
                if "network" not in peer:
                    continue
                row = t.get(LS, "network", str(peer["network"]))
                if row is None or row.external_ids.get(naming.TENANT) != policy["tenant_id"]:
                    raise NotFound.field(f"{direction}.{i}.peers.{j}.network", "network")
                net = stored_doc(row)
                cidrs[str(peer["network"])] = [c for c in (net["cidr"], net.get("ipv6_cidr"))
                                               if c]
    for i, network_id in enumerate(policy.get("networks") or []):
        row = t.get(LS, "network", str(network_id))
        if row is None or row.external_ids.get(naming.TENANT) != policy["tenant_id"]:
            raise NotFound.field(f"networks.{i}", "network")
    return cidrs


def tenant_ports(t: Txn, tenant: str) -> list[tuple[Any, Doc]]:
    return [(lsp, stored_doc(lsp)) for lsp in t.rows(LSP, "port", tenant=tenant)]


def materialize(t: Txn, pg: Any, policy: Doc) -> None:
    """(Re)write the port group's members, the peer address sets and the ACLs."""
    cidrs = _network_cidrs(t, policy)
    ports = tenant_ports(t, policy["tenant_id"])
    pg.ports = [lsp for lsp, doc in ports if pc.selects(policy, doc)]
    wanted: dict[str, tuple[str, list[str]]] = {}
    for rule, j, selector in pc.selector_peers(policy):
        for family in (4, 6):
            ips = sorted({ip for _, doc in ports if pc.peer_selects(selector, doc)
                          for ip in _family_ips(doc, family)})
            wanted[f"{policy['id']}/{rule}/{j}/{family}"] = (
                pc.address_set_name(policy["id"], rule, j, family), ips)
    for row in list(t.rows(AS, PEERS, parent=policy["id"])):
        key = row.external_ids[naming.ID]
        if key not in wanted:
            row.delete()
        else:
            _, ips = wanted.pop(key)
            if sorted(row.addresses) != ips:
                row.addresses = ips
    for key, (name, ips) in wanted.items():
        t.insert(AS, name=name, addresses=ips, external_ids=naming.owner_ids(
            PEERS, key, policy["tenant_id"], parent=policy["id"]))
    pg.acls = [_acl_row(t, policy, spec) for spec in pc.compile_policy(policy, cidrs)]


def _acl_row(t: Txn, policy: Doc, spec: pc.AclSpec) -> Any:
    row = t.insert(ACL, direction=spec.direction, priority=spec.priority, match=spec.match,
                   action=spec.action,
                   name=[f"{policy['tenant_id']}/{policy['name']}"[:63]],
                   log=spec.log, external_ids=naming.owner_ids(
                       "acl", f"{policy['id']}/{spec.rule}", policy["tenant_id"],
                       parent=policy["id"], rule=spec.rule))
    if spec.log:
        row.severity = [spec.severity]
        row.meter = [_meter(t, policy["tenant_id"])]
    return row


def on_port_change(t: Txn, tenant: str, lsp: Any, old: Doc | None, new: Doc | None) -> None:
    """Keep every policy of the tenant right after one port was created, changed or deleted."""
    for pg in t.rows(PG, KIND, tenant=tenant):
        policy = stored_doc(pg)
        was = old is not None and pc.selects(policy, old)
        now = new is not None and pc.selects(policy, new)
        if now and not was:
            pg.addvalue("ports", lsp)
        elif was and not now and new is not None:
            pg.delvalue("ports", lsp)  # a deleted port leaves by itself (weak reference)
        for rule, j, selector in pc.selector_peers(policy):
            for family in (4, 6):
                before = _family_ips(old, family) if old and pc.peer_selects(selector, old) \
                    else set()
                after = _family_ips(new, family) if new and pc.peer_selects(selector, new) \
                    else set()
                if before == after:
                    continue
                row = t.get(AS, PEERS, f"{policy['id']}/{rule}/{j}/{family}")
                if row is None:
                    continue
                for ip in after - before:
                    row.addvalue("addresses", ip)
                if before - after:
                    _recompute(t, row, tenant, selector, family, lsp.name, after)


def _recompute(t: Txn, row: Any, tenant: str, selector: dict[str, str], family: int,
               changed_port: str, changed_ips: set[str]) -> None:
    """Addresses can repeat across a tenant's networks: rebuild rather than remove blindly."""
    ips: set[str] = set(changed_ips)
    for lsp, doc in tenant_ports(t, tenant):
        if lsp.name == changed_port:
            continue
        if pc.peer_selects(selector, doc):
            ips |= _family_ips(doc, family)
    row.addresses = sorted(ips)


def policies_naming_network(t: Txn, tenant: str, network_id: str) -> list[str]:
    names = []
    for pg in t.rows(PG, KIND, tenant=tenant):
        policy = stored_doc(pg)
        named = {str(n) for n in policy.get("networks") or []}
        for direction in ("ingress", "egress"):
            for rule in policy.get(direction) or []:
                named |= {str(p["network"]) for p in rule.get("peers") or [] if "network" in p}
        if network_id in named:
            names.append(policy["name"])
    return names


class PolicyService(Resource):
    kind = KIND
    family = "policies"
    quota = "policies"
    table = PG

    def write_new(self, t: Txn, doc: Doc, parent: Any, tenant_row: Any) -> Any:
        pg = t.insert(PG, name=pc.group_name(doc["id"]))
        materialize(t, pg, doc)
        return pg

    def apply_update(self, t: Txn, row: Any, old: Doc, new: Doc) -> None:
        materialize(t, row, new)

    def remove(self, t: Txn, row: Any, doc: Doc, cascade: bool) -> None:
        for address_set in list(t.rows(AS, PEERS, parent=doc["id"])):
            address_set.delete()
        row.delete()  # its ACLs are not root rows and go with it

    def derive(self, row: Any, doc: Doc) -> Doc:
        return {**doc, "status": {"selected_ports": len(row.ports)}}

    def compiled(self, principal: Any, policy_id: str) -> Doc:
        """What the policy became in OVN, read back from the rows."""
        self.get(principal, policy_id)  # tenant scope
        entry = self.nb.index(PG).by_id(KIND, policy_id)
        pg = self.nb.row(PG, entry.row_uuid) if entry else None
        if pg is None:
            raise NotFound(f"policy {policy_id} not found")
        sets = {}
        for set_id in self.nb.index(AS).ids(PEERS, parent=policy_id):
            set_entry = self.nb.index(AS).by_id(PEERS, set_id)
            row = self.nb.row(AS, set_entry.row_uuid) if set_entry else None
            if row is not None:
                sets[row.name] = sorted(row.addresses)
        acls = [{"direction": a.direction, "priority": a.priority, "match": a.match,
                 "action": a.action, "name": (list(a.name) or [None])[0], "log": a.log,
                 "severity": (list(a.severity) or [None])[0],
                 "rule": a.external_ids.get(naming.PREFIX + "rule", "")} for a in pg.acls]
        acls.sort(key=lambda a: (a["direction"], -a["priority"], a["rule"]))
        return {"port_group": pg.name, "address_sets": sets, "acls": acls}

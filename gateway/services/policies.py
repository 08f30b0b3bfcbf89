"""Network policies: a port group per policy holding the selected ports, address sets for
label-selected peers, and the compiled ACLs on the port group. Membership follows the ports:
every port write calls on_port_change() inside its own transaction."""

from __future__ import annotations

import zlib
from typing import Any

from gateway.errors import Conflict, NotFound
from gateway.ovn import naming
from gateway.ovn.index import Entry
from gateway.ovn.tables import ACL, AS, LS, LSP, METER, METER_BAND, PG
from gateway.ovn.transaction import Txn
from gateway.services import policy_compiler as pc
from gateway.services import tenants
from gateway.services.lifecycle import Listener, NetworkEvent, PortEvent
from gateway.services.resources import TENANT_COLUMNS, Doc, Resource, stored_doc

KIND = "policy"
PEERS = "policy-peers"
LOG_RATE = 100  # log lines per second per tenant; more are dropped by the meter


def _family_ips(port: Doc, family: int) -> set[str]:
    # Addresses are stored normalised, so a colon tells the family.
    return {ip for ip in port.get("ips") or [] if (":" in ip) == (family == 6)}


def _meter(t: Txn, tenant: str) -> str:
    name = "ovngw_log_" + tenant.replace("-", "_")
    if t.get(METER, "meter", tenant) is None and (METER, tenant) not in t.inserted:
        band = t.insert(METER_BAND, action="drop", rate=LOG_RATE, burst_size=LOG_RATE)
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


def tenant_ports(t: Txn, tenant: str) -> list[tuple[Entry, Doc]]:
    """The tenant's ports with the fields policies read, from the index (no row parsing)."""
    return [(entry, entry.doc) for entry in t.entries(LSP, "port", tenant=tenant)
            if entry.doc is not None]


def materialize(t: Txn, pg: Any, policy: Doc, previous: Doc | None = None) -> None:
    """(Re)write the port group's members, the peer address sets and the ACLs."""
    cidrs = _network_cidrs(t, policy)
    ports = tenant_ports(t, policy["tenant_id"])
    pg.ports = [row for row in (t.row_of(LSP, entry) for entry, doc in ports
                                if pc.selects(policy, doc)) if row is not None]
    write_peer_sets(t, policy, ports)
    if previous is not None:
        drop_unused_peer_sets(t, previous, policy)
    pg.acls = [_acl_row(t, policy, spec) for spec in pc.compile_policy(policy, cidrs)]


def write_peer_sets(t: Txn, policy: Doc, ports: list[tuple[Entry, Doc]]) -> None:
    """The shared address sets of the policy's peer selectors, one per address family."""
    for key, selector in pc.peer_selectors(policy).items():
        for family in (4, 6):
            ips = sorted({ip for _, doc in ports if pc.peer_selects(selector, doc)
                          for ip in _family_ips(doc, family)})
            row = t.get(AS, PEERS, f"{key}/{family}")
            if row is None:
                t.insert(AS, name=pc.address_set_name(policy["tenant_id"], selector, family),
                         addresses=ips, external_ids=naming.owner_ids(
                             PEERS, f"{key}/{family}", policy["tenant_id"], parent=key))
            elif sorted(row.addresses) != ips:
                row.addresses = ips


def drop_unused_peer_sets(t: Txn, old: Doc, new: Doc | None) -> None:
    """Delete the shared peer sets that no policy of the tenant uses any more."""
    gone = set(pc.peer_selectors(old)) - set(pc.peer_selectors(new) if new else ())
    if not gone:
        return
    for entry in t.entries(PG, KIND, tenant=old["tenant_id"]):
        if entry.id != old["id"] and entry.doc is not None:
            gone -= set(pc.peer_selectors(entry.doc))
    for key in gone:
        for family in (4, 6):
            row = t.get(AS, PEERS, f"{key}/{family}")
            if row is not None:
                row.delete()


def acl_label(policy_id: str, rule: str) -> int:
    """A stable non-zero 32-bit label per policy rule: OVN puts it in the conntrack entries
    of the connections the ACL allowed, so they can be traced back to the rule."""
    return zlib.crc32(f"{policy_id}/{rule}".encode()) or 1


def _acl_row(t: Txn, policy: Doc, spec: pc.AclSpec) -> Any:
    row = t.insert(ACL, direction=spec.direction, priority=spec.priority, match=spec.match,
                   action=spec.action, label=acl_label(policy["id"], spec.rule),
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
    selectors: dict[str, dict[str, str]] = {}
    for entry in t.entries(PG, KIND, tenant=tenant):
        policy = entry.doc
        if policy is None:
            continue
        was = old is not None and pc.selects(policy, old)
        now = new is not None and pc.selects(policy, new)
        if now and not was:
            t.row_of(PG, entry).addvalue("ports", lsp)
        elif was and not now:
            # Also for a deleted port: ovsdb-server 3.1 can leave a weak reference to a
            # row deleted in a transaction that modifies the referring row.
            t.row_of(PG, entry).delvalue("ports", lsp)
        selectors.update(pc.peer_selectors(policy))
    for key, selector in selectors.items():
        for family in (4, 6):
            before = _family_ips(old, family) if old and pc.peer_selects(selector, old) \
                else set()
            after = _family_ips(new, family) if new and pc.peer_selects(selector, new) \
                else set()
            if before == after:
                continue
            row = t.get(AS, PEERS, f"{key}/{family}")
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
    for entry, doc in tenant_ports(t, tenant):
        if entry.id == changed_port:
            continue
        if pc.peer_selects(selector, doc):
            ips |= _family_ips(doc, family)
    row.addresses = sorted(ips)


def policies_naming_network(t: Txn, tenant: str, network_id: str) -> list[str]:
    names = []
    for entry in t.entries(PG, KIND, tenant=tenant):
        policy = entry.doc or {}
        named = {str(n) for n in policy.get("networks") or []}
        for direction in ("ingress", "egress"):
            for rule in policy.get(direction) or []:
                named |= {str(p["network"]) for p in rule.get("peers") or [] if "network" in p}
        if network_id in named:
            names.append(str(policy.get("name")))
    return names


class PolicyService(Resource, Listener):
    """Policies, whose membership and peer sets follow the tenant's ports."""

    kind = KIND
    quota = "policies"
    table = PG
    monitors = {
        **TENANT_COLUMNS,
        PG: frozenset({"name", "ports", "acls", "external_ids"}),
        AS: frozenset({"name", "addresses", "external_ids"}),
        ACL: frozenset({"direction", "priority", "match", "action", "name", "log", "severity",
                        "meter", "label", "external_ids"}),
        METER: frozenset({"name", "unit", "bands", "external_ids"}),
        METER_BAND: frozenset({"action", "rate", "burst_size"}),
        LS: frozenset({"external_ids"}),
        LSP: frozenset({"name", "external_ids"}),
    }
    index_fields = None  # policies are few and read on every port write
    lock_tenant_on_write = True  # peer address sets are shared by the tenant's policies

    def port_changed(self, t: Txn, event: PortEvent) -> None:
        # Always, even with no policy in the replica: a policy created concurrently
        # elsewhere must not compute its membership from this port's old labels.
        tenants.lock(t, event.tenant)
        on_port_change(t, event.tenant, event.lsp, event.old, event.new)

    def network_deleting(self, t: Txn, event: NetworkEvent) -> None:
        assert event.old is not None
        named_by = policies_naming_network(t, event.tenant, event.old["id"])
        if named_by:
            # Dropping the id would widen or silently change those policies.
            raise Conflict(f"network is named by policies {', '.join(sorted(named_by))}; "
                           "change them first")

    def write_new(self, t: Txn, doc: Doc, parent: Any, tenant_row: Any) -> Any:
        pg = t.insert(PG, name=pc.group_name(doc["id"]))
        materialize(t, pg, doc)
        return pg

    def apply_update(self, t: Txn, row: Any, old: Doc, new: Doc) -> None:
        materialize(t, row, new, previous=old)

    def repair(self, t: Txn, row: Any, doc: Doc) -> list[Any]:
        """Drift repair (services.drift): what materialize() writes, changing only what
        differs: members and ACLs by mutation (rows of other tools in the group stay),
        each ACL matched to its rule."""
        if row.name != pc.group_name(doc["id"]):
            row.name = pc.group_name(doc["id"])
        cidrs = _network_cidrs(t, doc)
        ports = tenant_ports(t, doc["tenant_id"])
        wanted = {lsp.uuid: lsp for lsp in (t.row_of(LSP, entry) for entry, port in ports
                                           if pc.selects(doc, port)) if lsp is not None}
        have = {lsp.uuid: lsp for lsp in row.ports}
        for key, lsp in wanted.items():
            if key not in have:
                row.addvalue("ports", lsp)
        for key, lsp in have.items():
            if key not in wanted:
                row.delvalue("ports", lsp)
        write_peer_sets(t, doc, ports)
        acls = {acl.external_ids.get(naming.PREFIX + "rule"): acl for acl in row.acls}
        for spec in pc.compile_policy(doc, cidrs):
            acl = acls.pop(spec.rule, None)
            if acl is None:
                row.addvalue("acls", _acl_row(t, doc, spec))
                continue
            columns = {"direction": spec.direction, "priority": spec.priority,
                       "match": spec.match, "action": spec.action,
                       "label": acl_label(doc["id"], spec.rule),
                       "name": [f"{doc['tenant_id']}/{doc['name']}"[:63]], "log": spec.log,
                       "severity": [spec.severity] if spec.log else [],
                       "meter": [_meter(t, doc["tenant_id"])] if spec.log else []}
            for column, value in columns.items():
                if getattr(acl, column) != value:
                    setattr(acl, column, value)
        for acl in acls.values():
            row.delvalue("acls", acl)
            acl.delete()
        return []

    def remove(self, t: Txn, row: Any, doc: Doc, cascade: bool) -> None:
        drop_unused_peer_sets(t, doc, None)
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
        for key in pc.peer_selectors(stored_doc(pg, committed=True)):
            for family in (4, 6):
                set_entry = self.nb.index(AS).by_id(PEERS, f"{key}/{family}")
                row = self.nb.row(AS, set_entry.row_uuid) if set_entry else None
                if row is not None:
                    sets[row.name] = sorted(row.addresses)
        acls = [{"direction": a.direction, "priority": a.priority, "match": a.match,
                 "action": a.action, "label": a.label, "name": (list(a.name) or [None])[0],
                 "log": a.log,
                 "severity": (list(a.severity) or [None])[0],
                 "rule": a.external_ids.get(naming.PREFIX + "rule", "")} for a in pg.acls]
        acls.sort(key=lambda a: (a["direction"], -a["priority"], a["rule"]))
        return {"port_group": pg.name, "address_sets": sets, "acls": acls}

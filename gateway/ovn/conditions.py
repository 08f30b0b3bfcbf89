"""Conditional monitoring: the replica holds the gateway's own rows, not the whole database.

An NB shared with other systems can hold millions of rows the gateway never reads. Each
table whose gateway-written rows all carry the ownership stamp is monitored with one
`external_ids includes {ovn-nb-gateway:kind: <kind>}` clause per kind written there (the
clauses of a condition are OR-ed), set before the first monitor request, so the initial dump
is already filtered (python-ovs sends the latest condition with every monitor request,
also after a reconnect).

Tables whose rows the gateway writes without a stamp (Gateway_Chassis, Meter_Band,
Load_Balancer_Health_Check) stay unconditioned: python-ovs drops references to rows it does
not replicate, so a condition there would hide those children of owned rows.

One read needs rows that are not ours: the ports another tool put on one of the gateway's
switches (a network delete refuses them, address allocation skips their addresses). They
are followed by uuid: after each update, references from owned switches to ports that do
not match the kind clauses become `_uuid ==` clauses, and the IDL waits for them before it
hands the replica to any transaction (FollowedRefs, _GatewayIdl in connection.py).
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.ovn import naming, tables

# The kinds the services stamp on rows that are not the document rows of a resource kind
# (those are added from the registered kinds: Resource.kind in Resource.table). A kind
# missing here makes its rows vanish from the replica: keep in step with the writers.
CHILD_KINDS: Mapping[str, frozenset[str]] = {
    tables.PG: frozenset({"tenant"}),  # services.tenants
    tables.AS: frozenset({"policy-peers"}),  # services.policies
    tables.ACL: frozenset({"acl"}),  # services.policies
    tables.METER: frozenset({"meter"}),  # services.policies
    tables.DHCP: frozenset({"dhcp"}),  # services.networks.DhcpRows (networks and ports)
    tables.LSP: frozenset({"gw-link", "lb-router", "localnet"}),
    tables.LR: frozenset({"lb-router"}),  # services.load_balancers
    tables.LRP: frozenset({"gw-port", "lb-router"}),
    tables.NAT: frozenset({"gw-snat", "fip-nat"}),
    tables.ROUTE: frozenset({"gw-route"}),
    tables.LB: frozenset({"lb-probe"}),
}
# Written without a stamp: never conditioned (see the module docstring).
UNSTAMPED = frozenset({tables.GW_CHASSIS, tables.METER_BAND, tables.LB_HC})
# (table, reference column) -> referenced table whose non-owned rows the gateway reads.
FOLLOWED: Mapping[tuple[str, str], str] = {(tables.LS, "ports"): tables.LSP}


def kinds_by_table(resources: Iterable[Any]) -> dict[str, frozenset[str]]:
    """Per table, every kind the gateway stamps on its rows there."""
    found: dict[str, set[str]] = {t: set(k) for t, k in CHILD_KINDS.items()}
    for cls in resources:
        if cls.table and cls.kind:
            found.setdefault(cls.table, set()).add(cls.kind)
    return {t: frozenset(k) for t, k in found.items()}


def kind_clause(kind: str) -> list[Any]:
    return ["external_ids", "includes", ["map", [[naming.KIND, kind]]]]


def uuid_clause(row_uuid: uuidlib.UUID) -> list[Any]:
    return ["_uuid", "==", ["uuid", str(row_uuid)]]


def condition(kinds: frozenset[str], extra: Iterable[uuidlib.UUID] = ()) -> list[Any]:
    return [kind_clause(k) for k in sorted(kinds)] + [uuid_clause(u) for u in sorted(extra)]


def _owned(row: Any) -> bool:
    data = row.__dict__.get("_data")
    if not data or "external_ids" not in data:
        return False
    ids = data["external_ids"].values
    keys = {k.value for k in ids}
    return naming.KIND in keys and naming.ID in keys and naming.TENANT in keys


def _refs(row: Any, column: str) -> set[uuidlib.UUID]:
    data = row.__dict__.get("_data")
    if not data or column not in data:
        return set()
    return {atom.value for atom in data[column].values}


class FollowedRefs:
    """The rows of a conditioned table that owned rows reference but the kind clauses do
    not bring: followed by uuid. Fed by the IDL's notify(), applied after each run()."""

    def __init__(self, kinds: Mapping[str, frozenset[str]]) -> None:
        self.kinds = kinds
        # referencing row uuid -> the uuids it makes us follow, per followed table
        self.by_referrer: dict[str, dict[uuidlib.UUID, frozenset[uuidlib.UUID]]] = {
            target: {} for target in FOLLOWED.values() if target in kinds}
        self.dirty: dict[tuple[str, str], dict[uuidlib.UUID, Any]] = {
            key: {} for key, target in FOLLOWED.items() if target in kinds}

    def noticed(self, table: str, row: Any, deleted: bool) -> None:
        for (source, _), dirty in self.dirty.items():
            if source == table:
                dirty[row.uuid] = None if deleted else row

    def clear(self) -> None:
        for dirty in self.dirty.values():
            dirty.clear()
        for refs in self.by_referrer.values():
            refs.clear()

    def _brought(self, target: str, row: Any) -> bool:
        """Whether the kind clauses bring this row (then it needs no uuid clause)."""
        data = row.__dict__.get("_data")
        if not data or "external_ids" not in data:
            return False
        for key, value in data["external_ids"].values.items():
            if key.value == naming.KIND:
                return value.value in self.kinds[target]
        return False

    def update(self, idl: Any) -> dict[str, list[Any]]:
        """Apply what was noticed; returns the conditions that changed, by table."""
        changed: dict[str, list[Any]] = {}
        for (source, column), dirty in self.dirty.items():
            if not dirty:
                continue
            target = FOLLOWED[(source, column)]
            refs = self.by_referrer[target]
            before = set().union(*refs.values()) if refs else set()
            sources = idl.tables[source].rows
            for gone in [r for r in refs if r not in sources]:  # lost in a full resync
                del refs[gone]
            rows = idl.tables[target].rows
            for referrer, row in dirty.items():
                if row is None or not _owned(row):
                    refs.pop(referrer, None)
                    continue
                wanted = frozenset(u for u in _refs(row, column)
                                   if (found := rows.get(u)) is None or u in before
                                   or not self._brought(target, found))
                if wanted:
                    refs[referrer] = wanted
                else:
                    refs.pop(referrer, None)
            dirty.clear()
            after = set().union(*refs.values()) if refs else set()
            if after != before:
                changed[target] = condition(self.kinds[target], after)
        return changed

    def conditions(self) -> dict[str, list[Any]]:
        out = {}
        for target, refs in self.by_referrer.items():
            extra = set().union(*refs.values()) if refs else set()
            out[target] = condition(self.kinds[target], extra)
        return out


def initial(replica_tables: Iterable[str], kinds: Mapping[str, frozenset[str]]
            ) -> dict[str, list[Any]]:
    """The condition of each replicated table that can be conditioned."""
    return {t: condition(kinds[t]) for t in replica_tables
            if t in kinds and t not in UNSTAMPED}

"""Drift: what the northbound database holds of the gateway's own rows, against what each
resource's stored document implies, and the repair.

A kind takes part by implementing `repair(t, row, doc)` next to its write code (the
`Repairable` protocol): write what the write path would write for `doc`, changing only
what differs, and only the resource's own rows (no lifecycle hooks, no counters that
matter, no new allocations). The audit runs it inside a transaction and reads back what it
would write: nothing pending is no drift, and each pending write (since a savepoint taken
before the resource) is a finding. A report rolls the rewrites back; a repair commits
them, one transaction per resource. Owned child rows whose owner is gone (orphans) come from a sweep
of the replica and are deleted on repair.

Only rows carrying the ownership stamps are read or written: the replica holds little
else (gateway.ovn.conditions), and references to rows that are not ours are left out of
what is reported.
"""

from __future__ import annotations

import copy
import json
import uuid as uuidlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from gateway.errors import GatewayError, NotFound
from gateway.ovn import naming, tables
from gateway.ovn.batch import Savepoint
from gateway.ovn.connection import Northbound
from gateway.ovn.transaction import Txn
from gateway.services import policy_compiler as pc
from gateway.services.resources import Doc, Resource, stored_doc

REPAIR_ROUNDS = 3
CHUNK = 50  # resources per report transaction: a long audit must not hold up the writes
# What a repair returns: references its document makes to things that are gone
# (table, row, column, what the column names), which it dropped as the API would have.
Dangling = tuple[str, str, str, Any]


@runtime_checkable
class Repairable(Protocol):
    kind: str
    table: str

    def repair(self, t: Txn, row: Any, doc: Doc) -> list[Dangling]:
        """Bring the resource's own rows to what `doc` implies, writing only what differs."""


@dataclass
class Finding:
    kind: str  # the resource's kind (for an orphan: the row's own kind stamp)
    id: str
    tenant: str
    name: str | None
    problem: str  # missing | changed | extra | orphan | dangling | unrepairable
    table: str
    row: str
    column: str | None = None
    expected: Any = None
    found: Any = None
    detail: str = ""


@dataclass
class Report:
    checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    repaired: bool = False
    remaining: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"clean": self.clean, "checked": self.checked,
                               "repaired": self.repaired,
                               "findings": [asdict(f) for f in self.findings]}
        if self.repaired:
            out["remaining"] = [asdict(f) for f in self.remaining]
        return out


# Child kinds whose owner is another row: the ownership key that names the owner and the
# kinds that may own them. (Policy peer sets belong to whichever policies use their
# selector; tenant rows and meters belong to the tenant and are never orphans.)
OWNERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "dhcp": (naming.PARENT, ("network", "port")),  # services.networks.DhcpRows
    "acl": (naming.PARENT, ("policy",)),  # services.policies
    "localnet": (naming.PARENT, ("external-network",)),  # services.external_networks
    "gw-port": (naming.PARENT, ("gateway",)),  # services.gateways
    "gw-link": (naming.PARENT, ("gateway",)),
    "gw-snat": (naming.PARENT, ("gateway",)),
    "gw-route": (naming.PARENT, ("gateway",)),
    "fip-nat": (naming.ID, ("floating-ip",)),  # services.floating_ips
    "lb-probe": (naming.ID, ("load-balancer",)),  # services.load_balancers
    "lb-router": (naming.PARENT, ("network",)),
}
PEERS = "policy-peers"
# Where a non-root row is referenced from: it can only be deleted out of its container.
CONTAINERS: dict[str, tuple[str, str]] = {
    tables.LSP: (tables.LS, "ports"), tables.LRP: (tables.LR, "ports"),
    tables.NAT: (tables.LR, "nat"), tables.ROUTE: (tables.LR, "static_routes"),
    tables.ACL: (tables.PG, "acls"),
}
# Child rows written without stamps (they belong to the row that references them): named
# by their content, so that a changed one shows in the referencing column.
UNSTAMPED = {tables.GW_CHASSIS: ("chassis_name", "priority"), tables.LB_HC: ("vip", "options"),
             tables.METER_BAND: ("action", "rate", "burst_size")}


# -- reading pending writes -----------------------------------------------------------------
def _stamp(row: Any, committed: bool) -> dict[str, str]:
    try:
        if committed or row._changes is None:
            datum = (row._data or {}).get("external_ids")
            return dict(datum.to_python(lambda atom, base: atom)) if datum else {}
        return dict(row.external_ids or {})
    except AttributeError:
        return {}


def _owned(ids: dict[str, str]) -> bool:
    return bool(ids.get(naming.KIND) and ids.get(naming.ID) and ids.get(naming.TENANT))


def label(row: Any, committed: bool = False) -> str:
    """How a finding names a row: its name (what ovn-nbctl shows), else its owned id."""
    table = row._table.name
    committed = committed or row._changes is None  # a deleted row has only its past
    if table in UNSTAMPED:
        values = [_committed(row, c) if committed else getattr(row, c) for c in UNSTAMPED[table]]
        return " ".join(json.dumps(v, sort_keys=True) if isinstance(v, dict) else str(v)
                        for v in values)
    column = "name"
    if table != tables.ACL and column in row._table.columns:
        try:
            value = _committed(row, column) if committed else getattr(row, column)
        except AttributeError:
            value = None
        if isinstance(value, list):
            value = value[0] if value else None
        if value:
            return str(value)
    ids = _stamp(row, committed)
    return ids.get(naming.ID) or str(row.uuid)


def _committed(row: Any, column: str) -> Any:
    datum = (row._data or {}).get(column)
    if datum is None:
        return None
    return datum.to_python(lambda atom, base: atom)


def _is_ref(row: Any, column: str) -> Any:
    """The referenced table of a reference column, else None."""
    ctype = row._table.columns[column].type
    return (ctype.value.ref_table if ctype.is_map() and ctype.value else None) or \
        ctype.key.ref_table


def _refs(t: Txn, ref_table: Any, value: Any, skip: set[Any]) -> list[str]:
    """Referenced rows by label, leaving out rows that are not ours (never reported) and
    those in `skip` (rows reported missing or extra on their own)."""
    rows = t.idl.tables[ref_table.name].rows
    out = []
    for item in value if isinstance(value, list | set | tuple) else [value]:
        target = item if hasattr(item, "_table") else rows.get(item)
        if target is None or target.uuid in skip:
            continue  # gone, or not in the replica: not ours
        if target._table.name not in UNSTAMPED and \
                not _owned(_stamp(target, False)) and not _owned(_stamp(target, True)):
            continue
        out.append(label(target))
    return sorted(out)


def _plain(t: Txn, row: Any, column: str, value: Any, skip: set[Any] | None = None) -> Any:
    """A column value as JSON: reference columns by the labels of the rows they name."""
    if value is None:  # a column the row never had written: its empty default
        ctype = row._table.columns[column].type
        value = {} if ctype.is_map() else [] if ctype.n_max != 1 or ctype.n_min == 0 else None
    ref = _is_ref(row, column)
    if ref is not None:
        if isinstance(value, dict):
            return {str(k): _refs(t, ref, v, skip or set()) for k, v in value.items()}
        return _refs(t, ref, value if value is not None else [], skip or set())
    if isinstance(value, dict):
        return {str(k): v for k, v in sorted(value.items())}
    if isinstance(value, list | set | tuple):
        return sorted(value, key=str)
    if isinstance(value, uuidlib.UUID):
        return str(value)
    return value


def _touched_columns(sp: Savepoint, row: Any) -> set[str]:
    """Columns the resource's repair wrote (since the savepoint)."""
    # stamps, documents and counters: not drift
    return sp.changed_columns(row) - {"external_ids"}


def pending(t: Txn, sp: Savepoint, owner: Finding) -> list[Finding]:
    """What the transaction would write since the savepoint, as findings about `owner`."""
    found: list[Finding] = []

    def finding(problem: str, row: Any, column: str | None = None, expected: Any = None,
                was: Any = None, detail: str = "") -> Finding:
        return Finding(owner.kind, owner.id, owner.tenant, owner.name, problem,
                       row._table.name, label(row, committed=problem == "extra"), column,
                       expected, was, detail)

    touched = list(sp.rows_since())
    # A row put back or taken away is one finding, not also one per column naming it.
    inserted = {r.uuid for r in touched if r._data is None and r.uuid not in sp.rows
                and r._table.name not in UNSTAMPED}
    deleted = {r.uuid for r in touched if r._changes is None}
    for row in touched:
        table = row._table.name
        if row._data is None:  # inserted: a row the document implies is missing
            if row.uuid in sp.rows:
                continue
            columns = {c: _plain(t, row, c, getattr(row, c)) for c in sorted(
                set(row._changes or {}) | set(row._mutations.get("_inserts", {})))
                if c != "external_ids"}
            if table in UNSTAMPED:
                continue  # reported with the row that references it
            found.append(finding("missing", row, None, columns, None,
                                 f"no {table} row {label(row)}"))
            continue
        if row._changes is None:  # deleted: an owned row the document does not imply
            before = sp.state.get(row.uuid)
            if before is not None and before[0] is None:
                continue
            found.append(finding("extra", row, None, None, label(row, committed=True),
                                 f"{table} row {label(row, committed=True)} is not part of "
                                 "the resource"))
            continue
        for column in sorted(_touched_columns(sp, row)):
            was = _plain(t, row, column, _committed(row, column), deleted)
            now = _plain(t, row, column, getattr(row, column), inserted)
            if was != now:
                found.append(finding("changed", row, column, now, was,
                                     f"{table} {label(row)} column {column}"))
    return found


# -- the audit ------------------------------------------------------------------------------
class DriftService:
    def __init__(self, nb: Northbound, resources: Iterable[Resource]) -> None:
        self.nb = nb
        self.kinds: dict[str, Repairable] = {
            r.kind: r for r in resources if isinstance(r, Repairable)}
        self.tables = {kind: r.table for kind, r in self.kinds.items()}

    def audit(self, tenant: str | None = None, kind: str | None = None,
              repair: bool = False) -> Report:
        self.nb.ensure_ready()
        report = self._report(tenant, kind)
        if not repair:
            return report
        report.repaired = True
        if report.clean:
            return report
        after = report
        # A repair can uncover more: a network's DHCP row put back must be referenced
        # again by its ports. Rounds until nothing changes.
        for _ in range(REPAIR_ROUNDS):
            for _, findings in self._by_resource(after.findings):
                if findings[0].problem == "orphan":
                    self._delete_orphan(findings[0])
                elif any(f.problem != "unrepairable" for f in findings):
                    self._repair_one(findings[0].kind, findings[0].id)
            before, after = after, self._report(tenant, kind)
            if after.clean or after.findings == before.findings:
                break
        report.remaining = after.findings
        return report

    @staticmethod
    def _by_resource(findings: list[Finding]) -> Iterator[tuple[tuple[str, str, str],
                                                                list[Finding]]]:
        grouped: dict[tuple[str, str, str], list[Finding]] = {}
        for f in findings:
            key = (f.kind, f.id, f.row if f.problem == "orphan" else "")
            grouped.setdefault(key, []).append(f)
        yield from grouped.items()

    def _targets(self, tenant: str | None, kind: str | None) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for name, resource in self.kinds.items():
            if kind is not None and name != kind:
                continue
            index = self.nb.index(resource.table)
            out.extend((name, entry.id) for entry in index.entries(name, tenant=tenant))
        return out

    def _report(self, tenant: str | None, kind: str | None) -> Report:
        report = Report()
        targets = self._targets(tenant, kind)
        report.checked = len(targets)
        for start in range(0, len(targets), CHUNK):
            chunk = targets[start:start + CHUNK]

            def look(t: Txn, chunk: list[tuple[str, str]] = chunk) -> list[Finding]:
                # Each resource sees the repairs of those before it (a network's DHCP row
                # put back, which its ports must reference), as a repair would; all of it
                # is rolled back at the end.
                whole = Savepoint(t.txn)
                found: list[Finding] = []
                try:
                    for name, resource_id in chunk:
                        found.extend(self._refused(t, name, resource_id))
                finally:
                    whole.rollback()
                return found

            report.findings.extend(self.nb.transact(look, "audit"))
        report.findings.extend(self._orphans(tenant, kind))
        return report

    def _check(self, t: Txn, name: str, resource_id: str) -> list[Finding]:
        resource = self.kinds[name]
        row = t.get(resource.table, name, resource_id)
        if row is None:
            return []  # deleted meanwhile
        doc = stored_doc(row)
        owner = Finding(name, resource_id, doc["tenant_id"], doc.get("name"), "",
                        resource.table, label(row))
        sp, inserted = Savepoint(t.txn), dict(t.inserted)
        try:
            dangling = resource.repair(t, row, copy.deepcopy(doc))
        except GatewayError:
            sp.rollback()  # half a repair must not mislead the resources after it
            t.inserted.clear()
            t.inserted.update(inserted)
            raise
        found = [Finding(**{**asdict(owner), "problem": "dangling", "table": table,
                            "row": row_name, "column": column, "found": what,
                            "detail": f"{table} {row_name} column {column} names {what}, "
                                      "which no longer exists"})
                 for table, row_name, column, what in dangling]
        return found + pending(t, sp, owner)

    def _refused(self, t: Txn, name: str, resource_id: str) -> list[Finding]:
        """_check, with the write path's refusals of the stored document as findings."""
        resource = self.kinds[name]
        try:
            return self._check(t, name, resource_id)
        except GatewayError as exc:
            row = t.get(resource.table, name, resource_id)
            doc = stored_doc(row)
            # NotFound: the document names something that is gone.
            problem = "dangling" if isinstance(exc, NotFound) else "unrepairable"
            return [Finding(name, resource_id, doc["tenant_id"], doc.get("name"), problem,
                            resource.table, label(row),
                            next(iter(exc.errors or {}), None) if problem == "dangling"
                            else None, detail=f"cannot be rewritten: {exc.detail}")]

    def _repair_one(self, name: str, resource_id: str) -> None:
        resource = self.kinds[name]

        def fix(t: Txn) -> None:
            row = t.get(resource.table, name, resource_id)
            if row is not None:
                row.verify("external_ids")  # the document it was repaired from
                resource.repair(t, row, stored_doc(row))

        try:
            self.nb.transact(fix, "repair")
        except GatewayError:
            pass  # stays in the report after the repair, as remaining

    # -- orphans ----------------------------------------------------------------------------
    def _alive(self, kind: str, owner_id: str) -> bool:
        return any(self.nb.index(self.tables[k]).by_id(k, owner_id) is not None
                   for k in OWNERS[kind][1] if k in self.tables)

    def _peer_keys(self, tenant: str) -> set[str]:
        """The selector keys the tenant's policies use (their peer sets' owners)."""
        index = self.nb.index(tables.PG)
        return {key for entry in index.entries("policy", tenant=tenant)
                for key in pc.peer_selectors(entry.doc or {})}

    def _orphans(self, tenant: str | None, kind: str | None) -> list[Finding]:
        found = []
        for table in self.nb.replica.tables:
            index = self.nb.index(table)
            for child, (key, owners) in [*OWNERS.items(), (PEERS, (naming.PARENT, ("policy",)))]:
                if kind is not None and kind not in owners and kind != child:
                    continue
                for entry in index.entries(child, tenant=tenant):
                    owner_id = entry.parent if key == naming.PARENT else entry.id
                    if owner_id is None:
                        continue
                    if child == PEERS:
                        alive = owner_id in self._peer_keys(entry.tenant)
                    else:
                        alive = self._alive(child, owner_id)
                    if alive:
                        continue
                    row = self.nb.row(table, entry.row_uuid)
                    found.append(Finding(
                        child, owner_id, entry.tenant, None, "orphan", table,
                        label(row, committed=True) if row is not None else entry.id,
                        None, None, {"kind": child, "id": entry.id},
                        f"{table} row ({child} {entry.id}) belongs to {' or '.join(owners)} "
                        f"{owner_id}, which no longer exists"))
        return found

    def _delete_orphan(self, finding: Finding) -> None:
        def drop(t: Txn) -> None:
            row = t.get(finding.table, finding.found["kind"], finding.found["id"])
            if row is None:
                return
            container = CONTAINERS.get(finding.table)
            if container is not None:
                holder_table, column = container
                for holder in list(t.idl.tables[holder_table].rows.values()):
                    if row in getattr(holder, column, []):
                        holder.delvalue(column, row)
            row.delete()

        try:
            self.nb.transact(drop, "repair")
        except GatewayError:
            pass  # stays in the report after the repair, as remaining

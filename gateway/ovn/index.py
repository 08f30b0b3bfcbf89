"""In-process indexes of the gateway's own rows, maintained by the IDL replica itself.

The IDL calls add/remove/clear on every object in `table.rows.indexes` whenever it changes
its replica (initial dump, updates, reconnect), so lookups by id, name, tenant, parent or
idempotency key cost O(log n) whatever the size of the database. The index declares no
columns, so the IDL never touches it for uncommitted in-transaction writes; entries are
built from committed row data only and removed by row uuid.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import json
import sys
import threading
import uuid as uuidlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sortedcontainers import SortedList

from gateway.ovn import naming


@dataclass(frozen=True, slots=True)
class Entry:
    row_uuid: uuidlib.UUID
    kind: str
    id: str
    tenant: str
    name: str | None
    parent: str | None
    idempotency: str | None
    keys: tuple[tuple[str, str], ...] = ()
    # What naming.CACHED_FIELDS keeps of the parsed document (read-only: shared).
    doc: dict[str, Any] | None = None


@dataclass(frozen=True)
class Replica:
    """What one gateway process replicates, declared by the resource kinds: per table the
    columns read or written, and per kind that stores an API document the fields of it the
    index keeps parsed (None: all of it; empty: none)."""

    columns: Mapping[str, frozenset[str]]
    documents: Mapping[str, frozenset[str] | None]
    # Per table, the kinds stamped on the gateway's rows there: the replica holds only
    # those rows (gateway.ovn.conditions). A table not listed is replicated whole.
    owners: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(sorted(self.columns))


# The initial dump arrives as one JSON message, parsed whole: once its rows are built the
# parse tree is garbage, but glibc keeps the freed heap (the stored documents, just over
# pymalloc's 512-byte limit, sit between its pieces). Handing it back to the system after a
# dump (or any update of this many rows) took a third off a fresh process's resident size.
TRIM_AFTER_ROWS = 2000


def trim_heap() -> None:
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _libc()


# Repeated in every owned row: ownership key names and kinds, shared as one Atom each.
_SHARED_ATOMS: dict[tuple[int, str], Any] = {}
_SHARED_VALUES = frozenset({naming.KIND})
_INTERNED_VALUES = frozenset({naming.TENANT, naming.PARENT, naming.REVISION})


def _shared(atom: Any) -> Any:
    key = (id(atom.type), atom.value)
    found = _SHARED_ATOMS.get(key)
    if found is None:
        atom.value = sys.intern(atom.value)
        found = _SHARED_ATOMS.setdefault(key, atom)
    return found


# Single-valued columns that repeat across rows (a port's `enabled`, its `type` "", the
# network's DHCP row it references), one shared Datum per value. Safe: python-ovs changes a
# datum in place only in Datum.diff(), and only a set, a map or an empty one.
_SHARED_DATUMS: dict[tuple[int, Any], Any] = {}
_MAX_SHARED_DATUMS = 100_000  # then start over: sharing is only an optimisation


def _share_scalars(data: Any) -> None:
    shared = []
    for column, datum in data.items():
        values = datum.values
        if len(values) != 1 or datum.type.n_max != 1 or datum.type.is_map():
            continue
        value = next(iter(values)).value
        if not (value == "" or isinstance(value, int | uuidlib.UUID)):
            continue  # names and addresses: unique, nothing to share
        key = (id(datum.type), value)
        found = _SHARED_DATUMS.get(key)
        if found is None:
            if len(_SHARED_DATUMS) >= _MAX_SHARED_DATUMS:
                _SHARED_DATUMS.clear()
            _SHARED_DATUMS[key] = datum
        elif found is not datum:
            shared.append((column, found))
    for column, datum in shared:
        data[column] = datum


def compact_row(row: Any) -> None:
    """Share what rows repeat in their committed data: single repeated values, and in
    external_ids the key atoms (and their strings) of our keys, the kind atoms, interned
    tenants and parents. Equal atoms replace equal atoms: python-ovs never changes an atom,
    only a datum's dict (a diff applied in place), and that dict is rebuilt, not shared."""
    data = row.__dict__.get("_data")
    if not data:
        return
    _share_scalars(data)
    if "external_ids" not in data:
        return
    datum = data["external_ids"]
    values = {}
    for key, value in datum.values.items():
        name = key.value
        if not name.startswith(naming.PREFIX):
            values[key] = value
            continue
        if name in _SHARED_VALUES:
            value = _shared(value)
        elif name in _INTERNED_VALUES or name.startswith(naming.KEY):
            value.value = sys.intern(value.value)
        values[_shared(key)] = value
    datum.values = values


def committed_external_ids(row: Any) -> dict[str, str] | None:
    data = row.__dict__.get("_data")
    if not data or "external_ids" not in data:
        return None
    value = data["external_ids"].to_python(lambda atom, base: atom)
    return value if isinstance(value, dict) else None


_NOT_OWNED: Any = object()


def _owned_doc(ids: dict[str, str], documents: Mapping[str, Any]) -> Any:
    """The row's parsed API document ({} for internal rows), or _NOT_OWNED: only complete
    stamps count, so a row imitating a few of our keys stays someone else's."""
    if not (ids.get(naming.KIND) and ids.get(naming.ID) and ids.get(naming.TENANT)):
        return _NOT_OWNED
    if ids[naming.KIND] not in documents:
        return {}
    try:
        doc = json.loads(ids.get(naming.DOC, ""))
    except ValueError:
        return _NOT_OWNED
    if (isinstance(doc, dict) and doc.get("id") == ids[naming.ID]
            and doc.get("tenant_id") == ids[naming.TENANT] and naming.NAME in ids):
        return doc
    return _NOT_OWNED


def _cached(fields: frozenset[str] | None, doc: dict[str, Any],
            same: tuple[str | None, ...]) -> dict[str, Any] | None:
    if fields is None:
        return doc
    if not fields:
        return None
    own = {s: s for s in same if s}  # the entry's own strings (id, parent, tenant) once
    cached = {}
    for k in fields:
        value = doc.get(k)
        cached[k] = own.get(value, value) if isinstance(value, str) else value
    return cached


class OwnedIndex:
    """One per monitored table; keyed by the ownership keys of naming.py."""

    columns: tuple[str, ...] = ()  # see module docstring
    name = "ovn-nb-gateway"

    def __init__(self, documents: Mapping[str, frozenset[str] | None]) -> None:
        self.documents = documents
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self._by_uuid: dict[uuidlib.UUID, Entry] = {}
            self._by_id: dict[tuple[str, str], uuidlib.UUID] = {}
            self._by_name: dict[tuple[str, str, str], uuidlib.UUID] = {}
            self._by_idem: dict[tuple[str, str, str], uuidlib.UUID] = {}
            self._sorted: dict[tuple[str, ...], SortedList] = {}

    def _lists(self, e: Entry) -> list[tuple[str, ...]]:
        keys = [(e.kind,), (e.kind, "tenant", e.tenant)]
        if e.parent:
            keys.append((e.kind, "parent", e.parent))
        for name, value in e.keys:
            keys.append((e.kind, "key", name, value))
            keys.append((e.kind, "key", name, value, e.tenant))
        return keys

    def entry(self, row: Any, compact: bool = True) -> Entry | None:
        """The index entry of a committed row; None for a row that is not ours."""
        if compact:
            compact_row(row)
        ids = committed_external_ids(row)
        if not ids:
            return None
        doc = _owned_doc(ids, self.documents)
        if doc is _NOT_OWNED:
            return None
        kind, resource_id = ids[naming.KIND], ids[naming.ID]
        tenant, parent = ids.get(naming.TENANT, ""), ids.get(naming.PARENT)
        return Entry(row.uuid, kind, resource_id, tenant, ids.get(naming.NAME), parent,
                     ids.get(naming.IDEMPOTENCY, "").split("\n", 1)[0] or None,
                     tuple((sys.intern(k[len(naming.KEY):]), v) for k, v in sorted(ids.items())
                           if k.startswith(naming.KEY)),
                     _cached(self.documents[kind], doc, (resource_id, parent, tenant))
                     if kind in self.documents else None)

    def _insert(self, entry: Entry) -> None:
        self._by_uuid[entry.row_uuid] = entry
        self._by_id[(entry.kind, entry.id)] = entry.row_uuid
        if entry.name:
            self._by_name[(entry.kind, entry.tenant, entry.name)] = entry.row_uuid
        if entry.idempotency:
            self._by_idem[(entry.kind, entry.tenant, entry.idempotency)] = entry.row_uuid

    def add(self, row: Any) -> None:
        entry = self.entry(row)
        with self._lock:
            self._discard(row.uuid)
            if entry is None:
                return
            self._insert(entry)
            for key in self._lists(entry):
                self._sorted.setdefault(key, SortedList()).add(entry.id)

    def add_all(self, rows: Iterable[Any], compacted: bool = False) -> None:
        """add() for many rows at once: each sorted list is built in one sort."""
        entries = [e for e in (self.entry(r, not compacted) for r in rows) if e is not None]
        with self._lock:
            lists: dict[tuple[str, ...], list[str]] = {}
            for entry in entries:
                self._discard(entry.row_uuid)
                self._insert(entry)
                for key in self._lists(entry):
                    lists.setdefault(key, []).append(entry.id)
            for key, ids in lists.items():
                if key in self._sorted:
                    self._sorted[key].update(ids)
                else:
                    self._sorted[key] = SortedList(ids)

    def remove(self, row: Any) -> None:
        with self._lock:
            self._discard(row.uuid)

    def _discard(self, row_uuid: uuidlib.UUID) -> None:
        entry = self._by_uuid.pop(row_uuid, None)
        if entry is None:
            return
        if self._by_id.get((entry.kind, entry.id)) == row_uuid:
            del self._by_id[(entry.kind, entry.id)]
        if entry.name and self._by_name.get((entry.kind, entry.tenant, entry.name)) == row_uuid:
            del self._by_name[(entry.kind, entry.tenant, entry.name)]
        if entry.idempotency:
            self._by_idem.pop((entry.kind, entry.tenant, entry.idempotency), None)
        for key in self._lists(entry):
            ids = self._sorted.get(key)
            if ids is not None:
                ids.discard(entry.id)
                if not ids:
                    del self._sorted[key]

    # -- lookups -------------------------------------------------------------------------
    def by_id(self, kind: str, resource_id: str) -> Entry | None:
        with self._lock:
            row_uuid = self._by_id.get((kind, resource_id))
            return self._by_uuid.get(row_uuid) if row_uuid else None

    def by_name(self, kind: str, tenant: str, name: str) -> Entry | None:
        with self._lock:
            row_uuid = self._by_name.get((kind, tenant, name))
            return self._by_uuid.get(row_uuid) if row_uuid else None

    def by_idempotency(self, kind: str, tenant: str, key: str) -> Entry | None:
        with self._lock:
            row_uuid = self._by_idem.get((kind, tenant, key))
            return self._by_uuid.get(row_uuid) if row_uuid else None

    def count(self, kind: str, tenant: str | None = None, parent: str | None = None) -> int:
        with self._lock:
            return len(self._sorted.get(self._key(kind, tenant, parent), ()))

    @staticmethod
    def _key(kind: str, tenant: str | None, parent: str | None) -> tuple[str, ...]:
        if parent is not None:
            return (kind, "parent", parent)
        if tenant is not None:
            return (kind, "tenant", tenant)
        return (kind,)

    def count_by_key(self, kind: str, name: str, value: str, tenant: str) -> int:
        with self._lock:
            return len(self._sorted.get((kind, "key", name, value, tenant), ()))

    def ids_by_key(self, kind: str, name: str, value: str,
                   tenant: str | None = None) -> list[str]:
        key = (kind, "key", name, value) + ((tenant,) if tenant is not None else ())
        with self._lock:
            return list(self._sorted.get(key, ()))

    def ids(self, kind: str, tenant: str | None = None, parent: str | None = None,
            after: str | None = None) -> Iterator[str]:
        """Ids in stable (sorted) order, starting after the cursor; a snapshot in chunks."""
        key = self._key(kind, tenant, parent)
        cursor = after
        while True:
            with self._lock:
                ids = self._sorted.get(key)
                if not ids:
                    return
                source = (ids.irange(minimum=cursor, inclusive=(False, True))
                          if cursor is not None else iter(ids))
                chunk = list(itertools.islice(source, 256))
            if not chunk:
                return
            yield from chunk
            cursor = chunk[-1]

    def entries(self, kind: str, tenant: str | None = None,
                parent: str | None = None) -> Iterator[Entry]:
        for resource_id in self.ids(kind, tenant, parent):
            entry = self.by_id(kind, resource_id)
            if entry is not None:
                yield entry


class _Compactor:
    """Stands in for the index during the initial dump: compacts each row as it is parsed,
    so the memory it frees is reused by the next rows (the index is then built in one go)."""

    columns: tuple[str, ...] = ()
    name = "ovn-nb-gateway-compact"

    def add(self, row: Any) -> None:
        compact_row(row)

    def remove(self, row: Any) -> None:
        pass

    def clear(self) -> None:
        pass


def prepare(idl: Any, replica: Replica) -> None:
    """Before the first monitor request: see _Compactor."""
    for table in replica.tables:
        idl.tables[table].rows.indexes[_Compactor.name] = _Compactor()


def attach(idl: Any, replica: Replica) -> dict[str, OwnedIndex]:
    """Register an OwnedIndex on each table of the IDL (again after a schema change)."""
    indexes = {}
    for table in replica.tables:
        rows = idl.tables[table].rows
        # OwnedIndex.add compacts from now on
        compacted = rows.indexes.pop(_Compactor.name, None) is not None
        index = rows.indexes.get(OwnedIndex.name)
        if not isinstance(index, OwnedIndex):
            index = OwnedIndex(replica.documents)
            index.add_all(list(rows.values()), compacted)
            rows.indexes[OwnedIndex.name] = index
        indexes[table] = index
    return indexes

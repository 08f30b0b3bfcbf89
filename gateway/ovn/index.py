"""In-process indexes of the gateway's own rows, maintained by the IDL replica itself.

The IDL calls add/remove/clear on every object in `table.rows.indexes` whenever it changes
its replica (initial dump, updates, reconnect), so lookups by id, name, tenant, parent or
idempotency key cost O(log n) whatever the size of the database. The index declares no
columns, so the IDL never touches it for uncommitted in-transaction writes; entries are
built from committed row data only and removed by row uuid.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid as uuidlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sortedcontainers import SortedList

from gateway.ovn import naming


@dataclass(frozen=True)
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

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(sorted(self.columns))


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


def _cached(fields: frozenset[str] | None, doc: dict[str, Any]) -> dict[str, Any] | None:
    if fields is None:
        return doc
    return {k: doc.get(k) for k in fields} if fields else None


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

    def add(self, row: Any) -> None:
        ids = committed_external_ids(row)
        if not ids:
            return
        doc = _owned_doc(ids, self.documents)
        if doc is _NOT_OWNED:
            return
        entry = Entry(row.uuid, ids[naming.KIND], ids[naming.ID], ids.get(naming.TENANT, ""),
                      ids.get(naming.NAME), ids.get(naming.PARENT),
                      ids.get(naming.IDEMPOTENCY, "").split("\n", 1)[0] or None,
                      tuple((k[len(naming.KEY):], v) for k, v in sorted(ids.items())
                            if k.startswith(naming.KEY)),
                      _cached(self.documents[ids[naming.KIND]], doc)
                      if ids[naming.KIND] in self.documents else None)
        with self._lock:
            self._discard(row.uuid)
            self._by_uuid[row.uuid] = entry
            self._by_id[(entry.kind, entry.id)] = row.uuid
            if entry.name:
                self._by_name[(entry.kind, entry.tenant, entry.name)] = row.uuid
            if entry.idempotency:
                self._by_idem[(entry.kind, entry.tenant, entry.idempotency)] = row.uuid
            for key in self._lists(entry):
                self._sorted.setdefault(key, SortedList()).add(entry.id)

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


def attach(idl: Any, replica: Replica) -> dict[str, OwnedIndex]:
    """Register an OwnedIndex on each table of the IDL (again after a schema change)."""
    indexes = {}
    for table in replica.tables:
        rows = idl.tables[table].rows
        index = rows.indexes.get(OwnedIndex.name)
        if not isinstance(index, OwnedIndex):
            index = OwnedIndex(replica.documents)
            rows.indexes[OwnedIndex.name] = index
            for row in list(rows.values()):
                index.add(row)
        indexes[table] = index
    return indexes

"""The view a service gets of one OVSDB transaction: indexed reads of the replica and writes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ovs.db import idl as ovs_idl

from gateway.ovn.index import Entry, OwnedIndex


class Deferred(Exception):
    """The request read the committed document of a row that an earlier request of its
    shared transaction changed (gateway.ovn.batch): it runs again, first, in the next one."""


class Reads(threading.local):
    """Set while a request's change function runs in a shared transaction: whether an
    earlier request of it changed a row's external_ids."""

    changed: Callable[[Any], bool] | None = None


READS = Reads()


def committed_read(row: Any) -> None:
    """Call before reading a row's committed document inside a transaction. The rows show
    what earlier requests of a shared transaction wrote, the committed document does not:
    a request that reads it after another changed the row must wait for that commit."""
    changed = READS.changed
    if changed is not None and changed(row.uuid):
        raise Deferred()


def bump_counter(row: Any, key: str) -> None:
    """Verify the row's external_ids and bump an integer in them. Two transactions that both
    bump one counter cannot both commit: the loser's `wait` fails and it is re-run against
    the winner's result. (python-ovs sends the verify only because the row is also written.)"""
    row.verify("external_ids")
    row.setkey("external_ids", key, str(int(row.external_ids.get(key, "0")) + 1))


class Txn:
    def __init__(self, txn: ovs_idl.Transaction, idl: Any, indexes: Mapping[str, OwnedIndex]):
        self.txn = txn
        self.idl = idl
        self.indexes = indexes
        # Rows inserted by this transaction, by key: the indexes only see committed rows.
        self.inserted: dict[tuple[str, str], Any] = {}
        self.locked: dict[str, Any] = {}  # tenant -> its locked row (services.tenants)

    # -- reads (committed state, through the indexes) -------------------------------------
    def _row(self, table: str, entry: Entry | None) -> Any:
        if entry is None:
            return None
        return self.idl.tables[table].rows.get(entry.row_uuid)

    def get(self, table: str, kind: str, resource_id: str) -> Any:
        return self._row(table, self.indexes[table].by_id(kind, resource_id))

    def by_name(self, table: str, kind: str, tenant: str, name: str) -> Any:
        return self._row(table, self.indexes[table].by_name(kind, tenant, name))

    def by_idempotency(self, table: str, kind: str, tenant: str, key: str) -> Any:
        return self._row(table, self.indexes[table].by_idempotency(kind, tenant, key))

    def rows(self, table: str, kind: str, tenant: str | None = None,
             parent: str | None = None) -> Iterator[Any]:
        for entry in self.indexes[table].entries(kind, tenant, parent):
            row = self._row(table, entry)
            if row is not None:
                yield row

    def entries(self, table: str, kind: str, tenant: str | None = None,
                parent: str | None = None) -> Iterator[Entry]:
        return self.indexes[table].entries(kind, tenant, parent)

    def row_of(self, table: str, entry: Entry) -> Any:
        return self._row(table, entry)

    def rows_by_key(self, table: str, kind: str, name: str, value: str,
                    tenant: str | None = None) -> Iterator[Any]:
        index = self.indexes[table]
        for resource_id in index.ids_by_key(kind, name, value, tenant):
            row = self._row(table, index.by_id(kind, resource_id))
            if row is not None:
                yield row

    def keys_by_key(self, table: str, kind: str, name: str, value: str,
                    wanted: str) -> Iterator[str]:
        """Another lookup key of the rows with name=value, read from the index (committed
        state) without parsing any document."""
        index = self.indexes[table]
        for resource_id in index.ids_by_key(kind, name, value):
            entry = index.by_id(kind, resource_id)
            if entry is not None:
                found = dict(entry.keys).get(wanted)
                if found:
                    yield found

    # -- writes ----------------------------------------------------------------------------
    def insert(self, table: str, **columns: Any) -> Any:
        row = self.txn.insert(self.idl.tables[table])
        for column, value in columns.items():
            setattr(row, column, value)
        return row

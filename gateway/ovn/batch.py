"""Group commit: write requests that arrive together share one OVSDB transaction.

One connection thread commits for the whole process, and a commit waits a database round
trip. Requests that arrive during that wait are committed together in the next transaction:
their change functions run one after the other inside it, each as if it ran alone.

- Each request keeps its own outcome. Before a change function runs, the state of the
  transaction is saved; if it fails (a 400, 404, 409 or 412, or a bug), what it wrote is
  rolled back and the others are committed without it.
- Each sees what the earlier ones wrote. Rows read directly show their writes (python-ovs
  keeps them on the rows); the owned-row indexes only hold committed rows, so lookups go
  through an overlay of the rows the batch has written so far (names, idempotency keys,
  quota counts and allocations stay exact). Lock counters (transaction.bump_counter) and
  verified columns are read the same way, so taking them again is no conflict: the
  database checks every verify against what was committed before the whole transaction.
- A request that reads the committed document of a row an earlier request of the batch
  changed (a service comparing a resource's new state with its old one) would see a state
  the batch already replaced: it is rolled back and runs first in the next transaction, so
  it waits at most one more commit (transaction.committed_read).
- If the database refuses the whole transaction (a unique name taken meanwhile by another
  process), its requests are committed again one by one, so one request's clash fails only
  that request.
"""

from __future__ import annotations

import collections
import heapq
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ovs.db import data as ovs_data
from ovs.db import idl as ovs_idl
from ovsdbapp.backend.ovs_idl import idlutils

from gateway import metrics
from gateway.ovn import naming
from gateway.ovn.index import Entry, OwnedIndex, committed_external_ids
from gateway.ovn.transaction import READS, Deferred, Txn

LOG = logging.getLogger(__name__)
TIMED_OUT = "OVS transaction timed out"


class Member:
    """One request's change function and, once committed, its result or error."""

    def __init__(self, fn: Callable[[Txn], Any]) -> None:
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None
        # Held until finish(): a bare lock is the cheapest thing a thread can wait on.
        self._pending = threading.Lock()
        self._pending.acquire()
        self._finished = False
        self._lock = threading.Lock()
        self.started = self.abandoned = False

    def begin(self) -> bool:
        with self._lock:
            if not self.abandoned:
                self.started = True
            return self.started

    def abandon(self) -> bool:
        """Drop the request unless its change already ran; True if it never will."""
        with self._lock:
            self.abandoned = not self.started
            return self.abandoned

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        if self._finished:
            return
        self.result, self.error, self._finished = result, error, True
        self._pending.release()

    @property
    def finished(self) -> bool:
        return self._finished

    def wait(self, timeout: float) -> bool:
        return self._pending.acquire(timeout=timeout) or self._finished


# -- rolling back one request's writes ------------------------------------------------------
def _copy_mutations(mutations: dict[str, Any]) -> dict[str, Any]:
    return {kind: {column: value.copy() for column, value in columns.items()}
            for kind, columns in mutations.items()}


def _changed_columns(changes: dict[str, Any] | None, mutations: dict[str, Any]) -> set[str]:
    columns = set(changes or ())
    for kind in ("_inserts", "_removes"):
        columns.update(mutations.get(kind, ()))
    return columns


class Savepoint:
    """The pending writes of an IDL transaction, to undo what one request added to them."""

    def __init__(self, txn: ovs_idl.Transaction) -> None:
        self.txn = txn
        self.rows: dict[Any, Any] = dict(txn._txn_rows)
        self.state = {
            row_uuid: (None if row._changes is None else dict(row._changes),
                       _copy_mutations(row._mutations), dict(row._prereqs))
            for row_uuid, row in self.rows.items()}

    def changed_before(self, row_uuid: Any) -> bool:
        """Whether the row's external_ids had been written (or the row inserted) before."""
        state = self.state.get(row_uuid)
        return state is not None and "external_ids" in _changed_columns(state[0], state[1])

    def rollback(self) -> None:
        txn = self.txn
        for row_uuid, row in list(txn._txn_rows.items()):
            if row_uuid in self.rows:
                continue
            rows = row._table.rows
            if row._data is None:  # inserted by the request undone
                if row_uuid in rows:
                    del rows[row_uuid]
            elif row._changes is None and row_uuid not in rows:  # deleted by it
                rows[row_uuid] = row
            row.__dict__.update(_changes={}, _mutations={}, _prereqs={})
        for row_uuid, row in self.rows.items():
            changes, mutations, prereqs = self.state[row_uuid]
            if changes is not None and row_uuid not in row._table.rows:  # deleted by it
                row._table.rows[row_uuid] = row
            row.__dict__.update(_changes=changes, _mutations=mutations, _prereqs=prereqs)
        txn._txn_rows = dict(self.rows)

    def rows_since(self) -> Iterator[Any]:
        """Every row of the transaction's writes, and those the savepoint had that left them
        since (a row inserted before and deleted since is gone from _txn_rows)."""
        yield from self.txn._txn_rows.values()
        for row_uuid, row in self.rows.items():
            if row_uuid not in self.txn._txn_rows:
                yield row

    def changed_columns(self, row: Any) -> set[str]:
        """The columns of a row written (set or mutated) since the savepoint."""
        before = self.state.get(row.uuid)
        old_changes, old_mutations = ({}, {}) if before is None else (before[0] or {},
                                                                      before[1])
        columns = {c for c, v in (row._changes or {}).items() if old_changes.get(c) != v}
        for kind in ("_inserts", "_removes"):
            for column, value in row._mutations.get(kind, {}).items():
                if old_mutations.get(kind, {}).get(column) != value:
                    columns.add(column)
        return columns

    def touched(self) -> Iterator[Any]:
        """Rows whose index entry the request may have changed: inserted, deleted, or with
        external_ids written since the savepoint (bare counter bumps do not count)."""
        for row_uuid, row in self.txn._txn_rows.items():
            before = self.state.get(row_uuid)
            if before is None:
                if row._data is None or row._changes is None or \
                        "external_ids" in row._changes or \
                        _indexed_keys_changed({}, row._mutations):
                    yield row
                continue
            changes, mutations, _ = before
            if (changes is None) != (row._changes is None):
                yield row
            elif row._changes is not None and changes is not None and (
                    changes.get("external_ids") != row._changes.get("external_ids")
                    or _indexed_keys_changed(mutations, row._mutations)):
                yield row
        # A row the request deleted that it had inserted is gone from _txn_rows: it was
        # never in an index, committed or overlaid, unless an earlier request inserted it.
        yield from (row for row_uuid, row in self.rows.items()
                    if row_uuid not in self.txn._txn_rows)


# What the owned-row index reads of external_ids; counters and quotas are not among them.
_INDEXED = frozenset({naming.KIND, naming.ID, naming.TENANT, naming.NAME, naming.PARENT,
                      naming.IDEMPOTENCY, naming.DOC})


def _indexed_keys_changed(before: dict[str, Any], after: dict[str, Any]) -> bool:
    inserted_before = before.get("_inserts", {}).get("external_ids") or {}
    inserted = after.get("_inserts", {}).get("external_ids") or {}
    removed = (after.get("_removes", {}).get("external_ids") or set()) ^ \
        (before.get("_removes", {}).get("external_ids") or set())
    keys = {k for k in inserted.keys() | inserted_before.keys()
            if inserted.get(k) != inserted_before.get(k)} | removed
    return any(k in _INDEXED or k.startswith(naming.KEY) for k in keys)


# -- the indexes as the batch has written them so far -------------------------------------
class _Stamped:
    """What OwnedIndex.add reads of a row: its uuid and external_ids (here: uncommitted)
    as the OVSDB datum a committed row holds."""

    def __init__(self, row_uuid: Any, external_ids: Any = None) -> None:
        self.uuid = row_uuid
        self._data = {"external_ids": external_ids} if external_ids is not None else {}


def _matches(entry: Entry, kind: str, tenant: str | None, parent: str | None) -> bool:
    if entry.kind != kind:
        return False
    if parent is not None:
        return entry.parent == parent
    return tenant is None or entry.tenant == tenant


class BatchIndex(OwnedIndex):
    """An OwnedIndex seen through the rows the transaction wrote so far: the committed
    entries of rows the batch changed are hidden, and their new entries come from an
    index of the batch's own."""

    def __init__(self, base: OwnedIndex, table: Any) -> None:  # not OwnedIndex.__init__
        self.base = base
        self.table = table
        self.documents = base.documents
        self._written: OwnedIndex | None = None
        self.hidden: dict[Any, Entry | None] = {}  # row uuid -> its committed entry

    @property
    def written(self) -> OwnedIndex:
        """The entries of the rows the batch wrote (made on first use: most batches write
        to few of the tables)."""
        if self._written is None:
            self._written = type(self.base)(self.base.documents)
        return self._written

    def absorb(self, row: Any) -> None:
        """Take in what a request wrote to a row of this table."""
        stamped = _Stamped(row.uuid)
        self.written.remove(stamped)
        if row._changes is None or row.uuid not in self.table.rows:  # deleted
            # The IDL already dropped its committed entry (it deletes rows from the table
            # at once), and puts it back if the transaction fails.
            self.hidden.pop(row.uuid, None)
            return
        if row._data is not None and row.uuid not in self.hidden:
            self.hidden[row.uuid] = self._committed(row)
        written = row._changes.get("external_ids")
        if written is not None and not any(
                "external_ids" in row._mutations.get(k, ()) for k in ("_inserts", "_removes")):
            datum = written.copy()  # the index compacts what it is given
        else:
            try:
                ids = row.external_ids  # the committed map with the pending mutations
            except AttributeError:  # an inserted row without external_ids
                return
            datum = ovs_data.Datum.from_python(self.table.columns["external_ids"].type,
                                               dict(ids), lambda value: value)
        stamped._data["external_ids"] = datum
        self.written.add(stamped)

    def _committed(self, row: Any) -> Entry | None:
        ids = committed_external_ids(row) or {}
        if not ids.get(naming.KIND) or not ids.get(naming.ID):
            return None
        entry = self.base.by_id(ids[naming.KIND], ids[naming.ID])
        return entry if entry is not None and entry.row_uuid == row.uuid else None

    def _visible(self, entry: Entry | None) -> Entry | None:
        return None if entry is None or entry.row_uuid in self.hidden else entry

    def _hidden(self) -> Iterator[Entry]:
        return (e for e in self.hidden.values() if e is not None)

    # -- the lookups of OwnedIndex ---------------------------------------------------------
    def by_id(self, kind: str, resource_id: str) -> Entry | None:
        if self._written is None:
            return self.base.by_id(kind, resource_id)
        return self._written.by_id(kind, resource_id) or \
            self._visible(self.base.by_id(kind, resource_id))

    def by_name(self, kind: str, tenant: str, name: str) -> Entry | None:
        if self._written is None:
            return self.base.by_name(kind, tenant, name)
        return self._written.by_name(kind, tenant, name) or \
            self._visible(self.base.by_name(kind, tenant, name))

    def by_idempotency(self, kind: str, tenant: str, key: str) -> Entry | None:
        if self._written is None:
            return self.base.by_idempotency(kind, tenant, key)
        return self._written.by_idempotency(kind, tenant, key) or \
            self._visible(self.base.by_idempotency(kind, tenant, key))

    def count(self, kind: str, tenant: str | None = None, parent: str | None = None) -> int:
        if self._written is None:
            return self.base.count(kind, tenant, parent)
        hidden = sum(1 for e in self._hidden() if _matches(e, kind, tenant, parent))
        return self.base.count(kind, tenant, parent) - hidden + \
            self._written.count(kind, tenant, parent)

    def count_by_key(self, kind: str, name: str, value: str, tenant: str) -> int:
        if self._written is None:
            return self.base.count_by_key(kind, name, value, tenant)
        hidden = sum(1 for e in self._hidden() if e.kind == kind and e.tenant == tenant
                     and (name, value) in e.keys)
        return self.base.count_by_key(kind, name, value, tenant) - hidden + \
            self._written.count_by_key(kind, name, value, tenant)

    def ids_by_key(self, kind: str, name: str, value: str,
                   tenant: str | None = None) -> list[str]:
        if self._written is None:
            return self.base.ids_by_key(kind, name, value, tenant)
        hidden = {e.id for e in self._hidden() if e.kind == kind and (name, value) in e.keys
                  and (tenant is None or e.tenant == tenant)}
        ids = set(self.base.ids_by_key(kind, name, value, tenant)) - hidden
        return sorted(ids | set(self._written.ids_by_key(kind, name, value, tenant)))

    def ids(self, kind: str, tenant: str | None = None, parent: str | None = None,
            after: str | None = None) -> Iterator[str]:
        if self._written is None:
            yield from self.base.ids(kind, tenant, parent, after)
            return
        hidden = {e.id for e in self._hidden() if _matches(e, kind, tenant, parent)}
        extra = list(self._written.ids(kind, tenant, parent, after))
        committed = self.base.ids(kind, tenant, parent, after)
        if not hidden and not extra:
            yield from committed
            return
        last = None
        for resource_id in heapq.merge((i for i in committed if i not in hidden), extra):
            if resource_id != last:
                yield resource_id
                last = resource_id


class Batch:
    """The overlays of one transaction's indexes."""

    def __init__(self, indexes: Mapping[str, OwnedIndex], idl: Any) -> None:
        self.views = {table: BatchIndex(index, idl.tables[table])
                      for table, index in indexes.items()}

    def absorb(self, savepoint: Savepoint) -> None:
        for row in savepoint.touched():
            view = self.views.get(row._table.name)
            if view is not None:
                view.absorb(row)


# -- the committer ----------------------------------------------------------------------------
class _Run:
    """What ovsdbapp's connection thread takes from its queue: 'commit what is pending'."""

    commands: list[Any] = []

    def __init__(self, group: GroupCommit) -> None:
        self.group = group
        self.results: queue.Queue[Any] = queue.Queue(1)

    def do_commit(self) -> None:
        self.group.run()


class GroupCommit:
    def __init__(self, api: Any, max_size: int, max_wait: float, timeout: float) -> None:
        self.api = api  # has .idl, .connection and .indexes()
        self.max_size = max(1, max_size)
        self.max_wait = max(0.0, max_wait)
        self.timeout = timeout
        self._pending: collections.deque[Member] = collections.deque()
        self._lock = threading.Lock()
        self._queued = False

    def submit(self, fn: Callable[[Txn], Any]) -> Member:
        member = Member(fn)
        with self._lock:
            self._pending.append(member)
        self._wake()
        return member

    def _wake(self) -> None:
        """Queue a run unless one is queued already: at most one waits in ovsdbapp's queue
        (of size 1), so putting one never blocks."""
        with self._lock:
            if self._queued:
                return
            self._queued = True
        try:
            self.api.connection.queue_txn(_Run(self))
        except Exception:
            with self._lock:
                self._queued = False
            raise

    def _take(self) -> list[Member]:
        with self._lock:
            self._queued = False
            if self.max_wait and len(self._pending) < self.max_size:
                self._lock.release()
                try:
                    time.sleep(self.max_wait)
                finally:
                    self._lock.acquire()
            members: list[Member] = []
            while self._pending and len(members) < self.max_size:
                member = self._pending.popleft()
                if not member.abandoned:
                    members.append(member)
            more = bool(self._pending)
        if more:
            self._wake()
        return members

    def _defer(self, members: list[Member]) -> None:
        if not members:
            return
        metrics.OVN_BATCH_DEFERRED.inc(len(members))
        with self._lock:
            self._pending.extendleft(reversed(members))
        self._wake()

    def run(self) -> None:
        members = self._take()
        try:
            if members:
                self._commit(members, split=True)
        except BaseException as exc:  # never leave a request waiting
            LOG.exception("group commit failed")
            for member in members:
                if not member.finished:
                    member.finish(error=exc)

    def _commit(self, members: list[Member], split: bool) -> None:
        try:
            self._attempts(members, split)
        finally:
            idl = self.api.idl
            if idl.txn is not None:  # an error of ours left it open: the IDL must go on
                idl.txn.abort()

    def _attempts(self, members: list[Member], split: bool) -> None:
        idl = self.api.idl
        start = time.monotonic()
        while True:
            seqno = idl.change_seqno
            txn = ovs_idl.Transaction(idl)
            batch = Batch(self.api.indexes(), idl)
            done: list[tuple[Member, Any]] = []
            failed: list[tuple[Member, BaseException]] = []
            deferred: list[Member] = []
            for member in members:
                if not member.begin():
                    continue
                savepoint = Savepoint(txn)
                READS.changed = savepoint.changed_before if done else None
                try:
                    result = member.fn(Txn(txn, idl, batch.views))
                except Deferred:
                    savepoint.rollback()
                    deferred.append(member)
                    continue
                except Exception as exc:
                    savepoint.rollback()
                    failed.append((member, exc))
                    continue
                finally:
                    READS.changed = None
                batch.absorb(savepoint)
                done.append((member, result))
            self._defer(deferred)
            members = [m for m in members if m not in deferred]
            if not done:
                txn.abort()
                _answer(done, failed)
                return
            status = txn.commit_block()
            if status == txn.TRY_AGAIN:  # another client changed what was verified
                if time.monotonic() - start > self.timeout:
                    error = RuntimeError(TIMED_OUT)
                    for member in members:
                        member.finish(error=error)
                    return
                idlutils.wait_for_change(idl, self.timeout - (time.monotonic() - start),
                                         seqno)
                continue
            if status in (txn.ERROR, txn.NOT_LOCKED):
                message = "OVSDB Error: " + (txn.get_error() if status == txn.ERROR
                                             else "the IDL lost its database lock")
                if split and len(done) + len(failed) > 1:
                    # One request's clash must not fail the others: each alone, once. The
                    # failed ones too: what they saw of the others was never committed.
                    metrics.OVN_BATCH_SPLITS.inc()
                    LOG.info("committing %d requests one by one: %s", len(members), message)
                    for member in members:
                        self._commit([member], split=False)
                    return
                _answer(done, failed, RuntimeError(message))
                return
            metrics.OVN_BATCH_SIZE.observe(len(done))
            _answer(done, failed)
            return


def _answer(done: list[tuple[Member, Any]], failed: list[tuple[Member, BaseException]],
            error: BaseException | None = None) -> None:
    """Each request its result, or the transaction's error; failed ones their own."""
    for member, result in done:
        member.finish(None if error else result, error)
    for member, problem in failed:
        member.finish(error=problem)

"""The change stream behind GET /v1/events: what changed in the northbound replica, as
events a tenant may read, kept in a bounded in-memory window per process.

Three parts, so that the IDL thread (which also commits every write of the process) only
ever enqueues:

- `RowTap`, registered like python-ovs custom indexes in `table.rows.indexes` of each table
  that stores API documents. The IDL calls add/remove/clear on it as it applies the
  database's updates (and around transactions); it keeps what is needed to tell a create,
  an update (a modify is remove + add), a delete and a transaction's undone delete apart,
  copies the stored document string and queues a record. Nothing is parsed or rendered.
- `EventHub`'s builder thread renders queued records as GET renders the resource (status
  fields included), drops updates that render the same as the last event of the resource,
  and appends events to the window. With a southbound it also re-renders, every
  STATUS_INTERVAL, the kinds whose status comes from there (load balancer backend health,
  gateway chassis), since those change without a northbound write.
- Streams (one request thread each) wait on the window's condition and write what their
  filters let through, or a heartbeat comment.

Event ids are `<process token>.<sequence>`: a Last-Event-ID from another process or from
before a restart is not resumable and gets a `reset`.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ovs.db import idl as ovs_idl

from gateway.auth import Principal
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.ovn import naming
from gateway.ovn.connection import Northbound
from gateway.ovn.index import committed_external_ids
from gateway.services.resources import Resource

LOG = logging.getLogger(__name__)
Doc = dict[str, Any]
TAP_NAME = "ovn-nb-gateway-events"
STATUS_INTERVAL = 2.0  # seconds between re-renders of southbound-derived status
STATUS_KINDS = ("load-balancer", "gateway")
BATCH_DELAY = 0.02  # seconds the builder waits after a wake-up before it drains the queue
MONITORING = ovs_idl.Idl.IDL_S_MONITORING


class TooManyRequests(GatewayError):
    status, title = 429, "Too Many Requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


@dataclass(frozen=True)
class EventKind:
    """A kind the stream reports: its name, scope family, service and document table."""

    kind: str
    collection: str  # "ports", as in /v1/ports and ?kinds=
    family: str
    service: Resource

    @property
    def table(self) -> str:
        return self.service.table


@dataclass(frozen=True)
class Raw:
    """What the tap queues: an operation on an owned document row."""

    op: str  # created | updated | deleted | reset
    row: Any = None
    kind: str = ""
    id: str = ""
    tenant: str = ""
    doc: str = ""  # the stored document, as committed when the change arrived


@dataclass(frozen=True)
class Event:
    seq: int
    type: str  # created | updated | deleted | reset
    kind: str
    id: str
    tenant: str
    family: str
    name: str
    labels: dict[str, str]
    # The whole SSE event, written as is to every stream that shows it; the window keeps
    # only this (the JSON page parses its `data:` again).
    frame: bytes

    def payload(self) -> Doc:
        start = self.frame.index(b"\ndata: ") + len(b"\ndata: ")
        return dict(json.loads(self.frame[start:].strip()))


class RowTap:
    """See the module docstring. Called on the IDL thread only; the lock guards what the
    builder thread reads (the queue, pending deletes)."""

    columns: tuple[str, ...] = ()  # never updated for uncommitted writes (see index.py)
    name = TAP_NAME

    def __init__(self, kinds: frozenset[str], wake: Callable[[], None]) -> None:
        self.kinds = kinds
        self.wake = wake
        self.lock = threading.Lock()
        self.queue: collections.deque[Raw] = collections.deque()
        # row uuid -> (kind, id, tenant, doc) of the committed rows the tap knows
        self.known: dict[Any, tuple[str, str, str, str]] = {}
        # Removed by the server, unless an add of the same row follows in the same update
        # (a modify): final once the IDL's change_seqno moved past the recorded one.
        self.pending: dict[Any, tuple[Any, int]] = {}
        self.txn_removed: set[Any] = set()  # deleted inside a transaction being built
        self.synced = False  # False until the first dump has been applied

    def _owned(self, row: Any) -> tuple[str, str, str, str] | None:
        ids = committed_external_ids(row)
        if not ids or ids.get(naming.KIND) not in self.kinds or naming.DOC not in ids:
            return None
        return ids[naming.KIND], ids.get(naming.ID, ""), ids.get(naming.TENANT, ""), \
            ids[naming.DOC]

    def _live(self, idl: Any) -> bool:
        if idl.state == MONITORING:
            self.synced = True
        return self.synced

    def add(self, row: Any) -> None:
        idl = row._idl
        if idl.txn is not None:
            return  # a row of a transaction being built: the server's update will tell
        with self.lock:
            self._settle(idl)
            if row.uuid in self.txn_removed:  # a transaction's delete undone (or sent)
                self.txn_removed.discard(row.uuid)
                return
            owned = self._owned(row)
            before = self.known.get(row.uuid)
            removed = self.pending.pop(row.uuid, None)
            if owned is None:
                if before is not None:  # its stamps went away: gone for the API
                    del self.known[row.uuid]
                    self._put(Raw("deleted", row, *before))
                return
            self.known[row.uuid] = owned
            if not self._live(idl):
                return  # the first dump: a baseline, not changes
            self._put(Raw("updated" if before or removed else "created", row, *owned))

    def remove(self, row: Any) -> None:
        idl = row._idl
        with self.lock:
            if row.uuid not in self.known:
                return
            if idl.txn is not None:
                self.txn_removed.add(row.uuid)
                return
            self._settle(idl)
            self.pending[row.uuid] = (row, idl.change_seqno)
        self.wake()

    def clear(self) -> None:
        """The IDL dropped its replica (a reconnect without history): what happened while
        it was away is unknown, so every stream is told to list again."""
        with self.lock:
            self.known.clear()
            self.pending.clear()
            self.txn_removed.clear()
            self.synced = False
            self._put(Raw("reset"))

    def _put(self, raw: Raw) -> None:
        self.queue.append(raw)
        self.wake()

    def _settle(self, idl: Any) -> None:
        """Pending removes the IDL has moved past are deletes (with the lock held)."""
        if not self.pending:
            return
        seqno = idl.change_seqno
        for row_uuid, (row, at) in list(self.pending.items()):
            if seqno > at:
                del self.pending[row_uuid]
                before = self.known.pop(row_uuid, None)
                if before is not None:
                    self.queue.append(Raw("deleted", row, *before))

    def settle(self, idl: Any) -> None:
        with self.lock:
            self._settle(idl)

    def drain(self) -> list[Raw]:
        with self.lock:
            out = list(self.queue)
            self.queue.clear()
            return out

    def baseline(self, rows: Sequence[Any]) -> None:
        """Rows already in the replica when the tap was attached."""
        with self.lock:
            for row in rows:
                owned = self._owned(row)
                if owned is not None:
                    self.known.setdefault(row.uuid, owned)
            self.synced = True


@dataclass
class Filter:
    """What one stream (or one page) shows."""

    principal: Principal
    tenant: str | None  # None: every tenant (admins only)
    kinds: frozenset[str] | None  # None: every kind the principal may read
    name: str | None = None
    labels: Sequence[tuple[str, str]] = ()

    def shows(self, event: Event) -> bool:
        if event.type == "reset":
            return True
        if self.tenant is not None and event.tenant != self.tenant:
            return False
        if self.kinds is not None and event.kind not in self.kinds:
            return False
        if not self.principal.can(event.family, "read"):
            return False
        if self.name is not None and event.name != self.name:
            return False
        return all(event.labels.get(k) == v for k, v in self.labels)


class EventHub:
    """One per process: the tap, the builder thread, the window and the stream counts."""

    def __init__(self, nb: Northbound, settings: Settings, kinds: Sequence[EventKind]) -> None:
        self.nb = nb
        self.settings = settings
        self.kinds = {k.kind: k for k in kinds}
        self.by_collection = {k.collection: k.kind for k in kinds}
        self.tables = sorted({k.table for k in kinds})
        self.token = secrets.token_hex(4)  # this process's event ids
        self.cond = threading.Condition()
        self.window: collections.deque[Event] = collections.deque(
            maxlen=max(1, settings.event_window))
        self.seq = 0
        self.last_hash: dict[tuple[str, str], str] = {}
        self.open_total = 0
        self.open_by_tenant: dict[str, int] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.stopping = False
        self._thread: threading.Thread | None = None
        self.tap = RowTap(frozenset(self.kinds), self._wake.set)
        self._tapped_idl: Any = None
        self._attach_lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="events", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Ends every open stream (worker shutdown) and the builder."""
        self._stop.set()
        self._wake.set()
        with self.cond:
            self.stopping = True
            self.cond.notify_all()

    # -- the builder thread ---------------------------------------------------------------
    def _run(self) -> None:
        next_status = time.monotonic() + STATUS_INTERVAL
        while not self._stop.is_set():
            # Until the tap is attached, look often: changes before that are not seen.
            if self._wake.wait(0.05 if self.tap.pending else
                               0.5 if self._tapped_idl else 0.01):
                # Let a burst gather: one wake-up per BATCH_DELAY rather than per change,
                # so that this thread takes the GIL from the IDL thread less often.
                self._stop.wait(BATCH_DELAY)
            self._wake.clear()
            try:
                self.attach()
                idl = self._tapped_idl
                if idl is not None:
                    self.tap.settle(idl)
                for raw in self.tap.drain():
                    self._build(raw)
                if self.settings.sb_db and time.monotonic() >= next_status:
                    next_status = time.monotonic() + STATUS_INTERVAL
                    self._status_sweep()
            except Exception:  # one bad record must not end the stream of the process
                LOG.exception("event builder failed")

    def attach(self) -> None:
        """Register the tap on the IDL's tables (again if a schema change rebuilt them);
        also called by requests, so that a stream opened right after start sees changes."""
        idl = self.nb.idl
        if idl is None or not self.nb.ready:
            return
        with self._attach_lock:
            self._attach(idl)

    def _attach(self, idl: Any) -> None:
        missing = [t for t in self.tables if t in idl.tables
                   and idl.tables[t].rows.indexes.get(TAP_NAME) is not self.tap]
        if not missing:
            return
        first = self._tapped_idl is None
        for table in missing:
            idl.tables[table].rows.indexes[TAP_NAME] = self.tap
        rows = [r for t in missing for stack in list(idl.tables[t].rows.data.values())
                for r in stack[-1:]]
        self.tap.baseline(rows)
        self._tapped_idl = idl
        if not first:  # changes while the tables were rebuilt were not seen
            self._append("reset", "", "", "", "", "", {}, {"reason": "replica rebuilt"})

    def _build(self, raw: Raw) -> None:
        if raw.op == "reset":
            self._append("reset", "", "", "", "", "", {},
                         {"reason": "the gateway resynchronised with the database"})
            return
        ek = self.kinds.get(raw.kind)
        if ek is None:
            return
        try:
            doc = json.loads(raw.doc)
        except ValueError:
            return
        key = (raw.kind, raw.id)
        payload: Doc = {"type": raw.op, "kind": raw.kind, "id": raw.id,
                        "revision": doc.get("revision")}
        if raw.op == "deleted":
            self.last_hash.pop(key, None)
        else:
            try:
                resource = ek.service.render(raw.row, doc)
            except Exception:
                LOG.exception("cannot render %s %s for its event", raw.kind, raw.id)
                return
            payload["resource"] = resource
            digest = _digest(resource)
            if raw.op == "updated" and self.last_hash.get(key) == digest:
                return  # nothing a reader could see changed (a column the API does not show)
            self.last_hash[key] = digest
        self._append(raw.op, raw.kind, raw.id, raw.tenant, ek.family, doc.get("name") or "",
                     doc.get("labels") or {}, payload)

    def _status_sweep(self) -> None:
        """Status the southbound decides changes without a northbound write."""
        idl = self._tapped_idl
        if idl is None or not self.nb.ready:
            return
        for kind in STATUS_KINDS:
            ek = self.kinds.get(kind)
            if ek is None or ek.table not in idl.tables:
                continue
            for entry in list(self.nb.index(ek.table).entries(kind)):
                row = self.nb.row(ek.table, entry.row_uuid)
                if row is None:
                    continue
                ids = committed_external_ids(row) or {}
                if naming.DOC not in ids:
                    continue
                key = (kind, entry.id)
                if key not in self.last_hash:
                    # Never streamed: remember how it looks now, report later changes.
                    try:
                        doc = json.loads(ids[naming.DOC])
                        self.last_hash[key] = _digest(ek.service.render(row, doc))
                    except Exception:
                        LOG.exception("cannot render %s %s", kind, entry.id)
                    continue
                self._build(Raw("updated", row, kind, entry.id, entry.tenant, ids[naming.DOC]))

    def _append(self, type_: str, kind: str, resource_id: str, tenant: str, family: str,
                name: str, labels: dict[str, str], payload: Doc) -> None:
        with self.cond:
            self.seq += 1
            event_id = f"{self.token}.{self.seq}"
            data = json.dumps(payload, sort_keys=True, separators=(",", ":"))
            frame = f"event: {type_}\nid: {event_id}\ndata: {data}\n\n".encode()
            self.window.append(Event(self.seq, type_, kind, resource_id, tenant, family,
                                     name, labels, frame))
            self.cond.notify_all()

    # -- streams --------------------------------------------------------------------------
    def head_id(self) -> str:
        return f"{self.token}.{self.seq}"

    def resume_point(self, last_id: str | None) -> tuple[int, bool]:
        """(sequence to stream after, whether the client must be told to list again)."""
        with self.cond:
            if not last_id:
                return self.seq, False
            token, _, number = last_id.strip().partition(".")
            if token != self.token or not number.isdigit() or int(number) > self.seq:
                return self.seq, True
            after = int(number)
            oldest = self.window[0].seq if self.window else self.seq + 1
            if after < oldest - 1:  # events in between have left the window
                return self.seq, True
            return after, False

    def _since(self, after: int) -> list[Event]:
        if not self.window or self.window[-1].seq <= after:
            return []
        start = max(0, after - self.window[0].seq + 1)
        return [self.window[i] for i in range(start, len(self.window))]

    def reset_frame(self) -> bytes:
        data = json.dumps({"type": "reset", "reason": "the events after Last-Event-ID are not "
                           "in this gateway's window; list the resources again"},
                          sort_keys=True, separators=(",", ":"))
        return f"event: reset\nid: {self.head_id()}\ndata: {data}\n\n".encode()

    def open(self, principal: Principal) -> None:
        """Count a stream in, or refuse it with 429."""
        per_tenant = self.settings.event_streams_per_tenant
        retry = self.settings.retry_after
        with self.cond:
            if self.stopping:
                raise TooManyRequests("the gateway is shutting down", retry)
            if self.open_total >= self.settings.event_streams:
                raise TooManyRequests(
                    f"this gateway process serves at most {self.settings.event_streams} "
                    "event streams (GATEWAY_EVENT_STREAMS)", retry)
            if self.open_by_tenant.get(principal.tenant, 0) >= per_tenant:
                raise TooManyRequests(
                    f"tenant {principal.tenant} has {per_tenant} event streams open on this "
                    "gateway process (GATEWAY_EVENT_STREAMS_PER_TENANT)", retry)
            self.open_total += 1
            self.open_by_tenant[principal.tenant] = \
                self.open_by_tenant.get(principal.tenant, 0) + 1

    def close(self, principal: Principal) -> None:
        with self.cond:
            self.open_total -= 1
            left = self.open_by_tenant.get(principal.tenant, 1) - 1
            if left > 0:
                self.open_by_tenant[principal.tenant] = left
            else:
                self.open_by_tenant.pop(principal.tenant, None)

    def stream(self, flt: Filter, after: int, reset: bool) -> Iterator[bytes]:
        """The SSE body of an opened stream (see open(); the caller closes it); ends on
        shutdown. A client that goes away is noticed when a write fails, at the latest at
        the next heartbeat."""
        heartbeat = max(0.1, float(self.settings.event_heartbeat))
        yield f"retry: 2000\n: stream opened, head {self.head_id()}\n\n".encode()
        if reset:
            yield self.reset_frame()
        while True:
            with self.cond:
                batch = self._since(after)
                if not batch and not self.stopping:
                    self.cond.wait(heartbeat)
                    batch = self._since(after)
                stopping = self.stopping
            if stopping:
                return
            if not batch:
                yield b": heartbeat\n\n"
                continue
            if batch[0].seq > after + 1:  # fell out of the window while writing
                yield self.reset_frame()
            after = batch[-1].seq
            out = b"".join(e.frame for e in batch if flt.shows(e))
            if out:
                yield out

    def page(self, flt: Filter, after: int, reset: bool, limit: int) -> Doc:
        """The events after `after` as one JSON page (for clients that poll)."""
        with self.cond:
            batch = self._since(after)
            head = self.head_id()
        items: list[Doc] = []
        last = after
        for event in batch:
            if len(items) == limit:
                break
            last = event.seq
            if event.type == "reset":
                reset = True  # the replica was rebuilt after the cursor
            elif flt.shows(event):
                items.append({**event.payload(), "event_id": f"{self.token}.{event.seq}",
                              "tenant_id": event.tenant or None})
        return {"items": items, "last_event_id": f"{self.token}.{last}" if batch else head,
                "reset": reset}


def _digest(resource: Doc) -> str:
    return hashlib.sha1(json.dumps(resource, sort_keys=True, default=str).encode(),
                        usedforsecurity=False).hexdigest()

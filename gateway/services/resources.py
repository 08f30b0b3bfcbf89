"""What every resource kind shares: tenant-scoped lookup, create with idempotency, name
uniqueness and quota, merge-patch update and delete with If-Match, all inside one OVN
transaction. A kind supplies only how its document becomes OVN rows."""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

from gateway.auth import Principal
from gateway.config import Settings
from gateway.errors import BadRequest, Conflict, NotFound, PreconditionFailed, Unprocessable
from gateway.ovn import naming, tables
from gateway.ovn.connection import Northbound
from gateway.ovn.index import Entry, OwnedIndex, committed_external_ids
from gateway.ovn.transaction import Txn, committed_read
from gateway.schemas.common import label_key_errors, label_value_errors
from gateway.services import tenants
from gateway.services.lifecycle import Hooks

Doc = dict[str, Any]
META = ("id", "tenant_id", "created_at", "updated_at", "revision")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def body_hash(body: Doc) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def jsonable(value: Any) -> Any:
    """Loaded values (UUIDs and the like) in the plain JSON form documents are stored in."""
    return json.loads(json.dumps(value, default=str))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def stored_doc(row: Any, committed: bool = False) -> Doc:
    """The API document a row stores: as the transaction has it so far, or as committed."""
    if committed:
        committed_read(row)
    ids = committed_external_ids(row) if committed else row.external_ids
    return dict(json.loads((ids or {})[naming.DOC]))


def check_if_match(doc: Doc, if_match: int | None) -> None:
    if if_match is not None and doc["revision"] != if_match:
        raise PreconditionFailed(
            f"revision is {doc['revision']}, If-Match asked for {if_match}")


Columns = dict[str, frozenset[str]]
# Every create takes the tenant lock: the tenant's row is read by every kind.
TENANT_COLUMNS: Columns = {tables.PG: frozenset({"name", "ports", "external_ids"})}


class Resource:
    kind = ""
    quota = ""  # quota counter
    table = ""  # the table of the row that stores the API document
    # The tables and columns this kind reads or writes: the process replicates their union.
    monitors: ClassVar[Columns] = TENANT_COLUMNS
    # What the index keeps parsed of this kind's documents (None: all; empty: nothing),
    # for kinds whose documents other writes read often.
    index_fields: ClassVar[frozenset[str] | None] = frozenset()
    # Kinds whose own writes change rows shared across resources of a tenant take the
    # tenant lock on every write, so concurrent gateways cannot interleave those decisions.
    lock_tenant_on_write = False
    shared = False  # every tenant reads this kind's resources (external networks)
    admin_writes = False  # only admins create, change and delete them

    def __init__(self, nb: Northbound, settings: Settings, hooks: Hooks) -> None:
        self.nb = nb
        self.settings = settings
        self.hooks = hooks

    def background(self) -> list[Any]:
        """Workers the kind runs beside the requests (objects with start() and stop())."""
        return []

    # -- hooks for each kind --------------------------------------------------------------
    def write_new(self, t: Txn, doc: Doc, parent: Any, tenant_row: Any) -> Any:
        raise NotImplementedError

    def apply_update(self, t: Txn, row: Any, old: Doc, new: Doc) -> None:
        raise NotImplementedError

    def remove(self, t: Txn, row: Any, doc: Doc, cascade: bool) -> None:
        raise NotImplementedError

    def derive(self, row: Any, doc: Doc) -> Doc:
        return doc

    def used(self, index: OwnedIndex, tenant: str) -> int:
        """What counts against the tenant's quota for this kind."""
        return index.count(self.kind, tenant=tenant)

    def complete(self, doc: Doc) -> None:
        """Fill defaults that depend on other fields (before an update is compared)."""

    def before_change(self, doc: Doc) -> None:
        """Refuse an update or delete of this resource before anything is validated."""

    def resolve_parent(self, t: Txn, principal: Principal, tenant: str,
                       parent_id: str | None) -> Any:
        return None

    def parent_key(self, doc: Doc) -> str | None:
        return None

    # -- shared plumbing ------------------------------------------------------------------
    def tenant_of(self, principal: Principal, body: Doc, parent_id: str | None) -> str:
        tenant = body.pop("tenant_id", None)
        if tenant is not None and not principal.is_admin:
            raise BadRequest.field("tenant_id", "read-only field")
        return tenant or self.default_tenant(principal, parent_id)

    def default_tenant(self, principal: Principal, parent_id: str | None) -> str:
        return principal.tenant

    def visible(self, principal: Principal, tenant: str) -> bool:
        return principal.is_admin or tenant == principal.tenant or self.shared

    def authorize_write(self, principal: Principal) -> None:
        """Refuse a caller the kind's writes beyond the scope check (admin-only kinds)."""
        if self.admin_writes:
            principal.require_admin()

    def locate(self, t: Txn, principal: Principal, resource_id: str, field: str | None = None,
               kind: str | None = None, table: str | None = None) -> Any:
        """The one tenant-scoped lookup: another tenant's id is exactly as absent as none."""
        kind, table = kind or self.kind, table or self.table
        row = t.get(table, kind, resource_id)
        if row is None or not self.visible(principal, row.external_ids.get(naming.TENANT, "")):
            if field:
                raise NotFound.field(field, kind)
            raise NotFound(f"{kind} {resource_id} not found")
        return row

    def write_ownership(self, row: Any, doc: Doc, idempotency: str | None = None) -> None:
        own(row, self.kind, doc, self.parent_key(doc), idempotency, self.lookup_keys(doc))

    def lookup_keys(self, doc: Doc) -> dict[str, str]:
        """Secondary keys the index should find this resource by."""
        return {}

    def render(self, row: Any, doc: Doc) -> Doc:
        return self.derive(row, doc)

    # -- use cases ------------------------------------------------------------------------
    def get(self, principal: Principal, resource_id: str) -> Doc:
        self.nb.ensure_ready()
        entry = self.nb.index(self.table).by_id(self.kind, resource_id)
        row = self._visible_row(principal, entry)
        if row is None:
            raise NotFound(f"{self.kind} {resource_id} not found")
        return self.render(row, stored_doc(row, committed=True))

    def _visible_row(self, principal: Principal, entry: Entry | None) -> Any:
        if entry is None or not self.visible(principal, entry.tenant):
            return None
        return self.nb.row(self.table, entry.row_uuid)

    def list(self, principal: Principal, query: Doc, parent: str | None = None,
             filters: Doc | None = None) -> Doc:
        self.nb.ensure_ready()
        tenant = query.get("tenant") if principal.is_admin or self.shared \
            else principal.tenant
        if query.get("tenant") and not principal.is_admin:
            raise BadRequest.field("tenant", "only admins may list another tenant")
        labels = parse_label_filters(query.get("label") or [])
        limit = query["limit"]
        after = decode_cursor(query.get("cursor"))
        items: list[Doc] = []
        next_cursor = None
        for doc, row in self._scan(principal, tenant, parent, query.get("name"), after):
            if not matches(doc, labels, filters or {}):
                continue
            if len(items) == limit:
                next_cursor = encode_cursor(items[-1]["id"])
                break
            items.append(self.render(row, doc))
        return {"items": items, "next_cursor": next_cursor}

    def _scan(self, principal: Principal, tenant: str | None, parent: str | None,
              name: str | None, after: str | None) -> Iterator[tuple[Doc, Any]]:
        index = self.nb.index(self.table)
        if name is not None and tenant is not None:
            entries: Any = [index.by_name(self.kind, tenant, name)]
        else:
            ids = index.ids(self.kind, tenant=None if parent else tenant, parent=parent,
                            after=after)
            entries = (index.by_id(self.kind, i) for i in ids)
        for entry in entries:
            if entry is None or (after is not None and entry.id <= after):
                continue
            if tenant is not None and entry.tenant != tenant:
                continue
            if name is not None and entry.name != name:
                continue
            if parent is not None and entry.parent != parent:
                continue
            row = self._visible_row(principal, entry)
            if row is not None:
                yield stored_doc(row, committed=True), row

    def create(self, principal: Principal, body: Doc, idempotency_key: str | None = None,
               parent_id: str | None = None) -> tuple[Doc, bool]:
        """Returns the resource and whether it was created now (False: idempotent replay)."""
        self.authorize_write(principal)
        body = jsonable(body)
        tenant = self.tenant_of(principal, body, parent_id)
        digest = body_hash({"body": body, "parent": parent_id, "tenant": tenant})
        # Chosen once per request: if the database committed but its reply was lost (a RAFT
        # leader dying), the re-run finds its own row instead of reporting a conflict.
        resource_id, stamp = str(uuid.uuid4()), now()

        def change(t: Txn) -> tuple[Doc, bool]:
            mine = t.get(self.table, self.kind, resource_id)
            if mine is not None:
                return self.render(mine, stored_doc(mine)), True
            tenant_row = tenants.lock(t, tenant)
            if idempotency_key:
                earlier = t.by_idempotency(self.table, self.kind, tenant, idempotency_key)
                if earlier is not None:
                    recorded = earlier.external_ids.get(naming.IDEMPOTENCY, "")
                    if recorded.split("\n", 1)[-1] != digest:
                        raise Unprocessable("Idempotency-Key was used with a different body")
                    return self.render(earlier, stored_doc(earlier)), False
            if t.by_name(self.table, self.kind, tenant, body["name"]) is not None:
                raise Conflict.field("name", f"a {self.kind} named {body['name']!r} exists")
            if self.quota:
                tenants.check_quota(tenant_row, self.quota,
                                    self.used(t.indexes[self.table], tenant),
                                    self.settings.quotas)
            parent = self.resolve_parent(t, principal, tenant, parent_id)
            # A fresh copy each run: write_new may fill nested fields (allocated addresses).
            doc = {**copy.deepcopy(body), "id": resource_id, "tenant_id": tenant,
                   "created_at": stamp, "updated_at": stamp, "revision": 1}
            row = self.write_new(t, doc, parent, tenant_row)
            self.write_ownership(row, doc, f"{idempotency_key}\n{digest}"
                                 if idempotency_key else None)
            return self.render(row, doc), True

        return self.nb.transact(change, f"create_{self.kind}")

    def update(self, principal: Principal, resource_id: str, patch: Doc,
               if_match: int | None, validate: Any) -> Doc:
        """validate(merged) checks the result as a create would, returning the clean doc."""
        self.authorize_write(principal)
        written: dict[str, Doc] = {}  # what an earlier run of change() wrote, if it ran

        def change(t: Txn) -> Doc:
            row = self.locate(t, principal, resource_id)
            row.verify("external_ids")  # a concurrent write elsewhere re-runs this check
            old = stored_doc(row)
            if written.get("doc") == old:  # committed, but the reply was lost: done
                return self.render(row, old)
            if self.lock_tenant_on_write:
                tenants.lock(t, old["tenant_id"])
            check_if_match(old, if_match)
            self.before_change(old)
            writable = {k: v for k, v in old.items()
                        if k not in META and k not in self.read_only_fields()}
            clean = jsonable(validate(merge_patch(writable, jsonable(patch))))  # invalid: 400
            new = {**{k: old[k] for k in META},
                   **{k: old[k] for k in self.read_only_fields() if k in old}, **clean}
            self.complete(new)
            if new == old:
                return self.render(row, old)
            if new["name"] != old["name"]:
                if not self.lock_tenant_on_write:
                    tenants.lock(t, old["tenant_id"])
                if t.by_name(self.table, self.kind, old["tenant_id"], new["name"]) is not None:
                    raise Conflict.field("name", f"a {self.kind} named {new['name']!r} exists")
            new["revision"] = old["revision"] + 1
            new["updated_at"] = now()
            # Listeners called from apply_update read this row's document: the new one.
            self.write_ownership(row, new)
            self.apply_update(t, row, old, new)
            self.write_ownership(row, new)  # with what apply_update filled in
            written["doc"] = new
            return self.render(row, new)

        return self.nb.transact(change, f"update_{self.kind}")

    def read_only_fields(self) -> tuple[str, ...]:
        return ()

    def delete(self, principal: Principal, resource_id: str, if_match: int | None,
               cascade: bool = False) -> None:
        self.authorize_write(principal)
        attempted: list[bool] = []

        def change(t: Txn) -> None:
            try:
                row = self.locate(t, principal, resource_id)
            except NotFound:
                if attempted:  # an earlier run committed the delete; its reply was lost
                    return
                raise
            row.verify("external_ids")
            doc = stored_doc(row)
            check_if_match(doc, if_match)
            self.before_change(doc)
            if self.lock_tenant_on_write:
                tenants.lock(t, doc["tenant_id"])
            attempted.append(True)
            self.remove(t, row, doc, cascade)

        self.nb.transact(change, f"delete_{self.kind}")


def own(row: Any, kind: str, doc: Doc, parent: str | None = None,
        idempotency: str | None = None, keys: dict[str, str] | None = None) -> None:
    """Stamp a row with its owner and the API document it stores."""
    ids = {k: v for k, v in (getattr(row, "external_ids", None) or {}).items()
           if not k.startswith(naming.KEY)}
    ids.update(naming.owner_ids(kind, doc["id"], doc["tenant_id"]))
    ids[naming.NAME] = doc["name"]
    ids[naming.REVISION] = str(doc["revision"])
    ids[naming.DOC] = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    if parent:
        ids[naming.PARENT] = parent
    if idempotency:
        ids[naming.IDEMPOTENCY] = idempotency
    ids.update({naming.KEY + k: v for k, v in (keys or {}).items()})
    row.external_ids = ids


def parse_label_filters(raw: list[str]) -> list[tuple[str, str]]:
    """`key=value` selectors, every one of which must match (two values for one key match
    nothing). Keys and values follow the label syntax of bodies."""
    labels = []
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadRequest.field("label", f"expected key=value, got {item!r}")
        problem = label_key_errors(key) or label_value_errors(value)
        if problem:
            raise BadRequest.field("label", problem)
        labels.append((key, value))
    return labels


def matches(doc: Doc, labels: list[tuple[str, str]], filters: Doc) -> bool:
    have = doc.get("labels") or {}
    if any(have.get(k) != v for k, v in labels):
        return False
    return all(doc.get(k) == v for k, v in filters.items() if v is not None)


def encode_cursor(resource_id: str) -> str:
    return resource_id


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        return str(uuid.UUID(cursor))
    except ValueError:
        raise BadRequest.field("cursor", "not a cursor returned by this list") from None

"""The views every resource kind shares, built once: list and create on the collection,
get, merge-patch and delete on the item. A resource module states only what differs."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from flask import g
from flask.views import MethodView
from marshmallow import Schema

from gateway.api.common import (
    Blueprint,
    created,
    idempotency_key,
    if_match,
    principal,
    service,
    with_etag,
)
from gateway.services.resources import Resource

Doc = dict[str, Any]
R = TypeVar("R", bound=Resource)


@dataclass(frozen=True)
class Example:
    """A valid create request of a kind: the OpenAPI document shows it, and the tenant
    isolation tests replay it. Other resources are named by their kinds' sample ids, which
    the tests replace with real ones."""

    sample_id: str  # the id this kind's resource has in other kinds' examples
    body: Doc
    # Body fragments that name another resource of the tenant, by the field that names it.
    references: tuple[tuple[str, Doc], ...] = ()
    # Fragments naming resources every tenant may use (external networks).
    shared_references: tuple[tuple[str, Doc], ...] = ()
    path: str | None = None  # where it is POSTed, when not the collection URL


@dataclass(frozen=True)
class Kind(Generic[R]):
    """A resource kind, declared once: its service, scope family, HTTP shapes and URLs.
    `gateway/kinds.py` registers it; the app, the replica's tables, the scope checks and
    the isolation tests are built from the declaration."""

    service: type[R]
    family: str  # scope family
    blueprint: Blueprint
    schema: type[Schema]
    patch_schema: type[Schema]
    list_schema: type[Schema]
    list_query: type[Schema]
    location: str  # "/v1/networks/{id}"
    path_var: str  # the id variable of item URLs: "network_id"
    example: Example
    noun: str = "resource"  # for the operation summaries: "network", "DNS record", ...
    nouns: str = ""  # plural, when not noun + "s"
    # List query -> (query, filters on documents, parent id).
    split_query: Callable[[Doc], tuple[Doc, Doc, str | None]] = field(
        default=lambda query: (query, {}, None))
    delete_query: type[Schema] | None = None
    # Per-operation notes appended to the generic descriptions ("create", "patch", ...).
    notes: dict[str, str] = field(default_factory=dict)

    @functools.cached_property
    def _loader(self) -> Schema:
        return self.schema()

    def validate(self, doc: Doc) -> Doc:
        """A merged PATCH result, checked exactly as a create would check it."""
        return self._loader.load(doc)  # type: ignore[no-any-return]


def _article(noun: str) -> str:
    return "an" if noun[0].lower() in "aeiou" else "a"


# webargs builds a schema per request when given a class: pass instances (stateless).
def collection(kind: Kind[Any], rule: str = "") -> None:
    """GET (list) and POST (create) on `rule`."""
    blp = kind.blueprint

    class Collection(MethodView):
        @blp.arguments(kind.list_query(), location="query")
        @blp.response(200, kind.list_schema)
        def get(self, query: Doc) -> Any:
            who = principal(kind.family, "read")
            query, filters, parent = kind.split_query(query)
            return service(kind.service).list(who, query, parent=parent, filters=filters)

        @blp.arguments(kind.schema())
        @blp.response(201, kind.schema)
        def post(self, body: Doc) -> Any:
            who = principal(kind.family, "write")
            doc, fresh = service(kind.service).create(who, body, idempotency_key())
            return created(doc, kind.location.format(id=doc["id"]), fresh)

    nouns = kind.nouns or kind.noun + "s"
    Collection.get.__doc__ = (
        f"List the {nouns} the caller may see\n\nOne page of the {nouns} of the caller's "
        "tenant (every tenant's for admins; `tenant=` narrows to one), in a stable order by "
        "id. Filters: `name`, `label=key=value` (repeatable; all must match). Pass "
        "`next_cursor` back as `cursor`; it is null on the last page.")
    Collection.post.__doc__ = (
        f"Create {_article(kind.noun)} {kind.noun}\n\nAnswers 201 with the {kind.noun}, "
        "`Location` and `ETag`. Names are unique per tenant (409), and a create beyond the "
        "tenant's quota is 409. With `Idempotency-Key`, a retry with the same body answers "
        "201 with the original and `Idempotent-Replayed: true`; the same key with another "
        "body is 422. Only admins may send `tenant_id`." + kind.notes.get("create", ""))
    Collection.__name__ = f"{kind.service.__name__}Collection"
    blp.route(rule)(Collection)


def _the_id(path: Doc) -> str:
    (value,) = path.values()  # item rules carry exactly one <uuid:...>
    return str(value)


def item(kind: Kind[Any], rule: str) -> None:
    """GET, PATCH (merge patch, If-Match) and DELETE (If-Match) on `rule`."""
    blp = kind.blueprint

    class Item(MethodView):
        @blp.response(200, kind.schema)
        def get(self, **path: Any) -> Any:
            return with_etag(service(kind.service).get(principal(kind.family, "read"),
                                                       _the_id(path)))

        @blp.arguments(kind.patch_schema(), content_type="application/merge-patch+json")
        @blp.response(200, kind.schema)
        def patch(self, patch: Doc, **path: Any) -> Any:
            who = principal(kind.family, "write")
            return with_etag(service(kind.service).update(who, _the_id(path), patch,
                                                          if_match(), kind.validate))

        def _delete(self, query: Doc, path: Doc) -> None:
            who = principal(kind.family, "write")
            g.audit_resource = _the_id(path)
            service(kind.service).delete(who, _the_id(path), if_match(),
                                         bool(query.get("cascade", False)))

        if kind.delete_query is not None:
            @blp.arguments(kind.delete_query(), location="query")
            @blp.response(204)
            def delete(self, query: Doc, **path: Any) -> None:
                self._delete(query, path)
        else:
            @blp.response(204)
            def delete(self, **path: Any) -> None:
                self._delete({}, path)

    Item.get.__doc__ = (
        f"Get one {kind.noun} (ETag: its revision)\n\nAnswers the {kind.noun} with "
        f"`ETag: \"<revision>\"`. Another tenant's {kind.noun} is 404, like one that does not "
        "exist." + kind.notes.get("get", ""))
    Item.patch.__doc__ = (
        f"Change {_article(kind.noun)} {kind.noun} (JSON merge patch; If-Match honoured)\n\n"
        "An RFC 7396 merge patch of the writable fields: absent fields stay, null removes a "
        "field or restores its default, objects merge, arrays are replaced. The result is "
        "validated like a create; read-only fields are 400. With `If-Match`, a stale "
        "revision is 412 and changes nothing." + kind.notes.get("patch", ""))
    Item.delete.__doc__ = (
        f"Delete {_article(kind.noun)} {kind.noun} (If-Match honoured)\n\nAnswers 204. "
        "With `If-Match`, a stale revision is 412 and nothing is deleted."
        + kind.notes.get("delete", ""))
    Item.__name__ = f"{kind.service.__name__}Item"
    blp.route(rule)(Item)

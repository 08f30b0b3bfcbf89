"""Shapes of GET /v1/events: its query and the JSON page (the stream's events, for polling)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from gateway.schemas.common import TENANT_PATTERN, FullRegexp, ListQuery


class EventsQuery(ListQuery):
    """What GET /v1/events shows."""

    kinds = fields.String(metadata={
        "description": "Comma-separated kinds to show, by collection (`networks`, `ports`, "
                       "`dns-records`, `policies`, `external-networks`, `gateways`, "
                       "`floating-ips`, `load-balancers`) or kind name (`port`); default: "
                       "every kind the token may read. An unknown kind is 400 naming `kinds`.",
        "example": "ports,networks"})
    name = fields.String(metadata={
        "description": "Only events of the resources with this name.", "example": "web"})
    label = fields.List(fields.String(), metadata={
        "description": "`key=value`: only events of resources with this label (for a "
                       "delete: the labels it had); repeat it for several, all must match.",
        "example": ["app=web"]})
    tenant = fields.String(validate=FullRegexp(TENANT_PATTERN, error="must match {regex}"),
                           metadata={"description": "Admins only: only this tenant's events "
                                                    "(without it admins see every tenant's). "
                                                    "From anyone else it is 400.",
                                     "example": "acme"})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000),
                           metadata={"description": "JSON page only: at most this many "
                                                    "events, 1 to 1000 (default 100).",
                                     "example": 100})
    cursor = fields.String(metadata={
        "description": "JSON page only: the `last_event_id` of the previous page (or an "
                       "event's `id:`); the page starts after it. The stream reads "
                       "`Last-Event-ID` instead."})


class EventSchema(Schema):
    """One change of a resource, as the stream's `data:` carries it."""

    type = fields.String(metadata={"description": "`created`, `updated` or `deleted`.",
                                   "example": "updated"})
    kind = fields.String(metadata={"description": "The resource kind (`port`, `network`, "
                                                  "...).", "example": "port"})
    id = fields.String(metadata={"description": "The resource's id."})
    revision = fields.Integer(allow_none=True, metadata={
        "description": "The resource's revision after the change (for `deleted`: its last "
                       "one). A status change OVN makes (a port going up) keeps the "
                       "revision."})
    resource = fields.Dict(metadata={
        "description": "The resource as GET returns it (absent for `deleted`)."})
    event_id = fields.String(metadata={
        "description": "JSON page only: the event's id, as the stream's `id:` line."})
    tenant_id = fields.String(allow_none=True, metadata={
        "description": "JSON page only: the tenant the resource belongs to."})


class EventPageSchema(Schema):
    """The events after `cursor` that the filters show, oldest first (Accept other than
    text/event-stream)."""

    items = fields.List(fields.Nested(EventSchema), metadata={
        "description": "The events, oldest first."})
    last_event_id = fields.String(metadata={
        "description": "Pass it as `cursor` next time: the page covered the events up to "
                       "it."})
    reset = fields.Boolean(metadata={
        "description": "true: the events after `cursor` are no longer in this gateway "
                       "process's window (or the cursor is another process's): list the "
                       "resources again, then continue from `last_event_id`."})

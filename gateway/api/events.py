"""GET /v1/events: the change stream (Server-Sent Events), or its window as a JSON page."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, g, request
from flask.views import MethodView

from gateway.api.common import Blueprint, authenticate
from gateway.errors import BadRequest, Forbidden
from gateway.schemas.events import EventPageSchema, EventsQuery
from gateway.services.events import EventHub, Filter
from gateway.services.resources import parse_label_filters

blp = Blueprint("events", __name__, url_prefix="/v1/events",
                description="Changes of the caller's resources as they happen "
                            "(Server-Sent Events)")

STREAM_DOC = (
    "With `Accept: text/event-stream`: one event per change, until the client goes away. "
    "Each event is `event: created|updated|deleted`, `id: <event id>` and `data: {\"type\", "
    "\"kind\", \"id\", \"revision\", \"resource\"}` (`resource` as GET returns it, absent "
    "for deleted). `event: reset` says the events after `Last-Event-ID` are gone: list "
    "again. Lines starting with `:` are heartbeats.")


@blp.before_request
def _authenticate() -> None:
    authenticate()  # before the query is parsed: no token is 401 whatever the query


def _hub() -> EventHub:
    return current_app.extensions["gateway"].events  # type: ignore[no-any-return]


class _Stream:
    """The response body of a stream: releases its slot exactly once, also when the
    server closes it before the first write."""

    def __init__(self, hub: EventHub, body: Any, principal: Any) -> None:
        self.hub, self.body, self.principal = hub, body, principal
        self._open = True

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> bytes:
        return next(self.body)  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._open:
            self._open = False
            self.body.close()
            self.hub.close(self.principal)


class Events(MethodView):
    @blp.doc(responses={"200": {"description": (
        "With `Accept: text/event-stream`, the stream; with any other Accept, a JSON page "
        "of the window's events after `cursor`."), "content": {
        "text/event-stream": {"schema": {"type": "string", "description": STREAM_DOC}},
        "application/json": {"schema": {"$ref": "#/components/schemas/EventPage"}}}}})
    @blp.arguments(EventsQuery(), location="query")
    @blp.response(200, EventPageSchema)
    def get(self, query: dict[str, Any]) -> Any:
        hub = _hub()
        hub.attach()
        who = g.get("principal") or authenticate()
        families = {k.family for k in hub.kinds.values()}
        if not any(who.can(f, "read") for f in families):
            raise Forbidden("token lacks a read scope")
        tenant = query.get("tenant")
        if tenant and not who.is_admin:
            raise BadRequest.field("tenant", "only admins may list another tenant")
        if not who.is_admin:
            tenant = who.tenant
        kinds = None
        if query.get("kinds") is not None:
            kinds = set()
            for name in (n.strip() for n in query["kinds"].split(",")):
                kind = hub.by_collection.get(name) or (name if name in hub.kinds else None)
                if kind is None:
                    known = ", ".join(sorted(hub.by_collection))
                    raise BadRequest.field("kinds", f"unknown kind {name!r}; one of {known}")
                who.require(hub.kinds[kind].family, "read")
                kinds.add(kind)
        flt = Filter(who, tenant, frozenset(kinds) if kinds is not None else None,
                     query.get("name"), parse_label_filters(query.get("label") or []))
        if request.method != "GET" or \
                "text/event-stream" not in request.headers.get("Accept", ""):
            after, reset = hub.resume_point(query.get("cursor"))
            return hub.page(flt, after, reset, query["limit"])
        after, reset = hub.resume_point(request.headers.get("Last-Event-ID"))
        hub.open(who)
        body = _Stream(hub, hub.stream(flt, after, reset), who)
        return Response(body, status=200, mimetype="text/event-stream", headers={
            "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}, direct_passthrough=True)


Events.get.__doc__ = (
    "Changes of the caller's resources: a Server-Sent Events stream\n\n"
    "Needs a read scope; shows the kinds whose family the token may read, of the caller's "
    "tenant (admins: every tenant, or `tenant=`). Events come from this gateway process's "
    "replica of the northbound database, so writes made through other gateway processes "
    "and status changes OVN makes (a port going up) appear. With `Accept: "
    "text/event-stream` the answer is the stream: `Last-Event-ID` resumes after that event "
    "while it is in the process's window (`GATEWAY_EVENT_WINDOW` events), otherwise the "
    "stream starts with `event: reset`; heartbeat comments keep idle connections open. Past "
    "`GATEWAY_EVENT_STREAMS_PER_TENANT` open streams of a tenant, or `GATEWAY_EVENT_STREAMS` "
    "of the process, the answer is 429 (a problem document) with `Retry-After`. Without that "
    "Accept the answer is a JSON page of the window's events after `cursor`, for polling. "
    "See docs/events.md.")
blp.route("")(Events)  # after the docstring: flask-smorest reads it when the route is made

"""The application factory."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, g, request
from flask_smorest import Api

from gateway import errors, kinds, metrics
from gateway.api import events as events_api
from gateway.api import ops
from gateway.api.common import authenticate, reject_unknown_query
from gateway.auth import TokenVerifier
from gateway.config import Settings, from_env
from gateway.ovn.connection import Northbound
from gateway.ovn.index import Replica
from gateway.services.catalog import Services, replica
from gateway.services.events import EventHub, EventKind

# Scope family of each blueprint; the view checks it again with the action it performs.
# None: admin-only endpoints.
FAMILY = kinds.families()
ADMIN_WRITES = kinds.admin_writes()
READ_ONLY = kinds.read_only()
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Metric labels come from bounded sets: anyone can send a made-up method, without a token.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
audit_log = logging.getLogger("gateway.audit")
DESCRIPTION = (
    "Tenant networking on OVN over HTTP: networks with ports, DHCP and DNS, network "
    "policies, gateways (routers with SNAT, floating IPs and static routes) on external "
    "networks, and per-tenant quotas. Every request acts for the tenant of its bearer token "
    "(a JWT with scopes `read`/`write`, per family `<family>:read`/`<family>:write`, or "
    "`admin`), and every write is one OVN northbound transaction.\n\n"
    "The API guide is `docs/README.md` in the gateway's repository: concepts (tenants, tokens "
    "and scopes, ETag/If-Match, Idempotency-Key, merge patch, pagination and filters), "
    "problem responses and status codes, each resource with worked examples, and how the "
    "API maps to the OVN northbound database.")


@dataclass
class Gateway:
    settings: Settings
    nb: Northbound
    verifier: TokenVerifier
    services: Services
    events: EventHub | None = None
    api: Any = None
    document: Any = None

    def start(self) -> None:
        """The northbound connection and the kinds' workers (idempotent: after fork, at the
        first request, or at once)."""
        self.nb.start()
        self.services.start()
        if self.events is not None:
            self.events.start()

    def stop(self) -> None:
        if self.events is not None:
            self.events.stop()  # ends open streams first
        self.services.stop()
        self.nb.stop()


def create_app(settings: Settings | None = None, nb: Northbound | None = None,
               start: bool = True) -> Flask:
    settings = settings or from_env()
    settings.validate()
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=1 << 20,
        API_TITLE="ovn-nb-gateway",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        API_SPEC_OPTIONS={
            "info": {"description": DESCRIPTION},
            "components": {"securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
            "security": [{"bearer": []}],
        },
    )
    nb = nb or Northbound(settings, monitored())
    gw = Gateway(settings, nb, TokenVerifier(settings),
                 Services(nb, settings, [kind.service for kind in kinds.KINDS]))
    gw.events = EventHub(nb, settings, [
        EventKind(kind.service.kind, kind.location.split("/")[2], kind.family,
                  gw.services.of(kind.service)) for kind in kinds.KINDS])
    app.extensions["gateway"] = gw
    app.extensions["gateway.kinds"] = tuple(kind.service for kind in kinds.KINDS)  # audit
    api = Api(app)
    for blp in kinds.blueprints():
        api.register_blueprint(blp)
    api.register_blueprint(events_api.blp)
    app.register_blueprint(ops.blp)
    errors.register(app)
    _install_hooks(app, settings)
    gw.api = api
    if start:
        gw.start()
    return app


def monitored() -> Replica:
    """What a gateway process replicates: the union of what its kinds read and write."""
    return replica(kind.service for kind in kinds.KINDS)


def _install_hooks(app: Flask, settings: Settings) -> None:
    @app.before_request
    def _begin() -> None:
        g.started = time.perf_counter()
        app.extensions["gateway"].start()  # no-op once started
        rid = request.headers.get("X-Request-ID", "")
        g.request_id = rid if _REQUEST_ID.fullmatch(rid) else uuid.uuid4().hex
        if request.blueprint in FAMILY and request.method != "OPTIONS":
            who = authenticate()
            family = FAMILY[request.blueprint]
            reading = request.method in ("GET", "HEAD") or request.blueprint in READ_ONLY
            if family is None or (request.blueprint in ADMIN_WRITES and not reading):
                who.require_admin()
            else:
                who.require(family, "read" if reading else "write")
            reject_unknown_query()

    @app.after_request
    def _finish(resp: Response) -> Response:
        resp.headers["X-Request-ID"] = g.get("request_id") or uuid.uuid4().hex
        origin = request.headers.get("Origin")
        if origin and origin in settings.cors_origins:
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Access-Control-Expose-Headers"] = "ETag, Location, X-Request-ID"
            resp.headers["Vary"] = "Origin"
            if request.method == "OPTIONS":
                resp.headers["Access-Control-Allow-Methods"] = "GET, POST, PATCH, DELETE"
                resp.headers["Access-Control-Allow-Headers"] = (
                    "Authorization, Content-Type, If-Match, Idempotency-Key, X-Request-ID")
        route = request.url_rule.rule if request.url_rule else "unmatched"
        status = str(resp.status_code)
        method = request.method if request.method in _METHODS else "other"
        metrics.REQUESTS.labels(method, route, status).inc()
        metrics.REQUEST_SECONDS.labels(method, route, status).observe(
            time.perf_counter() - g.get("started", time.perf_counter()))
        if request.method in ("POST", "PATCH", "PUT", "DELETE") and \
                request.path.startswith("/v1") and request.blueprint not in READ_ONLY:
            _audit(resp)
        return resp


def _audit(resp: Response) -> None:
    who = g.get("principal")
    audit_log.info(json.dumps({
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "request_id": g.get("request_id"),
        "sub": who.sub if who else None,
        "tenant": who.tenant if who else None,
        "method": request.method,
        "path": request.path,
        "resource_id": g.get("audit_resource"),
        # "unknown": the write was sent, but whether it landed is not known (a 503).
        "outcome": "unknown" if g.get("outcome_unknown") else resp.status_code,
        "status": resp.status_code,
    }))

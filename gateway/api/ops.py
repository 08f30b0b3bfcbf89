"""Operations endpoints (no token): health, readiness, metrics, the API document and docs."""

from __future__ import annotations

import socket
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from gateway import metrics

blp = Blueprint("ops", __name__)

_DOCS = """<!doctype html>
<html><head><meta charset="utf-8"><title>ovn-nb-gateway API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui", deepLinking: true});</script>
</body></html>"""


@blp.get("/healthz")
def healthz() -> Any:
    return jsonify(status="ok")


PROBE_SECONDS = 1.0  # how long /readyz waits for the database's answer to an echo


@blp.get("/readyz")
def readyz() -> Any:
    nb = current_app.extensions["gateway"].nb
    settings = current_app.extensions["gateway"].settings
    ready = nb.ready
    body = {"northbound": "connected" if ready else "unreachable",
            "schema_version": nb.schema_version, "json_parser": nb.json_parser}
    if ready and not nb.answers(min(PROBE_SECONDS, settings.ovn_timeout)):
        ready, body["northbound"] = False, "unresponsive"  # connected, but it does not answer
    if nb.schema_error:
        body["northbound"] = "unsupported schema: " + nb.schema_error
    if settings.sb_db:
        # Reported, not required: the gateway writes only the northbound database.
        body["southbound"] = "reachable" if reachable(settings.sb_db) else "unreachable"
    status = 200 if ready else 503
    resp = jsonify(status="ready" if ready else "not ready", **body)
    resp.status_code = status
    if status == 503:
        resp.headers["Retry-After"] = str(current_app.extensions["gateway"].settings.retry_after)
    return resp


def reachable(remotes: str, timeout: float = 0.5) -> bool:
    """Whether any of the OVSDB remotes accepts a connection (bounded wait)."""
    for remote in remotes.split(","):
        proto, _, rest = remote.strip().partition(":")
        try:
            if proto == "unix":
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(timeout)
                    sock.connect(rest)
            elif proto in ("tcp", "ssl"):
                host, _, port = rest.rpartition(":")
                socket.create_connection((host.strip("[]"), int(port)), timeout).close()
            else:
                continue
            return True
        except (OSError, ValueError):
            continue
    return False


@blp.get("/metrics")
def prometheus() -> Response:
    payload, content_type = metrics.render()
    return Response(payload, content_type=content_type)


@blp.get("/docs")
def docs() -> Response:
    return Response(_DOCS, mimetype="text/html")


@blp.get("/docs/static/<path:name>")
def docs_static(name: str) -> Response:
    return send_from_directory(str(swagger_ui_path), name)


@blp.get("/openapi.json")
def openapi_json() -> Any:
    gw = current_app.extensions["gateway"]
    if getattr(gw, "document", None) is None:
        from gateway.openapi import document
        gw.document = document(gw.api)
    return jsonify(gw.document)

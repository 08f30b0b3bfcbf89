"""Domain errors and their RFC 9457 problem responses, mapped in one place."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, g, json, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

PROBLEM = "application/problem+json"
# Problem types beyond the status code (RFC 9457 3.1.1); every other problem is about:blank.
OUTCOME_UNKNOWN = "urn:ovn-nb-gateway:problem:outcome-unknown"


class GatewayError(Exception):
    status = 500
    title = "Internal Server Error"
    type = "about:blank"

    def __init__(self, detail: str, errors: dict[str, list[str]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


class BadRequest(GatewayError):
    status, title = 400, "Bad Request"

    @classmethod
    def field(cls, path: str, message: str) -> BadRequest:
        return cls(f"{path}: {message}", {path: [message]})


class Unauthorized(GatewayError):
    status, title = 401, "Unauthorized"

    def __init__(self, detail: str, credentials: bool = True) -> None:
        # RFC 6750 3.1: no error code when the request carried no bearer token at all.
        super().__init__(detail, headers={
            "WWW-Authenticate": 'Bearer error="invalid_token"' if credentials else "Bearer"})


class Forbidden(GatewayError):
    status, title = 403, "Forbidden"


class NotFound(GatewayError):
    status, title = 404, "Not Found"

    @classmethod
    def field(cls, path: str, what: str) -> NotFound:
        return cls(f"{path}: {what} not found", {path: [f"{what} not found"]})


class Conflict(GatewayError):
    status, title = 409, "Conflict"

    @classmethod
    def field(cls, path: str, message: str) -> Conflict:
        return cls(f"{path}: {message}", {path: [message]})


class PreconditionFailed(GatewayError):
    status, title = 412, "Precondition Failed"


class UnsupportedMediaType(GatewayError):
    status, title = 415, "Unsupported Media Type"


class Unprocessable(GatewayError):
    status, title = 422, "Unprocessable Content"


class Unavailable(GatewayError):
    status, title = 503, "Service Unavailable"

    def __init__(self, detail: str, retry_after: int = 2) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class OutcomeUnknown(Unavailable):
    """A write was sent but its result never came back: it may or may not have landed."""

    title, type = "Outcome Unknown", OUTCOME_UNKNOWN


class RetryTransaction(Exception):
    """Raised inside a transaction when the replica was behind; the wrapper retries."""


def problem(status: int, title: str, detail: str | None = None,
            errors: dict[str, list[str]] | None = None,
            headers: dict[str, str] | None = None, type_: str = "about:blank") -> Response:
    body: dict[str, Any] = {
        "type": type_,
        "title": title,
        "status": status,
        "detail": detail or title,
        "instance": request.path,
        "request_id": g.get("request_id"),
        "errors": errors or {},
    }
    resp = Response(json.dumps(body), status=status, mimetype=PROBLEM)
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested error dicts -> {"dhcp.routes.0.nexthop": [...]}."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema":
                path = prefix or "body"
            for sub, msgs in _flatten(value, path).items():
                out.setdefault(sub, []).extend(msgs)
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out[prefix or "body"] = list(messages)
    elif isinstance(messages, list):
        for item in messages:
            for sub, msgs in _flatten(item, prefix).items():
                out.setdefault(sub, []).extend(msgs)
    else:
        out[prefix or "body"] = [str(messages)]
    return out


def validation_problem(messages: Any) -> Response:
    # webargs nests by location ({"json": {...}, "query": {...}}); users want field paths.
    if isinstance(messages, dict) and set(messages) <= {"json", "query", "headers", "files",
                                                        "form", "path", "view_args"}:
        merged: dict[str, list[str]] = {}
        for location, msgs in messages.items():
            prefix = "" if location == "json" else location
            for path, m in _flatten(msgs, prefix).items():
                merged.setdefault(path, []).extend(m)
        errors = merged
    else:
        errors = _flatten(messages)
    detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in sorted(errors.items()))
    return problem(400, "Bad Request", detail or "invalid request", errors)


def register(app: Flask) -> None:
    @app.errorhandler(GatewayError)
    def _domain(err: GatewayError) -> Response:
        if isinstance(err, OutcomeUnknown):
            g.outcome_unknown = True  # for the audit line
        return problem(err.status, err.title, err.detail, err.errors, err.headers, err.type)

    @app.errorhandler(ValidationError)
    def _invalid(err: ValidationError) -> Response:
        return validation_problem(err.messages)

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException) -> Response:
        data = getattr(err, "data", None)
        if err.code in (400, 422) and data and "messages" in data:
            return validation_problem(data["messages"])
        headers = {}
        if err.code == 405 and err.get_response().headers.get("Allow"):
            headers["Allow"] = err.get_response().headers["Allow"]
        detail = err.description
        if err.code == 413:
            detail = "request body exceeds 1 MiB"
        return problem(err.code or 500, err.name, detail, None, headers)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        app.logger.exception("unhandled error: %s", type(err).__name__)
        return problem(500, "Internal Server Error", "unexpected error; see the gateway log")

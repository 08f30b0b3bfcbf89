"""HTTP plumbing shared by every resource view: auth, headers, the blueprint type."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

import marshmallow
from flask import Request, current_app, g, request
from flask_smorest import Blueprint as _Blueprint
from webargs import core
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import RequestEntityTooLarge

from gateway.auth import Principal
from gateway.errors import BadRequest, Unauthorized, UnsupportedMediaType

MAX_DEPTH = 32  # of arrays and objects in a body; no API document comes near it
# The media types a body may have, by method (PATCH: a JSON merge patch, RFC 7396).
BODY_TYPES = {"PATCH": ("application/merge-patch+json", "application/json")}
POST_TYPES = ("application/json",)


class _Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400  # the contract answers validation errors with 400
    # Unknown query parameters are errors, like unknown body fields.
    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
                                   "query": marshmallow.RAISE,
                                   "querystring": marshmallow.RAISE}

    def _raw_load_json(self, req: Request) -> Any:
        return json_body(req)


class Blueprint(_Blueprint):
    ARGUMENTS_PARSER = _Parser()


S = TypeVar("S")
_IF_MATCH = re.compile(r'^\s*(W/)?"?(\d{1,18})"?\s*$')
_IDEMPOTENCY = re.compile(r"^[\x21-\x7e]{1,255}$")


def principal(family: str, action: str) -> Principal:
    """The caller, checked for the scope; every /v1 view starts here."""
    who = g.get("principal") or authenticate()
    who.require(family, action)
    return who


def authenticate() -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token", credentials=False)
    who = current_app.extensions["gateway"].verifier.verify(token.strip())
    g.principal = who
    return who


class WeakRevision(int):
    """A weak `If-Match: W/"3"`. If-Match compares strongly (RFC 9110 13.1.1), so it equals
    no revision: the precondition fails (412) wherever the current revision is checked."""

    def __eq__(self, other: object) -> bool:
        return False

    def __ne__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__

    def __str__(self) -> str:
        return f'W/"{int(self)}" (a weak tag, which If-Match never matches)'

    def __format__(self, spec: str) -> str:
        return str(self)


def if_match() -> int | None:
    """The revision named by If-Match; None for none or `*` (any current revision)."""
    raw = request.headers.get("If-Match")
    if raw is None or raw.strip() == "*":
        return None
    match = _IF_MATCH.fullmatch(raw)
    if not match:
        raise BadRequest.field("If-Match", 'expected a revision as returned in ETag, e.g. "3"')
    revision = int(match.group(2))
    return WeakRevision(revision) if match.group(1) else revision


def idempotency_key() -> str | None:
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        return None
    if not _IDEMPOTENCY.fullmatch(raw):
        raise BadRequest.field("Idempotency-Key", "1 to 255 printable ASCII characters")
    return raw


def _takes_query() -> bool:
    """Whether the view of this request declares query parameters (flask-smorest records
    each `arguments` on the view function)."""
    cache: dict[tuple[str, str], bool] = current_app.extensions.setdefault(
        "gateway.query_views", {})
    key = (request.endpoint or "", request.method)
    if key not in cache:
        view = current_app.view_functions.get(request.endpoint or "")
        cls = getattr(view, "view_class", None)
        method = "get" if request.method == "HEAD" else request.method.lower()
        func = getattr(cls, method, None) if cls is not None else view
        params = getattr(func, "_apidoc", {}).get("arguments", {}).get("parameters", [])
        cache[key] = any(p.get("in") in ("query", "querystring") for p in params)
    return cache[key]


def reject_unknown_query() -> None:
    """Query parameters on an endpoint that takes none are 400, like unknown body fields
    (endpoints with a query schema refuse unknown ones when parsing it)."""
    if request.args and not _takes_query():
        errors = {f"query.{name}": ["Unknown field."] for name in sorted(request.args)}
        raise BadRequest("; ".join(f"{k}: Unknown field." for k in errors), errors)


def json_body(req: Request) -> Any:
    """The request's JSON body, or webargs' `missing` without one. The one place bodies
    are read: wrong media type 415, over the size limit 413 (chunked bodies too), and
    anything that is not plain, bounded JSON 400 naming `body`."""
    accepted = BODY_TYPES.get(req.method, POST_TYPES)
    if req.mimetype not in accepted:
        if not req.mimetype and not (req.content_length or req.headers.get("Transfer-Encoding")):
            return core.missing
        header = "Accept-Patch" if req.method == "PATCH" else "Accept-Post"
        message = f"expected {' or '.join(accepted)}, got {req.mimetype or 'none'}"
        raise UnsupportedMediaType(f"Content-Type: {message}", {"Content-Type": [message]},
                                   headers={header: ", ".join(accepted)})
    raw = req.get_data(cache=True)
    limit = req.max_content_length
    if limit is not None and req.content_length is None and len(raw) >= limit:
        # A chunked body is cut at the limit when read: whatever follows makes it too large.
        rest = req.environ.get("wsgi.input")
        if rest is not None and rest.read(1):
            raise RequestEntityTooLarge()
    if not raw:
        return core.missing
    return parse_json(raw)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    def invalid(why: str = "") -> BadRequest:
        return BadRequest.field("body", "Invalid JSON body." + (f" ({why})" if why else ""))

    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:
        raise invalid(f"nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError:
        raise invalid() from None
    except UnicodeDecodeError:
        raise invalid("not UTF-8") from None
    except ValueError as exc:  # an integer too long to convert, NaN, Infinity
        raise invalid(str(exc).split(":")[0]) from None
    # Checked without recursion, so that nothing after it (schemas, merge patch, error
    # paths) recurses deeper than MAX_DEPTH.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise invalid(f"nested deeper than {MAX_DEPTH} levels")
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict)
                                                  else item))
    return value


def created(doc: dict[str, Any], location: str, fresh: bool) -> tuple[Any, int, dict[str, str]]:
    g.audit_resource = doc.get("id")
    return doc, 201, {"Location": location, "ETag": f'"{doc["revision"]}"',
                      **({} if fresh else {"Idempotent-Replayed": "true"})}


def with_etag(doc: dict[str, Any]) -> tuple[Any, int, dict[str, str]]:
    g.audit_resource = doc.get("id")
    return doc, 200, {"ETag": f'"{doc["revision"]}"'}


def service(cls: type[S]) -> S:
    """The app's service of a kind, typed: `service(NetworkService).get(...)`."""
    return current_app.extensions["gateway"].services.of(cls)  # type: ignore[no-any-return]

"""HTTP plumbing shared by every resource view: auth, headers, the blueprint type."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from flask import current_app, g, request
from flask_smorest import Blueprint as _Blueprint
from webargs.flaskparser import FlaskParser

from gateway.auth import Principal
from gateway.errors import BadRequest, Unauthorized


class _Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400  # the contract answers validation errors with 400


class Blueprint(_Blueprint):
    ARGUMENTS_PARSER = _Parser()


S = TypeVar("S")
_IF_MATCH = re.compile(r'^\s*(?:W/)?"?(\d{1,18})"?\s*$')
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
        raise Unauthorized("missing bearer token")
    who = current_app.extensions["gateway"].verifier.verify(token.strip())
    g.principal = who
    return who


def if_match() -> int | None:
    raw = request.headers.get("If-Match")
    if raw is None or raw.strip() == "*":
        return None
    match = _IF_MATCH.fullmatch(raw)
    if not match:
        raise BadRequest.field("If-Match", 'expected a revision as returned in ETag, e.g. "3"')
    return int(match.group(1))


def idempotency_key() -> str | None:
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        return None
    if not _IDEMPOTENCY.fullmatch(raw):
        raise BadRequest.field("Idempotency-Key", "1 to 255 printable ASCII characters")
    return raw


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

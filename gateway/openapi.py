"""The served and checked-in OpenAPI document: generated from the schemas, then completed
with what the contract adds around them (problem responses, headers)."""

from __future__ import annotations

import copy
from typing import Any

import yaml

PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string", "nullable": True},
        "errors": {"type": "object",
                   "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    },
}
_REASONS = {
    "400": "Invalid request; `errors` names each offending field",
    "401": "Missing or invalid bearer token",
    "403": "The token lacks the scope",
    "404": "No such resource for this tenant",
    "405": "Method not allowed",
    "409": "Conflict: duplicate name, address in use, quota, dependent resources",
    "412": "If-Match does not match the current revision",
    "413": "Body larger than 1 MiB",
    "422": "Idempotency-Key reused with a different body",
    "503": "The OVN northbound database is unreachable; retry after Retry-After seconds",
}
_BY_METHOD = {
    "get": ("400", "401", "403", "404", "503"),
    "post": ("400", "401", "403", "404", "409", "413", "422", "503"),
    "patch": ("400", "401", "403", "404", "409", "412", "413", "503"),
    "delete": ("400", "401", "403", "404", "409", "412", "503"),
}
_HEADERS = {
    "get": [("If-None-Match", False)],
    "post": [("Idempotency-Key", False)],
    "patch": [("If-Match", False)],
    "delete": [("If-Match", False)],
}
_COMMON_PARAMS = [{"name": "X-Request-ID", "in": "header", "required": False,
                   "description": "echoed in the response; a value outside "
                                  "[A-Za-z0-9._:-]{1,128} is replaced by a generated id",
                   "schema": {"type": "string"}}]


def _problem(reason: str) -> dict[str, Any]:
    return {"description": reason, "content": {"application/problem+json": {
        "schema": {"$ref": "#/components/schemas/Problem"}}}}


def document(api: Any) -> dict[str, Any]:
    spec = copy.deepcopy(api.spec.to_dict())
    spec.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    spec["components"].pop("responses", None)
    for path, item in spec.get("paths", {}).items():
        for method, op in item.items():
            if method not in _BY_METHOD:
                continue
            responses = {code: r for code, r in op.get("responses", {}).items()
                         if code.startswith("2")}
            for code in _BY_METHOD[method]:
                if method == "get" and "{" not in path and code == "404":
                    continue
                if code == "412" and path.startswith("/v1/tenants"):
                    continue
                responses[code] = _problem(_REASONS[code])
            if "default" in op.get("responses", {}):
                responses.pop("default", None)
            revisioned = not path.startswith("/v1/tenants")
            item = revisioned and path.endswith("}") and method in ("get", "patch")
            for ok in ("200", "201"):
                if ok in responses and (item or ok == "201"):
                    responses[ok].setdefault("headers", {})["ETag"] = {
                        "schema": {"type": "string"}, "description": '"<revision>"'}
            if "201" in responses:
                responses["201"].setdefault("headers", {}).update({
                    "Location": {"schema": {"type": "string"},
                                 "description": "path of the new resource"},
                    "Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]},
                                            "description": "present when an Idempotency-Key "
                                                           "retry returned the original"}})
            op["responses"] = responses
            params = op.setdefault("parameters", [])
            params.extend(copy.deepcopy(_COMMON_PARAMS))
            for name, required in _HEADERS.get(method, ()):
                if name == "If-None-Match" or (name == "If-Match" and not revisioned):
                    continue
                params.append({"name": name, "in": "header", "required": required,
                               "schema": {"type": "string", "maxLength": 255}})
    return spec


def to_yaml(spec: dict[str, Any]) -> str:
    return yaml.safe_dump(spec, sort_keys=True, allow_unicode=True)

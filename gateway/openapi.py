"""The served and checked-in OpenAPI document: generated from the schemas, then completed
with what the contract adds around them (problem responses, headers)."""

from __future__ import annotations

import copy
import inspect
import json
from typing import Any

import yaml

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "An RFC 9457 problem document (application/problem+json): the body of "
                   "every 4xx and 5xx answer.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "example": "about:blank",
                 "description": "about:blank (status and title say what happened), or "
                                "urn:ovn-nb-gateway:problem:outcome-unknown for a 503 after "
                                "the write was sent: it may have landed; retry with the same "
                                "Idempotency-Key or re-read the resource."},
        "title": {"type": "string", "example": "Conflict",
                  "description": "The HTTP reason phrase of the status."},
        "status": {"type": "integer", "example": 409,
                   "description": "The HTTP status code, as in the response line."},
        "detail": {"type": "string", "example": "name: a network named 'web' exists",
                   "description": "What went wrong, for people; for validation errors the "
                                  "field messages joined."},
        "instance": {"type": "string", "example": "/v1/networks",
                     "description": "The request path."},
        "request_id": {"type": "string", "nullable": True,
                       "example": "8e370ac1728e432b8293046d71e71a07",
                       "description": "The request's X-Request-ID (the client's, or the one "
                                      "the gateway generated), as in the response header."},
        "errors": {"type": "object",
                   "additionalProperties": {"type": "array", "items": {"type": "string"}},
                   "example": {"name": ["a network named 'web' exists"]},
                   "description": "Field path (dotted, e.g. `dhcp.routes.0.nexthop`; "
                                  "`query.<name>` for query parameters, `body` for the body "
                                  "as a whole) -> messages. Empty when the problem is not "
                                  "about fields."},
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
    "415": "Body not sent as application/json (PATCH: or application/merge-patch+json)",
    "422": "Idempotency-Key reused with a different body",
    "429": "Too many open event streams (for the tenant, or for this gateway process); "
           "retry after Retry-After seconds",
    "503": "The OVN northbound database is unreachable (or the identity provider's keys "
           "cannot be fetched); retry after Retry-After seconds",
}
_BY_METHOD = {
    "get": ("400", "401", "403", "404", "503"),
    "post": ("400", "401", "403", "404", "409", "413", "415", "422", "503"),
    "patch": ("400", "401", "403", "404", "409", "412", "413", "415", "503"),
    "delete": ("400", "401", "403", "404", "409", "412", "503"),
}
_HEADERS = {
    "get": [("If-None-Match", False)],
    "post": [("Idempotency-Key", False)],
    "patch": [("If-Match", False)],
    "delete": [("If-Match", False)],
}
_HEADER_DOCS = {
    "Idempotency-Key": "1 to 255 printable ASCII characters. A retry with the same key and "
                       "body answers 201 with the resource the first request created and "
                       "`Idempotent-Replayed: true`; the same key with another body is 422. "
                       "Keys are per tenant and resource kind and are remembered as long as "
                       "the resource exists.",
    "If-Match": '`"<revision>"` as the ETag gave it (`W/` and unquoted forms are accepted, '
                "`*` matches any). Checked inside the write's own transaction: a stale "
                "revision is 412 and changes nothing.",
}
_PATH_DOCS = {
    "tenant": "The tenant id (`^[a-z0-9][a-z0-9-]{0,62}$`; anything else is 400).",
    "external_network_id": "The external network's id (external networks are shared: every "
                           "tenant may read them).",
}
_NOUNS = {"record": "DNS record", "floating_ip": "floating IP"}
_COMMON_PARAMS = [{"name": "X-Request-ID", "in": "header", "required": False,
                   "description": "echoed in the response; a value outside "
                                  "[A-Za-z0-9._:-]{1,128} is replaced by a generated id",
                   "schema": {"type": "string"}}]


def _problem(reason: str) -> dict[str, Any]:
    return {"description": reason, "content": {"application/problem+json": {
        "schema": {"$ref": "#/components/schemas/Problem"}}}}


def _path_doc(name: str) -> str:
    if name in _PATH_DOCS:
        return _PATH_DOCS[name]
    stem = name.removesuffix("_id")
    noun = _NOUNS.get(stem, stem.replace("_", " "))
    return f"The {noun}'s id. Another tenant's {noun} is 404, like one that does not exist."


def _schema_docs(api: Any) -> dict[str, str]:
    """Component name -> the docstring its marshmallow schema class declares itself."""
    refs = getattr(getattr(getattr(api, "ma_plugin", None), "converter", None), "refs", {})
    docs = {}
    for key, name in refs.items():
        cls = key[0] if isinstance(key, tuple) else type(key)
        doc = getattr(cls, "__dict__", {}).get("__doc__")
        if isinstance(doc, str) and doc.strip():
            docs[name] = "\n\n".join(" ".join(paragraph.split())
                                     for paragraph in inspect.cleandoc(doc).split("\n\n"))
    return docs


def document(api: Any) -> dict[str, Any]:
    spec = copy.deepcopy(api.spec.to_dict())
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = copy.deepcopy(PROBLEM_SCHEMA)
    spec["components"].pop("responses", None)
    for name, doc in _schema_docs(api).items():
        if name in schemas:
            schemas[name].setdefault("description", doc)
    for path, item in spec.get("paths", {}).items():
        for param in item.get("parameters", []):
            if param.get("in") == "path":
                param.setdefault("description", _path_doc(param["name"]))
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
            if path == "/v1/events" and method == "get":  # the one bounded resource
                responses["429"] = _problem(_REASONS["429"])
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
                               "description": _HEADER_DOCS[name],
                               "schema": {"type": "string", "maxLength": 255}})
    # flask-smorest's own error and pagination schemas: this API answers neither.
    for name in ("Error", "PaginationMetadata"):
        rest = {**spec, "components": {**spec["components"], "schemas": {
            k: v for k, v in schemas.items() if k != name}}}
        if f'"#/components/schemas/{name}"' not in json.dumps(rest):
            schemas.pop(name, None)
    return spec


class _Dumper(yaml.SafeDumper):
    """No YAML anchors: a value the generator shares between places is written out in each."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(spec: dict[str, Any]) -> str:
    return yaml.dump(spec, Dumper=_Dumper, sort_keys=True, allow_unicode=True)

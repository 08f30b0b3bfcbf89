"""Every operation, parameter and schema property of the checked-in OpenAPI document is
described, so that the document (and /docs, which renders it) explains itself.

Operation descriptions come from the view docstrings (first line: summary; the rest:
description), property descriptions from marshmallow field `metadata={"description": ...}`,
parameter descriptions from the query schemas and `gateway/openapi.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

CHECKED_IN = Path(__file__).resolve().parents[2] / "openapi" / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return dict(yaml.safe_load(CHECKED_IN.read_text()))


def _described(node: Any) -> bool:
    return isinstance(node, dict) and bool(str(node.get("description") or "").strip())


def _undescribed_properties(schema: Any, where: str) -> Iterator[str]:
    """Property paths without a description, through nested objects, arrays, maps and
    allOf/anyOf/oneOf (a `$ref` is checked where it points, in components.schemas)."""
    if not isinstance(schema, dict):
        return
    for name, prop in (schema.get("properties") or {}).items():
        if not _described(prop):
            yield f"{where}.{name}"
        yield from _undescribed_properties(prop, f"{where}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _undescribed_properties(schema["items"], f"{where}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _undescribed_properties(schema["additionalProperties"], f"{where}{{}}")
    for keyword in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(keyword) or []:
            yield from _undescribed_properties(sub, where)


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in (spec.get("paths") or {}).items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def test_every_schema_property_is_described(spec: dict[str, Any]) -> None:
    missing = [where for name, schema in (spec.get("components", {}).get("schemas") or {}).items()
               for where in _undescribed_properties(schema, name)]
    assert not missing, (
        f"{len(missing)} schema properties have no description (add "
        "metadata={\"description\": ...} to the field in gateway/schemas/, then run "
        "`ovn-nb-gateway openapi -o openapi/openapi.yaml`):\n  " + "\n  ".join(missing))


def test_every_operation_is_described(spec: dict[str, Any]) -> None:
    missing = [f"{method.upper()} {path} (summary: {op.get('summary')!r})"
               for path, method, op in _operations(spec) if not _described(op)]
    assert not missing, (
        f"{len(missing)} operations have no description (the view docstring needs a "
        "paragraph after its summary line):\n  " + "\n  ".join(missing))


def test_every_parameter_is_described(spec: dict[str, Any]) -> None:
    missing = []
    for path, item in (spec.get("paths") or {}).items():
        missing += [f"{path}: {p.get('in')} parameter {p.get('name')}"
                    for p in item.get("parameters") or [] if not _described(p)]
    for path, method, op in _operations(spec):
        missing += [f"{method.upper()} {path}: {p.get('in')} parameter {p.get('name')}"
                    for p in op.get("parameters") or [] if not _described(p)]
    assert not missing, (f"{len(missing)} parameters have no description:\n  "
                         + "\n  ".join(missing))


def test_the_walk_finds_what_it_should() -> None:
    """The checker itself: nested, array, map and allOf properties are all visited."""
    schema = {"properties": {
        "a": {"description": "x", "properties": {"b": {"type": "string"}}},
        "c": {"description": "x", "type": "array",
              "items": {"properties": {"d": {"type": "string"}}}},
        "e": {"description": "x", "additionalProperties": {"properties": {"f": {}}}},
        "g": {"description": "x", "allOf": [{"properties": {"h": {}}}]},
        "i": {"$ref": "#/components/schemas/Other"},
    }}
    assert sorted(_undescribed_properties(schema, "S")) == [
        "S.a.b", "S.c[].d", "S.e{}.f", "S.g.h", "S.i"]

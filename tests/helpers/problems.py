"""Reading RFC 9457 problem responses in tests."""

from __future__ import annotations

from typing import Any


def errors_of(resp: Any) -> dict[str, Any]:
    """The problem's per-field errors; the response must be a problem document."""
    assert resp.mimetype == "application/problem+json", resp.data
    return resp.get_json().get("errors") or {}


def names_field(errors: dict[str, Any], field: str) -> bool:
    """True if the errors name FIELD itself or something inside it (FIELD.0, FIELD.x...)."""
    return any(k == field or k.startswith(field + ".") for k in errors)

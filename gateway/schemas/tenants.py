"""Quota and usage shapes (admin)."""

from __future__ import annotations

from marshmallow import fields, validate

from gateway.config import DEFAULT_QUOTAS
from gateway.schemas.common import StrictSchema

_LIMIT = validate.Range(min=0, max=1_000_000)

QuotasSchema = type("Quotas", (StrictSchema,), {
    family: fields.Integer(strict=True, validate=_LIMIT) for family in DEFAULT_QUOTAS})
QuotasPatchSchema = type("QuotasPatch", (StrictSchema,), {
    family: fields.Integer(strict=True, validate=_LIMIT, allow_none=True,
                           metadata={"description": "null restores the default"})
    for family in DEFAULT_QUOTAS})
UsageSchema = type("Usage", (StrictSchema,), {
    family: fields.Integer(strict=True) for family in DEFAULT_QUOTAS})

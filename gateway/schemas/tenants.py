"""Quota and usage shapes (admin)."""

from __future__ import annotations

from marshmallow import fields, validate

from gateway.config import DEFAULT_QUOTAS
from gateway.schemas.common import StrictSchema

_LIMIT = validate.Range(min=0, max=1_000_000)

QuotasSchema = type("Quotas", (StrictSchema,), {
    "__doc__": "A tenant's quotas: the configured defaults, with its own overrides applied.",
    **{family: fields.Integer(strict=True, validate=_LIMIT, metadata={
        "description": f"How many {family.replace('_', ' ')} the tenant may have; a create "
                       "beyond it is 409.",
        "example": limit}) for family, limit in DEFAULT_QUOTAS.items()}})
QuotasPatchSchema = type("QuotasPatch", (StrictSchema,), {
    "__doc__": "Quota overrides (JSON merge patch): absent families stay as they are.",
    **{family: fields.Integer(strict=True, validate=_LIMIT, allow_none=True,
                              metadata={"description": f"New {family.replace('_', ' ')} quota "
                                                       "(0 to 1000000); null restores the "
                                                       "default; below current usage is 409.",
                                        "example": limit})
       for family, limit in DEFAULT_QUOTAS.items()}})
UsageSchema = type("Usage", (StrictSchema,), {
    "__doc__": "What a tenant uses of each quota.",
    **{family: fields.Integer(strict=True, metadata={
        "description": f"How many {family.replace('_', ' ')} the tenant has now"
                       + (" (automatic records do not count)." if family == "dns_records"
                          else "."),
        "example": 0}) for family in DEFAULT_QUOTAS}})

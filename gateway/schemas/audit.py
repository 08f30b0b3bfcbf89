"""Drift report shapes (admin)."""

from __future__ import annotations

from marshmallow import fields, validate

from gateway.schemas.common import TENANT_PATTERN, FullRegexp, StrictSchema

PROBLEMS = ("missing", "changed", "extra", "orphan", "dangling", "unrepairable")
KINDS = ("network", "port", "dns-record", "policy", "external-network", "gateway",
         "floating-ip", "load-balancer")


class AuditQuery(StrictSchema):
    tenant = fields.String(validate=FullRegexp(TENANT_PATTERN, error="must match {regex}"),
                           metadata={"description": "Only this tenant's resources (and the "
                                                    "orphans stamped with it).",
                                     "example": "acme"})
    kind = fields.String(validate=validate.OneOf(KINDS), metadata={
        "description": "Only resources of this kind (and orphans it would own).",
        "example": "network"})


class FindingSchema(StrictSchema):
    """One row or column that differs from what the resource's stored document implies."""

    kind = fields.String(metadata={"description": "The resource's kind; for an orphan, the "
                                                  "row's own `ovn-nb-gateway:kind` stamp "
                                                  "(`dhcp`, `gw-link`, ...).",
                                   "example": "network"})
    id = fields.String(metadata={"description": "The resource's id (for an orphan: the id "
                                                "of its missing owner).",
                                 "example": "a1604e83-671f-4586-a82c-8c88f1ebba5e"})
    tenant = fields.String(metadata={"description": "The resource's tenant.",
                                     "example": "acme"})
    name = fields.String(allow_none=True, metadata={
        "description": "The resource's name; null for an orphan.", "example": "web"})
    problem = fields.String(validate=validate.OneOf(PROBLEMS), metadata={
        "description": "`missing`: a row the document implies is absent; `changed`: a column "
                       "differs; `extra`: an owned row the document does not imply; "
                       "`orphan`: an owned row whose owner is gone; `dangling`: the document "
                       "names something that is gone; `unrepairable`: the write path "
                       "refuses the stored document now (`detail` says why).",
        "example": "changed"})
    table = fields.String(metadata={"description": "The northbound table of the row.",
                                    "example": "ACL"})
    row = fields.String(metadata={"description": "The row: its name, else its "
                                                 "`ovn-nb-gateway:id` stamp.",
                                  "example": "ovngw-a1604e83-671f-4586-a82c-8c88f1ebba5e"})
    column = fields.String(allow_none=True, metadata={
        "description": "The column that differs; null for a whole row.", "example": "match"})
    expected = fields.Raw(allow_none=True, metadata={
        "description": "What the document implies: the column's value, or a missing row's "
                       "columns; rows it references are named like `row`. Null for rows "
                       "that should not exist.", "example": "outport == @ovngw_p1 && ip"})
    found = fields.Raw(allow_none=True, metadata={
        "description": "What the database holds (references to rows of other tools left "
                       "out); null for a missing row.", "example": "ip"})
    detail = fields.String(metadata={"description": "The finding in words.",
                                     "example": "ACL p1/ingress/0 column match"})


class AuditSchema(StrictSchema):
    """The drift report: every resource checked against the rows its document implies."""

    clean = fields.Boolean(metadata={"description": "True when nothing was found.",
                                     "example": False})
    checked = fields.Integer(metadata={"description": "How many resources were checked.",
                                       "example": 12})
    repaired = fields.Boolean(metadata={"description": "True when this was a repair.",
                                        "example": False})
    findings = fields.List(fields.Nested(FindingSchema), metadata={
        "description": "What differed (before a repair: what it repaired)."})
    remaining = fields.List(fields.Nested(FindingSchema), metadata={
        "description": "Repairs only: what still differs after it (empty when all was "
                       "restored)."})

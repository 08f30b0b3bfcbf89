"""DNS records: request and response shapes."""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate

from gateway.schemas.common import FQDN, IP, ListQuery, ResourceSchema, list_schema, patch_schema

REVERSE_ZONES = ("in-addr.arpa", "ip6.arpa")


def not_reverse(name: str) -> None:
    """Reverse (PTR) names are the gateway's: it answers those of its ports' addresses."""
    for zone in REVERSE_ZONES:
        if name == zone or name.endswith("." + zone):
            raise ValidationError(f"a reverse name (under {zone}): the gateway answers the "
                                  "PTR names of its ports' addresses itself")


class DnsRecordSchema(ResourceSchema):
    """A DNS name answered by OVN's DNS responder on the tenant's networks."""

    read_only = (*ResourceSchema.read_only, "auto", "port_id")

    fqdn = FQDN(required=True, validate=not_reverse, metadata={
        "description": "The name (letters, digits and '-' per label, stored in lowercase "
                       "without a trailing dot). One record per name in a tenant, automatic "
                       "records included: a second one is 409. Reverse names (under "
                       "in-addr.arpa or ip6.arpa) are 400: the gateway answers the PTR "
                       "queries of its ports' addresses itself.",
        "example": "api.web.internal"})
    ips = fields.List(IP(), required=True, validate=validate.Length(min=1, max=16),
                      metadata={"description": "A and AAAA answers, 1 to 16 addresses.",
                                "example": ["10.0.0.2"]})
    networks = fields.List(fields.UUID(), validate=validate.Length(max=256), allow_none=True,
                           metadata={"description": "networks whose ports resolve the name; "
                                                    "absent or null: every network of the "
                                                    "tenant, including later ones; []: none. "
                                                    "Another tenant's network is 404.",
                                     "example": ["a1604e83-671f-4586-a82c-8c88f1ebba5e"]})
    auto = fields.Boolean(dump_only=True, metadata={
        "description": "true for the automatic record of a port's hostname (read-only)",
        "example": False})
    port_id = fields.UUID(dump_only=True, metadata={
        "description": "The port an automatic record belongs to; absent on user records.",
        "example": "d2e5a7c6-5ca2-4d30-b14e-095ce2484d52"})


DnsRecordPatchSchema = patch_schema(DnsRecordSchema, (), "DnsRecordPatch")
DnsRecordListSchema = list_schema(DnsRecordSchema, "DnsRecordList")


class DnsRecordListQuery(ListQuery):
    fqdn = FQDN(metadata={"description": "Only the record of this name.",
                          "example": "api.web.internal"})

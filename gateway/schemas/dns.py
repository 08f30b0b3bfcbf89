"""DNS records: request and response shapes."""

from __future__ import annotations

from marshmallow import fields, validate

from gateway.schemas.common import FQDN, IP, ListQuery, ResourceSchema, list_schema, patch_schema


class DnsRecordSchema(ResourceSchema):
    read_only = (*ResourceSchema.read_only, "auto", "port_id")

    fqdn = FQDN(required=True)
    ips = fields.List(IP(), required=True, validate=validate.Length(min=1, max=16),
                      metadata={"description": "A and AAAA answers"})
    networks = fields.List(fields.UUID(), validate=validate.Length(max=256), allow_none=True,
                           metadata={"description": "networks whose ports resolve the name; "
                                                    "absent or null: every network of the "
                                                    "tenant, including later ones"})
    auto = fields.Boolean(dump_only=True, metadata={
        "description": "true for the automatic record of a port's hostname (read-only)"})
    port_id = fields.UUID(dump_only=True)


DnsRecordPatchSchema = patch_schema(DnsRecordSchema, (), "DnsRecordPatch")
DnsRecordListSchema = list_schema(DnsRecordSchema, "DnsRecordList")


class DnsRecordListQuery(ListQuery):
    fqdn = FQDN()

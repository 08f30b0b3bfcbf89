"""/v1/dns-records"""

from __future__ import annotations

from typing import Any

from gateway.api import crud
from gateway.api.common import Blueprint
from gateway.schemas.dns import (
    DnsRecordListQuery,
    DnsRecordListSchema,
    DnsRecordPatchSchema,
    DnsRecordSchema,
)

blp = Blueprint("dns", __name__, url_prefix="/v1/dns-records",
                description="DNS records answered by OVN's DNS responder on tenant networks")


def _by_fqdn(query: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], None]:
    fqdn = query.pop("fqdn", None)
    return query, {"fqdn": fqdn}, None


KIND = crud.Kind(service="dns", family="dns", schema=DnsRecordSchema,
                 patch_schema=DnsRecordPatchSchema, list_schema=DnsRecordListSchema,
                 list_query=DnsRecordListQuery, noun="DNS record", location="/v1/dns-records/{id}",
                 split_query=_by_fqdn)
crud.collection(blp, "", KIND)
crud.item(blp, "/<uuid:record_id>", KIND)

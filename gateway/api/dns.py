"""/v1/dns-records"""

from __future__ import annotations

from typing import Any

from gateway.api import crud, networks
from gateway.api.common import Blueprint
from gateway.schemas.dns import (
    DnsRecordListQuery,
    DnsRecordListSchema,
    DnsRecordPatchSchema,
    DnsRecordSchema,
)
from gateway.services.dns import DnsRecordService

blp = Blueprint("dns", __name__, url_prefix="/v1/dns-records",
                description="DNS records answered by OVN's DNS responder on tenant networks")


def _by_fqdn(query: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], None]:
    fqdn = query.pop("fqdn", None)
    return query, {"fqdn": fqdn}, None


NETWORK = networks.KIND.example.sample_id
KIND = crud.Kind(
    service=DnsRecordService, family="dns", blueprint=blp, schema=DnsRecordSchema,
    patch_schema=DnsRecordPatchSchema, list_schema=DnsRecordListSchema,
    list_query=DnsRecordListQuery, noun="DNS record", location="/v1/dns-records/{id}",
    path_var="record_id", split_query=_by_fqdn,
    example=crud.Example(
        sample_id="2b7e4f1a-9c3d-4a8e-b6f0-5d1c8e2a9f44",
        body={"name": "www", "fqdn": "www.example.internal", "ips": ["10.99.0.5"]},
        references=(("networks", {"networks": [NETWORK]}),)))
crud.collection(KIND)
crud.item(KIND, "/<uuid:record_id>")

"""/v1/dns-records"""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView

from gateway.api.common import (
    Blueprint,
    created,
    idempotency_key,
    if_match,
    principal,
    service,
    with_etag,
)
from gateway.schemas.dns import (
    DnsRecordListQuery,
    DnsRecordListSchema,
    DnsRecordPatchSchema,
    DnsRecordSchema,
)

blp = Blueprint("dns", __name__, url_prefix="/v1/dns-records",
                description="DNS records answered by OVN's DNS responder on tenant networks")


@blp.route("")
class DnsRecords(MethodView):
    @blp.arguments(DnsRecordListQuery, location="query")
    @blp.response(200, DnsRecordListSchema)
    def get(self, query: dict[str, Any]) -> Any:
        fqdn = query.pop("fqdn", None)
        return service("dns").list(principal("dns", "read"), query,
                                   filters={"fqdn": fqdn})

    @blp.arguments(DnsRecordSchema)
    @blp.response(201, DnsRecordSchema)
    def post(self, body: dict[str, Any]) -> Any:
        who = principal("dns", "write")
        body = {**body, "networks": _ids(body.get("networks"))}
        doc, fresh = service("dns").create(who, body, idempotency_key())
        return created(doc, f"/v1/dns-records/{doc['id']}", fresh)


@blp.route("/<uuid:record_id>")
class DnsRecord(MethodView):
    @blp.response(200, DnsRecordSchema)
    def get(self, record_id: Any) -> Any:
        return with_etag(service("dns").get(principal("dns", "read"), str(record_id)))

    @blp.arguments(DnsRecordPatchSchema, content_type="application/merge-patch+json")
    @blp.response(200, DnsRecordSchema)
    def patch(self, patch: dict[str, Any], record_id: Any) -> Any:
        who = principal("dns", "write")
        if patch.get("networks") is not None:
            patch = {**patch, "networks": _ids(patch["networks"])}
        return with_etag(service("dns").update(who, str(record_id), patch, if_match(),
                                               validate_record))

    @blp.response(204)
    def delete(self, record_id: Any) -> None:
        who = principal("dns", "write")
        g.audit_resource = str(record_id)
        service("dns").delete(who, str(record_id), if_match())


def _ids(values: list[Any] | None) -> list[str] | None:
    return None if values is None else [str(v) for v in values]


def validate_record(doc: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = DnsRecordSchema().load(doc)
    clean["networks"] = _ids(clean.get("networks"))
    return clean

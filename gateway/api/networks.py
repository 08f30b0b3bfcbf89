"""/v1/networks"""

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
from gateway.schemas.networks import (
    NetworkDeleteQuery,
    NetworkListQuery,
    NetworkListSchema,
    NetworkPatchSchema,
    NetworkSchema,
)

blp = Blueprint("networks", __name__, url_prefix="/v1/networks",
                description="Tenant networks: a logical switch with DHCP")


@blp.route("")
class Networks(MethodView):
    @blp.arguments(NetworkListQuery, location="query")
    @blp.response(200, NetworkListSchema)
    def get(self, query: dict[str, Any]) -> Any:
        return service("networks").list(principal("networks", "read"), query)

    @blp.arguments(NetworkSchema)
    @blp.response(201, NetworkSchema)
    def post(self, body: dict[str, Any]) -> Any:
        who = principal("networks", "write")
        doc, fresh = service("networks").create(who, body, idempotency_key())
        return created(doc, f"/v1/networks/{doc['id']}", fresh)


@blp.route("/<uuid:network_id>")
class Network(MethodView):
    @blp.response(200, NetworkSchema)
    def get(self, network_id: Any) -> Any:
        return with_etag(service("networks").get(principal("networks", "read"),
                                                 str(network_id)))

    @blp.arguments(NetworkPatchSchema, content_type="application/merge-patch+json")
    @blp.response(200, NetworkSchema)
    def patch(self, patch: dict[str, Any], network_id: Any) -> Any:
        who = principal("networks", "write")
        return with_etag(service("networks").update(
            who, str(network_id), patch, if_match(), validate_network))

    @blp.arguments(NetworkDeleteQuery, location="query")
    @blp.response(204)
    def delete(self, query: dict[str, Any], network_id: Any) -> None:
        who = principal("networks", "write")
        g.audit_resource = str(network_id)
        service("networks").delete(who, str(network_id), if_match(), query["cascade"])


def validate_network(doc: dict[str, Any]) -> dict[str, Any]:
    return NetworkSchema().load(doc)  # type: ignore[no-any-return]

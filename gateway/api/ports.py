"""/v1/networks/{network_id}/ports and /v1/ports"""

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
from gateway.schemas.common import ListQuery
from gateway.schemas.networks import PortListQuery, PortListSchema, PortPatchSchema, PortSchema

blp = Blueprint("ports", __name__, url_prefix="/v1",
                description="Ports of tenant networks: addresses, port security and DHCP")


@blp.route("/networks/<uuid:network_id>/ports")
class NetworkPorts(MethodView):
    @blp.arguments(ListQuery, location="query")
    @blp.response(200, PortListSchema)
    def get(self, query: dict[str, Any], network_id: Any) -> Any:
        who = principal("networks", "read")
        ports = service("ports")
        service("networks").get(who, str(network_id))  # 404 unless the caller may see it
        return ports.list(who, query, parent=str(network_id))

    @blp.arguments(PortSchema)
    @blp.response(201, PortSchema)
    def post(self, body: dict[str, Any], network_id: Any) -> Any:
        who = principal("networks", "write")
        doc, fresh = service("ports").create(who, body, idempotency_key(),
                                             parent_id=str(network_id))
        return created(doc, f"/v1/ports/{doc['id']}", fresh)


@blp.route("/ports")
class Ports(MethodView):
    @blp.arguments(PortListQuery, location="query")
    @blp.response(200, PortListSchema)
    def get(self, query: dict[str, Any]) -> Any:
        who = principal("networks", "read")
        network = query.pop("network_id", None)
        return service("ports").list(who, query, parent=str(network) if network else None)


@blp.route("/ports/<uuid:port_id>")
class Port(MethodView):
    @blp.response(200, PortSchema)
    def get(self, port_id: Any) -> Any:
        return with_etag(service("ports").get(principal("networks", "read"), str(port_id)))

    @blp.arguments(PortPatchSchema, content_type="application/merge-patch+json")
    @blp.response(200, PortSchema)
    def patch(self, patch: dict[str, Any], port_id: Any) -> Any:
        who = principal("networks", "write")
        return with_etag(service("ports").update(who, str(port_id), patch, if_match(),
                                                 validate_port))

    @blp.response(204)
    def delete(self, port_id: Any) -> None:
        who = principal("networks", "write")
        g.audit_resource = str(port_id)
        service("ports").delete(who, str(port_id), if_match())


def validate_port(doc: dict[str, Any]) -> dict[str, Any]:
    return PortSchema().load(doc)  # type: ignore[no-any-return]


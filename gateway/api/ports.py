"""/v1/networks/{network_id}/ports and /v1/ports"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from gateway.api import crud, networks
from gateway.api.common import Blueprint, created, idempotency_key, principal, service
from gateway.schemas.common import ListQuery
from gateway.schemas.networks import PortListQuery, PortListSchema, PortPatchSchema, PortSchema
from gateway.services.networks import NetworkService
from gateway.services.ports import PortService

blp = Blueprint("ports", __name__, url_prefix="/v1",
                description="Ports of tenant networks: addresses, port security and DHCP")


@blp.route("/networks/<uuid:network_id>/ports")
class NetworkPorts(MethodView):
    @blp.arguments(ListQuery(), location="query")
    @blp.response(200, PortListSchema)
    def get(self, query: dict[str, Any], network_id: Any) -> Any:
        """List the ports of one network

        One page of the network's ports (filters `name`, `label`). Another tenant's network
        is 404."""
        who = principal("networks", "read")
        service(NetworkService).get(who, str(network_id))  # 404 unless the caller may see it
        return service(PortService).list(who, query, parent=str(network_id))

    @blp.arguments(PortSchema())
    @blp.response(201, PortSchema)
    def post(self, body: dict[str, Any], network_id: Any) -> Any:
        """Create a port: MAC and IPs are allocated when not given

        Without `ips`: the first free IPv4 address and, with `ipv6_cidr`, an IPv6 one
        (EUI-64 on a /64). Requested addresses must be inside the network and free (409).
        Without `mac`: a generated locally administered MAC. Allocation happens inside the
        transaction, so concurrent creates never share an address. A `hostname` on a
        network with `dns_domain` gives an automatic DNS record."""
        who = principal("networks", "write")
        doc, fresh = service(PortService).create(who, body, idempotency_key(),
                                             parent_id=str(network_id))
        return created(doc, f"/v1/ports/{doc['id']}", fresh)


@blp.route("/ports")
class Ports(MethodView):
    @blp.arguments(PortListQuery(), location="query")
    @blp.response(200, PortListSchema)
    def get(self, query: dict[str, Any]) -> Any:
        """List the ports the caller may see (filter with network_id)

        The caller's ports across networks; filters `network_id`, `name`, `label`, admins
        `tenant`."""
        who = principal("networks", "read")
        network = query.pop("network_id", None)
        return service(PortService).list(who, query, parent=str(network) if network else None)


KIND = crud.Kind(
    service=PortService, family="networks", blueprint=blp, schema=PortSchema,
    patch_schema=PortPatchSchema, list_schema=PortListSchema, list_query=PortListQuery,
    noun="port", location="/v1/ports/{id}", path_var="port_id",
    example=crud.Example(sample_id="5d0c3b8e-7a41-4f6b-a2d9-1e6f0c9b3a22",
                         body={"name": "web-1", "labels": {"app": "web"}},
                         path=f"/v1/networks/{networks.KIND.example.sample_id}/ports"))
crud.item(KIND, "/ports/<uuid:port_id>")

"""/v1/external-networks, /v1/gateways and /v1/floating-ips"""

from __future__ import annotations

from typing import Any

from gateway.api import crud, networks, ports
from gateway.api.common import Blueprint
from gateway.schemas.gateways import (
    ExternalNetworkListQuery,
    ExternalNetworkListSchema,
    ExternalNetworkPatchSchema,
    ExternalNetworkSchema,
    FloatingIpListQuery,
    FloatingIpListSchema,
    FloatingIpPatchSchema,
    FloatingIpSchema,
    GatewayListQuery,
    GatewayListSchema,
    GatewayPatchSchema,
    GatewaySchema,
)
from gateway.services.external_networks import ExternalNetworkService
from gateway.services.floating_ips import FloatingIpService
from gateway.services.gateways import GatewayService

external_blp = Blueprint("external-networks", __name__, url_prefix="/v1/external-networks",
                         description="Provider networks outside OVN: admins write them, "
                                     "every tenant reads them")
gateways_blp = Blueprint("gateways", __name__, url_prefix="/v1/gateways",
                         description="Tenant routers: attached networks, SNAT to an external "
                                     "network, static routes")
floating_blp = Blueprint("floating-ips", __name__, url_prefix="/v1/floating-ips",
                         description="External addresses mapped 1:1 to ports")

EXTERNAL = "0f3b6a8c-2d1e-4b7a-9c5d-6e8f1a2b3c4d"
NETWORK = networks.KIND.example.sample_id

EXTERNAL_KIND = crud.Kind(
    service=ExternalNetworkService, family="gateways", blueprint=external_blp,
    schema=ExternalNetworkSchema, patch_schema=ExternalNetworkPatchSchema,
    list_schema=ExternalNetworkListSchema, list_query=ExternalNetworkListQuery,
    noun="external network", location="/v1/external-networks/{id}",
    path_var="external_network_id",
    example=crud.Example(sample_id=EXTERNAL, body={
        "name": "internet", "cidr": "172.16.0.0/24", "gateway_ip": "172.16.0.1",
        "allocation_pools": [{"start": "172.16.0.10", "end": "172.16.0.200"}],
        "physical_network": "physnet1"}))
crud.collection(EXTERNAL_KIND)
crud.item(EXTERNAL_KIND, "/<uuid:external_network_id>")

GATEWAY_KIND = crud.Kind(
    service=GatewayService, family="gateways", blueprint=gateways_blp, schema=GatewaySchema,
    patch_schema=GatewayPatchSchema, list_schema=GatewayListSchema,
    list_query=GatewayListQuery, noun="gateway", location="/v1/gateways/{id}",
    path_var="gateway_id",
    example=crud.Example(
        sample_id="7e2d1c4b-3a5f-4e6d-8b9a-0c1d2e3f4a5b", body={"name": "edge"},
        references=(("networks", {"networks": [{"network_id": NETWORK}]}),),
        shared_references=(("external", {"external": {"network_id": EXTERNAL}}),)))
crud.collection(GATEWAY_KIND)
crud.item(GATEWAY_KIND, "/<uuid:gateway_id>")


def _by_port(query: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], None]:
    port = query.pop("port_id", None)
    return query, {"port_id": str(port) if port else None}, None


FLOATING_KIND = crud.Kind(
    service=FloatingIpService, family="gateways", blueprint=floating_blp,
    schema=FloatingIpSchema, patch_schema=FloatingIpPatchSchema,
    list_schema=FloatingIpListSchema, list_query=FloatingIpListQuery, noun="floating IP",
    location="/v1/floating-ips/{id}", path_var="floating_ip_id", split_query=_by_port,
    example=crud.Example(
        sample_id="9c8b7a6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
        body={"name": "web-public", "external_network_id": EXTERNAL},
        references=(("port_id", {"port_id": ports.KIND.example.sample_id}),)))
crud.collection(FLOATING_KIND)
crud.item(FLOATING_KIND, "/<uuid:floating_ip_id>")

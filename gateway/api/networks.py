"""/v1/networks"""

from __future__ import annotations

from gateway.api import crud
from gateway.api.common import Blueprint
from gateway.schemas.networks import (
    NetworkDeleteQuery,
    NetworkListQuery,
    NetworkListSchema,
    NetworkPatchSchema,
    NetworkSchema,
)
from gateway.services.networks import NetworkService

blp = Blueprint("networks", __name__, url_prefix="/v1/networks",
                description="Tenant networks: a logical switch with DHCP")

KIND = crud.Kind(
    service=NetworkService, family="networks", blueprint=blp, schema=NetworkSchema,
    patch_schema=NetworkPatchSchema, list_schema=NetworkListSchema,
    list_query=NetworkListQuery, noun="network", location="/v1/networks/{id}",
    path_var="network_id", delete_query=NetworkDeleteQuery,
    example=crud.Example(sample_id="8a1f6c2e-0b4d-4c55-9f1e-3b2a7d9c4e10",
                         body={"name": "web", "cidr": "10.99.0.0/24"}))
crud.collection(KIND)
crud.item(KIND, "/<uuid:network_id>")

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

blp = Blueprint("networks", __name__, url_prefix="/v1/networks",
                description="Tenant networks: a logical switch with DHCP")

KIND = crud.Kind(service="networks", family="networks", schema=NetworkSchema,
                 patch_schema=NetworkPatchSchema, list_schema=NetworkListSchema,
                 list_query=NetworkListQuery, noun="network", location="/v1/networks/{id}",
                 delete_query=NetworkDeleteQuery)
crud.collection(blp, "", KIND)
crud.item(blp, "/<uuid:network_id>", KIND)

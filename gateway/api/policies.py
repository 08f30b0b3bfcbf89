"""/v1/policies"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from gateway.api import crud
from gateway.api.common import Blueprint, principal, service
from gateway.schemas.policies import (
    CompiledPolicy,
    PolicyListQuery,
    PolicyListSchema,
    PolicyPatchSchema,
    PolicySchema,
)

blp = Blueprint("policies", __name__, url_prefix="/v1/policies",
                description="Network policies compiled to OVN port groups, address sets "
                            "and ACLs")

KIND = crud.Kind(service="policies", family="policies", schema=PolicySchema,
                 patch_schema=PolicyPatchSchema, list_schema=PolicyListSchema,
                 list_query=PolicyListQuery, noun="policy", nouns="policies",
                 location="/v1/policies/{id}")
crud.collection(blp, "", KIND)
crud.item(blp, "/<uuid:policy_id>", KIND)


@blp.route("/<uuid:policy_id>/rules")
class PolicyRules(MethodView):
    @blp.response(200, CompiledPolicy)
    def get(self, policy_id: Any) -> Any:
        """The OVN rows the policy compiled to: port group, address sets and ACLs."""
        return service("policies").compiled(principal("policies", "read"), str(policy_id))

"""/v1/policies"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from gateway.api import crud, networks
from gateway.api.common import Blueprint, principal, service
from gateway.schemas.policies import (
    CompiledPolicy,
    PolicyListQuery,
    PolicyListSchema,
    PolicyPatchSchema,
    PolicySchema,
)
from gateway.services.policies import PolicyService

blp = Blueprint("policies", __name__, url_prefix="/v1/policies",
                description="Network policies compiled to OVN port groups, address sets "
                            "and ACLs")

NETWORK = networks.KIND.example.sample_id
KIND = crud.Kind(
    service=PolicyService, family="policies", blueprint=blp, schema=PolicySchema,
    patch_schema=PolicyPatchSchema, list_schema=PolicyListSchema,
    list_query=PolicyListQuery, noun="policy", nouns="policies",
    location="/v1/policies/{id}", path_var="policy_id",
    example=crud.Example(
        sample_id="c3e9a0d4-6b5f-4e1a-8d27-9f4b2c1e7a33",
        body={"name": "db-from-web", "selector": {"app": "db"},
              "ingress": [{"action": "allow", "peers": [{"selector": {"app": "web"}}],
                           "protocol": "tcp", "ports": [5432]}]},
        references=(
            ("networks", {"networks": [NETWORK]}),
            ("ingress", {"ingress": [{"action": "allow", "peers": [{"network": NETWORK}]}]}),
            ("egress", {"egress": [{"action": "deny", "peers": [{"network": NETWORK}]}]}),
        )))
crud.collection(KIND)
crud.item(KIND, "/<uuid:policy_id>")


@blp.route("/<uuid:policy_id>/rules")
class PolicyRules(MethodView):
    @blp.response(200, CompiledPolicy)
    def get(self, policy_id: Any) -> Any:
        """The OVN rows the policy compiled to: port group, address sets and ACLs

        Read back from the northbound database: the port group, the peer address sets with
        their addresses, and the ACLs by direction and descending priority."""
        return service(PolicyService).compiled(principal("policies", "read"), str(policy_id))

"""/v1/policies"""

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


@blp.route("")
class Policies(MethodView):
    @blp.arguments(PolicyListQuery, location="query")
    @blp.response(200, PolicyListSchema)
    def get(self, query: dict[str, Any]) -> Any:
        return service("policies").list(principal("policies", "read"), query)

    @blp.arguments(PolicySchema)
    @blp.response(201, PolicySchema)
    def post(self, body: dict[str, Any]) -> Any:
        who = principal("policies", "write")
        doc, fresh = service("policies").create(who, body, idempotency_key())
        return created(doc, f"/v1/policies/{doc['id']}", fresh)


@blp.route("/<uuid:policy_id>")
class Policy(MethodView):
    @blp.response(200, PolicySchema)
    def get(self, policy_id: Any) -> Any:
        return with_etag(service("policies").get(principal("policies", "read"),
                                                 str(policy_id)))

    @blp.arguments(PolicyPatchSchema, content_type="application/merge-patch+json")
    @blp.response(200, PolicySchema)
    def patch(self, patch: dict[str, Any], policy_id: Any) -> Any:
        who = principal("policies", "write")
        return with_etag(service("policies").update(who, str(policy_id), patch, if_match(),
                                                    validate_policy))

    @blp.response(204)
    def delete(self, policy_id: Any) -> None:
        who = principal("policies", "write")
        g.audit_resource = str(policy_id)
        service("policies").delete(who, str(policy_id), if_match())


@blp.route("/<uuid:policy_id>/rules")
class PolicyRules(MethodView):
    @blp.response(200, CompiledPolicy)
    def get(self, policy_id: Any) -> Any:
        """The OVN rows the policy compiled to: port group, address sets and ACLs."""
        return service("policies").compiled(principal("policies", "read"), str(policy_id))


def validate_policy(doc: dict[str, Any]) -> dict[str, Any]:
    return PolicySchema().load(doc)  # type: ignore[no-any-return]

"""/v1/tenants/{tenant}/quotas and /usage (admin only)."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView

from gateway.api.common import Blueprint, service
from gateway.auth import TENANT_RE
from gateway.errors import BadRequest
from gateway.schemas.tenants import QuotasPatchSchema, QuotasSchema, UsageSchema
from gateway.services.quotas import QuotaService

blp = Blueprint("tenants", __name__, url_prefix="/v1/tenants",
                description="Quotas and usage per tenant (admin scope)")


def _quotas() -> QuotaService:
    return service(QuotaService)


def _tenant(tenant: str) -> str:
    if not TENANT_RE.fullmatch(tenant):
        raise BadRequest.field("tenant", "must match ^[a-z0-9][a-z0-9-]{0,62}$")
    g.audit_resource = tenant
    return tenant


@blp.route("/<string:tenant>/quotas")
class Quotas(MethodView):
    @blp.response(200, QuotasSchema)
    def get(self, tenant: str) -> Any:
        """A tenant's quotas (defaults from the configuration, overrides stored per tenant)

        Admin only. Each family's limit: the tenant's override, else the configured
        default."""
        return _quotas().get(_tenant(tenant))

    @blp.arguments(QuotasPatchSchema(), content_type="application/merge-patch+json")
    @blp.response(200, QuotasSchema)
    def patch(self, patch: dict[str, Any], tenant: str) -> Any:
        """Override quotas (null restores the default; below usage is 409)

        Admin only. A merge patch of family to limit; null restores the default; below
        current usage is 409 and changes nothing. No ETag and no If-Match."""
        return _quotas().update(_tenant(tenant), patch)


@blp.route("/<string:tenant>/usage")
class Usage(MethodView):
    @blp.response(200, UsageSchema)
    def get(self, tenant: str) -> Any:
        """What a tenant uses of each quota

        Admin only. Counts per family; automatic DNS records do not count."""
        return _quotas().usage(_tenant(tenant))

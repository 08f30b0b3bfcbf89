"""/v1/audit: the drift report and repair (admin only)."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView

from gateway.api.common import Blueprint
from gateway.schemas.audit import AuditQuery, AuditSchema
from gateway.services.drift import DriftService

blp = Blueprint("audit", __name__, url_prefix="/v1/audit",
                description="Drift of the gateway's own OVN rows: report and repair (admin "
                            "scope)")


def _drift() -> DriftService:
    gw = current_app.extensions["gateway"]
    return DriftService(gw.nb, [gw.services.of(cls) for cls in
                                current_app.extensions["gateway.kinds"]])


@blp.route("")
class Audit(MethodView):
    @blp.arguments(AuditQuery(), location="query")
    @blp.response(200, AuditSchema)
    def get(self, query: dict[str, Any]) -> Any:
        """Report drift of the gateway's rows (admin)

        Admin only. Compares every resource's rows and columns in the OVN northbound
        database with what its stored document implies (what the gateway would write for
        it), and lists what differs: missing rows, changed columns, extra owned rows,
        orphans whose owner is gone, and references to things that are gone. Rows without
        the gateway's ownership stamps are never read into it. Changes nothing."""
        return _drift().audit(query.get("tenant"), query.get("kind")).as_dict()


@blp.route("/repair")
class Repair(MethodView):
    @blp.arguments(AuditQuery(), location="query")
    @blp.response(200, AuditSchema)
    def post(self, query: dict[str, Any]) -> Any:
        """Repair drift of the gateway's rows (admin)

        Admin only. Runs the report, then rewrites each resource with findings from its
        stored document, one OVN transaction per resource, and deletes orphans. Answers
        the findings it repaired and, in `remaining`, what still differs afterwards
        (references to things that are gone, documents the write path now refuses)."""
        return _drift().audit(query.get("tenant"), query.get("kind"), repair=True).as_dict()

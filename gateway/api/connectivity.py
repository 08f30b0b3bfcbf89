"""/v1/connectivity-checks"""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView

from gateway.api.common import Blueprint, principal
from gateway.schemas.connectivity import ConnectivityCheckSchema, ConnectivityResultSchema
from gateway.services.connectivity import ConnectivityService

FAMILY = "networks"  # a read: nothing is written, the packet is only traced
blp = Blueprint("connectivity-checks", __name__, url_prefix="/v1/connectivity-checks",
                description="What OVN would do with one packet between the caller's ports "
                            "(or from a port to an address), traced with ovn-trace")


def _checker() -> ConnectivityService:
    gateway = current_app.extensions["gateway"]
    found = current_app.extensions.get("gateway.connectivity")
    if found is None:
        found = ConnectivityService(gateway.nb, gateway.settings, gateway.services)
        current_app.extensions["gateway.connectivity"] = found
    return found  # type: ignore[no-any-return]


@blp.route("")
class ConnectivityChecks(MethodView):
    @blp.arguments(ConnectivityCheckSchema())
    @blp.response(200, ConnectivityResultSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Check whether a packet gets through (scope networks:read)

        Traces one packet with `ovn-trace` against the southbound database (nothing is
        sent): from `from_port`, with its MAC and address, to `to.port` or `to.ip`, as a
        new `tcp`/`udp` connection to `port` or an ICMP echo request. Answers 200 with
        `result` (`allowed` or `dropped`), the `path` of networks and gateways crossed,
        the NAT and load balancer `translations`, and the `policy` rule that decided
        (by policy id, name and rule index). Both ports must be the caller's: another
        tenant's is 404 naming the field. 503 when the gateway runs without `OVN_SB_DB`
        or ovn-trace is missing or fails. Needs only a read scope: nothing is written."""
        return _checker().check(principal(FAMILY, "read"), body)

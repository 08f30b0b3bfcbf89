"""/v1/load-balancers"""

from __future__ import annotations

import ipaddress
from typing import Any

from flask import g
from flask.views import MethodView

from gateway.api import crud, gateways, networks
from gateway.api.common import Blueprint, if_match, principal, service
from gateway.errors import NotFound
from gateway.schemas.load_balancers import (
    Backend,
    BackendQuery,
    LoadBalancerListQuery,
    LoadBalancerListSchema,
    LoadBalancerPatchSchema,
    LoadBalancerSchema,
)
from gateway.services.load_balancers import LoadBalancerService

blp = Blueprint("load-balancers", __name__, url_prefix="/v1/load-balancers",
                description="Virtual IPs spread over backends by OVN's load balancer, with "
                            "health checks and session affinity")

NETWORK = networks.KIND.example.sample_id
KIND = crud.Kind(
    service=LoadBalancerService, family="load-balancers", blueprint=blp,
    schema=LoadBalancerSchema, patch_schema=LoadBalancerPatchSchema,
    list_schema=LoadBalancerListSchema, list_query=LoadBalancerListQuery,
    noun="load balancer", location="/v1/load-balancers/{id}", path_var="load_balancer_id",
    example=crud.Example(
        sample_id="4a3b2c1d-0e9f-4a8b-b7c6-d5e4f3a2b1c0",
        body={"name": "web", "vip": "192.0.2.100", "protocol": "tcp",
              "listeners": [{"port": 80, "backend_port": 8080}]},
        references=(("networks", {"networks": [NETWORK]}),
                    ("gateways", {"gateways": [gateways.GATEWAY_KIND.example.sample_id]})),
        ),
    notes={"delete": " The VIP's reservation and, with a health check, the probes' source "
                     "addresses are released."})
crud.collection(KIND)
crud.item(KIND, "/<uuid:load_balancer_id>")


@blp.route("/<uuid:load_balancer_id>/backends")
class Backends(MethodView):
    @blp.arguments(Backend())
    @blp.response(201, Backend)
    def post(self, backend: dict[str, Any], load_balancer_id: Any) -> Any:
        """Add one backend (If-Match honoured)

        The same checks as a PATCH of `backends`, without sending the whole list: a
        backend already there is 409. Answers the backend, with the load balancer's new
        revision as ETag."""
        doc = service(LoadBalancerService).add_backend(
            principal("load-balancers", "write"), str(load_balancer_id), backend, if_match())
        g.audit_resource = doc["id"]
        return backend, 201, {"ETag": f'"{doc["revision"]}"', "Location":
                              f"/v1/load-balancers/{doc['id']}/backends/{backend['ip']}"}


@blp.route("/<uuid:load_balancer_id>/backends/<string:ip>")
class BackendItem(MethodView):
    @blp.arguments(BackendQuery(), location="query")
    @blp.response(200, Backend)
    def get(self, query: dict[str, Any], load_balancer_id: Any, ip: str) -> Any:
        """One backend of a load balancer (the first with this address, and `port`)

        Answers the backend as it was added, with the load balancer's revision as ETag;
        its health is in the load balancer's `status.backends`."""
        doc = service(LoadBalancerService).get(principal("load-balancers", "read"),
                                               str(load_balancer_id))
        found = [b for b in doc["backends"] if b["ip"] == _address(ip)
                 and ("port" not in query or b.get("port") == query["port"])]
        if not found:
            raise NotFound.field("ip", "backend")
        return found[0], 200, {"ETag": f'"{doc["revision"]}"'}

    @blp.arguments(BackendQuery(), location="query")
    @blp.response(204)
    def delete(self, query: dict[str, Any], load_balancer_id: Any, ip: str) -> None:
        """Remove one backend (If-Match honoured)

        The backend with this address (and `port`, when given; otherwise every backend of
        the address). Not a backend: 404."""
        doc = service(LoadBalancerService).remove_backend(
            principal("load-balancers", "write"), str(load_balancer_id), ip,
            query.get("port"), if_match())
        g.audit_resource = doc["id"]


def _address(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip  # matches no backend: 404 like any other absent one

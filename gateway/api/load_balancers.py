"""/v1/load-balancers"""

from __future__ import annotations

from gateway.api import crud, gateways, networks
from gateway.api.common import Blueprint
from gateway.schemas.load_balancers import (
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
        body={"name": "web", "vip": "172.30.0.100", "protocol": "tcp",
              "listeners": [{"port": 80, "backend_port": 8080}]},
        references=(("networks", {"networks": [NETWORK]}),
                    ("gateways", {"gateways": [gateways.GATEWAY_KIND.example.sample_id]})),
        ),
    notes={"delete": " The VIP's reservation and, with a health check, the probes' source "
                     "addresses are released."})
crud.collection(KIND)
crud.item(KIND, "/<uuid:load_balancer_id>")

"""Load balancers: request and response shapes."""

from __future__ import annotations

from marshmallow import fields, validate

from gateway.schemas.common import (
    IP,
    ListQuery,
    ResourceSchema,
    StrictSchema,
    list_schema,
    patch_schema,
)

PORT = validate.Range(min=1, max=65535)


class Listener(StrictSchema):
    port = fields.Integer(strict=True, required=True, validate=PORT, metadata={
        "description": "Port clients connect to on the VIP; unique per load balancer.",
        "example": 80})
    backend_port = fields.Integer(strict=True, validate=PORT, metadata={
        "description": "Port of the backends; default: the same as port.", "example": 8080})


class Backend(StrictSchema):
    ip = IP(required=True, metadata={
        "description": "An address inside one of the tenant's networks, of the VIP's "
                       "family; with a health check, the address of one of the tenant's "
                       "ports.", "example": "10.0.0.11"})
    port = fields.Integer(strict=True, validate=PORT, metadata={
        "description": "Overrides the listeners' backend_port for this backend.",
        "example": 8080})


class HealthCheck(StrictSchema):
    interval = fields.Integer(strict=True, load_default=5, validate=validate.Range(
        min=1, max=3600), metadata={"description": "Seconds between probes; default 5.",
                                    "example": 5})
    timeout = fields.Integer(strict=True, load_default=3, validate=validate.Range(
        min=1, max=3600), metadata={"description": "Seconds a probe may take; default 3.",
                                    "example": 3})
    success_count = fields.Integer(strict=True, load_default=2, validate=validate.Range(
        min=1, max=100), metadata={"description": "Successes that make a backend online; "
                                                  "default 2.", "example": 2})
    failure_count = fields.Integer(strict=True, load_default=2, validate=validate.Range(
        min=1, max=100), metadata={"description": "Failures that make a backend offline; "
                                                  "default 2.", "example": 2})


class BackendStatus(StrictSchema):
    ip = fields.String(metadata={"description": "The backend's address.",
                                 "example": "10.0.0.11"})
    port = fields.Integer(metadata={"description": "The backend port probed.",
                                    "example": 8080})
    status = fields.String(metadata={
        "description": "online or offline as OVN's service monitor reports it; unknown "
                       "without a health check, without the southbound database, or before "
                       "the first probe.", "example": "online"})


class LoadBalancerStatus(StrictSchema):
    backends = fields.List(fields.Nested(BackendStatus), metadata={
        "description": "Health of each backend and backend port (read-only)."})


class LoadBalancerSchema(ResourceSchema):
    """A virtual IP spread over backends by OVN's load balancer, on the tenant's networks
    and gateways."""

    vip = IP(metadata={
        "description": "The virtual IP (IPv4 or IPv6). Inside an attached network's cidr it "
                       "is reserved there (no port gets it, a port holding it is 409) and "
                       "answered for on the network; absent with external_network_id: "
                       "allocated from that external network. Fixed at create.",
        "example": "10.0.0.100"})
    external_network_id = fields.UUID(metadata={
        "description": "An external network the VIP is an address of (allocated from its "
                       "pools when vip is absent); reachable from outside through the "
                       "attached gateways on it. Fixed at create.",
        "example": "0f3b6a8c-2d1e-4b7a-9c5d-6e8f1a2b3c4d"})
    protocol = fields.String(load_default="tcp", validate=validate.OneOf(
        ["tcp", "udp", "sctp"]), metadata={"description": "tcp (default), udp or sctp; "
                                                          "fixed at create.",
                                           "example": "tcp"})
    listeners = fields.List(fields.Nested(Listener), required=True,
                            validate=validate.Length(min=1, max=64), metadata={
        "description": "1 to 64 listeners; a repeated port is 409."})
    backends = fields.List(fields.Nested(Backend), load_default=list,
                           validate=validate.Length(max=4096), metadata={
        "description": "Up to 4096 backends; an address twice (with the same port) is 409."})
    networks = fields.List(fields.UUID(), load_default=list,
                           validate=validate.Length(max=64), metadata={
        "description": "The tenant's networks whose ports reach the VIP (OVN load balancer "
                       "on their switches).",
        "example": ["8a1f6c2e-0b4d-4c55-9f1e-3b2a7d9c4e10"]})
    gateways = fields.List(fields.UUID(), load_default=list,
                           validate=validate.Length(max=16), metadata={
        "description": "The tenant's gateways that serve the VIP (for clients beyond them, "
                       "e.g. outside for a VIP on an external network).",
        "example": ["7e2d1c4b-3a5f-4e6d-8b9a-0c1d2e3f4a5b"]})
    health_check = fields.Nested(HealthCheck, allow_none=True, metadata={
        "description": "Probe the backends (OVN service monitor; tcp and udp only). Offline "
                       "backends get no new connections. null: no health check."})
    session_affinity_timeout = fields.Integer(
        strict=True, allow_none=True, validate=validate.Range(min=1, max=65535), metadata={
            "description": "Seconds a client stays on the backend it was given (OVN "
                           "affinity_timeout); null: no affinity.", "example": 300})
    status = fields.Nested(LoadBalancerStatus, dump_only=True, metadata={
        "description": "Backend health (read-only)."})


LoadBalancerPatchSchema = patch_schema(
    LoadBalancerSchema, ("vip", "external_network_id", "protocol"), "LoadBalancerPatch")
LoadBalancerListSchema = list_schema(LoadBalancerSchema, "LoadBalancerList")


class LoadBalancerListQuery(ListQuery):
    pass


class BackendQuery(StrictSchema):
    port = fields.Integer(strict=False, validate=PORT, metadata={
        "description": "Only the backend with this port override.", "example": 8080})

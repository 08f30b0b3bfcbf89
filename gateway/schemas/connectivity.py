"""Request and answer of POST /v1/connectivity-checks."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from gateway.schemas.common import StrictSchema, Text, UnicastIP

PROTOCOLS = ("tcp", "udp", "icmp")


class Target(StrictSchema):
    port = fields.UUID(metadata={
        "description": "One of the caller's ports (another tenant's is 404 naming `to.port`). "
                       "The packet goes to its address of the source's family (IPv4 first).",
        "example": "5d0c3b8e-7a41-4f6b-a2d9-1e6f0c9b3a22"})
    ip = UnicastIP(metadata={
        "description": "Any unicast address: a port's, a load balancer VIP, a floating IP, or "
                       "an address beyond the source network's gateway.",
        "example": "172.16.0.1"})

    @validates_schema
    def _one(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("port" in data) == ("ip" in data):
            raise ValidationError("give exactly one of port and ip", "_schema")


class ConnectivityCheckSchema(StrictSchema):
    from_port = fields.UUID(required=True, metadata={
        "description": "The caller's port the packet leaves from, with its own MAC and "
                       "address (another tenant's is 404 naming `from_port`).",
        "example": "0b9d2c4e-1f3a-4b5c-8d6e-7f8091a2b3c4"})
    to = fields.Nested(Target, required=True, metadata={
        "description": "The destination: exactly one of `port` and `ip`."})
    protocol = Text(required=True, validate=validate.OneOf(PROTOCOLS), metadata={
        "description": "`tcp` or `udp` (a new connection to `port`), or `icmp` (an echo "
                       "request).", "example": "tcp"})
    port = fields.Integer(strict=True, validate=validate.Range(min=1, max=65535), metadata={
        "description": "Destination port, 1-65535: required for tcp and udp, refused for "
                       "icmp.", "example": 5432})

    @validates_schema
    def _port(self, data: dict[str, Any], **kwargs: Any) -> None:
        protocol = data.get("protocol")
        if protocol == "icmp" and "port" in data:
            raise ValidationError("not allowed with protocol icmp", "port")
        if protocol in ("tcp", "udp") and "port" not in data:
            raise ValidationError(f"required with protocol {protocol}", "port")


class PacketSchema(StrictSchema):
    protocol = fields.String(metadata={"description": "tcp, udp or icmp."})
    src_ip = fields.String(metadata={"description": "The source port's address."})
    src_mac = fields.String(metadata={"description": "The source port's MAC."})
    dst_ip = fields.String(metadata={"description": "The destination address as sent."})
    dst_mac = fields.String(metadata={
        "description": "The destination MAC as the source would send it: the destination "
                       "port's on the same network, the load balancer router's for a VIP "
                       "there, else the gateway's router port on the source network."})
    src_port = fields.Integer(metadata={"description": "TCP/UDP source port (tcp, udp)."})
    dst_port = fields.Integer(metadata={"description": "TCP/UDP destination port (tcp, udp)."})


class HopSchema(StrictSchema):
    type = fields.String(metadata={
        "description": "`network`, `gateway`, `external-network` or "
                       "`load-balancer-router` (the router that answers a network's VIPs)."})
    id = fields.String(metadata={
        "description": "The network, gateway or external network id; for a "
                       "load-balancer-router, the network it serves."})
    name = fields.String(metadata={"description": "Its name (absent for load-balancer-router)."})


class TranslationSchema(StrictSchema):
    type = fields.String(metadata={
        "description": "`snat` (source rewritten: a gateway's SNAT address or a floating "
                       "IP), `dnat` (destination rewritten: a floating IP to its port) or "
                       "`load-balancer` (a VIP to one backend)."})
    original = fields.String(metadata={"description": "The address (and port) before."})
    translated = fields.String(metadata={"description": "The address (and port) after."})
    gateway_id = fields.String(metadata={"description": "The gateway that translated (NAT)."})
    load_balancer_id = fields.String(metadata={
        "description": "The caller's load balancer with this VIP and listener."})


class PolicyRefSchema(StrictSchema):
    id = fields.String(metadata={"description": "The policy id."})
    name = fields.String(metadata={"description": "The policy name."})
    direction = fields.String(metadata={
        "description": "`ingress` (to the destination port) or `egress` (from the source)."})
    rule = fields.String(metadata={
        "description": "The ACL's rule as `GET /v1/policies/{id}/rules` names it: "
                       "`ingress/0`, `egress/default`, `ingress/1/reply`, ..."})
    index = fields.Integer(allow_none=True, metadata={
        "description": "Index of the rule in the policy's `ingress`/`egress` list (from 0); "
                       "null for the default drop of an isolated port and other rows."})
    action = fields.String(metadata={
        "description": "`allow`, `deny`, or `default-deny` (no rule allowed the packet on "
                       "a port the policy isolates)."})


class BackendResultSchema(StrictSchema):
    ip = fields.String(metadata={"description": "The backend address."})
    port = fields.Integer(metadata={"description": "The backend port."})
    result = fields.String(metadata={"description": "`allowed` or `dropped`, traced "
                                                    "with this backend chosen."})
    policy = fields.Nested(PolicyRefSchema, allow_none=True, metadata={
        "description": "The policy rule that decided for this backend, or null."})


class LoadBalancerResultSchema(StrictSchema):
    id = fields.String(allow_none=True, metadata={
        "description": "The caller's load balancer with this VIP and listener, or null."})
    name = fields.String(allow_none=True, metadata={"description": "Its name, or null."})
    vip = fields.String(metadata={"description": "The VIP the packet was sent to."})
    port = fields.Integer(metadata={"description": "The listener port."})
    backends = fields.List(fields.Nested(BackendResultSchema), metadata={
        "description": "Every backend OVN balances over (at most 16 traced), each "
                       "traced as the chosen one."})


class ConnectivityResultSchema(StrictSchema):
    result = fields.String(metadata={
        "description": "`allowed`: OVN delivers the packet to the destination (for an IP "
                       "beyond the gateway: out of the external network); `dropped`: it "
                       "does not. Through a load balancer: allowed when at least one "
                       "backend is reached.", "example": "dropped"})
    reason = fields.String(metadata={"description": "One sentence: where the packet ended."})
    complete = fields.Boolean(metadata={
        "description": "False when the trace stopped before the end (the router must "
                       "first resolve the next hop with ARP: OVN holds the packet until it "
                       "answers); `notes` says why."})
    packet = fields.Nested(PacketSchema, metadata={"description": "The packet traced."})
    path = fields.List(fields.Nested(HopSchema), metadata={
        "description": "The logical switches and routers the packet crossed, in order."})
    translations = fields.List(fields.Nested(TranslationSchema), metadata={
        "description": "NAT and load balancer rewrites seen on the way, in order."})
    policy = fields.Nested(PolicyRefSchema, allow_none=True, metadata={
        "description": "The policy rule that decided: the drop, or the last allow on the "
                       "way; null when no policy filters this traffic."})
    policies = fields.List(fields.Nested(PolicyRefSchema), metadata={
        "description": "Every policy rule the packet met, in order."})
    load_balancer = fields.Nested(LoadBalancerResultSchema, metadata={
        "description": "Present when the destination is a load balancer VIP."})
    notes = fields.List(fields.String(), metadata={
        "description": "What the trace could not show."})

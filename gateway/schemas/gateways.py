"""External networks, gateways and floating IPs: request and response shapes."""

from __future__ import annotations

from marshmallow import fields, validate

from gateway.schemas.common import (
    IP,
    CIDRv4,
    FullRegexp,
    IPv4,
    ListQuery,
    ResourceSchema,
    StrictSchema,
    list_schema,
    patch_schema,
)


class AllocationPool(StrictSchema):
    start = IPv4(required=True, metadata={"description": "First address of the pool.",
                                          "example": "172.16.0.10"})
    end = IPv4(required=True, metadata={"description": "Last address of the pool.",
                                        "example": "172.16.0.200"})


class ExternalNetworkSchema(ResourceSchema):
    """A provider network outside OVN (admins write, every tenant reads): a logical switch
    with a localnet port on `physical_network`."""

    cidr = CIDRv4(required=True, metadata={
        "description": "IPv4 prefix of the external network, /29 or larger; fixed at create.",
        "example": "172.16.0.0/24"})
    gateway_ip = IPv4(metadata={
        "description": "The upstream router on the external network: gateways route their "
                       "default route to it. Default: the first host of cidr.",
        "example": "172.16.0.1"})
    allocation_pools = fields.List(fields.Nested(AllocationPool),
                                   validate=validate.Length(max=16), metadata={
        "description": "Ranges the gateway allocates gateway addresses and floating IPs "
                       "from; default: every host of cidr but gateway_ip. At most 16.",
        "example": [{"start": "172.16.0.10", "end": "172.16.0.200"}]})
    physical_network = fields.String(required=True, validate=FullRegexp(
        r"^[A-Za-z0-9_.-]{1,64}$", error="letters, digits, '_', '.' and '-', 1 to 64"),
        metadata={"description": "The bridge mapping name on the chassis "
                                 "(`ovn-bridge-mappings=<name>:<bridge>`); fixed at create.",
                  "example": "physnet1"})
    vlan = fields.Integer(strict=True, validate=validate.Range(min=1, max=4094), metadata={
        "description": "VLAN id of the external network on the physical network; absent: "
                       "untagged. Fixed at create.", "example": 100})


EXTERNAL_IMMUTABLE = ("cidr", "physical_network", "vlan")
ExternalNetworkPatchSchema = patch_schema(ExternalNetworkSchema, EXTERNAL_IMMUTABLE,
                                          "ExternalNetworkPatch")
ExternalNetworkListSchema = list_schema(ExternalNetworkSchema, "ExternalNetworkList")


class ExternalNetworkListQuery(ListQuery):
    pass


class Attachment(StrictSchema):
    network_id = fields.UUID(required=True, metadata={
        "description": "A network of the gateway's tenant (another tenant's is 404).",
        "example": "8a1f6c2e-0b4d-4c55-9f1e-3b2a7d9c4e10"})
    ip = IPv4(metadata={
        "description": "The router's address on the network; default: the network's "
                       "gateway_ip (what its DHCP offers as router).",
        "example": "10.0.0.1"})


class ExternalAttachment(StrictSchema):
    network_id = fields.UUID(required=True, metadata={
        "description": "The external network the gateway reaches the outside through.",
        "example": "0f3b6a8c-2d1e-4b7a-9c5d-6e8f1a2b3c4d"})
    ip = IPv4(metadata={
        "description": "The gateway's address there; default: allocated from the external "
                       "network's pools. It is the source of SNAT-ed traffic.",
        "example": "172.16.0.10"})
    snat = fields.Boolean(load_default=True, metadata={
        "description": "Translate outgoing connections of every attached network to ip; "
                       "default true.", "example": True})


class Route(StrictSchema):
    prefix = fields.String(required=True, metadata={
        "description": "Destination prefix (IPv4 or IPv6 CIDR). Repeating a prefix with "
                       "other nexthops spreads traffic over them (ECMP).",
        "example": "10.50.0.0/24"})
    nexthop = IP(required=True, metadata={
        "description": "Next hop: an address inside an attached network or the external "
                       "network (anything else is 400).", "example": "10.0.0.5"})


class GatewayStatus(StrictSchema):
    chassis = fields.String(allow_none=True, metadata={
        "description": "The chassis where the external port is active, when the southbound "
                       "database is configured and has bound it; otherwise null.",
        "example": "chassis-1"})
    gateway_chassis = fields.List(fields.String(), metadata={
        "description": "The chassis the external port may be placed on, highest priority "
                       "first (several give HA).", "example": ["chassis-1"]})


class GatewaySchema(ResourceSchema):
    """A tenant router: attached networks route to each other, and through `external` to
    the outside."""

    networks = fields.List(fields.Nested(Attachment), load_default=list,
                           validate=validate.Length(max=64), metadata={
        "description": "Attached networks (at most 64): each gets a router port. A network "
                       "is attached to one gateway at a time; overlapping cidrs on one "
                       "gateway are 409."})
    external = fields.Nested(ExternalAttachment, allow_none=True, metadata={
        "description": "The gateway port on an external network, with a default route to "
                       "its gateway_ip and SNAT; absent or null: no outside access."})
    routes = fields.List(fields.Nested(Route), load_default=list,
                         validate=validate.Length(max=256), metadata={
        "description": "Static routes, at most 256."})
    status = fields.Nested(GatewayStatus, dump_only=True, metadata={
        "description": "Where the gateway runs (read-only)."})


GatewayPatchSchema = patch_schema(GatewaySchema, (), "GatewayPatch")
GatewayListSchema = list_schema(GatewaySchema, "GatewayList")


class GatewayListQuery(ListQuery):
    pass


class FloatingIpSchema(ResourceSchema):
    """An external address mapped 1:1 to a port, through the gateway that serves the port's
    network."""

    read_only = (*ResourceSchema.read_only, "gateway_id")

    external_network_id = fields.UUID(required=True, metadata={
        "description": "The external network the address comes from; fixed at create.",
        "example": "0f3b6a8c-2d1e-4b7a-9c5d-6e8f1a2b3c4d"})
    ip = IPv4(metadata={
        "description": "The floating address: requested, or allocated from the external "
                       "network's pools. Fixed at create.", "example": "172.16.0.11"})
    port_id = fields.UUID(allow_none=True, metadata={
        "description": "The port it maps to; absent or null: held unassigned. PATCH it to "
                       "re-associate. The port's network must be attached to a gateway "
                       "whose external port is on the same external network (409 "
                       "otherwise).", "example": "5d0c3b8e-7a41-4f6b-a2d9-1e6f0c9b3a22"})
    gateway_id = fields.UUID(dump_only=True, allow_none=True, metadata={
        "description": "The gateway that translates it (read-only); null when unassigned.",
        "example": "7e2d1c4b-3a5f-4e6d-8b9a-0c1d2e3f4a5b"})


FloatingIpPatchSchema = patch_schema(FloatingIpSchema, ("external_network_id", "ip"),
                                     "FloatingIpPatch")
FloatingIpListSchema = list_schema(FloatingIpSchema, "FloatingIpList")


class FloatingIpListQuery(ListQuery):
    port_id = fields.UUID(metadata={"description": "Only the floating IP of this port.",
                                    "example": "5d0c3b8e-7a41-4f6b-a2d9-1e6f0c9b3a22"})

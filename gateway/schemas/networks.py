"""Networks and ports: request and response shapes."""

from __future__ import annotations

from marshmallow import fields, validate

from gateway.schemas.common import (
    FQDN,
    IP,
    MAC,
    CIDRv4,
    CIDRv6,
    Hostname,
    IPv4,
    ListQuery,
    ResourceSchema,
    StrictSchema,
    list_schema,
    patch_schema,
)

LEASE = validate.Range(min=60, max=2**31 - 1)


class StaticRoute(StrictSchema):
    destination = CIDRv4(required=True)
    nexthop = IPv4(required=True)


class DhcpV6(StrictSchema):
    enabled = fields.Boolean(load_default=True)
    mode = fields.String(load_default="stateful", validate=validate.OneOf(
        ["stateful", "stateless"]))


class DhcpOptions(StrictSchema):
    """Options a port may override; the network's values stay for the rest."""

    lease_time = fields.Integer(strict=True, validate=LEASE, metadata={"description": "seconds"})
    dns_servers = fields.List(IP(), validate=validate.Length(max=8))
    domain_name = FQDN()
    ntp_servers = fields.List(IPv4(), validate=validate.Length(max=8))
    routes = fields.List(fields.Nested(StaticRoute), validate=validate.Length(max=32),
                         metadata={"description": "classless static routes (option 121)"})
    mtu = fields.Integer(strict=True, validate=validate.Range(min=68, max=9216))


class NetworkDhcp(DhcpOptions):
    enabled = fields.Boolean(load_default=True)
    lease_time = fields.Integer(strict=True, load_default=43200, validate=LEASE)
    ipv6 = fields.Nested(DhcpV6, load_default=lambda: {"enabled": True, "mode": "stateful"})


class NetworkSchema(ResourceSchema):
    cidr = CIDRv4(required=True)
    ipv6_cidr = CIDRv6()
    gateway_ip = IPv4(metadata={"description": "default: the first host of cidr"})
    mtu = fields.Integer(strict=True, validate=validate.Range(min=68, max=9216))
    dns_domain = FQDN()
    dhcp = fields.Nested(NetworkDhcp, load_default=lambda: {
        "enabled": True, "lease_time": 43200, "ipv6": {"enabled": True, "mode": "stateful"}})


NETWORK_IMMUTABLE = ("cidr", "ipv6_cidr")
NetworkPatchSchema = patch_schema(NetworkSchema, NETWORK_IMMUTABLE, "NetworkPatch")
NetworkListSchema = list_schema(NetworkSchema, "NetworkList")


class NetworkListQuery(ListQuery):
    pass


class NetworkDeleteQuery(StrictSchema):
    cascade = fields.Boolean(load_default=False)


class PortSchema(ResourceSchema):
    read_only = (*ResourceSchema.read_only, "network_id")

    network_id = fields.UUID(dump_only=True)
    mac = MAC(metadata={"description": "generated when absent; unique in the network"})
    ips = fields.List(IP(), validate=validate.Length(min=1, max=8),
                      metadata={"description": "allocated from the network when absent"})
    port_security = fields.Boolean(load_default=True)
    enabled = fields.Boolean(load_default=True)
    hostname = Hostname()
    dhcp = fields.Nested(DhcpOptions, load_default=dict,
                         metadata={"description": "per-port DHCP option overrides"})
    status = fields.String(dump_only=True, validate=validate.OneOf(["up", "down"]))


PortPatchSchema = patch_schema(PortSchema, (), "PortPatch")
PortListSchema = list_schema(PortSchema, "PortList")


class PortListQuery(ListQuery):
    network_id = fields.UUID()

"""Networks and ports: request and response shapes."""

from __future__ import annotations

import ipaddress

from marshmallow import ValidationError, fields, validate

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
    UnicastIP,
    UnicastIPv4,
    list_schema,
    patch_schema,
)
from gateway.schemas.dns import not_reverse

LEASE = validate.Range(min=60, max=2**31 - 1)
# Blocks no tenant network may overlap: their addresses never belong to a host on a switch.
_SPECIAL: dict[int, tuple[tuple[str, str], ...]] = {
    4: (("0.0.0.0/8", "'this network'"), ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"), ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved, with the broadcast address")),
    6: (("::/128", "the unspecified address"), ("::1/128", "loopback"),
        ("fe80::/10", "link-local"), ("ff00::/8", "multicast")),
}


def host_prefix(value: str) -> None:
    """A network's prefix must hold host addresses only."""
    net = ipaddress.ip_network(value)
    if net.prefixlen == 0:
        raise ValidationError("the whole address space is not a network")
    for block, what in _SPECIAL[net.version]:
        if net.overlaps(ipaddress.ip_network(block)):
            raise ValidationError(f"overlaps {block} ({what})")


class StaticRoute(StrictSchema):
    """A classless static route offered by DHCPv4 (option 121)."""

    destination = CIDRv4(required=True, metadata={
        "description": "Destination prefix (IPv4 CIDR).", "example": "192.168.0.0/16"})
    nexthop = UnicastIPv4(required=True, metadata={
        "description": "Next hop; must be a host address of the network's cidr (400 "
                       "otherwise).",
        "example": "10.0.0.254"})


class DhcpV6(StrictSchema):
    """DHCPv6 on the network's ipv6_cidr (only when the network has one)."""

    enabled = fields.Boolean(load_default=True, metadata={
        "description": "Serve DHCPv6 on ipv6_cidr; default true.", "example": True})
    mode = fields.String(load_default="stateful", validate=validate.OneOf(
        ["stateful", "stateless"]), metadata={
        "description": "stateful (default): DHCPv6 also hands out the ports' addresses; "
                       "stateless: options only (OVN `dhcpv6_stateless`).",
        "example": "stateful"})


class DhcpOptions(StrictSchema):
    """Options a port may override; the network's values stay for the rest."""

    lease_time = fields.Integer(strict=True, validate=LEASE, metadata={
        "description": "DHCPv4 lease time in seconds (at least 60).", "example": 3600})
    dns_servers = fields.List(UnicastIP(), validate=validate.Length(max=8), metadata={
        "description": "DNS servers offered to clients, at most 8: the IPv4 ones by DHCPv4, "
                       "the IPv6 ones by DHCPv6 (an IPv6 one on a network without "
                       "ipv6_cidr is 400). Unspecified, loopback, multicast and broadcast "
                       "addresses, and the network's own network and broadcast addresses, "
                       "are 400.",
        "example": ["10.0.0.53"]})
    domain_name = FQDN(metadata={
        "description": "Domain name offered by DHCPv4 (and as DHCPv6 domain search); "
                       "defaults to the network's dns_domain.",
        "example": "web.internal"})
    ntp_servers = fields.List(UnicastIPv4(), validate=validate.Length(max=8), metadata={
        "description": "IPv4 NTP servers offered by DHCPv4, at most 8; unusable addresses "
                       "are 400 as for dns_servers.",
        "example": ["10.0.0.123"]})
    routes = fields.List(fields.Nested(StaticRoute), validate=validate.Length(max=32),
                         metadata={"description": "Classless static routes (DHCPv4 option "
                                                  "121), at most 32. Unless one of them is "
                                                  "for 0.0.0.0/0, the default route via "
                                                  "gateway_ip is added to them."})
    mtu = fields.Integer(strict=True, validate=validate.Range(min=68, max=9216), metadata={
        "description": "Interface MTU offered by DHCPv4 (68 to 9216); defaults to the "
                       "network's mtu.",
        "example": 1442})


class NetworkDhcp(DhcpOptions):
    """The network's DHCP settings: one DHCP_Options row for cidr, one for ipv6_cidr."""

    enabled = fields.Boolean(load_default=True, metadata={
        "description": "Serve DHCP on the network; default true. false removes the "
                       "network's DHCP options, so no port gets DHCP.",
        "example": True})
    lease_time = fields.Integer(strict=True, load_default=43200, validate=LEASE, metadata={
        "description": "DHCPv4 lease time in seconds (at least 60); default 43200.",
        "example": 3600})
    ipv6 = fields.Nested(DhcpV6, load_default=lambda: {"enabled": True, "mode": "stateful"},
                         metadata={"description": "DHCPv6 settings; default enabled, "
                                                  "stateful."})


class NetworkSchema(ResourceSchema):
    """A tenant network: an OVN logical switch with its DHCP options."""

    cidr = CIDRv4(required=True, validate=host_prefix, metadata={
        "description": "IPv4 prefix of the network, /29 or larger. Fixed at create: a PATCH "
                       "that sends it is 400 (read-only field). Prefixes overlapping "
                       "0.0.0.0/8, loopback, link-local, multicast or 240.0.0.0/4 are 400.",
        "example": "10.0.0.0/24"})
    ipv6_cidr = CIDRv6(validate=host_prefix, metadata={
        "description": "Optional IPv6 prefix, /120 or larger; ports get an address from it. "
                       "Fixed at create, like cidr. ::/0 and prefixes overlapping ::, ::1, "
                       "link-local (fe80::/10) or multicast (ff00::/8) are 400.",
        "example": "fd00:10::/64"})
    gateway_ip = IPv4(metadata={
        "description": "The network's gateway: a host address of cidr, default its first "
                       "host. DHCP offers it as router; ports never get it.",
        "example": "10.0.0.1"})
    mtu = fields.Integer(strict=True, validate=validate.Range(min=68, max=9216), metadata={
        "description": "MTU of the network (68 to 9216), offered by DHCP unless dhcp.mtu "
                       "says otherwise.",
        "example": 1442})
    dns_domain = FQDN(validate=not_reverse, metadata={
        "description": "DNS domain: a port with a hostname gets the automatic record "
                       "<hostname>.<dns_domain> (a domain that makes one longer than 253 "
                       "characters is 400, as is a reverse zone); DHCP offers it as domain "
                       "name unless dhcp.domain_name is set.",
        "example": "web.internal"})
    dhcp = fields.Nested(NetworkDhcp, load_default=lambda: {
        "enabled": True, "lease_time": 43200, "ipv6": {"enabled": True, "mode": "stateful"}},
        metadata={"description": "DHCP settings; default enabled with a 43200 s lease."})


NETWORK_IMMUTABLE = ("cidr", "ipv6_cidr")
NetworkPatchSchema = patch_schema(NetworkSchema, NETWORK_IMMUTABLE, "NetworkPatch")
NetworkListSchema = list_schema(NetworkSchema, "NetworkList")


class NetworkListQuery(ListQuery):
    pass


class NetworkDeleteQuery(StrictSchema):
    cascade = fields.Boolean(load_default=False, metadata={
        "description": "true: delete the network's ports with it. Without it a network "
                       "that has ports is 409. Ports another tool put on the network's "
                       "switch are 409 either way: the gateway never deletes them."})


class PortSchema(ResourceSchema):
    """A port of a tenant network: an OVN logical switch port."""

    read_only = (*ResourceSchema.read_only, "network_id")

    network_id = fields.UUID(dump_only=True, metadata={
        "description": "The port's network, from the create URL; read-only.",
        "example": "a1604e83-671f-4586-a82c-8c88f1ebba5e"})
    mac = MAC(metadata={"description": "MAC address, unique in the network (409 otherwise). "
                                       "Generated when absent: locally administered, "
                                       "unicast, with the configured prefix. A PATCH "
                                       "re-addresses only with a new value (null is 400).",
                        "example": "0a:58:3f:aa:8f:23"})
    ips = fields.List(IP(), validate=validate.Length(min=1, max=8),
                      metadata={"description": "1 to 8 addresses in the network's cidr or "
                                               "ipv6_cidr; one outside them or in use is 409. "
                                               "Allocated when absent: the first free IPv4 "
                                               "address and, on a network with ipv6_cidr, "
                                               "an IPv6 one (EUI-64 on a /64). A PATCH "
                                               "re-addresses only with new values (null is "
                                               "400).",
                                "example": ["10.0.0.2"]})
    port_security = fields.Boolean(load_default=True, metadata={
        "description": "Let the port send only from its own MAC and IPs (OVN "
                       "port_security); default true.",
        "example": True})
    enabled = fields.Boolean(load_default=True, metadata={
        "description": "Administrative state (OVN `enabled`); default true.",
        "example": True})
    hostname = Hostname(metadata={
        "description": "One DNS label. On a network with a dns_domain the port gets the "
                       "automatic DNS record <hostname>.<dns_domain> and PTR records of its "
                       "IPs; a hostname that makes that name longer than 253 characters is "
                       "400.",
        "example": "web-1"})
    dhcp = fields.Nested(DhcpOptions, load_default=dict,
                         metadata={"description": "Per-port DHCP option overrides; the "
                                                  "network's settings apply for the rest."})
    status = fields.String(dump_only=True, validate=validate.OneOf(["up", "down"]), metadata={
        "description": "up once OVN reports the port bound to a chassis (the northbound "
                       "`up` column), down otherwise; read-only.",
        "example": "down"})


PortPatchSchema = patch_schema(PortSchema, (), "PortPatch")


def _explicit_readdressing() -> None:
    """A merge-patch null would re-allocate the address: a portal sending nulls must not
    renumber a running machine, so re-addressing takes the new value."""
    for key, what in (("ips", "the new ips"), ("mac", "the new mac")):
        field = PortPatchSchema._declared_fields[key]
        field.allow_none = False
        field.error_messages = {**field.error_messages, "null": (
            f"null would re-allocate the port's address: send {what} to re-address it, "
            "or leave the field out to keep it")}


_explicit_readdressing()
PortListSchema = list_schema(PortSchema, "PortList")


class PortListQuery(ListQuery):
    network_id = fields.UUID(metadata={"description": "Only the ports of this network."})

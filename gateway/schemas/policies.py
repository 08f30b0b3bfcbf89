"""Network policies: request and response shapes."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from gateway.schemas.common import (
    Labels,
    ListQuery,
    ResourceSchema,
    StrictSchema,
    list_schema,
    patch_schema,
)

PROTOCOLS = ("tcp", "udp", "sctp", "icmp", "any")
_RANGE = re.compile(r"([0-9]{1,5})-([0-9]{1,5})")
_PORT = re.compile(r"[0-9]{1,5}")


class PortRange(fields.Field):
    """80 or "8000-8080"; stored in that canonical form (a single port as an int)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool):
            raise ValidationError("a port number or a range like \"8000-8080\"")
        if isinstance(value, int):
            low = high = value
        elif isinstance(value, str) and (m := _RANGE.fullmatch(value)):
            low, high = int(m.group(1)), int(m.group(2))
        elif isinstance(value, str) and _PORT.fullmatch(value):
            low = high = int(value)
        else:
            raise ValidationError("a port number or a range like \"8000-8080\"")
        if not (1 <= low <= 65535 and 1 <= high <= 65535):
            raise ValidationError("ports are 1-65535")
        if low > high:
            raise ValidationError(f"range {low}-{high} is out of order")
        return low if low == high else f"{low}-{high}"

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


class Peer(StrictSchema):
    """The other end of a rule's traffic: exactly one of selector, cidr and network."""

    selector = Labels(metadata={"description": "The tenant's ports whose labels include all "
                                               "of these (their addresses, kept current as "
                                               "ports change).",
                                "example": {"app": "web"}})
    cidr = fields.String(metadata={"description": "An IPv4 or IPv6 CIDR (no host bits set).",
                                   "example": "192.0.2.0/24"})
    network = fields.UUID(metadata={"description": "Every address of one of the tenant's "
                                                   "networks (its cidr and ipv6_cidr); "
                                                   "another tenant's network is 404.",
                                    "example": "a1604e83-671f-4586-a82c-8c88f1ebba5e"})

    @validates_schema
    def _one_kind(self, data: dict[str, Any], **kwargs: Any) -> None:
        given = [k for k in ("selector", "cidr", "network") if k in data]
        if len(given) != 1:
            raise ValidationError("exactly one of selector, cidr, network", "_schema")
        if "cidr" in data:
            try:
                data["cidr"] = str(ipaddress.ip_network(data["cidr"], strict=True))
            except ValueError as exc:
                raise ValidationError(f"not a valid CIDR: {exc}", "cidr") from exc


class Rule(StrictSchema):
    """One rule: the first matching rule in policy order decides."""

    action = fields.String(required=True, validate=validate.OneOf(["allow", "deny"]),
                           metadata={"description": "allow or deny; at one policy priority "
                                                    "deny wins over allow.",
                                     "example": "allow"})
    peers = fields.List(fields.Nested(Peer), validate=validate.Length(max=32),
                        metadata={"description": "Sources (ingress) or destinations (egress), "
                                                 "at most 32; absent: any address."})
    protocol = fields.String(load_default="any", validate=validate.OneOf(PROTOCOLS), metadata={
        "description": "tcp, udp, sctp, icmp (ICMPv4 and ICMPv6) or any (default).",
        "example": "tcp"})
    ports = fields.List(PortRange(), validate=validate.Length(min=1, max=32),
                        metadata={"description": "Destination ports: numbers or ranges "
                                                 "\"low-high\" (1 to 65535), at most 32; only "
                                                 "with tcp, udp or sctp.",
                                  "example": [5432, "8000-8080"]})

    @validates_schema
    def _ports_need_l4(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("ports") and data.get("protocol", "any") not in ("tcp", "udp", "sctp"):
            raise ValidationError("ports need protocol tcp, udp or sctp", "ports")


class Log(StrictSchema):
    """ACL logging of the policy's rules (ovn-controller `acl_log`)."""

    enabled = fields.Boolean(load_default=False, metadata={
        "description": "Log the packets the policy's ACLs match, at most 100 lines per "
                       "second per tenant; default false.",
        "example": True})
    severity = fields.String(load_default="info", validate=validate.OneOf(
        ["alert", "warning", "notice", "info", "debug"]), metadata={
        "description": "Severity of the log lines; default info.", "example": "info"})


class PolicyStatus(StrictSchema):
    """What the policy applies to now (read-only)."""

    selected_ports = fields.Integer(strict=True, metadata={
        "description": "How many ports the policy selects.", "example": 1})


class PolicySchema(ResourceSchema):
    """A network policy: the tenant's ports it selects, and ordered allow/deny rules for
    their ingress and egress traffic."""

    selector = Labels(load_default=dict, metadata={
        "description": "The ports the policy applies to: the tenant's ports whose labels "
                       "include all of these; {} (the default) selects every port.",
        "example": {"app": "db"}})
    networks = fields.List(fields.UUID(), validate=validate.Length(max=64),
                           metadata={"description": "Only ports of these networks (the "
                                                    "tenant's; another tenant's is 404), at "
                                                    "most 64; absent: every network.",
                                     "example": ["a1604e83-671f-4586-a82c-8c88f1ebba5e"]})
    priority = fields.Integer(strict=True, load_default=500,
                              validate=validate.Range(min=0, max=1000), metadata={
        "description": "0 to 1000, default 500: rules of policies with a lower number are "
                       "evaluated first.",
        "example": 500})
    # No load_default: an absent list and an empty one mean different things, and the
    # stored document keeps which one was sent.
    ingress = fields.List(fields.Nested(Rule), validate=validate.Length(max=64), metadata={
        "description": "Rules for traffic to the selected ports, at most 64. Given (even "
                       "empty), it isolates the selected ports for ingress: IP traffic to "
                       "them that no rule of any policy selecting them allows is dropped, so "
                       "[] allows nothing (a default deny). Absent: the policy does not "
                       "isolate ingress. A PATCH with null removes it."})
    egress = fields.List(fields.Nested(Rule), validate=validate.Length(max=64), metadata={
        "description": "Rules for traffic from the selected ports, at most 64. Given (even "
                       "empty), it isolates the selected ports for egress: IP traffic from "
                       "them that no rule of any policy selecting them allows is dropped, so "
                       "[] allows nothing. Absent: the policy does not isolate egress. A "
                       "PATCH with null removes it."})
    stateful = fields.Boolean(load_default=True, metadata={
        "description": "true (default): allowed connections are tracked and their replies "
                       "pass (OVN allow-related); false: stateless ACLs, with the replies of "
                       "each allow rule allowed by a mirrored ACL.",
        "example": True})
    log = fields.Nested(Log, load_default=lambda: {"enabled": False, "severity": "info"},
                        metadata={"description": "ACL logging; default off."})
    status = fields.Nested(PolicyStatus, dump_only=True, metadata={
        "description": "Read-only: what the policy applies to now."})


PolicyPatchSchema = patch_schema(PolicySchema, (), "PolicyPatch")
PolicyListSchema = list_schema(PolicySchema, "PolicyList")


class PolicyListQuery(ListQuery):
    pass


class CompiledAcl(StrictSchema):
    """One OVN ACL of the policy's port group, as read back from the database."""

    direction = fields.String(metadata={
        "description": "to-lport (ingress rules) or from-lport (egress rules).",
        "example": "to-lport"})
    priority = fields.Integer(strict=True, metadata={
        "description": "OVN ACL priority: 2000 + (1000 - policy priority) * 2 for allow, one "
                       "more for deny; 1001 for ND/DHCP, 1000 for the default drop, 1 for the "
                       "conntrack ACL of stateless policies.",
        "example": 3000})
    match = fields.String(metadata={
        "description": "The OVN match expression.",
        "example": "outport == @ovngw_pd57e20fe253d433e9b9c7da7df63a14c && ip"})
    action = fields.String(metadata={
        "description": "OVN ACL action: allow-related, allow-stateless or drop.",
        "example": "allow-related"})
    label = fields.Integer(metadata={"description": "conntrack label of allowed connections",
                                     "example": 179443807})
    name = fields.String(metadata={"description": "<tenant>/<policy name> (at most 63 "
                                                  "characters), as acl_log lines show it.",
                                   "example": "acme/db-ingress"})
    log = fields.Boolean(metadata={"description": "Whether OVN logs the packets it matches.",
                                   "example": True})
    severity = fields.String(allow_none=True, metadata={
        "description": "Log severity; null when the ACL does not log.", "example": "info"})
    rule = fields.String(metadata={
        "description": "The rule it implements: ingress/<n>, egress/<n>, <direction>/default "
                       "(drop), <direction>/infra (ND, DHCP), <direction>/<n>/reply "
                       "(stateless replies) or conntrack.",
        "example": "ingress/0"})


class CompiledPolicy(StrictSchema):
    """What a policy became in the OVN northbound database."""

    port_group = fields.String(metadata={
        "description": "Name of the policy's Port_Group, which holds the selected ports.",
        "example": "ovngw_pd57e20fe253d433e9b9c7da7df63a14c"})
    address_sets = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                               metadata={"description": "The Address_Sets of the policy's "
                                                        "label-selected peers (one per IP "
                                                        "family), name -> addresses.",
                                         "example": {"ovngw_sfc4056cd9a9368cacfe4_ip4":
                                                     ["10.0.0.2", "10.0.0.3"]}})
    acls = fields.List(fields.Nested(CompiledAcl), metadata={
        "description": "The port group's ACLs, by direction and descending priority."})

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
    selector = Labels(metadata={"description": "ports of the tenant with these labels"})
    cidr = fields.String(metadata={"description": "IPv4 or IPv6 CIDR"})
    network = fields.UUID(metadata={"description": "every address of one of the tenant's "
                                                   "networks"})

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
    action = fields.String(required=True, validate=validate.OneOf(["allow", "deny"]))
    peers = fields.List(fields.Nested(Peer), validate=validate.Length(max=32),
                        metadata={"description": "absent: any source (ingress) or "
                                                 "destination (egress)"})
    protocol = fields.String(load_default="any", validate=validate.OneOf(PROTOCOLS))
    ports = fields.List(PortRange(), validate=validate.Length(min=1, max=32),
                        metadata={"description": "only with tcp, udp or sctp"})

    @validates_schema
    def _ports_need_l4(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("ports") and data.get("protocol", "any") not in ("tcp", "udp", "sctp"):
            raise ValidationError("ports need protocol tcp, udp or sctp", "ports")


class Log(StrictSchema):
    enabled = fields.Boolean(load_default=False)
    severity = fields.String(load_default="info", validate=validate.OneOf(
        ["alert", "warning", "notice", "info", "debug"]))


class PolicyStatus(StrictSchema):
    selected_ports = fields.Integer(strict=True)


class PolicySchema(ResourceSchema):
    selector = Labels(load_default=dict, metadata={"description": "{} selects every port"})
    networks = fields.List(fields.UUID(), validate=validate.Length(max=64),
                           metadata={"description": "only ports of these networks"})
    priority = fields.Integer(strict=True, load_default=500,
                              validate=validate.Range(min=0, max=1000))
    ingress = fields.List(fields.Nested(Rule), load_default=list,
                          validate=validate.Length(max=64))
    egress = fields.List(fields.Nested(Rule), load_default=list,
                         validate=validate.Length(max=64))
    stateful = fields.Boolean(load_default=True)
    log = fields.Nested(Log, load_default=lambda: {"enabled": False, "severity": "info"})
    status = fields.Nested(PolicyStatus, dump_only=True)


PolicyPatchSchema = patch_schema(PolicySchema, (), "PolicyPatch")
PolicyListSchema = list_schema(PolicySchema, "PolicyList")


class PolicyListQuery(ListQuery):
    pass


class CompiledAcl(StrictSchema):
    direction = fields.String()
    priority = fields.Integer(strict=True)
    match = fields.String()
    action = fields.String()
    label = fields.Integer(metadata={"description": "conntrack label of allowed connections"})
    name = fields.String()
    log = fields.Boolean()
    severity = fields.String(allow_none=True)
    rule = fields.String()


class CompiledPolicy(StrictSchema):
    port_group = fields.String()
    address_sets = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    acls = fields.List(fields.Nested(CompiledAcl))

"""Field types and the base schema shared by every resource."""

from __future__ import annotations

import copy
import ipaddress
import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate
from marshmallow.utils import missing

NAME_RE = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
_DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?)$")
_FQDN = re.compile(
    r"^(?=.{1,253}\.?$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)*[a-z]([-a-z0-9]{0,61}[a-z0-9])?\.?$")
_HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def label_key_errors(key: str) -> str | None:
    """Kubernetes label key: optional DNS-subdomain prefix, '/', then a 63-char name."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and not _DNS_SUBDOMAIN.fullmatch(prefix):
        return f"label key prefix {prefix!r} is not a DNS subdomain"
    if not _LABEL_NAME.fullmatch(name):
        return f"label key {key!r} is not a valid label name"
    return None


class Labels(fields.Dict):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(keys=fields.String(), values=fields.String(), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        result = super()._deserialize(value, attr, data, **kwargs)
        if result is None:
            return result
        errors = {}
        for key, val in result.items():
            problem = label_key_errors(key)
            if problem is None and val is not None and not _LABEL_VALUE.fullmatch(val):
                problem = f"label value {val!r} is not a valid label value"
            if problem:
                errors[key] = [problem]
        if len(result) > 64:
            errors["_schema"] = ["at most 64 labels"]
        if errors:
            raise ValidationError(errors)
        return result


class _Normalized(fields.String):
    """A string field whose value is checked and written back in canonical form."""

    kind = "value"

    def normalize(self, value: str) -> str:
        raise NotImplementedError

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return self.normalize(text)
        except ValueError as exc:
            raise ValidationError(f"not a valid {self.kind}: {text!r} ({exc})") from exc


class IPv4(_Normalized):
    kind = "IPv4 address"

    def normalize(self, value: str) -> str:
        return str(ipaddress.IPv4Address(value))


class IPv6(_Normalized):
    kind = "IPv6 address"

    def normalize(self, value: str) -> str:
        return str(ipaddress.IPv6Address(value))


class IP(_Normalized):
    kind = "IP address"

    def normalize(self, value: str) -> str:
        return str(ipaddress.ip_address(value))


class CIDRv4(_Normalized):
    kind = "IPv4 CIDR"

    def normalize(self, value: str) -> str:
        if "/" not in value:
            raise ValueError("prefix length missing")
        return str(ipaddress.IPv4Network(value, strict=True))


class CIDRv6(_Normalized):
    kind = "IPv6 CIDR"

    def normalize(self, value: str) -> str:
        if "/" not in value:
            raise ValueError("prefix length missing")
        return str(ipaddress.IPv6Network(value, strict=True))


class MAC(_Normalized):
    kind = "MAC address"

    def normalize(self, value: str) -> str:
        mac = value.lower().replace("-", ":")
        if not _MAC.fullmatch(mac):
            raise ValueError("expected six hex octets")
        if int(mac[:2], 16) & 1:
            raise ValueError("multicast address")
        if mac == "00:00:00:00:00:00":
            raise ValueError("all-zero address")
        return mac


class FQDN(_Normalized):
    kind = "domain name"

    def normalize(self, value: str) -> str:
        name = value.lower()
        if not _FQDN.fullmatch(name):
            raise ValueError("labels of letters, digits and '-', at most 253 characters")
        return name.rstrip(".")


class Hostname(_Normalized):
    kind = "hostname"

    def normalize(self, value: str) -> str:
        name = value.lower()
        if not _HOSTNAME.fullmatch(name):
            raise ValueError("one DNS label: letters, digits and '-', at most 63 characters")
        return name


class FullRegexp(validate.Regexp):
    """Regexp that must match the whole value: `$` alone lets a trailing newline through."""

    def __call__(self, value: Any) -> Any:
        pattern: Any = self.regex
        if not isinstance(value, str) or pattern.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


TENANT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


def name_field(**kwargs: Any) -> fields.String:
    return fields.String(validate=FullRegexp(
        NAME_RE, error="must match {regex}"), **kwargs)


class StrictSchema(Schema):
    """Unknown fields are errors; read-only fields are named as such."""

    read_only: tuple[str, ...] = ()

    @pre_load
    def _reject_read_only(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, dict):
            errors = {k: ["read-only field"] for k in self.read_only if k in data}
            if errors:
                raise ValidationError(errors)
        return data


class ResourceSchema(StrictSchema):
    read_only: tuple[str, ...] = ("id", "revision", "created_at", "updated_at", "status")

    id = fields.UUID(dump_only=True)
    name = name_field(required=True)
    tenant_id = fields.String(validate=FullRegexp(TENANT_PATTERN,
                                                       error="must match {regex}"),
                              metadata={"description": "admins only; defaults to the "
                                                       "caller's tenant"})
    description = fields.String(validate=validate.Length(max=1024))
    labels = Labels(load_default=dict)
    created_at = fields.String(dump_only=True)
    updated_at = fields.String(dump_only=True)
    revision = fields.Integer(dump_only=True)


def patch_schema(base: type[Schema], immutable: tuple[str, ...] = (),
                 name: str | None = None) -> type[Schema]:
    """The merge-patch variant of a schema: nothing required, no defaults, null deletes."""
    declared: dict[str, Any] = {}
    for key, field in base._declared_fields.items():
        if field.dump_only or key in immutable or key == "tenant_id":
            continue
        clone = copy.deepcopy(field)
        clone.required = False
        clone.load_default = missing
        clone.allow_none = True
        if isinstance(clone, Labels) and clone.value_field is not None:
            # Field copies are shallow: give the clone a value field of its own.
            clone.value_field = copy.copy(clone.value_field)
            clone.value_field.allow_none = True  # {"labels": {"k": null}} removes k
        if isinstance(clone, fields.Nested) and isinstance(clone.nested, type):
            clone.nested = patch_schema(clone.nested, name=f"{clone.nested.__name__}Patch")
        declared[key] = clone
    bases = (StrictSchema,)
    cls = type(name or f"{base.__name__}Patch", bases, declared)
    cls.read_only = tuple(k for k, f in base._declared_fields.items()  # type: ignore[attr-defined]
                          if f.dump_only) + tuple(immutable) + ("tenant_id",)
    return cls


class ListQuery(StrictSchema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    cursor = fields.String()
    name = name_field()
    label = fields.List(fields.String())
    tenant = fields.String(validate=FullRegexp(TENANT_PATTERN,
                                                    error="must match {regex}"))


def list_schema(item: type[Schema], name: str) -> type[Schema]:
    return type(name, (Schema,), {
        "items": fields.List(fields.Nested(item)),
        "next_cursor": fields.String(allow_none=True),
    })

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
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored (OVSDB keeps UTF-8 text), or None."""
    found = _NOT_TEXT.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain NUL characters"
    return "must not contain lone surrogates (not valid Unicode)"


class Text(fields.String):
    """A string without NUL characters or lone surrogates (the shared check of every
    string field: JSON can carry them, UTF-8 and OVSDB cannot)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        problem = text_problem(text)
        if problem:
            raise ValidationError(problem)
        return text


def label_key_errors(key: str) -> str | None:
    """Kubernetes label key: optional DNS-subdomain prefix, '/', then a 63-char name."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and not _DNS_SUBDOMAIN.fullmatch(prefix):
        return f"label key prefix {prefix!r} is not a DNS subdomain"
    if not _LABEL_NAME.fullmatch(name):
        return f"label key {key!r} is not a valid label name"
    return None


def label_value_errors(value: str) -> str | None:
    """Kubernetes label value: empty, or a name of at most 63 characters."""
    if not _LABEL_VALUE.fullmatch(value):
        return f"label value {value!r} is not a valid label value"
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
            if problem is None and val is not None:
                problem = label_value_errors(val)
            if problem:
                # A key that is not text is not echoed back as an error key.
                errors[key if text_problem(key) is None else "_schema"] = [problem]
        if len(result) > 64:
            errors["_schema"] = ["at most 64 labels"]
        if errors:
            raise ValidationError(errors)
        return result


class _Normalized(Text):
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


def _unicast(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    for problem, bad in (("unspecified address", address.is_unspecified),
                         ("loopback address", address.is_loopback),
                         ("multicast address", address.is_multicast),
                         ("broadcast address", str(address) == "255.255.255.255")):
        if bad:
            raise ValueError(problem)
    return str(address)


class UnicastIP(IP):
    """An address a host can be reached at: not unspecified, loopback, multicast or the
    broadcast address."""

    kind = "unicast IP address"

    def normalize(self, value: str) -> str:
        return _unicast(ipaddress.ip_address(value))


class UnicastIPv4(IPv4):
    kind = "unicast IPv4 address"

    def normalize(self, value: str) -> str:
        return _unicast(ipaddress.IPv4Address(value))


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
    return Text(validate=FullRegexp(
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

    id = fields.UUID(dump_only=True, metadata={
        "description": "Assigned by the gateway (a UUID); read-only.",
        "example": "3f2b8c1e-6d4a-4e8b-9c7f-1a2b3c4d5e6f"})
    name = name_field(required=True, metadata={
        "description": "Unique per tenant and resource kind (a duplicate is 409): 1 to 63 "
                       "lowercase letters, digits and '-', starting and ending with a "
                       "letter or digit.",
        "example": "web"})
    tenant_id = Text(validate=FullRegexp(TENANT_PATTERN,
                                              error="must match {regex}"),
                     metadata={"description": "The tenant that owns the resource. "
                                              "Only admins may send it (on create, "
                                              "to act for that tenant; from anyone "
                                              "else it is 400). It defaults to the "
                                              "caller's tenant; an admin creating a "
                                              "port acts for the network's tenant.",
                               "example": "acme"})
    description = Text(validate=validate.Length(max=1024), metadata={
        "description": "Free text, at most 1024 characters (no NUL characters or lone "
                       "surrogates).",
        "example": "frontend servers"})
    labels = Labels(load_default=dict, metadata={
        "description": "String map with Kubernetes label syntax (key: optional DNS-subdomain "
                       "prefix and '/', then a name of at most 63 characters; value: at most "
                       "63 characters), at most 64 labels. Lists filter on them "
                       "(`label=key=value`) and policies select ports by them. In a merge "
                       "patch a null value removes the key.",
        "example": {"app": "web"}})
    created_at = fields.String(dump_only=True, metadata={
        "description": "When the resource was created (RFC 3339, UTC); read-only.",
        "example": "2026-12-02T12:40:48.476Z"})
    updated_at = fields.String(dump_only=True, metadata={
        "description": "When the resource last changed (RFC 3339, UTC); read-only.",
        "example": "2026-12-02T12:41:06.374Z"})
    revision = fields.Integer(dump_only=True, metadata={
        "description": "Starts at 1 and grows by one on every change. GET returns it as "
                       "`ETag: \"<revision>\"`; PATCH and DELETE honour it in `If-Match` "
                       "(412 when stale). Read-only.",
        "example": 1})


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
    declared["__doc__"] = ("A JSON merge patch (RFC 7396) of the writable fields: absent fields "
                           "stay as they are, null removes a field (or restores its default).")
    cls = type(name or f"{base.__name__}Patch", bases, declared)
    cls.read_only = tuple(k for k, f in base._declared_fields.items()  # type: ignore[attr-defined]
                          if f.dump_only) + tuple(immutable) + ("tenant_id",)
    return cls


class ListQuery(StrictSchema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000),
                           metadata={"description": "Page size: 1 to 1000, default 100.",
                                     "example": 100})
    cursor = fields.String(metadata={
        "description": "The `next_cursor` of the previous page; omit it for the first page."})
    name = name_field(metadata={"description": "Only the resource with this name.",
                                "example": "web"})
    label = fields.List(fields.String(), metadata={
        "description": "`key=value`; repeat the parameter for several labels, all of which "
                       "must match.",
        "example": ["app=web"]})
    tenant = fields.String(validate=FullRegexp(TENANT_PATTERN,
                                                    error="must match {regex}"),
                           metadata={"description": "Admins only: list this tenant's "
                                                    "resources (without it admins see every "
                                                    "tenant's). From anyone else it is 400.",
                                     "example": "acme"})


def list_schema(item: type[Schema], name: str) -> type[Schema]:
    return type(name, (Schema,), {
        "__doc__": "One page of a list.",
        "items": fields.List(fields.Nested(item), metadata={
            "description": "The page, in a stable order (by id)."}),
        "next_cursor": fields.String(allow_none=True, metadata={
            "description": "Pass it as `cursor` to get the next page; null on the last page."}),
    })

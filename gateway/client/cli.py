"""`ovngw`: the gateway's command line client, `ovngw <kind> create|list|show|update|delete`.

Resources and references are given by name or id; output is a table, or `-o json|yaml|id`.
Endpoint and token: flags, then OVNGW_URL / OVNGW_TOKEN, then a context of the config file
(OVNGW_CONFIG, default ~/.config/ovngw/config.yaml). Exit codes: see EXIT_* and
docs/client.md.
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from gateway.client.api import (
    AmbiguousName,
    Client,
    ClientError,
    Collection,
    Document,
    OutcomeUnknown,
    ProblemError,
    Unreachable,
)

EXIT_OK = 0
EXIT_ERROR = 1  # any other failure (other HTTP statuses, an ambiguous name, ...)
EXIT_USAGE = 2  # bad arguments or configuration (argparse uses 2 as well)
EXIT_INVALID = 3  # 400 (and 413, 415, 422: the request itself is wrong)
EXIT_AUTH = 4  # 401, 403
EXIT_NOT_FOUND = 5  # 404, or a name that matches nothing
EXIT_CONFLICT = 6  # 409
EXIT_PRECONDITION = 7  # 412: If-Match named a stale revision
EXIT_UNAVAILABLE = 8  # 503 or 429 after the retries, or the gateway is unreachable
EXIT_BY_STATUS = {400: EXIT_INVALID, 413: EXIT_INVALID, 415: EXIT_INVALID, 422: EXIT_INVALID,
                  401: EXIT_AUTH, 403: EXIT_AUTH, 404: EXIT_NOT_FOUND, 409: EXIT_CONFLICT,
                  412: EXIT_PRECONDITION, 429: EXIT_UNAVAILABLE, 503: EXIT_UNAVAILABLE}
# How a status reads in the one-line message (others: the problem's title)
WORDS = {400: "invalid request", 401: "unauthorized", 403: "forbidden", 404: "not found",
         409: "conflict", 412: "precondition failed", 413: "too large",
         415: "unsupported media type", 422: "unprocessable", 429: "too many requests",
         503: "unavailable"}


class UsageError(Exception):
    """Bad arguments or configuration: exit 2."""


# --- configuration -------------------------------------------------------------------------


def config_path(env: Mapping[str, str]) -> Path:
    if env.get("OVNGW_CONFIG"):
        return Path(env["OVNGW_CONFIG"]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "ovngw" / "config.yaml"


@dataclass
class Settings:
    url: str | None
    token: str | None
    ca_file: str | None
    context: str | None


def settings(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    """Each setting from the first that has it: flags, environment, config context. A
    context chosen with --context outranks the environment: its token must not go to
    OVNGW_URL, nor OVNGW_TOKEN to its URL."""
    path = Path(args.config).expanduser() if args.config else config_path(env)
    data: Any = {}
    if path.exists():
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f"cannot read {path}: {exc}") from None
    elif args.config or env.get("OVNGW_CONFIG"):
        raise UsageError(f"config file {path} does not exist")
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping with 'contexts'")
    contexts = data.get("contexts") or {}
    if not isinstance(contexts, dict):
        raise UsageError(f"{path}: 'contexts' must map names to settings")
    name = args.context or env.get("OVNGW_CONTEXT") or data.get("current_context")
    if name and name not in contexts:
        raise UsageError(f"no context {name!r} in {path}")
    ctx = (contexts.get(name) or {}) if name else {}
    token = ctx.get("token")
    if not token and ctx.get("token_file"):
        try:
            token = Path(str(ctx["token_file"])).expanduser().read_text().strip()
        except OSError as exc:
            raise UsageError(f"context {name!r}: cannot read token_file: {exc}") from None
    flags = {"url": args.url, "token": args.token}
    environ = {"url": env.get("OVNGW_URL"), "token": env.get("OVNGW_TOKEN")}
    context = {"url": ctx.get("url"), "token": token}
    ranks = (flags, context, environ) if args.context else (flags, environ, context)

    def pick(key: str) -> str | None:
        return next((str(r[key]) for r in ranks if r[key]), None)

    return Settings(pick("url"), pick("token"), ctx.get("ca_file"), name)


# --- field input -----------------------------------------------------------------------------


class Refs:
    """Names to ids for references given in flags (cached per command)."""

    def __init__(self, client: Client, tenant: str | None) -> None:
        self.client, self.tenant = client, tenant
        self.cache: dict[tuple[str, str], str] = {}

    def id(self, collection: str, value: str, flag: str) -> str:
        if (collection, value) not in self.cache:
            coll: Collection = getattr(self.client, collection)
            self.cache[collection, value] = coll.resolve(value, tenant=self.tenant, field=flag)
        return self.cache[collection, value]


Convert = Callable[[Refs, str, str], Any]  # (refs, value, flag) -> JSON value


def text(refs: Refs, value: str, flag: str) -> Any:
    return value


def integer(refs: Refs, value: str, flag: str) -> Any:
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{flag}: expected an integer, got {value!r}") from None


def ref(collection: str) -> Convert:
    def convert(refs: Refs, value: str, flag: str) -> Any:
        return refs.id(collection, value, flag)
    return convert


def pair(refs: Refs, value: str, flag: str) -> Any:
    """`key=value` for a map; `key-` removes the key (a merge patch null)."""
    key, sep, val = value.partition("=")
    if sep:
        return {key: val}
    if value.endswith("-") and len(value) > 1:
        return {value[:-1]: None}
    raise UsageError(f"{flag}: expected key=value (or key- to remove), got {value!r}")


def attachment(refs: Refs, value: str, flag: str) -> Any:
    network, _, ip = value.partition("=")
    found = {"network_id": refs.id("networks", network, flag)}
    return {**found, "ip": ip} if ip else found


def route(refs: Refs, value: str, flag: str) -> Any:
    prefix, sep, nexthop = value.partition("=")
    if not sep:
        raise UsageError(f"{flag}: expected PREFIX=NEXTHOP, got {value!r}")
    return {"prefix": prefix, "nexthop": nexthop}


def pool(refs: Refs, value: str, flag: str) -> Any:
    start, sep, end = value.partition("-")
    if not sep:
        raise UsageError(f"{flag}: expected START-END, got {value!r}")
    return {"start": start, "end": end}


def listener(refs: Refs, value: str, flag: str) -> Any:
    port, _, backend = value.partition(":")
    found = {"port": integer(refs, port, flag)}
    return {**found, "backend_port": integer(refs, backend, flag)} if backend else found


def backend(refs: Refs, value: str, flag: str) -> Any:
    """IP, IPv4:PORT or [IPv6]:PORT."""
    if value.startswith("["):
        ip, _, port = value[1:].partition("]:")
    elif value.count(":") == 1:
        ip, _, port = value.partition(":")
    else:
        ip, port = value, ""
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise UsageError(f"{flag}: expected IP, IP:PORT or [IPv6]:PORT, got {value!r}") from None
    return {"ip": ip, "port": integer(refs, port, flag)} if port else {"ip": ip}


@dataclass(frozen=True)
class Field:
    flag: str
    path: str  # dotted path in the body
    help: str
    convert: Convert = text
    many: bool = False  # repeatable: a list (or, with merge, one map)
    merge: bool = False  # the values are maps merged into one
    create_only: bool = False
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return "f_" + self.flag.lstrip("-").replace("-", "_")


def set_path(body: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        child = body.setdefault(key, {})
        if not isinstance(child, dict):
            raise UsageError(f"{path}: {key} is not an object")
        body = child
    if isinstance(value, dict) and isinstance(body.get(last), dict):
        body[last].update(value)
    else:
        body[last] = value


def parse_value(raw: str) -> Any:
    """`--set` values: JSON when they parse (3600, true, null, ["a"], {"k": "v"}), else text."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def read_body(source: str, stdin: TextIO) -> dict[str, Any]:
    try:
        content = stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        raise UsageError(f"--from-file: {exc}") from None
    try:
        data = json.loads(content)
    except ValueError:
        try:
            data = yaml.safe_load(content)
        except yaml.YAMLError as exc:
            raise UsageError(f"--from-file: neither JSON nor YAML: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError("--from-file: expected an object (a mapping of fields)")
    return data


def build_body(args: argparse.Namespace, fields: Sequence[Field], refs: Refs,
               creating: bool) -> dict[str, Any]:
    """--from-file, then the field flags, then --set (later ones win)."""
    body = read_body(args.from_file, sys.stdin) if args.from_file else {}
    if getattr(args, "name", None):
        body["name"] = args.name
    for field in fields:
        value = getattr(args, field.dest, None)
        if value is None or (field.create_only and not creating):
            continue
        if field.many:
            values = [field.convert(refs, v, field.flag) for v in value]
            merged: dict[str, Any] = {}
            for item in values if field.merge else []:
                merged.update(item)
            set_path(body, field.path, merged if field.merge else values)
        else:
            set_path(body, field.path, field.convert(refs, value, field.flag))
    for item in args.set or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set: expected key=value, got {item!r}")
        set_path(body, key, parse_value(raw))
    return body


# --- kinds ---------------------------------------------------------------------------------


def dig(doc: Mapping[str, Any], path: str) -> Any:
    value: Any = doc
    for key in path.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def count(path: str) -> Callable[[Document], Any]:
    """The length of a list; None (shown as -) when the field is absent."""
    def get(doc: Document) -> Any:
        value = dig(doc, path)
        return None if value is None else len(value)
    return get


Column = tuple[str, Callable[[Document], Any]]


def cols(*specs: tuple[str, str | Callable[[Document], Any]]) -> tuple[Column, ...]:
    return tuple((head, (lambda d, p=get: dig(d, p)) if isinstance(get, str) else get)
                 for head, get in specs)


COMMON = (Field("--description", "description", "free text"),
          Field("--label", "labels", "a label KEY=VALUE (repeatable; KEY- removes it)", pair,
                many=True, merge=True, metavar="KEY=VALUE"))


@dataclass(frozen=True)
class Kind:
    command: str
    aliases: tuple[str, ...]
    collection: str  # the Client attribute
    noun: str
    columns: tuple[Column, ...]
    fields: tuple[Field, ...]
    filters: tuple[Field, ...] = ()  # list filters besides name, label and tenant
    delete_flags: tuple[str, ...] = ()  # boolean query parameters of DELETE

    @property
    def body_fields(self) -> tuple[Field, ...]:
        return (*COMMON, *self.fields)


KINDS = (
    Kind("networks", ("network", "net"), "networks", "network",
         cols(("NAME", "name"), ("ID", "id"), ("CIDR", "cidr"), ("IPV6 CIDR", "ipv6_cidr"),
              ("GATEWAY IP", "gateway_ip"), ("DNS DOMAIN", "dns_domain")),
         (Field("--cidr", "cidr", "IPv4 prefix", create_only=True),
          Field("--ipv6-cidr", "ipv6_cidr", "IPv6 prefix", create_only=True),
          Field("--gateway-ip", "gateway_ip", "router address (default: first host)"),
          Field("--mtu", "mtu", "MTU", integer),
          Field("--dns-domain", "dns_domain", "DNS domain of the ports' host names"),
          Field("--dns-server", "dhcp.dns_servers", "DHCP DNS server (repeatable)",
                many=True, metavar="IP")),
         delete_flags=("cascade",)),
    Kind("ports", ("port",), "ports", "port",
         cols(("NAME", "name"), ("ID", "id"), ("NETWORK", "network_id"), ("MAC", "mac"),
              ("IPS", "ips"), ("STATUS", "status")),
         (Field("--network", "network_id", "network (name or id)", ref("networks"),
                create_only=True),
          Field("--mac", "mac", "MAC address (default: generated)"),
          Field("--ip", "ips", "IP address (repeatable; default: allocated)", many=True),
          Field("--hostname", "hostname", "host name for an automatic DNS record")),
         filters=(Field("--network", "network_id", "only this network's ports",
                        ref("networks")),)),
    Kind("dns-records", ("dns-record", "dns"), "dns_records", "DNS record",
         cols(("NAME", "name"), ("ID", "id"), ("FQDN", "fqdn"), ("IPS", "ips"),
              ("AUTO", "auto")),
         (Field("--fqdn", "fqdn", "the name"),
          Field("--ip", "ips", "an A/AAAA answer (repeatable)", many=True),
          Field("--network", "networks", "a network that resolves it (repeatable; "
                "default: every network)", ref("networks"), many=True)),
         filters=(Field("--fqdn", "fqdn", "only the record of this name"),)),
    Kind("policies", ("policy",), "policies", "policy",
         cols(("NAME", "name"), ("ID", "id"), ("PRIORITY", "priority"),
              ("SELECTOR", "selector"), ("INGRESS", count("ingress")),
              ("EGRESS", count("egress")), ("SELECTED", "status.selected_ports")),
         (Field("--selector", "selector", "a label KEY=VALUE the ports must have "
                "(repeatable)", pair, many=True, merge=True, metavar="KEY=VALUE"),
          Field("--network", "networks", "only ports of this network (repeatable)",
                ref("networks"), many=True),
          Field("--priority", "priority", "0-1000, lower first (default 500)", integer))),
    Kind("external-networks", ("external-network", "extnet"), "external_networks",
         "external network",
         cols(("NAME", "name"), ("ID", "id"), ("CIDR", "cidr"), ("GATEWAY IP", "gateway_ip"),
              ("PHYSICAL NETWORK", "physical_network"), ("VLAN", "vlan")),
         (Field("--cidr", "cidr", "IPv4 prefix", create_only=True),
          Field("--gateway-ip", "gateway_ip", "the upstream router's address"),
          Field("--physical-network", "physical_network", "bridge mapping name",
                create_only=True),
          Field("--vlan", "vlan", "VLAN id", integer, create_only=True),
          Field("--pool", "allocation_pools", "an allocation pool START-END (repeatable)",
                pool, many=True, metavar="START-END"))),
    Kind("gateways", ("gateway", "gw"), "gateways", "gateway",
         cols(("NAME", "name"), ("ID", "id"),
              ("NETWORKS", lambda d: [a.get("network_id") for a in d.get("networks") or []]),
              ("EXTERNAL IP", "external.ip"), ("ROUTES", count("routes"))),
         (Field("--network", "networks", "attach a network, at its gateway_ip or IP "
                "(repeatable)", attachment, many=True, metavar="NETWORK[=IP]"),
          Field("--external", "external.network_id", "external network (name or id)",
                ref("external_networks")),
          Field("--external-ip", "external.ip", "address on the external network"),
          Field("--route", "routes", "a static route (repeatable)", route, many=True,
                metavar="PREFIX=NEXTHOP"))),
    Kind("floating-ips", ("floating-ip", "fip"), "floating_ips", "floating IP",
         cols(("NAME", "name"), ("ID", "id"), ("IP", "ip"), ("PORT", "port_id"),
              ("GATEWAY", "gateway_id")),
         (Field("--external-network", "external_network_id", "external network (name or id)",
                ref("external_networks"), create_only=True),
          Field("--ip", "ip", "the address (default: allocated)", create_only=True),
          Field("--port", "port_id", "associate with this port (name or id)", ref("ports"))),
         filters=(Field("--port", "port_id", "only the floating IP of this port",
                        ref("ports")),)),
    Kind("load-balancers", ("load-balancer", "lb"), "load_balancers", "load balancer",
         cols(("NAME", "name"), ("ID", "id"), ("VIP", "vip"), ("PROTOCOL", "protocol"),
              ("LISTENERS", lambda d: [f"{x['port']}->{x.get('backend_port', x['port'])}"
                                       for x in d.get("listeners") or []]),
              ("BACKENDS", count("backends"))),
         (Field("--vip", "vip", "the virtual IP", create_only=True),
          Field("--external-network", "external_network_id", "VIP on this external network",
                ref("external_networks"), create_only=True),
          Field("--protocol", "protocol", "tcp, udp or sctp", create_only=True),
          Field("--listener", "listeners", "a listener (repeatable)", listener, many=True,
                metavar="PORT[:BACKEND_PORT]"),
          Field("--backend", "backends", "a backend (repeatable)", backend, many=True,
                metavar="IP[:PORT]"),
          Field("--network", "networks", "a network whose ports reach the VIP (repeatable)",
                ref("networks"), many=True),
          Field("--gateway", "gateways", "a gateway that serves the VIP (repeatable)",
                ref("gateways"), many=True))),
)
BACKEND_FIELDS = (Field("--ip", "ip", "the backend's address"),
                  Field("--port", "port", "its port (default: the listeners' backend_port)",
                        integer))
BACKEND_COLUMNS = cols(("IP", "ip"), ("PORT", "port"))
RULE_COLUMNS = cols(("DIRECTION", "direction"), ("PRIORITY", "priority"), ("ACTION", "action"),
                    ("RULE", "rule"), ("MATCH", "match"))
QUOTA_FAMILIES = ("networks", "ports", "policies", "dns_records", "gateways", "floating_ips",
                  "load_balancers")
QUOTA_FIELDS = tuple(Field("--" + f.replace("_", "-"), f, f"limit of {f.replace('_', ' ')}",
                           integer) for f in QUOTA_FAMILIES)


# --- output ----------------------------------------------------------------------------------


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Mapping):
        return ",".join(f"{k}={cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ",".join(cell(v) if not isinstance(v, dict) else json.dumps(v) for v in value)
    return str(value)


def table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
                  + "\n")


class Output:
    def __init__(self, fmt: str, out: TextIO) -> None:
        self.fmt, self.out = fmt, out

    def document(self, doc: Document) -> None:
        if self.fmt == "table":
            rows = [("FIELD", "VALUE")] + [
                (k, json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else cell(v))
                for k, v in doc.items()]
            table(rows, self.out)
        elif self.fmt == "id":
            self.out.write(f"{self.ident(doc)}\n")
        else:
            self.data(doc)

    def items(self, items: Iterable[Document], columns: Sequence[Column]) -> None:
        docs = list(items)
        if self.fmt == "table":
            if len({d.get("tenant_id") for d in docs}) > 1:  # an admin's list of tenants
                columns = (*columns, ("TENANT", lambda d: d.get("tenant_id")))
            rows = [tuple(head for head, _ in columns)]
            rows += [tuple(cell(get(d)) for _, get in columns) for d in docs]
            table(rows, self.out)
        elif self.fmt == "id":
            for doc in docs:
                self.out.write(f"{self.ident(doc)}\n")
        else:
            self.data(docs)

    def data(self, data: Any) -> None:
        if self.fmt == "json":
            self.out.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        else:
            yaml.safe_dump(data, self.out, sort_keys=False, default_flow_style=False)

    @staticmethod
    def ident(doc: Document) -> str:
        if "id" in doc:
            return str(doc["id"])
        if "ip" in doc:  # a backend
            return str(doc["ip"])
        raise UsageError("-o id: the answer has no id")


# --- commands ------------------------------------------------------------------------------


@dataclass
class Context:
    client: Client
    out: Output
    args: argparse.Namespace

    @property
    def refs(self) -> Refs:
        return Refs(self.client, self.args.tenant)

    def resolve(self, kind: Kind, value: str) -> str:
        coll: Collection = getattr(self.client, kind.collection)
        return coll.resolve(value, tenant=self.args.tenant)


def need_change(body: Mapping[str, Any]) -> None:
    if not body:
        raise UsageError("nothing to change: give field flags, --set or --from-file")


def do_create(ctx: Context, kind: Kind) -> None:
    body = build_body(ctx.args, kind.body_fields, ctx.refs, creating=True)
    if ctx.args.tenant and kind.command != "ports":  # a port belongs to its network's tenant
        body.setdefault("tenant_id", ctx.args.tenant)
    coll: Collection = getattr(ctx.client, kind.collection)
    ctx.out.document(coll.create(body, idempotency_key=ctx.args.idempotency_key))


def do_list(ctx: Context, kind: Kind) -> None:
    args = ctx.args
    filters: dict[str, Any] = {"name": args.filter_name, "label": args.filter_label,
                               "tenant": args.tenant}
    for field in kind.filters:
        value = getattr(args, field.dest, None)
        if value is not None:
            filters[field.path] = field.convert(ctx.refs, value, field.flag)
    page = args.page_size or (min(args.limit, 1000) if args.limit else None)
    coll: Collection = getattr(ctx.client, kind.collection)
    items = coll.list(page_size=page, **filters)
    ctx.out.items(itertools.islice(items, args.limit), kind.columns)


def do_show(ctx: Context, kind: Kind) -> None:
    coll: Collection = getattr(ctx.client, kind.collection)
    ctx.out.document(coll.get(ctx.resolve(kind, ctx.args.ref)))


def do_update(ctx: Context, kind: Kind) -> None:
    body = build_body(ctx.args, kind.body_fields, ctx.refs, creating=False)
    need_change(body)
    ident = ctx.resolve(kind, ctx.args.ref)
    coll: Collection = getattr(ctx.client, kind.collection)
    ctx.out.document(coll.update(ident, body, if_match=ctx.args.if_match))


def do_delete(ctx: Context, kind: Kind) -> None:
    ident = ctx.resolve(kind, ctx.args.ref)
    query = {flag: True for flag in kind.delete_flags if getattr(ctx.args, flag, False)}
    coll: Collection = getattr(ctx.client, kind.collection)
    coll.delete(ident, if_match=ctx.args.if_match, **query)
    if ctx.out.fmt == "table":
        ctx.out.out.write(f"deleted {kind.noun} {ctx.args.ref}\n")
    elif ctx.out.fmt == "id":
        ctx.out.out.write(f"{ident}\n")


def do_rules(ctx: Context, kind: Kind) -> None:
    rules = ctx.client.policies.rules(ctx.resolve(kind, ctx.args.ref))
    if ctx.out.fmt == "table":
        ctx.out.items(rules.get("acls") or [], RULE_COLUMNS)
    else:
        ctx.out.data(rules)


LB_KIND = next(k for k in KINDS if k.command == "load-balancers")


def do_backend(ctx: Context, kind: Kind) -> None:
    args, lbs = ctx.args, ctx.client.load_balancers
    lb = ctx.resolve(LB_KIND, args.load_balancer)
    if args.verb == "create":
        body = build_body(args, BACKEND_FIELDS, ctx.refs, creating=True)
        ctx.out.document(lbs.add_backend(lb, body, if_match=args.if_match))
    elif args.verb == "list":
        ctx.out.items(lbs.get(lb).get("backends") or [], BACKEND_COLUMNS)
    elif args.verb == "show":
        ctx.out.document(lbs.get_backend(lb, args.ip))
    else:
        lbs.remove_backend(lb, args.ip, port=args.port, if_match=args.if_match)
        if ctx.out.fmt == "table":
            ctx.out.out.write(f"deleted backend {args.ip} of {args.load_balancer}\n")


def do_quotas(ctx: Context, kind: Kind) -> None:
    if ctx.args.verb == "update":
        body = build_body(ctx.args, QUOTA_FIELDS, ctx.refs, creating=False)
        need_change(body)
        ctx.out.document(ctx.client.update_quotas(ctx.args.tenant_name, body))
    else:
        ctx.out.document(ctx.client.quotas(ctx.args.tenant_name))


def do_usage(ctx: Context, kind: Kind) -> None:
    ctx.out.document(ctx.client.usage(ctx.args.tenant_name))


# --- the parser ----------------------------------------------------------------------------


def add_common(parser: argparse.ArgumentParser, top: bool) -> None:
    """Options accepted before and after the kind and verb: the sub-parsers' defaults are
    SUPPRESS so that they do not overwrite what was given before them."""
    default = (lambda v: v) if top else (lambda v: argparse.SUPPRESS)
    group = parser.add_argument_group("connection and output")
    group.add_argument("--url", default=default(None), help="gateway URL (env OVNGW_URL)")
    group.add_argument("--token", default=default(None), help="bearer token (env OVNGW_TOKEN)")
    group.add_argument("--context", default=default(None),
                       help="context of the config file (env OVNGW_CONTEXT)")
    group.add_argument("--config", default=default(None),
                       help="config file (env OVNGW_CONFIG; ~/.config/ovngw/config.yaml)")
    group.add_argument("-o", "--output", choices=("table", "json", "yaml", "id"),
                       default=default("table"), help="output format (default table)")
    group.add_argument("--timeout", type=float, default=default(30.0),
                       help="seconds per HTTP request (default 30)")
    group.add_argument("--retries", type=int, default=default(5),
                       help="attempts per request (default 5; 1: no retries)")


def add_fields(parser: argparse.ArgumentParser, fields: Sequence[Field], creating: bool,
               body: bool = True) -> None:
    for field in fields:
        if field.create_only and not creating:
            continue
        parser.add_argument(field.flag, dest=field.dest, help=field.help,
                            metavar=field.metavar or field.flag[2:].upper().replace("-", "_"),
                            action="append" if field.many else "store")
    if body:
        parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                            help="any field, dotted for nested ones (dhcp.lease_time=3600); "
                                 "the value is JSON if it parses, else text (repeatable)")
        parser.add_argument("-f", "--from-file", metavar="FILE",
                            help="the body as JSON or YAML (- for stdin); flags override it")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ovngw", description="Command line client of the ovn-nb-gateway API.",
        epilog="exit codes: 0 ok, 1 other error, 2 usage, 3 invalid request (400), "
               "4 unauthorized/forbidden, 5 not found, 6 conflict, 7 precondition failed "
               "(412), 8 unavailable. See docs/client.md.")
    add_common(parser, top=True)
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)

    def leaf(verbs: Any, verb: str, handler: Callable[[Context, Kind], None],
             kind: Kind | None, help: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = verbs.add_parser(verb, help=help)
        add_common(sub, top=False)
        sub.set_defaults(handler=handler, spec=kind, verb=verb)
        return sub

    def tenant(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--tenant", help="admins: the tenant (of a create, of names, of a list)")

    for kind in KINDS:
        group = kinds.add_parser(kind.command, aliases=list(kind.aliases),
                                 help=kind.command.replace("-", " "))
        verbs = group.add_subparsers(dest="verb", metavar="VERB", required=True)
        sub = leaf(verbs, "create", do_create, kind, f"create a {kind.noun}")
        sub.add_argument("name", nargs="?", help="its name (or give it in --set/--from-file)")
        add_fields(sub, kind.body_fields, creating=True)
        sub.add_argument("--idempotency-key", help="default: a new uuid4 (kept across retries)")
        tenant(sub)
        sub = leaf(verbs, "list", do_list, kind, f"list {kind.command.replace('-', ' ')}")
        sub.add_argument("--name", dest="filter_name", help="only the one of this name")
        sub.add_argument("--label", dest="filter_label", action="append", metavar="KEY=VALUE",
                         help="only those with this label (repeatable, all must match)")
        add_fields(sub, kind.filters, creating=True, body=False)
        sub.add_argument("--limit", type=int, help="at most this many items")
        sub.add_argument("--page-size", type=int, help="items per request (default: the API's)")
        tenant(sub)
        for verb, handler, text_ in (("show", do_show, "show one"),
                                     ("update", do_update, "change one (merge patch)"),
                                     ("delete", do_delete, "delete one")):
            sub = leaf(verbs, verb, handler, kind, f"{text_} {kind.noun}")
            sub.add_argument("ref", metavar=kind.noun.upper().replace(" ", "_"),
                             help="name or id")
            tenant(sub)
            if verb == "update":
                sub.add_argument("--name", help="a new name")
                add_fields(sub, kind.body_fields, creating=False)
            if verb in ("update", "delete"):
                sub.add_argument("--if-match", metavar="REVISION",
                                 help="only if the revision is still this one (else exit 7)")
            for flag in kind.delete_flags if verb == "delete" else ():
                sub.add_argument(f"--{flag}", action="store_true",
                                 help="take what depends on it along")
        if kind.command == "policies":
            sub = leaf(verbs, "rules", do_rules, kind, "the policy's OVN rules (ACLs)")
            sub.add_argument("ref", metavar="POLICY", help="name or id")
            tenant(sub)

    group = kinds.add_parser("backends", aliases=["backend"],
                             help="the backends of a load balancer, one at a time")
    verbs = group.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, help_ in (("create", "add a backend"), ("list", "list the backends"),
                        ("show", "show a backend"), ("delete", "remove a backend")):
        sub = leaf(verbs, verb, do_backend, None, help_)
        sub.add_argument("--load-balancer", "--lb", required=True, help="name or id")
        tenant(sub)
        if verb == "create":
            add_fields(sub, BACKEND_FIELDS, creating=True)
        if verb in ("show", "delete"):
            sub.add_argument("ip", metavar="IP")
        if verb == "delete":
            sub.add_argument("--port", type=int, help="only the backend with this port")
        if verb in ("create", "delete"):
            sub.add_argument("--if-match", metavar="REVISION", help="the load balancer's")

    group = kinds.add_parser("quotas", aliases=["quota"], help="a tenant's quotas (admin)")
    verbs = group.add_subparsers(dest="verb", metavar="VERB", required=True)
    sub = leaf(verbs, "show", do_quotas, None, "show a tenant's quotas")
    sub.add_argument("tenant_name", metavar="TENANT")
    sub = leaf(verbs, "update", do_quotas, None, "override quotas (KEY=null: the default)")
    sub.add_argument("tenant_name", metavar="TENANT")
    add_fields(sub, QUOTA_FIELDS, creating=False)
    group = kinds.add_parser("usage", help="what a tenant uses of its quotas (admin)")
    verbs = group.add_subparsers(dest="verb", metavar="VERB", required=True)
    sub = leaf(verbs, "show", do_usage, None, "show a tenant's usage")
    sub.add_argument("tenant_name", metavar="TENANT")
    return parser


def problem_line(error: ProblemError) -> str:
    """One line naming the field: `ovngw: 400 invalid request: cidr: not a valid network`."""
    words = ("outcome unknown" if isinstance(error, OutcomeUnknown)
             else WORDS.get(error.status) or error.title.lower() or "error")
    line = f"ovngw: {error.status} {words}: {' '.join(error.message.split())}"
    return line + (f" (request {error.request_id})" if error.request_id else "")


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = os.environ if env is None else env
    args.tenant = getattr(args, "tenant", None)
    try:
        conf = settings(args, env)
        if not conf.url:
            raise UsageError(f"no gateway URL: give --url, OVNGW_URL or a context in "
                             f"{config_path(env)}")
        client = Client(conf.url, conf.token, timeout=args.timeout, retries=args.retries,
                        ca_file=conf.ca_file)
        args.handler(Context(client, Output(args.output, sys.stdout), args), args.spec)
        sys.stdout.flush()
    except UsageError as exc:
        print(f"ovngw: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ProblemError as exc:
        print(problem_line(exc), file=sys.stderr)
        return EXIT_BY_STATUS.get(exc.status, EXIT_ERROR)
    except Unreachable as exc:
        print(f"ovngw: unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (AmbiguousName, ClientError) as exc:
        print(f"ovngw: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # `ovngw ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except KeyboardInterrupt:
        return 130
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

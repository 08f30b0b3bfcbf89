"""Gateways: one Logical_Router per gateway. Attached networks get a router port each, the
external attachment a gateway port placed on gateway chassis, a default route and SNAT;
static routes follow `routes`. Every write brings the router's rows to the document and
changes only what differs."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import BadRequest, Conflict, NotFound
from gateway.ovn import naming, southbound
from gateway.ovn.tables import GW_CHASSIS, LR, LRP, LS, LSP, NAT, ROUTE
from gateway.ovn.transaction import Txn
from gateway.services import external_networks as ext
from gateway.services import ipam
from gateway.services.lifecycle import Listener, NetworkEvent, ResourceEvent
from gateway.services.resources import TENANT_COLUMNS, Doc, Resource, now, stored_doc

KIND = "gateway"
SWITCH = naming.PREFIX + "switch"  # on router-type switch ports: their switch's row uuid
RA_MODES = {"stateful": "dhcpv6_stateful", "stateless": "dhcpv6_stateless"}


def router_name(gateway_id: str) -> str:
    return f"ovngw-gw-{gateway_id}"


def port_name(gateway_id: str, key: str) -> str:
    return f"ovngw-gw-{gateway_id}-{key}"


def router_v6(network: Doc) -> str | None:
    """The router's IPv6 address on a network: the first address of ipv6_cidr."""
    return ipam.router_v6(network["ipv6_cidr"]) if network.get("ipv6_cidr") else None


def gateways_of_network(t: Txn, network_id: str) -> list[Any]:
    """The gateway the network is attached to (a list of at most one), as of this
    transaction: the index finds candidates, their current documents decide."""
    return [lr for lr in t.rows_by_key(LR, KIND, "net." + network_id, "1")
            if any(str(a["network_id"]) == network_id for a in stored_doc(lr)["networks"])]


@dataclass
class Wanted:
    """The rows a gateway document asks for, keyed by their owned ids."""

    ports: dict[str, dict[str, Any]] = field(default_factory=dict)  # LRP columns
    links: dict[str, tuple[Any, dict[str, Any]]] = field(default_factory=dict)  # LS, LSP
    nats: dict[str, dict[str, Any]] = field(default_factory=dict)
    routes: dict[str, dict[str, Any]] = field(default_factory=dict)
    chassis: list[str] = field(default_factory=list)


def _sync(t: Txn, table: str, kind: str, gateway: Doc, wanted: dict[str, dict[str, Any]],
          insert: Callable[[Any], None], drop: Callable[[Any], None]) -> dict[str, Any]:
    """Bring one kind of child row to `wanted`: update what differs, insert what is missing,
    drop the rest. Returns the rows by id."""
    rows: dict[str, Any] = {}
    for row in list(t.rows(table, kind, parent=gateway["id"])):
        key = row.external_ids[naming.ID]
        if key not in wanted:
            drop(row)
            row.delete()
            continue
        for column, value in wanted[key].items():
            if column != "external_ids" and _value(getattr(row, column)) != _value(value):
                setattr(row, column, value)
        rows[key] = row
    for key, columns in wanted.items():
        if key not in rows:
            extra = columns.get("external_ids", {})
            row = t.insert(table, **{**columns, "external_ids": {**extra, **naming.owner_ids(
                kind, key, gateway["tenant_id"], parent=gateway["id"])}})
            insert(row)
            rows[key] = row
    return rows


def _link(ls: Any, router_port: str) -> dict[str, Any]:
    """The switch side of a router port."""
    return {"name": router_port + "-link", "type": "router", "addresses": ["router"],
            "options": {"router-port": router_port},
            "external_ids": {SWITCH: str(ls.uuid)}}


def _value(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list | tuple):
        return sorted(str(v) for v in value)
    return value


class GatewayService(Resource, Listener):
    """Gateways follow their networks (changes, deletes) and hold addresses in them and in
    external networks (lifecycle.Listener)."""

    kind = KIND
    quota = "gateways"
    table = LR
    # Attachments and external addresses are decided against the tenant's other gateways,
    # load balancers and floating IPs: concurrent writes must not both pass those checks.
    lock_tenant_on_write = True
    monitors = {
        **TENANT_COLUMNS,
        LR: frozenset({"name", "ports", "nat", "static_routes", "external_ids"}),
        LRP: frozenset({"name", "mac", "networks", "gateway_chassis", "ipv6_ra_configs",
                        "external_ids"}),
        GW_CHASSIS: frozenset({"name", "chassis_name", "priority"}),
        NAT: frozenset({"type", "external_ip", "logical_ip", "logical_port", "external_mac",
                        "external_ids"}),
        ROUTE: frozenset({"ip_prefix", "nexthop", "external_ids"}),
        LS: frozenset({"name", "ports", "external_ids"}),
        LSP: frozenset({"name", "type", "addresses", "options", "external_ids"}),
    }

    # -- the document -> rows -------------------------------------------------------------
    def wanted(self, t: Txn, doc: Doc) -> Wanted:
        want = Wanted()
        cidrs: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
        nexthop_nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        seen: set[str] = set()
        for i, attachment in enumerate(doc["networks"]):
            where = f"networks.{i}.network_id"
            network_id = str(attachment["network_id"])
            if network_id in seen:
                raise BadRequest.field(where, "the same network twice")
            seen.add(network_id)
            ls = t.get(LS, "network", network_id)
            if ls is None or ls.external_ids.get(naming.TENANT) != doc["tenant_id"]:
                raise NotFound.field(where, "network")
            network = stored_doc(ls)
            for other in gateways_of_network(t, network_id):
                if other.external_ids.get(naming.ID) != doc["id"]:
                    raise Conflict.field(where, "attached to gateway "
                                         f"{other.external_ids.get(naming.NAME)!r}")
            for cidr in (network["cidr"], network.get("ipv6_cidr")):
                if not cidr:
                    continue
                net = ipaddress.ip_network(cidr)
                for other_id, other in cidrs:
                    if net.version == other.version and net.overlaps(other):
                        raise Conflict.field(where, f"{cidr} overlaps network {other_id}")
                cidrs.append((network_id, net))
                nexthop_nets.append(net)
            ip = attachment.get("ip") or network["gateway_ip"]
            self._check_router_ip(t, network, ip, f"networks.{i}.ip", doc["id"])
            attachment["ip"] = ip
            addresses = [f"{ip}/{ipaddress.IPv4Network(network['cidr']).prefixlen}"]
            lrp: dict[str, Any] = {"name": port_name(doc["id"], network_id),
                                   "mac": ipam.derived_mac(self.settings.mac_prefix,
                                                           f"router/{doc['id']}/{network_id}"),
                                   "networks": addresses, "ipv6_ra_configs": {}}
            v6 = router_v6(network)
            if v6:
                self._check_router_v6(t, network, v6, where)
                addresses.append(f"{v6}/{ipaddress.IPv6Network(network['ipv6_cidr']).prefixlen}")
                lrp["ipv6_ra_configs"] = self._ra_configs(network)
            key = f"{doc['id']}/{network_id}"
            want.ports[key] = lrp
            want.links[key] = (ls, _link(ls, lrp["name"]))
        self._external(t, doc, want, cidrs, nexthop_nets)
        self._routes(doc, want, nexthop_nets)
        return want

    def _check_router_ip(self, t: Txn, network: Doc, ip: str, where: str,
                         gateway_id: str) -> None:
        if ip == network["gateway_ip"]:
            return  # reserved for the router by every network already
        net = ipaddress.IPv4Network(network["cidr"])
        address = ipaddress.IPv4Address(ip)
        if address not in net or address in (net.network_address, net.broadcast_address):
            raise BadRequest.field(where, f"must be a host address of {network['cidr']}")
        for entry in t.entries(LSP, "port", parent=network["id"]):
            if entry.doc is not None and ip in entry.doc["ips"]:
                raise Conflict.field(where, "in use by a port of the network")
        mine = t.get(LR, KIND, gateway_id)
        # committed: this transaction may already have stamped the requested document
        held_by_me = {str(a.get("ip")) for a in
                      (stored_doc(mine, committed=True)["networks"] if mine else [])
                      if str(a["network_id"]) == network["id"]}
        if ip in self.hooks.reserved_addresses(t, network) - held_by_me:
            raise Conflict.field(where, "reserved in the network (a load balancer VIP or "
                                 "probe source, or another router's address)")

    def _check_router_v6(self, t: Txn, network: Doc, v6: str, where: str) -> None:
        """Ports and VIPs never get it (ports.in_use reserves it); rows written before
        that reservation might hold it."""
        for entry in t.entries(LSP, "port", parent=network["id"]):
            if entry.doc is not None and v6 in entry.doc["ips"]:
                raise Conflict.field(where, f"the router's IPv6 address {v6} is held by "
                                     f"port {entry.name!r}")
        if v6 in self.hooks.reserved_addresses(t, network) - self.reserved_addresses(t, network):
            raise Conflict.field(where, f"the router's IPv6 address {v6} is reserved in the "
                                 "network (a load balancer VIP)")

    @staticmethod
    def _ra_configs(network: Doc) -> dict[str, str]:
        dhcp = network.get("dhcp") or {}
        v6 = dhcp.get("ipv6") or {}
        mode = "slaac"
        if dhcp.get("enabled", True) and v6.get("enabled", True):
            mode = RA_MODES[v6.get("mode", "stateful")]
        configs = {"address_mode": mode, "send_periodic": "true", "max_interval": "60",
                   "min_interval": "20"}
        if network.get("mtu"):
            configs["mtu"] = str(network["mtu"])
        return configs

    def _external(self, t: Txn, doc: Doc, want: Wanted, cidrs: list[Any],
                  nexthop_nets: list[Any]) -> None:
        external = doc.get("external")
        if not external:
            return
        ls, network = ext.locate(t, str(external["network_id"]), "external.network_id")
        ip, held = external.get("ip"), self._held_external_ip(t, doc)
        if not ip or ip != held:
            ip = ext.allocate(t, self.hooks, ls, network, ip, "external.ip", keep=held)
        external["ip"] = ip
        external.setdefault("snat", True)
        net = ipaddress.IPv4Network(network["cidr"])
        for network_id, cidr in cidrs:
            if cidr.version == 4 and cidr.overlaps(net):
                raise Conflict.field("external.network_id", f"{network['cidr']} overlaps "
                                     f"attached network {network_id}")
        nexthop_nets.append(net)
        key = f"{doc['id']}/external"
        want.ports[key] = {"name": port_name(doc["id"], "ext"),
                           "mac": ipam.derived_mac(self.settings.mac_prefix,
                                                   f"router/{doc['id']}/external"),
                           "networks": [f"{ip}/{net.prefixlen}"], "ipv6_ra_configs": {}}
        want.links[key] = (ls, _link(ls, port_name(doc["id"], "ext")))
        want.routes[f"{doc['id']}/default"] = {"ip_prefix": "0.0.0.0/0",
                                               "nexthop": network["gateway_ip"]}
        if external["snat"]:
            for network_id, cidr in cidrs:
                if cidr.version == 4:
                    want.nats[f"{doc['id']}/snat/{network_id}"] = {
                        "type": "snat", "external_ip": ip, "logical_ip": str(cidr)}
        want.chassis = self.placement()

    @staticmethod
    def _held_external_ip(t: Txn, doc: Doc) -> str | None:
        """The address the gateway holds now on the same external network, if any."""
        row = t.get(LR, KIND, doc["id"])
        # committed: this transaction may already have stamped the requested document
        external = (stored_doc(row, committed=True).get("external") or {}) \
            if row is not None else {}
        if external and str(external["network_id"]) == str(doc["external"]["network_id"]):
            return str(external["ip"])
        return None

    def placement(self) -> list[str]:
        if self.settings.gateway_chassis:
            return list(self.settings.gateway_chassis)
        if self.settings.sb_db:
            return southbound.gateway_chassis(self.settings.sb_db)
        return []

    @staticmethod
    def _routes(doc: Doc, want: Wanted, nexthop_nets: list[Any]) -> None:
        for i, route in enumerate(doc["routes"]):
            try:
                prefix = ipaddress.ip_network(route["prefix"], strict=True)
            except ValueError as exc:
                raise BadRequest.field(f"routes.{i}.prefix",
                                       f"not a CIDR prefix: {exc}") from None
            nexthop = ipaddress.ip_address(route["nexthop"])
            if nexthop.version != prefix.version:
                raise BadRequest.field(f"routes.{i}.nexthop", "not of the prefix's family")
            home = next((n for n in nexthop_nets
                         if nexthop.version == n.version and nexthop in n), None)
            if home is None:
                raise BadRequest.field(f"routes.{i}.nexthop",
                                       "not inside an attached or the external network")
            own = {a.split("/")[0] for p in want.ports.values() for a in p["networks"]}
            if nexthop == home.network_address or str(nexthop) in own or (
                    home.version == 4 and nexthop == home.broadcast_address):
                raise BadRequest.field(f"routes.{i}.nexthop", "not a host other than the "
                                       "gateway itself")
            route["prefix"] = str(prefix)
            key = f"{doc['id']}/route/{prefix}/{nexthop}"
            columns = {"ip_prefix": str(prefix), "nexthop": str(nexthop)}
            if key in want.routes or columns in want.routes.values():
                raise BadRequest.field(f"routes.{i}", "the same route twice (or the "
                                       "external network's default route)")
            want.routes[key] = columns

    def materialize(self, t: Txn, lr: Any, doc: Doc) -> None:
        want = self.wanted(t, doc)
        ports = _sync(t, LRP, "gw-port", doc, want.ports,
                      lambda row: lr.addvalue("ports", row),
                      lambda row: lr.delvalue("ports", row))
        _sync(t, LSP, "gw-link", doc, {k: v for k, (_, v) in want.links.items()},
              lambda row: self._switch_of(want, row).addvalue("ports", row),
              lambda row: self._unlink(t, row))
        _sync(t, NAT, "gw-snat", doc, want.nats, lambda row: lr.addvalue("nat", row),
              lambda row: lr.delvalue("nat", row))
        _sync(t, ROUTE, "gw-route", doc, want.routes,
              lambda row: lr.addvalue("static_routes", row),
              lambda row: lr.delvalue("static_routes", row))
        external = ports.get(f"{doc['id']}/external")
        if external is not None:
            have = sorted((c.priority, c.chassis_name)
                          for c in getattr(external, "gateway_chassis", []))
            wanted = [(len(want.chassis) - i, name) for i, name in enumerate(want.chassis)]
            if have != sorted(wanted):
                external.gateway_chassis = [
                    t.insert(GW_CHASSIS, name=f"{external.name}_{name}", chassis_name=name,
                             priority=priority) for priority, name in wanted]

    @staticmethod
    def _switch_of(want: Wanted, row: Any) -> Any:
        return want.links[row.external_ids[naming.ID]][0]

    @staticmethod
    def _unlink(t: Txn, row: Any) -> None:
        ls = t.idl.tables[LS].rows.get(uuid.UUID(row.external_ids[SWITCH]))
        if ls is not None:
            ls.delvalue("ports", row)

    # -- the resource ----------------------------------------------------------------------
    def write_new(self, t: Txn, doc: Doc, parent: Any, tenant_row: Any) -> Any:
        lr = t.insert(LR, name=router_name(doc["id"]))
        self.materialize(t, lr, doc)
        return lr

    def lookup_keys(self, doc: Doc) -> dict[str, str]:
        keys = {"net." + str(a["network_id"]): "1" for a in doc["networks"]}
        if doc.get("external"):
            keys["ext"] = str(doc["external"]["network_id"])
            if doc["external"].get("ip"):  # absent until allocated in this write
                keys["held"] = ext.held_key(str(doc["external"]["network_id"]),
                                            str(doc["external"]["ip"]))
        return keys

    def complete(self, doc: Doc) -> None:
        doc.setdefault("networks", [])
        doc.setdefault("routes", [])

    def apply_update(self, t: Txn, row: Any, old: Doc, new: Doc) -> None:
        before, after = old.get("external"), new.get("external")
        if before and after and str(before["network_id"]) != str(after["network_id"]) \
                and after.get("ip") == before["ip"]:
            after.pop("ip")  # merged from the old network: allocate on the new one
        self.materialize(t, row, new)
        self.write_ownership(row, new)  # the listeners read the new document
        self.hooks.resource_changing(t, ResourceEvent(KIND, new["tenant_id"], old, new))

    def repair(self, t: Txn, row: Any, doc: Doc) -> list[Any]:
        """Drift repair (services.drift): materialize() already changes only what differs."""
        if row.name != router_name(doc["id"]):
            row.name = router_name(doc["id"])
        self.materialize(t, row, doc)
        return []

    def remove(self, t: Txn, row: Any, doc: Doc, cascade: bool) -> None:
        self.hooks.resource_changing(t, ResourceEvent(KIND, doc["tenant_id"], doc, None))
        self.materialize(t, row, {**doc, "networks": [], "external": None, "routes": []})
        row.delete()

    def derive(self, row: Any, doc: Doc) -> Doc:
        status: Doc = {"chassis": None, "gateway_chassis": []}
        for lrp in getattr(row, "ports", []):
            if lrp.name == port_name(doc["id"], "ext"):
                chassis = sorted(getattr(lrp, "gateway_chassis", []), key=lambda c: -c.priority)
                status["gateway_chassis"] = [c.chassis_name for c in chassis]
                if self.settings.sb_db:
                    status["chassis"] = southbound.bound_chassis(self.settings.sb_db).get(
                        "cr-" + lrp.name)
        return {**doc, "status": status}

    # -- what gateways do when networks change -------------------------------------------
    def network_changed(self, t: Txn, event: NetworkEvent) -> None:
        old, new = event.old, event.new
        if old is None or new is None:
            return
        for lr in gateways_of_network(t, new["id"]):
            gateway = stored_doc(lr)
            # A router on the network's gateway_ip follows it (DHCP offers the new one).
            moved = [{**a, "ip": new["gateway_ip"]}
                     if str(a["network_id"]) == new["id"] and a["ip"] == old["gateway_ip"]
                     else a for a in gateway["networks"]]
            if moved != gateway["networks"]:
                self.rewrite(t, lr, gateway, {"networks": moved})
            else:
                self.materialize(t, lr, gateway)

    def network_deleting(self, t: Txn, event: NetworkEvent) -> None:
        assert event.old is not None
        network_id = event.old["id"]
        for lr in gateways_of_network(t, network_id):
            gateway = stored_doc(lr)
            if not event.cascade:
                raise Conflict(f"network is attached to gateway {gateway['name']!r}; detach "
                               "it or use ?cascade=true")
            try:
                self.rewrite(t, lr, gateway, {"networks": [
                    a for a in gateway["networks"] if str(a["network_id"]) != network_id]})
            except BadRequest as exc:  # a route would lose its nexthop: never silently
                raise Conflict(f"gateway {gateway['name']!r} routes through the network "
                               f"({exc.detail}); change its routes first") from None

    def resource_changing(self, t: Txn, event: ResourceEvent) -> None:
        if event.kind != ext.KIND or event.old is None:
            return
        users = list(t.rows_by_key(LR, KIND, "ext", event.old["id"]))
        if event.new is None and users:
            names = sorted(stored_doc(lr)["name"] for lr in users)
            raise Conflict(f"external network is used by gateways {', '.join(names)}")
        if event.new is not None:
            for lr in users:  # a new gateway_ip moves their default routes
                self.materialize(t, lr, stored_doc(lr))

    def rewrite(self, t: Txn, lr: Any, doc: Doc, changes: Doc) -> None:
        """A change the gateway makes to itself as a consequence of another write."""
        new = {**doc, **changes, "revision": doc["revision"] + 1, "updated_at": now()}
        self.materialize(t, lr, new)
        self.write_ownership(lr, new)
        self.hooks.resource_changing(t, ResourceEvent(KIND, doc["tenant_id"], doc, new))

    def address_taken(self, t: Txn, network: Doc, ip: str) -> bool:
        return bool(t.indexes[LR].ids_by_key(KIND, "held", ext.held_key(network["id"], ip)))

    def reserved_addresses(self, t: Txn, network: Doc) -> set[str]:
        held: set[str] = set()
        for lr in gateways_of_network(t, network["id"]):
            for attachment in stored_doc(lr)["networks"]:
                if str(attachment["network_id"]) == network["id"]:
                    held.add(attachment["ip"])
            v6 = router_v6(network)
            if v6:
                held.add(v6)
        return held

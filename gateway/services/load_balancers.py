"""Load balancers: one OVN Load_Balancer per resource (it has one protocol), attached to
the switches of its networks and the routers of its gateways, with health checks through
OVN's service monitor.

A VIP inside a network's cidr is reserved there and answered for by a small router per
network ("lb-router") whose port holds the network's VIPs: clients resolve the VIP to that
port, the switch's load balancer DNATs the packet, and the router hands it to the backend.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from typing import Any

from gateway.errors import BadRequest, Conflict, GatewayError, NotFound
from gateway.ovn import naming, southbound
from gateway.ovn.tables import LB, LB_HC, LR, LRP, LS, LSP
from gateway.ovn.transaction import Txn
from gateway.services import external_networks as ext
from gateway.services import ipam
from gateway.services.gateways import KIND as GATEWAY
from gateway.services.lifecycle import Listener, NetworkEvent, PortEvent, ResourceEvent
from gateway.services.ports import bump_allocation, in_use
from gateway.services.resources import TENANT_COLUMNS, Doc, Resource, now, stored_doc

LOG = logging.getLogger(__name__)
KIND = "load-balancer"
ROUTER = "lb-router"
PROBE = "lb-probe"
WATCH_INTERVAL = 1.0  # seconds between looks at the service monitor


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def _net_of(ip: str, network: Doc) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    address = ipaddress.ip_address(ip)
    for cidr in (network["cidr"], network.get("ipv6_cidr")):
        if cidr and address.version == ipaddress.ip_network(cidr).version \
                and address in ipaddress.ip_network(cidr):
            return ipaddress.ip_network(cidr)
    return None


def vips_map(doc: Doc, offline: frozenset[tuple[str, int]] = frozenset()) -> dict[str, str]:
    """OVN `vips`: "VIP:port" -> "backend:port,..." per listener, without the backends the
    service monitor reports offline (all of them if none is left: nothing better exists)."""
    out = {}
    for listener in doc["listeners"]:
        target = listener.get("backend_port") or listener["port"]
        pairs = [(b["ip"], b.get("port") or target) for b in doc["backends"]]
        alive = [p for p in pairs if p not in offline] or pairs
        out[f"{_host(doc['vip'])}:{listener['port']}"] = ",".join(
            f"{_host(ip)}:{port}" for ip, port in alive)
    return out


Monitors = dict[tuple[str, int, str, str], str]


def logical_ports(mappings: Any) -> dict[str, str]:
    """backend ip -> its logical port, from OVN `ip_port_mappings` ("port:source")."""
    return {ip: value.split(":", 1)[0] for ip, value in dict(mappings or {}).items()}


def offline_backends(monitors: Monitors, doc: Doc,
                     ports: dict[str, str]) -> frozenset[tuple[str, int]]:
    """The (ip, port) backends of this load balancer its own monitors report offline."""
    if not doc.get("health_check"):
        return frozenset()
    return frozenset((ip, port) for (ip, port, protocol, lsp), status in monitors.items()
                     if status == "offline" and protocol == doc["protocol"]
                     and ports.get(ip) == lsp)


class LoadBalancerService(Resource, Listener):
    """Load balancers follow their networks, gateways and backend ports, and hold VIPs and
    health-check source addresses in networks (lifecycle.Listener)."""

    kind = KIND
    quota = "load_balancers"
    table = LB
    lock_tenant_on_write = True  # a network's lb-router is shared by its load balancers
    monitors = {
        **TENANT_COLUMNS,
        LB: frozenset({"name", "vips", "protocol", "health_check", "ip_port_mappings",
                       "options", "external_ids"}),
        LB_HC: frozenset({"vip", "options", "external_ids"}),
        LS: frozenset({"name", "ports", "load_balancer", "external_ids"}),
        LR: frozenset({"name", "ports", "load_balancer", "external_ids"}),
        LRP: frozenset({"name", "mac", "networks", "external_ids"}),
        LSP: frozenset({"name", "type", "addresses", "options", "external_ids"}),
    }

    def background(self) -> list[Any]:
        return [HealthWatch(self)]

    # -- one backend at a time: no need to send, validate and render the whole list ----------
    def add_backend(self, principal: Any, lb_id: str, backend: Doc,
                    if_match: int | None) -> Doc:
        added: list[str] = []  # "backends.<n>.", the new backend in the merged list

        def grow(doc: Doc) -> Doc:
            if any(b["ip"] == backend["ip"] and b.get("port") == backend.get("port")
                   for b in doc["backends"]):
                raise Conflict.field("ip", "already a backend")
            added[:] = [f"backends.{len(doc['backends'])}."]
            return {**doc, "backends": [*doc["backends"], backend]}
        try:
            return self.update(principal, lb_id, {}, if_match, grow)
        except GatewayError as exc:
            # The checks run on the merged list; name the fields as the request sent them.
            if added and exc.errors:
                prefix = added[0]
                exc.errors = {k.removeprefix(prefix): v for k, v in exc.errors.items()}
                if exc.detail.startswith(prefix):
                    exc.detail = exc.detail.removeprefix(prefix)
            raise

    def remove_backend(self, principal: Any, lb_id: str, ip: str, port: int | None,
                       if_match: int | None) -> Doc:
        try:
            address = str(ipaddress.ip_address(ip))
        except ValueError:
            address = ip  # no backend has it: 404 once the load balancer is found

        def shrink(doc: Doc) -> Doc:
            kept = [b for b in doc["backends"]
                    if not (b["ip"] == address and (port is None or b.get("port") == port))]
            if len(kept) == len(doc["backends"]):
                raise NotFound.field("ip", "backend")
            return {**doc, "backends": kept}
        return self.update(principal, lb_id, {}, if_match, shrink)

    # -- the resource ----------------------------------------------------------------------
    def write_new(self, t: Txn, doc: Doc, parent: Any, tenant_row: Any) -> Any:
        if doc.get("external_network_id"):
            if doc.get("vip") and ":" in doc["vip"]:
                raise BadRequest.field("vip", "external networks are IPv4")
            ls, network = ext.locate(t, str(doc["external_network_id"]),
                                     "external_network_id")
            doc["vip"] = ext.allocate(t, self.hooks, ls, network, doc.get("vip"), "vip")
        elif not doc.get("vip"):
            raise BadRequest.field("vip", "required unless external_network_id is given")
        lb = t.insert(LB, name=f"ovngw-lb-{doc['id']}", protocol=[doc["protocol"]])
        self.materialize(t, lb, None, doc)
        return lb

    def apply_update(self, t: Txn, row: Any, old: Doc, new: Doc) -> None:
        self.materialize(t, row, old, new)

    def repair(self, t: Txn, row: Any, doc: Doc) -> list[Any]:
        """Drift repair (services.drift): materialize() from the document to itself (its
        held probe sources and VIP placement kept), and its switches and routers."""
        name = f"ovngw-lb-{doc['id']}"
        if row.name != name:
            row.name = name
        if list(row.protocol) != [doc["protocol"]]:
            row.protocol = [doc["protocol"]]
        self.materialize(t, row, {**doc, "backends": list(doc["backends"])}, doc)
        for holder in self._switches(t, doc) + self._routers(t, doc):
            if row not in holder.load_balancer:
                holder.addvalue("load_balancer", row)
        return []

    def remove(self, t: Txn, row: Any, doc: Doc, cascade: bool) -> None:
        for ls in self._switches(t, doc):
            ls.delvalue("load_balancer", row)  # explicit: see ports.PortService.remove
        for lr in self._routers(t, doc):
            lr.delvalue("load_balancer", row)
        vip_net = doc.get("_vip_network")
        if vip_net is not None:
            self._sync_router(t, vip_net, doc["id"], None)
        probe = t.get(LB, PROBE, doc["id"])
        if probe is not None:
            probe.delete()
        row.delete()

    def lookup_keys(self, doc: Doc) -> dict[str, str]:
        keys = {"vip": doc["vip"]}
        keys.update({"net." + str(n): "1" for n in doc["networks"]})
        keys.update({"gw." + str(g): "1" for g in doc["gateways"]})
        if doc.get("external_network_id"):
            keys["ext"] = str(doc["external_network_id"])
            keys["held"] = ext.held_key(str(doc["external_network_id"]), doc["vip"])
        for network_id, source in (doc.get("_sources") or {}).items():
            keys["hcnet." + network_id] = "1"
            keys["hcsrc." + network_id] = source
        for port_id in doc.get("_ports") or []:
            keys["bport." + port_id] = "1"
        if doc.get("_vip_network"):
            keys["vipnet." + doc["_vip_network"]] = "1"
        return keys

    def render(self, row: Any, doc: Doc) -> Doc:
        shown = {k: v for k, v in doc.items() if not k.startswith("_")}
        return {**shown, "status": {"backends": self._health(row, doc)}}

    def complete(self, doc: Doc) -> None:
        doc.setdefault("backends", [])
        doc.setdefault("networks", [])
        doc.setdefault("gateways", [])

    def read_only_fields(self) -> tuple[str, ...]:
        return ("_sources", "_ports", "_vip_network")

    # -- document -> rows --------------------------------------------------------------------
    def materialize(self, t: Txn, lb: Any, old: Doc | None, doc: Doc) -> None:
        self._check_refs(t, doc)
        networks = self._tenant_networks(t, doc)
        # Backends already there were checked when they came (cidrs cannot change).
        known = {(b["ip"], b.get("port")) for b in (old or {}).get("backends") or []}
        self._check_listeners(doc, known)
        vip_net = self._place_vip(t, doc, networks)
        ports = self._backend_ports(t, doc, networks, known)
        lb.vips = vips_map(doc, offline_backends(
            self._monitors(), doc, {ip: port for ip, (port, _) in ports.items()}))
        lb.options = ({"affinity_timeout": str(doc["session_affinity_timeout"])}
                      if doc.get("session_affinity_timeout") else {})
        self._health_check(t, lb, doc, ports, networks, old)
        self._sync_probe(t, lb, doc)
        before_ls = {ls.uuid: ls for ls in self._switches(t, old)} if old else {}
        after_ls = {ls.uuid: ls for ls in self._switches(t, doc)}
        before_lr = {lr.uuid: lr for lr in self._routers(t, old)} if old else {}
        after_lr = {lr.uuid: lr for lr in self._routers(t, doc)}
        for before, after in ((before_ls, after_ls), (before_lr, after_lr)):
            for key, row in before.items():
                if key not in after:
                    row.delvalue("load_balancer", lb)
            for key, row in after.items():
                if key not in before:
                    row.addvalue("load_balancer", lb)
        old_net = old.get("_vip_network") if old else None
        if old_net and old_net != vip_net:
            self._sync_router(t, old_net, doc["id"], None)
        if vip_net:
            self._sync_router(t, vip_net, doc["id"], doc["vip"])

    @staticmethod
    def _check_refs(t: Txn, doc: Doc) -> None:
        for field in ("networks", "gateways"):
            seen: set[str] = set()
            for i, ref in enumerate(str(r) for r in doc[field]):
                if ref in seen:
                    raise BadRequest.field(f"{field}.{i}", "the same id twice")
                seen.add(ref)
        if not doc.get("external_network_id"):
            vip = ipaddress.ip_address(doc["vip"])
            for row in t.rows(LS, ext.KIND):
                net = ipaddress.ip_network(stored_doc(row)["cidr"])
                if vip.version == net.version and vip in net:
                    raise BadRequest.field("vip", "an address of an external network: give "
                                           "external_network_id to have it allocated")

    def _tenant_networks(self, t: Txn, doc: Doc) -> dict[str, Doc]:
        """Every network of the tenant, by id (backends may be in any of them)."""
        return {str(entry.id): stored_doc(row) for entry in
                t.entries(LS, "network", tenant=doc["tenant_id"])
                if (row := t.row_of(LS, entry)) is not None}

    @staticmethod
    def _check_listeners(doc: Doc, known: set[tuple[str, Any]]) -> None:
        seen: set[int] = set()
        for i, listener in enumerate(doc["listeners"]):
            if listener["port"] in seen:
                raise Conflict.field(f"listeners.{i}.port", "a second listener on this port")
            seen.add(listener["port"])
        family = ipaddress.ip_address(doc["vip"]).version
        pairs: set[tuple[str, int | None]] = set()
        for i, backend in enumerate(doc["backends"]):
            pair = (backend["ip"], backend.get("port"))
            if pair not in known and ipaddress.ip_address(backend["ip"]).version != family:
                raise BadRequest.field(f"backends.{i}.ip", "not of the VIP's family")
            if pair in pairs:
                raise Conflict.field(f"backends.{i}", "the same backend twice")
            pairs.add(pair)
        if doc.get("health_check"):
            if doc["protocol"] == "sctp":
                raise BadRequest.field("health_check", "OVN's service monitor probes tcp "
                                       "and udp only")
            if not doc["backends"]:
                raise BadRequest.field("backends", "a health check needs backends")
            if family == 6:
                raise BadRequest.field("health_check", "OVN 23.03's service monitor probes "
                                       "IPv4 backends only")

    def _place_vip(self, t: Txn, doc: Doc, networks: dict[str, Doc]) -> str | None:
        """The attached network whose cidr holds the VIP, checked free there."""
        doc.pop("_vip_network", None)
        if doc.get("external_network_id"):
            return None
        for network_id in (str(n) for n in doc["networks"]):
            network = networks.get(network_id)
            if network is None or _net_of(doc["vip"], network) is None:
                continue
            if doc["vip"] == network["gateway_ip"]:
                raise Conflict.field("vip", "the network's gateway address")
            if doc["vip"] == str(_net_of(doc["vip"], network).network_address):  # type: ignore[union-attr]
                raise Conflict.field("vip", "the network's own address")
            taken, _ = in_use(t, self.hooks, network)
            mine = t.get(LB, KIND, doc["id"])
            held = stored_doc(mine, committed=True) if mine is not None else {}
            placed = held.get("vip") == doc["vip"] and held.get("_vip_network") == network_id
            if doc["vip"] in taken and not placed:
                raise Conflict.field("vip", "in use in the network")
            bump_allocation(t.get(LS, "network", network_id))
            doc["_vip_network"] = network_id
            return network_id
        return None

    def _backend_ports(self, t: Txn, doc: Doc, networks: dict[str, Doc],
                       known: set[tuple[str, Any]]) -> dict[str, Any]:
        """backend ip -> (port id, network id) with a health check; every new backend
        inside a tenant network."""
        by_ip: dict[str, tuple[str, str]] = {}
        prefixes = [(ipaddress.ip_network(cidr), n) for n in networks.values()
                    for cidr in (n["cidr"], n.get("ipv6_cidr")) if cidr]
        checked = bool(doc.get("health_check"))
        port_of: dict[str, dict[str, str]] = {}  # network -> ip -> port, built once
        for i, backend in enumerate(doc["backends"]):
            if not checked and (backend["ip"], backend.get("port")) in known:
                continue
            address = ipaddress.ip_address(backend["ip"])
            home = next((n for net, n in prefixes
                         if net.version == address.version and address in net), None)
            if home is None:
                raise BadRequest.field(f"backends.{i}.ip", "not inside a network of the "
                                       "tenant")
            if checked and backend["ip"] not in by_ip:
                if home["id"] not in port_of:
                    port_of[home["id"]] = {
                        ip: e.id for e in t.entries(LSP, "port", parent=home["id"])
                        if e.doc is not None for ip in e.doc["ips"]}
                port = port_of[home["id"]].get(backend["ip"])
                if port is None:
                    raise BadRequest.field(f"backends.{i}.ip", "health checks need backends "
                                           "that are ports of the tenant")
                by_ip[backend["ip"]] = (port, home["id"])
        doc["_ports"] = sorted({port for port, _ in by_ip.values()})
        return by_ip

    def _health_check(self, t: Txn, lb: Any, doc: Doc, ports: dict[str, Any],
                      networks: dict[str, Doc], old: Doc | None) -> None:
        check = doc.get("health_check")
        sources: dict[str, str] = {}
        if check:
            held = (old or {}).get("_sources") or {}
            for _, network_id in ports.values():
                if network_id not in sources:
                    sources[network_id] = held.get(network_id) or \
                        self._source_address(t, networks[network_id])
        doc["_sources"] = sources
        lb.ip_port_mappings = {ip: f"{port}:{_host(sources[net])}"
                               for ip, (port, net) in ports.items()}
        options = {k: str(v) for k, v in (check or {}).items()}
        wanted = sorted(vips_map(doc)) if check else []
        have = sorted((getattr(lb, "health_check", None) or []), key=lambda r: r.vip)
        if [(r.vip, dict(r.options)) for r in have] != [(v, options) for v in wanted]:
            lb.health_check = [t.insert(LB_HC, vip=v, options=options) for v in wanted]

    def _sync_probe(self, t: Txn, lb: Any, doc: Doc) -> None:
        """With a health check, a second Load_Balancer on no datapath holds every backend:
        it keeps OVN probing the backends that the traffic one leaves out while they are
        offline (ovn-northd makes service monitors for every load balancer with checks)."""
        probe = t.get(LB, PROBE, doc["id"])
        if not doc.get("health_check"):
            if probe is not None:
                probe.delete()
            return
        if probe is None:
            probe = t.insert(LB, name=f"ovngw-lb-{doc['id']}-probe", protocol=[doc["protocol"]],
                             external_ids=naming.owner_ids(PROBE, doc["id"], doc["tenant_id"],
                                                           parent=doc["id"]))
        probe.vips = vips_map(doc)
        probe.ip_port_mappings = lb.ip_port_mappings
        have = [(r.vip, dict(r.options)) for r in getattr(probe, "health_check", None) or []]
        wanted = [(r.vip, dict(r.options)) for r in lb.health_check]
        if sorted(have) != sorted(wanted):
            probe.health_check = [t.insert(LB_HC, vip=v, options=o) for v, o in wanted]

    def _monitors(self) -> Monitors:
        if not self.settings.sb_db:
            return {}
        return southbound.service_monitors(self.settings.sb_db)

    def _source_address(self, t: Txn, network: Doc) -> str:
        """An address of the network no port gets: the probes' source."""
        taken, _ = in_use(t, self.hooks, network)
        taken |= set(t.inserted.get((LB, "sources:" + network["id"]), ()))
        free = ipam.next_free_v4(network["cidr"], taken)
        if free is None:
            raise Conflict.field("health_check", f"no free address in network "
                                 f"{network['name']} for the probes' source")
        t.inserted.setdefault((LB, "sources:" + network["id"]), []).append(free)
        bump_allocation(t.get(LS, "network", network["id"]))
        return free

    def _switches(self, t: Txn, doc: Doc) -> list[Any]:
        found = []
        for i, network_id in enumerate(doc["networks"]):
            ls = t.get(LS, "network", str(network_id))
            if ls is None or ls.external_ids.get(naming.TENANT) != doc["tenant_id"]:
                raise NotFound.field(f"networks.{i}", "network")
            found.append(ls)
        return found

    def _routers(self, t: Txn, doc: Doc) -> list[Any]:
        found = []
        for i, gateway_id in enumerate(doc["gateways"]):
            lr = t.get(LR, GATEWAY, str(gateway_id))
            if lr is None or lr.external_ids.get(naming.TENANT) != doc["tenant_id"]:
                raise NotFound.field(f"gateways.{i}", "gateway")
            external = stored_doc(lr).get("external") or {}
            if doc.get("external_network_id") and \
                    str(external.get("network_id")) != str(doc["external_network_id"]):
                raise Conflict.field(f"gateways.{i}", "has no port on the VIP's external "
                                     "network, so it cannot serve the VIP")
            found.append(lr)
        return found

    # -- the per-network router that answers for VIPs ----------------------------------------
    def _sync_router(self, t: Txn, network_id: str, lb_id: str, vip: str | None) -> None:
        vips = {ip for i, ip in self._vips_in(t, network_id) if i != lb_id}
        if vip:
            vips.add(vip)
        ls = t.get(LS, "network", network_id)
        router = t.get(LR, ROUTER, network_id)
        link = t.get(LSP, ROUTER, network_id)
        if not vips or ls is None:
            if link is not None:
                if ls is not None:
                    ls.delvalue("ports", link)
                link.delete()
            if router is not None:
                router.delete()
            return
        network = stored_doc(ls)
        tenant = network["tenant_id"]
        addresses = sorted(f"{ip}/{_net_of(ip, network).prefixlen}"  # type: ignore[union-attr]
                           for ip in vips)
        name = f"ovngw-lbr-{network_id}"
        if router is None:
            port = t.insert(LRP, name=name, networks=addresses, mac=ipam.derived_mac(
                self.settings.mac_prefix, "lb-router/" + network_id),
                external_ids=naming.owner_ids(ROUTER, network_id, tenant, parent=network_id))
            t.insert(LR, name=name, ports=[port], external_ids=naming.owner_ids(
                ROUTER, network_id, tenant, parent=network_id))
            link = t.insert(LSP, name=name + "-link", type="router", addresses=["router"],
                            options={"router-port": name},
                            external_ids=naming.owner_ids(ROUTER, network_id, tenant,
                                                          parent=network_id))
            ls.addvalue("ports", link)
            return
        for port in router.ports:
            if sorted(port.networks) != addresses:
                port.networks = addresses

    @staticmethod
    def _vips_in(t: Txn, network_id: str) -> list[tuple[str, str]]:
        """(load balancer id, VIP) of the VIPs placed in a network (committed state)."""
        index = t.indexes[LB]
        out = []
        for lb_id in index.ids_by_key(KIND, "vipnet." + network_id, "1"):
            entry = index.by_id(KIND, lb_id)
            if entry is not None:
                out.append((lb_id, dict(entry.keys)["vip"]))
        return out

    # -- health, from the southbound ---------------------------------------------------------
    def _health(self, row: Any, doc: Doc) -> list[Doc]:
        monitors = self._monitors() if doc.get("health_check") else {}
        lsps = logical_ports(getattr(row, "ip_port_mappings", None))
        out: dict[tuple[str, int], Doc] = {}
        for listener in doc["listeners"]:
            target = listener.get("backend_port") or listener["port"]
            for backend in doc["backends"]:
                port = backend.get("port") or target
                if (backend["ip"], port) not in out:
                    out[(backend["ip"], port)] = {"ip": backend["ip"], "port": port, "status":
                                                  monitors.get((backend["ip"], port,
                                                                doc["protocol"],
                                                                lsps.get(backend["ip"], "")),
                                                               "unknown")}
        return list(out.values())

    # -- what load balancers do when others change --------------------------------------------
    def _rewrite(self, t: Txn, row: Any, changes: Doc) -> None:
        old = stored_doc(row)
        new = {**old, **changes, "revision": old["revision"] + 1, "updated_at": now()}
        self.materialize(t, row, old, new)
        self.write_ownership(row, new)

    def network_deleting(self, t: Txn, event: NetworkEvent) -> None:
        assert event.old is not None
        network = event.old
        for row in self._users(t, network["id"]):
            doc = stored_doc(row)
            if doc.get("_vip_network") == network["id"]:
                raise Conflict(f"the VIP of load balancer {doc['name']!r} is in the network; "
                               "delete the load balancer first")
            if not event.cascade:
                raise Conflict(f"network is used by load balancer {doc['name']!r}; detach "
                               "it or use ?cascade=true")
            kept = [b for b in doc["backends"] if not _net_of(b["ip"], network)]
            self._rewrite(t, row, {
                "networks": [n for n in doc["networks"] if str(n) != network["id"]],
                "backends": kept,
                # nothing left to probe: the check goes with its backends
                "health_check": doc.get("health_check") if kept else None})

    def _users(self, t: Txn, network_id: str) -> list[Any]:
        rows = {r.uuid: r for r in t.rows_by_key(LB, KIND, "net." + network_id, "1")}
        rows.update({r.uuid: r for r in t.rows_by_key(LB, KIND, "vipnet." + network_id, "1")})
        network = stored_doc(t.get(LS, "network", network_id))
        for row in t.rows(LB, KIND, tenant=network["tenant_id"]):
            if any(_net_of(b["ip"], network) for b in stored_doc(row)["backends"]):
                rows[row.uuid] = row
        return list(rows.values())

    def port_changed(self, t: Txn, event: PortEvent) -> None:
        if event.old is None or event.cascade:  # a cascade drops the network's backends
            return
        for row in t.rows_by_key(LB, KIND, "bport." + event.port_id, "1"):
            doc = stored_doc(row)
            backends = {b["ip"] for b in doc["backends"]}
            kept = set((event.new or {}).get("ips") or [])
            if backends & (set(event.old["ips"]) - kept):
                raise Conflict(f"port {event.port_id} is a health-checked backend of load "
                               f"balancer {doc['name']!r}; remove it there first")

    def resource_changing(self, t: Txn, event: ResourceEvent) -> None:
        if event.kind == GATEWAY and event.old is not None and event.new is not None:
            external = str((event.new.get("external") or {}).get("network_id"))
            for row in t.rows_by_key(LB, KIND, "gw." + event.old["id"], "1"):
                doc = stored_doc(row)
                if doc.get("external_network_id") and \
                        str(doc["external_network_id"]) != external:
                    raise Conflict(f"load balancer {doc['name']!r} serves its VIP through "
                                   "this gateway's external port; detach it there first")
            return
        if event.old is None or event.new is not None:
            return
        if event.kind == ext.KIND:
            users = sorted(stored_doc(r)["name"] for r in
                           t.rows_by_key(LB, KIND, "ext", event.old["id"]))
            if users:
                raise Conflict("external network holds the VIPs of load balancers "
                               f"{', '.join(users)}")
            return
        if event.kind != GATEWAY:
            return
        for row in list(t.rows_by_key(LB, KIND, "gw." + event.old["id"], "1")):
            doc = stored_doc(row)
            self._rewrite(t, row, {"gateways": [g for g in doc["gateways"]
                                                if str(g) != event.old["id"]]})

    def address_taken(self, t: Txn, network: Doc, ip: str) -> bool:
        return bool(t.indexes[LB].ids_by_key(KIND, "held", ext.held_key(network["id"], ip)))

    def reserved_addresses(self, t: Txn, network: Doc) -> set[str]:
        held = {ip for _, ip in self._vips_in(t, network["id"])}
        held.update(t.keys_by_key(LB, KIND, "hcnet." + network["id"], "1",
                                  "hcsrc." + network["id"]))
        return held


class HealthWatch:
    """Keeps offline backends out of the traffic path. OVN 23.03 pins a client with session
    affinity to its backend even after the service monitor marks it offline; taking the
    backend out of `vips` moves the client at once. The probe load balancer keeps the
    backend monitored meanwhile, and it comes back when the monitor says online.
    Every gateway process with a southbound runs one; their writes are the same."""

    def __init__(self, service: LoadBalancerService) -> None:
        self.service = service
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        if self._thread is None and self.service.settings.sb_db:
            self._thread = threading.Thread(target=self._run, name="lb-health", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL):
            try:
                self.sweep()
            except GatewayError as exc:  # the database is away: try again next round
                LOG.info("load balancer health: %s", exc.detail)
            except Exception:
                LOG.exception("load balancer health sweep failed")

    def sweep(self) -> int:
        """Write vips where they differ from what the monitor says; returns the count."""
        nb = self.service.nb
        if not nb.ready:
            return 0
        monitors = self.service._monitors()
        stale = []
        for entry in list(nb.index(LB).entries(KIND)):
            row = nb.row(LB, entry.row_uuid)
            if row is None:
                continue
            doc = stored_doc(row, committed=True)
            if doc.get("health_check") and dict(row.vips) != vips_map(doc, offline_backends(
                    monitors, doc, logical_ports(row.ip_port_mappings))):
                stale.append(entry.id)
        for lb_id in stale:
            def change(t: Txn, lb_id: str = lb_id) -> None:
                self._apply(t, lb_id, monitors)
            nb.transact(change, "lb_health")
        return len(stale)

    @staticmethod
    def _apply(t: Txn, lb_id: str, monitors: Monitors) -> None:
        row = t.get(LB, KIND, lb_id)
        if row is None:
            return
        row.verify("external_ids")  # the document it was computed from
        doc = stored_doc(row)
        wanted = vips_map(doc, offline_backends(monitors, doc,
                                                logical_ports(row.ip_port_mappings)))
        if dict(row.vips) != wanted:
            row.vips = wanted

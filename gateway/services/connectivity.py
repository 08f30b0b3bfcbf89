"""Connectivity checks: what OVN would do with one packet between the caller's things.

The packet is built from the source port's own MAC and address and traced with
`ovn-trace` against the southbound database (logical flows, as `ovn-northd` compiled
them; nothing is sent). The trace's detailed text is read back into API terms: the
datapaths crossed (networks, gateways, external networks, lb-routers), the NAT and load
balancer rewrites, and the ACLs met. An ACL of a policy is recognised by its port group
`ovngw_p<policy id>` in the logical flow's match; its priority (the flow's, less OVN's
offset of 1000) and match then find the policy's own ACL row, whose `rule` names the rule.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from gateway.auth import Principal
from gateway.config import Settings
from gateway.errors import BadRequest, NotFound, Unavailable
from gateway.ovn import naming, southbound
from gateway.ovn.connection import Northbound
from gateway.ovn.tables import LR, LRP, LS, LSP
from gateway.services.load_balancers import LoadBalancerService
from gateway.services.networks import NetworkService
from gateway.services.policies import PolicyService
from gateway.services.ports import PortService

Doc = dict[str, Any]
ACL_OFFSET = 1000  # ovn-northd's lflow priority of an ACL: the ACL's plus this
MAX_BACKENDS = 16
SRC_PORT = 49152
_HEADER = re.compile(r'^\s*(ingress|egress)\(dp="([^"]+)", inport="([^"]*)"'
                     r'(?:, outport="([^"]*)")?\)\s*$')
_STAGE = re.compile(r"^\s*\d+\. (\S+) \([^)]*\): (.*), priority (\d+), uuid [0-9a-f]+\s*$")
_OUTPUT = re.compile(r'^\s*/\* output to "([^"]+)", type "([^"]*)" \*/\s*$')
_NAT = re.compile(r"\bct_(snat|dnat)(?:_in_czone)?\(([0-9A-Fa-f.:]+)\)")
_LB = re.compile(r"\bct_lb(?:_mark)?\(backends=([^;)]*)")
_DST = re.compile(r"\bip[46]\.dst == ([0-9A-Fa-f.:]+)\b")
_L4_DST = re.compile(r"\b(?:tcp|udp|sctp)\.dst == (\d+)\b")
_GROUP = re.compile(r"@ovngw_p([0-9a-f]{32})\b")
_BACKEND = re.compile(r"^(?:\[([0-9A-Fa-f:]+)\]|([0-9.]+)):(\d+)$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass
class Stage:
    datapath: str
    table: str
    match: str
    priority: int
    actions: list[str] = field(default_factory=list)


@dataclass
class Trace:
    """ovn-trace's detailed output, as far as a check needs it."""

    datapaths: list[str] = field(default_factory=list)  # in order, repeats collapsed
    stages: list[Stage] = field(default_factory=list)
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (port, type)

    @property
    def drop(self) -> Stage | None:
        return next((s for s in self.stages if "drop;" in s.actions), None)

    @property
    def arp_pending(self) -> bool:
        return any(s.table == "lr_in_arp_request" and any(a.startswith("arp {") for a in
                                                          s.actions) for s in self.stages)


def parse_trace(text: str) -> Trace:
    trace = Trace()
    current: Stage | None = None
    datapath = ""
    for line in text.splitlines():
        if m := _HEADER.match(line):
            datapath, current = m.group(2), None
            if not trace.datapaths or trace.datapaths[-1] != datapath:
                trace.datapaths.append(datapath)
        elif m := _STAGE.match(line):
            current = Stage(datapath, m.group(1), m.group(2), int(m.group(3)))
            trace.stages.append(current)
        elif m := _OUTPUT.match(line):
            trace.outputs.append((m.group(1), m.group(2)))
        elif current is not None and line.strip() and not set(line.strip()) <= {"-"}:
            current.actions.append(line.strip())
    return trace


@dataclass
class Packet:
    protocol: str
    src_port: Doc
    src_ip: str
    dst_ip: str
    dst_mac: str | None  # None: nothing on the source network answers for dst_ip
    dst_port_id: str | None
    port: int | None
    why_not: str = ""
    router: bool = False  # dst_ip is a router's own address: the router itself answers

    def microflow(self) -> str:
        # Only parsed values reach the expression: UUIDs, MACs, addresses, integers.
        inport = str(uuid.UUID(self.src_port["id"]))
        mac, dst_mac = self.src_port["mac"], self.dst_mac or ""
        if not (_MAC.fullmatch(mac) and _MAC.fullmatch(dst_mac)):
            raise ValueError("not a MAC")
        src, dst = ipaddress.ip_address(self.src_ip), ipaddress.ip_address(self.dst_ip)
        v = src.version
        terms = [f'inport == "{inport}"', f"eth.src == {mac}", f"eth.dst == {dst_mac}",
                 f"ip{v}.src == {src}", f"ip{v}.dst == {dst}", "ip.ttl == 64"]
        if self.protocol == "icmp":
            terms.append("icmp4.type == 8 && icmp4.code == 0" if v == 4
                         else "icmp6.type == 128 && icmp6.code == 0")
        else:
            terms.append(f"{self.protocol}.src == {SRC_PORT} && "
                         f"{self.protocol}.dst == {int(self.port or 0)}")
        return " && ".join(terms)

    def describe(self) -> Doc:
        out: Doc = {"protocol": self.protocol, "src_ip": self.src_ip,
                    "src_mac": self.src_port["mac"], "dst_ip": self.dst_ip}
        if self.dst_mac:
            out["dst_mac"] = self.dst_mac
        if self.port is not None:
            out.update(src_port=SRC_PORT, dst_port=self.port)
        return out


class ConnectivityService:
    """Not a resource kind: it reads the others' documents and the southbound."""

    def __init__(self, nb: Northbound, settings: Settings, services: Any) -> None:
        self.nb, self.settings, self.services = nb, settings, services

    def check(self, who: Principal, body: Doc) -> Doc:
        """The answer of POST /v1/connectivity-checks."""
        packet = self.packet(who, body)
        if packet.dst_mac is None:
            # Nothing on the source's network answers for the address: the host's ARP
            # goes unanswered and the packet is never sent; there is nothing to trace.
            return {"result": "dropped", "reason": packet.why_not, "complete": True,
                    "packet": packet.describe(),
                    "path": [self.hop_of_network(who, packet.src_port["network_id"])],
                    "translations": [], "policy": None, "policies": [], "notes": []}
        trace = self.run(packet)
        lb = next((found for stage in trace.stages if (found := backends_of(stage))), None)
        if lb is None or not lb[2]:
            return self.answer(who, packet, trace)
        vip, port, backends = lb
        doc = self.load_balancer(who, packet.src_port["tenant_id"], vip, port)
        best: Doc | None = None
        results = []
        for ip, backend_port in backends:
            where = f"[{ip}]:{backend_port}" if ":" in ip else f"{ip}:{backend_port}"
            answer = self.answer(who, packet, self.run(packet, where),
                                 (f"{vip}:{port}", where, doc))
            results.append({"ip": ip, "port": backend_port, "result": answer["result"],
                            "policy": answer["policy"]})
            if best is None or (best["result"] != "allowed" and answer["result"] == "allowed"):
                best = answer
        assert best is not None
        best["load_balancer"] = {"id": doc["id"] if doc else None,
                                 "name": doc["name"] if doc else None,
                                 "vip": vip, "port": port, "backends": results}
        return best

    def hop_of_network(self, who: Principal, network_id: str) -> Doc:
        entry = self.nb.index(LS).by_id("network", network_id)
        return self.hop(who, str(entry.row_uuid)) if entry else {"type": "network",
                                                                  "id": network_id}

    def answer(self, who: Principal, packet: Packet, trace: Trace,
               lb: tuple[str, str, Doc | None] | None = None) -> Doc:
        path: list[Doc] = []
        for datapath in trace.datapaths:
            hop = self.hop(who, datapath)
            if not path or path[-1] != hop:
                path.append(hop)
        src, dst = packet.src_ip, packet.dst_ip
        translations: list[Doc] = []
        if lb is not None:
            translations.append({"type": "load-balancer", "original": lb[0],
                                 "translated": lb[1],
                                 **({"load_balancer_id": lb[2]["id"]} if lb[2] else {})})
        met = [(stage, self.policy_of(who, stage)) for stage in trace.stages]
        for stage in trace.stages:
            nat = nat_of(stage, src, dst)
            if nat is not None:
                kind, old, new = nat
                hop = self.hop(who, stage.datapath)
                translations.append({"type": kind, "original": old, "translated": new,
                                     **({"gateway_id": hop["id"]}
                                        if hop["type"] == "gateway" else {})})
                src, dst = (new, dst) if kind == "snat" else (src, new)
        result, reason, notes = self.verdict(who, packet, trace)
        if result == "allowed":  # the last allow on the way decided
            decided = next((p for _, p in reversed(met) if p and p["action"] == "allow"), None)
        else:
            decided = next((p for stage, p in met if stage is trace.drop), None)
            if decided is not None:
                reason = f"dropped by policy {decided['name']!r}, rule {decided['rule']}"
        return {"result": result, "reason": reason, "complete": not notes,
                "packet": packet.describe(), "path": path, "translations": translations,
                "policy": decided, "policies": [p for _, p in met if p], "notes": notes}

    def verdict(self, who: Principal, packet: Packet,
                trace: Trace) -> tuple[str, str, list[str]]:
        """Where the packet ended. The trace follows every branch OVN could take (a
        connection-tracking lookup forks it): delivery on any of them counts."""
        delivered = [port for port, kind in trace.outputs
                     if kind not in ("patch", "chassisredirect")]
        if packet.dst_port_id is not None and packet.dst_port_id in delivered:
            return "allowed", f"delivered to port {packet.dst_port_id}", []
        drop = trace.drop
        if trace.arp_pending and drop is None:
            return "allowed", "routed towards the destination", [
                "the router has no MAC binding for the next hop yet: OVN resolves it with "
                "ARP and holds the packet until it answers; the trace stops there, so NAT "
                "on the way out is not shown"]
        if packet.dst_port_id is None:
            if any(kind == "localnet" for _, kind in trace.outputs):
                return "allowed", "leaves through the external network", []
            others = [p for p in delivered if p != packet.src_port["id"]]
            if others:
                return "allowed", f"delivered to port {others[0]}", []
            if packet.router and packet.src_port["id"] in delivered:
                return "allowed", "answered by the gateway's router", []
        if drop is not None:
            hop = self.hop(who, drop.datapath)
            where = f"{hop['type']} {hop['id']}" if "id" in hop else hop["type"]
            return "dropped", f"dropped in {where} (OVN stage {drop.table})", []
        return "dropped", "not delivered to the destination", []

    # -- the packet -------------------------------------------------------------------------
    def packet(self, who: Principal, body: Doc) -> Packet:
        ports = self.services.of(PortService)
        try:
            src = ports.get(who, str(body["from_port"]))
        except NotFound:
            raise NotFound.field("from_port", "port") from None
        target, dst_port = body["to"], None
        if "port" in target:
            try:
                dst_port = ports.get(who, str(target["port"]))
            except NotFound:
                raise NotFound.field("to.port", "port") from None
            if dst_port["tenant_id"] != src["tenant_id"]:
                raise NotFound.field("to.port", "port")  # admins: within one tenant
            families = sorted({ipaddress.ip_address(ip).version for ip in src["ips"]}
                              & {ipaddress.ip_address(ip).version for ip in dst_port["ips"]})
            if not families:
                raise BadRequest.field("to.port", "has no address of from_port's family")
            dst_ip = str(_first(dst_port["ips"], families[0]))
        else:
            dst_ip = str(target["ip"])
        version = ipaddress.ip_address(dst_ip).version
        src_ip = _first(src["ips"], version)
        if src_ip is None:
            raise BadRequest.field("to.ip", f"from_port has no IPv{version} address")
        network = self.services.of(NetworkService).get(who, src["network_id"])
        packet = Packet(body["protocol"], src, src_ip, dst_ip, None,
                        dst_port["id"] if dst_port else None, body.get("port"))
        self._next_hop(packet, network, dst_port)
        return packet

    def _next_hop(self, packet: Packet, network: Doc, dst_port: Doc | None) -> None:
        """The MAC the source would send to: on-link, the owner of the address; else the
        router port of the gateway attached to the source's network."""
        addr = ipaddress.ip_address(packet.dst_ip)
        on_link = any(c and addr.version == ipaddress.ip_network(c).version
                      and addr in ipaddress.ip_network(c)
                      for c in (network["cidr"], network.get("ipv6_cidr")))
        net_id = network["id"]
        if not on_link:
            packet.dst_mac = self._gateway_mac(net_id)
            if packet.dst_mac is None:
                packet.why_not = (f"{packet.dst_ip} is outside network {net_id} and no "
                                  "gateway is attached to it")
            return
        if dst_port is not None and dst_port["network_id"] == net_id:
            packet.dst_mac = dst_port["mac"]
            return
        for entry in self.nb.indexes()[LSP].entries("port", parent=net_id):
            if entry.doc and packet.dst_ip in (entry.doc.get("ips") or []):
                packet.dst_mac = entry.doc["mac"]
                return
        for kind, key in (("lb-router", net_id), ("gw-port", None)):
            row = self._router_port(kind, key, net_id)
            if row is not None and any(n.split("/")[0] == packet.dst_ip for n in row.networks):
                packet.dst_mac, packet.router = row.mac, kind == "gw-port"
                return
        packet.why_not = f"no port, VIP or router of network {net_id} has {packet.dst_ip}"

    def _router_port(self, kind: str, key: str | None, net_id: str) -> Any:
        index = self.nb.index(LRP)
        if key is None:
            gateways = self.nb.index(LR).ids_by_key("gateway", "net." + net_id, "1")
            if not gateways:
                return None
            key = f"{gateways[0]}/{net_id}"
        entry = index.by_id(kind, key)
        return self.nb.row(LRP, entry.row_uuid) if entry else None

    def _gateway_mac(self, net_id: str) -> str | None:
        row = self._router_port("gw-port", None, net_id)
        return str(row.mac) if row is not None else None

    # -- the trace --------------------------------------------------------------------------
    def run(self, packet: Packet, lb_dst: str | None = None) -> Trace:
        remote = self.settings.sb_db
        if not remote:
            raise Unavailable("connectivity checks need the southbound database: the gateway "
                              "runs without OVN_SB_DB", self.settings.retry_after)
        ssl = None
        if "ssl:" in remote and self.settings.ssl_key and self.settings.ssl_cert \
                and self.settings.ssl_ca:
            ssl = (self.settings.ssl_key, self.settings.ssl_cert, self.settings.ssl_ca)
        try:
            text = southbound.trace(remote, packet.microflow(),
                                    min(self.settings.ovn_timeout, 10.0), lb_dst, ssl)
        except southbound.TraceError as exc:
            raise Unavailable(str(exc), self.settings.retry_after) from None
        return parse_trace(text)

    # -- reading a trace back ---------------------------------------------------------------
    def hop(self, who: Principal, datapath: str) -> Doc:
        try:
            key = uuid.UUID(datapath)
        except ValueError:
            return {"type": "other", "id": datapath}
        row = self.nb.row(LS, key) or self.nb.row(LR, key)
        ids = getattr(row, "external_ids", None) or {}
        kind, rid, tenant = ids.get(naming.KIND), ids.get(naming.ID), ids.get(naming.TENANT)
        types = {"network": "network", "gateway": "gateway",
                 "external-network": "external-network", "lb-router": "load-balancer-router"}
        if kind not in types or not (who.is_admin or tenant == who.tenant
                                     or kind == "external-network"):
            return {"type": "other"}
        out = {"type": types[kind], "id": rid}
        if kind != "lb-router" and ids.get(naming.NAME):
            out["name"] = ids[naming.NAME]
        return out

    def policy_of(self, who: Principal, stage: Stage) -> Doc | None:
        """The policy rule behind an ACL stage of the trace, or None."""
        if "_acl" not in stage.table or "acl_hint" in stage.table:
            return None
        group = _GROUP.search(stage.match)
        if group is None:
            return None
        policy_id = str(uuid.UUID(group.group(1)))
        try:
            compiled = self.services.of(PolicyService).compiled(who, policy_id)
            policy = self.services.of(PolicyService).get(who, policy_id)
        except NotFound:
            return None
        direction = "from-lport" if stage.table.startswith("ls_in_") else "to-lport"
        for acl in compiled["acls"]:
            if acl["direction"] == direction and acl["priority"] + ACL_OFFSET == \
                    stage.priority and acl["match"] in stage.match:
                return _rule(policy, acl)
        return None

    def load_balancer(self, who: Principal, tenant: str, vip: str, port: int) -> Doc | None:
        """The tenant's load balancer with this VIP and listener (a tenant has at most its
        quota of them, 50 by default)."""
        lbs = self.services.of(LoadBalancerService)
        query = {"limit": 1000, **({"tenant": tenant} if who.is_admin else {})}
        listing = lbs.list(who, query)["items"]
        for lb in listing:
            if ipaddress.ip_address(lb["vip"]) == ipaddress.ip_address(vip) and \
                    any(listener["port"] == port for listener in lb.get("listeners") or []):
                return dict(lb)
        return None


def _first(ips: list[str], version: int) -> str | None:
    return next((ip for ip in ips if ipaddress.ip_address(ip).version == version), None)


def _rule(policy: Doc, acl: Doc) -> Doc:
    rule = str(acl["rule"])
    parts = rule.split("/")
    index = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    if acl["action"] == "drop":
        action = "deny" if index is not None else "default-deny"
    else:
        action = "allow"
    return {"id": policy["id"], "name": policy["name"], "direction": parts[0]
            if parts[0] in ("ingress", "egress") else "egress", "rule": rule,
            "index": index, "action": action}


def backends_of(stage: Stage) -> tuple[str, int, list[tuple[str, int]]] | None:
    """(VIP, listener port, backends) of a load balancer stage, or None."""
    for action in stage.actions:
        found = _LB.search(action)
        if found is None:
            continue
        vip, l4 = _DST.search(stage.match), _L4_DST.search(stage.match)
        if vip is None or l4 is None:
            return None
        backends = []
        for item in found.group(1).split(",")[:MAX_BACKENDS]:
            b = _BACKEND.fullmatch(item.strip())
            if b:
                backends.append((str(ipaddress.ip_address(b.group(1) or b.group(2))),
                                 int(b.group(3))))
        return vip.group(1), int(l4.group(1)), backends
    return None


def nat_of(stage: Stage, src: str, dst: str) -> tuple[str, str, str] | None:
    """(snat|dnat, original, translated) when the stage rewrites an address."""
    for action in stage.actions:
        found = _NAT.search(action)
        if found is None:
            continue
        try:
            new = str(ipaddress.ip_address(found.group(2)))
        except ValueError:
            continue
        if found.group(1) == "snat":
            return "snat", src, new
        matched = _DST.search(stage.match)
        return "dnat", matched.group(1) if matched else dst, new
    return None

"""A policy document -> OVN ACL specifications. Pure: no OVSDB here, so it is unit-tested.

Isolation: a direction whose rule list the policy gives, even an empty one (Kubernetes'
default deny), isolates the selected ports in that direction; an absent list does not. The
allows of every policy selecting a port add up above the default drops.

Ordering (OVN evaluates higher ACL priorities first): a policy with a lower `priority` number
gets higher ACL priorities; at one policy priority deny sits above allow; the default drop of
isolated ports sits below every rule; ARP is never matched (rules match `ip` only), and ND
and DHCP are let through above the default drop.

Every value that reaches a match expression is regenerated from a parsed form (ints,
ipaddress objects, names built from UUIDs), so user text never becomes match syntax.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass
from typing import Any

RULE_BASE = 2000
DEFAULT_DROP = 1000
INFRA_ALLOW = 1001
CONNTRACK_ON = 1
_L4 = ("tcp", "udp", "sctp")


@dataclass(frozen=True)
class AclSpec:
    direction: str  # "to-lport" (ingress) | "from-lport" (egress)
    priority: int
    match: str
    action: str
    rule: str  # "ingress/0", "egress/default", ...
    log: bool = False
    severity: str | None = None


def group_name(policy_id: str) -> str:
    return "ovngw_p" + policy_id.replace("-", "")


def selector_key(tenant: str, selector: dict[str, str]) -> str:
    """Policies of a tenant that select peers by the same labels share one address set."""
    canonical = json.dumps([tenant, selector], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def address_set_name(tenant: str, selector: dict[str, str], family: int) -> str:
    return f"ovngw_s{selector_key(tenant, selector)}_ip{family}"


def rule_priority(policy_priority: int, action: str) -> int:
    return RULE_BASE + (1000 - policy_priority) * 2 + (1 if action == "deny" else 0)


def port_bounds(value: int | str) -> tuple[int, int]:
    """80 -> (80, 80); "8000-8080" -> (8000, 8080); validated by the schema already."""
    if isinstance(value, int):
        return value, value
    low, _, high = str(value).partition("-")
    return int(low), int(high or low)


def _port_clause(protocol: str, ports: list[int | str] | None, side: str = "dst") -> str:
    if protocol == "any":
        return ""
    if protocol == "icmp":
        return "(icmp4 || icmp6)"
    if not ports:
        return protocol
    parts = []
    for value in ports:
        low, high = port_bounds(value)
        parts.append(f"{protocol}.{side} == {low}" if low == high else
                     f"({protocol}.{side} >= {low} && {protocol}.{side} <= {high})")
    return f"{protocol} && ({' || '.join(parts)})"


def _peer_clauses(peers: list[dict[str, Any]] | None, field: str, tenant: str,
                  network_cidrs: dict[str, list[str]]) -> list[str] | None:
    """One clause per peer, or None when the rule has no peers (any address)."""
    if not peers:
        return None
    clauses = []
    for peer in peers:
        if "selector" in peer:
            for family in (4, 6):
                clauses.append(f"ip{family}.{field} == "
                               f"${address_set_name(tenant, peer['selector'], family)}")
        else:
            cidrs = [peer["cidr"]] if "cidr" in peer else network_cidrs[str(peer["network"])]
            for cidr in cidrs:
                net = ipaddress.ip_network(cidr)
                clauses.append(f"ip{net.version}.{field} == {net}")
    return clauses


def compile_policy(policy: dict[str, Any], network_cidrs: dict[str, list[str]]) -> list[AclSpec]:
    group = group_name(policy["id"])
    tenant = policy["tenant_id"]
    log = bool((policy.get("log") or {}).get("enabled"))
    severity = (policy.get("log") or {}).get("severity") if log else None
    allow = "allow-related" if policy.get("stateful", True) else "allow-stateless"
    acls: list[AclSpec] = []
    for direction, port_field, addr_field, ovn_dir in (
            ("ingress", "outport", "src", "to-lport"), ("egress", "inport", "dst", "from-lport")):
        rules = policy.get(direction)
        if rules is None:  # absent: not isolated in this direction; [] isolates
            continue
        for i, rule in enumerate(rules):
            key = f"{direction}/{i}"
            terms = [f"{port_field} == @{group}", "ip"]
            peers = _peer_clauses(rule.get("peers"), addr_field, tenant, network_cidrs)
            if peers is not None:
                terms.append("(" + " || ".join(peers) + ")")
            l4 = _port_clause(rule.get("protocol", "any"), rule.get("ports"))
            if l4:
                terms.append(l4)
            action = "drop" if rule["action"] == "deny" else allow
            priority = rule_priority(policy.get("priority", 500), rule["action"])
            acls.append(AclSpec(ovn_dir, priority, " && ".join(terms), action, key, log,
                                severity))
            if action == "allow-stateless":
                acls.append(_reply_acl(direction, group, rule, key, tenant, network_cidrs,
                                       priority))
        acls.append(AclSpec(ovn_dir, DEFAULT_DROP, f"{port_field} == @{group} && ip", "drop",
                            f"{direction}/default", log, severity))
        infra = "nd || nd_rs || nd_ra"
        if direction == "egress":
            infra += (" || (udp && udp.src == 68 && udp.dst == 67)"
                      " || (udp && udp.src == 546 && udp.dst == 547)")
        acls.append(AclSpec(ovn_dir, INFRA_ALLOW, f"{port_field} == @{group} && ({infra})",
                            "allow-stateless", f"{direction}/infra"))
    if acls and allow == "allow-stateless":
        # OVN tracks connections on a switch only while some ACL there is stateful, and the
        # replies of a selected port's own connections depend on that. This never-matching
        # stateful ACL keeps them passing whatever else is on the switch; the rules above
        # still bypass conntrack for what they match.
        acls.append(AclSpec("from-lport", CONNTRACK_ON, f"inport == @{group} && ip4 && ip6",
                            "allow-related", "conntrack"))
    return acls


def _reply_acl(direction: str, group: str, rule: dict[str, Any], key: str, tenant: str,
               network_cidrs: dict[str, list[str]], priority: int) -> AclSpec:
    """Without conntrack nothing lets replies back: allow them statelessly as well, so they
    also bypass conntrack on a switch that other (stateful) policies make stateful."""
    port_field, addr_field, ovn_dir = (("inport", "dst", "from-lport") if direction == "ingress"
                                       else ("outport", "src", "to-lport"))
    terms = [f"{port_field} == @{group}", "ip"]
    peers = _peer_clauses(rule.get("peers"), addr_field, tenant, network_cidrs)
    if peers is not None:
        terms.append("(" + " || ".join(peers) + ")")
    l4 = _port_clause(rule.get("protocol", "any"), rule.get("ports"), side="src")
    if l4:
        terms.append(l4)
    return AclSpec(ovn_dir, priority, " && ".join(terms), "allow-stateless", key + "/reply")


def selects(policy: dict[str, Any], port: dict[str, Any]) -> bool:
    labels = port.get("labels") or {}
    if any(labels.get(k) != v for k, v in (policy.get("selector") or {}).items()):
        return False
    networks = policy.get("networks")
    return not networks or str(port.get("network_id")) in {str(n) for n in networks}


def peer_selects(selector: dict[str, str], port: dict[str, Any]) -> bool:
    labels = port.get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def peer_selectors(policy: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The distinct label selectors of the policy's peers, by selector_key."""
    found = {}
    for direction in ("ingress", "egress"):
        for rule in policy.get(direction) or []:
            for peer in rule.get("peers") or []:
                if "selector" in peer:
                    found[selector_key(policy["tenant_id"], peer["selector"])] = peer["selector"]
    return found

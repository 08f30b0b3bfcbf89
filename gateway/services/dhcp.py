"""OVN DHCP_Options values from a network's settings and a port's overrides."""

from __future__ import annotations

import ipaddress
from typing import Any


def _ovn_set(values: list[str]) -> str:
    return "{" + ", ".join(values) + "}"


def merged(network: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The port's effective DHCP settings: its overrides on top of the network's."""
    result = dict(network.get("dhcp") or {})
    if network.get("mtu") and "mtu" not in result:
        result["mtu"] = network["mtu"]
    if network.get("dns_domain") and "domain_name" not in result:
        result["domain_name"] = network["dns_domain"]
    result.update({k: v for k, v in overrides.items() if v is not None})
    return result


def v4_options(network: dict[str, Any], settings: dict[str, Any],
               server_mac: str) -> dict[str, str]:
    gateway = network["gateway_ip"]
    options = {
        "server_id": gateway,
        "server_mac": server_mac,
        "router": gateway,
        "lease_time": str(settings.get("lease_time", 43200)),
    }
    v4_dns = [s for s in settings.get("dns_servers") or [] if ipaddress.ip_address(s).version == 4]
    if v4_dns:
        options["dns_server"] = _ovn_set(v4_dns)
    if settings.get("domain_name"):
        options["domain_name"] = f'"{settings["domain_name"]}"'
    if settings.get("ntp_servers"):
        options["ntp_server"] = _ovn_set(settings["ntp_servers"])
    if settings.get("mtu"):
        options["mtu"] = str(settings["mtu"])
    if settings.get("routes"):
        # RFC 3442 clients ignore the router option when option 121 is present, so the
        # default route has to be repeated among the classless routes.
        routes = [f"{r['destination']},{r['nexthop']}" for r in settings["routes"]]
        if not any(r["destination"] == "0.0.0.0/0" for r in settings["routes"]):
            routes.append(f"0.0.0.0/0,{gateway}")
        options["classless_static_route"] = _ovn_set(routes)
    return options


def v6_options(settings: dict[str, Any], server_mac: str) -> dict[str, str]:
    options = {"server_id": server_mac}
    v6_dns = [s for s in settings.get("dns_servers") or [] if ipaddress.ip_address(s).version == 6]
    if v6_dns:
        options["dns_server"] = _ovn_set(v6_dns)
    if settings.get("domain_name"):
        options["domain_search"] = f'"{settings["domain_name"]}"'
    if (settings.get("ipv6") or {}).get("mode") == "stateless":
        options["dhcpv6_stateless"] = "true"
    return options

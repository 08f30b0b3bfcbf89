"""Address allocation inside a network: pure functions over what is in use."""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections.abc import Iterable

IPv4Net = ipaddress.IPv4Network
IPv6Net = ipaddress.IPv6Network


def default_gateway(cidr: str) -> str:
    net = ipaddress.IPv4Network(cidr)
    if net.prefixlen >= 31:
        return str(net.network_address)
    return str(net.network_address + 1)


def reserved_v4(cidr: str, gateway_ip: str | None) -> set[str]:
    net = ipaddress.IPv4Network(cidr)
    reserved = {str(gateway_ip)} if gateway_ip else set()
    if net.prefixlen < 31:
        reserved |= {str(net.network_address), str(net.broadcast_address)}
    return reserved


def router_v6(ipv6_cidr: str) -> str:
    """The address a gateway's router takes on a network's IPv6 prefix, its first: reserved
    from the start, like gateway_ip, so attaching a gateway never finds it taken."""
    return str(ipaddress.IPv6Network(ipv6_cidr).network_address + 1)


def next_free_v4(cidr: str, in_use: set[str]) -> str | None:
    net = ipaddress.IPv4Network(cidr)
    for host in net.hosts() if net.prefixlen < 31 else net:
        if str(host) not in in_use:
            return str(host)
    return None


def eui64(cidr: str, mac: str) -> str:
    net = ipaddress.IPv6Network(cidr)
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    iid = bytes([*octets[:3], 255, 254, *octets[3:]])
    return str(net.network_address + int.from_bytes(iid, "big"))


def next_free_v6(cidr: str, mac: str, in_use: set[str]) -> str | None:
    """EUI-64 on a /64 (what SLAAC clients pick too), otherwise the first free address."""
    net = ipaddress.IPv6Network(cidr)
    if net.prefixlen == 64:
        candidate = eui64(cidr, mac)
        if candidate not in in_use:
            return candidate
    start = int(net.network_address) + 1
    for offset in range(min(net.num_addresses - 1, 1 << 20)):
        candidate = str(ipaddress.IPv6Address(start + offset))
        if candidate not in in_use:
            return candidate
    return None


def random_mac(prefix: str, in_use: set[str]) -> str:
    """A locally administered unicast MAC not yet used in the network."""
    head = [int(x, 16) for x in prefix.split(":") if x]
    head[0] = (head[0] | 0x02) & 0xFE
    while True:
        tail = list(secrets.token_bytes(6 - len(head)))
        mac = ":".join(f"{b:02x}" for b in head + tail)
        if mac not in in_use:
            return mac


def derived_mac(prefix: str, seed: str) -> str:
    """A stable MAC for gateway-side services (the DHCP server of a network)."""
    head = [int(x, 16) for x in prefix.split(":") if x]
    head[0] = (head[0] | 0x02) & 0xFE
    tail = list(hashlib.sha256(seed.encode()).digest()[: 6 - len(head)])
    return ":".join(f"{b:02x}" for b in head + tail)


def in_network(ip: str, cidrs: Iterable[str | None]) -> bool:
    addr = ipaddress.ip_address(ip)
    return any(c and addr.version == ipaddress.ip_network(c).version
               and addr in ipaddress.ip_network(c) for c in cidrs)

"""OVN match text the policy compiler may produce: nothing a user typed can appear in it.

Shared by the compiler's unit tests and the API tests."""

from __future__ import annotations

import re

MATCH_WORDS = frozenset({
    "inport", "outport", "ip", "ip4", "ip6", "ip4.src", "ip4.dst", "ip6.src", "ip6.dst", "tcp",
    "udp", "sctp", "tcp.dst", "udp.dst", "sctp.dst", "tcp.src", "udp.src", "sctp.src", "icmp4",
    "icmp6", "nd", "nd_rs", "nd_ra"})
MATCH_TOKEN = re.compile(
    r"(?P<space>\s+)|(?P<op>&&|\|\||==|>=|<=|[()])|"
    r"(?P<group>@ovngw_p[0-9a-f]{32}(?![A-Za-z0-9_]))|"
    r"(?P<set>\$ovngw_s[0-9a-f]{20}_ip[46](?![A-Za-z0-9_]))|"
    r"(?P<cidr>[0-9a-f:.]+/[0-9]+)|(?P<int>[0-9]+(?![0-9A-Za-z_.:/]))|"
    r"(?P<word>[A-Za-z_][A-Za-z0-9_.]*)")


def only_generated_tokens(match: str) -> bool:
    """Every token is an operator, a generated group/set name, a CIDR, an int or a field."""
    pos = 0
    while pos < len(match):
        token = MATCH_TOKEN.match(match, pos)
        if token is None or (token.lastgroup == "word" and token.group() not in MATCH_WORDS):
            return False
        pos = token.end()
    return True

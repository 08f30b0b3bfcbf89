"""The first vertical slice: a network with DHCP and a port, as rows in OVN."""

from __future__ import annotations

import json
from typing import Any


def test_network_and_port_become_ovn_rows(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.20.0.0/24", dhcp={"dns_servers": ["10.20.0.53"]})
    port = api.port(net["id"])
    assert port["ips"] == ["10.20.0.2"]
    rows = json.loads(nbctl("--format=json", "find", "Logical_Switch_Port",
                            f"name={port['id']}"))
    assert len(rows["data"]) == 1
    lsp = nbctl("get", "Logical_Switch_Port", port["id"], "addresses").strip()
    assert lsp == f'["{port["mac"]} 10.20.0.2"]'
    options = nbctl("get", "DHCP_Options",
                    nbctl("get", "Logical_Switch_Port", port["id"], "dhcpv4_options").strip(),
                    "options")
    assert 'dns_server="{10.20.0.53}"' in options
    assert 'router="10.20.0.1"' in options

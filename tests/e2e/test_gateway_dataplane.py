"""The gateway API driving a real data plane: networks and ports made through /v1, hosts wired
to the port ids, and packets checking what the API promised (addresses, DHCP, DNS, status,
tenant isolation with overlapping address space)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from helpers.dataplane import Hosts, host_addr, ip4, ping, tcp_reply
from helpers.waiting import wait_until

pytestmark = pytest.mark.e2e

# A MAC nobody owns: OVN's DNS responder answers before the destination MAC is looked at, so
# a host only needs *some* neighbour entry for the address it sends its queries to.
_RESPONDER_MAC = "0a:58:ff:ff:ff:01"


def _tag() -> str:
    return uuid.uuid4().hex[:6]


def _wire(hosts: Hosts, name: str, port: dict[str, Any], network: dict[str, Any]) -> None:
    """A host bound to the API port (iface-id = port id), addressed from the port's ips."""
    hosts.add(name, port["id"], port["mac"], host_addr(port, network))


def _status(api: Any, port_id: str) -> str:
    resp = api.get(f"/v1/ports/{port_id}")
    assert resp.status_code == 200, resp.get_json()
    return str(resp.get_json()["status"])


def test_two_hosts_on_a_network_ping(dp_api: Any, hosts: Hosts) -> None:
    tag = _tag()
    net = dp_api.network(cidr="10.61.0.0/24")
    a, b = dp_api.port(net["id"]), dp_api.port(net["id"])
    assert ip4(a) != ip4(b)
    _wire(hosts, f"pa{tag}", a, net)
    _wire(hosts, f"pb{tag}", b, net)
    wait_until(lambda: ping(hosts, f"pa{tag}", ip4(b)), timeout=30, what="a -> b ping")
    assert ping(hosts, f"pb{tag}", ip4(a), count=3)
    # The MAC the API reported is the one the other side learns.
    neigh = hosts.run(f"pb{tag}", "ip", "neigh", "show", ip4(a)).stdout
    assert a["mac"] in neigh


def test_port_status_follows_the_binding(dp_api: Any, hosts: Hosts) -> None:
    tag = _tag()
    net = dp_api.network(cidr="10.65.0.0/24")
    port = dp_api.port(net["id"])
    assert port["status"] == "down"
    assert _status(dp_api, port["id"]) == "down"

    _wire(hosts, f"st{tag}", port, net)
    wait_until(lambda: _status(dp_api, port["id"]) == "up", timeout=30, what="status up")
    listed = dp_api.get(f"/v1/networks/{net['id']}/ports").get_json()["items"]
    assert [p["status"] for p in listed if p["id"] == port["id"]] == ["up"]

    # Unplugged again: the binding goes away and so does `up`.
    assert hosts.remove(f"st{tag}")
    wait_until(lambda: _status(dp_api, port["id"]) == "down", timeout=30, what="status down")


def _udhcpc(hosts: Hosts, name: str, script: Path) -> dict[str, str]:
    out = hosts.run(name, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5",
                    "-T", "1", "-s", str(script), timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    bound = [line for line in out.stdout.splitlines() if line.startswith("event=bound")]
    assert bound, out.stdout + out.stderr
    return dict(word.split("=", 1) for word in bound[0].split("|") if "=" in word)


def test_dhcp_lease_carries_network_settings_and_port_overrides(
        dp_api: Any, hosts: Hosts, tmp_path: Path) -> None:
    tag = _tag()
    net = dp_api.network(cidr="10.62.0.0/24", mtu=1450, dhcp={
        "lease_time": 3600, "dns_servers": ["10.62.0.53", "10.62.0.54"],
        "domain_name": f"dhcp-{tag}.test",
        "routes": [{"destination": "192.168.50.0/24", "nexthop": "10.62.0.254"}]})
    special = dp_api.port(net["id"], dhcp={"lease_time": 1800, "mtu": 1400})
    plain = dp_api.port(net["id"])
    hosts.add(f"ds{tag}", special["id"], special["mac"])  # no address: DHCP gives it
    hosts.add(f"dp{tag}", plain["id"], plain["mac"])

    script = tmp_path / "udhcpc.sh"
    script.write_text('#!/bin/sh\necho "event=$1|ip=$ip|subnet=$subnet|router=$router|'
                      'dns=$dns|domain=$domain|lease=$lease|mtu=$mtu|serverid=$serverid|'
                      'staticroutes=$staticroutes"\n')
    script.chmod(0o755)
    wait_until(lambda: _status(dp_api, special["id"]) == "up"
               and _status(dp_api, plain["id"]) == "up", timeout=30, what="ports up")

    lease = _udhcpc(hosts, f"ds{tag}", script)
    assert lease["ip"] == ip4(special)  # the address the gateway allocated
    assert lease["subnet"] == "255.255.255.0"
    assert lease["router"] == net["gateway_ip"] == "10.62.0.1"
    assert lease["serverid"] == net["gateway_ip"]
    assert lease["dns"].split() == ["10.62.0.53", "10.62.0.54"]
    assert lease["domain"] == f"dhcp-{tag}.test"
    assert lease["lease"] == "1800"  # the port's override
    assert lease["mtu"] == "1400"  # the port's override of the network's 1450
    # Option 121 replaces the router option for RFC 3442 clients: the default route is
    # repeated among the classless routes.
    assert lease["staticroutes"].split() == ["192.168.50.0/24", "10.62.0.254",
                                             "0.0.0.0/0", "10.62.0.1"]

    lease = _udhcpc(hosts, f"dp{tag}", script)
    assert lease["ip"] == ip4(plain)
    assert lease["router"] == net["gateway_ip"]
    assert lease["dns"].split() == ["10.62.0.53", "10.62.0.54"]
    assert lease["domain"] == f"dhcp-{tag}.test"
    assert lease["lease"] == "3600"  # the network's value stays for the others
    assert lease["mtu"] == "1450"  # the network's mtu

    # A change of the network reaches every port's next lease; the override stays.
    resp = dp_api.patch(f"/v1/networks/{net['id']}", {"dhcp": {"lease_time": 7200,
                                                              "dns_servers": ["10.62.0.99"]}})
    assert resp.status_code == 200, resp.get_json()
    wait_until(lambda: _udhcpc(hosts, f"dp{tag}", script)["lease"] == "7200", timeout=30,
               what="new network lease time")
    lease = _udhcpc(hosts, f"dp{tag}", script)
    assert lease["dns"].split() == ["10.62.0.99"]
    lease = _udhcpc(hosts, f"ds{tag}", script)
    assert (lease["lease"], lease["mtu"], lease["dns"]) == ("1800", "1400", "10.62.0.99")


def _dig(hosts: Hosts, name: str, server: str, *query: str) -> list[str]:
    """`dig +noedns +short` answers (OVN 23.03 ignores queries that carry EDNS)."""
    out = hosts.run(name, "dig", "+noedns", "+short", "+time=1", "+tries=1", f"@{server}",
                    *query, timeout=10)
    return [line for line in out.stdout.splitlines() if line and not line.startswith(";")]


def test_dns_auto_records_user_records_and_ptr(dp_api: Any, hosts: Hosts) -> None:
    tag = _tag()
    domain = f"dns-{tag}.test"
    net = dp_api.network(cidr="10.63.0.0/24", dns_domain=domain)
    client = dp_api.port(net["id"], hostname="client")
    beta = dp_api.port(net["id"], hostname="beta")
    gamma = dp_api.port(net["id"], hostname="gamma")
    resp = dp_api.post("/v1/dns-records", {"name": "db", "fqdn": f"db.svc-{tag}.test",
                                           "ips": ["10.63.0.200"]})
    assert resp.status_code == 201, resp.get_json()
    record = resp.get_json()

    host = f"dn{tag}"
    _wire(hosts, host, client, net)
    # Nothing answers ARP for gateway_ip on a network without a router: give the host a
    # neighbour entry so that its queries leave it; OVN's responder answers them.
    gw = net["gateway_ip"]
    hosts.run(host, "ip", "neigh", "replace", gw, "lladdr", _RESPONDER_MAC, "dev", "eth0",
              "nud", "permanent")

    wait_until(lambda: _dig(hosts, host, gw, f"beta.{domain}") == [ip4(beta)], timeout=30,
               what="A record of beta")
    assert _dig(hosts, host, gw, f"gamma.{domain}") == [ip4(gamma)]
    assert _dig(hosts, host, gw, f"db.svc-{tag}.test") == ["10.63.0.200"]
    assert _dig(hosts, host, gw, "-x", ip4(beta)) == [f"beta.{domain}."]
    assert _dig(hosts, host, gw, "-x", ip4(gamma)) == [f"gamma.{domain}."]
    # Any address on the switch works as the server, e.g. another port's.
    hosts.run(host, "ip", "neigh", "replace", ip4(gamma), "lladdr", gamma["mac"], "dev", "eth0",
              "nud", "permanent")
    assert _dig(hosts, host, ip4(gamma), f"beta.{domain}") == [ip4(beta)]

    # Deleting the record, clearing a hostname and deleting a port take the names away.
    assert dp_api.delete(f"/v1/dns-records/{record['id']}").status_code == 204
    patched = dp_api.patch(f"/v1/ports/{beta['id']}", {"hostname": None})
    assert patched.status_code == 200, patched.get_json()
    assert dp_api.delete(f"/v1/ports/{gamma['id']}").status_code == 204
    wait_until(lambda: _dig(hosts, host, gw, f"db.svc-{tag}.test") == [], timeout=30,
               what="user record gone")
    wait_until(lambda: _dig(hosts, host, gw, f"beta.{domain}") == [], timeout=30,
               what="beta gone")
    wait_until(lambda: _dig(hosts, host, gw, "-x", ip4(beta)) == [], timeout=30,
               what="beta PTR gone")
    wait_until(lambda: _dig(hosts, host, gw, f"gamma.{domain}") == [], timeout=30,
               what="gamma gone")
    assert _dig(hosts, host, gw, "-x", ip4(gamma)) == []
    # The host's own record is still served.
    assert _dig(hosts, host, gw, f"client.{domain}") == [ip4(client)]

    # A renamed host and a renamed domain move the automatic records (A and PTR).
    assert dp_api.patch(f"/v1/ports/{client['id']}", {"hostname": "renamed"}).status_code == 200
    wait_until(lambda: _dig(hosts, host, gw, f"renamed.{domain}") == [ip4(client)],
               timeout=30, what="renamed host")
    assert _dig(hosts, host, gw, f"client.{domain}") == []
    new_domain = f"moved-{tag}.test"
    resp = dp_api.patch(f"/v1/networks/{net['id']}", {"dns_domain": new_domain})
    assert resp.status_code == 200, resp.get_json()
    wait_until(lambda: _dig(hosts, host, gw, f"renamed.{new_domain}") == [ip4(client)],
               timeout=30, what="record in the new domain")
    assert _dig(hosts, host, gw, f"renamed.{domain}") == []
    assert _dig(hosts, host, gw, "-x", ip4(client)) == [f"renamed.{new_domain}."]


def test_overlapping_tenants_carry_traffic_independently(new_tenant: Any, hosts: Hosts) -> None:
    tag = _tag()
    cidr = "10.64.0.0/24"
    tenants = {}
    for side in ("a", "b"):
        api = new_tenant()
        net = api.network(cidr=cidr)
        assert net["cidr"] == cidr
        ports = [api.port(net["id"], ips=[ip]) for ip in ("10.64.0.10", "10.64.0.11")]
        tenants[side] = (api, net, ports)
        for i, port in enumerate(ports):
            _wire(hosts, f"o{side}{i}{tag}", port, net)
        hosts.start(f"o{side}1{tag}", "socat", "TCP-LISTEN:7000,reuseaddr,fork",
                    f"SYSTEM:echo {side}1")
    # Only tenant B has .20: tenant A's hosts must not reach it.
    api_b, net_b, _ = tenants["b"]
    b_extra = api_b.port(net_b["id"], ips=["10.64.0.20"])
    _wire(hosts, f"ob2{tag}", b_extra, net_b)

    for side in ("a", "b"):
        wait_until(lambda side=side: ping(hosts, f"o{side}0{tag}", "10.64.0.11"), timeout=30,
                   what=f"ping within tenant {side}")
        assert ping(hosts, f"o{side}1{tag}", "10.64.0.10", count=2)
        # The same address answers with each tenant's own server.
        wait_until(lambda side=side: tcp_reply(hosts, f"o{side}0{tag}", "10.64.0.11", 7000)
                   == f"{side}1", timeout=30, what=f"tcp within tenant {side}")
    wait_until(lambda: ping(hosts, f"ob0{tag}", "10.64.0.20"), timeout=30, what="b0 -> b2")

    # Tenant A's host: no ARP answer for B's address, and a frame sent straight to B's host's
    # MAC goes nowhere either.
    assert not ping(hosts, f"oa0{tag}", "10.64.0.20", count=2)
    hosts.run(f"oa0{tag}", "ip", "neigh", "replace", "10.64.0.20", "lladdr", b_extra["mac"],
              "dev", "eth0", "nud", "permanent")
    assert not ping(hosts, f"oa0{tag}", "10.64.0.20", count=2)
    assert tcp_reply(hosts, f"oa0{tag}", "10.64.0.11", 7000) == "a1"


def test_dns_record_scope_follows_networks_and_tenants(new_tenant: Any, hosts: Hosts) -> None:
    tag = _tag()
    api = new_tenant()
    first = api.network(cidr="10.66.0.0/24")
    everywhere = api.post("/v1/dns-records", {"name": "all", "fqdn": f"all.z{tag}.test",
                                              "ips": ["192.0.2.1"]})
    assert everywhere.status_code == 201, everywhere.get_json()
    only_first = api.post("/v1/dns-records", {"name": "first", "fqdn": f"first.z{tag}.test",
                                              "ips": ["192.0.2.2"], "networks": [first["id"]]})
    assert only_first.status_code == 201, only_first.get_json()
    later = api.network(cidr="10.67.0.0/24")  # created after the records
    stranger = new_tenant("other")
    foreign = stranger.network(cidr="10.66.0.0/24")

    names = {}
    for key, owner, net in (("f", api, first), ("l", api, later), ("x", stranger, foreign)):
        port = owner.port(net["id"])
        names[key] = f"z{key}{tag}"
        _wire(hosts, names[key], port, net)
        hosts.run(names[key], "ip", "neigh", "replace", net["gateway_ip"], "lladdr",
                  _RESPONDER_MAC, "dev", "eth0", "nud", "permanent")

    def ask(key: str, fqdn: str) -> list[str]:
        gw = {"f": first, "l": later, "x": foreign}[key]["gateway_ip"]
        return _dig(hosts, names[key], gw, fqdn)

    wait_until(lambda: ask("f", f"all.z{tag}.test") == ["192.0.2.1"], timeout=30,
               what="record on the first network")
    assert ask("f", f"first.z{tag}.test") == ["192.0.2.2"]
    # Without `networks` a record covers later networks too; with it, only those named.
    wait_until(lambda: ask("l", f"all.z{tag}.test") == ["192.0.2.1"], timeout=30,
               what="record on the later network")
    assert ask("l", f"first.z{tag}.test") == []
    # Another tenant's hosts (same cidr) resolve none of it.
    assert ask("x", f"all.z{tag}.test") == []
    assert ask("x", f"first.z{tag}.test") == []

    # Moving the record to the later network moves the answer.
    moved = api.patch(f"/v1/dns-records/{only_first.get_json()['id']}",
                      {"networks": [later["id"]]})
    assert moved.status_code == 200, moved.get_json()
    wait_until(lambda: ask("l", f"first.z{tag}.test") == ["192.0.2.2"], timeout=30,
               what="record moved to the later network")
    wait_until(lambda: ask("f", f"first.z{tag}.test") == [], timeout=30,
               what="record gone from the first network")


def test_disabled_port_and_port_security(dp_api: Any, hosts: Hosts) -> None:
    tag = _tag()
    net = dp_api.network(cidr="10.68.0.0/24")
    a = dp_api.port(net["id"])
    b = dp_api.port(net["id"], port_security=False)
    _wire(hosts, f"ea{tag}", a, net)
    _wire(hosts, f"eb{tag}", b, net)
    wait_until(lambda: ping(hosts, f"ea{tag}", ip4(b)), timeout=30, what="a -> b ping")

    # `enabled: false` takes the port off the network; true brings it back.
    resp = dp_api.patch(f"/v1/ports/{b['id']}", {"enabled": False})
    assert resp.status_code == 200, resp.get_json()
    wait_until(lambda: not ping(hosts, f"ea{tag}", ip4(b)), timeout=30, what="b disabled")
    assert dp_api.patch(f"/v1/ports/{b['id']}", {"enabled": True}).status_code == 200
    wait_until(lambda: ping(hosts, f"ea{tag}", ip4(b)), timeout=30, what="b enabled again")

    # Port security: a's source addresses are pinned to its API address, b's are not.
    hosts.run(f"ea{tag}", "ip", "addr", "add", "10.68.0.99/24", "dev", "eth0")
    hosts.run(f"eb{tag}", "ip", "addr", "add", "10.68.0.98/24", "dev", "eth0")
    assert hosts.run(f"ea{tag}", "ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", "-I",
                     "10.68.0.99", ip4(b)).returncode != 0
    assert hosts.run(f"eb{tag}", "ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", "-I",
                     "10.68.0.98", ip4(a)).returncode == 0


def test_readyz_reports_the_southbound(dp_app: Any) -> None:
    body = dp_app.test_client().get("/readyz").get_json()
    assert body["northbound"] == "connected"
    assert body["southbound"] == "reachable"

"""`ovngw <kind> create|list|show|update|delete` for every kind, against a real gateway, in
each output format: table, json and yaml all parse to the resource the gateway holds."""

from __future__ import annotations

import json

from client_support import Run, Tenant

from helpers.api import unique
from helpers.serving import Served


def test_networks(run: Run, acme: Tenant) -> None:
    made = run("networks", "create", "web", "--cidr", "10.0.0.0/24", "--mtu", "1400",
               "--label", "app=web", "--set", "dhcp.lease_time=600").fields()
    net = acme.client.networks.get(made["id"])
    assert (made["name"], made["cidr"], made["revision"]) == ("web", "10.0.0.0/24", "1")
    assert net["mtu"] == 1400 and net["labels"] == {"app": "web"}
    assert net["dhcp"]["lease_time"] == 600
    rows = run("networks", "list").table()
    assert [(r["NAME"], r["ID"], r["CIDR"], r["GATEWAY IP"]) for r in rows] == [
        ("web", net["id"], "10.0.0.0/24", "10.0.0.1")]
    assert run("net", "show", "web", "-o", "yaml").yaml() == net
    assert run("networks", "show", net["id"], "-o", "json").json() == net
    changed = run("networks", "update", "web", "--description", "front", "--label", "app-",
                  "--label", "tier=fe", "--if-match", "1", "-o", "json").json()
    assert changed["revision"] == 2 and changed["labels"] == {"tier": "fe"}
    assert changed == acme.client.networks.get(net["id"])
    acme.client.ports.create({"name": "p"}, network_id=net["id"])
    run("networks", "delete", "web", expect=6)  # it has a port
    assert run("networks", "delete", "web", "--cascade").out == "deleted network web\n"
    assert list(acme.client.networks.list()) == []


def test_ports(run: Run, acme: Tenant) -> None:
    net = acme.client.networks.create({"name": "web", "cidr": "10.0.0.0/24"})
    made = run("ports", "create", "web-1", "--network", "web", "--ip", "10.0.0.10",
               "--label", "app=web", "-o", "json").json()
    assert made["network_id"] == net["id"] and made["ips"] == ["10.0.0.10"]
    by_id = run("port", "create", "web-2", "--network", net["id"], "-o", "yaml").yaml()
    assert by_id["network_id"] == net["id"]
    rows = run("ports", "list", "--network", "web", "--label", "app=web").table()
    assert [(r["NAME"], r["ID"], r["IPS"], r["STATUS"]) for r in rows] == [
        ("web-1", made["id"], "10.0.0.10", "down")]
    assert run("ports", "show", "web-2").fields()["id"] == by_id["id"]
    changed = run("ports", "update", "web-1", "--hostname", "www", "-o", "yaml").yaml()
    assert changed["hostname"] == "www" and changed["revision"] == 2
    assert run("ports", "delete", made["id"], "-o", "id").out.strip() == made["id"]
    assert [p["name"] for p in acme.client.ports.list()] == ["web-2"]


def test_dns_records(run: Run, acme: Tenant) -> None:
    net = acme.client.networks.create({"name": "web", "cidr": "10.0.0.0/24"})
    made = run("dns-records", "create", "www", "--fqdn", "www.example.com", "--ip", "10.0.0.9",
               "--ip", "fd00::9", "--network", "web", "-o", "yaml").yaml()
    assert made["ips"] == ["10.0.0.9", "fd00::9"] and made["networks"] == [net["id"]]
    rows = run("dns", "list", "--fqdn", "www.example.com").table()
    assert [(r["NAME"], r["FQDN"], r["AUTO"]) for r in rows] == [
        ("www", "www.example.com", "false")]
    assert run("dns", "show", "www", "-o", "json").json() == made
    changed = run("dns", "update", "www", "--ip", "10.0.0.8", "-o", "json").json()
    assert changed["ips"] == ["10.0.0.8"]
    run("dns", "delete", "www")
    run("dns", "show", "www", expect=5)


def test_policies(run: Run, acme: Tenant) -> None:
    acme.client.networks.create({"name": "db", "cidr": "10.1.0.0/24"})
    body = "ingress:\n  - action: allow\n    protocol: tcp\n    ports: [5432]\n"
    made = run("policies", "create", "db-in", "--selector", "app=db", "--network", "db",
               "-f", "-", "-o", "json", stdin=body).json()
    assert made["ingress"] == [{"action": "allow", "protocol": "tcp", "ports": [5432]}]
    assert made["selector"] == {"app": "db"} and made["priority"] == 500
    row, = run("policies", "list").table()
    assert (row["NAME"], row["PRIORITY"], row["INGRESS"], row["EGRESS"]) == (
        "db-in", "500", "1", "-")
    rules = run("policy", "rules", "db-in").table()
    assert {r["RULE"] for r in rules} >= {"ingress/0", "ingress/default"}
    assert run("policies", "show", "db-in", "-o", "yaml").yaml()["id"] == made["id"]
    changed = run("policies", "update", "db-in", "--priority", "100", "--set", "egress=[]",
                  "-o", "json").json()
    assert changed["priority"] == 100 and changed["egress"] == []
    run("policies", "delete", "db-in", "--if-match", "2")
    assert list(acme.client.policies.list()) == []


def test_routing_kinds(run: Run, acme: Tenant, admin: Tenant, gateway: Served) -> None:
    """External networks (admin writes, tenants read), gateways and floating IPs."""
    as_admin = {"OVNGW_URL": gateway.base, "OVNGW_TOKEN": admin.token}
    ext_name = unique("ext")
    ext = run("external-networks", "create", ext_name, "--cidr", "172.16.0.0/24",
              "--physical-network", "physnet1", "--pool", "172.16.0.10-172.16.0.20",
              "-o", "json", env=as_admin).json()
    assert ext["allocation_pools"] == [{"start": "172.16.0.10", "end": "172.16.0.20"}]
    run("extnet", "create", unique("ext"), "--cidr", "172.17.0.0/24",
        "--physical-network", "physnet1", expect=4)  # tenants only read them
    rows = run("external-networks", "list", "--name", ext_name).table()
    assert [(r["ID"], r["PHYSICAL NETWORK"], r["VLAN"]) for r in rows] == [
        (ext["id"], "physnet1", "-")]
    assert run("extnet", "show", ext_name, "-o", "json").json() == ext
    run("extnet", "update", ext_name, "--description", "uplink", env=as_admin)

    net = acme.client.networks.create({"name": "web", "cidr": "10.0.0.0/24"})
    port = acme.client.ports.create({"name": "vm1"}, network_id=net["id"])
    gw = run("gateways", "create", "edge", "--network", "web", "--external", ext_name,
             "-o", "yaml").yaml()
    assert gw["networks"] == [{"network_id": net["id"], "ip": "10.0.0.1"}]
    assert gw["external"]["network_id"] == ext["id"] and gw["external"]["ip"] == "172.16.0.10"
    row, = run("gw", "list").table()
    assert (row["NAME"], row["NETWORKS"], row["EXTERNAL IP"]) == ("edge", net["id"],
                                                                  "172.16.0.10")
    changed = run("gateways", "update", "edge", "--route", "192.168.0.0/16=10.0.0.254",
                  "-o", "json").json()
    assert changed["routes"] == [{"prefix": "192.168.0.0/16", "nexthop": "10.0.0.254"}]

    fip = run("floating-ips", "create", "vm1-public", "--external-network", ext_name,
              "--port", "vm1", "-o", "json").json()
    assert fip["port_id"] == port["id"] and fip["gateway_id"] == gw["id"]
    rows = run("fip", "list", "--port", "vm1").table()
    assert [(r["NAME"], r["IP"], r["GATEWAY"]) for r in rows] == [
        ("vm1-public", fip["ip"], gw["id"])]
    assert run("fip", "show", "vm1-public", "-o", "yaml").yaml() == fip
    loose = run("fip", "update", "vm1-public", "--set", "port_id=null", "-o", "json").json()
    assert loose["port_id"] is None and loose["gateway_id"] is None
    run("fip", "delete", "vm1-public")
    run("gateways", "delete", "edge")
    run("extnet", "delete", ext_name, env=as_admin)
    run("extnet", "show", ext["id"], expect=5)


def test_load_balancers_and_backends(run: Run, acme: Tenant) -> None:
    net = acme.client.networks.create({"name": "web", "cidr": "10.0.0.0/24"})
    made = run("load-balancers", "create", "svc", "--vip", "10.0.0.100", "--network", "web",
               "--listener", "80:8080", "--backend", "10.0.0.2", "--backend", "10.0.0.3:9090",
               "-o", "json").json()
    assert made["networks"] == [net["id"]]
    assert made["listeners"] == [{"port": 80, "backend_port": 8080}]
    assert made["backends"] == [{"ip": "10.0.0.2"}, {"ip": "10.0.0.3", "port": 9090}]
    row, = run("lb", "list").table()
    assert (row["NAME"], row["VIP"], row["LISTENERS"], row["BACKENDS"]) == (
        "svc", "10.0.0.100", "80->8080", "2")
    assert run("lb", "show", "svc", "-o", "yaml").yaml()["id"] == made["id"]
    added = run("backends", "create", "--lb", "svc", "--ip", "10.0.0.4", "--if-match", "1",
                "-o", "json").json()
    assert added == {"ip": "10.0.0.4"}
    rows = run("backends", "list", "--load-balancer", "svc").table()
    assert [(r["IP"], r["PORT"]) for r in rows] == [
        ("10.0.0.2", "-"), ("10.0.0.3", "9090"), ("10.0.0.4", "-")]
    assert run("backend", "show", "--lb", made["id"], "10.0.0.3", "-o", "yaml").yaml() == {
        "ip": "10.0.0.3", "port": 9090}
    run("backends", "delete", "--lb", "svc", "10.0.0.3", "--port", "9090")
    run("backends", "create", "--lb", "svc", "--ip", "10.0.0.4", expect=6)
    changed = run("lb", "update", "svc", "--listener", "443:8443", "-o", "json").json()
    assert changed["listeners"] == [{"port": 443, "backend_port": 8443}]
    assert [b["ip"] for b in changed["backends"]] == ["10.0.0.2", "10.0.0.4"]
    run("lb", "delete", "svc")
    assert list(acme.client.load_balancers.list()) == []


def test_quotas_and_usage(run: Run, acme: Tenant, admin: Tenant, gateway: Served) -> None:
    as_admin = {"OVNGW_URL": gateway.base, "OVNGW_TOKEN": admin.token}
    acme.client.networks.create({"name": "web", "cidr": "10.0.0.0/24"})
    quotas = run("quotas", "update", acme.name, "--networks", "1", "--set", "ports=7",
                 "-o", "json", env=as_admin).json()
    assert (quotas["networks"], quotas["ports"]) == (1, 7)
    assert run("quotas", "show", acme.name, env=as_admin).fields()["ports"] == "7"
    assert run("usage", "show", acme.name, "-o", "yaml", env=as_admin).yaml()["networks"] == 1
    failed = run("networks", "create", "more", "--cidr", "10.1.0.0/24", expect=6)
    assert "quota exceeded" in failed.err
    run("quotas", "show", acme.name, expect=4)  # admin only
    assert json.loads(run("quotas", "update", acme.name, "--set", "networks=null",
                          "-o", "json", env=as_admin).out)["networks"] == 100

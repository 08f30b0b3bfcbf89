"""Ports: address allocation, port security, DHCP links and the Logical_Switch_Port rows."""

from __future__ import annotations

from typing import Any

import pytest

from helpers.api import unique
from helpers.nb import as_list, dhcp_row, dhcp_rows, lsp, switch, v4_dhcp_of_network
from helpers.problems import errors_of, names_field
from helpers.waiting import wait_until


def _ovn_port(nbctl: Any, port_id: str) -> dict[str, Any]:
    row = lsp(nbctl, port_id)
    assert row is not None, f"no Logical_Switch_Port {port_id}"
    return row


def test_create_port_defaults_and_ovn_row(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.40.0.0/24")
    name = unique("port")
    resp = api.post(f"/v1/networks/{net['id']}/ports", {"name": name})
    assert resp.status_code == 201, resp.get_json()
    port = resp.get_json()
    assert resp.headers["Location"].endswith(f"/v1/ports/{port['id']}")
    assert resp.headers["ETag"] == '"1"'
    assert port["name"] == name
    assert port["network_id"] == net["id"]
    assert port["tenant_id"] == api.tenant
    assert port["ips"] == ["10.40.0.2"]
    assert port["mac"].startswith("0a:58:")
    assert int(port["mac"][:2], 16) & 1 == 0  # unicast
    assert port["port_security"] is True
    assert port["enabled"] is True
    assert port["status"] == "down"  # no chassis binds it in this sandbox
    assert port["revision"] == 1

    row = _ovn_port(nbctl, port["id"])
    address = f"{port['mac']} 10.40.0.2"
    assert as_list(row["addresses"]) == [address]
    assert as_list(row["port_security"]) == [address]
    assert as_list(row["enabled"]) in ([True], [])
    assert as_list(row["dhcpv4_options"]) == [v4_dhcp_of_network(nbctl, net["id"])["_uuid"]]
    ls = switch(nbctl, net["id"])
    assert ls is not None and row["_uuid"] in as_list(ls["ports"])

    got = api.get(f"/v1/ports/{port['id']}")
    assert got.status_code == 200
    assert got.headers["ETag"] == '"1"'
    assert got.get_json() == port


def test_sequential_allocation_skips_reserved(api: Any) -> None:
    net = api.network(cidr="10.41.0.0/24", gateway_ip="10.41.0.3")
    ips = [api.port(net["id"])["ips"] for _ in range(4)]
    # .0 is the network, .3 the gateway
    assert ips == [["10.41.0.1"], ["10.41.0.2"], ["10.41.0.4"], ["10.41.0.5"]]


def test_freed_address_is_reused_first(api: Any) -> None:
    net = api.network(cidr="10.42.0.0/24")
    first = api.port(net["id"])
    api.port(net["id"])
    assert api.delete(f"/v1/ports/{first['id']}").status_code == 204
    assert api.port(net["id"])["ips"] == first["ips"]


def test_network_full_is_409(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.43.0.0/29")  # hosts .1-.6, .1 is the gateway
    ips = [api.port(net["id"])["ips"][0] for _ in range(5)]
    assert ips == [f"10.43.0.{i}" for i in range(2, 7)]
    resp = api.post(f"/v1/networks/{net['id']}/ports", {"name": unique("full")})
    assert resp.status_code == 409
    assert "ips" in errors_of(resp)
    ls = switch(nbctl, net["id"])
    assert ls is not None and len(as_list(ls["ports"])) == 5


def test_requested_ip_and_mac(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.44.0.0/24")
    port = api.port(net["id"], ips=["10.44.0.77"], mac="0A-58-0A-2C-00-4D")
    assert port["ips"] == ["10.44.0.77"]
    assert port["mac"] == "0a:58:0a:2c:00:4d"
    assert as_list(_ovn_port(nbctl, port["id"])["addresses"]) == ["0a:58:0a:2c:00:4d 10.44.0.77"]
    # the next allocated port does not take .77 but the first free one
    assert api.port(net["id"])["ips"] == ["10.44.0.2"]


@pytest.mark.parametrize(("ip", "why"), [
    ("10.45.1.5", "outside the cidr"),
    ("192.168.0.1", "outside the cidr"),
    ("fd00::5", "no ipv6 cidr"),
    ("10.45.0.1", "the gateway"),
    ("10.45.0.0", "the network address"),
    ("10.45.0.255", "the broadcast address"),
])
def test_requested_ip_unusable_is_409(api: Any, ip: str, why: str) -> None:
    net = api.network(cidr="10.45.0.0/24")
    resp = api.post(f"/v1/networks/{net['id']}/ports", {"name": unique("p"), "ips": [ip]})
    assert resp.status_code == 409, (why, resp.get_json())
    assert any(k.startswith("ips") for k in errors_of(resp)), why
    assert api.get(f"/v1/networks/{net['id']}/ports").get_json()["items"] == []


def test_requested_ip_in_use_is_409(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.46.0.0/24")
    taken = api.port(net["id"])
    resp = api.post(f"/v1/networks/{net['id']}/ports",
                    {"name": unique("p"), "ips": taken["ips"]})
    assert resp.status_code == 409
    assert any(k.startswith("ips") for k in errors_of(resp))
    ls = switch(nbctl, net["id"])
    assert ls is not None and len(as_list(ls["ports"])) == 1


def test_same_ip_twice_in_request_is_rejected(api: Any) -> None:
    net = api.network(cidr="10.47.0.0/24")
    resp = api.post(f"/v1/networks/{net['id']}/ports",
                    {"name": unique("p"), "ips": ["10.47.0.9", "10.47.0.9"]})
    assert resp.status_code in (400, 409)
    assert any(k.startswith("ips") for k in errors_of(resp))


def test_requested_mac_in_use_is_409_but_fine_in_other_network(api: Any) -> None:
    net = api.network(cidr="10.48.0.0/24")
    taken = api.port(net["id"])
    resp = api.post(f"/v1/networks/{net['id']}/ports",
                    {"name": unique("p"), "mac": taken["mac"].upper()})
    assert resp.status_code == 409
    assert "mac" in errors_of(resp)
    other = api.network(cidr="10.49.0.0/24")
    assert api.port(other["id"], mac=taken["mac"])["mac"] == taken["mac"]


@pytest.mark.parametrize(("body", "field"), [
    ({"mac": "zz:zz:zz:zz:zz:zz"}, "mac"),
    ({"mac": "0a:58:00:00:00"}, "mac"),
    ({"mac": "01:00:5e:00:00:01"}, "mac"),  # multicast
    ({"mac": "00:00:00:00:00:00"}, "mac"),
    ({"ips": ["10.50.0.300"]}, "ips"),
    ({"ips": ["not-an-ip"]}, "ips"),
    ({"ips": []}, "ips"),
    ({"ips": "10.50.0.5"}, "ips"),
    ({"hostname": "not a hostname"}, "hostname"),
    ({"port_security": "maybe"}, "port_security"),
    ({"dhcp": {"lease_time": 1}}, "dhcp.lease_time"),
    ({"dhcp": {"enabled": False}}, "dhcp.enabled"),  # a network-level setting only
    ({"network_id": "8d1c7e0c-3a5e-4d7e-9a51-0c8d2b9f2a11"}, "network_id"),
    ({"status": "up"}, "status"),
    ({"id": "8d1c7e0c-3a5e-4d7e-9a51-0c8d2b9f2a11"}, "id"),
    ({"revision": 3}, "revision"),
    ({"tenant_id": "someone"}, "tenant_id"),
    ({"colour": "red"}, "colour"),
    ({"labels": {"app": "bad value!"}}, "labels"),
    ({"name": "Bad_Name"}, "name"),
])
def test_port_validation_names_the_field(api: Any, body: dict[str, Any], field: str) -> None:
    net = api.network(cidr="10.50.0.0/24")
    resp = api.post(f"/v1/networks/{net['id']}/ports", {"name": unique("p"), **body})
    assert resp.status_code == 400, resp.get_json()
    errors = errors_of(resp)
    assert names_field(errors, field), errors
    assert api.get(f"/v1/networks/{net['id']}/ports").get_json()["items"] == []


def test_port_security_false_and_enabled_false(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.51.0.0/24")
    port = api.port(net["id"], port_security=False, enabled=False)
    assert port["port_security"] is False and port["enabled"] is False
    row = _ovn_port(nbctl, port["id"])
    assert as_list(row["port_security"]) == []
    assert as_list(row["enabled"]) == [False]
    assert as_list(row["addresses"]) == [f"{port['mac']} {port['ips'][0]}"]
    # and back through PATCH
    resp = api.patch(f"/v1/ports/{port['id']}", {"port_security": True, "enabled": True})
    assert resp.status_code == 200, resp.get_json()
    row = _ovn_port(nbctl, port["id"])
    assert as_list(row["port_security"]) == [f"{port['mac']} {port['ips'][0]}"]
    assert as_list(row["enabled"]) in ([True], [])
    resp = api.patch(f"/v1/ports/{port['id']}", {"port_security": False})
    assert resp.status_code == 200
    assert as_list(_ovn_port(nbctl, port["id"])["port_security"]) == []


def test_port_dhcp_overrides_get_own_row(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.52.0.0/24", dhcp={"dns_servers": ["10.52.0.53"],
                                                 "ntp_servers": ["10.52.0.123"]})
    net_row = v4_dhcp_of_network(nbctl, net["id"])
    plain = api.port(net["id"])
    special = api.port(net["id"], dhcp={"lease_time": 300, "dns_servers": ["9.9.9.9"]})
    assert special["dhcp"] == {"lease_time": 300, "dns_servers": ["9.9.9.9"]}

    assert as_list(_ovn_port(nbctl, plain["id"])["dhcpv4_options"]) == [net_row["_uuid"]]
    own = as_list(_ovn_port(nbctl, special["id"])["dhcpv4_options"])
    assert len(own) == 1 and own[0] != net_row["_uuid"]
    assert [r["_uuid"] for r in dhcp_rows(nbctl, special["id"])] == own
    opts = dhcp_row(nbctl, own[0])["options"]
    assert opts["lease_time"] == "300"
    assert opts["dns_server"] == "{9.9.9.9}"
    # the network's other options stay
    assert opts["ntp_server"] == "{10.52.0.123}"
    assert opts["router"] == "10.52.0.1"
    assert opts["server_id"] == "10.52.0.1"
    assert opts["server_mac"] == net_row["options"]["server_mac"]
    assert dhcp_row(nbctl, own[0])["cidr"] == "10.52.0.0/24"
    # the network's own row is untouched
    assert v4_dhcp_of_network(nbctl, net["id"]) == net_row


def test_port_dhcp_override_patch_merges(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.53.0.0/24")
    port = api.port(net["id"], dhcp={"lease_time": 300})
    resp = api.patch(f"/v1/ports/{port['id']}", {"dhcp": {"mtu": 1280}})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["dhcp"] == {"lease_time": 300, "mtu": 1280}
    own = as_list(_ovn_port(nbctl, port["id"])["dhcpv4_options"])
    opts = dhcp_row(nbctl, own[0])["options"]
    assert opts["lease_time"] == "300" and opts["mtu"] == "1280"
    assert len(dhcp_rows(nbctl, port["id"])) == 1


@pytest.mark.parametrize("removal", [{"dhcp": None}, {"dhcp": {"lease_time": None}}])
def test_removing_port_dhcp_overrides_relinks_network_row(api: Any, nbctl: Any,
                                                          removal: dict[str, Any]) -> None:
    net = api.network(cidr="10.54.0.0/24")
    net_row = v4_dhcp_of_network(nbctl, net["id"])
    port = api.port(net["id"], dhcp={"lease_time": 300})
    assert as_list(_ovn_port(nbctl, port["id"])["dhcpv4_options"]) != [net_row["_uuid"]]
    resp = api.patch(f"/v1/ports/{port['id']}", removal)
    assert resp.status_code == 200, resp.get_json()
    assert not resp.get_json().get("dhcp")
    assert as_list(_ovn_port(nbctl, port["id"])["dhcpv4_options"]) == [net_row["_uuid"]]
    assert dhcp_rows(nbctl, port["id"]) == []


def test_network_dhcp_change_reaches_port_override_rows(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.55.0.0/24", dhcp={"dns_servers": ["10.55.0.53"]})
    port = api.port(net["id"], dhcp={"lease_time": 300})
    resp = api.patch(f"/v1/networks/{net['id']}", {"dhcp": {"dns_servers": ["10.55.0.54"]}})
    assert resp.status_code == 200, resp.get_json()
    own = as_list(_ovn_port(nbctl, port["id"])["dhcpv4_options"])
    opts = dhcp_row(nbctl, own[0])["options"]
    assert opts["dns_server"] == "{10.55.0.54}"
    assert opts["lease_time"] == "300"


def test_patch_ips_and_mac_readdress_ovn_row(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.56.0.0/24")
    port = api.port(net["id"])
    other = api.port(net["id"])
    resp = api.patch(f"/v1/ports/{port['id']}", {"ips": ["10.56.0.200"]})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["ips"] == ["10.56.0.200"]
    assert resp.get_json()["revision"] == 2
    address = f"{port['mac']} 10.56.0.200"
    row = _ovn_port(nbctl, port["id"])
    assert as_list(row["addresses"]) == [address]
    assert as_list(row["port_security"]) == [address]

    resp = api.patch(f"/v1/ports/{port['id']}", {"mac": "0a:58:00:00:00:99"})
    assert resp.status_code == 200, resp.get_json()
    assert as_list(_ovn_port(nbctl, port["id"])["addresses"]) == ["0a:58:00:00:00:99 10.56.0.200"]

    # conflicts leave the row as it was
    before = _ovn_port(nbctl, port["id"])
    resp = api.patch(f"/v1/ports/{port['id']}", {"ips": other["ips"]})
    assert resp.status_code == 409
    resp = api.patch(f"/v1/ports/{port['id']}", {"mac": other["mac"]})
    assert resp.status_code == 409
    assert "mac" in errors_of(resp)
    resp = api.patch(f"/v1/ports/{port['id']}", {"ips": ["10.57.0.1"]})
    assert resp.status_code == 409
    assert _ovn_port(nbctl, port["id"]) == before
    assert api.get(f"/v1/ports/{port['id']}").get_json()["revision"] == 3
    # the freed address is allocatable again
    assert api.port(net["id"])["ips"] == port["ips"]


def test_patch_port_read_only_fields_are_400(api: Any) -> None:
    net = api.network(cidr="10.58.0.0/24")
    other_net = api.network(cidr="10.59.0.0/24")
    port = api.port(net["id"])
    for patch, field in (({"network_id": other_net["id"]}, "network_id"),
                         ({"status": "up"}, "status"), ({"id": port["id"]}, "id"),
                         ({"tenant_id": "x"}, "tenant_id"), ({"bogus": 1}, "bogus")):
        resp = api.patch(f"/v1/ports/{port['id']}", patch)
        assert resp.status_code == 400, (patch, resp.get_json())
        assert field in errors_of(resp), (patch, resp.get_json())
    assert api.get(f"/v1/ports/{port['id']}").get_json() == port


def test_ipv6_network_gives_port_v6_address_and_dhcpv6(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.60.0.0/24", ipv6_cidr="fd00:60::/64")
    port = api.port(net["id"])
    assert len(port["ips"]) == 2
    assert port["ips"][0] == "10.60.0.2"
    assert port["ips"][1].startswith("fd00:60::")
    row = _ovn_port(nbctl, port["id"])
    assert as_list(row["addresses"]) == [" ".join([port["mac"], *port["ips"]])]
    v6 = [r["_uuid"] for r in dhcp_rows(nbctl, net["id"]) if ":" in r["cidr"]]
    assert as_list(row["dhcpv6_options"]) == v6
    resp = api.post(f"/v1/networks/{net['id']}/ports",
                    {"name": unique("p"), "ips": [port["ips"][1]]})
    assert resp.status_code == 409


def test_port_lists(api: Any, other_api: Any) -> None:
    net_a = api.network(cidr="10.61.0.0/24")
    net_b = api.network(cidr="10.62.0.0/24")
    in_a = {api.port(net_a["id"])["id"] for _ in range(3)}
    in_b = {api.port(net_b["id"])["id"]}
    other_net = other_api.network(cidr="10.61.0.0/24")
    other_api.port(other_net["id"])

    def ids(path: str) -> set[str]:
        resp = api.get(path)
        assert resp.status_code == 200, resp.get_json()
        items = resp.get_json()["items"]
        assert len(items) == len({i["id"] for i in items})
        return {i["id"] for i in items}

    assert ids(f"/v1/networks/{net_a['id']}/ports") == in_a
    assert ids(f"/v1/ports?network_id={net_a['id']}") == in_a
    assert ids(f"/v1/ports?network_id={net_b['id']}") == in_b
    assert ids("/v1/ports") == in_a | in_b
    # someone else's network: 404 on the nested list, nothing on the filter
    assert api.get(f"/v1/networks/{other_net['id']}/ports").status_code == 404
    assert ids(f"/v1/ports?network_id={other_net['id']}") == set()
    assert api.get("/v1/ports?network_id=garbage").status_code == 400


def test_port_delete(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.63.0.0/24")
    port = api.port(net["id"], dhcp={"lease_time": 300})
    row = _ovn_port(nbctl, port["id"])
    assert api.delete(f"/v1/ports/{port['id']}").status_code == 204
    assert lsp(nbctl, port["id"]) is None
    assert dhcp_rows(nbctl, port["id"]) == []
    ls = switch(nbctl, net["id"])
    assert ls is not None and row["_uuid"] not in as_list(ls["ports"])
    assert api.get(f"/v1/ports/{port['id']}").status_code == 404
    assert api.delete(f"/v1/ports/{port['id']}").status_code == 404
    # the network can go now without cascade
    assert api.delete(f"/v1/networks/{net['id']}").status_code == 204


def test_ports_of_deleted_network_are_gone(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.64.0.0/24")
    ports = [api.port(net["id"]) for _ in range(2)]
    assert api.delete(f"/v1/networks/{net['id']}?cascade=true").status_code == 204
    for port in ports:
        assert api.get(f"/v1/ports/{port['id']}").status_code == 404
        assert api.patch(f"/v1/ports/{port['id']}", {"enabled": False}).status_code == 404
        assert lsp(nbctl, port["id"]) is None
    assert api.get("/v1/ports").get_json()["items"] == []
    assert api.post(f"/v1/networks/{net['id']}/ports",
                    {"name": unique("p")}).status_code == 404


def test_port_names_unique_per_tenant(api: Any, other_api: Any) -> None:
    net_a = api.network(cidr="10.65.0.0/24")
    net_b = api.network(cidr="10.66.0.0/24")
    name = unique("p")
    api.port(net_a["id"], name)
    resp = api.post(f"/v1/networks/{net_b['id']}/ports", {"name": name})
    assert resp.status_code == 409
    assert "name" in errors_of(resp)
    theirs = other_api.network(cidr="10.65.0.0/24")
    assert other_api.port(theirs["id"], name)["name"] == name


def test_other_tenant_cannot_touch_port(api: Any, other_api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.67.0.0/24")
    port = api.port(net["id"])
    before = _ovn_port(nbctl, port["id"])
    path = f"/v1/ports/{port['id']}"
    assert other_api.get(path).status_code == 404
    assert other_api.patch(path, {"enabled": False}).status_code == 404
    assert other_api.delete(path).status_code == 404
    resp = other_api.post(f"/v1/networks/{net['id']}/ports", {"name": unique("p")})
    assert resp.status_code == 404
    assert other_api.get("/v1/ports").get_json()["items"] == []
    assert _ovn_port(nbctl, port["id"]) == before


def test_unknown_network_for_port_is_404(api: Any) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    resp = api.post(f"/v1/networks/{missing}/ports", {"name": unique("p")})
    assert resp.status_code == 404
    assert api.get(f"/v1/networks/{missing}/ports").status_code == 404
    assert api.get(f"/v1/ports/{missing}").status_code == 404


def test_status_follows_ovn_binding(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.68.0.0/24")
    port = api.port(net["id"])
    assert port["status"] == "down"
    def status_becomes(wanted: str) -> None:
        # The gateway's replica follows the database asynchronously: poll, bounded.
        wait_until(lambda: api.get(f"/v1/ports/{port['id']}").get_json()["status"] == wanted,
                   20, interval=0.02, what=f"status {wanted}")

    nbctl("set", "Logical_Switch_Port", port["id"], "up=true")
    status_becomes("up")
    listed = api.get(f"/v1/networks/{net['id']}/ports").get_json()["items"]
    assert [p["status"] for p in listed] == ["up"]
    nbctl("set", "Logical_Switch_Port", port["id"], "up=false")
    status_becomes("down")


def test_port_overrides_on_network_without_dhcp(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.69.0.0/24", dhcp={"enabled": False})
    port = api.port(net["id"], dhcp={"lease_time": 300})
    assert dhcp_rows(nbctl, port["id"]) == []
    assert as_list(_ovn_port(nbctl, port["id"])["dhcpv4_options"]) == []


def test_network_mtu_reaches_port_override_rows(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.73.0.0/24")
    port = api.port(net["id"], dhcp={"lease_time": 300})
    resp = api.patch(f"/v1/networks/{net['id']}", {"mtu": 1450})
    assert resp.status_code == 200, resp.get_json()
    assert v4_dhcp_of_network(nbctl, net["id"])["options"]["mtu"] == "1450"
    own = as_list(_ovn_port(nbctl, port["id"])["dhcpv4_options"])
    opts = dhcp_row(nbctl, own[0])["options"]
    assert opts["mtu"] == "1450" and opts["lease_time"] == "300"


def test_patch_mac_keeps_ips_and_v6_on_v4_network_is_409(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.74.0.0/24")
    port = api.port(net["id"])
    resp = api.patch(f"/v1/ports/{port['id']}", {"mac": "0a:58:00:00:74:01"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["ips"] == port["ips"]
    assert as_list(_ovn_port(nbctl, port["id"])["addresses"]) == \
        [f"0a:58:00:00:74:01 {port['ips'][0]}"]
    resp = api.patch(f"/v1/ports/{port['id']}", {"ips": ["fd00:74::5"]})
    assert resp.status_code == 409
    resp = api.patch(f"/v1/ports/{port['id']}", {"ips": [port["ips"][0], "10.74.0.50"]})
    assert resp.status_code == 200, resp.get_json()
    assert as_list(_ovn_port(nbctl, port["id"])["addresses"]) == \
        [f"0a:58:00:00:74:01 {port['ips'][0]} 10.74.0.50"]
    # .50 is taken now
    resp = api.post(f"/v1/networks/{net['id']}/ports", {"name": unique("p"), "ips": ["10.74.0.50"]})
    assert resp.status_code == 409


def test_admin_lists_ports_of_a_tenant(api: Any, other_api: Any, admin_api: Any) -> None:
    mine = api.port(api.network(cidr="10.75.0.0/24")["id"])
    theirs = other_api.port(other_api.network(cidr="10.75.0.0/24")["id"])
    resp = admin_api.get(f"/v1/ports?tenant={api.tenant}")
    assert resp.status_code == 200
    assert [p["id"] for p in resp.get_json()["items"]] == [mine["id"]]
    resp = admin_api.get(f"/v1/ports?tenant={other_api.tenant}")
    assert [p["id"] for p in resp.get_json()["items"]] == [theirs["id"]]
    resp = admin_api.get(f"/v1/ports?network_id={theirs['network_id']}")
    assert [p["id"] for p in resp.get_json()["items"]] == [theirs["id"]]


def test_name_filter_respects_the_network(api: Any) -> None:
    net_a = api.network(cidr="10.76.0.0/24")
    net_b = api.network(cidr="10.77.0.0/24")
    in_b = api.port(net_b["id"])
    resp = api.get(f"/v1/networks/{net_a['id']}/ports?name={in_b['name']}")
    assert resp.status_code == 200
    assert resp.get_json()["items"] == []
    resp = api.get(f"/v1/ports?network_id={net_a['id']}&name={in_b['name']}")
    assert resp.get_json()["items"] == []
    resp = api.get(f"/v1/ports?network_id={net_b['id']}&name={in_b['name']}")
    assert [p["id"] for p in resp.get_json()["items"]] == [in_b["id"]]


def test_enabling_network_dhcp_gives_override_port_its_row(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.78.0.0/24", dhcp={"enabled": False})
    plain = api.port(net["id"])
    special = api.port(net["id"], dhcp={"lease_time": 300})
    resp = api.patch(f"/v1/networks/{net['id']}", {"dhcp": {"enabled": True}})
    assert resp.status_code == 200, resp.get_json()
    net_row = v4_dhcp_of_network(nbctl, net["id"])
    assert as_list(_ovn_port(nbctl, plain["id"])["dhcpv4_options"]) == [net_row["_uuid"]]
    own = as_list(_ovn_port(nbctl, special["id"])["dhcpv4_options"])
    assert len(own) == 1 and own[0] != net_row["_uuid"]
    assert dhcp_row(nbctl, own[0])["options"]["lease_time"] == "300"


# -- addresses of ports another tool put on the switch ------------------------------------


def test_foreign_port_addresses_are_taken(api: Any, nbctl: Any) -> None:
    """Another tool's port on the network's switch holds its MAC and IPs: allocation skips
    them and asking for them is 409, as for the gateway's own ports."""
    net = api.network(cidr="10.61.0.0/24", ipv6_cidr="fd00:61::/64")
    name = unique("foreign")
    nbctl("lsp-add", f"ovngw-{net['id']}", name)
    nbctl("lsp-set-addresses", name, "0A:00:00:61:00:02 10.61.0.2 fd00:61::2",
          "0a:00:00:61:00:03 10.61.0.3", "router", "unknown", "dynamic 10.61.0.6")
    try:
        port = api.port(net["id"])
        assert port["ips"][0] == "10.61.0.4", port
        for body, field in (({"ips": ["10.61.0.2"]}, "ips.0"), ({"ips": ["10.61.0.3"]}, "ips.0"),
                            ({"ips": ["10.61.0.6"]}, "ips.0"),
                            ({"ips": ["10.61.0.9", "fd00:61::2"]}, "ips.1"),
                            ({"mac": "0a:00:00:61:00:02"}, "mac"),
                            ({"mac": "0a:00:00:61:00:03"}, "mac")):
            resp = api.post(f"/v1/networks/{net['id']}/ports", {"name": unique("p"), **body})
            assert resp.status_code == 409, (body, resp.get_json())
            assert field in errors_of(resp), (body, resp.get_json())
            resp = api.patch(f"/v1/ports/{port['id']}", body)
            assert resp.status_code == 409, (body, resp.get_json())
        assert api.port(net["id"])["ips"][0] == "10.61.0.5"
        assert api.port(net["id"])["ips"][0] == "10.61.0.7"
    finally:
        nbctl("lsp-del", name)
    # gone: the addresses are free again
    assert api.port(net["id"], ips=["10.61.0.2"])["ips"] == ["10.61.0.2"]


def test_port_dhcp_overrides_are_checked_against_the_network(api: Any) -> None:
    net = api.network(cidr="10.62.0.0/24")
    for dhcp, field in (({"dns_servers": ["10.62.0.53", "fd00::53"]}, "dhcp.dns_servers.1"),
                        ({"dns_servers": ["255.255.255.255"]}, "dhcp.dns_servers.0"),
                        ({"dns_servers": ["10.62.0.255"]}, "dhcp.dns_servers.0"),
                        ({"ntp_servers": ["0.0.0.0"]}, "dhcp.ntp_servers.0"),
                        ({"routes": [{"destination": "192.168.0.0/16",
                                      "nexthop": "192.168.0.1"}]}, "dhcp.routes.0.nexthop"),
                        ({"routes": [{"destination": "192.168.0.0/16",
                                      "nexthop": "10.62.0.255"}]}, "dhcp.routes.0.nexthop")):
        resp = api.post(f"/v1/networks/{net['id']}/ports", {"name": unique("p"), "dhcp": dhcp})
        assert resp.status_code == 400, (dhcp, resp.get_json())
        assert field in errors_of(resp), (dhcp, resp.get_json())
        port = api.port(net["id"])
        resp = api.patch(f"/v1/ports/{port['id']}", {"dhcp": dhcp})
        assert resp.status_code == 400, (dhcp, resp.get_json())
        assert field in errors_of(resp), (dhcp, resp.get_json())
        assert api.get(f"/v1/ports/{port['id']}").get_json() == port
    dual = api.network(cidr="10.63.0.0/24", ipv6_cidr="fd00:63::/64")
    port = api.port(dual["id"], dhcp={"dns_servers": ["fd00:63::53"]})
    assert port["dhcp"] == {"dns_servers": ["fd00:63::53"]}


@pytest.mark.parametrize(("body", "field"), [
    ({"description": "nul \u0000"}, "description"),
    ({"description": "\ud800"}, "description"),
    ({"hostname": "a\u0000"}, "hostname"),
    ({"labels": {"app": "\ud800"}}, "labels"),
])
def test_nul_and_lone_surrogates_in_ports_are_400(api: Any, body: dict[str, Any],
                                                  field: str) -> None:
    net = api.network(cidr="10.64.0.0/24")
    resp = api.post(f"/v1/networks/{net['id']}/ports", {"name": unique("p"), **body})
    assert resp.status_code == 400, resp.get_json()
    assert names_field(errors_of(resp), field), resp.get_json()


# -- re-addressing is explicit ---------------------------------------------------------------


@pytest.mark.parametrize("field", ["ips", "mac"])
def test_patch_null_ips_or_mac_is_400_and_keeps_the_address(api: Any, nbctl: Any,
                                                            field: str) -> None:
    """A merge-patch null would re-allocate: a careless client must not renumber a running
    machine. New addresses are sent explicitly."""
    net = api.network(cidr="10.65.0.0/24", ipv6_cidr="fd00:65::/64")
    api.port(net["id"])
    port = api.port(net["id"], ips=["10.65.0.40"])
    before = _ovn_port(nbctl, port["id"])
    resp = api.patch(f"/v1/ports/{port['id']}", {field: None, "description": "x"})
    assert resp.status_code == 400, resp.get_json()
    message = " ".join(errors_of(resp)[field])
    assert "send the new" in message, message
    assert api.get(f"/v1/ports/{port['id']}").get_json() == port
    assert _ovn_port(nbctl, port["id"]) == before
    # explicit new values still re-address
    new = {"ips": ["10.65.0.41"], "mac": "0a:58:00:00:65:41"}[field]
    resp = api.patch(f"/v1/ports/{port['id']}", {field: new})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()[field] == new

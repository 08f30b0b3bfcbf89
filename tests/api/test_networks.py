"""Networks: the HTTP resource and the Logical_Switch / DHCP_Options rows behind it."""

from __future__ import annotations

from typing import Any

import pytest

from helpers.api import unique
from helpers.nb import as_list, dhcp_row, dhcp_rows, lsp, switch, v4_dhcp_of_network
from helpers.problems import errors_of, names_field

# -- create, read, list, delete --------------------------------------------------------------


def test_create_returns_resource_with_defaults(api: Any, nbctl: Any) -> None:
    name = unique("net")
    resp = api.post("/v1/networks", {"name": name, "cidr": "10.1.0.0/24"})
    assert resp.status_code == 201, resp.get_json()
    net = resp.get_json()
    assert resp.headers["Location"].endswith(f"/v1/networks/{net['id']}")
    assert resp.headers["ETag"] == f'"{net["revision"]}"'
    assert net["revision"] == 1
    assert net["name"] == name
    assert net["tenant_id"] == api.tenant
    assert net["cidr"] == "10.1.0.0/24"
    assert net["gateway_ip"] == "10.1.0.1"
    assert net["labels"] == {}
    assert net["dhcp"]["enabled"] is True
    assert net["dhcp"]["lease_time"] == 43200
    assert net["created_at"].endswith("Z") and net["updated_at"].endswith("Z")
    ls = switch(nbctl, net["id"])
    assert ls is not None
    assert ls["external_ids"]["ovn-nb-gateway:tenant"] == api.tenant


def test_get_returns_same_document_and_etag(api: Any) -> None:
    net = api.network(cidr="10.2.0.0/24", description="hello", labels={"env": "prod"})
    resp = api.get(f"/v1/networks/{net['id']}")
    assert resp.status_code == 200
    assert resp.headers["ETag"] == '"1"'
    assert resp.get_json() == net


def test_list_shows_own_networks_only(api: Any, other_api: Any) -> None:
    mine = {api.network(cidr="10.3.0.0/24")["id"], api.network(cidr="10.3.1.0/24")["id"]}
    theirs = other_api.network(cidr="10.3.0.0/24")["id"]
    resp = api.get("/v1/networks")
    assert resp.status_code == 200
    body = resp.get_json()
    assert {n["id"] for n in body["items"]} == mine
    assert body["next_cursor"] is None
    assert theirs not in {n["id"] for n in body["items"]}
    assert other_api.get(f"/v1/networks/{next(iter(mine))}").status_code == 404


def test_delete_then_404(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.4.0.0/24")
    assert dhcp_rows(nbctl, net["id"])
    resp = api.delete(f"/v1/networks/{net['id']}")
    assert resp.status_code == 204
    assert resp.data == b""
    assert api.get(f"/v1/networks/{net['id']}").status_code == 404
    assert api.delete(f"/v1/networks/{net['id']}").status_code == 404
    assert api.patch(f"/v1/networks/{net['id']}", {"description": "x"}).status_code == 404
    assert switch(nbctl, net["id"]) is None
    assert dhcp_rows(nbctl, net["id"]) == []


# -- DHCP options in OVN ---------------------------------------------------------------------


def test_default_dhcp_options_row(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.5.0.0/24")
    row = v4_dhcp_of_network(nbctl, net["id"])
    assert row["cidr"] == "10.5.0.0/24"
    opts = row["options"]
    assert opts["router"] == "10.5.0.1"
    assert opts["server_id"] == "10.5.0.1"
    assert opts["lease_time"] == "43200"
    assert len(opts["server_mac"].split(":")) == 6
    for absent in ("dns_server", "domain_name", "ntp_server", "mtu", "classless_static_route"):
        assert absent not in opts
    # no ipv6_cidr: no DHCPv6 row
    assert len(dhcp_rows(nbctl, net["id"])) == 1


def test_full_dhcp_options_row(api: Any, nbctl: Any) -> None:
    net = api.network(
        cidr="10.6.0.0/24", mtu=1400, gateway_ip="10.6.0.254",
        dhcp={"lease_time": 3600, "dns_servers": ["10.6.0.53", "8.8.8.8"],
              "domain_name": "corp.example.com", "ntp_servers": ["10.6.0.123"],
              "routes": [{"destination": "172.16.0.0/12", "nexthop": "10.6.0.10"}]})
    opts = v4_dhcp_of_network(nbctl, net["id"])["options"]
    assert opts["router"] == "10.6.0.254"
    assert opts["server_id"] == "10.6.0.254"
    assert opts["lease_time"] == "3600"
    assert opts["dns_server"] == "{10.6.0.53, 8.8.8.8}"
    assert opts["domain_name"] == '"corp.example.com"'
    assert opts["ntp_server"] == "{10.6.0.123}"
    assert opts["mtu"] == "1400"
    routes = opts["classless_static_route"].strip("{}").replace(" ", "").split(",")
    # pairs: destination,nexthop,...; the default route through the gateway is appended
    pairs = list(zip(routes[::2], routes[1::2], strict=True))
    assert ("172.16.0.0/12", "10.6.0.10") in pairs
    assert ("0.0.0.0/0", "10.6.0.254") in pairs


def test_dns_domain_becomes_dhcp_domain_name(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.7.0.0/24", dns_domain="lab.example.org")
    opts = v4_dhcp_of_network(nbctl, net["id"])["options"]
    assert opts["domain_name"] == '"lab.example.org"'


@pytest.mark.parametrize(("override", "option", "expected"), [
    ({"lease_time": 600}, "lease_time", "600"),
    ({"dns_servers": ["1.1.1.1"]}, "dns_server", "{1.1.1.1}"),
    ({"ntp_servers": ["10.8.0.9"]}, "ntp_server", "{10.8.0.9}"),
    ({"domain_name": "a.example"}, "domain_name", '"a.example"'),
    ({"mtu": 1300}, "mtu", "1300"),
])
def test_each_dhcp_override_keeps_other_defaults(api: Any, nbctl: Any, override: dict[str, Any],
                                                 option: str, expected: str) -> None:
    net = api.network(cidr="10.8.0.0/24", dhcp=override)
    opts = v4_dhcp_of_network(nbctl, net["id"])["options"]
    assert opts[option] == expected
    assert opts["router"] == "10.8.0.1"
    assert opts["server_id"] == "10.8.0.1"
    assert "server_mac" in opts
    if option != "lease_time":
        assert opts["lease_time"] == "43200"
    assert net["dhcp"]["enabled"] is True
    assert net["dhcp"]["lease_time"] == (600 if option == "lease_time" else 43200)


def test_ipv6_cidr_creates_dhcpv6_row(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.9.0.0/24", ipv6_cidr="fd00:9::/64")
    by_family = {("v6" if ":" in r["cidr"] else "v4"): r for r in dhcp_rows(nbctl, net["id"])}
    assert set(by_family) == {"v4", "v6"}
    v6 = by_family["v6"]
    assert v6["cidr"] == "fd00:9::/64"
    assert "server_id" in v6["options"]
    assert "dhcpv6_stateless" not in v6["options"]


def test_ipv6_stateless_mode(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.10.0.0/24", ipv6_cidr="fd00:10::/64",
                      dhcp={"ipv6": {"mode": "stateless"}})
    v6 = [r for r in dhcp_rows(nbctl, net["id"]) if ":" in r["cidr"]]
    assert len(v6) == 1
    assert v6[0]["options"].get("dhcpv6_stateless") == "true"
    port = api.port(net["id"])
    row = lsp(nbctl, port["id"])
    assert row is not None
    assert as_list(row["dhcpv6_options"]) == [v6[0]["_uuid"]]


def test_dual_stack_dns_and_domain_split_by_family(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.20.0.0/24", ipv6_cidr="fd00:20::/64",
                      dhcp={"dns_servers": ["10.20.0.53", "fd00:20::53"],
                            "domain_name": "dual.example"})
    by_family = {("v6" if ":" in r["cidr"] else "v4"): r for r in dhcp_rows(nbctl, net["id"])}
    assert by_family["v4"]["options"]["dns_server"] == "{10.20.0.53}"
    assert by_family["v4"]["options"]["domain_name"] == '"dual.example"'
    assert by_family["v6"]["options"]["dns_server"] == "{fd00:20::53}"
    assert by_family["v6"]["options"]["domain_search"] == '"dual.example"'


def test_dhcpv6_can_be_disabled_alone(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.21.0.0/24", ipv6_cidr="fd00:21::/64",
                      dhcp={"ipv6": {"enabled": False}})
    rows = dhcp_rows(nbctl, net["id"])
    assert [r["cidr"] for r in rows] == ["10.21.0.0/24"]
    port = api.port(net["id"])
    row = lsp(nbctl, port["id"])
    assert row is not None
    assert as_list(row["dhcpv4_options"]) == [rows[0]["_uuid"]]
    assert as_list(row["dhcpv6_options"]) == []
    resp = api.patch(f"/v1/networks/{net['id']}", {"dhcp": {"ipv6": {"enabled": True}}})
    assert resp.status_code == 200, resp.get_json()
    v6 = [r for r in dhcp_rows(nbctl, net["id"]) if ":" in r["cidr"]]
    assert len(v6) == 1
    row = lsp(nbctl, port["id"])
    assert row is not None and as_list(row["dhcpv6_options"]) == [v6[0]["_uuid"]]


def test_disabling_dhcp_removes_rows_and_unlinks_ports(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.11.0.0/24", ipv6_cidr="fd00:11::/64")
    port = api.port(net["id"])
    row = lsp(nbctl, port["id"])
    assert row is not None and as_list(row["dhcpv4_options"]) != []
    resp = api.patch(f"/v1/networks/{net['id']}", {"dhcp": {"enabled": False}})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["dhcp"]["enabled"] is False
    assert dhcp_rows(nbctl, net["id"]) == []
    row = lsp(nbctl, port["id"])
    assert row is not None
    assert as_list(row["dhcpv4_options"]) == []
    assert as_list(row["dhcpv6_options"]) == []
    # and back on: rows again, ports linked again
    resp = api.patch(f"/v1/networks/{net['id']}", {"dhcp": {"enabled": True}})
    assert resp.status_code == 200, resp.get_json()
    v4 = v4_dhcp_of_network(nbctl, net["id"])
    row = lsp(nbctl, port["id"])
    assert row is not None and as_list(row["dhcpv4_options"]) == [v4["_uuid"]]


def test_create_with_dhcp_disabled_has_no_rows(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.12.0.0/24", dhcp={"enabled": False})
    assert dhcp_rows(nbctl, net["id"]) == []
    port = api.port(net["id"])
    row = lsp(nbctl, port["id"])
    assert row is not None and as_list(row["dhcpv4_options"]) == []


# -- PATCH (merge patch) -------------------------------------------------------------------


def test_patch_nested_dhcp_merges(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.13.0.0/24",
                      dhcp={"dns_servers": ["10.13.0.53"], "lease_time": 7200})
    resp = api.patch(f"/v1/networks/{net['id']}", {"dhcp": {"lease_time": 900}})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["dhcp"]["lease_time"] == 900
    assert body["dhcp"]["dns_servers"] == ["10.13.0.53"]
    assert body["dhcp"]["enabled"] is True
    assert body["revision"] == 2
    opts = v4_dhcp_of_network(nbctl, net["id"])["options"]
    assert opts["lease_time"] == "900"
    assert opts["dns_server"] == "{10.13.0.53}"
    assert opts["router"] == "10.13.0.1"


def test_patch_null_removes_optional_fields(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.14.0.0/24", description="temp", dns_domain="x.example",
                      dhcp={"dns_servers": ["10.14.0.53"]})
    resp = api.patch(f"/v1/networks/{net['id']}",
                     {"description": None, "dns_domain": None, "dhcp": {"dns_servers": None}})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert "description" not in body or body["description"] is None
    assert "dns_domain" not in body or body["dns_domain"] is None
    assert not body["dhcp"].get("dns_servers")
    opts = v4_dhcp_of_network(nbctl, net["id"])["options"]
    assert "dns_server" not in opts
    assert "domain_name" not in opts
    got = api.get(f"/v1/networks/{net['id']}").get_json()
    assert got == body


def test_patch_labels_merge_and_removal(api: Any) -> None:
    net = api.network(cidr="10.15.0.0/24", labels={"a": "1", "b": "2"})
    resp = api.patch(f"/v1/networks/{net['id']}", {"labels": {"c": "3", "a": "10"}})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["labels"] == {"a": "10", "b": "2", "c": "3"}
    resp = api.patch(f"/v1/networks/{net['id']}", {"labels": {"b": None}})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["labels"] == {"a": "10", "c": "3"}
    resp = api.patch(f"/v1/networks/{net['id']}", {"labels": None})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["labels"] == {}


def test_patch_rename_and_gateway_ip(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.16.0.0/24")
    new_name = unique("renamed")
    resp = api.patch(f"/v1/networks/{net['id']}", {"name": new_name, "gateway_ip": "10.16.0.254"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["name"] == new_name
    opts = v4_dhcp_of_network(nbctl, net["id"])["options"]
    assert opts["router"] == "10.16.0.254"
    listed = api.get(f"/v1/networks?name={new_name}").get_json()["items"]
    assert [n["id"] for n in listed] == [net["id"]]
    assert api.get(f"/v1/networks?name={net['name']}").get_json()["items"] == []


def test_patch_gateway_ip_in_use_by_port_is_409(api: Any) -> None:
    net = api.network(cidr="10.17.0.0/24")
    port = api.port(net["id"])
    resp = api.patch(f"/v1/networks/{net['id']}", {"gateway_ip": port["ips"][0]})
    assert resp.status_code == 409
    assert "gateway_ip" in errors_of(resp)


# -- delete with ports ---------------------------------------------------------------------


def test_delete_with_ports_is_409_then_cascade(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.18.0.0/24", ipv6_cidr="fd00:18::/64")
    plain = api.port(net["id"])
    special = api.port(net["id"], dhcp={"lease_time": 120})
    assert len(dhcp_rows(nbctl, special["id"])) == 2
    resp = api.delete(f"/v1/networks/{net['id']}")
    assert resp.status_code == 409
    assert resp.mimetype == "application/problem+json"
    assert switch(nbctl, net["id"]) is not None
    assert lsp(nbctl, plain["id"]) is not None

    resp = api.delete(f"/v1/networks/{net['id']}?cascade=true")
    assert resp.status_code == 204
    assert switch(nbctl, net["id"]) is None
    assert lsp(nbctl, plain["id"]) is None
    assert lsp(nbctl, special["id"]) is None
    assert dhcp_rows(nbctl, net["id"]) == []
    assert dhcp_rows(nbctl, special["id"]) == []
    for port in (plain, special):
        assert api.get(f"/v1/ports/{port['id']}").status_code == 404
    assert api.get(f"/v1/ports?network_id={net['id']}").get_json()["items"] == []


def test_delete_empty_network_with_cascade_flag(api: Any) -> None:
    net = api.network(cidr="10.19.0.0/24")
    assert api.delete(f"/v1/networks/{net['id']}?cascade=true").status_code == 204
    assert api.get(f"/v1/networks/{net['id']}").status_code == 404


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "field"), [
    ({"cidr": "10.20.0.1/24"}, "cidr"),  # host bits set
    ({"cidr": "10.20.0.0"}, "cidr"),
    ({"cidr": "not-a-cidr"}, "cidr"),
    ({"cidr": "fd00::/64"}, "cidr"),
    ({"cidr": "10.20.0.0/24", "gateway_ip": "10.21.0.1"}, "gateway_ip"),
    ({"cidr": "10.20.0.0/24", "gateway_ip": "10.20.0.0"}, "gateway_ip"),
    ({"cidr": "10.20.0.0/24", "gateway_ip": "10.20.0.255"}, "gateway_ip"),
    ({"cidr": "10.20.0.0/24", "ipv6_cidr": "fd00::1/64"}, "ipv6_cidr"),
    ({"cidr": "10.20.0.0/24", "labels": {"bad key!": "x"}}, "labels"),
    ({"cidr": "10.20.0.0/24", "labels": {"-leading": "x"}}, "labels"),
    ({"cidr": "10.20.0.0/24", "labels": {"Bad_Prefix/app": "x"}}, "labels"),
    ({"cidr": "10.20.0.0/24", "labels": {"app": "has space"}}, "labels"),
    ({"cidr": "10.20.0.0/24", "labels": {"app": "x" * 64}}, "labels"),
    ({"cidr": "10.20.0.0/24", "labels": {"app": "-dash"}}, "labels"),
    ({"cidr": "10.20.0.0/24", "labels": {"app": 5}}, "labels"),
    ({"cidr": "10.20.0.0/24", "colour": "blue"}, "colour"),
    ({"cidr": "10.20.0.0/24", "dhcp": {"colour": "blue"}}, "dhcp.colour"),
    ({"cidr": "10.20.0.0/24", "dhcp": {"lease_time": 1}}, "dhcp.lease_time"),
    ({"cidr": "10.20.0.0/24", "dhcp": {"ipv6": {"mode": "magic"}}}, "dhcp.ipv6.mode"),
    ({"cidr": "10.20.0.0/24", "dhcp": {"routes": [
        {"destination": "172.16.0.0/12", "nexthop": "192.168.1.1"}]}}, "dhcp.routes.0.nexthop"),
    ({"cidr": "10.20.0.0/24", "id": "8d1c7e0c-3a5e-4d7e-9a51-0c8d2b9f2a11"}, "id"),
    ({"cidr": "10.20.0.0/24", "revision": 4}, "revision"),
    ({"cidr": "10.20.0.0/24", "created_at": "2024-01-01T00:00:00Z"}, "created_at"),
    ({"cidr": "10.20.0.0/24", "updated_at": "2024-01-01T00:00:00Z"}, "updated_at"),
    ({"cidr": "10.20.0.0/24", "tenant_id": "someone-else"}, "tenant_id"),
    ({}, "cidr"),
])
def test_create_validation_names_the_field(api: Any, body: dict[str, Any], field: str) -> None:
    resp = api.post("/v1/networks", {"name": unique("bad"), **body})
    assert resp.status_code == 400, resp.get_json()
    errors = errors_of(resp)
    assert names_field(errors, field), errors
    assert api.get("/v1/networks").get_json()["items"] == []


def test_own_tenant_id_is_still_read_only(api: Any) -> None:
    resp = api.post("/v1/networks", {"name": unique("n"), "cidr": "10.20.0.0/24",
                                     "tenant_id": api.tenant})
    assert resp.status_code == 400
    assert "tenant_id" in errors_of(resp)


@pytest.mark.parametrize("name", ["UPPER", "-lead", "trail-", "under_score", "a" * 64, "", "dot.s"])
def test_bad_name_is_400(api: Any, name: str) -> None:
    resp = api.post("/v1/networks", {"name": name, "cidr": "10.20.0.0/24"})
    assert resp.status_code == 400
    assert "name" in errors_of(resp)


def test_non_object_body_is_400(api: Any) -> None:
    resp = api.post("/v1/networks", ["not", "an", "object"])
    assert resp.status_code == 400
    resp = api.request("POST", "/v1/networks", data="{not json", content_type="application/json")
    assert resp.status_code == 400
    assert resp.mimetype == "application/problem+json"


@pytest.mark.parametrize(("patch", "field"), [
    ({"cidr": "10.30.0.0/24"}, "cidr"),
    ({"ipv6_cidr": "fd00:30::/64"}, "ipv6_cidr"),
    ({"id": "8d1c7e0c-3a5e-4d7e-9a51-0c8d2b9f2a11"}, "id"),
    ({"revision": 9}, "revision"),
    ({"created_at": "2024-01-01T00:00:00Z"}, "created_at"),
    ({"tenant_id": "someone-else"}, "tenant_id"),
    ({"colour": "blue"}, "colour"),
    ({"labels": {"bad key": "x"}}, "labels"),
    ({"gateway_ip": "10.99.0.1"}, "gateway_ip"),
    ({"name": "Not Valid"}, "name"),
    ({"dhcp": {"lease_time": 5}}, "dhcp.lease_time"),
])
def test_patch_validation_names_the_field(api: Any, nbctl: Any, patch: dict[str, Any],
                                          field: str) -> None:
    net = api.network(cidr="10.31.0.0/24")
    before = switch(nbctl, net["id"])
    resp = api.patch(f"/v1/networks/{net['id']}", patch)
    assert resp.status_code == 400, resp.get_json()
    errors = errors_of(resp)
    assert names_field(errors, field), errors
    assert switch(nbctl, net["id"]) == before
    assert api.get(f"/v1/networks/{net['id']}").get_json()["revision"] == 1


def test_patch_name_null_is_400(api: Any) -> None:
    net = api.network(cidr="10.32.0.0/24")
    resp = api.patch(f"/v1/networks/{net['id']}", {"name": None})
    assert resp.status_code == 400
    assert "name" in errors_of(resp)


def test_duplicate_name_same_tenant_409_other_tenant_ok(api: Any, other_api: Any,
                                                        nbctl: Any) -> None:
    name = unique("dup")
    first = api.network(name, cidr="10.33.0.0/24")
    resp = api.post("/v1/networks", {"name": name, "cidr": "10.34.0.0/24"})
    assert resp.status_code == 409
    assert "name" in errors_of(resp)
    assert len(api.get("/v1/networks").get_json()["items"]) == 1
    theirs = other_api.network(name, cidr="10.33.0.0/24")
    assert theirs["id"] != first["id"]
    # renaming onto an existing name is a conflict too
    second = api.network(cidr="10.35.0.0/24")
    resp = api.patch(f"/v1/networks/{second['id']}", {"name": name})
    assert resp.status_code == 409
    assert api.get(f"/v1/networks/{second['id']}").get_json()["name"] == second["name"]


def test_name_is_free_again_after_delete(api: Any) -> None:
    name = unique("reuse")
    net = api.network(name, cidr="10.36.0.0/24")
    assert api.delete(f"/v1/networks/{net['id']}").status_code == 204
    again = api.network(name, cidr="10.36.0.0/24")
    assert again["id"] != net["id"]


def test_unknown_network_id_is_404(api: Any) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    for method in ("get", "delete"):
        assert getattr(api, method)(f"/v1/networks/{missing}").status_code == 404
    assert api.patch(f"/v1/networks/{missing}", {"description": "x"}).status_code == 404
    assert api.get("/v1/networks/not-a-uuid").status_code == 404


def test_other_tenant_cannot_touch_network(api: Any, other_api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.37.0.0/24")
    before = switch(nbctl, net["id"])
    path = f"/v1/networks/{net['id']}"
    assert other_api.get(path).status_code == 404
    assert other_api.patch(path, {"description": "mine"}).status_code == 404
    assert other_api.delete(path).status_code == 404
    assert other_api.delete(path + "?cascade=true").status_code == 404
    assert other_api.get(path + "/ports").status_code == 404
    assert other_api.post(path + "/ports", {"name": unique("p")}).status_code == 404
    assert switch(nbctl, net["id"]) == before
    assert dhcp_row(nbctl, v4_dhcp_of_network(nbctl, net["id"])["_uuid"])


# -- rows another tool put on the gateway's switch ---------------------------------------


def _foreign_port(nbctl: Any, network_id: str, *addresses: str) -> str:
    """A port another tool adds to the network's switch: no ovn-nb-gateway stamp."""
    name = unique("foreign")
    nbctl("lsp-add", f"ovngw-{network_id}", name)
    if addresses:
        nbctl("lsp-set-addresses", name, *addresses)
    return name


@pytest.mark.parametrize("query", ["", "?cascade=true"])
def test_foreign_port_on_the_switch_blocks_delete_even_with_cascade(api: Any, nbctl: Any,
                                                                     query: str) -> None:
    """The gateway never deletes what it does not own, and a switch's deletion would take
    the other tool's port with it."""
    net = api.network(cidr="10.38.0.0/24")
    mine = api.port(net["id"])
    foreign = _foreign_port(nbctl, net["id"], "0a:00:00:38:00:05 10.38.0.5")
    resp = api.delete(f"/v1/networks/{net['id']}{query}")
    assert resp.status_code == 409, resp.get_json()
    detail = resp.get_json()["detail"]
    assert foreign in detail and "not made by ovn-nb-gateway" in detail, detail
    assert lsp(nbctl, foreign) is not None
    assert lsp(nbctl, mine["id"]) is not None
    assert switch(nbctl, net["id"]) is not None
    assert api.get(f"/v1/networks/{net['id']}").status_code == 200
    # Once its owner removed it, the network goes as before.
    nbctl("lsp-del", foreign)
    assert api.delete(f"/v1/networks/{net['id']}?cascade=true").status_code == 204
    assert switch(nbctl, net["id"]) is None


def test_foreign_port_alone_blocks_a_plain_delete(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.39.0.0/24")
    foreign = _foreign_port(nbctl, net["id"])  # no addresses at all
    resp = api.delete(f"/v1/networks/{net['id']}")
    assert resp.status_code == 409, resp.get_json()
    assert foreign in resp.get_json()["detail"]
    assert lsp(nbctl, foreign) is not None
    nbctl("lsp-del", foreign)
    assert api.delete(f"/v1/networks/{net['id']}").status_code == 204


def test_a_partial_stamp_does_not_make_a_port_ours(api: Any, nbctl: Any) -> None:
    """Only the complete ownership stamp (kind, id, tenant) counts."""
    net = api.network(cidr="10.39.1.0/24")
    foreign = _foreign_port(nbctl, net["id"])
    nbctl("set", "Logical_Switch_Port", foreign, 'external_ids:"ovn-nb-gateway:kind"=port',
          f'external_ids:"ovn-nb-gateway:tenant"={api.tenant}')
    resp = api.delete(f"/v1/networks/{net['id']}?cascade=true")
    assert resp.status_code == 409, resp.get_json()
    assert lsp(nbctl, foreign) is not None
    nbctl("lsp-del", foreign)
    assert api.delete(f"/v1/networks/{net['id']}").status_code == 204


# -- addresses that cannot serve as what they are given for --------------------------------


@pytest.mark.parametrize(("body", "field"), [
    ({"cidr": "0.0.0.0/0"}, "cidr"),
    ({"cidr": "0.0.0.0/24"}, "cidr"),
    ({"cidr": "224.0.0.0/24"}, "cidr"),
    ({"cidr": "239.1.0.0/16"}, "cidr"),
    ({"cidr": "127.0.0.0/24"}, "cidr"),
    ({"cidr": "169.254.0.0/24"}, "cidr"),
    ({"cidr": "255.255.255.248/29"}, "cidr"),
    ({"ipv6_cidr": "::/0"}, "ipv6_cidr"),
    ({"ipv6_cidr": "ff00::/8"}, "ipv6_cidr"),
    ({"ipv6_cidr": "ff02::/64"}, "ipv6_cidr"),
    ({"ipv6_cidr": "fe80::/64"}, "ipv6_cidr"),
    ({"ipv6_cidr": "::/120"}, "ipv6_cidr"),
])
def test_special_purpose_cidrs_are_400(api: Any, body: dict[str, Any], field: str) -> None:
    resp = api.post("/v1/networks", {"name": unique("n"), "cidr": "10.21.0.0/24", **body})
    assert resp.status_code == 400, resp.get_json()
    assert field in errors_of(resp), resp.get_json()
    assert api.get("/v1/networks").get_json()["items"] == []


@pytest.mark.parametrize(("dhcp", "field"), [
    ({"dns_servers": ["10.22.0.53", "fd00::53"]}, "dhcp.dns_servers.1"),
    ({"dns_servers": ["0.0.0.0"]}, "dhcp.dns_servers.0"),
    ({"dns_servers": ["255.255.255.255"]}, "dhcp.dns_servers.0"),
    ({"dns_servers": ["10.22.0.255"]}, "dhcp.dns_servers.0"),  # the network's broadcast
    ({"dns_servers": ["127.0.0.53"]}, "dhcp.dns_servers.0"),
    ({"dns_servers": ["224.0.0.251"]}, "dhcp.dns_servers.0"),
    ({"dns_servers": ["10.22.0.53", "::"]}, "dhcp.dns_servers.1"),
    ({"dns_servers": ["::1"]}, "dhcp.dns_servers.0"),
    ({"dns_servers": ["ff02::fb"]}, "dhcp.dns_servers.0"),
    ({"ntp_servers": ["0.0.0.0"]}, "dhcp.ntp_servers.0"),
    ({"ntp_servers": ["192.0.2.1", "255.255.255.255"]}, "dhcp.ntp_servers.1"),
    ({"ntp_servers": ["239.0.0.1"]}, "dhcp.ntp_servers.0"),
    ({"ntp_servers": ["127.0.0.1"]}, "dhcp.ntp_servers.0"),
    ({"routes": [{"destination": "192.168.0.0/16", "nexthop": "0.0.0.0"}]},
     "dhcp.routes.0.nexthop"),
    ({"routes": [{"destination": "192.168.0.0/16", "nexthop": "10.22.0.255"}]},
     "dhcp.routes.0.nexthop"),
    ({"routes": [{"destination": "192.168.0.0/16", "nexthop": "10.22.0.0"}]},
     "dhcp.routes.0.nexthop"),
    ({"routes": [{"destination": "192.168.0.0/16", "nexthop": "255.255.255.255"}]},
     "dhcp.routes.0.nexthop"),
])
def test_unusable_dhcp_addresses_are_400_naming_the_entry(api: Any, dhcp: dict[str, Any],
                                                          field: str) -> None:
    resp = api.post("/v1/networks", {"name": unique("n"), "cidr": "10.22.0.0/24", "dhcp": dhcp})
    assert resp.status_code == 400, resp.get_json()
    assert field in errors_of(resp), resp.get_json()
    net = api.network(cidr="10.22.0.0/24")
    resp = api.patch(f"/v1/networks/{net['id']}", {"dhcp": dhcp})
    assert resp.status_code == 400, resp.get_json()
    assert field in errors_of(resp), resp.get_json()
    assert api.get(f"/v1/networks/{net['id']}").get_json() == net


def test_ipv6_dns_server_is_fine_with_an_ipv6_cidr(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.23.0.0/24", ipv6_cidr="fd00:23::/64",
                      dhcp={"dns_servers": ["10.23.0.53", "fd00:23::53"]})
    assert net["dhcp"]["dns_servers"] == ["10.23.0.53", "fd00:23::53"]


@pytest.mark.parametrize(("body", "field"), [
    ({"description": "nul \u0000 inside"}, "description"),
    ({"description": "lone \udc00 surrogate"}, "description"),
    ({"labels": {"app": "a\u0000"}}, "labels"),
    ({"labels": {"a\udc00": "x"}}, "labels"),
    ({"dns_domain": "a\u0000.example"}, "dns_domain"),
    ({"name": "\ud800"}, "name"),
])
def test_nul_and_lone_surrogates_are_400_naming_the_field(api: Any, body: dict[str, Any],
                                                          field: str) -> None:
    resp = api.post("/v1/networks", {"name": unique("n"), "cidr": "10.24.0.0/24", **body})
    assert resp.status_code == 400, resp.get_json()
    assert names_field(errors_of(resp), field), resp.get_json()
    net = api.network(cidr="10.24.0.0/24")
    resp = api.patch(f"/v1/networks/{net['id']}", body)
    assert resp.status_code == 400, resp.get_json()
    assert names_field(errors_of(resp), field), resp.get_json()
    assert api.get(f"/v1/networks/{net['id']}").get_json() == net

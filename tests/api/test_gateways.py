"""External networks, gateways and floating IPs: the API and the OVN rows they become."""

from __future__ import annotations

from typing import Any

import pytest

from helpers.api import ApiClient, unique
from helpers.nb import as_list, owned, rows
from helpers.problems import errors_of, names_field

EXT = {"cidr": "172.16.0.0/24", "gateway_ip": "172.16.0.1",
       "allocation_pools": [{"start": "172.16.0.10", "end": "172.16.0.12"}],
       "physical_network": "physnet1"}


@pytest.fixture
def external(admin_api: ApiClient) -> dict[str, Any]:
    resp = admin_api.post("/v1/external-networks", {"name": unique("ext"), **EXT})
    assert resp.status_code == 201, resp.get_json()
    return dict(resp.get_json())


def _gateway(api: ApiClient, **fields: Any) -> Any:
    return api.post("/v1/gateways", {"name": unique("gw"), **fields})


def _router(nbctl: Any, gateway_id: str) -> dict[str, Any]:
    (row,) = owned(nbctl, "Logical_Router", kind="gateway", id=gateway_id)
    return row


def test_external_networks_are_admin_written_and_read_by_every_tenant(
        api: ApiClient, other_api: ApiClient, external: dict[str, Any], nbctl: Any) -> None:
    assert api.post("/v1/external-networks", {"name": unique("e"), **EXT}).status_code == 403
    for who in (api, other_api):
        assert who.get(f"/v1/external-networks/{external['id']}").get_json() == external
        ids = [e["id"] for e in who.get("/v1/external-networks?limit=1000").get_json()["items"]]
        assert external["id"] in ids
    assert api.patch(f"/v1/external-networks/{external['id']}",
                     {"description": "x"}).status_code == 403
    assert api.delete(f"/v1/external-networks/{external['id']}").status_code == 403
    (ls,) = owned(nbctl, "Logical_Switch", kind="external-network", id=external["id"])
    (localnet,) = rows(nbctl, "Logical_Switch_Port",
                       f"name=ovngw-ext-{external['id']}-localnet")
    assert localnet["type"] == "localnet" and localnet["options"] == {
        "network_name": "physnet1"}
    assert as_list(ls["ports"]) == [localnet["_uuid"]]


def test_external_network_vlan_and_validation(admin_api: ApiClient, nbctl: Any) -> None:
    resp = admin_api.post("/v1/external-networks", {"name": unique("e"), **EXT, "vlan": 42})
    assert resp.status_code == 201, resp.get_json()
    (localnet,) = rows(nbctl, "Logical_Switch_Port",
                       f"name=ovngw-ext-{resp.get_json()['id']}-localnet")
    assert localnet["tag"] == 42
    bad = admin_api.post("/v1/external-networks", {
        "name": unique("e"), **EXT, "allocation_pools": [{"start": "172.16.1.1",
                                                          "end": "172.16.1.5"}]})
    assert bad.status_code == 400 and names_field(errors_of(bad), "allocation_pools.0")


def test_gateway_attaches_networks_with_snat_and_default_route(
        api: ApiClient, external: dict[str, Any], nbctl: Any) -> None:
    n1 = api.network(cidr="10.1.0.0/24")
    n2 = api.network(cidr="10.2.0.0/24", ipv6_cidr="fd00:2::/64",
                     dhcp={"ipv6": {"mode": "stateless"}})
    resp = _gateway(api, networks=[{"network_id": n1["id"]}, {"network_id": n2["id"]}],
                    external={"network_id": external["id"]})
    assert resp.status_code == 201, resp.get_json()
    gw = resp.get_json()
    assert [a["ip"] for a in gw["networks"]] == ["10.1.0.1", "10.2.0.1"]
    assert gw["external"] == {"network_id": external["id"], "ip": "172.16.0.10",
                              "snat": True}
    router = _router(nbctl, gw["id"])
    lrps = {r["name"]: r for r in owned(nbctl, "Logical_Router_Port", kind="gw-port",
                                        parent=gw["id"])}
    assert len(lrps) == 3 and set(as_list(router["ports"])) == {
        r["_uuid"] for r in lrps.values()}
    on_n2 = lrps[f"ovngw-gw-{gw['id']}-{n2['id']}"]
    assert sorted(as_list(on_n2["networks"])) == ["10.2.0.1/24", "fd00:2::1/64"]
    assert on_n2["ipv6_ra_configs"]["address_mode"] == "dhcpv6_stateless"
    assert as_list(lrps[f"ovngw-gw-{gw['id']}-ext"]["networks"]) == ["172.16.0.10/24"]
    nats = owned(nbctl, "NAT", kind="gw-snat", parent=gw["id"])
    assert sorted((n["type"], n["external_ip"], n["logical_ip"]) for n in nats) == [
        ("snat", "172.16.0.10", "10.1.0.0/24"), ("snat", "172.16.0.10", "10.2.0.0/24")]
    routes = owned(nbctl, "Logical_Router_Static_Route", kind="gw-route", parent=gw["id"])
    assert [(r["ip_prefix"], r["nexthop"]) for r in routes] == [("0.0.0.0/0", "172.16.0.1")]
    links = owned(nbctl, "Logical_Switch_Port", kind="gw-link", parent=gw["id"])
    assert {r["type"] for r in links} == {"router"} and len(links) == 3
    # The router's v6 address is never handed to a port.
    port = api.port(n2["id"])
    assert "fd00:2::1" not in port["ips"]


def test_attachment_conflicts(api: ApiClient, nbctl: Any) -> None:
    n1 = api.network(cidr="10.1.0.0/24")
    n2 = api.network(cidr="10.1.0.0/25")
    overlap = _gateway(api, networks=[{"network_id": n1["id"]}, {"network_id": n2["id"]}])
    assert overlap.status_code == 409 and names_field(errors_of(overlap),
                                                      "networks.1.network_id")
    first = _gateway(api, networks=[{"network_id": n1["id"]}]).get_json()
    second = _gateway(api, networks=[{"network_id": n1["id"]}])
    assert second.status_code == 409, second.get_json()
    assert first["name"] in second.get_json()["detail"]
    # A network with a gateway cannot go unless cascade detaches it.
    assert api.delete(f"/v1/networks/{n1['id']}").status_code == 409
    assert api.delete(f"/v1/networks/{n1['id']}?cascade=true").status_code == 204
    after = api.get(f"/v1/gateways/{first['id']}").get_json()
    assert after["networks"] == [] and after["revision"] == first["revision"] + 1
    assert owned(nbctl, "Logical_Router_Port", kind="gw-port", parent=first["id"]) == []


def test_routes_are_checked_and_ecmp_kept(api: ApiClient, nbctl: Any) -> None:
    net = api.network(cidr="10.3.0.0/24")
    bad = _gateway(api, networks=[{"network_id": net["id"]}],
                   routes=[{"prefix": "10.50.0.0/24", "nexthop": "192.168.9.9"}])
    assert bad.status_code == 400 and names_field(errors_of(bad), "routes.0.nexthop")
    resp = _gateway(api, networks=[{"network_id": net["id"]}],
                    routes=[{"prefix": "10.50.0.0/24", "nexthop": "10.3.0.5"},
                            {"prefix": "10.50.0.0/24", "nexthop": "10.3.0.6"}])
    assert resp.status_code == 201, resp.get_json()
    gw = resp.get_json()
    routes = owned(nbctl, "Logical_Router_Static_Route", kind="gw-route", parent=gw["id"])
    assert sorted(r["nexthop"] for r in routes) == ["10.3.0.5", "10.3.0.6"]
    uuids = {r["_uuid"] for r in routes}
    # A PATCH that changes one route leaves the other row as it is.
    patched = api.patch(f"/v1/gateways/{gw['id']}", {"routes": [
        {"prefix": "10.50.0.0/24", "nexthop": "10.3.0.5"},
        {"prefix": "10.60.0.0/24", "nexthop": "10.3.0.7"}]})
    assert patched.status_code == 200, patched.get_json()
    routes = owned(nbctl, "Logical_Router_Static_Route", kind="gw-route", parent=gw["id"])
    kept = [r for r in routes if r["nexthop"] == "10.3.0.5"]
    assert len(routes) == 2 and kept[0]["_uuid"] in uuids


def test_external_addresses_never_collide(api: ApiClient, other_api: ApiClient,
                                          external: dict[str, Any]) -> None:
    got = []
    for who in (api, other_api):
        gw = _gateway(who, external={"network_id": external["id"]})
        assert gw.status_code == 201, gw.get_json()
        got.append(gw.get_json()["external"]["ip"])
    fip = api.post("/v1/floating-ips", {"name": unique("f"),
                                        "external_network_id": external["id"]})
    assert fip.status_code == 201, fip.get_json()
    got.append(fip.get_json()["ip"])
    assert sorted(got) == ["172.16.0.10", "172.16.0.11", "172.16.0.12"]
    full = api.post("/v1/floating-ips", {"name": unique("f"),
                                         "external_network_id": external["id"]})
    assert full.status_code == 409 and names_field(errors_of(full), "ip")
    taken = api.post("/v1/floating-ips", {"name": unique("f"), "ip": got[0],
                                          "external_network_id": external["id"]})
    assert taken.status_code == 409 and names_field(errors_of(taken), "ip")


def test_floating_ip_follows_its_port(api: ApiClient, other_api: ApiClient,
                                      external: dict[str, Any], nbctl: Any) -> None:
    net = api.network(cidr="10.4.0.0/24")
    lonely = api.network(cidr="10.5.0.0/24")
    port, stray = api.port(net["id"]), api.port(lonely["id"])
    gw = _gateway(api, networks=[{"network_id": net["id"]}],
                  external={"network_id": external["id"]}).get_json()
    body = {"name": unique("f"), "external_network_id": external["id"]}
    no_gw = api.post("/v1/floating-ips", {**body, "port_id": stray["id"]})
    assert no_gw.status_code == 409 and names_field(errors_of(no_gw), "port_id")
    foreign = other_api.post("/v1/floating-ips", {**body, "port_id": port["id"]})
    assert foreign.status_code == 404 and names_field(errors_of(foreign), "port_id")
    fip = api.post("/v1/floating-ips", {**body, "port_id": port["id"]}).get_json()
    assert fip["gateway_id"] == gw["id"] and fip["port_id"] == port["id"]
    (nat,) = owned(nbctl, "NAT", kind="fip-nat", id=fip["id"])
    assert (nat["type"], nat["external_ip"], nat["logical_ip"], nat["logical_port"]) == (
        "dnat_and_snat", fip["ip"], port["ips"][0], port["id"])
    assert nat["_uuid"] in as_list(_router(nbctl, gw["id"])["nat"])
    # The gateway cannot drop what the floating IP needs.
    assert api.patch(f"/v1/gateways/{gw['id']}", {"external": None}).status_code == 409
    assert api.patch(f"/v1/gateways/{gw['id']}", {"networks": []}).status_code == 409
    assert api.delete(f"/v1/gateways/{gw['id']}").status_code == 409
    # Unassign, then the port goes and takes the association with it.
    free = api.patch(f"/v1/floating-ips/{fip['id']}", {"port_id": None}).get_json()
    assert free["port_id"] is None and free["gateway_id"] is None
    assert owned(nbctl, "NAT", kind="fip-nat", id=fip["id"]) == []
    again = api.patch(f"/v1/floating-ips/{fip['id']}", {"port_id": port["id"]}).get_json()
    assert again["gateway_id"] == gw["id"]
    assert api.delete(f"/v1/ports/{port['id']}").status_code == 204
    gone = api.get(f"/v1/floating-ips/{fip['id']}").get_json()
    assert gone["port_id"] is None and gone["revision"] == again["revision"] + 1
    assert owned(nbctl, "NAT", kind="fip-nat", id=fip["id"]) == []
    assert api.delete(f"/v1/floating-ips/{fip['id']}").status_code == 204
    assert owned(nbctl, "Address_Set", kind="floating-ip", id=fip["id"]) == []


def test_external_network_in_use_cannot_go(admin_api: ApiClient, api: ApiClient,
                                           external: dict[str, Any]) -> None:
    gw = _gateway(api, external={"network_id": external["id"]}).get_json()
    resp = admin_api.delete(f"/v1/external-networks/{external['id']}")
    assert resp.status_code == 409 and gw["name"] in resp.get_json()["detail"]
    assert api.delete(f"/v1/gateways/{gw['id']}").status_code == 204
    assert admin_api.delete(f"/v1/external-networks/{external['id']}").status_code == 204


def test_cascade_delete_of_a_network_releases_its_floating_ip_associations(
        api: ApiClient, external: dict[str, Any], nbctl: Any) -> None:
    net = api.network(cidr="10.6.0.0/24")
    port = api.port(net["id"])
    gw = _gateway(api, networks=[{"network_id": net["id"]}],
                  external={"network_id": external["id"]}).get_json()
    fip = api.post("/v1/floating-ips", {"name": unique("f"), "port_id": port["id"],
                                        "external_network_id": external["id"]}).get_json()
    # Changing what the floating IP does not need is fine.
    routed = api.patch(f"/v1/gateways/{gw['id']}", {"routes": [
        {"prefix": "10.70.0.0/24", "nexthop": "10.6.0.9"}]})
    assert routed.status_code == 200, routed.get_json()
    assert api.get(f"/v1/floating-ips/{fip['id']}").get_json() == fip
    blocked = api.delete(f"/v1/networks/{net['id']}?cascade=true")
    assert blocked.status_code == 409 and "routes" in blocked.get_json()["detail"]
    assert api.patch(f"/v1/gateways/{gw['id']}", {"routes": []}).status_code == 200
    assert api.delete(f"/v1/networks/{net['id']}?cascade=true").status_code == 204
    after = api.get(f"/v1/floating-ips/{fip['id']}").get_json()
    assert after["port_id"] is None and after["gateway_id"] is None
    gateway = api.get(f"/v1/gateways/{gw['id']}").get_json()
    assert gateway["networks"] == [] and gateway["routes"] == []
    assert owned(nbctl, "NAT", kind="fip-nat", id=fip["id"]) == []
    assert [n["logical_ip"] for n in owned(nbctl, "NAT", kind="gw-snat",
                                            parent=gw["id"])] == []


def test_gateways_follow_the_new_version_of_what_changed(
        api: ApiClient, admin_api: ApiClient, external: dict[str, Any], nbctl: Any) -> None:
    net = api.network(cidr="10.9.0.0/24", ipv6_cidr="fd00:9::/64")
    port = api.port(net["id"])
    gw = _gateway(api, networks=[{"network_id": net["id"]}],
                  external={"network_id": external["id"]}).get_json()
    fip = api.post("/v1/floating-ips", {"name": unique("f"), "port_id": port["id"],
                                        "external_network_id": external["id"]}).get_json()
    # The network's mtu reaches the router advertisements in the same write.
    assert api.patch(f"/v1/networks/{net['id']}", {"mtu": 1400}).status_code == 200
    (lrp,) = rows(nbctl, "Logical_Router_Port", f"name=ovngw-gw-{gw['id']}-{net['id']}")
    assert lrp["ipv6_ra_configs"]["mtu"] == "1400"
    # A new gateway_ip moves the router (DHCP offers the new one).
    assert api.patch(f"/v1/networks/{net['id']}", {"gateway_ip": "10.9.0.254"}
                     ).status_code == 200
    (lrp,) = rows(nbctl, "Logical_Router_Port", f"name=ovngw-gw-{gw['id']}-{net['id']}")
    assert "10.9.0.254/24" in as_list(lrp["networks"])
    assert api.get(f"/v1/gateways/{gw['id']}").get_json()["networks"][0]["ip"] == "10.9.0.254"
    # The external network's new gateway_ip moves the default route.
    assert admin_api.patch(f"/v1/external-networks/{external['id']}",
                           {"gateway_ip": "172.16.0.254"}).status_code == 200
    routes = owned(nbctl, "Logical_Router_Static_Route", kind="gw-route", parent=gw["id"])
    assert [r["nexthop"] for r in routes] == ["172.16.0.254"]
    # A port's new address moves its floating IP's translation.
    assert api.patch(f"/v1/ports/{port['id']}", {"ips": ["10.9.0.77"]}).status_code == 200
    (nat,) = owned(nbctl, "NAT", kind="fip-nat", id=fip["id"])
    assert nat["logical_ip"] == "10.9.0.77"
    v6_only = api.patch(f"/v1/ports/{port['id']}", {"ips": ["fd00:9::77"]})
    assert v6_only.status_code == 409, v6_only.get_json()


def test_external_network_holding_floating_ips_cannot_go(
        api: ApiClient, admin_api: ApiClient, external: dict[str, Any]) -> None:
    fip = api.post("/v1/floating-ips", {"name": unique("f"),
                                        "external_network_id": external["id"]}).get_json()
    resp = admin_api.delete(f"/v1/external-networks/{external['id']}")
    assert resp.status_code == 409 and fip["ip"] in resp.get_json()["detail"]


def test_an_attached_network_may_not_overlap_the_external_one(
        api: ApiClient, external: dict[str, Any]) -> None:
    net = api.network(cidr="172.16.0.0/24")
    resp = _gateway(api, networks=[{"network_id": net["id"]}],
                    external={"network_id": external["id"]})
    assert resp.status_code == 409 and names_field(errors_of(resp), "external.network_id")

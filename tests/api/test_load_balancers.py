"""Load balancers: validation, the OVN rows, reservations and what follows other kinds."""

from __future__ import annotations

from typing import Any

import pytest

from helpers.api import ApiClient, unique
from helpers.nb import as_list, owned, rows
from helpers.problems import errors_of, names_field


def _lb(api: ApiClient, **fields: Any) -> Any:
    body = {"name": unique("lb"), "listeners": [{"port": 80, "backend_port": 8080}],
            **fields}
    return api.post("/v1/load-balancers", body)


def _row(nbctl: Any, lb_id: str) -> dict[str, Any]:
    (row,) = owned(nbctl, "Load_Balancer", kind="load-balancer", id=lb_id)
    return row


@pytest.fixture
def net(api: ApiClient) -> dict[str, Any]:
    return dict(api.network(cidr="10.7.0.0/24"))


def test_vips_backends_listeners_become_one_ovn_load_balancer(
        api: ApiClient, net: dict[str, Any], nbctl: Any) -> None:
    resp = _lb(api, vip="10.7.0.100", networks=[net["id"]], session_affinity_timeout=60,
               listeners=[{"port": 80, "backend_port": 8080}, {"port": 443}],
               backends=[{"ip": "10.7.0.11"}, {"ip": "10.7.0.12", "port": 9090}])
    assert resp.status_code == 201, resp.get_json()
    lb = resp.get_json()
    row = _row(nbctl, lb["id"])
    assert row["vips"] == {"10.7.0.100:80": "10.7.0.11:8080,10.7.0.12:9090",
                           "10.7.0.100:443": "10.7.0.11:443,10.7.0.12:9090"}
    assert row["protocol"] == "tcp" and row["options"] == {"affinity_timeout": "60"}
    (ls,) = owned(nbctl, "Logical_Switch", kind="network", id=net["id"])
    assert as_list(ls["load_balancer"]) == [row["_uuid"]]
    assert {b["status"] for b in lb["status"]["backends"]} == {"unknown"}
    # The VIP is answered for by the network's lb-router, and no port gets it.
    (port,) = owned(nbctl, "Logical_Router_Port", kind="lb-router", id=net["id"])
    assert as_list(port["networks"]) == ["10.7.0.100/24"]
    taken = api.post(f"/v1/networks/{net['id']}/ports", {"name": unique("p"),
                                                        "ips": ["10.7.0.100"]})
    assert taken.status_code == 409 and names_field(errors_of(taken), "ips.0")
    # Adding one backend changes only that VIP mapping; deleting releases everything.
    patched = api.patch(f"/v1/load-balancers/{lb['id']}", {"backends": [
        {"ip": "10.7.0.11"}, {"ip": "10.7.0.12", "port": 9090}, {"ip": "10.7.0.13"}]})
    assert patched.status_code == 200, patched.get_json()
    assert _row(nbctl, lb["id"])["vips"]["10.7.0.100:80"].endswith(",10.7.0.13:8080")
    assert api.delete(f"/v1/load-balancers/{lb['id']}").status_code == 204
    assert owned(nbctl, "Logical_Router", kind="lb-router", id=net["id"]) == []
    assert api.port(net["id"], ips=["10.7.0.100"])["ips"] == ["10.7.0.100"]


def test_validation_names_the_field(api: ApiClient, other_api: ApiClient,
                                    net: dict[str, Any]) -> None:
    port = api.port(net["id"])
    cases = [
        ({"vip": "10.7.0.100", "listeners": [{"port": 80}, {"port": 80}]}, 409,
         "listeners.1.port"),
        ({"vip": "10.7.0.100", "backends": [{"ip": "192.168.77.5"}]}, 400, "backends.0.ip"),
        ({"vip": "10.7.0.100", "backends": [{"ip": "fd00::5"}]}, 400, "backends.0.ip"),
        ({"vip": "10.7.0.100", "health_check": {"interval": 5}}, 400, "backends"),
        ({"vip": "10.7.0.100", "protocol": "sctp", "backends": [{"ip": port["ips"][0]}],
          "health_check": {}}, 400, "health_check"),
        ({"vip": "10.7.0.100", "backends": [{"ip": "10.7.0.50"}], "health_check": {}}, 400,
         "backends.0.ip"),
        ({"vip": port["ips"][0], "networks": [net["id"]]}, 409, "vip"),
        ({"vip": net["gateway_ip"], "networks": [net["id"]]}, 409, "vip"),
        ({}, 400, "vip"),
    ]
    for body, status, field in cases:
        resp = _lb(api, **body)
        assert resp.status_code == status, (body, resp.get_json())
        assert names_field(errors_of(resp), field), (body, resp.get_json())
    # Another tenant's network, gateway or addresses.
    foreign = _lb(other_api, vip="10.7.0.100", networks=[net["id"]])
    assert foreign.status_code == 404 and names_field(errors_of(foreign), "networks.0")
    theirs = _lb(other_api, vip="10.7.0.100", backends=[{"ip": port["ips"][0]}])
    assert theirs.status_code == 400 and names_field(errors_of(theirs), "backends.0.ip")


def test_health_check_maps_backends_to_ports_with_a_reserved_source(
        api: ApiClient, net: dict[str, Any], nbctl: Any) -> None:
    backends = [api.port(net["id"]), api.port(net["id"])]
    resp = _lb(api, vip="10.7.0.100", networks=[net["id"]],
               backends=[{"ip": p["ips"][0]} for p in backends],
               health_check={"interval": 2, "timeout": 1})
    assert resp.status_code == 201, resp.get_json()
    lb = resp.get_json()
    row = _row(nbctl, lb["id"])
    sources = {v.split(":", 1)[1] for v in row["ip_port_mappings"].values()}
    assert len(sources) == 1
    (source,) = sources
    assert row["ip_port_mappings"] == {p["ips"][0]: f"{p['id']}:{source}" for p in backends}
    checks = rows(nbctl, "Load_Balancer_Health_Check")
    mine = [c for c in checks if c["_uuid"] in as_list(row["health_check"])]
    assert [(c["vip"], c["options"]["interval"]) for c in mine] == [("10.7.0.100:80", "2")]
    # The probes' source is never given to a port; a backend port cannot silently go.
    assert source not in api.port(net["id"])["ips"]
    blocked = api.delete(f"/v1/ports/{backends[0]['id']}")
    assert blocked.status_code == 409 and lb["name"] in blocked.get_json()["detail"]
    # Without the health check the source is released.
    assert api.patch(f"/v1/load-balancers/{lb['id']}",
                     {"health_check": None}).status_code == 200
    assert _row(nbctl, lb["id"])["ip_port_mappings"] == {}
    assert api.delete(f"/v1/ports/{backends[0]['id']}").status_code == 204


def test_network_and_gateway_deletes_detach_or_refuse(api: ApiClient, net: dict[str, Any],
                                                      nbctl: Any) -> None:
    other = api.network(cidr="10.8.0.0/24")
    gw = api.post("/v1/gateways", {"name": unique("gw"),
                                   "networks": [{"network_id": other["id"]}]}).get_json()
    lb = _lb(api, vip="10.7.0.100", networks=[net["id"], other["id"]], gateways=[gw["id"]],
             backends=[{"ip": "10.8.0.20"}]).get_json()
    assert api.delete(f"/v1/networks/{net['id']}?cascade=true").status_code == 409  # VIP
    assert api.delete(f"/v1/networks/{other['id']}").status_code == 409
    assert api.delete(f"/v1/gateways/{gw['id']}").status_code == 204
    after = api.get(f"/v1/load-balancers/{lb['id']}").get_json()
    assert after["gateways"] == [] and after["revision"] == lb["revision"] + 1
    assert api.delete(f"/v1/networks/{other['id']}?cascade=true").status_code == 204
    after = api.get(f"/v1/load-balancers/{lb['id']}").get_json()
    assert after["networks"] == [net["id"]] and after["backends"] == []


def test_external_vip_is_allocated_from_the_external_network(
        api: ApiClient, admin_api: ApiClient, nbctl: Any) -> None:
    ext = admin_api.post("/v1/external-networks", {
        "name": unique("ext"), "cidr": "172.16.5.0/24", "physical_network": "physnet1",
        "allocation_pools": [{"start": "172.16.5.10", "end": "172.16.5.11"}]}).get_json()
    gw = api.post("/v1/gateways", {"name": unique("gw"),
                                   "external": {"network_id": ext["id"]}}).get_json()
    resp = _lb(api, external_network_id=ext["id"], gateways=[gw["id"]])
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["vip"] == "172.16.5.11"  # .10 went to the gateway
    (lr,) = owned(nbctl, "Logical_Router", kind="gateway", id=gw["id"])
    assert as_list(lr["load_balancer"]) == [_row(nbctl, resp.get_json()["id"])["_uuid"]]
    full = api.post("/v1/floating-ips", {"name": unique("f"),
                                         "external_network_id": ext["id"]})
    assert full.status_code == 409
    assert api.delete(f"/v1/gateways/{gw['id']}").status_code == 204
    in_use = admin_api.delete(f"/v1/external-networks/{ext['id']}")
    assert in_use.status_code == 409 and "load balancers" in in_use.get_json()["detail"]


def test_reserved_addresses_stay_reserved_and_cascade_takes_checked_backends(
        api: ApiClient, net: dict[str, Any], nbctl: Any) -> None:
    back = api.network(cidr="10.11.0.0/24")
    ports = [api.port(back["id"]), api.port(back["id"])]
    lb = _lb(api, vip="10.7.0.100", networks=[net["id"]],
             backends=[{"ip": p["ips"][0]} for p in ports], health_check={}).get_json()
    source = next(iter(_row(nbctl, lb["id"])["ip_port_mappings"].values())).split(":", 1)[1]
    # Neither a network's gateway_ip nor a router's address may take a VIP or probe source.
    for value in ("10.7.0.100",):
        resp = api.patch(f"/v1/networks/{net['id']}", {"gateway_ip": value})
        assert resp.status_code == 409 and names_field(errors_of(resp), "gateway_ip")
    resp = api.patch(f"/v1/networks/{back['id']}", {"gateway_ip": source})
    assert resp.status_code == 409 and names_field(errors_of(resp), "gateway_ip")
    gw = api.post("/v1/gateways", {"name": unique("gw"), "networks": [
        {"network_id": net["id"], "ip": "10.7.0.100"}]})
    assert gw.status_code == 409 and names_field(errors_of(gw), "networks.0.ip")
    # One backend by address and port.
    added = api.post(f"/v1/load-balancers/{lb['id']}/backends",
                     {"ip": ports[0]["ips"][0], "port": 9090})
    assert added.status_code == 201, added.get_json()
    got = api.get(f"/v1/load-balancers/{lb['id']}/backends/{ports[0]['ips'][0]}?port=9090")
    assert got.status_code == 200 and got.get_json() == added.get_json()
    # A cascade takes the health-checked backends of the network (and the check with them).
    assert api.delete(f"/v1/networks/{back['id']}?cascade=true").status_code == 204
    after = api.get(f"/v1/load-balancers/{lb['id']}").get_json()
    assert after["backends"] == [] and after.get("health_check") is None
    assert _row(nbctl, lb["id"])["ip_port_mappings"] == {}


def test_an_external_vip_needs_gateways_on_its_external_network(
        api: ApiClient, admin_api: ApiClient) -> None:
    ext = admin_api.post("/v1/external-networks", {
        "name": unique("ext"), "cidr": "172.16.6.0/24",
        "physical_network": "physnet1"}).get_json()
    inside = api.post("/v1/gateways", {"name": unique("gw")}).get_json()
    resp = _lb(api, external_network_id=ext["id"], gateways=[inside["id"]])
    assert resp.status_code == 409 and names_field(errors_of(resp), "gateways.0")

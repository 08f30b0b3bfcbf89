"""DNS records: user records, automatic records of port hostnames, and the OVN DNS rows and
Logical_Switch.dns_records links behind them."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from helpers.api import unique
from helpers.nb import as_list, one_or_none, owned, owned_one, switch
from helpers.problems import errors_of, names_field

MISSING = "00000000-0000-4000-8000-000000000000"

# -- helpers ---------------------------------------------------------------------------------


def domain() -> str:
    return unique("zone") + ".example"


def create(api: Any, fqdn: str | None = None, ips: list[str] | None = None,
           **fields: Any) -> dict[str, Any]:
    resp = api.post("/v1/dns-records", {"name": fields.pop("name", None) or unique("rec"),
                                        "fqdn": fqdn or f"www.{domain()}",
                                        "ips": ips or ["192.0.2.10"], **fields})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def dns_row(nbctl: Any, record_id: str) -> dict[str, Any] | None:
    return owned_one(nbctl, "DNS", kind="dns-record", id=record_id)


def linked(nbctl: Any, network_id: str) -> set[str]:
    """DNS row uuids the network's logical switch references."""
    ls = switch(nbctl, network_id)
    assert ls is not None, f"no switch for {network_id}"
    return set(as_list(ls["dns_records"]))


def networks_of(nbctl: Any, record_id: str, *network_ids: str) -> set[str]:
    """Which of network_ids link the record's DNS row."""
    row = dns_row(nbctl, record_id)
    assert row is not None
    return {n for n in network_ids if row["_uuid"] in linked(nbctl, n)}


def auto_record(api: Any, port_id: str) -> dict[str, Any] | None:
    items = api.get("/v1/dns-records?limit=1000").get_json()["items"]
    return one_or_none([r for r in items if r.get("port_id") == port_id])


def ptr(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer


# -- user records ----------------------------------------------------------------------------


def test_create_without_networks_covers_every_network_now_and_later(api: Any, other_api: Any,
                                                                     nbctl: Any) -> None:
    net1 = api.network(cidr="10.100.0.0/24")
    net2 = api.network(cidr="10.101.0.0/24")
    fqdn = f"api.{domain()}"
    resp = api.post("/v1/dns-records", {"name": unique("rec"), "fqdn": fqdn,
                                        "ips": ["10.100.0.50", "fd00:100::50"]})
    assert resp.status_code == 201, resp.get_json()
    rec = resp.get_json()
    assert resp.headers["Location"].endswith(f"/v1/dns-records/{rec['id']}")
    assert resp.headers["ETag"] == '"1"'
    assert rec["fqdn"] == fqdn
    assert rec["ips"] == ["10.100.0.50", "fd00:100::50"]
    assert rec["auto"] is False
    assert rec.get("networks") in (None, [])  # absent: every network
    assert rec["tenant_id"] == api.tenant and rec["revision"] == 1
    row = dns_row(nbctl, rec["id"])
    assert row is not None
    assert row["records"] == {fqdn: "10.100.0.50 fd00:100::50"}
    assert row["external_ids"]["ovn-nb-gateway:tenant"] == api.tenant
    assert networks_of(nbctl, rec["id"], net1["id"], net2["id"]) == {net1["id"], net2["id"]}
    # a network created later resolves it too; another tenant's network does not
    net3 = api.network(cidr="10.102.0.0/24")
    theirs = other_api.network(cidr="10.103.0.0/24")
    assert row["_uuid"] in linked(nbctl, net3["id"])
    assert row["_uuid"] not in linked(nbctl, theirs["id"])
    got = api.get(f"/v1/dns-records/{rec['id']}")
    assert got.status_code == 200 and got.headers["ETag"] == '"1"'
    assert got.get_json() == rec


def test_create_with_networks_links_only_those(api: Any, nbctl: Any) -> None:
    net1 = api.network(cidr="10.104.0.0/24")
    net2 = api.network(cidr="10.105.0.0/24")
    rec = create(api, networks=[net1["id"]])
    assert rec["networks"] == [net1["id"]]
    assert networks_of(nbctl, rec["id"], net1["id"], net2["id"]) == {net1["id"]}
    net3 = api.network(cidr="10.106.0.0/24")
    assert networks_of(nbctl, rec["id"], net3["id"]) == set()


def test_patch_ips_fqdn_and_networks(api: Any, nbctl: Any) -> None:
    net1 = api.network(cidr="10.107.0.0/24")
    net2 = api.network(cidr="10.108.0.0/24")
    zone = domain()
    rec = create(api, f"a.{zone}", ["10.107.0.5"], networks=[net1["id"]])
    path = f"/v1/dns-records/{rec['id']}"
    uuid_before = dns_row(nbctl, rec["id"])["_uuid"]  # type: ignore[index]

    resp = api.patch(path, {"ips": ["10.107.0.6", "fd00::6"]})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["revision"] == 2
    assert dns_row(nbctl, rec["id"])["records"] == {  # type: ignore[index]
        f"a.{zone}": "10.107.0.6 fd00::6"}

    resp = api.patch(path, {"fqdn": f"b.{zone}"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["fqdn"] == f"b.{zone}"
    assert dns_row(nbctl, rec["id"])["records"] == {  # type: ignore[index]
        f"b.{zone}": "10.107.0.6 fd00::6"}
    # the old name is free again, the new one is taken
    create(api, f"a.{zone}")
    assert api.post("/v1/dns-records", {"name": unique("r"), "fqdn": f"b.{zone}",
                                        "ips": ["10.0.0.1"]}).status_code == 409

    resp = api.patch(path, {"networks": [net2["id"]]})
    assert resp.status_code == 200, resp.get_json()
    assert networks_of(nbctl, rec["id"], net1["id"], net2["id"]) == {net2["id"]}

    resp = api.patch(path, {"networks": None})
    assert resp.status_code == 200, resp.get_json()
    assert networks_of(nbctl, rec["id"], net1["id"], net2["id"]) == {net1["id"], net2["id"]}
    net3 = api.network(cidr="10.109.0.0/24")
    assert networks_of(nbctl, rec["id"], net3["id"]) == {net3["id"]}

    resp = api.patch(path, {"networks": [net1["id"]]})
    assert resp.status_code == 200, resp.get_json()
    assert networks_of(nbctl, rec["id"], net1["id"], net2["id"], net3["id"]) == {net1["id"]}
    assert dns_row(nbctl, rec["id"])["_uuid"] == uuid_before  # type: ignore[index]
    got = api.get(path).get_json()
    assert got["revision"] == 6
    assert got["networks"] == [net1["id"]]


def test_delete_removes_row_and_links(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.110.0.0/24")
    rec = create(api)
    keep = create(api)
    row = dns_row(nbctl, rec["id"])
    assert row is not None and row["_uuid"] in linked(nbctl, net["id"])
    resp = api.delete(f"/v1/dns-records/{rec['id']}")
    assert resp.status_code == 204
    assert dns_row(nbctl, rec["id"]) is None
    assert row["_uuid"] not in linked(nbctl, net["id"])
    assert dns_row(nbctl, keep["id"])["_uuid"] in linked(nbctl, net["id"])  # type: ignore[index]
    assert api.get(f"/v1/dns-records/{rec['id']}").status_code == 404
    assert api.delete(f"/v1/dns-records/{rec['id']}").status_code == 404


def test_list_and_fqdn_filter(api: Any, other_api: Any) -> None:
    zone = domain()
    one = create(api, f"one.{zone}")
    create(api, f"two.{zone}")
    create(other_api, f"one.{zone}")  # same name elsewhere: no conflict, never listed
    items = api.get("/v1/dns-records").get_json()["items"]
    assert {r["tenant_id"] for r in items} == {api.tenant}
    assert len(items) == 2
    found = api.get(f"/v1/dns-records?fqdn=one.{zone}").get_json()["items"]
    assert [r["id"] for r in found] == [one["id"]]


def test_duplicate_fqdn_in_tenant_is_409(api: Any) -> None:
    zone = domain()
    first = create(api, f"dup.{zone}")
    for fqdn in (f"dup.{zone}", f"DUP.{zone.upper()}", f"dup.{zone}."):
        resp = api.post("/v1/dns-records", {"name": unique("r"), "fqdn": fqdn,
                                            "ips": ["10.0.0.9"]})
        assert resp.status_code == 409, (fqdn, resp.get_json())
        assert "fqdn" in errors_of(resp)
    other = create(api, f"other.{zone}")
    resp = api.patch(f"/v1/dns-records/{other['id']}", {"fqdn": f"dup.{zone}"})
    assert resp.status_code == 409
    assert "fqdn" in errors_of(resp)
    assert api.get(f"/v1/dns-records/{other['id']}").get_json()["fqdn"] == f"other.{zone}"
    assert api.get(f"/v1/dns-records/{first['id']}").get_json() == first


def test_fqdn_is_normalised(api: Any) -> None:
    zone = domain()
    rec = create(api, f"MiXeD.{zone.upper()}.")
    assert rec["fqdn"] == f"mixed.{zone}"


def test_other_tenants_zones_and_names_neither_conflict_nor_show(api: Any, other_api: Any,
                                                                  nbctl: Any) -> None:
    """Records answer only on the tenant's own networks (README, DNS): another tenant's zone
    or names are no conflict, and nothing about them leaks."""
    zone = domain()
    theirs = other_api.network(cidr="10.111.0.0/24", dns_domain=zone)
    their_port = other_api.port(theirs["id"], hostname="www")
    their_record = create(other_api, f"api.{zone}")
    mine = api.network(cidr="10.111.0.0/24", dns_domain=zone)  # the same zone: fine
    my_port = api.port(mine["id"], hostname="www")  # the same automatic name: fine
    made = [create(api, fqdn) for fqdn in (f"api.{zone}", f"deep.sub.{zone}", zone)]
    my_auto = auto_record(api, my_port["id"])
    assert my_auto is not None and my_auto["fqdn"] == f"www.{zone}"
    their_auto = auto_record(other_api, their_port["id"])
    assert their_auto is not None and their_auto["id"] != my_auto["id"]
    # each tenant's switch links only its own rows
    my_rows = {dns_row(nbctl, r["id"])["_uuid"] for r in [*made, my_auto]}  # type: ignore[index]
    their_rows = {dns_row(nbctl, r["id"])["_uuid"]  # type: ignore[index]
                  for r in (their_record, their_auto)}
    assert linked(nbctl, mine["id"]) == my_rows
    assert linked(nbctl, theirs["id"]) == their_rows
    assert {r["id"] for r in api.get("/v1/dns-records").get_json()["items"]} == {
        r["id"] for r in [*made, my_auto]}
    # conflicts stay within the tenant
    resp = api.post("/v1/dns-records", {"name": unique("r"), "fqdn": f"api.{zone}",
                                        "ips": ["10.0.0.1"]})
    assert resp.status_code == 409
    assert "fqdn" in errors_of(resp)
    assert their_record["id"] not in resp.get_data(as_text=True)
    assert other_api.tenant not in resp.get_data(as_text=True)


def test_own_zone_is_fine(api: Any) -> None:
    zone = domain()
    api.network(cidr="10.112.0.0/24", dns_domain=zone)
    assert create(api, f"www.{zone}")["fqdn"] == f"www.{zone}"


def test_another_tenants_network_is_404_naming_networks(api: Any, other_api: Any,
                                                        nbctl: Any) -> None:
    mine = api.network(cidr="10.113.0.0/24")
    theirs = other_api.network(cidr="10.113.0.0/24")
    for networks, field in (([theirs["id"]], "networks.0"), ([mine["id"], theirs["id"]],
                                                            "networks.1"),
                            ([MISSING], "networks.0")):
        resp = api.post("/v1/dns-records", {"name": unique("r"), "fqdn": f"x.{domain()}",
                                            "ips": ["10.0.0.1"], "networks": networks})
        assert resp.status_code == 404, resp.get_json()
        assert field in errors_of(resp), resp.get_json()
    assert owned(nbctl, "DNS", kind="dns-record", tenant=api.tenant) == []
    assert linked(nbctl, theirs["id"]) == set()
    rec = create(api, networks=[mine["id"]])
    resp = api.patch(f"/v1/dns-records/{rec['id']}", {"networks": [theirs["id"]]})
    assert resp.status_code == 404
    assert "networks.0" in errors_of(resp)
    assert linked(nbctl, theirs["id"]) == set()
    assert networks_of(nbctl, rec["id"], mine["id"]) == {mine["id"]}


@pytest.mark.parametrize(("body", "field"), [
    ({"fqdn": "bad_label.example"}, "fqdn"),
    ({"fqdn": "-lead.example"}, "fqdn"),
    ({"fqdn": "trail-.example"}, "fqdn"),
    ({"fqdn": "a..example"}, "fqdn"),
    ({"fqdn": "sp ace.example"}, "fqdn"),
    ({"fqdn": "www.example.123"}, "fqdn"),
    ({"fqdn": "10.0.0.1"}, "fqdn"),
    ({"fqdn": "x" * 64 + ".example"}, "fqdn"),
    ({"fqdn": ".".join(["a" * 63] * 4)}, "fqdn"),  # 255 characters
    ({"fqdn": ".".join(["a" * 49] * 5) + ".comm"}, "fqdn"),  # 254 characters
    ({"fqdn": ""}, "fqdn"),
    ({"fqdn": 'x".example'}, "fqdn"),
    ({"ips": []}, "ips"),
    ({"ips": ["10.0.0.300"]}, "ips.0"),
    ({"ips": ["10.0.0.1", "nope"]}, "ips.1"),
    ({"networks": ["not-a-uuid"]}, "networks.0"),
    ({"auto": True}, "auto"),
    ({"port_id": MISSING}, "port_id"),
    ({"colour": "blue"}, "colour"),
    ({"name": "auto-mine"}, "name"),
    ({"name": "auto-" + MISSING}, "name"),
])
def test_create_validation_is_400_naming_the_field(api: Any, body: dict[str, Any],
                                                   field: str) -> None:
    assert len(body.get("fqdn", "")) <= 255
    payload = {"name": unique("r"), "fqdn": f"ok.{domain()}", "ips": ["10.0.0.1"], **body}
    resp = api.post("/v1/dns-records", payload)
    assert resp.status_code == 400, resp.get_json()
    errors = errors_of(resp)
    assert names_field(errors, field), errors
    assert api.get("/v1/dns-records").get_json()["items"] == []


def test_longest_valid_names_are_accepted(api: Any) -> None:
    label = "x" * 63 + ".example"
    assert create(api, label)["fqdn"] == label
    longest = ".".join(["a" * 49] * 5) + ".com"
    assert len(longest) == 253
    assert create(api, longest)["fqdn"] == longest


def test_patch_to_reserved_name_is_400(api: Any) -> None:
    rec = create(api)
    resp = api.patch(f"/v1/dns-records/{rec['id']}", {"name": "auto-x"})
    assert resp.status_code == 400
    assert "name" in errors_of(resp)
    assert api.get(f"/v1/dns-records/{rec['id']}").get_json() == rec


@pytest.mark.parametrize(("patch", "field"), [
    ({"fqdn": "bad_label.example"}, "fqdn"),
    ({"ips": []}, "ips"),
    ({"ips": None}, "ips"),
    ({"fqdn": None}, "fqdn"),
    ({"auto": True}, "auto"),
])
def test_patch_validation_is_400(api: Any, nbctl: Any, patch: dict[str, Any],
                                 field: str) -> None:
    rec = create(api)
    before = dns_row(nbctl, rec["id"])
    resp = api.patch(f"/v1/dns-records/{rec['id']}", patch)
    assert resp.status_code == 400, resp.get_json()
    assert names_field(errors_of(resp), field), resp.get_json()
    assert dns_row(nbctl, rec["id"]) == before


def test_network_delete_forgets_its_id_and_keeps_the_record(api: Any, nbctl: Any) -> None:
    doomed = api.network(cidr="10.114.0.0/24")
    stays = api.network(cidr="10.115.0.0/24")
    both = create(api, networks=[doomed["id"], stays["id"]])
    only = create(api, networks=[doomed["id"]])
    everywhere = create(api)
    assert api.delete(f"/v1/networks/{doomed['id']}").status_code == 204
    got = api.get(f"/v1/dns-records/{both['id']}").get_json()
    assert got["networks"] == [stays["id"]]
    assert got["revision"] > both["revision"]
    assert networks_of(nbctl, both["id"], stays["id"]) == {stays["id"]}
    got = api.get(f"/v1/dns-records/{only['id']}").get_json()
    assert got["networks"] == []
    assert got["revision"] > only["revision"]
    assert dns_row(nbctl, only["id"]) is not None
    assert api.get(f"/v1/dns-records/{everywhere['id']}").get_json() == everywhere
    # the record can still be changed (the forgotten network is no dangling reference)
    resp = api.patch(f"/v1/dns-records/{only['id']}", {"networks": [stays["id"]]})
    assert resp.status_code == 200, resp.get_json()
    listed = api.get(f"/v1/dns-records?fqdn={both['fqdn']}").get_json()["items"]
    assert [r["networks"] for r in listed] == [[stays["id"]]]


def test_cascade_delete_with_ports_also_forgets(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.116.0.0/24", dns_domain=domain())
    port = api.port(net["id"], hostname="h1")
    auto = auto_record(api, port["id"])
    assert auto is not None
    rec = create(api, networks=[net["id"]])
    assert api.delete(f"/v1/networks/{net['id']}?cascade=true").status_code == 204
    assert api.get(f"/v1/dns-records/{rec['id']}").get_json()["networks"] == []
    assert dns_row(nbctl, auto["id"]) is None
    assert api.get(f"/v1/dns-records/{auto['id']}").status_code == 404


def test_other_tenant_cannot_touch_a_record(api: Any, other_api: Any, nbctl: Any) -> None:
    rec = create(api)
    before = dns_row(nbctl, rec["id"])
    path = f"/v1/dns-records/{rec['id']}"
    for resp in (other_api.get(path), other_api.patch(path, {"ips": ["10.9.9.9"]}),
                 other_api.delete(path)):
        assert resp.status_code == 404
    assert dns_row(nbctl, rec["id"]) == before


def test_dns_record_quota(api: Any, admin_api: Any) -> None:
    resp = admin_api.patch(f"/v1/tenants/{api.tenant}/quotas", {"dns_records": 1})
    assert resp.status_code == 200, resp.get_json()
    create(api)
    resp = api.post("/v1/dns-records", {"name": unique("r"), "fqdn": f"q.{domain()}",
                                        "ips": ["10.0.0.1"]})
    assert resp.status_code == 409
    assert "quota" in resp.get_json()["detail"]


# -- automatic records of port hostnames -----------------------------------------------------


def test_hostname_gives_automatic_record_with_ptr(api: Any, nbctl: Any) -> None:
    zone = domain()
    net = api.network(cidr="10.117.0.0/24", ipv6_cidr="fd00:117::/64", dns_domain=zone)
    other_net = api.network(cidr="10.118.0.0/24")
    port = api.port(net["id"], hostname="web1")
    rec = auto_record(api, port["id"])
    assert rec is not None
    fqdn = f"web1.{zone}"
    assert rec["auto"] is True
    assert rec["port_id"] == port["id"]
    assert rec["fqdn"] == fqdn
    assert rec["ips"] == port["ips"]
    assert rec["networks"] == [net["id"]]
    assert rec["tenant_id"] == api.tenant
    assert api.get(f"/v1/dns-records/{rec['id']}").get_json() == rec
    assert [r["id"] for r in api.get(f"/v1/dns-records?fqdn={fqdn}").get_json()["items"]] == [
        rec["id"]]
    row = dns_row(nbctl, rec["id"])
    assert row is not None
    v4, v6 = port["ips"]
    assert row["records"] == {fqdn: f"{v4} {v6}", ptr(v4): fqdn, ptr(v6): fqdn}
    assert ptr(v4) == ".".join(reversed(v4.split("."))) + ".in-addr.arpa"
    assert ptr(v6).endswith(".ip6.arpa")
    assert networks_of(nbctl, rec["id"], net["id"], other_net["id"]) == {net["id"]}


def test_no_record_without_hostname_or_dns_domain(api: Any, nbctl: Any) -> None:
    plain = api.network(cidr="10.119.0.0/24")
    named = api.network(cidr="10.120.0.0/24", dns_domain=domain())
    api.port(plain["id"], hostname="h1")
    api.port(named["id"])
    assert api.get("/v1/dns-records").get_json()["items"] == []
    assert owned(nbctl, "DNS", kind="dns-record", tenant=api.tenant) == []


def test_automatic_record_follows_the_port(api: Any, nbctl: Any) -> None:
    zone = domain()
    net = api.network(cidr="10.121.0.0/24", dns_domain=zone)
    port = api.port(net["id"], hostname="app")
    rec = auto_record(api, port["id"])
    assert rec is not None
    path = f"/v1/ports/{port['id']}"

    resp = api.patch(path, {"hostname": "app2"})
    assert resp.status_code == 200, resp.get_json()
    row = dns_row(nbctl, rec["id"])
    ip = port["ips"][0]
    assert row is not None and row["records"] == {f"app2.{zone}": ip, ptr(ip): f"app2.{zone}"}
    got = api.get(f"/v1/dns-records/{rec['id']}").get_json()
    assert got["fqdn"] == f"app2.{zone}" and got["revision"] > rec["revision"]
    # the old name is free for a user record
    create(api, f"app.{zone}")

    resp = api.patch(path, {"ips": ["10.121.0.99"]})
    assert resp.status_code == 200, resp.get_json()
    row = dns_row(nbctl, rec["id"])
    assert row is not None and row["records"] == {f"app2.{zone}": "10.121.0.99",
                                                  ptr("10.121.0.99"): f"app2.{zone}"}
    assert api.get(f"/v1/dns-records/{rec['id']}").get_json()["ips"] == ["10.121.0.99"]

    resp = api.patch(path, {"hostname": None})
    assert resp.status_code == 200, resp.get_json()
    assert dns_row(nbctl, rec["id"]) is None
    assert auto_record(api, port["id"]) is None
    assert row["_uuid"] not in linked(nbctl, net["id"])

    resp = api.patch(path, {"hostname": "back"})
    assert resp.status_code == 200, resp.get_json()
    again = auto_record(api, port["id"])
    assert again is not None and again["fqdn"] == f"back.{zone}"
    assert networks_of(nbctl, again["id"], net["id"]) == {net["id"]}

    assert api.delete(path).status_code == 204
    assert dns_row(nbctl, again["id"]) is None
    assert auto_record(api, port["id"]) is None


def test_network_dns_domain_change_updates_automatic_records(api: Any, nbctl: Any) -> None:
    zone, new_zone = domain(), domain()
    net = api.network(cidr="10.122.0.0/24", dns_domain=zone)
    ports = [api.port(net["id"], hostname=f"h{i}") for i in range(2)]
    bare = api.port(net["id"])
    recs = [auto_record(api, p["id"]) for p in ports]
    assert all(recs)
    resp = api.patch(f"/v1/networks/{net['id']}", {"dns_domain": new_zone})
    assert resp.status_code == 200, resp.get_json()
    for i, (port, rec) in enumerate(zip(ports, recs, strict=True)):
        assert rec is not None
        row = dns_row(nbctl, rec["id"])
        ip = port["ips"][0]
        assert row is not None
        assert row["records"] == {f"h{i}.{new_zone}": ip, ptr(ip): f"h{i}.{new_zone}"}
        assert api.get(f"/v1/dns-records/{rec['id']}").get_json()["fqdn"] == f"h{i}.{new_zone}"
    assert auto_record(api, bare["id"]) is None
    resp = api.patch(f"/v1/networks/{net['id']}", {"dns_domain": None})
    assert resp.status_code == 200, resp.get_json()
    for rec in recs:
        assert rec is not None and dns_row(nbctl, rec["id"]) is None
    assert api.get("/v1/dns-records").get_json()["items"] == []
    # and a domain again brings them back
    resp = api.patch(f"/v1/networks/{net['id']}", {"dns_domain": zone})
    assert resp.status_code == 200, resp.get_json()
    assert {r["fqdn"] for r in api.get("/v1/dns-records").get_json()["items"]} == {
        f"h0.{zone}", f"h1.{zone}"}


def test_dns_domain_change_onto_a_taken_name_is_409_naming_dns_domain(api: Any,
                                                                      nbctl: Any) -> None:
    zone = domain()
    net = api.network(cidr="10.130.0.0/24")
    port = api.port(net["id"], hostname="web")
    create(api, f"web.{zone}")
    resp = api.patch(f"/v1/networks/{net['id']}", {"dns_domain": zone})
    assert resp.status_code == 409, resp.get_json()
    assert "dns_domain" in errors_of(resp), resp.get_json()  # the field the client sent
    assert api.get(f"/v1/networks/{net['id']}").get_json().get("dns_domain") is None
    assert auto_record(api, port["id"]) is None


def test_automatic_records_are_read_only(api: Any, nbctl: Any) -> None:
    net = api.network(cidr="10.123.0.0/24", dns_domain=domain())
    port = api.port(net["id"], hostname="ro")
    rec = auto_record(api, port["id"])
    assert rec is not None
    before = dns_row(nbctl, rec["id"])
    path = f"/v1/dns-records/{rec['id']}"
    for resp in (api.patch(path, {"ips": ["10.123.0.200"]}),
                 api.patch(path, {"description": "mine now"}),
                 api.delete(path)):
        assert resp.status_code == 409, resp.get_json()
        assert resp.mimetype == "application/problem+json"
    assert dns_row(nbctl, rec["id"]) == before
    assert api.get(path).get_json() == rec


def test_user_record_cannot_take_an_automatic_name(api: Any) -> None:
    zone = domain()
    net = api.network(cidr="10.124.0.0/24", dns_domain=zone)
    api.port(net["id"], hostname="taken")
    resp = api.post("/v1/dns-records", {"name": unique("r"), "fqdn": f"taken.{zone}",
                                        "ips": ["10.0.0.1"]})
    assert resp.status_code == 409
    assert "fqdn" in errors_of(resp)
    rec = create(api, f"free.{zone}")
    resp = api.patch(f"/v1/dns-records/{rec['id']}", {"fqdn": f"taken.{zone}"})
    assert resp.status_code == 409
    assert "fqdn" in errors_of(resp)


def test_hostname_cannot_take_a_user_records_name(api: Any, nbctl: Any) -> None:
    zone = domain()
    net = api.network(cidr="10.125.0.0/24", dns_domain=zone)
    create(api, f"mine.{zone}")
    resp = api.post(f"/v1/networks/{net['id']}/ports", {"name": unique("p"),
                                                        "hostname": "mine"})
    assert resp.status_code == 409
    assert "hostname" in errors_of(resp)
    assert api.get(f"/v1/ports?network_id={net['id']}").get_json()["items"] == []
    port = api.port(net["id"], hostname="other")
    resp = api.patch(f"/v1/ports/{port['id']}", {"hostname": "mine"})
    assert resp.status_code == 409
    assert api.get(f"/v1/ports/{port['id']}").get_json()["hostname"] == "other"


def test_two_ports_cannot_share_a_hostname_in_one_zone(api: Any) -> None:
    zone = domain()
    net1 = api.network(cidr="10.127.0.0/24", dns_domain=zone)
    net2 = api.network(cidr="10.128.0.0/24", dns_domain=zone)
    first = api.port(net1["id"], hostname="dup")
    for net in (net1, net2):
        resp = api.post(f"/v1/networks/{net['id']}/ports", {"name": unique("p"),
                                                            "hostname": "dup"})
        assert resp.status_code == 409, resp.get_json()
        assert "hostname" in errors_of(resp)
    rec = auto_record(api, first["id"])
    assert rec is not None and rec["fqdn"] == f"dup.{zone}"
    # the same hostname under another domain is fine
    other = api.network(cidr="10.129.0.0/24", dns_domain=domain())
    api.port(other["id"], hostname="dup")


def test_automatic_records_are_per_tenant(api: Any, other_api: Any) -> None:
    net = api.network(cidr="10.126.0.0/24", dns_domain=domain())
    port = api.port(net["id"], hostname="secret")
    rec = auto_record(api, port["id"])
    assert rec is not None
    assert other_api.get("/v1/dns-records").get_json()["items"] == []
    assert other_api.get(f"/v1/dns-records/{rec['id']}").status_code == 404


# -- names OVN cannot answer or the gateway answers itself ---------------------------------


def _long_zone(length: int) -> str:
    """A valid domain of exactly LENGTH characters (labels of at most 49)."""
    labels, left = [], length
    while left > 0:
        size = min(49, left if left <= 49 else left - 2 if left - 50 < 1 else 49)
        labels.append("z" * size)
        left -= size + 1
    name = ".".join(labels)
    assert len(name) == length, (len(name), length)
    return name


def test_automatic_name_longer_than_253_is_400_naming_hostname(api: Any, nbctl: Any) -> None:
    zone = _long_zone(240)
    net = api.network(cidr="10.131.0.0/24", dns_domain=zone)
    ok = api.port(net["id"], hostname="h" * 12)  # 12 + 1 + 240 = 253: the longest name
    rec = auto_record(api, ok["id"])
    assert rec is not None and len(rec["fqdn"]) == 253
    resp = api.post(f"/v1/networks/{net['id']}/ports",
                    {"name": unique("p"), "hostname": "h" * 13})
    assert resp.status_code == 400, resp.get_json()
    assert "hostname" in errors_of(resp), resp.get_json()
    assert len(api.get(f"/v1/networks/{net['id']}/ports").get_json()["items"]) == 1
    resp = api.patch(f"/v1/ports/{ok['id']}", {"hostname": "h" * 20})
    assert resp.status_code == 400, resp.get_json()
    assert "hostname" in errors_of(resp), resp.get_json()
    assert auto_record(api, ok["id"]) == rec


def test_dns_domain_that_makes_an_automatic_name_too_long_is_400(api: Any) -> None:
    net = api.network(cidr="10.132.0.0/24", dns_domain=domain())
    port = api.port(net["id"], hostname="h" * 63)
    before = api.get(f"/v1/networks/{net['id']}").get_json()
    resp = api.patch(f"/v1/networks/{net['id']}", {"dns_domain": _long_zone(190)})
    assert resp.status_code == 400, resp.get_json()
    assert "dns_domain" in errors_of(resp), resp.get_json()
    assert api.get(f"/v1/networks/{net['id']}").get_json() == before
    rec = auto_record(api, port["id"])
    assert rec is not None and rec["fqdn"] == f"{'h' * 63}.{before['dns_domain']}"
    # 63 + 1 + 189 = 253 is fine
    resp = api.patch(f"/v1/networks/{net['id']}", {"dns_domain": _long_zone(189)})
    assert resp.status_code == 200, resp.get_json()


@pytest.mark.parametrize("fqdn", ["2.0.0.10.in-addr.arpa", "in-addr.arpa",
                                  "x.IN-ADDR.ARPA.", "0.0.0.0.0.0.0.0.d.f.ip6.arpa",
                                  "ip6.arpa"])
def test_reverse_names_are_400_for_user_records(api: Any, fqdn: str) -> None:
    resp = api.post("/v1/dns-records", {"name": unique("r"), "fqdn": fqdn, "ips": ["10.0.0.1"]})
    assert resp.status_code == 400, resp.get_json()
    assert "fqdn" in errors_of(resp), resp.get_json()
    rec = create(api)
    resp = api.patch(f"/v1/dns-records/{rec['id']}", {"fqdn": fqdn})
    assert resp.status_code == 400, resp.get_json()
    assert "fqdn" in errors_of(resp), resp.get_json()
    assert api.get(f"/v1/dns-records/{rec['id']}").get_json() == rec


def test_names_that_only_look_reverse_are_fine(api: Any) -> None:
    for fqdn in ("in-addr.arpa.example", "my-in-addr.arpa", "ip6.arpa.example.com"):
        assert create(api, fqdn)["fqdn"] == fqdn


@pytest.mark.parametrize(("body", "field"), [
    ({"fqdn": "a\u0000b.example"}, "fqdn"),
    ({"description": "nul \u0000 inside"}, "description"),
    ({"description": "lone \ud800 surrogate"}, "description"),
    ({"name": "r\u0000"}, "name"),
    ({"labels": {"app": "\udfff"}}, "labels"),
    ({"labels": {"\ud800": "x"}}, "labels"),
])
def test_nul_and_lone_surrogates_are_400(api: Any, body: dict[str, Any], field: str) -> None:
    payload = {"name": unique("r"), "fqdn": f"ok.{domain()}", "ips": ["10.0.0.1"], **body}
    resp = api.post("/v1/dns-records", payload)
    assert resp.status_code == 400, resp.get_json()
    errors = errors_of(resp)
    assert names_field(errors, field), errors
    assert all(not any("\ud800" <= c <= "\udfff" for c in key) for key in errors), errors
    rec = create(api)
    resp = api.patch(f"/v1/dns-records/{rec['id']}", body)
    assert resp.status_code == 400, resp.get_json()
    assert names_field(errors_of(resp), field), resp.get_json()


def test_a_reverse_zone_is_no_dns_domain(api: Any) -> None:
    """Automatic records would put A records on PTR names the gateway answers itself."""
    resp = api.post("/v1/networks", {"name": unique("n"), "cidr": "10.133.0.0/24",
                                     "dns_domain": "0.133.10.in-addr.arpa"})
    assert resp.status_code == 400, resp.get_json()
    assert "dns_domain" in errors_of(resp), resp.get_json()
    net = api.network(cidr="10.133.0.0/24")
    resp = api.patch(f"/v1/networks/{net['id']}", {"dns_domain": "ip6.arpa"})
    assert resp.status_code == 400, resp.get_json()
    assert "dns_domain" in errors_of(resp), resp.get_json()

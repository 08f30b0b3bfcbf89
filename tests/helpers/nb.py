"""Reading the OVN northbound database through ovn-nbctl, for assertions on the OVN side."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

PREFIX = "ovn-nb-gateway:"
NbCtl = Callable[..., str]


def _decode(value: Any) -> Any:
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
        tag, payload = value
        if tag == "set":
            return [_decode(v) for v in payload]
        if tag == "map":
            return {_decode(k): _decode(v) for k, v in payload}
        if tag in ("uuid", "named-uuid"):
            return payload
    return value


def as_list(value: Any) -> list[Any]:
    """OVSDB sets of one element come back unwrapped; make every set a list."""
    return value if isinstance(value, list) else [value]


def rows(nbctl: NbCtl, table: str, *conditions: str) -> list[dict[str, Any]]:
    """All rows of TABLE (matching `column=value` conditions), columns decoded."""
    args = ["--format=json", "find", table, *conditions] if conditions else \
        ["--format=json", "list", table]
    out = json.loads(nbctl(*args))
    return [{h: _decode(v) for h, v in zip(out["headings"], data, strict=True)}
            for data in out["data"]]


def owned(nbctl: NbCtl, table: str, **keys: str) -> list[dict[str, Any]]:
    """Rows whose external_ids carry the gateway keys given (kind=, id=, parent=, tenant=)."""
    conds = [f'external_ids:"{PREFIX}{k}"="{v}"' for k, v in keys.items()]
    return rows(nbctl, table, *conds)


def one_or_none(found: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The single row found, None if there is none; more than one is a test failure."""
    assert len(found) <= 1, found
    return found[0] if found else None


def owned_one(nbctl: NbCtl, table: str, **keys: str) -> dict[str, Any] | None:
    return one_or_none(owned(nbctl, table, **keys))


def switch(nbctl: NbCtl, network_id: str) -> dict[str, Any] | None:
    return owned_one(nbctl, "Logical_Switch", kind="network", id=network_id)


def lsp(nbctl: NbCtl, port_id: str) -> dict[str, Any] | None:
    return one_or_none(rows(nbctl, "Logical_Switch_Port", f"name={port_id}"))


def dhcp_rows(nbctl: NbCtl, owner_id: str) -> list[dict[str, Any]]:
    """DHCP_Options rows the gateway keeps for a network or a port (its parent key)."""
    return owned(nbctl, "DHCP_Options", parent=owner_id)


def dhcp_row(nbctl: NbCtl, row_uuid: str) -> dict[str, Any]:
    out = json.loads(nbctl("--format=json", "list", "DHCP_Options", row_uuid))
    assert len(out["data"]) == 1, out
    return {h: _decode(v) for h, v in zip(out["headings"], out["data"][0], strict=True)}


def v4_dhcp_of_network(nbctl: NbCtl, network_id: str) -> dict[str, Any]:
    found = [r for r in dhcp_rows(nbctl, network_id) if ":" not in r["cidr"]]
    assert len(found) == 1, found
    return found[0]


def dump(nbctl: NbCtl, table: str, record: str) -> str:
    """The whole `ovn-nbctl list` text of one record, for before/after comparisons."""
    return nbctl("list", table, record)

"""The registration of every resource kind: one line per kind. The app, the replicated
tables and columns, the scope checks and the isolation tests are built from this list."""

from __future__ import annotations

from typing import Any

from gateway.api import (
    audit,
    connectivity,
    dns,
    gateways,
    load_balancers,
    networks,
    policies,
    ports,
    tenants,
)
from gateway.api.common import Blueprint
from gateway.api.crud import Kind

KINDS: tuple[Kind[Any], ...] = (
    networks.KIND,
    ports.KIND,
    dns.KIND,
    policies.KIND,
    gateways.EXTERNAL_KIND,
    gateways.GATEWAY_KIND,
    gateways.FLOATING_KIND,
    load_balancers.KIND,
)
# Blueprints only admins may call.
ADMIN_BLUEPRINTS: tuple[Blueprint, ...] = (tenants.blp, audit.blp,)
# Blueprints that only read, whatever the method (a POST that computes an answer), with
# the scope family whose read scope they need.
READ_BLUEPRINTS: tuple[tuple[Blueprint, str], ...] = ((connectivity.blp, connectivity.FAMILY),)


def blueprints() -> list[Blueprint]:
    found: list[Blueprint] = []
    for blp in [kind.blueprint for kind in KINDS] + list(ADMIN_BLUEPRINTS) + \
            [blp for blp, _ in READ_BLUEPRINTS]:
        if blp not in found:
            found.append(blp)
    return found


def families() -> dict[str, str | None]:
    """Scope family of each blueprint (None: admin only)."""
    found: dict[str, str | None] = {blp.name: None for blp in ADMIN_BLUEPRINTS}
    for kind in KINDS:
        if found.setdefault(kind.blueprint.name, kind.family) != kind.family:
            raise ValueError(f"blueprint {kind.blueprint.name} serves two scope families")
    found.update({blp.name: family for blp, family in READ_BLUEPRINTS})
    return found


def read_only() -> frozenset[str]:
    """Blueprints whose every method needs only the read scope of their family."""
    return frozenset(blp.name for blp, _ in READ_BLUEPRINTS)


def admin_writes() -> frozenset[str]:
    """Blueprints whose reads follow the scope family but whose writes need admin."""
    return frozenset(kind.blueprint.name for kind in KINDS if kind.service.admin_writes)

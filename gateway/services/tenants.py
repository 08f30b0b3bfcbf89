"""The tenant row: one port group per tenant holding all its ports.

It doubles as the tenant's write lock: every create verifies and bumps its lock counter, so
two gateway processes creating in one tenant at once cannot both pass the name, idempotency
and quota checks; the loser's transaction is re-run against the winner's result. It also
stores the tenant's quota overrides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.errors import Conflict
from gateway.ovn import naming, tables
from gateway.ovn.transaction import Txn, bump_counter

TABLE = tables.PG
KIND = "tenant"


def lock(t: Txn, tenant: str) -> Any:
    """The tenant's row, verified and bumped once per transaction however often asked."""
    if tenant in t.locked:
        return t.locked[tenant]
    t.locked[tenant] = row = _lock(t, tenant)
    return row


def _lock(t: Txn, tenant: str) -> Any:
    row = t.get(TABLE, KIND, tenant)
    if row is None:
        # A concurrent creator elsewhere hits the unique name index; the transaction
        # wrapper re-runs us against a replica that then holds its row.
        row = t.insert(TABLE, name=naming.tenant_group_name(tenant),
                       external_ids={**naming.owner_ids(KIND, tenant, tenant),
                                     naming.LOCK: "1"})
        return row
    bump_counter(row, naming.LOCK)
    return row


def quota_of(tenant_row: Any, family: str, defaults: Mapping[str, int]) -> int:
    raw = (tenant_row.external_ids or {}).get(naming.QUOTA + family)
    return int(raw) if raw is not None else defaults[family]


def check_quota(tenant_row: Any, family: str, used: int, defaults: Mapping[str, int]) -> None:
    limit = quota_of(tenant_row, family, defaults)
    if used >= limit:
        raise Conflict(f"quota exceeded: the tenant has {used} of {limit} {family}")

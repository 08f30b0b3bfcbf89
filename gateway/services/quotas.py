"""Per-tenant quotas (admin): overrides live on the tenant row, defaults in the settings."""

from __future__ import annotations

from typing import Any

from gateway.config import Settings
from gateway.errors import Conflict
from gateway.ovn import naming
from gateway.ovn.connection import Northbound
from gateway.ovn.index import committed_external_ids
from gateway.ovn.transaction import Txn
from gateway.services import tenants
from gateway.services.resources import Resource


class QuotaService:
    def __init__(self, nb: Northbound, settings: Settings, resources: list[Resource]) -> None:
        self.nb, self.settings = nb, settings
        # Which resource kind counts against each quota; families not built yet count zero.
        self.counted = {r.quota: r for r in resources}

    def _overrides(self, tenant: str) -> dict[str, int]:
        entry = self.nb.index(tenants.TABLE).by_id(tenants.KIND, tenant)
        row = self.nb.row(tenants.TABLE, entry.row_uuid) if entry else None
        ids = (committed_external_ids(row) if row is not None else None) or {}
        return {k[len(naming.QUOTA):]: int(v) for k, v in ids.items()
                if k.startswith(naming.QUOTA)}

    def get(self, tenant: str) -> dict[str, int]:
        self.nb.ensure_ready()
        return {**self.settings.quotas, **self._overrides(tenant)}

    def usage(self, tenant: str) -> dict[str, int]:
        self.nb.ensure_ready()
        counts = dict.fromkeys(self.settings.quotas, 0)
        for family, resource in self.counted.items():
            counts[family] = resource.used(self.nb.index(resource.table), tenant)
        return counts

    def update(self, tenant: str, patch: dict[str, Any]) -> dict[str, int]:
        def change(t: Txn) -> dict[str, int]:
            row = tenants.lock(t, tenant)
            for family, limit in patch.items():
                key = naming.QUOTA + family
                if limit is None:
                    row.delkey("external_ids", key)
                    continue
                resource = self.counted.get(family)
                used = resource.used(t.indexes[resource.table], tenant) if resource else 0
                if limit < used:
                    raise Conflict.field(family, f"below current usage ({used})")
                row.setkey("external_ids", key, str(limit))
            return {}

        self.nb.transact(change, "update_quotas")
        return self.get(tenant)

"""Ownership keys in external_ids and the names of rows the gateway writes.

Every row the gateway writes carries `ovn-nb-gateway:kind`, `:id` and `:tenant`; a row
without them belongs to someone else and is never read, changed or deleted.
"""

from __future__ import annotations

PREFIX = "ovn-nb-gateway:"
KIND = PREFIX + "kind"
ID = PREFIX + "id"
TENANT = PREFIX + "tenant"
NAME = PREFIX + "name"
PARENT = PREFIX + "parent"
IDEMPOTENCY = PREFIX + "idempotency"
REVISION = PREFIX + "revision"
DOC = PREFIX + "doc"
LOCK = PREFIX + "lock"
QUOTA = PREFIX + "quota:"
# Secondary lookup keys: `ovn-nb-gateway:key:<name>` = value, indexed per kind and tenant.
KEY = PREFIX + "key:"


def switch_name(network_id: str) -> str:
    return f"ovngw-{network_id}"


def tenant_group_name(tenant: str) -> str:
    # Port group names are match identifiers: letters, digits and underscores only.
    return "ovngw_tenant_" + tenant.replace("-", "_")


def owner_ids(kind: str, resource_id: str, tenant: str, **extra: str) -> dict[str, str]:
    ids = {KIND: kind, ID: resource_id, TENANT: tenant}
    ids.update({PREFIX + k: v for k, v in extra.items()})
    return ids

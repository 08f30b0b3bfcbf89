"""The services of one app, built from the registered kinds, and what they replicate."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from gateway.config import Settings
from gateway.ovn import conditions
from gateway.ovn.connection import Northbound
from gateway.ovn.index import Replica
from gateway.services.lifecycle import Hooks, Listener
from gateway.services.quotas import QuotaService
from gateway.services.resources import Resource

S = TypeVar("S")


def replica(kinds: Iterable[type[Resource]]) -> Replica:
    """The union of what the kinds read and write."""
    columns: dict[str, frozenset[str]] = {}
    documents: dict[str, frozenset[str] | None] = {}
    kinds = list(kinds)
    for cls in kinds:
        for table, wanted in cls.monitors.items():
            columns[table] = columns.get(table, frozenset()) | wanted
        documents[cls.kind] = cls.index_fields
    owners = conditions.kinds_by_table(kinds)
    return Replica(columns, documents,
                   {t: k for t, k in owners.items()
                    if t in columns and t not in conditions.UNSTAMPED})


class Services:
    """One service per kind, sharing one set of lifecycle hooks; found by type."""

    def __init__(self, nb: Northbound, settings: Settings,
                 kinds: Iterable[type[Resource]]) -> None:
        self.hooks = Hooks()
        self._by_type: dict[type, object] = {}
        resources = []
        for cls in kinds:
            resource = cls(nb, settings, self.hooks)
            if isinstance(resource, Listener):
                self.hooks.register(resource)
            self._by_type[cls] = resource
            resources.append(resource)
        self._by_type[QuotaService] = QuotaService(nb, settings, resources)
        self.workers = [w for resource in resources for w in resource.background()]

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def of(self, cls: type[S]) -> S:
        found = self._by_type[cls]
        assert isinstance(found, cls)
        return found

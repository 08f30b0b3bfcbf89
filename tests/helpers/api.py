"""The gateway's HTTP API in tests: tokens, unique names, and a JSON client with one token."""

from __future__ import annotations

import json
import uuid
from typing import Any

from gateway.auth import mint

SECRET = "test-secret-" + "x" * 40


def token(tenant: str, scope: str = "read write", sub: str = "tester", ttl: int = 600,
          secret: str = SECRET) -> str:
    return mint(secret, tenant, scope, sub, ttl)


class ApiClient:
    """Thin JSON helper around Flask's test client with one bearer token."""

    def __init__(self, client: Any, tenant: str, scope: str = "read write") -> None:
        self.client, self.tenant, self.scope = client, tenant, scope
        self.headers = {"Authorization": f"Bearer {token(tenant, scope)}"}

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        hdrs = {**self.headers, **(headers or {})}
        if body is not None:
            kwargs["data"] = json.dumps(body)
            kwargs.setdefault("content_type", "application/merge-patch+json"
                              if method == "PATCH" else "application/json")
        return self.client.open(path, method=method, headers=hdrs, **kwargs)

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, body, **kw)

    def patch(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("PATCH", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)

    # Convenience creators that assert success.
    def network(self, name: str | None = None, cidr: str = "10.0.0.0/24", **fields: Any) -> Any:
        resp = self.post("/v1/networks", {"name": name or unique("net"), "cidr": cidr, **fields})
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()

    def port(self, network_id: str, name: str | None = None, **fields: Any) -> Any:
        resp = self.post(f"/v1/networks/{network_id}/ports",
                         {"name": name or unique("port"), **fields})
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()


def post_created(api: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST that must answer 201: the created resource."""
    resp = api.post(path, body)
    assert resp.status_code == 201, resp.get_json()
    return dict(resp.get_json())


def patch_ok(api: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """Merge-patch that must answer 200: the changed resource."""
    resp = api.patch(path, body)
    assert resp.status_code == 200, resp.get_json()
    return dict(resp.get_json())


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"

"""A Python client of the gateway's HTTP API: standard library HTTP, plain dict documents.

    from gateway.client import Client
    gw = Client("http://127.0.0.1:8080", token)
    net = gw.networks.create({"name": "web", "cidr": "10.0.0.0/24"})
    for port in gw.ports.list(network_id=net["id"], label={"app": "web"}):
        ...

Retries: a request is sent again after a 503 or 429 (waiting `Retry-After`) and after a
connection that could not be opened, within `retries` attempts and `retry_time` seconds.
Reads and creates are also repeated when an attempt's outcome is unknown (a 503 of type
outcome-unknown, a lost connection): creates always carry an `Idempotency-Key`, the same
on every attempt, so a repeated create answers the resource the first attempt made.
Changes and deletes are not repeated then: they raise, and the caller reads again.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import re
import ssl
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

Document = dict[str, Any]
OUTCOME_UNKNOWN = "urn:ovn-nb-gateway:problem:outcome-unknown"
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
USER_AGENT = "ovngw/0.1"


class ClientError(Exception):
    """Everything this client raises."""


class Unreachable(ClientError):
    """The gateway could not be reached, or the connection broke before an answer."""


class AmbiguousName(ClientError):
    """A name matches several resources (an admin sees every tenant's): use the id."""


class ProblemError(ClientError):
    """An error answer of the gateway: its problem document (RFC 9457)."""

    status_code = 0

    def __init__(self, status: int, problem: Mapping[str, Any],
                 headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.problem = dict(problem)
        self.headers = dict(headers or {})
        self.type = str(problem.get("type", "about:blank"))
        self.title = str(problem.get("title", ""))
        self.detail = str(problem.get("detail", ""))
        self.instance = problem.get("instance")
        raw_errors = problem.get("errors") or {}
        self.errors: dict[str, list[str]] = {
            str(k): [str(m) for m in v] if isinstance(v, list) else [str(v)]
            for k, v in (raw_errors.items() if isinstance(raw_errors, dict) else [])}
        self.request_id = problem.get("request_id") or self.headers.get("x-request-id")
        super().__init__(f"{status} {self.title}: {self.message}")

    @property
    def message(self) -> str:
        """What went wrong, naming the fields: `cidr: not a valid network`."""
        if self.errors:
            return "; ".join(f"{field}: {', '.join(msgs)}" for field, msgs in self.errors.items())
        return self.detail or self.title

    @property
    def retry_after(self) -> float | None:
        return _retry_after(self.headers.get("retry-after"))


class BadRequest(ProblemError):
    status_code = 400


class Unauthorized(ProblemError):
    status_code = 401


class Forbidden(ProblemError):
    status_code = 403


class NotFound(ProblemError):
    status_code = 404


class Conflict(ProblemError):
    status_code = 409


class PreconditionFailed(ProblemError):
    status_code = 412


class Unprocessable(ProblemError):
    status_code = 422


class TooManyRequests(ProblemError):
    status_code = 429


class ServiceUnavailable(ProblemError):
    status_code = 503


class OutcomeUnknown(ServiceUnavailable):
    """A 503 for a write that may or may not have been applied."""


_ERRORS: dict[int, type[ProblemError]] = {cls.status_code: cls for cls in (
    BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed,
    Unprocessable, TooManyRequests, ServiceUnavailable)}


def problem_error(status: int, body: Any, headers: Mapping[str, str],
                  reason: str = "") -> ProblemError:
    """The exception for an error answer; a body that is no problem document (a proxy's
    page) still gives one, with the start of its text as detail."""
    if isinstance(body, dict):
        problem = body
    else:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
        problem = {"status": status, "title": reason, "detail": " ".join(text.split())[:200]}
    cls = _ERRORS.get(status, ProblemError)
    if status == 503 and problem.get("type") == OUTCOME_UNKNOWN:
        cls = OutcomeUnknown
    return cls(status, problem, headers)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def is_id(value: str) -> bool:
    """Whether VALUE is shaped like an id (a UUID); anything else is taken for a name."""
    return bool(_UUID.match(value))


def if_match_header(revision: int | str | None) -> dict[str, str]:
    """If-Match for a revision (3, "3", '"3"' or the ETag as received)."""
    if revision is None:
        return {}
    text = str(revision).strip()
    return {"If-Match": text if text.startswith(('"', "W/")) or text == "*" else f'"{text}"'}


def _query(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Query pairs: lists repeat a parameter, a `label` mapping becomes key=value pairs."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        if key == "label" and isinstance(value, Mapping):
            value = [f"{k}={v}" for k, v in value.items()]
        for item in value if isinstance(value, list | tuple) else [value]:
            pairs.append((key, str(item).lower() if isinstance(item, bool) else str(item)))
    return pairs


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: Any) -> None:
        self.status, self.headers, self.body = status, headers, body


class Client:
    """One gateway endpoint and token. Not shared between threads (use one per thread)."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 30.0,
                 retries: int = 5, retry_time: float = 60.0, ca_file: str | None = None,
                 user_agent: str = USER_AGENT) -> None:
        parsed = urllib.parse.urlsplit(url.rstrip("/"))
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ClientError(f"not an http(s) URL: {url!r}")
        self.url, self.token, self.timeout = url.rstrip("/"), token, timeout
        self.retries, self.retry_time, self.user_agent = max(1, retries), retry_time, user_agent
        self._parsed = parsed
        self._ssl = (ssl.create_default_context(cafile=ca_file)
                     if parsed.scheme == "https" else None)
        self.networks = Collection(self, "/v1/networks", "network")
        self.ports = Ports(self, "/v1/ports", "port")
        self.dns_records = Collection(self, "/v1/dns-records", "DNS record")
        self.policies = Policies(self, "/v1/policies", "policy")
        self.external_networks = Collection(self, "/v1/external-networks", "external network")
        self.gateways = Collection(self, "/v1/gateways", "gateway")
        self.floating_ips = Collection(self, "/v1/floating-ips", "floating IP")
        self.load_balancers = LoadBalancers(self, "/v1/load-balancers", "load balancer")

    # --- tenants (admin) ---------------------------------------------------------------

    def quotas(self, tenant: str) -> Document:
        return self.call("GET", f"/v1/tenants/{_seg(tenant)}/quotas")

    def update_quotas(self, tenant: str, patch: Mapping[str, Any]) -> Document:
        """Merge patch of family -> limit (None restores the default); all quotas back."""
        return self.call("PATCH", f"/v1/tenants/{_seg(tenant)}/quotas", body=patch)

    def usage(self, tenant: str) -> Document:
        return self.call("GET", f"/v1/tenants/{_seg(tenant)}/usage")

    # --- HTTP ----------------------------------------------------------------------------

    def call(self, method: str, path: str, *, query: Mapping[str, Any] | None = None,
             body: Any = None, headers: Mapping[str, str] | None = None,
             repeatable: bool | None = None) -> Any:
        """The JSON body of a successful answer (None for 204); a ProblemError otherwise."""
        return self.request(method, path, query=query, body=body, headers=headers,
                            repeatable=repeatable).body

    def request(self, method: str, path: str, *, query: Mapping[str, Any] | None = None,
                body: Any = None, headers: Mapping[str, str] | None = None,
                repeatable: bool | None = None) -> Response:
        """Send with retries. REPEATABLE: whether an attempt whose outcome is unknown may be
        sent again (default: GET, and POST with an Idempotency-Key)."""
        hdrs = {k.lower(): v for k, v in (headers or {}).items()}
        if repeatable is None:
            repeatable = method == "GET" or (method == "POST" and "idempotency-key" in hdrs)
        target = self._parsed.path + path
        if query:
            target += "?" + urllib.parse.urlencode(_query(query))
        payload = None if body is None else json.dumps(body).encode()
        deadline = time.monotonic() + self.retry_time
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._exchange(method, target, payload, hdrs)
            except ssl.SSLCertVerificationError as exc:  # no retry will change that
                raise Unreachable(f"{self.url}: {exc.verify_message or exc}") from exc
            except ConnectionRefusedError as exc:  # nothing was sent: always safe to repeat
                failure: ClientError = Unreachable(f"{self.url}: {exc.strerror or exc}")
                wait: float | None = None
            except (OSError, http.client.HTTPException) as exc:
                failure = Unreachable(f"{self.url}: {str(exc) or type(exc).__name__}")
                if not repeatable:
                    raise failure from exc
                wait = None
            else:
                if response.status < 400:
                    return response
                problem = problem_error(response.status, response.body, response.headers)
                # a 429 or a plain 503 was refused before anything was written
                refused = isinstance(problem, TooManyRequests) or (
                    isinstance(problem, ServiceUnavailable)
                    and not isinstance(problem, OutcomeUnknown))
                if not (refused or (repeatable and isinstance(problem, OutcomeUnknown))):
                    raise problem
                failure, wait = problem, problem.retry_after
            if wait is None:
                wait = min(0.5 * 2 ** (attempt - 1), 8.0)
            if attempt >= self.retries or time.monotonic() + wait > deadline:
                raise failure
            time.sleep(wait)

    def _exchange(self, method: str, target: str, payload: bytes | None,
                  headers: Mapping[str, str]) -> Response:
        host, port = self._parsed.hostname or "", self._parsed.port
        conn: http.client.HTTPConnection = (
            http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self._ssl)
            if self._ssl else http.client.HTTPConnection(host, port, timeout=self.timeout))
        hdrs = {"accept": "application/json", "user-agent": self.user_agent}
        if self.token:
            hdrs["authorization"] = f"Bearer {self.token}"
        if payload is not None:
            hdrs["content-type"] = ("application/merge-patch+json" if method == "PATCH"
                                    else "application/json")
        hdrs.update(headers)  # lower-case names, so that the caller's replace these
        try:
            conn.request(method, target, body=payload, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            got = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        body: Any = raw
        if raw and "json" in got.get("content-type", ""):
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        elif not raw:
            body = None
        if resp.status >= 400 and not isinstance(body, dict):
            body = problem_error(resp.status, body, got, resp.reason).problem
        return Response(resp.status, got, body)


def _seg(value: str) -> str:
    return urllib.parse.quote(str(value), safe="")


class Collection:
    """One kind of resource: `/v1/<kind>` and `/v1/<kind>/{id}`."""

    def __init__(self, client: Client, path: str, noun: str) -> None:
        self.client, self.path, self.noun = client, path, noun

    def list(self, *, page_size: int | None = None, **filters: Any) -> Iterator[Document]:
        """Every matching item, following `next_cursor` page by page. Filters are the
        list's query parameters: name=, label= (a mapping or "k=v" strings), tenant= (admins),
        and the kind's own (network_id=, port_id=, fqdn=)."""
        return self._pages(self.path, page_size, filters)

    def _pages(self, path: str, page_size: int | None,
               filters: Mapping[str, Any]) -> Iterator[Document]:
        cursor = None
        while True:
            page = self.client.call("GET", path, query={**filters, "limit": page_size,
                                                        "cursor": cursor})
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def get(self, id: str) -> Document:
        return dict(self.client.call("GET", f"{self.path}/{_seg(id)}"))

    def create(self, body: Mapping[str, Any], *, idempotency_key: str | None = None) -> Document:
        """Create; the Idempotency-Key (a new uuid4 unless given) is sent on every attempt."""
        return self._create(self.path, body, idempotency_key)

    def _create(self, path: str, body: Mapping[str, Any], key: str | None) -> Document:
        headers = {"Idempotency-Key": key or str(uuid.uuid4())}
        return dict(self.client.call("POST", path, body=dict(body), headers=headers))

    def update(self, id: str, patch: Mapping[str, Any], *,
               if_match: int | str | None = None) -> Document:
        """A JSON merge patch: None removes a field; lists replace the stored list."""
        return dict(self.client.call("PATCH", f"{self.path}/{_seg(id)}", body=dict(patch),
                                     headers=if_match_header(if_match)))

    def delete(self, id: str, *, if_match: int | str | None = None, **query: Any) -> None:
        """Delete; QUERY for the kind's options (cascade=True for a network)."""
        self.client.call("DELETE", f"{self.path}/{_seg(id)}", query=query,
                         headers=if_match_header(if_match))

    def find(self, name: str, *, tenant: str | None = None) -> Document | None:
        """The resource named NAME (the list's `name` filter), or None."""
        found = list(self.list(name=name, tenant=tenant))
        if len(found) > 1:
            tenants = ", ".join(sorted(str(doc.get("tenant_id")) for doc in found))
            raise AmbiguousName(f"{len(found)} {self.noun}s are named {name!r} (tenants "
                                f"{tenants}); give the id, or the tenant")
        return found[0] if found else None

    def resolve(self, name_or_id: str, *, tenant: str | None = None,
                field: str | None = None) -> str:
        """The id of a resource given by id (returned as is) or by name. A name that matches
        nothing raises NotFound naming FIELD (default: the kind)."""
        if is_id(name_or_id):
            return name_or_id.lower()
        doc = self.find(name_or_id, tenant=tenant)
        if doc is None:
            where = field or self.noun.replace(" ", "_").lower()
            message = f"no {self.noun} named {name_or_id!r}"
            raise NotFound(404, {"type": "about:blank", "title": "Not Found", "status": 404,
                                 "detail": f"{where}: {message}", "errors": {where: [message]}})
        return str(doc["id"])


class Ports(Collection):
    """Ports are created under their network; everything else is `/v1/ports`."""

    def create(self, body: Mapping[str, Any], *, idempotency_key: str | None = None,
               network_id: str | None = None) -> Document:
        network = network_id or body.get("network_id")
        if not network:
            raise ClientError("a port is created on a network: give network_id")
        rest = {k: v for k, v in body.items() if k != "network_id"}
        return self._create(f"/v1/networks/{_seg(str(network))}/ports", rest, idempotency_key)


class Policies(Collection):
    def rules(self, id: str) -> Document:
        """The policy's OVN rows: port group, address sets and ACLs."""
        return dict(self.client.call("GET", f"{self.path}/{_seg(id)}/rules"))


class LoadBalancers(Collection):
    """Load balancers, and their backends one at a time (`/backends`)."""

    def add_backend(self, id: str, backend: Mapping[str, Any], *,
                    if_match: int | str | None = None) -> Document:
        """Add {"ip": ..., "port": optional}. A plain 503 is retried; an unknown outcome
        raises (a repeat could answer 409 `already a backend`)."""
        return dict(self.client.call("POST", f"{self.path}/{_seg(id)}/backends",
                                     body=dict(backend), headers=if_match_header(if_match),
                                     repeatable=False))

    def get_backend(self, id: str, ip: str) -> Document:
        return dict(self.client.call("GET", f"{self.path}/{_seg(id)}/backends/{_seg(ip)}"))

    def remove_backend(self, id: str, ip: str, *, port: int | None = None,
                       if_match: int | str | None = None) -> None:
        """Remove the backends of IP (only the one with this `port`, when given)."""
        self.client.call("DELETE", f"{self.path}/{_seg(id)}/backends/{_seg(ip)}",
                         query={"port": port}, headers=if_match_header(if_match))

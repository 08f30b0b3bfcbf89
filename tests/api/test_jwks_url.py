"""Tokens from an identity provider: `ovn-nb-gateway serve` (gunicorn, one worker) against
a JWKS URL or an OIDC issuer served by a loopback key server, whose keys are rotated, which
fails in every way it can, and whose every hit is counted.

What callers see (docs/identity-providers.md): 200 with a published key; 401 for a kid the
fetched set lacks; 503 with Retry-After when no key set could be fetched or the kid is
unknown while the key server fails; never a 500, never a token accepted without its key.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from gateway.auth import mint

from helpers.api import unique
from helpers.keyserver import DISCOVERY_PATH, JWKS_PATH, KeyServer, Signer, key_server
from helpers.serving import Served, gateway_env, serving

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def signer() -> Signer:
    s = Signer()
    for kid in ("k1", "k2", "k3", "stranger"):
        s.add(kid)
    s.add("rsa", "RSA")
    return s


@pytest.fixture
def idp(signer: Signer) -> Iterator[KeyServer]:
    with key_server() as server:
        server.keys = [signer.jwk("k1")]
        yield server


@pytest.fixture
def tenant() -> str:
    return unique("idp")


def idp_gateway(nb_sandbox: Any, **settings: str) -> Any:
    """serve with only the identity provider's keys (no HS256 secret)."""
    env = gateway_env(nb_sandbox.nb_unix, "unused", **settings)
    del env["GATEWAY_JWT_SECRET"]
    return serving(env)


def call(served: Served, token: str) -> requests.Response:
    return requests.get(f"{served.base}/v1/networks",
                        headers={"Authorization": f"Bearer {token}"}, timeout=30)


def ok(served: Served, token: str) -> None:
    resp = call(served, token)
    assert resp.status_code == 200, (resp.status_code, resp.text)
    assert "items" in resp.json()


def refused(served: Served, token: str, status: int = 401) -> dict[str, Any]:
    resp = call(served, token)
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"].split(";")[0] == PROBLEM
    if status == 401:
        assert resp.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    if status == 503:
        assert int(resp.headers["Retry-After"]) >= 1
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    return body


def test_rotation_new_kid_fetched_old_kid_dropped(nb_sandbox: Any, idp: KeyServer,
                                                 signer: Signer, tenant: str) -> None:
    with idp_gateway(nb_sandbox, GATEWAY_JWT_JWKS=idp.jwks_url,
                     GATEWAY_JWT_JWKS_MIN_REFETCH="1") as gw:
        assert idp.count() == 0  # nothing fetched at start-up
        old = signer.token("k1", tenant=tenant)
        ok(gw, old)
        assert idp.count() == 1
        # The IdP publishes a new key next to the old one; a token names it.
        idp.keys = [signer.jwk("k1"), signer.jwk("k2")]
        time.sleep(1.1)
        ok(gw, signer.token("k2", tenant=tenant))
        assert idp.count() == 2
        # The old key is retired. Until the gateway next fetches, its cached set still
        # holds k1; the next fetch (here: a token with a kid nobody publishes) drops it.
        idp.keys = [signer.jwk("k2")]
        ok(gw, old)
        time.sleep(1.1)
        assert "stranger" in refused(gw, signer.token("stranger", tenant=tenant))["detail"]
        assert idp.count() == 3
        refused(gw, old)  # verified before, remembered no longer than its key
        refused(gw, signer.token("k1", tenant=tenant, sub="fresh"))
        ok(gw, signer.token("k2", tenant=tenant))
        assert idp.count() == 3


def test_max_age_refresh_drops_a_retired_key(nb_sandbox: Any, idp: KeyServer,
                                            signer: Signer, tenant: str) -> None:
    idp.cache_control = "max-age=1"
    with idp_gateway(nb_sandbox, GATEWAY_JWT_JWKS=idp.jwks_url,
                     GATEWAY_JWT_JWKS_MIN_REFETCH="1") as gw:
        token = signer.token("k1", tenant=tenant)
        ok(gw, token)
        idp.keys = [signer.jwk("k2")]
        time.sleep(1.3)
        refused(gw, token)
        assert idp.count() == 2


def test_unknown_kids_refetch_once_per_interval(nb_sandbox: Any, idp: KeyServer,
                                               signer: Signer, tenant: str) -> None:
    with idp_gateway(nb_sandbox, GATEWAY_JWT_JWKS=idp.jwks_url,
                     GATEWAY_JWT_JWKS_MIN_REFETCH="5", GATEWAY_THREADS="8") as gw:
        ok(gw, signer.token("k1", tenant=tenant))
        time.sleep(5.1)
        # 16 requests at once, each with a kid the IdP does not publish, while the key
        # server is slow: one refetch, no stampede, no 5xx.
        idp.delay = 0.5
        statuses: list[int] = []

        def one(i: int) -> None:
            statuses.append(call(gw, signer.token(f"forged-{i}", signed_by="stranger",
                                                  tenant=tenant)).status_code)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert statuses == [401] * 16
        assert idp.count() == 2
        idp.delay = 0
        # Published now, but the last fetch is under 5 s old: not fetched yet.
        idp.keys = [signer.jwk("k1"), signer.jwk("k2")]
        refused(gw, signer.token("k2", tenant=tenant))
        assert idp.count() == 2
        time.sleep(5.1)
        ok(gw, signer.token("k2", tenant=tenant))
        assert idp.count() == 3


FAILURES = ["http-500", "garbage", "not-jwks", "no-usable-key", "huge", "drip", "drop",
            "redirect", "slow"]


def test_a_failing_key_server_never_gives_500_or_a_key(nb_sandbox: Any, idp: KeyServer,
                                                       signer: Signer, tenant: str) -> None:
    with idp_gateway(nb_sandbox, GATEWAY_JWT_JWKS=idp.jwks_url,
                     GATEWAY_JWT_JWKS_MIN_REFETCH="1") as gw:
        token = signer.token("k1", tenant=tenant)
        for n, mode in enumerate(FAILURES, start=1):
            idp.mode = mode
            time.sleep(1.1)
            started = time.monotonic()
            assert "identity provider" in refused(gw, token, 503)["detail"], mode
            assert time.monotonic() - started < 15, mode  # 5 s fetch timeout, then 503
            refused(gw, token, 503)  # within the interval: no new fetch
            assert idp.count() == n, mode
        # The key server recovers: the same token passes.
        idp.mode = "ok"
        time.sleep(1.1)
        ok(gw, token)
        # It fails again: the last good keys keep serving, an unknown kid is 503 (not 401:
        # the gateway cannot know the kid was not just published).
        idp.mode = "drop"
        time.sleep(1.1)
        ok(gw, signer.token("k1", tenant=tenant, sub="later"))
        refused(gw, signer.token("k2", tenant=tenant), 503)
        ok(gw, signer.token("k1", tenant=tenant, sub="still"))


def test_strict_keys_over_http(nb_sandbox: Any, idp: KeyServer, signer: Signer,
                               tenant: str) -> None:
    idp.keys = [signer.jwk("k1"), signer.jwk("rsa"), signer.jwk("k2", use="enc")]
    with idp_gateway(nb_sandbox, GATEWAY_JWT_JWKS=idp.jwks_url) as gw:
        ok(gw, signer.token("rsa", tenant=tenant))
        ok(gw, signer.token("k1", tenant=tenant))
        assert "no kid" in refused(gw, signer.token(None, signed_by="k1", tenant=tenant))[
            "detail"]
        refused(gw, signer.token("k1", signed_by="rsa", tenant=tenant))  # RS256 on an EC kid
        refused(gw, signer.token("k2", tenant=tenant))  # an encryption key
        refused(gw, signer.token("k1", signed_by="k3", tenant=tenant))  # not its signature
        # HS256 is not configured: not even keyed with the public key set.
        refused(gw, mint('{"keys": []}' + "x" * 32, tenant, "admin"))


def test_oidc_discovery(nb_sandbox: Any, idp: KeyServer, signer: Signer,
                        tenant: str) -> None:
    with idp_gateway(nb_sandbox, GATEWAY_JWT_OIDC_ISSUER=idp.issuer,
                     GATEWAY_JWT_JWKS_MIN_REFETCH="1") as gw:
        ok(gw, signer.token("k1", tenant=tenant, iss=idp.issuer))
        refused(gw, signer.token("k1", tenant=tenant))  # the issuer is the expected iss
        refused(gw, signer.token("k1", tenant=tenant, iss="https://elsewhere.example"))
        # Rotation through the discovered jwks_uri; discovery is not repeated.
        idp.keys = [signer.jwk("k2")]
        time.sleep(1.1)
        ok(gw, signer.token("k2", tenant=tenant, iss=idp.issuer))
        assert (idp.count(DISCOVERY_PATH), idp.count(JWKS_PATH)) == (1, 2)


@pytest.mark.parametrize("change", [{"discovery_issuer": "https://impostor.example/realms/t"},
                                    {"jwks_uri": "http://127.0.0.1:9/nothing-listens"}],
                         ids=["issuer-mismatch", "jwks-unreachable"])
def test_oidc_discovery_refusals(nb_sandbox: Any, idp: KeyServer, signer: Signer,
                                 tenant: str, change: dict[str, str]) -> None:
    for name, value in change.items():
        setattr(idp, name, value)
    with idp_gateway(nb_sandbox, GATEWAY_JWT_OIDC_ISSUER=idp.issuer) as gw:
        for _ in range(3):
            refused(gw, signer.token("k1", tenant=tenant, iss=idp.issuer), 503)
        assert idp.count(DISCOVERY_PATH) == 1  # rate-limited
        assert idp.count(JWKS_PATH) == 0


@pytest.mark.parametrize(("extra", "message"), [
    ({"GATEWAY_JWT_JWKS": "ftp://idp.example/certs"}, "GATEWAY_JWT_JWKS"),
    ({"GATEWAY_JWT_OIDC_ISSUER": "idp.example/realms/x"}, "GATEWAY_JWT_OIDC_ISSUER"),
    ({"GATEWAY_JWT_JWKS": "https://idp.example/certs",
      "GATEWAY_JWT_CA": "/nonexistent/ca.pem"}, "not found"),
])
def test_serve_refuses_bad_identity_provider_settings(nb_sandbox: Any, extra: dict[str, str],
                                                      message: str) -> None:
    env = gateway_env(nb_sandbox.nb_unix, "unused", GATEWAY_BIND="127.0.0.1:1", **extra)
    del env["GATEWAY_JWT_SECRET"]
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "serve"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr

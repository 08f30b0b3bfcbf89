"""Key sets from a URL or an OIDC issuer, without the gateway: JWKS parsing, the cache
lifetime, settings, and `TokenVerifier` against a real key server on loopback (refetch on an
unknown kid, its rate limit, no stampede, failures that are 503 and never a key, TLS)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway import auth
from gateway.auth import KeySet, TokenVerifier, cache_seconds, parse_jwks
from gateway.config import ConfigError, Settings, from_env
from gateway.errors import Unauthorized, Unavailable

from helpers.keyserver import (
    DISCOVERY_PATH,
    MODES,
    MOVED_PATH,
    KeyServer,
    Signer,
    key_server,
    unused_url,
)
from helpers.tls import CertificateAuthority


@pytest.fixture(scope="module")
def signer() -> Signer:
    s = Signer()
    for kid in ("ec-1", "ec-2", "ec-3"):
        s.add(kid)
    s.add("rsa-1", "RSA")
    return s


@pytest.fixture
def server(signer: Signer) -> Iterator[KeyServer]:
    with key_server() as srv:
        srv.keys = [signer.jwk("ec-1")]
        yield srv


@pytest.fixture
def short_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only where every answer fails: elsewhere a loaded CI machine must not time out.
    monkeypatch.setattr(auth, "FETCH_TIMEOUT", 0.5)


def remote(url: str, **settings: Any) -> TokenVerifier:
    return TokenVerifier(Settings(jwt_jwks=url, **{"jwt_jwks_min_refetch": 60, **settings}))


def unavailable(v: TokenVerifier, token: str) -> Unavailable:
    with pytest.raises(Unavailable) as err:
        v.verify(token)
    assert int(err.value.headers["Retry-After"]) >= 1
    return err.value


def unauthorized(v: TokenVerifier, token: str) -> Unauthorized:
    with pytest.raises(Unauthorized) as err:
        v.verify(token)
    return err.value


# -- parse_jwks -------------------------------------------------------------------------

def test_usable_keys_are_kept(signer: Signer) -> None:
    keys = parse_jwks({"keys": [signer.jwk("ec-1"), signer.jwk("rsa-1")]})
    assert [(k.kid, k.alg) for k in keys] == [("ec-1", "ES256"), ("rsa-1", "RS256")]
    bare = {k: v for k, v in signer.jwk("ec-2").items() if k not in ("use", "alg")}
    assert [(k.kid, k.alg) for k in parse_jwks({"keys": [bare]})] == [("ec-2", "ES256")]


def _rsa_jwk(bits: int, **extra: Any) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), **extra}


@pytest.mark.parametrize("change", [
    {"use": "enc"}, {"use": "SIG"}, {"key_ops": ["encrypt"]}, {"key_ops": "verify"},
    {"alg": "RS256"}, {"alg": "ES384"}, {"alg": "HS256"}, {"alg": "none"},
    {"crv": "P-384"}, {"kty": "oct", "k": "c2VjcmV0"}, {"kid": ""}, {"kid": 7},
    {"x": "not-base64!"},
], ids=str)
def test_unusable_keys_are_left_out(signer: Signer, change: dict[str, Any]) -> None:
    assert parse_jwks({"keys": [{**signer.jwk("ec-1"), **change}]}) == []


def test_private_small_and_mislabelled_rsa_keys_are_left_out() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert parse_jwks({"keys": [RSAAlgorithm.to_jwk(private, as_dict=True)]}) == []
    assert parse_jwks({"keys": [_rsa_jwk(1024, kid="small")]}) == []
    assert parse_jwks({"keys": [_rsa_jwk(2048, kid="r", alg="ES256")]}) == []
    assert parse_jwks({"keys": [_rsa_jwk(2048, kid="r", alg="PS256")]}) == []
    ec_private = ec.generate_private_key(ec.SECP256R1())
    assert parse_jwks({"keys": [ECAlgorithm.to_jwk(ec_private, as_dict=True)]}) == []


def test_a_kid_published_twice_is_ambiguous(signer: Signer) -> None:
    keys = parse_jwks({"keys": [signer.jwk("ec-1"), {**signer.jwk("ec-2"), "kid": "ec-1"},
                                signer.jwk("ec-3"), "not an object"]})
    assert [k.kid for k in keys] == ["ec-3"]


@pytest.mark.parametrize("doc", [[], "keys", {"keys": None}, {"keys": {}}, {"key": []},
                                 {"keys": [{}] * (auth.MAX_KEYS + 1)}])
def test_what_is_not_a_jwks(doc: Any) -> None:
    with pytest.raises(ValueError):
        parse_jwks(doc)


def test_keyset_needs_a_kid_when_it_has_several_keys(signer: Signer) -> None:
    one = KeySet(parse_jwks({"keys": [signer.jwk("ec-1")]}))
    assert one.lookup(None, "ES256").kid == "ec-1"
    several = KeySet(parse_jwks({"keys": [signer.jwk("ec-1"), signer.jwk("ec-2")]}))
    with pytest.raises(Unauthorized, match="no kid"):
        several.lookup(None, "ES256")
    with pytest.raises(Unauthorized, match="does not fit"):
        several.lookup("ec-1", "RS256")
    assert several.find("nope", "ES256") is None


@pytest.mark.parametrize(("header", "seconds"), [
    (None, 300), ("", 300), ("max-age=120", 120), ("public, max-age=5", 10),
    ("max-age=999999", 300), ("no-store", 10), ("no-cache, max-age=200", 10),
    ("max-age=abc", 300), ('max-age="60"', 60), ("MAX-AGE=30", 30), ("max-age=-1", 300),
    ("max-age=\u00b2", 300), ("max-age=1" + "0" * 5000, 300),
])
def test_cache_seconds(header: str | None, seconds: int) -> None:
    assert cache_seconds(header, 10, 300) == seconds


# -- settings ---------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["https://idp.example/realms/x/protocol/openid-connect/certs",
                                 "http://127.0.0.1:8080/jwks", "HTTPS://IDP.example/certs"])
def test_settings_accept_a_jwks_url(url: str) -> None:
    Settings(jwt_jwks=url).validate()


@pytest.mark.parametrize("url", ["ftp://idp.example/jwks", "file:///etc/jwks.json",
                                 "https://", "http:///jwks", "gopher://x/y"])
def test_settings_refuse_other_urls(url: str) -> None:
    with pytest.raises(ConfigError, match="GATEWAY_JWT_JWKS"):
        Settings(jwt_jwks=url).validate()


@pytest.mark.parametrize("issuer", ["idp.example/realms/x", "ftp://idp.example",
                                    "https://idp.example/realms/x?a=b",
                                    "https://idp.example/#x", "https://"])
def test_settings_refuse_a_bad_issuer(issuer: str) -> None:
    with pytest.raises(ConfigError, match="GATEWAY_JWT_OIDC_ISSUER"):
        Settings(jwt_oidc_issuer=issuer).validate()


def test_settings_of_the_identity_provider(tmp_path: Path) -> None:
    Settings(jwt_oidc_issuer="https://idp.example/realms/x").validate()
    with pytest.raises(ConfigError, match="not both"):
        Settings(jwt_oidc_issuer="https://idp.example/realms/x",
                 jwt_jwks="https://idp.example/certs").validate()
    with pytest.raises(ConfigError, match="not found"):
        Settings(jwt_jwks="https://idp.example/certs", jwt_ca=str(tmp_path / "ca.pem")
                 ).validate()
    for low, high in ((0, 300), (20, 10)):
        with pytest.raises(ConfigError, match="MIN_REFETCH"):
            Settings(jwt_jwks="https://idp.example/certs", jwt_jwks_min_refetch=low,
                     jwt_jwks_max_age=high).validate()


def test_from_env_reads_the_identity_provider_settings(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    settings = from_env({"GATEWAY_JWT_OIDC_ISSUER": "https://idp.example/realms/x",
                         "GATEWAY_JWT_CA": str(ca), "GATEWAY_JWT_JWKS_MIN_REFETCH": "3",
                         "GATEWAY_JWT_JWKS_MAX_AGE": "60"})
    settings.validate()
    assert (settings.jwt_oidc_issuer, settings.jwt_ca, settings.jwt_jwks_min_refetch,
            settings.jwt_jwks_max_age) == ("https://idp.example/realms/x", str(ca), 3, 60)
    assert from_env({}).jwt_jwks_min_refetch == 10
    with pytest.raises(ConfigError, match="MIN_REFETCH"):
        from_env({"GATEWAY_JWT_JWKS_MIN_REFETCH": "soon"})


# -- fetched key sets -------------------------------------------------------------------

def test_nothing_is_fetched_before_the_first_token(server: KeyServer, signer: Signer) -> None:
    v = remote(server.jwks_url)
    assert server.count() == 0
    assert v.verify(signer.token("ec-1")).sub == "idp-user"
    assert v.verify(signer.token("ec-1", sub="other")).sub == "other"
    assert server.count() == 1


def test_a_new_kid_is_fetched_and_a_removed_one_is_dropped(server: KeyServer,
                                                           signer: Signer) -> None:
    v = remote(server.jwks_url, jwt_jwks_min_refetch=1)
    old = signer.token("ec-1")
    assert v.verify(old).tenant == "acme"
    server.keys = [signer.jwk("ec-2")]  # rotation: ec-1 retired, ec-2 published
    time.sleep(1.1)
    assert v.verify(signer.token("ec-2")).tenant == "acme"
    assert server.count() == 2
    # The remembered verification of `old` does not outlive its key.
    assert "ec-1" in unauthorized(v, old).detail


def test_an_unknown_kid_refetches_at_most_once_per_interval(server: KeyServer,
                                                            signer: Signer) -> None:
    v = remote(server.jwks_url, jwt_jwks_min_refetch=60)
    v.verify(signer.token("ec-1"))
    time.sleep(0.05)
    for i in range(5):  # five unknown kids, one refetch
        unauthorized(v, signer.token(f"unknown-{i}", signed_by="ec-2"))
    server.keys.append(signer.jwk("ec-2"))
    unauthorized(v, signer.token("ec-2"))  # published, but not before the interval ends
    assert server.count() == 1  # the first refetch is as rate-limited as the rest


def test_concurrent_first_requests_fetch_once(server: KeyServer, signer: Signer) -> None:
    server.delay = 0.3
    v = remote(server.jwks_url)
    results: list[str] = []

    def call(i: int) -> None:
        results.append(v.verify(signer.token("ec-1", sub=f"u{i}")).sub)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == sorted(f"u{i}" for i in range(16))
    assert server.count() == 1


def test_cache_control_max_age_refreshes_the_set(server: KeyServer, signer: Signer) -> None:
    server.cache_control = "public, max-age=2"
    v = remote(server.jwks_url, jwt_jwks_min_refetch=1)
    token = signer.token("ec-1")
    v.verify(token)
    server.keys = [signer.jwk("ec-2")]
    assert v.verify(token).sub == "idp-user"  # within max-age: the cached set
    time.sleep(2.2)
    unauthorized(v, token)
    assert server.count() == 2


@pytest.mark.parametrize("mode", [m for m in MODES if m != "ok"])
def test_a_failing_key_server_is_503_never_a_key(server: KeyServer, signer: Signer,
                                                 mode: str, short_timeout: None) -> None:
    server.mode, server.slow_seconds = mode, 2
    v = remote(server.jwks_url)
    started = time.monotonic()
    unavailable(v, signer.token("ec-1"))
    assert time.monotonic() - started < 3  # FETCH_TIMEOUT is 0.5 s here
    unavailable(v, signer.token("ec-1"))  # rate-limited: no second fetch
    assert server.count() == 1
    assert server.count(MOVED_PATH) == 0  # redirects are not followed


def test_an_unreachable_key_server_is_503(signer: Signer) -> None:
    err = unavailable(remote(unused_url()), signer.token("ec-1"))
    assert "identity provider" in err.detail


def test_last_good_keys_serve_while_the_key_server_fails(server: KeyServer,
                                                         signer: Signer) -> None:
    v = remote(server.jwks_url, jwt_jwks_min_refetch=1, jwt_jwks_max_age=1)
    v.verify(signer.token("ec-1"))
    server.mode = "http-500"
    time.sleep(1.1)  # the set is due for a refresh, which fails
    assert v.verify(signer.token("ec-1", sub="again")).sub == "again"
    err = unavailable(v, signer.token("ec-2"))  # unknown kid, failing server: 503, not 401
    assert int(err.headers["Retry-After"]) <= 1
    server.mode = "ok"
    server.keys.append(signer.jwk("ec-2"))
    time.sleep(1.1)
    assert v.verify(signer.token("ec-2")).sub == "idp-user"


def test_strict_algorithms_and_kids_with_a_fetched_set(server: KeyServer,
                                                       signer: Signer) -> None:
    server.keys = [signer.jwk("ec-1"), signer.jwk("rsa-1"), signer.jwk("ec-2", use="enc")]
    v = remote(server.jwks_url)
    assert v.verify(signer.token("rsa-1")).sub == "idp-user"
    unauthorized(v, signer.token(None, signed_by="ec-1"))           # no kid, several keys
    unauthorized(v, signer.token("ec-1", signed_by="rsa-1", alg="RS256"))  # alg vs key
    unauthorized(v, signer.token("ec-2"))                           # an encryption key
    unauthorized(v, signer.token("ec-1", signed_by="ec-3"))         # wrong signature
    assert server.count() == 1  # within the refetch interval: no second fetch


def test_no_kid_with_a_single_key(server: KeyServer, signer: Signer) -> None:
    assert remote(server.jwks_url).verify(signer.token(None, signed_by="ec-1")).sub


def test_discovery_names_the_keys_and_the_issuer(server: KeyServer, signer: Signer) -> None:
    v = TokenVerifier(Settings(jwt_oidc_issuer=server.issuer, jwt_jwks_min_refetch=60))
    assert server.count(DISCOVERY_PATH) == 0
    assert v.verify(signer.token("ec-1", iss=server.issuer)).sub == "idp-user"
    unauthorized(v, signer.token("ec-1"))                             # no iss
    unauthorized(v, signer.token("ec-1", iss=server.issuer + "/"))    # another iss
    assert (server.count(DISCOVERY_PATH), server.count()) == (1, 1)
    # GATEWAY_JWT_ISSUER, when set, is the expected iss instead.
    other = TokenVerifier(Settings(jwt_oidc_issuer=server.issuer, jwt_issuer="urn:other"))
    assert other.verify(signer.token("ec-1", iss="urn:other")).sub == "idp-user"


@pytest.mark.parametrize("change", [{"discovery_issuer": "https://evil.example/realms/test"},
                                    {"jwks_uri": "ftp://127.0.0.1/certs"},
                                    {"mode": "garbage"}])
def test_discovery_refusals(server: KeyServer, signer: Signer,
                            change: dict[str, str]) -> None:
    for name, value in change.items():
        setattr(server, name, value)
    v = TokenVerifier(Settings(jwt_oidc_issuer=server.issuer))
    unavailable(v, signer.token("ec-1", iss=server.issuer))
    assert server.count() == 0


def test_discovery_with_a_trailing_slash(server: KeyServer, signer: Signer) -> None:
    server.discovery_issuer = server.issuer + "/"
    v = TokenVerifier(Settings(jwt_oidc_issuer=server.issuer + "/"))
    assert v.verify(signer.token("ec-1", iss=server.issuer + "/")).sub
    assert server.count(DISCOVERY_PATH) == 1


def test_tls_verifies_the_key_server(tmp_path: Path, signer: Signer) -> None:
    ca = CertificateAuthority(tmp_path, "idp")
    with key_server(tls=ca.issue("keyserver", server=True)) as srv:
        srv.keys = [signer.jwk("ec-1")]
        token = signer.token("ec-1")
        # System CAs do not know this CA: refused, and no key.
        unavailable(remote(srv.jwks_url), token)
        assert remote(srv.jwks_url, jwt_ca=str(ca.cert)).verify(token).sub == "idp-user"
        other = CertificateAuthority(tmp_path, "other")
        unavailable(remote(srv.jwks_url, jwt_ca=str(other.cert)), token)
        # Discovery over TLS; an https issuer cannot send the gateway to plain http.
        oidc = Settings(jwt_oidc_issuer=srv.issuer, jwt_ca=str(ca.cert))
        assert TokenVerifier(oidc).verify(signer.token("ec-1", iss=srv.issuer)).sub
        srv.jwks_uri = srv.jwks_url.replace("https:", "http:")
        unavailable(TokenVerifier(oidc), signer.token("ec-1", iss=srv.issuer))
        assert (srv.count(DISCOVERY_PATH), srv.count()) == (2, 2)


def test_logs_name_the_url_and_kid_never_the_token(server: KeyServer, signer: Signer,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.auth")
    v = remote(server.jwks_url, jwt_jwks_min_refetch=1)
    tokens = [signer.token("ec-1"), signer.token("nope", signed_by="ec-1")]
    v.verify(tokens[0])
    time.sleep(1.05)
    unauthorized(v, tokens[1])
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert server.jwks_url in text and "'nope'" in text
    for token in tokens:
        assert token.rsplit(".", 1)[-1] not in text
        assert token.split(".")[1] not in text
    # Made-up kids within the refetch interval fetch nothing and log nothing.
    logged = len(caplog.records)
    for i in range(5):
        unauthorized(v, signer.token(f"made-up-{i}", signed_by="ec-1"))
    assert len(caplog.records) == logged
    assert server.count() == 2

"""Token verification without HTTP: algorithms, keys, JWKS, claims, configuration."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.auth import Principal, TokenVerifier, mint
from gateway.config import ConfigError, Settings
from gateway.errors import Unauthorized

SECRET = "unit-secret-" + "s" * 40
ISSUER = "https://idp.example.com/realms/ovn"
AUDIENCE = "ovn-nb-gateway"


# -- keys -------------------------------------------------------------------------------

def _pem_public(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_keys() -> dict[str, ec.EllipticCurvePrivateKey]:
    return {kid: ec.generate_private_key(ec.SECP256R1()) for kid in ("ec-1", "ec-2")}


@pytest.fixture
def pem_path(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "idp.pem"
    path.write_bytes(_pem_public(rsa_key))
    return path


@pytest.fixture
def jwks_path(tmp_path: Path, ec_keys: dict[str, ec.EllipticCurvePrivateKey],
              rsa_key: rsa.RSAPrivateKey) -> Path:
    keys = []
    for kid, key in ec_keys.items():
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        keys.append({**jwk, "kid": kid, "use": "sig", "alg": "ES256"})
    rsa_jwk = RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    keys.append({**rsa_jwk, "kid": "rsa-1", "use": "sig", "alg": "RS256"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": keys}))
    return path


# -- tokens -----------------------------------------------------------------------------

def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"sub": "alice", "tenant": "acme", "scope": "read write",
                            "iat": now, "exp": now + 300}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: dict[str, Any], payload: dict[str, Any], hmac_key: bytes | None) -> str:
    """A JWT built by hand, for what PyJWT refuses to produce (alg none, HS256 keyed with
    a PEM public key)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    if hmac_key is None:
        return signing_input + "."
    sig = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(sig)}"


def verifier(**settings: Any) -> TokenVerifier:
    return TokenVerifier(Settings(**settings))


def rejected(v: TokenVerifier, token: str) -> Unauthorized:
    with pytest.raises(Unauthorized) as err:
        v.verify(token)
    return err.value


# -- HS256 ------------------------------------------------------------------------------

def test_hs256_valid_token_gives_the_principal() -> None:
    who = verifier(jwt_secret=SECRET).verify(jwt.encode(claims(), SECRET, algorithm="HS256"))
    assert who == Principal(sub="alice", tenant="acme", scopes=frozenset({"read", "write"}))
    assert not who.is_admin


def test_mint_round_trips() -> None:
    who = verifier(jwt_secret=SECRET).verify(mint(SECRET, "t-1", "networks:read", "bob"))
    assert (who.sub, who.tenant, who.scopes) == ("bob", "t-1", frozenset({"networks:read"}))


def test_hs256_with_another_secret_is_rejected() -> None:
    token = jwt.encode(claims(), "another-secret-" + "z" * 40, algorithm="HS256")
    rejected(verifier(jwt_secret=SECRET), token)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "a.b", "....",
                                   "eyJhbGciOiJIUzI1NiJ9.e30.", "Bearer x"])
def test_garbage_is_rejected(token: str) -> None:
    rejected(verifier(jwt_secret=SECRET), token)


def test_alg_none_is_rejected() -> None:
    rejected(verifier(jwt_secret=SECRET), raw_token({"alg": "none", "typ": "JWT"}, claims(),
                                                    None))
    rejected(verifier(jwt_secret=SECRET), raw_token({"alg": "None", "typ": "JWT"}, claims(),
                                                    None))


def test_tampered_payload_is_rejected() -> None:
    good = jwt.encode(claims(), SECRET, algorithm="HS256")
    head, _, sig = good.split(".")
    evil = _b64(json.dumps(claims(tenant="victim", scope="admin")).encode())
    rejected(verifier(jwt_secret=SECRET), f"{head}.{evil}.{sig}")


@pytest.mark.filterwarnings("ignore:The HMAC key")
@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_other_hmac_algorithms_are_not_accepted(alg: str) -> None:
    rejected(verifier(jwt_secret=SECRET), jwt.encode(claims(), SECRET, algorithm=alg))


def test_expired_token_is_rejected() -> None:
    now = int(time.time())
    token = jwt.encode(claims(iat=now - 600, exp=now - 60), SECRET, algorithm="HS256")
    rejected(verifier(jwt_secret=SECRET), token)


def test_missing_exp_is_rejected() -> None:
    token = jwt.encode(claims(exp=None), SECRET, algorithm="HS256")
    rejected(verifier(jwt_secret=SECRET), token)


@pytest.mark.parametrize("exp", ["tomorrow", None])
def test_non_numeric_exp_is_rejected(exp: Any) -> None:
    payload = claims()
    payload["exp"] = exp
    rejected(verifier(jwt_secret=SECRET), jwt.encode(payload, SECRET, algorithm="HS256"))


@pytest.mark.parametrize("exp", ["9999999999", "4102444800", True, [9999999999],
                                 {"t": 9999999999}, float("nan")])
def test_exp_must_be_a_number(exp: Any) -> None:
    """PyJWT takes int("9999999999"): a string would make a token that never expires."""
    payload = claims()
    payload["exp"] = exp
    err = rejected(verifier(jwt_secret=SECRET), jwt.encode(payload, SECRET, algorithm="HS256"))
    assert "exp" in err.detail


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_nbf_and_iat_must_be_numbers_when_present(claim: str) -> None:
    payload = claims(**{claim: str(int(time.time()) - 10)})
    err = rejected(verifier(jwt_secret=SECRET), jwt.encode(payload, SECRET, algorithm="HS256"))
    assert claim in err.detail


def test_a_fractional_exp_is_accepted() -> None:
    token = jwt.encode(claims(exp=time.time() + 300.5), SECRET, algorithm="HS256")
    assert verifier(jwt_secret=SECRET).verify(token).tenant == "acme"


def test_not_yet_valid_token_is_rejected() -> None:
    token = jwt.encode(claims(nbf=int(time.time()) + 600), SECRET, algorithm="HS256")
    rejected(verifier(jwt_secret=SECRET), token)


@pytest.mark.parametrize("missing", ["sub", "tenant"])
def test_missing_identity_claims_are_rejected(missing: str) -> None:
    token = jwt.encode(claims(**{missing: None}), SECRET, algorithm="HS256")
    rejected(verifier(jwt_secret=SECRET), token)


@pytest.mark.parametrize("tenant", ["", "Acme", "-acme", "acme_corp", "acme corp", "a" * 64,
                                    "acme\n", "ácme", "acme/..", 42, ["acme"], {"id": "a"}])
def test_tenant_claim_with_bad_syntax_is_rejected(tenant: Any) -> None:
    token = jwt.encode(claims(tenant=tenant), SECRET, algorithm="HS256")
    rejected(verifier(jwt_secret=SECRET), token)


@pytest.mark.parametrize("tenant", ["a", "0", "acme-corp", "a" * 63, "t-1-2-3"])
def test_tenant_claim_with_good_syntax_is_accepted(tenant: str) -> None:
    token = jwt.encode(claims(tenant=tenant), SECRET, algorithm="HS256")
    assert verifier(jwt_secret=SECRET).verify(token).tenant == tenant


@pytest.mark.parametrize("sub", ["", 7])
def test_bad_sub_is_rejected(sub: Any) -> None:
    token = jwt.encode(claims(sub=sub), SECRET, algorithm="HS256")
    rejected(verifier(jwt_secret=SECRET), token)


def test_scope_must_be_a_space_separated_string() -> None:
    token = jwt.encode(claims(scope=["read", "write"]), SECRET, algorithm="HS256")
    rejected(verifier(jwt_secret=SECRET), token)


@pytest.mark.parametrize("scope", ["write\nadmin", "read\tadmin", "read\radmin", "read\x0badmin",
                                   "read\x0cadmin", "read\u00a0admin", "read\u2003admin",
                                   "read\u3000admin", "read\x1cadmin", "read\x85admin",
                                   "read  write", " read", "read ", "admin\n", "\tadmin",
                                   'read "admin"', "read\\ admin", "réad"])
def test_scope_is_split_on_single_spaces_only(scope: str) -> None:
    """RFC 6749 3.3: scope tokens of printable ASCII joined by single spaces. Any other
    whitespace could make str.split() see an `admin` the issuer never granted."""
    err = rejected(verifier(jwt_secret=SECRET), jwt.encode(claims(scope=scope), SECRET,
                                                           algorithm="HS256"))
    assert "scope" in err.detail


@pytest.mark.parametrize(("scope", "scopes"), [
    ("read write", {"read", "write"}), ("networks:read", {"networks:read"}),
    ("", set()), ("dns:write policies:read admin", {"dns:write", "policies:read", "admin"}),
    ("x!#$%&'()*+,-./:;<=>?@[]^_`{|}~", {"x!#$%&'()*+,-./:;<=>?@[]^_`{|}~"})])
def test_well_formed_scopes_are_accepted(scope: str, scopes: set[str]) -> None:
    who = verifier(jwt_secret=SECRET).verify(jwt.encode(claims(scope=scope), SECRET,
                                                        algorithm="HS256"))
    assert who.scopes == scopes


def test_missing_scope_means_no_scopes() -> None:
    who = verifier(jwt_secret=SECRET).verify(jwt.encode(claims(scope=None), SECRET,
                                                        algorithm="HS256"))
    assert who.scopes == frozenset()
    assert not who.can("networks", "read")


# -- RS256 with a PEM public key --------------------------------------------------------

def test_rs256_with_pem_public_key_verifies(pem_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    token = jwt.encode(claims(), rsa_key, algorithm="RS256")
    who = verifier(jwt_public_key=str(pem_path)).verify(token)
    assert (who.sub, who.tenant) == ("alice", "acme")


def test_rs256_signed_by_another_key_is_rejected(pem_path: Path,
                                                 other_rsa_key: rsa.RSAPrivateKey) -> None:
    token = jwt.encode(claims(), other_rsa_key, algorithm="RS256")
    rejected(verifier(jwt_public_key=str(pem_path)), token)


def test_rs256_when_only_a_secret_is_configured_is_rejected(rsa_key: rsa.RSAPrivateKey) -> None:
    token = jwt.encode(claims(), rsa_key, algorithm="RS256")
    rejected(verifier(jwt_secret=SECRET), token)


@pytest.mark.parametrize("secret_too", [False, True])
def test_hs_rs_confusion_is_rejected(pem_path: Path, secret_too: bool) -> None:
    """The classic attack: HS256 keyed with the (public) PEM text of the RS256 key."""
    pem = pem_path.read_bytes()
    v = verifier(jwt_public_key=str(pem_path), jwt_secret=SECRET if secret_too else None)
    for key in (pem, pem.strip(), pem.decode().replace("\n", "\r\n").encode()):
        rejected(v, raw_token({"alg": "HS256", "typ": "JWT"}, claims(scope="admin"), key))


def test_hs256_when_only_a_public_key_is_configured_is_rejected(pem_path: Path) -> None:
    token = jwt.encode(claims(), SECRET, algorithm="HS256")
    rejected(verifier(jwt_public_key=str(pem_path)), token)


def test_es256_token_against_an_rsa_pem_is_rejected(pem_path: Path,
                                                    ec_keys: dict[str, Any]) -> None:
    token = jwt.encode(claims(), ec_keys["ec-1"], algorithm="ES256")
    rejected(verifier(jwt_public_key=str(pem_path)), token)


def test_es256_with_an_ec_pem_verifies(tmp_path: Path, ec_keys: dict[str, Any]) -> None:
    path = tmp_path / "ec.pem"
    path.write_bytes(_pem_public(ec_keys["ec-2"]))
    token = jwt.encode(claims(), ec_keys["ec-2"], algorithm="ES256")
    assert verifier(jwt_public_key=str(path)).verify(token).sub == "alice"


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256"])
def test_other_rsa_algorithms_are_not_accepted(pem_path: Path, rsa_key: rsa.RSAPrivateKey,
                                               alg: str) -> None:
    rejected(verifier(jwt_public_key=str(pem_path)), jwt.encode(claims(), rsa_key,
                                                                algorithm=alg))


# -- ES256 / RS256 with a JWKS file -----------------------------------------------------

@pytest.mark.parametrize("kid", ["ec-1", "ec-2"])
def test_es256_jwks_selects_the_key_by_kid(jwks_path: Path, ec_keys: dict[str, Any],
                                           kid: str) -> None:
    token = jwt.encode(claims(), ec_keys[kid], algorithm="ES256", headers={"kid": kid})
    assert verifier(jwt_jwks=str(jwks_path)).verify(token).tenant == "acme"


def test_es256_jwks_kid_of_another_key_is_rejected(jwks_path: Path,
                                                   ec_keys: dict[str, Any]) -> None:
    token = jwt.encode(claims(), ec_keys["ec-1"], algorithm="ES256", headers={"kid": "ec-2"})
    rejected(verifier(jwt_jwks=str(jwks_path)), token)


@pytest.mark.parametrize("kid", ["unknown", "", None])
def test_es256_jwks_unknown_or_missing_kid_is_rejected(jwks_path: Path,
                                                       ec_keys: dict[str, Any],
                                                       kid: str | None) -> None:
    headers = {"kid": kid} if kid is not None else None
    token = jwt.encode(claims(), ec_keys["ec-1"], algorithm="ES256", headers=headers)
    rejected(verifier(jwt_jwks=str(jwks_path)), token)


def test_rs256_jwks_key(jwks_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    assert verifier(jwt_jwks=str(jwks_path)).verify(token).sub == "alice"


def test_jwks_alg_must_fit_the_key(jwks_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    # An RS256 token that names an EC key's kid must not be checked against that key.
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "ec-1"})
    rejected(verifier(jwt_jwks=str(jwks_path)), token)


def test_jwks_hs256_confusion_is_rejected(jwks_path: Path) -> None:
    # HMAC keyed with the JWKS text (all public) must not verify.
    text = jwks_path.read_bytes()
    token = raw_token({"alg": "HS256", "kid": "rsa-1"}, claims(scope="admin"), text)
    rejected(verifier(jwt_jwks=str(jwks_path)), token)


# -- iss and aud ------------------------------------------------------------------------

def _iss_aud_verifier() -> TokenVerifier:
    return verifier(jwt_secret=SECRET, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)


def test_valid_in_every_way_passes() -> None:
    token = jwt.encode(claims(iss=ISSUER, aud=AUDIENCE, scope="networks:write admin"),
                       SECRET, algorithm="HS256")
    who = _iss_aud_verifier().verify(token)
    assert who == Principal("alice", "acme", frozenset({"networks:write", "admin"}))
    assert who.is_admin


def test_audience_list_containing_ours_passes() -> None:
    token = jwt.encode(claims(iss=ISSUER, aud=["other", AUDIENCE]), SECRET, algorithm="HS256")
    assert _iss_aud_verifier().verify(token).sub == "alice"


def test_mint_with_issuer_and_audience_passes() -> None:
    token = mint(SECRET, "acme", "read", "bob", 60, ISSUER, AUDIENCE)
    assert _iss_aud_verifier().verify(token).sub == "bob"


@pytest.mark.parametrize(("iss", "aud"), [
    (None, AUDIENCE),
    ("https://evil.example.com", AUDIENCE),
    (ISSUER + "/", AUDIENCE),
    (ISSUER, None),
    (ISSUER, "someone-else"),
    (ISSUER, ["someone-else"]),
    (None, None),
])
def test_iss_and_aud_are_enforced_when_configured(iss: str | None, aud: Any) -> None:
    token = jwt.encode(claims(iss=iss, aud=aud), SECRET, algorithm="HS256")
    rejected(_iss_aud_verifier(), token)


def test_iss_and_aud_are_enforced_for_rs256(pem_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    v = verifier(jwt_public_key=str(pem_path), jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    assert v.verify(jwt.encode(claims(iss=ISSUER, aud=AUDIENCE), rsa_key, algorithm="RS256"))
    rejected(v, jwt.encode(claims(iss="https://x", aud=AUDIENCE), rsa_key, algorithm="RS256"))
    rejected(v, jwt.encode(claims(iss=ISSUER), rsa_key, algorithm="RS256"))


def test_iss_not_configured_is_ignored() -> None:
    token = jwt.encode(claims(iss="https://anyone"), SECRET, algorithm="HS256")
    assert verifier(jwt_secret=SECRET).verify(token).sub == "alice"


# -- scopes -----------------------------------------------------------------------------

@pytest.mark.parametrize(("scopes", "family", "action", "allowed"), [
    ("read", "networks", "read", True),
    ("read", "networks", "write", False),
    ("write", "networks", "read", True),
    ("write", "dns", "write", True),
    ("networks:read", "networks", "read", True),
    ("networks:read", "networks", "write", False),
    ("networks:write", "networks", "read", True),
    ("networks:write", "networks", "write", True),
    ("networks:write", "policies", "read", False),
    ("policies:write", "networks", "read", False),
    ("policies:write", "networks", "write", False),
    ("load-balancers:read gateways:write", "gateways", "read", True),
    ("load-balancers:read gateways:write", "load-balancers", "write", False),
    ("admin", "dns", "write", True),
    ("", "networks", "read", False),
    ("networks", "networks", "read", False),
    ("networks:admin", "networks", "write", False),
    ("READ", "networks", "read", False),
])
def test_scope_rules(scopes: str, family: str, action: str, allowed: bool) -> None:
    who = Principal("s", "t", frozenset(scopes.split()))
    assert who.can(family, action) is allowed


# -- Settings.validate ------------------------------------------------------------------

def test_settings_refuse_to_start_without_verification() -> None:
    with pytest.raises(ConfigError, match="GATEWAY_JWT_SECRET"):
        Settings().validate()
    with pytest.raises(ConfigError):
        Settings(jwt_secret="").validate()


@pytest.mark.parametrize("secret", ["short", "x" * 31])
def test_settings_refuse_a_short_secret(secret: str) -> None:
    with pytest.raises(ConfigError, match="32"):
        Settings(jwt_secret=secret).validate()


def test_settings_accept_each_verification_kind(pem_path: Path, jwks_path: Path) -> None:
    Settings(jwt_secret="x" * 32).validate()
    Settings(jwt_public_key=str(pem_path)).validate()
    Settings(jwt_jwks=str(jwks_path)).validate()


def test_settings_refuse_a_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        Settings(jwt_public_key=str(tmp_path / "nope.pem")).validate()
    with pytest.raises(ConfigError, match="not found"):
        Settings(jwt_jwks=str(tmp_path / "nope.json")).validate()

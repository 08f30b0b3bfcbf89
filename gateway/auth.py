"""Bearer tokens -> Principal, and the scope rules of the contract."""

from __future__ import annotations

import json
import logging
import math
import re
import ssl
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.config import ConfigError, Settings, is_url
from gateway.errors import Forbidden, GatewayError, Unauthorized, Unavailable

log = logging.getLogger("gateway.auth")

TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# RFC 6749 3.3: scope tokens (printable ASCII except '"' and backslash), single spaces.
_SCOPE_CHARS = r"[\x21\x23-\x5b\x5d-\x7e]+"
SCOPE_RE = re.compile(rf"(?:{_SCOPE_CHARS}(?: {_SCOPE_CHARS})*)?")
_TIME_CLAIMS = ("exp", "nbf", "iat")
FAMILIES = ("networks", "policies", "load-balancers", "gateways", "dns")
_ASYMMETRIC = ("RS256", "ES256")
_CACHE_SIZE = 4096
# Key server limits (module globals so unit tests can shorten them): the whole answer must
# arrive within FETCH_TIMEOUT seconds (each socket operation too) and be at most
# MAX_DOCUMENT_BYTES; a key set with more than MAX_KEYS entries is refused outright.
FETCH_TIMEOUT = 5.0
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_KEYS = 100
_MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class Principal:
    sub: str
    tenant: str
    scopes: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def can(self, family: str, action: str) -> bool:
        """`write` implies `read`; the bare scopes cover every family; admin covers all."""
        if self.is_admin:
            return True
        wanted = {action, f"{family}:{action}"}
        if action == "read":
            wanted |= {"write", f"{family}:write"}
        return bool(wanted & self.scopes)

    def require(self, family: str, action: str) -> None:
        if not self.can(family, action):
            raise Forbidden(f"token lacks scope {family}:{action} (or {action})")

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("token lacks scope admin")


class TokenVerifier:
    """Strict verification: each algorithm only with its own kind of key."""

    def __init__(self, settings: Settings) -> None:
        self._secret = settings.jwt_secret
        # A configured OIDC issuer is also the expected `iss`, unless one is set explicitly.
        self._issuer = settings.jwt_issuer or settings.jwt_oidc_issuer
        self._audience = settings.jwt_audience
        self._public_key: Any = None
        self._verified: dict[str, tuple[float, Principal, JWKey | None]] = {}
        self._keys: KeySet | RemoteKeys | None = None
        if settings.jwt_public_key:
            self._public_key = load_pem_public_key(Path(settings.jwt_public_key).read_bytes())
        if is_url(settings.jwt_jwks) or settings.jwt_oidc_issuer:
            # Nothing is fetched here: the app is built in gunicorn's master, and each
            # worker fetches on its first token.
            self._keys = RemoteKeys(settings)
        elif settings.jwt_jwks:
            try:
                self._keys = KeySet(parse_jwks(json.loads(
                    Path(settings.jwt_jwks).read_text())))
            except ValueError as exc:
                raise ConfigError(f"{settings.jwt_jwks}: {exc}") from exc
            if not self._keys.keys:
                raise ConfigError(f"{settings.jwt_jwks}: no usable RS256/ES256 signing key")

    def _key_for(self, header: dict[str, Any]) -> tuple[Any, str, JWKey | None]:
        alg = header.get("alg")
        if alg == "HS256" and self._secret:
            return self._secret, alg, None
        if alg in _ASYMMETRIC:
            kid = header.get("kid")
            if "kid" in header and (not isinstance(kid, str) or not kid):
                raise Unauthorized("token kid must be a non-empty string")
            pem_fits = self._public_key is not None and _key_matches(self._public_key, alg)
            if self._keys is not None and (kid is not None or not pem_fits):
                try:
                    found = self._keys.lookup(kid, alg)
                    return found.key, alg, found
                except GatewayError:
                    if not pem_fits:
                        raise
            if pem_fits:
                return self._public_key, alg, None
        raise Unauthorized(f"token algorithm {alg!r} is not accepted here")

    def verify(self, token: str) -> Principal:
        """Verified tokens are remembered until they expire: the check is deterministic.
        A token verified with a fetched key is remembered only while that key is published."""
        cached = self._verified.get(token)
        if cached is not None and cached[0] > time.time() and (
                cached[2] is None or not isinstance(self._keys, RemoteKeys)
                or self._keys.holds(cached[2])):
            return cached[1]
        principal, expires, key = self._verify(token)
        if len(self._verified) >= _CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (expires, principal, key)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float, JWKey | None]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("malformed token") from exc
        key, alg, entry = self._key_for(header)
        options: Any = {"require": ["exp", "sub", "tenant"]}
        if self._issuer:
            options["require"].append("iss")
        if self._audience:
            options["require"].append("aud")
        try:
            claims = jwt.decode(token, key, algorithms=[alg], issuer=self._issuer,
                                audience=self._audience, options=options, leeway=5)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from exc
        return principal_from_claims(claims), float(claims["exp"]), entry


# -- JWKS: parsing (pure) ---------------------------------------------------------------

@dataclass(frozen=True)
class JWKey:
    """One usable signing key of a JWKS. Equal when kid, algorithm and key material are."""

    kid: str | None
    alg: str
    thumbprint: str
    key: Any = field(compare=False, repr=False)


def parse_jwks(doc: Any) -> list[JWKey]:
    """The usable signing keys of a JWKS document: RSA (2048 bits or more) for RS256, EC
    P-256 for ES256. Keys for another use, another algorithm, private keys and keys whose
    kid appears twice are left out (logged); a document that is no JWKS is a ValueError."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError('not a JWKS: expected an object with a "keys" list')
    if len(doc["keys"]) > MAX_KEYS:
        raise ValueError(f"JWKS has {len(doc['keys'])} keys, at most {MAX_KEYS} are accepted")
    keys: list[JWKey] = []
    for index, jwk in enumerate(doc["keys"]):
        try:
            keys.append(_parse_jwk(jwk))
        except ValueError as exc:
            kid = jwk.get("kid") if isinstance(jwk, dict) else None
            log.info("JWKS key %d (kid %r) ignored: %s", index, _short(kid), exc)
    kids = [k.kid for k in keys if k.kid is not None]
    twice = {kid for kid in kids if kids.count(kid) > 1}
    if twice:
        log.warning("JWKS keys ignored, their kid appears more than once: %s",
                    ", ".join(repr(_short(kid)) for kid in sorted(twice)))
    return [k for k in keys if k.kid not in twice]


def _parse_jwk(jwk: Any) -> JWKey:
    if not isinstance(jwk, dict):
        raise ValueError("not an object")
    if jwk.get("use", "sig") != "sig":
        raise ValueError(f"use is {jwk.get('use')!r}, not 'sig'")
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise ValueError("key_ops does not include 'verify'")
    kid = jwk.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid):
        raise ValueError("kid must be a non-empty string")
    if "d" in jwk:
        raise ValueError("a private key has no place in a published key set")
    kty, alg = jwk.get("kty"), jwk.get("alg")
    if kty == "RSA" and alg in (None, "RS256"):
        params: tuple[str, ...] = ("kty", "n", "e")
        try:
            key: Any = RSAAlgorithm.from_jwk(jwk)
        except Exception as exc:
            raise ValueError(f"bad RSA key: {exc}") from exc
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size < _MIN_RSA_BITS:
            raise ValueError(f"RSA keys need at least {_MIN_RSA_BITS} bits")
        alg = "RS256"
    elif kty == "EC" and jwk.get("crv") == "P-256" and alg in (None, "ES256"):
        params = ("kty", "crv", "x", "y")
        try:
            key = ECAlgorithm.from_jwk(jwk)
        except Exception as exc:
            raise ValueError(f"bad EC key: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("not an EC public key")
        alg = "ES256"
    else:
        raise ValueError(f"kty {kty!r} / crv {jwk.get('crv')!r} / alg {alg!r}: only RSA for "
                         "RS256 and EC P-256 for ES256 are accepted")
    thumbprint = json.dumps({p: jwk[p] for p in params}, sort_keys=True)
    return JWKey(kid, alg, thumbprint, key)


class KeySet:
    """A parsed JWKS: the token's kid picks the key, and the key decides the algorithm."""

    def __init__(self, keys: list[JWKey]) -> None:
        self.keys = keys

    def find(self, kid: str | None, alg: str) -> JWKey | None:
        """The key for this kid and algorithm; None when no key has the kid."""
        if kid is None:
            if len(self.keys) != 1:
                raise Unauthorized("token has no kid and the key set holds several keys")
            found = self.keys[0]
        else:
            matches = [k for k in self.keys if k.kid == kid]
            if not matches:
                return None
            found = matches[0]
        if found.alg != alg:
            raise Unauthorized(f"token algorithm {alg} does not fit key {_short(kid)!r} "
                               f"({found.alg})")
        return found

    def lookup(self, kid: str | None, alg: str) -> JWKey:
        found = self.find(kid, alg)
        if found is None:
            raise Unauthorized(f"no key with kid {_short(kid)!r}")
        return found


def cache_seconds(cache_control: str | None, floor: int, ceiling: int) -> int:
    """How long a fetched key set is used: the answer's Cache-Control max-age (no-store and
    no-cache count as 0), else `ceiling`, always within [floor, ceiling]."""
    age = ceiling
    for directive in (cache_control or "").lower().split(","):
        name, _, value = directive.strip().partition("=")
        if name in ("no-store", "no-cache"):
            age = 0
            break
        seconds = _digits(value.strip().strip('"'))
        if name == "max-age" and seconds is not None:
            age = seconds
    return max(floor, min(age, ceiling))


def _digits(text: str) -> int | None:
    # str.isdigit() also admits "²", which int() refuses; int() refuses over 4300 digits.
    if not (text.isascii() and text.isdigit()):
        return None
    return int(text) if len(text) <= 18 else 10**18


# -- JWKS: fetched from a URL or an OIDC issuer -----------------------------------------

class KeyFetchError(Exception):
    """The key server's answer could not be used; the message says why (no secrets)."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect could lead anywhere (an https URL to plain http): key URLs must be final.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _safe_url(url: str) -> str:
    """The URL for logs: no userinfo, query or fragment."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


def _short(text: Any) -> Any:
    return text[:64] if isinstance(text, str) else text


class RemoteKeys:
    """The keys of a JWKS URL (GATEWAY_JWT_JWKS=https://...) or of an OIDC issuer's
    `jwks_uri`, fetched on first use in each process and cached.

    - A token naming a kid that is not cached triggers a refetch; every fetch attempt, good
      or failed, is at least `min_refetch` seconds after the previous one (per process), and
      only one runs at a time: other requests wait for it, or use the cache if it has keys.
    - The cache is refreshed after max-age (Cache-Control, within [min_refetch, max_age]).
    - When a fetch fails, the last good keys stay in use. Without a usable key for the
      token: 503 with Retry-After if the key server is failing or no key set was ever
      fetched, 401 if the key set was fetched fine and simply lacks the kid.
    """

    def __init__(self, settings: Settings) -> None:
        self._url = settings.jwt_jwks if is_url(settings.jwt_jwks) else None
        self._issuer = settings.jwt_oidc_issuer
        self._ca = settings.jwt_ca
        self._min_refetch = settings.jwt_jwks_min_refetch
        self._max_age = settings.jwt_jwks_max_age
        self._timeout = FETCH_TIMEOUT
        self._max_bytes = MAX_DOCUMENT_BYTES
        self._lock = threading.Lock()  # held by the one fetch in progress
        self._set: KeySet | None = None
        self._expires = 0.0      # time.monotonic() after which the set is refreshed
        self._next_fetch = 0.0   # no fetch attempt before this time.monotonic()
        self._attempts = 0
        self._failure: str | None = None  # why the last attempt failed; None: it worked
        self._opener: urllib.request.OpenerDirector | None = None

    def lookup(self, kid: str | None, alg: str) -> JWKey:
        if self._set is None:
            self._refresh(wait=True, why="first token")
        elif time.monotonic() >= self._expires:
            self._refresh(wait=False, why="max-age reached")
        if self._set is not None:
            found = self._set.find(kid, alg)
            if found is None:
                self._refresh(wait=True, why=f"token names kid {_short(kid)!r}, not in the set")
                found = self._set.find(kid, alg)
            if found is not None:
                return found
            if self._failure is None:
                raise Unauthorized(f"no key with kid {_short(kid)!r}")
        retry = max(1, math.ceil(self._next_fetch - time.monotonic()))
        raise Unavailable("the identity provider's signing keys cannot be obtained; "
                          "try again later", retry_after=retry)

    def holds(self, key: JWKey) -> bool:
        """Whether `key` is still published (refreshing the set first when it is due)."""
        if time.monotonic() >= self._expires:
            self._refresh(wait=False, why="max-age reached")
        return self._set is not None and key in self._set.keys

    def _refresh(self, wait: bool, why: str) -> None:
        """Fetch the key set, unless the rate limit forbids it or another request just did.
        Logged only when a fetch happens: made-up kids cannot flood the log."""
        seen = self._attempts
        if not wait and time.monotonic() < self._next_fetch:
            return
        # Waiting covers a fetch in progress (each socket operation and the whole answer
        # are bounded by the timeout).
        if not self._lock.acquire(timeout=2 * self._timeout + 1) if wait else \
                not self._lock.acquire(blocking=False):
            return
        try:
            # Another request fetched while this one waited, or the rate limit applies.
            if self._attempts != seen or time.monotonic() < self._next_fetch:
                return
            self._attempts += 1
            self._next_fetch = time.monotonic() + self._min_refetch
            log.info("fetching signing keys from %s: %s", self._where(), why)
            try:
                keys, ttl = self._fetch()
            except Exception as exc:
                # Never a 500 and never a key: whatever went wrong, the old set stays.
                self._failure = f"{type(exc).__name__}: {exc}"[:300]
                self._next_fetch = time.monotonic() + self._min_refetch
                log.warning("fetching signing keys from %s failed (%s); %s", self._where(),
                            self._failure, "keeping the last good key set"
                            if self._set is not None else "no key set yet")
                return
            self._set, self._failure = KeySet(keys), None
            self._expires = time.monotonic() + ttl
            self._next_fetch = time.monotonic() + self._min_refetch
            log.info("signing keys from %s: kids %s; next refresh in %d s", self._where(),
                     [_short(k.kid) for k in keys], ttl)
        finally:
            self._lock.release()

    def _where(self) -> str:
        return _safe_url(self._url) if self._url else f"issuer {self._issuer}"

    def _fetch(self) -> tuple[list[JWKey], int]:
        if self._url is None:
            self._url = self._discover()
        doc, cache_control = self._get_json(self._url)
        try:
            keys = parse_jwks(doc)
        except ValueError as exc:
            raise KeyFetchError(str(exc)) from exc
        if not keys:
            raise KeyFetchError("the key set holds no usable RS256/ES256 signing key")
        return keys, cache_seconds(cache_control, self._min_refetch, self._max_age)

    def _discover(self) -> str:
        """OIDC Discovery 1.0 section 4: `jwks_uri` of the issuer's configuration, whose
        `issuer` must be exactly the configured one."""
        assert self._issuer is not None
        where = self._issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc, _ = self._get_json(where)
        if not isinstance(doc, dict) or doc.get("issuer") != self._issuer:
            found = doc.get("issuer") if isinstance(doc, dict) else None
            raise KeyFetchError(f"{_safe_url(where)} names issuer {_short(found)!r}, "
                                f"not {self._issuer!r}")
        uri = doc.get("jwks_uri")
        if not isinstance(uri, str) or not is_url(uri):
            raise KeyFetchError(f"{_safe_url(where)} has no http(s) jwks_uri")
        if urlsplit(self._issuer).scheme == "https" and urlsplit(uri).scheme != "https":
            raise KeyFetchError(f"{_safe_url(where)}: jwks_uri is not https")
        log.info("issuer %s publishes its keys at %s", self._issuer, _safe_url(uri))
        return uri

    def _get_json(self, url: str) -> tuple[Any, str | None]:
        if self._opener is None:
            # Certificates are verified: system CAs, or only GATEWAY_JWT_CA when it is set.
            context = ssl.create_default_context(cafile=self._ca)
            self._opener = urllib.request.build_opener(
                _NoRedirect(), urllib.request.HTTPSHandler(context=context))
        # is_url() admitted only http and https URLs
        request = urllib.request.Request(url, headers={  # noqa: S310
            "Accept": "application/json", "User-Agent": "ovn-nb-gateway"})
        deadline = time.monotonic() + self._timeout
        with self._opener.open(request, timeout=self._timeout) as resp:
            if resp.status != 200:  # urllib raises for the others, not for 201..299
                raise KeyFetchError(f"status {resp.status}, expected 200")
            length = _digits(resp.headers.get("Content-Length", ""))
            if length is not None and length > self._max_bytes:
                raise KeyFetchError(f"answer of {length} bytes, at most {self._max_bytes}")
            body = b""
            while chunk := resp.read1(65536):
                body += chunk
                if len(body) > self._max_bytes:
                    raise KeyFetchError(f"answer over {self._max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise KeyFetchError(f"answer took over {self._timeout:g} s")
            cache_control = resp.headers.get("Cache-Control")
        try:
            return json.loads(body), cache_control
        except ValueError as exc:
            raise KeyFetchError("answer is not JSON") from exc


def _key_matches(key: Any, alg: str) -> bool:
    return isinstance(key, rsa.RSAPublicKey) if alg == "RS256" else \
        isinstance(key, ec.EllipticCurvePublicKey)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    for claim in _TIME_CLAIMS:
        # PyJWT compares int(value): a string such as "9999999999" would pass as a number.
        value = claims.get(claim)
        if (claim in claims or claim == "exp") and (
                not isinstance(value, int | float) or isinstance(value, bool)
                or not math.isfinite(value)):
            raise Unauthorized(f"claim {claim} must be a number (NumericDate)")
    sub, tenant, scope = claims.get("sub"), claims.get("tenant"), claims.get("scope", "")
    if not isinstance(sub, str) or not sub:
        raise Unauthorized("claim sub must be a non-empty string")
    if not isinstance(tenant, str) or not TENANT_RE.fullmatch(tenant):
        raise Unauthorized("claim tenant must match ^[a-z0-9][a-z0-9-]{0,62}$")
    if not isinstance(scope, str) or not SCOPE_RE.fullmatch(scope):
        raise Unauthorized("claim scope must be scope tokens separated by single spaces")
    return Principal(sub=sub, tenant=tenant, scopes=frozenset(scope.split(" ")) - {""})


def mint(secret: str, tenant: str, scope: str, sub: str = "dev", ttl: int = 3600,
         issuer: str | None = None, audience: str | None = None) -> str:
    """An HS256 token for development and scripts."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "tenant": tenant, "scope": scope,
                              "iat": now, "exp": now + ttl}
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")


def jwks_json(keys: list[dict[str, Any]]) -> str:
    return json.dumps({"keys": keys})

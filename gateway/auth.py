"""Bearer tokens -> Principal, and the scope rules of the contract."""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from gateway.config import Settings
from gateway.errors import Forbidden, Unauthorized

TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# RFC 6749 3.3: scope tokens (printable ASCII except '"' and backslash), single spaces.
_SCOPE_CHARS = r"[\x21\x23-\x5b\x5d-\x7e]+"
SCOPE_RE = re.compile(rf"(?:{_SCOPE_CHARS}(?: {_SCOPE_CHARS})*)?")
_TIME_CLAIMS = ("exp", "nbf", "iat")
FAMILIES = ("networks", "policies", "load-balancers", "gateways", "dns")
_ASYMMETRIC = ("RS256", "ES256")
_CACHE_SIZE = 4096


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
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._public_key: Any = None
        self._verified: dict[str, tuple[float, Principal]] = {}
        self._jwks: jwt.PyJWKSet | None = None
        if settings.jwt_public_key:
            self._public_key = load_pem_public_key(Path(settings.jwt_public_key).read_bytes())
        if settings.jwt_jwks:
            self._jwks = jwt.PyJWKSet.from_json(Path(settings.jwt_jwks).read_text())

    def _key_for(self, header: dict[str, Any]) -> tuple[Any, str]:
        alg = header.get("alg")
        if alg == "HS256" and self._secret:
            return self._secret, alg
        if alg in _ASYMMETRIC:
            if self._jwks is not None and header.get("kid"):
                for key in self._jwks.keys:
                    if key.key_id == header["kid"] and key.algorithm_name in (alg, None):
                        return key.key, alg
            if self._public_key is not None and _key_matches(self._public_key, alg):
                return self._public_key, alg
        raise Unauthorized(f"token algorithm {alg!r} is not accepted here")

    def verify(self, token: str) -> Principal:
        """Verified tokens are remembered until they expire: the check is deterministic."""
        cached = self._verified.get(token)
        if cached is not None and cached[0] > time.time():
            return cached[1]
        principal, expires = self._verify(token)
        if len(self._verified) >= _CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (expires, principal)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("malformed token") from exc
        key, alg = self._key_for(header)
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
        return principal_from_claims(claims), float(claims["exp"])


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

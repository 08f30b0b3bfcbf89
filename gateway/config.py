"""Settings, read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_QUOTAS = {
    "networks": 100,
    "ports": 1000,
    "policies": 100,
    "load_balancers": 50,
    "gateways": 20,
    "floating_ips": 50,
    "dns_records": 500,
}


class ConfigError(Exception):
    """The configuration cannot work; the message says what to set."""


@dataclass(frozen=True)
class Settings:
    nb_db: str = "unix:/var/run/ovn/ovnnb_db.sock"
    sb_db: str | None = None  # OVN_SB_DB: the southbound database, when one is used
    ssl_key: str | None = None
    ssl_cert: str | None = None
    ssl_ca: str | None = None
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_jwks: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    bind: str = "127.0.0.1:8080"
    workers: int = 2
    threads: int = 8
    log_level: str = "INFO"
    cors_origins: tuple[str, ...] = ()
    ovn_timeout: float = 10.0
    retry_after: int = 2
    leader_only: bool = True
    quotas: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_QUOTAS))
    mac_prefix: str = "0a:58"
    # Chassis for gateway ports, highest priority first; empty: the southbound's chassis
    # marked with ovn-cms-options=enable-chassis-as-gw.
    gateway_chassis: tuple[str, ...] = ()

    def validate(self) -> None:
        if not (self.jwt_secret or self.jwt_public_key or self.jwt_jwks):
            raise ConfigError(
                "no token verification configured: set GATEWAY_JWT_SECRET (HS256), "
                "GATEWAY_JWT_PUBLIC_KEY (PEM file) or GATEWAY_JWT_JWKS (JWKS file)"
            )
        if self.jwt_secret is not None and len(self.jwt_secret) < 32:
            raise ConfigError("GATEWAY_JWT_SECRET must be at least 32 characters")
        for path in (self.jwt_public_key, self.jwt_jwks):
            if path and not Path(path).is_file():
                raise ConfigError(f"token key file not found: {path}")
        if self.nb_db.startswith("ssl:") or ",ssl:" in self.nb_db:
            if not (self.ssl_key and self.ssl_cert and self.ssl_ca):
                raise ConfigError(
                    "ssl: remotes need OVN_NB_SSL_KEY, OVN_NB_SSL_CERT and OVN_NB_SSL_CA"
                )
        if ":" not in self.bind:
            raise ConfigError("GATEWAY_BIND must be HOST:PORT")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    quotas = dict(DEFAULT_QUOTAS)
    for family in quotas:
        quotas[family] = _int(env, "GATEWAY_QUOTA_" + family.upper(),
                              quotas[family])
    origins = tuple(o.strip() for o in env.get("GATEWAY_CORS_ORIGINS", "").split(",")
                    if o.strip())
    return Settings(
        nb_db=env.get("OVN_NB_DB", Settings.nb_db),
        sb_db=env.get("OVN_SB_DB") or None,
        ssl_key=env.get("OVN_NB_SSL_KEY") or None,
        ssl_cert=env.get("OVN_NB_SSL_CERT") or None,
        ssl_ca=env.get("OVN_NB_SSL_CA") or None,
        jwt_secret=env.get("GATEWAY_JWT_SECRET") or None,
        jwt_public_key=env.get("GATEWAY_JWT_PUBLIC_KEY") or None,
        jwt_jwks=env.get("GATEWAY_JWT_JWKS") or None,
        jwt_issuer=env.get("GATEWAY_JWT_ISSUER") or None,
        jwt_audience=env.get("GATEWAY_JWT_AUDIENCE") or None,
        bind=env.get("GATEWAY_BIND", Settings.bind),
        workers=_int(env, "GATEWAY_WORKERS", Settings.workers),
        threads=_int(env, "GATEWAY_THREADS", Settings.threads),
        log_level=env.get("GATEWAY_LOG_LEVEL", Settings.log_level).upper(),
        cors_origins=origins,
        ovn_timeout=float(_int(env, "GATEWAY_OVN_TIMEOUT", int(Settings.ovn_timeout))),
        retry_after=_int(env, "GATEWAY_RETRY_AFTER", Settings.retry_after),
        leader_only=env.get("GATEWAY_LEADER_ONLY", "true").lower() not in ("0", "false", "no"),
        quotas=quotas,
        mac_prefix=env.get("GATEWAY_MAC_PREFIX", Settings.mac_prefix).lower(),
        gateway_chassis=tuple(c.strip() for c in env.get("GATEWAY_CHASSIS", "").split(",")
                              if c.strip()),
    )

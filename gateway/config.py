"""Settings, read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

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
    # GATEWAY_JWT_JWKS may be an http(s) URL; the OIDC issuer's discovery document names one.
    jwt_oidc_issuer: str | None = None
    jwt_ca: str | None = None  # CA file for TLS to the key server (default: system CAs)
    jwt_jwks_min_refetch: int = 10  # seconds between fetches of a JWKS URL, per process
    jwt_jwks_max_age: int = 300  # seconds a fetched JWKS is used before it is refreshed
    bind: str = "127.0.0.1:8080"
    # One worker: its one connection commits every write in shared transactions and its
    # one replica is the only one parsing each update (docs/operations.md, serving).
    workers: int = 1
    threads: int = 16
    # Group commit (gateway.ovn.batch): at most this many write requests per transaction,
    # and how long the committer waits for more before it starts one (0: it never waits;
    # batches form while the previous transaction is on its way).
    batch_max: int = 64
    batch_wait_ms: int = 0
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
    # GET /v1/events (docs/events.md): open streams per process (each holds a request
    # thread of its own: serve adds this many threads), per tenant, the window of events a
    # Last-Event-ID can resume from, and seconds between heartbeats of an idle stream.
    event_streams: int = 100
    event_streams_per_tenant: int = 20
    event_window: int = 10000
    event_heartbeat: int = 15

    def validate(self) -> None:
        if not (self.jwt_secret or self.jwt_public_key or self.jwt_jwks
                or self.jwt_oidc_issuer):
            raise ConfigError(
                "no token verification configured: set GATEWAY_JWT_SECRET (HS256), "
                "GATEWAY_JWT_PUBLIC_KEY (PEM file), GATEWAY_JWT_JWKS (JWKS file or URL) "
                "or GATEWAY_JWT_OIDC_ISSUER"
            )
        self._validate_jwt_urls()
        if self.jwt_secret is not None and len(self.jwt_secret) < 32:
            raise ConfigError("GATEWAY_JWT_SECRET must be at least 32 characters")
        for path in (self.jwt_public_key, self.jwt_ca,
                     None if is_url(self.jwt_jwks) else self.jwt_jwks):
            if path and not Path(path).is_file():
                raise ConfigError(f"token key file not found: {path}")
        if self.nb_db.startswith("ssl:") or ",ssl:" in self.nb_db:
            if not (self.ssl_key and self.ssl_cert and self.ssl_ca):
                raise ConfigError(
                    "ssl: remotes need OVN_NB_SSL_KEY, OVN_NB_SSL_CERT and OVN_NB_SSL_CA"
                )
        if ":" not in self.bind:
            raise ConfigError("GATEWAY_BIND must be HOST:PORT")
        if self.event_streams < 0 or self.event_streams_per_tenant < 0 \
                or self.event_window < 1 or self.event_heartbeat < 1:
            raise ConfigError("GATEWAY_EVENT_STREAMS and GATEWAY_EVENT_STREAMS_PER_TENANT "
                              "must be >= 0, GATEWAY_EVENT_WINDOW and GATEWAY_EVENT_HEARTBEAT "
                              ">= 1")

    def _validate_jwt_urls(self) -> None:
        if self.jwt_jwks and "://" in self.jwt_jwks and not is_url(self.jwt_jwks):
            raise ConfigError("GATEWAY_JWT_JWKS must be a file or an http(s)://HOST/... URL")
        issuer = self.jwt_oidc_issuer
        if issuer and (not is_url(issuer) or "?" in issuer or "#" in issuer):
            raise ConfigError("GATEWAY_JWT_OIDC_ISSUER must be an http(s)://HOST/... URL "
                              "without query or fragment")
        if issuer and self.jwt_jwks:
            raise ConfigError("set GATEWAY_JWT_JWKS or GATEWAY_JWT_OIDC_ISSUER, not both")
        if not 1 <= self.jwt_jwks_min_refetch <= self.jwt_jwks_max_age:
            raise ConfigError("need 1 <= GATEWAY_JWT_JWKS_MIN_REFETCH <= "
                              "GATEWAY_JWT_JWKS_MAX_AGE (seconds)")


def is_url(value: str | None) -> bool:
    """An http(s) URL with a host: where GATEWAY_JWT_JWKS is fetched rather than read."""
    if not value:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


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
        jwt_oidc_issuer=env.get("GATEWAY_JWT_OIDC_ISSUER") or None,
        jwt_ca=env.get("GATEWAY_JWT_CA") or None,
        jwt_jwks_min_refetch=_int(env, "GATEWAY_JWT_JWKS_MIN_REFETCH",
                                  Settings.jwt_jwks_min_refetch),
        jwt_jwks_max_age=_int(env, "GATEWAY_JWT_JWKS_MAX_AGE", Settings.jwt_jwks_max_age),
        bind=env.get("GATEWAY_BIND", Settings.bind),
        workers=_int(env, "GATEWAY_WORKERS", Settings.workers),
        threads=_int(env, "GATEWAY_THREADS", Settings.threads),
        batch_max=_int(env, "GATEWAY_BATCH_MAX", Settings.batch_max),
        batch_wait_ms=_int(env, "GATEWAY_BATCH_WAIT_MS", Settings.batch_wait_ms),
        log_level=env.get("GATEWAY_LOG_LEVEL", Settings.log_level).upper(),
        cors_origins=origins,
        ovn_timeout=float(_int(env, "GATEWAY_OVN_TIMEOUT", int(Settings.ovn_timeout))),
        retry_after=_int(env, "GATEWAY_RETRY_AFTER", Settings.retry_after),
        leader_only=env.get("GATEWAY_LEADER_ONLY", "true").lower() not in ("0", "false", "no"),
        quotas=quotas,
        mac_prefix=env.get("GATEWAY_MAC_PREFIX", Settings.mac_prefix).lower(),
        gateway_chassis=tuple(c.strip() for c in env.get("GATEWAY_CHASSIS", "").split(",")
                              if c.strip()),
        event_streams=_int(env, "GATEWAY_EVENT_STREAMS", Settings.event_streams),
        event_streams_per_tenant=_int(env, "GATEWAY_EVENT_STREAMS_PER_TENANT",
                                      Settings.event_streams_per_tenant),
        event_window=_int(env, "GATEWAY_EVENT_WINDOW", Settings.event_window),
        event_heartbeat=_int(env, "GATEWAY_EVENT_HEARTBEAT", Settings.event_heartbeat),
    )

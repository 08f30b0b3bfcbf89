"""A loopback identity provider for token tests: signing keys, a JWKS and an OIDC discovery
document served over real HTTP (or HTTPS), with failure modes and a count of every hit.

`KeyServer` serves `/realms/test/protocol/openid-connect/certs` (the JWKS, Keycloak's path)
and `/realms/test/.well-known/openid-configuration`; tests change `keys`, `mode`,
`cache_control`, `delay` or `discovery_issuer` while a gateway runs against it.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from helpers.tls import KeyPair

REALM = "/realms/test"
JWKS_PATH = f"{REALM}/protocol/openid-connect/certs"
MOVED_PATH = "/moved/certs"  # where "redirect" points: the same keys, always served
DISCOVERY_PATH = f"{REALM}/.well-known/openid-configuration"
# The modes of the JWKS path (see _answer); the discovery path always answers.
MODES = ("ok", "http-500", "http-203", "garbage", "not-jwks", "no-usable-key", "huge",
         "slow", "drip", "drop", "redirect")


class Signer:
    """Private keys by kid; their public halves as JWKs; tokens they sign."""

    def __init__(self) -> None:
        self.private: dict[str, Any] = {}

    def add(self, kid: str, kind: str = "EC") -> str:
        self.private[kid] = (ec.generate_private_key(ec.SECP256R1()) if kind == "EC"
                             else rsa.generate_private_key(public_exponent=65537,
                                                           key_size=2048))
        return kid

    def jwk(self, kid: str, **extra: Any) -> dict[str, Any]:
        key = self.private[kid]
        if isinstance(key, rsa.RSAPrivateKey):
            jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            return {**jwk, "kid": kid, "use": "sig", "alg": "RS256", **extra}
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        return {**jwk, "kid": kid, "use": "sig", "alg": "ES256", **extra}

    def alg(self, kid: str) -> str:
        return "RS256" if isinstance(self.private[kid], rsa.RSAPrivateKey) else "ES256"

    def token(self, kid: str | None, signed_by: str | None = None, alg: str | None = None,
              **claims: Any) -> str:
        """A token naming `kid` (None: no kid header), signed by `signed_by` (default: the
        key of `kid`)."""
        signer = signed_by or kid
        assert signer is not None
        now = int(time.time())
        payload = {"sub": "idp-user", "tenant": "acme", "scope": "read", "iat": now,
                   "exp": now + 300, **claims}
        payload = {k: v for k, v in payload.items() if v is not None}
        headers = {"kid": kid} if kid is not None else None
        return jwt.encode(payload, self.private[signer], algorithm=alg or self.alg(signer),
                          headers=headers)


class KeyServer:
    def __init__(self, tls: KeyPair | None = None) -> None:
        self.keys: list[dict[str, Any]] = []
        self.mode = "ok"
        self.delay = 0.0                 # seconds before every answer
        self.slow_seconds = 12.0         # "slow": silence before the answer
        self.cache_control: str | None = None
        self.discovery_issuer: str | None = None  # None: the real issuer URL
        self.jwks_uri: str | None = None          # None: this server's JWKS URL
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._tls = tls
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert, tls.key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def base(self) -> str:
        scheme = "https" if self._tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    @property
    def issuer(self) -> str:
        return self.base + REALM

    @property
    def jwks_url(self) -> str:
        return self.base + JWKS_PATH

    def count(self, path: str = JWKS_PATH) -> int:
        with self._lock:
            return self.hits[path]

    def start(self) -> KeyServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with server._lock:
                    server.hits[self.path] += 1
                try:
                    if server.delay:
                        time.sleep(server.delay)
                    if self.path == JWKS_PATH:
                        self._answer(json.dumps({"keys": server.keys}).encode())
                    elif self.path == MOVED_PATH:
                        self._send(200, json.dumps({"keys": server.keys}).encode())
                    elif self.path == DISCOVERY_PATH:
                        self._answer(json.dumps({
                            "issuer": server.discovery_issuer or server.issuer,
                            "jwks_uri": server.jwks_uri or server.jwks_url,
                            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                        }).encode())
                    else:
                        self._send(404, b"{}")
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                    pass  # the gateway gave up first, as it should

            def _send(self, status: int, body: bytes, length: bool = True,
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if length:
                    self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _answer(self, body: bytes) -> None:
                mode = server.mode
                if mode == "ok":
                    extra = ({"Cache-Control": server.cache_control}
                             if server.cache_control else {})
                    self._send(200, body, headers=extra)
                elif mode == "http-500":
                    self._send(500, b'{"error": "down"}')
                elif mode == "http-203":  # the keys, but not a plain 200
                    self._send(203, body)
                elif mode == "garbage":
                    self._send(200, b"<html>\x00\xff not json")
                elif mode == "not-jwks":
                    self._send(200, b'{"keys": {"kid": "x"}}')
                elif mode == "no-usable-key":
                    self._send(200, json.dumps({"keys": [
                        {**key, "use": "enc"} for key in server.keys]}).encode())
                elif mode == "huge":
                    # Valid JSON holding the real keys, 2 MiB long, without Content-Length.
                    pad = json.dumps({"keys": server.keys, "pad": "x" * (2 << 20)}).encode()
                    self._send(200, pad, length=False)
                elif mode == "slow":
                    time.sleep(server.slow_seconds)
                    self._send(200, body)
                elif mode == "drip":
                    # Headers at once, then a byte every 0.2 s: each read is quick, the
                    # whole answer is not.
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    for i in range(len(body)):
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                        time.sleep(0.2)
                elif mode == "drop":
                    self.connection.close()
                elif mode == "redirect":
                    self._send(302, b"", headers={"Location": server.base + MOVED_PATH})
                else:
                    raise AssertionError(f"unknown mode {mode}")

        return Handler


@contextmanager
def key_server(tls: KeyPair | None = None) -> Iterator[KeyServer]:
    server = KeyServer(tls).start()
    try:
        yield server
    finally:
        server.stop()


def unused_url() -> str:
    """An http URL on a loopback port nothing listens on (connection refused)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{JWKS_PATH}"

"""Certificates for TLS tests, and a northbound ovsdb-server that listens with TLS.

`CertificateAuthority` makes a self-signed CA with the `cryptography` package and signs
server and client certificates (EC P-256, valid for a day) into PEM files of a folder.
`TlsNbServer` runs an ovsdb-server on the northbound schema in a folder of its own with
`--private-key`, `--certificate`, `--ca-cert` and a `pssl:` remote on loopback (plus a unix
socket), known by its pidfile and stopped through it, never by name.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.sandbox.process import Daemon, check_port_free, create_db, wait_connectable

NB_SCHEMA = Path("/usr/share/ovn/ovn-nb.ovsschema")


@dataclass(frozen=True)
class KeyPair:
    key: Path
    cert: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ovn-nb-gateway tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


class CertificateAuthority:
    def __init__(self, directory: Path, name: str) -> None:
        self.directory, self.name = directory, name
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        public = self.key.public_key()
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name)).issuer_name(_name(name))
            .public_key(public).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.cert = directory / f"{name}-ca.pem"
        self.cert.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, common_name: str, server: bool) -> KeyPair:
        """A key and a certificate for COMMON_NAME (a server's also names 127.0.0.1)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(self.certificate.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=True, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False)
        )
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        pair = KeyPair(self.directory / f"{self.name}-{common_name}-key.pem",
                       self.directory / f"{self.name}-{common_name}-cert.pem")
        _write_key(key, pair.key)
        pair.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return pair


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TlsNbServer:
    """ovsdb-server on the NB schema, listening on pssl:PORT:127.0.0.1 and unix:DIR/nb.sock."""

    daemon = Daemon("nb", "ovsdb-server")

    def __init__(self, directory: Path, identity: KeyPair, ca_cert: Path) -> None:
        self.directory, self.identity, self.ca_cert = directory, identity, ca_cert
        self.port = 0

    @property
    def remote(self) -> str:
        return f"ssl:127.0.0.1:{self.port}"

    @property
    def unix(self) -> str:
        return f"unix:{self.directory / 'nb.sock'}"

    def start(self) -> TlsNbServer:
        db = self.directory / "nb.db"
        create_db(db, NB_SCHEMA, "install ovn-central")
        self.port = free_port()
        check_port_free(self.port)
        pid = self.daemon.launch(
            self.directory,
            f"--private-key={self.identity.key}", f"--certificate={self.identity.cert}",
            f"--ca-cert={self.ca_cert}",
            f"--remote=pssl:{self.port}:127.0.0.1", f"--remote=punix:{self.directory / 'nb.sock'}",
            str(db))
        wait_connectable(socket.AF_INET, ("127.0.0.1", self.port), pid)
        return self

    def stop(self) -> None:
        self.daemon.stop(self.directory)

"""Throwaway serving certificates: the one place that builds X.509 certificates.

Two shapes. The dev API server gets a leaf signed by a CA that lives only as long as the
cluster object (kubectl sends bearer tokens only over TLS and trusts the kubeconfig's CA).
The webhooks, when no cert-manager certificate is mounted, get a self-signed certificate that
is its own CA, so the same file serves as the caBundle of kopf's managed webhook configuration.
kopf would make one with certbuilder/oscrypto, which we do not ship; `cryptography` is locked.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class ServingCert:
    ca_pem: bytes  # what a client trusts; the certificate itself when self-signed
    cert_pem: bytes
    key_pem: bytes

    def write(self, folder: Path) -> tuple[str, str]:
        """tls.crt and tls.key (owner-only) in folder, for servers that load files."""
        certfile, keyfile = folder / "tls.crt", folder / "tls.key"
        certfile.write_bytes(self.cert_pem)
        keyfile.touch(mode=0o600)
        keyfile.write_bytes(self.key_pem)
        return str(certfile), str(keyfile)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory() as tmp:
            context.load_cert_chain(*self.write(Path(tmp)))
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_pem.decode())


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _alt_names(hosts: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:  # a host name, not an IP address
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def issue(
    hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
    *,
    common_name: str = "sandboxer-dev-apiserver",
    self_signed: bool = False,
    days: int = 30,
) -> ServingCert:
    """A serving certificate for hosts: CA-signed, or its own CA when self_signed."""
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = serialization.Encoding.PEM
    if self_signed:
        ca_key, ca_name, ca_pem = key, _name(common_name), b""
    else:
        ca_key, ca_name = ec.generate_private_key(ec.SECP256R1()), _name("sandboxer-dev-ca")
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        ca_pem = ca.public_bytes(pem)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(_alt_names(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=self_signed, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
        .public_bytes(pem)
    )
    return ServingCert(ca_pem=ca_pem or cert, cert_pem=cert, key_pem=_pem_key(key))


def self_signed(host: str) -> tuple[str, str]:
    """A one-year webhook certificate for host (and localhost) in a private temp dir."""
    cert = issue((host, "localhost"), common_name=host, self_signed=True, days=365)
    return cert.write(Path(tempfile.mkdtemp(prefix="sandboxer-webhook-")))

"""Certificates for the webhook: a CA and a serving certificate it signs.

The API server verifies the webhook against `caBundle`, so the serving certificate must name
the Service as the API server dials it: `<svc>.<ns>.svc`. Flyte has shipped certificates that
expired after a year and SANs fixed whatever the service was called, both real outages, so the
names come from flags and the default validity is ten years. Renewing re-signs the serving
certificate with the existing CA, so the caBundle in the webhook configuration stays valid.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_DAYS = 3650
CA_ORGANIZATION = "flyte.org"  # what Flyte's webhook puts in its CA; kept for drop-in parity

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Bundle:
    ca_cert: bytes
    ca_key: bytes
    cert: bytes
    key: bytes


def dns_names(service: str, namespace: str) -> list[str]:
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc"]


def _new_key(kind: str) -> PrivateKey:
    if kind == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unknown key type {kind!r}; expected ecdsa or rsa")


def _pem_key(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def new_ca(*, days: int = DEFAULT_DAYS, key_type: str = "ecdsa") -> tuple[bytes, bytes]:
    key = _new_key(key_type)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, CA_ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, "secretpatch webhook CA"),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def serving_cert(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    service: str,
    namespace: str,
    *,
    days: int = DEFAULT_DAYS,
    key_type: str = "ecdsa",
    dev: bool = False,
) -> tuple[bytes, bytes]:
    """A serving certificate for the Service, signed by the CA (with localhost for --dev)."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("the CA key must be an ECDSA or RSA key")
    key = _new_key(key_type)
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names(service, namespace)]
    if dev:
        names += [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    now = _now()
    not_after = min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{service}.{namespace}.svc")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def generate(
    service: str, namespace: str, *, days: int = DEFAULT_DAYS, key_type: str = "ecdsa", dev: bool = False
) -> Bundle:
    ca_cert, ca_key = new_ca(days=days, key_type=key_type)
    cert, key = serving_cert(ca_cert, ca_key, service, namespace, days=days, key_type=key_type, dev=dev)
    return Bundle(ca_cert, ca_key, cert, key)


def write_files(bundle: Bundle, directory: Path) -> list[Path]:
    """ca.crt, tls.crt and tls.key (what a kubernetes.io/tls Secret mounts), and ca.key for
    renewal. Keys are written 0600; files are replaced atomically so a watching server never
    reads half a file."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data, mode in (
        ("ca.crt", bundle.ca_cert, 0o644),
        ("ca.key", bundle.ca_key, 0o600),
        ("tls.key", bundle.key, 0o600),
        ("tls.crt", bundle.cert, 0o644),
    ):
        path = directory / name
        temporary = directory / f".{name}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
        written.append(path)
    return written


def secret_manifest(bundle: Bundle, name: str, namespace: str, instance: str | None = None) -> dict[str, Any]:
    """A kubernetes.io/tls Secret with ca.crt, tls.crt and tls.key (not the CA key); with
    `instance` (the webhook's Service), labelled as the rest of that installation is."""

    def encoded(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": "secretpatch",
                **({"app.kubernetes.io/instance": instance} if instance else {}),
            },
        },
        "type": "kubernetes.io/tls",
        "data": {
            "ca.crt": encoded(bundle.ca_cert),
            "tls.crt": encoded(bundle.cert),
            "tls.key": encoded(bundle.key),
        },
    }


def describe(cert_pem: bytes) -> dict[str, Any]:
    """Subject, issuer, SANs and validity of a certificate, for tests and `certs --show`."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n.value) for n in sans]
    except x509.ExtensionNotFound:
        names = []
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "sans": names,
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "days": (cert.not_valid_after_utc - cert.not_valid_before_utc).days,
    }

"""A cluster moving from Flyte may keep the certificate Secret Flyte wrote: `serve` must use it
as it is. Flyte's certificates (docs/flyte-parity.md, "The webhook around it"): a self-signed
CA and a server certificate it signs, both RSA-4096 with O=flyte.org and 99 years of validity,
the server's CN `<svc>.<ns>.svc` with DNS names only, keys in PKCS#1 PEM (`RSA PRIVATE KEY`),
files ca.crt, tls.crt and tls.key."""

from __future__ import annotations

import datetime
import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .test_server_e2e import free_port, serve_command

pytestmark = pytest.mark.slow

SERVICE, NAMESPACE = "flyte-pod-webhook", "flyte"
HOSTNAME = f"{SERVICE}.{NAMESPACE}.svc"


def pkcs1(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def flyte_certificates(folder: Path) -> None:
    now = datetime.datetime.now(datetime.UTC)
    until = now + datetime.timedelta(days=99 * 365)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "flyte.org")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, False, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    server_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, HOSTNAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "flyte.org"),
        ]
    )
    names = [SERVICE, f"{SERVICE}.{NAMESPACE}", HOSTNAME]
    cert = (
        x509.CertificateBuilder()
        .subject_name(server_name)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True)
    (folder / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "tls.key").write_bytes(pkcs1(key))


def readyz(port: int, ca: Path) -> bytes:
    """GET /readyz as the API server connects: TLS to the Service's DNS name, checked against ca.crt."""
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=HOSTNAME) as sock,
    ):
        sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        return data


def test_serve_uses_the_certificate_secret_flyte_wrote(tmp_path: Path) -> None:
    certs = tmp_path / "flyte-pod-webhook"
    flyte_certificates(certs)
    assert (certs / "tls.key").read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    port = free_port()
    log = tmp_path / "server.log"
    process = subprocess.Popen(
        serve_command(port, certs),
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        start_new_session=True,
    )
    try:
        answer = b""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not answer.startswith(b"HTTP/1.1 200"):
            assert process.poll() is None, log.read_text()
            try:
                answer = readyz(port, certs / "ca.crt")
            except OSError:
                time.sleep(0.1)
        assert answer.startswith(b"HTTP/1.1 200"), log.read_text()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)

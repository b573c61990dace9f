"""Certificate reload: a pair is served only once proven, and a refused pair leaves the old one
serving. Every check ends in a real TLS handshake on 127.0.0.1 against the live context."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from secretpatch.webhook import certs
from secretpatch.webhook.certwatch import CertWatcher


@dataclass
class Live:
    """A watched tls.crt/tls.key serving `old`, the live context, and what on_result was told."""

    directory: Path
    old: certs.Bundle
    context: ssl.SSLContext
    watcher: CertWatcher
    results: list[bool] = field(default_factory=list)

    @property
    def cert(self) -> Path:
        return self.directory / "tls.crt"

    @property
    def key(self) -> Path:
        return self.directory / "tls.key"


def bundle(name: str, key_type: str = "ecdsa") -> certs.Bundle:
    return certs.generate(name, "ns", days=1, dev=True, key_type=key_type)


def put(path: Path, data: bytes) -> None:
    """Replaces a file the way cert-manager's tools do: write aside, then rename over it."""
    aside = path.with_name(f".{path.name}.new")
    aside.write_bytes(data)
    os.replace(aside, path)


def start(directory: Path) -> Live:
    old = bundle("old")
    certs.write_files(old, directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "tls.crt", directory / "tls.key")
    results: list[bool] = []
    watcher = CertWatcher(
        context, directory / "tls.crt", directory / "tls.key", 0.01, on_result=results.append
    )
    return Live(directory, old, context, watcher, results)


@pytest.fixture
def live(tmp_path: Path) -> Live:
    return start(tmp_path / "live")


def served(context: ssl.SSLContext, *trusted: certs.Bundle) -> x509.Certificate:
    """The certificate a TLS server on 127.0.0.1 with `context` shows a client trusting the CAs."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(2)

        def answer() -> None:
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                conn.settimeout(2)
                with context.wrap_socket(conn, server_side=True):
                    pass

        thread = threading.Thread(target=answer)
        thread.start()
        client = ssl.create_default_context(cadata="".join(b.ca_cert.decode() for b in trusted))
        try:
            with (
                socket.create_connection(listener.getsockname(), timeout=2) as raw,
                client.wrap_socket(raw, server_hostname="localhost") as tls,
            ):
                der = tls.getpeercert(binary_form=True)
        finally:
            thread.join(2)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def identity(cert: x509.Certificate | bytes) -> tuple[str, int]:
    if isinstance(cert, bytes):
        cert = x509.load_pem_x509_certificate(cert)
    return cert.subject.rfc4514_string(), cert.serial_number


def refusal(caplog: pytest.LogCaptureFixture) -> str:
    """The reason of the one log line the refusal wrote, after checking its level and message."""
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "certificate reload refused; still serving the old certificate"
    return str(record.__dict__["fields"]["reason"])


def reissued(pair: certs.Bundle, start: datetime.timedelta, end: datetime.timedelta) -> bytes:
    """The pair's certificate signed again by its CA, valid from now+start to now+end."""
    ca_key = serialization.load_pem_private_key(pair.ca_key, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    cert = x509.load_pem_x509_certificate(pair.cert)
    now = datetime.datetime.now(datetime.UTC)
    builder = x509.CertificateBuilder(
        issuer_name=cert.issuer,
        subject_name=cert.subject,
        public_key=cert.public_key(),
        serial_number=x509.random_serial_number(),
        not_valid_before=now + start,
        not_valid_after=now + end,
        extensions=list(cert.extensions),
    )
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def test_a_key_that_does_not_match_the_certificate_is_refused_and_the_old_pair_still_serves(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    new = bundle("new")
    put(live.cert, new.cert)  # tls.key is still the old pair's key
    with caplog.at_level(logging.ERROR, logger="secretpatch.server"):
        assert live.watcher.check() is False
    assert identity(served(live.context, live.old, new)) == identity(live.old.cert)
    assert live.results == [False]
    reason = refusal(caplog)
    assert f"{live.key} does not match {live.cert}" in reason
    assert live.watcher.check() is False, "the same bad files are not tried again"
    assert live.results == [False]


def test_a_certificate_written_before_its_key_is_served_once_the_key_arrives(live: Live) -> None:
    new = bundle("new")
    put(live.cert, new.cert)
    assert live.watcher.check() is False
    assert identity(served(live.context, live.old, new)) == identity(live.old.cert)
    put(live.key, new.key)
    assert live.watcher.check() is True
    assert identity(served(live.context, live.old, new)) == identity(new.cert)
    assert live.results == [False, True]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("garbage certificate", "holds no PEM certificate"),
        ("garbage key", "holds no unencrypted PEM private key"),
        ("missing key", "cannot read"),
    ],
)
def test_garbage_or_missing_files_keep_the_old_pair_without_raising(
    live: Live, caplog: pytest.LogCaptureFixture, case: str, reason: str
) -> None:
    new = bundle("new")
    put(live.cert, b"garbage" if case == "garbage certificate" else new.cert)
    if case == "garbage key":
        put(live.key, b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    elif case == "missing key":
        live.key.unlink()
    with caplog.at_level(logging.ERROR, logger="secretpatch.server"):
        assert live.watcher.check() is False
    assert identity(served(live.context, live.old, new)) == identity(live.old.cert)
    assert live.results == [False]
    assert reason in refusal(caplog)


@pytest.mark.parametrize(
    ("start", "end", "reason"),
    [(-10, -1, "expired at"), (1, 10, "is not valid before")],
    ids=["expired", "not yet valid"],
)
def test_a_certificate_outside_its_validity_is_refused_with_the_reason_logged(
    live: Live, caplog: pytest.LogCaptureFixture, start: int, end: int, reason: str
) -> None:
    new = bundle("new")
    days = datetime.timedelta(days=1)
    put(live.key, new.key)
    put(live.cert, reissued(new, start * days, end * days))
    with caplog.at_level(logging.ERROR, logger="secretpatch.server"):
        assert live.watcher.check() is False
    assert identity(served(live.context, live.old, new)) == identity(live.old.cert)
    assert live.results == [False]
    assert f"{live.cert} {reason}" in refusal(caplog)


def test_a_good_pair_swapped_in_by_kubelet_is_served(tmp_path: Path) -> None:
    # kubelet's layout: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>, swapped by rename.
    root = tmp_path / "mount"
    old = start(tmp_path / "..v1")
    root.mkdir()
    (root / "..data").symlink_to(tmp_path / "..v1")
    for name in ("tls.crt", "tls.key"):
        (root / name).symlink_to(root / "..data" / name)
    results: list[bool] = []
    watcher = CertWatcher(old.context, root / "tls.crt", root / "tls.key", 0.01, on_result=results.append)
    assert watcher.check() is False
    new = bundle("new")
    certs.write_files(new, tmp_path / "..v2")
    (root / "..data_tmp").symlink_to(tmp_path / "..v2")
    os.replace(root / "..data_tmp", root / "..data")
    assert watcher.check() is True
    assert identity(served(old.context, old.old, new)) == identity(new.cert)
    assert results == [True]


def test_a_pair_of_another_key_type_is_refused_because_openssl_would_keep_serving_the_old_one(
    live: Live,
) -> None:
    new = bundle("new", key_type="rsa")
    put(live.key, new.key)
    put(live.cert, new.cert)
    assert live.watcher.check() is False
    assert identity(served(live.context, live.old, new)) == identity(live.old.cert)
    assert live.results == [False]


def test_the_watch_loop_goes_on_when_the_result_callback_raises(live: Live) -> None:
    def broken(ok: bool) -> None:
        live.results.append(ok)
        raise RuntimeError("metrics are down")

    async def until(results: list[bool]) -> None:
        for _ in range(200):
            if live.results == results:
                return
            await asyncio.sleep(0.01)

    new = bundle("new")
    live.watcher.on_result = broken

    async def watch() -> None:
        task = asyncio.create_task(live.watcher.run())
        put(live.cert, new.cert)
        await until([False])
        put(live.key, new.key)
        await until([False, True])
        assert not task.done()
        task.cancel()

    asyncio.run(watch())
    assert identity(served(live.context, live.old, new)) == identity(new.cert)


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="memfd_create is Linux-only")
def test_a_pair_reloads_with_no_writable_temporary_directory_and_leaves_no_descriptor_open(
    live: Live, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # What the Deployment's readOnlyRootFilesystem does to tempfile when /tmp is not mounted.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    made: list[tuple[str, int]] = []
    real = os.memfd_create

    def spy(name: str, flags: int) -> int:
        made.append((name, flags))
        return real(name, flags)

    monkeypatch.setattr(os, "memfd_create", spy)
    new = bundle("new")
    put(live.key, new.key)
    put(live.cert, new.cert)
    before = sorted(os.listdir("/proc/self/fd"))
    assert live.watcher.check() is True
    assert sorted(os.listdir("/proc/self/fd")) == before
    assert made == [("secretpatch-tls", os.MFD_CLOEXEC)] * 2
    assert identity(served(live.context, live.old, new)) == identity(new.cert)
    assert live.results == [True]


def test_without_memfd_create_a_private_temporary_directory_is_used_and_must_be_writable(
    live: Live, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delattr(os, "memfd_create", raising=False)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    new = bundle("new")
    put(live.key, new.key)
    put(live.cert, new.cert)
    assert live.watcher.check() is True
    assert list(scratch.iterdir()) == [], "the private copies are removed"
    assert identity(served(live.context, live.old, new)) == identity(new.cert)

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    newer = bundle("newer")
    put(live.key, newer.key)
    put(live.cert, newer.cert)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="secretpatch.server"):
        assert live.watcher.check() is False
    assert identity(served(live.context, new, newer)) == identity(new.cert)
    assert live.results == [True, False]
    assert "a temporary directory must be writable" in refusal(caplog)


def test_the_expiry_of_the_served_certificate_is_reported_and_warned_about_from_30_days(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The expiry goes to the metric at start and at each reload; a warning is logged once a
    day from 30 days before, and stops once a new pair is served."""
    directory = tmp_path / "expiring"
    pair = bundle("old")
    certs.write_files(pair, directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "tls.crt", directory / "tls.key")
    reported: list[datetime.datetime] = []
    watcher = CertWatcher(
        context, directory / "tls.crt", directory / "tls.key", 0.01, on_expiry=reported.append
    )
    expiry = x509.load_pem_x509_certificate(pair.cert).not_valid_after_utc
    assert reported == [expiry]
    day = datetime.timedelta(days=1)
    with caplog.at_level(logging.WARNING, logger="secretpatch.server"):
        assert watcher.warn_if_expiring(expiry - 31 * day) is False
        assert watcher.warn_if_expiring(expiry - 29 * day) is True
        assert watcher.warn_if_expiring(expiry - 29 * day + datetime.timedelta(hours=23)) is False
        assert watcher.warn_if_expiring(expiry - 28 * day) is True
    warnings = [r for r in caplog.records if "expires soon" in r.getMessage()]
    assert len(warnings) == 2
    assert warnings[0].fields["days_left"] == 29.0  # type: ignore[attr-defined]
    later = bundle("new")
    put(directory / "tls.key", later.key)
    put(directory / "tls.crt", reissued(later, -day, 400 * day))
    assert watcher.check() is True
    assert reported[-1] > expiry + 300 * day
    assert watcher.warn_if_expiring(expiry - 28 * day) is False, "the new one is far from expiry"

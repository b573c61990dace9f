"""Certificate reload that never leaves the webhook without a working pair.

`SSLContext.load_cert_chain` is not atomic: OpenSSL installs the new certificate before it
looks at the key, so a key that does not fit leaves the live context with a certificate it
cannot sign for, and every later handshake fails. The two files also change at different
moments (a tool writes tls.crt, then tls.key; kubelet swaps a `..data` symlink under both).
So each attempt reads both files once, proves that pair with `cryptography` and in a scratch
context, and only then loads the same bytes into the live one. A refused pair leaves the old
one serving; the next change of either file is tried afresh.

OpenSSL loads only from paths, and the Deployment has a read-only root filesystem and no /tmp
mount, so those bytes go to anonymous memory files (`memfd_create`), loaded as /proc/self/fd/<n>
and closed right after. Only without memfd_create (not Linux) is a temporary directory used.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import ssl
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

log = logging.getLogger("secretpatch.server")

# certs.py back-dates notBefore by five minutes; cert-manager does not, so a node whose clock
# is a little behind the issuer's would otherwise refuse every fresh certificate.
CLOCK_SKEW = datetime.timedelta(minutes=5)
# An expired serving certificate is the webhook outage operators report most (Flyte's and
# vault-k8s's): warn this long before, and again each day until a new one is served.
EXPIRY_WARNING = datetime.timedelta(days=30)
WARNING_EVERY = datetime.timedelta(days=1)

FileStamp = tuple[int, int, int] | None


class Refused(Exception):
    """The pair on disk cannot be served; the message says why, naming the file."""


class CertWatcher:
    """Swaps tls.crt/tls.key into the live SSL context only once the pair is proven to work.

    Files are compared by inode, mtime and size (stat follows kubelet's symlinks, so a swapped
    `..data` is a change). A refused stamp is remembered, so the same bad files are not retried
    every interval, but any later change of either file is. OpenSSL keeps one certificate per
    key type and a live context cannot drop one, so a pair whose key type differs from the
    served one is refused too: loading it would leave the old certificate in use."""

    def __init__(
        self,
        context: ssl.SSLContext,
        cert: Path,
        key: Path,
        interval: float,
        *,
        on_result: Callable[[bool], None] | None = None,
        on_expiry: Callable[[datetime.datetime], None] | None = None,
    ) -> None:
        self.context, self.cert, self.key, self.interval = context, cert, key, interval
        self.on_result = on_result
        self.on_expiry = on_expiry
        self._seen = self._stamp()
        self._warned: datetime.datetime | None = None
        self.not_after: datetime.datetime | None = None
        try:
            served = x509.load_pem_x509_certificate(cert.read_bytes())
        except (OSError, ValueError):
            self._kind: str | None = None
        else:
            self._kind = _key_kind(served)
            self._served(served)

    def _served(self, cert: x509.Certificate) -> None:
        self.not_after = cert.not_valid_after_utc
        self._warned = None
        if self.on_expiry is not None:
            self.on_expiry(self.not_after)

    def warn_if_expiring(self, now: datetime.datetime | None = None) -> bool:
        """Log a warning when the served certificate expires within EXPIRY_WARNING; once a
        day, so that it is seen without flooding the log. True when it warned."""
        now = now or datetime.datetime.now(datetime.UTC)
        if self.not_after is None or self.not_after - now > EXPIRY_WARNING:
            return False
        if self._warned is not None and now - self._warned < WARNING_EVERY:
            return False
        self._warned = now
        left = self.not_after - now
        log.warning(
            "the served certificate expires soon; renew it (docs/operations.md, Certificate rotation)",
            extra={
                "fields": {
                    "cert": str(self.cert),
                    "not_after": self.not_after.isoformat(),
                    "days_left": round(left.total_seconds() / 86400, 1),
                }
            },
        )
        return True

    def _stamp(self) -> tuple[FileStamp, FileStamp]:
        def one(path: Path) -> FileStamp:
            try:
                st = os.stat(path)
            except OSError:
                return None
            return (st.st_ino, st.st_mtime_ns, st.st_size)

        return one(self.cert), one(self.key)

    def check(self) -> bool:
        # Stamp before reading: a write in between is then seen as a change next time.
        stamp = self._stamp()
        if stamp == self._seen:
            return False
        self._seen = stamp
        fields: dict[str, object] = {"cert": str(self.cert), "key": str(self.key)}
        try:
            cert = self._load()
        except Refused as exc:
            fields["reason"], ok = str(exc), False
            log.error(
                "certificate reload refused; still serving the old certificate", extra={"fields": fields}
            )
        else:
            self._kind = _key_kind(cert)
            self._served(cert)
            fields.update(
                subject=cert.subject.rfc4514_string(), not_after=cert.not_valid_after_utc.isoformat()
            )
            log.info("certificate reloaded", extra={"fields": fields})
            ok = True
        if self.on_result is not None:
            self.on_result(ok)
        return ok

    def _load(self) -> x509.Certificate:
        try:
            cert_pem, key_pem = self.cert.read_bytes(), self.key.read_bytes()
        except OSError as exc:
            raise Refused(f"cannot read {exc.filename}: {exc.strerror}") from None
        cert = self._verify(cert_pem, key_pem)
        with _private(cert_pem, key_pem) as files:
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(*files)
            except OSError as exc:  # ssl.SSLError is an OSError
                raise Refused(f"OpenSSL refused {self.cert} with {self.key}: {exc}") from None
            # Not caught: the live context refusing what a fresh one took may have broken it.
            self.context.load_cert_chain(*files)
        return cert

    def _verify(self, cert_pem: bytes, key_pem: bytes) -> x509.Certificate:
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError:
            raise Refused(f"{self.cert} holds no PEM certificate") from None
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise Refused(f"{self.key} holds no unencrypted PEM private key") from None
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
            raise Refused(f"{self.key} does not match {self.cert}: their public keys differ")
        now = datetime.datetime.now(datetime.UTC)
        if cert.not_valid_after_utc <= now:
            raise Refused(f"{self.cert} expired at {cert.not_valid_after_utc.isoformat()}")
        if cert.not_valid_before_utc > now + CLOCK_SKEW:
            raise Refused(f"{self.cert} is not valid before {cert.not_valid_before_utc.isoformat()}")
        kind = _key_kind(cert)
        if self._kind is not None and kind != self._kind:
            raise Refused(f"{self.cert} has an {kind} key, the served one {self._kind}; restart to switch")
        return cert

    async def run(self) -> None:
        while True:
            try:
                self.warn_if_expiring()
            except Exception:
                log.exception("certificate expiry check failed; the watch goes on")
            await asyncio.sleep(self.interval)
            try:
                self.check()
            except Exception:
                log.exception("certificate check failed; the watch goes on")


def _key_kind(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ECDSA"
    return type(key).__name__


@contextlib.contextmanager
def _private(*blobs: bytes) -> Iterator[list[str]]:
    """Paths only this process can read, holding `blobs` until the block ends."""
    with contextlib.ExitStack() as stack:
        try:
            if hasattr(os, "memfd_create"):
                fds = (os.memfd_create("secretpatch-tls", os.MFD_CLOEXEC) for _ in blobs)
                files = [stack.enter_context(open(fd, "wb")) for fd in fds]  # each closed on exit
                paths = [f"/proc/self/fd/{out.fileno()}" for out in files]
            else:  # the directory is 0700, so its files are private whatever the umask
                temp = tempfile.TemporaryDirectory(prefix="secretpatch-cert-", ignore_cleanup_errors=True)
                scratch = stack.enter_context(temp)
                paths = [os.path.join(scratch, f"{n}.pem") for n in range(len(blobs))]
                files = [stack.enter_context(open(path, "xb")) for path in paths]
            for out, blob in zip(files, blobs, strict=True):
                out.write(blob)
                out.flush()
        except OSError as exc:
            hint = "without memfd_create a temporary directory must be writable, e.g. an emptyDir"
            raise Refused(f"cannot make a private copy of the pair to check it ({hint}): {exc}") from None
        yield paths

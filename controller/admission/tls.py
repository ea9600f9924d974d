"""TLS for the webhook server: certificate files with live reload, or an in-memory self-signed one.

Rules enforced:
- TLS 1.2 or newer, the ``ssl`` module's server defaults for ciphers.
- Certificate files are re-checked on each new TLS handshake (at most every
  ``check_interval`` seconds) through the context's SNI callback, which OpenSSL runs for every
  ClientHello. When the files changed (cert-manager rotates the Secret by swapping a symlink)
  a fresh context is built and that very connection switches to it. A half-written pair
  (certificate and key not matching) is ignored until the next check; the old pair keeps
  serving and the failure is logged.
- Without a certificate a self-signed one (ECDSA P-256, CA:TRUE, serverAuth, SANs for the given
  DNS names and 127.0.0.1/::1) is generated in memory. ``ssl`` can only load files, so it is
  written to a fresh private temp directory (0700, files 0600) that is removed at exit. With a
  read-only root filesystem the Helm chart mounts an ``emptyDir`` on ``/tmp`` for this.
"""

from __future__ import annotations

import atexit
import datetime as dt
import ipaddress
import logging
import os
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "ReloadingCertificate",
    "SelfSignedCertificate",
    "TLSConfigError",
    "self_signed_certificate",
    "server_ssl_context",
]

log = logging.getLogger("reprogate.tls")

_MAX_PEM_BYTES = 1024 * 1024


class TLSConfigError(ValueError):
    """The serving certificate or key cannot be used."""


def _new_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    for path in (cert_file, key_file):
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise TLSConfigError(f"cannot read {path}: {exc.strerror}") from None
        if size > _MAX_PEM_BYTES:
            raise TLSConfigError(f"{path} is larger than {_MAX_PEM_BYTES} bytes")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert_file), str(key_file))
    except ssl.SSLError as exc:
        raise TLSConfigError(
            f"cannot load certificate {cert_file} with key {key_file}: {exc.reason or exc}"
        ) from None
    except OSError as exc:
        raise TLSConfigError(f"cannot read {cert_file} or {key_file}: {exc}") from None
    return ctx


def _fingerprint(path: Path) -> tuple[int, int, int]:
    st = path.stat()  # follows the ..data symlink that Kubernetes swaps on update
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class ReloadingCertificate:
    """A serving context whose certificate follows the files on disk."""

    def __init__(self, cert_file: Path, key_file: Path, *, check_interval: float = 1.0) -> None:
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self.check_interval = check_interval
        self._lock = threading.Lock()
        self._current = _new_context(self.cert_file, self.key_file)
        self._seen = self._fingerprints()
        self._last_check = time.monotonic()
        self.reloads = 0
        # The outer context is what the server listens with; it hands each handshake over to
        # the newest loaded context.
        self.context = _new_context(self.cert_file, self.key_file)
        self.context.sni_callback = self._on_client_hello

    def _fingerprints(self) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
        try:
            return (_fingerprint(self.cert_file), _fingerprint(self.key_file))
        except OSError:
            return None

    def maybe_reload(self, *, force: bool = False) -> bool:
        """Reload when the files changed since the last load; True when a new pair is in use."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last_check < self.check_interval:
                return False
            self._last_check = now
            seen = self._fingerprints()
            if seen is None or (seen == self._seen and not force):
                return False
            try:
                fresh = _new_context(self.cert_file, self.key_file)
            except TLSConfigError as exc:
                # Mid-rotation the key may not match the certificate yet; keep the old pair.
                log.error("certificate reload failed, still serving the previous one: %s", exc)
                return False
            self._current = fresh
            self._seen = seen
            self.reloads += 1
            log.info("reloaded serving certificate from %s", self.cert_file)
            return True

    def _on_client_hello(
        self, conn: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, ctx: ssl.SSLContext
    ) -> int | None:
        try:
            self.maybe_reload()
            conn.context = self._current
        except Exception:  # an exception here would abort the handshake with no message
            log.exception("certificate selection failed")
        return None


def server_ssl_context(
    cert_file: str | Path, key_file: str | Path, *, check_interval: float = 1.0
) -> ssl.SSLContext:
    """A server context from PEM files that picks up rotated files on new connections.

    Raises TLSConfigError when the pair cannot be loaded now.
    """
    return ReloadingCertificate(
        Path(cert_file), Path(key_file), check_interval=check_interval
    ).context


@dataclass(frozen=True, slots=True)
class SelfSignedCertificate:
    """A generated serving certificate: its context, its PEM (the CA bundle for clients) and the
    private temp directory holding the files."""

    context: ssl.SSLContext
    cert_pem: bytes
    directory: Path

    @property
    def cert_file(self) -> Path:
        """The certificate file (also usable as the client's CA file)."""
        return self.directory / "tls.crt"

    @property
    def key_file(self) -> Path:
        """The private key file (mode 0600)."""
        return self.directory / "tls.key"

    def cleanup(self) -> None:
        """Remove the temp directory now (it is also removed at interpreter exit)."""
        shutil.rmtree(self.directory, ignore_errors=True)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def self_signed_certificate(
    hostnames: Sequence[str] = ("localhost",),
    *,
    valid_days: int = 365,
    directory: str | Path | None = None,
) -> SelfSignedCertificate:
    """Generate a self-signed serving certificate for ``hostnames`` (plus 127.0.0.1 and ::1).

    The files go into a new private directory under ``directory`` (default: the system temp
    dir), removed at exit.
    """
    if not hostnames:
        raise TLSConfigError("a self-signed certificate needs at least one host name")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0][:64])])
    sans: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = Path(tempfile.mkdtemp(prefix="reprogate-tls-", dir=directory))  # mode 0700
    atexit.register(shutil.rmtree, tmp, True)
    _write_private(tmp / "tls.crt", cert_pem)
    _write_private(tmp / "tls.key", key_pem)
    ctx = _new_context(tmp / "tls.crt", tmp / "tls.key")
    return SelfSignedCertificate(context=ctx, cert_pem=cert_pem, directory=tmp)

"""Sigstore trust roots: which Fulcio CAs, Rekor logs, CT logs and TSAs a signature may chain to.

Implements the ``TrustedRoot`` message of the Sigstore protobuf specs
(``sigstore_trustroot.proto``, media types ``application/vnd.dev.sigstore.trustedroot+json;
version=0.1`` and ``...trustedroot.v0.2+json``).

Rules enforced:
- A trusted root is parsed once, from bytes, under a size limit; anything malformed (bad JSON,
  missing ``validFor.start``, a ``validFor`` time without timezone, undecodable keys or
  certificates) is refused with ``EvidenceFormatError``, never half-loaded.
- Every key and CA carries its validity window; ``TimeRange`` is a closed interval
  (``start <= t <= end``) and a missing ``end`` means "still valid".
- A log key is looked up by its log id (sha256 of the log's DER public key, as the trusted root
  states it); an unknown log id is a ``VerificationError`` naming it, never "try every key".
- The production root is the one the ``sigstore`` package ships: loading it touches neither the
  network nor the disk beyond reading package data. Refreshing it over TUF is a separate,
  explicit call (``refresh_production_via_tuf``) for clusters that allow it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pydantic import ValidationError
from sigstore.errors import Error as SigstoreError
from sigstore.models import TrustedRoot
from sigstore_models.common.v1 import TimeRange
from sigstore_models.trustroot import v1 as trustroot_v1

from controller.verify.errors import EvidenceFormatError, VerificationError

__all__ = [
    "MAX_TRUSTED_ROOT_BYTES",
    "PRODUCTION_TUF_URL",
    "CertificateAuthority",
    "LogKey",
    "LogPublicKey",
    "TrustMaterial",
    "TrustRoots",
    "ValidityWindow",
    "production_trust",
    "refresh_production_via_tuf",
    "trust_from_json",
    "verify_with_log_key",
]

MAX_TRUSTED_ROOT_BYTES = 1024 * 1024
PRODUCTION_TUF_URL = "https://tuf-repo-cdn.sigstore.dev"
_PRODUCTION_STORE = "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"

LogPublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True, slots=True)
class ValidityWindow:
    """A closed time interval ``[start, end]``; ``end`` None means open-ended."""

    start: datetime
    end: datetime | None

    def contains(self, when: datetime) -> bool:
        """True when ``start <= when <= end`` (the trusted-root TimeRange is inclusive)."""
        return self.start <= when and (self.end is None or when <= self.end)

    def describe(self) -> str:
        end = self.end.isoformat() if self.end is not None else "open end"
        return f"[{self.start.isoformat()}, {end}]"


class LogKey(NamedTuple):
    """A transparency (Rekor) or certificate-transparency log key and when it may be used."""

    public_key: LogPublicKey
    valid_from: datetime
    valid_to: datetime | None

    @property
    def window(self) -> ValidityWindow:
        return ValidityWindow(self.valid_from, self.valid_to)


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A Fulcio CA or a timestamp authority: its chain (leaf/intermediate first, root last)."""

    certificates: tuple[x509.Certificate, ...]
    window: ValidityWindow
    uri: str | None

    @property
    def root(self) -> x509.Certificate:
        return self.certificates[-1]


def verify_with_log_key(key: LogPublicKey, signature: bytes, data: bytes) -> bool:
    """Check a log's signature over ``data``: ECDSA with the curve's hash, RSA PKCS#1 v1.5
    SHA-256, or Ed25519. Returns False on a bad signature instead of raising."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(_hash_for_curve(key.curve)))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def _hash_for_curve(curve: ec.EllipticCurve) -> hashes.HashAlgorithm:
    if isinstance(curve, ec.SECP384R1):
        return hashes.SHA384()
    if isinstance(curve, ec.SECP521R1):
        return hashes.SHA512()
    return hashes.SHA256()


class TrustMaterial:
    """One parsed, immutable Sigstore trusted root.

    Construct with ``trust_from_json`` or ``production_trust``; the constructor takes the
    already-validated protobuf model.
    """

    def __init__(self, name: str, inner: trustroot_v1.TrustedRoot) -> None:
        self._name = name
        self._inner = inner
        try:
            self._rekor = _load_log_keys(inner.tlogs, "transparency log")
            self._ct = _load_log_keys(inner.ctlogs, "CT log")
            self._fulcio = tuple(_load_ca(ca, "Fulcio CA") for ca in inner.certificate_authorities)
            self._tsas = tuple(
                _load_ca(ca, "timestamp authority") for ca in inner.timestamp_authorities
            )
        except EvidenceFormatError as exc:
            raise EvidenceFormatError(f"trust root {name!r}: {exc}") from exc
        self._sigstore_root: TrustedRoot | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    def fulcio_authorities(self) -> tuple[CertificateAuthority, ...]:
        """Fulcio CAs, each with its chain and the window in which it may issue."""
        return self._fulcio

    def fulcio_certificates(self) -> list[x509.Certificate]:
        """Every Fulcio CA certificate (roots and intermediates), expired ones included."""
        return [cert for ca in self._fulcio for cert in ca.certificates]

    def tsa_authorities(self) -> tuple[CertificateAuthority, ...]:
        """RFC 3161 timestamp authorities: chain from TSA signing cert to root, and window."""
        return self._tsas

    def rekor_log_ids(self) -> tuple[bytes, ...]:
        return tuple(self._rekor)

    def rekor_key(self, log_id: bytes) -> LogKey:
        """The Rekor key with this log id; ``VerificationError`` naming the id when unknown."""
        try:
            return self._rekor[log_id]
        except KeyError:
            raise VerificationError(
                f"transparency log id {log_id.hex()} is not in trust root {self._name!r}",
                hint="the entry comes from a log this trust root does not trust",
            ) from None

    def ct_key(self, log_id: bytes) -> LogKey:
        """The CT log key with this log id; ``VerificationError`` naming the id when unknown."""
        try:
            return self._ct[log_id]
        except KeyError:
            raise VerificationError(
                f"CT log id {log_id.hex()} is not in trust root {self._name!r}"
            ) from None

    @property
    def sigstore_trusted_root(self) -> TrustedRoot:
        """The same root as sigstore-python's ``TrustedRoot`` (for its ``Verifier``)."""
        with self._lock:
            if self._sigstore_root is None:
                try:
                    self._sigstore_root = TrustedRoot(self._inner)
                except SigstoreError as exc:
                    raise EvidenceFormatError(
                        f"trust root {self._name!r} cannot be used by sigstore-python: {exc}"
                    ) from exc
            return self._sigstore_root

    def __repr__(self) -> str:
        return f"TrustMaterial({self._name!r})"


def _window(raw: TimeRange | None, what: str) -> ValidityWindow:
    if raw is None:
        raise EvidenceFormatError(f"{what} has no validFor time range")
    for field_name, value in (("start", raw.start), ("end", raw.end)):
        # Protobuf JSON timestamps are RFC 3339 and must carry "Z" or an offset. A naive time
        # cannot be compared with a verified (aware) signing time, so refuse it here, by name,
        # rather than fail every verification under this root later.
        if value is not None and value.utcoffset() is None:
            raise EvidenceFormatError(
                f"{what} validFor.{field_name} {value.isoformat()} has no timezone: protobuf "
                "JSON timestamps are RFC 3339 and need 'Z' or an offset"
            )
    return ValidityWindow(raw.start, raw.end)


def _load_log_keys(
    logs: Iterable[trustroot_v1.TransparencyLogInstance], what: str
) -> dict[bytes, LogKey]:
    keys: dict[bytes, LogKey] = {}
    for log in logs:
        label = f"{what} {log.base_url}"
        if not log.public_key.raw_bytes:
            raise EvidenceFormatError(f"{label} has an empty public key")
        try:
            key = load_der_public_key(log.public_key.raw_bytes)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise EvidenceFormatError(f"{label} public key is not a DER public key") from exc
        if not isinstance(
            key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
        ):
            raise EvidenceFormatError(f"{label} uses an unsupported key type")
        window = _window(log.public_key.valid_for, label)
        keys[bytes(log.log_id.key_id)] = LogKey(key, window.start, window.end)
    return keys


def _load_ca(ca: trustroot_v1.CertificateAuthority, what: str) -> CertificateAuthority:
    label = f"{what} {ca.uri or ca.subject.common_name}"
    certs = []
    for raw in ca.cert_chain.certificates:
        try:
            certs.append(x509.load_der_x509_certificate(raw.raw_bytes))
        except ValueError as exc:
            raise EvidenceFormatError(f"{label} holds a malformed certificate") from exc
    if not certs:
        raise EvidenceFormatError(f"{label} has no certificates")
    return CertificateAuthority(tuple(certs), _window(ca.valid_for, label), ca.uri)


def trust_from_json(raw: bytes, name: str) -> TrustMaterial:
    """Parse an UNVERIFIED ``trusted_root.json``. ``EvidenceFormatError`` when malformed."""
    if len(raw) > MAX_TRUSTED_ROOT_BYTES:
        raise EvidenceFormatError(
            f"trust root {name!r} is {len(raw)} bytes, over the {MAX_TRUSTED_ROOT_BYTES} limit"
        )
    try:
        inner = trustroot_v1.TrustedRoot.from_json(raw)
    except (ValidationError, ValueError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) and exc.errors() else None
        where = ".".join(str(p) for p in first["loc"]) + ": " + first["msg"] if first else str(exc)
        raise EvidenceFormatError(
            f"trust root {name!r} is not a valid trusted_root.json ({where})"
        ) from exc
    if not inner.tlogs and not inner.certificate_authorities:
        raise EvidenceFormatError(f"trust root {name!r} names no transparency log and no CA")
    return TrustMaterial(name, inner)


@functools.lru_cache(maxsize=1)
def production_trust() -> TrustMaterial:
    """The Sigstore public-good trusted root shipped inside the ``sigstore`` package.

    Reads package data only: no network, no cache directory, no writes. Cached after first use.
    """
    resource = resources.files("sigstore") / "_store" / _PRODUCTION_STORE / "trusted_root.json"
    return trust_from_json(resource.read_bytes(), "production")


class TrustRoots:
    """Named trust roots. ``production`` is always available (loaded on first use)."""

    def __init__(self, roots: Iterable[TrustMaterial] = ()) -> None:
        self._roots: dict[str, TrustMaterial] = {}
        for material in roots:
            self.add(material.name, material)

    def add(self, name: str, material: TrustMaterial) -> None:
        self._roots[name] = material

    def names(self) -> tuple[str, ...]:
        return tuple(sorted({*self._roots, "production"}))

    def get(self, name: str) -> TrustMaterial:
        """The root called ``name``; ``VerificationError`` when no such root is configured."""
        found = self._roots.get(name)
        if found is not None:
            return found
        if name == "production":
            return production_trust()
        known = ", ".join(self.names())
        raise VerificationError(
            f"unknown trust root {name!r}",
            hint=f"define a TrustRoot named {name!r} (known: {known})",
        )


def refresh_production_via_tuf(cache_dir: Path) -> TrustMaterial:
    """Fetch the current production ``trusted_root.json`` over TUF (network), caching in
    ``cache_dir``. Opt-in only: bootstraps from the TUF root shipped with ``sigstore``."""
    from tuf.api.exceptions import DownloadError, RepositoryError
    from tuf.ngclient.updater import Updater

    bootstrap = (
        resources.files("sigstore") / "_store" / _PRODUCTION_STORE / "root.json"
    ).read_bytes()
    metadata_dir = cache_dir / "metadata"
    targets_dir = cache_dir / "targets"
    metadata_dir.mkdir(parents=True, exist_ok=True)
    targets_dir.mkdir(parents=True, exist_ok=True)
    try:
        updater = Updater(
            metadata_dir=str(metadata_dir),
            metadata_base_url=PRODUCTION_TUF_URL,
            target_dir=str(targets_dir),
            target_base_url=f"{PRODUCTION_TUF_URL}/targets/",
            bootstrap=bootstrap,
        )
        updater.refresh()
        info = updater.get_targetinfo("trusted_root.json")
        if info is None:
            raise VerificationError("the production TUF repository has no trusted_root.json")
        path = updater.find_cached_target(info) or updater.download_target(info)
    except (RepositoryError, DownloadError, OSError) as exc:
        raise VerificationError(
            f"TUF refresh of the production trust root failed: {type(exc).__name__}: {exc}"
        ) from exc
    return trust_from_json(Path(path).read_bytes(), "production")

"""Sigstore bundles (media types v0.1, v0.2, v0.3): message signatures and DSSE envelopes.

Implements the Sigstore bundle specification (``sigstore_bundle.proto``) and the client
verification procedure of the Sigstore client spec. Two engines, chosen from the bundle's
*structure* before any verification (never "try one, then the other"):

- sigstore-python's ``Verifier`` (conformance-tested) for certificate bundles whose log entry it
  supports (``hashedrekord`` 0.0.1/0.0.2, ``dsse`` 0.0.1) and that carry an inclusion proof with
  checkpoint. Its TSA check is replaced by ``timestamp.verify_timestamp_response`` so the
  trust-root validity window is the closed interval the spec defines.
- our own path for what sigstore-python refuses: v0.1 bundles with only a Signed Entry
  Timestamp, ``intoto`` 0.0.1/0.0.2 entries, and managed-key (``publicKey``) bundles.

Rules enforced on both paths:
- Known media type, exactly one log entry, size limits, strict base64/JSON; the certificate
  "chain" of a bundle may not contain a root CA.
- A verified time (SET-backed integrated time or RFC 3161 time) is required for certificates;
  the certificate must chain to a Fulcio CA, be valid at every verified time and carry a valid
  SCT; its identity must satisfy the authority. The identity is checked first, before any log,
  timestamp or chain work, so evidence from another signer costs little (a filter only).
- The log entry must be proven (SET and/or inclusion proof with checkpoint) and must record
  exactly this signature, signer and digest or payload; a certificate signer must be
  recorded as that certificate, not as its bare public key.
- Log and TSA times may not be later than ``now`` (the caller's clock) plus
  ``clock.CLOCK_SKEW``, the same tolerance as the cosign path.
- For DSSE bundles, a given artifact digest must be a subject digest of the in-toto statement.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc3161_client
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import ValidationError
from sigstore import errors as sigstore_errors
from sigstore._internal.merkle import verify_merkle_inclusion
from sigstore._internal.rekor.checkpoint import verify_checkpoint
from sigstore._internal.timestamp import TimestampSource, TimestampVerificationResult
from sigstore._internal.trust import KeyringPurpose
from sigstore.hashes import Hashed
from sigstore.models import Bundle, TransparencyLogEntry
from sigstore.verify import Verifier
from sigstore_models.bundle.v1 import Bundle as BundleModel
from sigstore_models.common.v1 import HashAlgorithm

from controller.verify import fulcio, keys, tlog
from controller.verify.authority import Authority, KeylessAuthority
from controller.verify.clock import latest_acceptable, refuse_future
from controller.verify.errors import EvidenceFormatError, VerificationError
from controller.verify.facts import SignerIdentity
from controller.verify.jsontext import load_json
from controller.verify.statement import names_digest, statement_subjects
from controller.verify.timestamp import parse_timestamp_response, verify_timestamp_response
from controller.verify.trustroot import TrustMaterial

__all__ = [
    "BUNDLE_MEDIA_TYPES",
    "MAX_BUNDLE_BYTES",
    "BundleResult",
    "ParsedBundle",
    "parse_bundle",
    "verify_bundle",
]

MAX_BUNDLE_BYTES = 32 * 1024 * 1024
MAX_TIMESTAMPS = 32
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"

_V01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"
_V02 = "application/vnd.dev.sigstore.bundle+json;version=0.2"
_V03 = (
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
)
BUNDLE_MEDIA_TYPES = (_V01, _V02, *_V03)


@dataclass(frozen=True)
class BundleResult:
    """What a verified bundle proved. ``payload`` is the DSSE payload (None for a message
    signature); ``message_digest`` the sha256 of the signed artifact for message signatures."""

    signer: SignerIdentity
    integrated_time: datetime | None
    payload_type: str | None
    payload: bytes | None
    message_digest: bytes | None


# --- parsing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Envelope:
    payload: bytes
    payload_type: str
    signatures: tuple[bytes, ...]

    def pae(self) -> bytes:
        kind = self.payload_type.encode()
        return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(self.payload), self.payload)


@dataclass(frozen=True)
class _Entry:
    log_index: int
    log_id: bytes
    kind: str
    version: str
    integrated_time: int | None
    set_signature: bytes | None
    canonicalized_body: bytes
    has_checkpoint_proof: bool
    has_proof: bool


@dataclass(frozen=True)
class _Parsed:
    media_type: str
    leaf: x509.Certificate | None
    intermediates: tuple[x509.Certificate, ...]
    entry: _Entry | None
    timestamps: tuple[bytes, ...]
    message_signature: bytes | None
    message_digest: bytes | None
    envelope: _Envelope | None


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise EvidenceFormatError(f"bundle {what} is not a base64 string")
    # Protobuf JSON bytes: standard or URL-safe alphabet, padding optional; line breaks are
    # tolerated as Go's decoder (which produced most bundles) tolerates them.
    text = value.replace("\r", "").replace("\n", "").replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EvidenceFormatError(f"bundle {what} is not valid base64") from exc


def _obj(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise EvidenceFormatError(f"bundle {what} is not a JSON object")
    return value


_INT64_MAX = 2**63 - 1
_DECIMAL = re.compile(r"-?[0-9]{1,20}")  # ASCII digits only: str.isdigit() accepts "²"


def _uint(value: object, what: str) -> int:
    # protobuf JSON encodes int64 as strings; accept both, refuse negatives, non-numbers and
    # anything outside int64.
    if isinstance(value, bool):
        raise EvidenceFormatError(f"bundle {what} is not an integer")
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        value = int(value)
    if not isinstance(value, int):
        raise EvidenceFormatError(f"bundle {what} is not an integer")
    if value < 0:
        raise VerificationError(f"bundle {what} {value} is negative")
    if value > _INT64_MAX:
        raise EvidenceFormatError(f"bundle {what} {value} is out of the int64 range")
    return value


def _cert(raw: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(raw)
    except ValueError as exc:
        raise EvidenceFormatError(f"bundle {what} is not a DER certificate") from exc


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        extensions = fulcio.certificate_extensions(cert, "bundle certificate")
        return bool(extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


@dataclass(frozen=True)
class ParsedBundle:
    """A Sigstore bundle read once, still UNVERIFIED: give it to :func:`verify_bundle` for
    every authority instead of having each verification parse the same bytes again."""

    raw: bytes
    inner: _Parsed

    @property
    def dsse_payload(self) -> bytes | None:
        """The UNVERIFIED DSSE payload, if the bundle carries an envelope."""
        return self.inner.envelope.payload if self.inner.envelope is not None else None

    @functools.cached_property
    def sigstore_bundle(self) -> Bundle:
        """sigstore-python's model of the same bytes (parsed on first use, then kept)."""
        return Bundle.from_json(self.raw)


def parse_bundle(raw: bytes) -> ParsedBundle:
    """Read an UNVERIFIED bundle: media type, material, entry, timestamps and content.

    Raises ``EvidenceFormatError`` (or ``VerificationError`` for a well-formed bundle of a
    shape we refuse) with the reason; nothing is verified here.
    """
    return ParsedBundle(raw, _parse(raw))


def _parse(raw: bytes) -> _Parsed:
    if len(raw) > MAX_BUNDLE_BYTES:
        raise EvidenceFormatError(f"bundle is {len(raw)} bytes, over the {MAX_BUNDLE_BYTES} limit")
    doc = _obj(load_json(raw, "bundle"), "document")
    media_type = doc.get("mediaType")
    if media_type not in BUNDLE_MEDIA_TYPES:
        raise EvidenceFormatError(f"unsupported bundle media type {media_type!r}")
    material = _obj(doc.get("verificationMaterial"), "verificationMaterial")

    leaf: x509.Certificate | None = None
    intermediates: list[x509.Certificate] = []
    if "certificate" in material:
        leaf = _cert(
            _b64(_obj(material["certificate"], "certificate").get("rawBytes"), "certificate"),
            "certificate",
        )
    elif "x509CertificateChain" in material:
        if media_type in _V03:
            raise EvidenceFormatError("a v0.3 bundle must carry a single certificate, not a chain")
        certs = _obj(material["x509CertificateChain"], "x509CertificateChain").get("certificates")
        if not isinstance(certs, list) or not certs:
            raise EvidenceFormatError("bundle certificate chain is empty")
        parsed = [
            _cert(_b64(_obj(c, "certificate").get("rawBytes"), "certificate"), "certificate")
            for c in certs
        ]
        leaf, intermediates = parsed[0], parsed[1:]
        if _is_ca(leaf):
            raise VerificationError("bundle's first certificate is a CA, not a signing certificate")
        # Old (cosign 1.x/2.x) bundles put the Fulcio root in this "chain". It is only ever
        # used as an untrusted intermediate: trust anchors come from the trust root alone.
    elif "publicKey" not in material:
        raise EvidenceFormatError("bundle has no certificate, certificate chain or public key")

    entries = material.get("tlogEntries", [])
    if not isinstance(entries, list) or len(entries) > 1:
        raise EvidenceFormatError("bundle must carry at most one transparency log entry")
    entry = _parse_entry(_obj(entries[0], "tlog entry")) if entries else None

    timestamps: list[bytes] = []
    tvd = material.get("timestampVerificationData")
    if tvd is not None:
        stamps = _obj(tvd, "timestampVerificationData").get("rfc3161Timestamps", [])
        if not isinstance(stamps, list) or len(stamps) > MAX_TIMESTAMPS:
            raise EvidenceFormatError(f"bundle carries more than {MAX_TIMESTAMPS} timestamps")
        timestamps = [
            _b64(_obj(s, "timestamp").get("signedTimestamp"), "signed timestamp") for s in stamps
        ]
        if len(set(timestamps)) != len(timestamps):
            raise VerificationError("bundle carries duplicate RFC 3161 timestamps")

    message_signature = message_digest = None
    envelope = None
    if "messageSignature" in doc and "dsseEnvelope" not in doc:
        ms = _obj(doc["messageSignature"], "messageSignature")
        message_signature = _b64(ms.get("signature"), "message signature")
        if "messageDigest" in ms:
            md = _obj(ms["messageDigest"], "messageDigest")
            if md.get("algorithm") != "SHA2_256":
                raise VerificationError(
                    f"unsupported message digest algorithm {md.get('algorithm')!r}"
                )
            message_digest = _b64(md.get("digest"), "message digest")
    elif "dsseEnvelope" in doc and "messageSignature" not in doc:
        env = _obj(doc["dsseEnvelope"], "dsseEnvelope")
        sigs = env.get("signatures")
        if not isinstance(sigs, list) or len(sigs) != 1:
            raise VerificationError("a bundle's DSSE envelope must carry exactly one signature")
        payload_type = env.get("payloadType")
        if not isinstance(payload_type, str):
            raise EvidenceFormatError("bundle DSSE envelope has no payloadType")
        envelope = _Envelope(
            payload=_b64(env.get("payload"), "DSSE payload"),
            payload_type=payload_type,
            signatures=tuple(
                _b64(_obj(s, "DSSE signature").get("sig"), "DSSE signature") for s in sigs
            ),
        )
    else:
        raise EvidenceFormatError(
            "bundle must carry exactly one of messageSignature and dsseEnvelope"
        )
    return _Parsed(
        media_type=media_type,
        leaf=leaf,
        intermediates=tuple(intermediates),
        entry=entry,
        timestamps=tuple(timestamps),
        message_signature=message_signature,
        message_digest=message_digest,
        envelope=envelope,
    )


def _parse_entry(raw: Mapping[str, Any]) -> _Entry:
    kv = _obj(raw.get("kindVersion"), "tlog entry kindVersion")
    kind, version = kv.get("kind"), kv.get("version")
    if not isinstance(kind, str) or not isinstance(version, str):
        raise EvidenceFormatError("bundle tlog entry kindVersion is incomplete")
    integrated = raw.get("integratedTime")
    promise = raw.get("inclusionPromise")
    proof = raw.get("inclusionProof")
    set_sig = None
    if promise is not None:
        set_sig = _b64(_obj(promise, "inclusionPromise").get("signedEntryTimestamp"), "SET")
    has_checkpoint = (
        isinstance(proof, Mapping)
        and isinstance(proof.get("checkpoint"), Mapping)
        and bool(proof["checkpoint"].get("envelope"))
    )
    return _Entry(
        log_index=_uint(raw.get("logIndex"), "tlog logIndex"),
        log_id=_b64(_obj(raw.get("logId"), "logId").get("keyId"), "tlog logId"),
        kind=kind,
        version=version,
        integrated_time=_integrated_time(integrated),
        set_signature=set_sig,
        canonicalized_body=_b64(raw.get("canonicalizedBody"), "canonicalizedBody"),
        has_checkpoint_proof=has_checkpoint,
        has_proof=proof is not None,
    )


def _integrated_time(raw: object) -> int | None:
    if raw in (None, "0", 0):
        return None
    value = _uint(raw, "tlog integratedTime")
    if value > tlog.MAX_INTEGRATED_TIME:
        raise EvidenceFormatError(f"bundle tlog integratedTime {value} is after the year 9999")
    return value


# --- shared checks -------------------------------------------------------------------------


def _statement_names_digest(payload_type: str, payload: bytes, digest: bytes) -> None:
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise VerificationError(
            f"DSSE payload type {payload_type!r} is not an in-toto statement, so it cannot "
            "name the artifact"
        )
    if not names_digest(statement_subjects(payload), f"sha256:{digest.hex()}"):
        raise VerificationError(f"no in-toto subject has the artifact digest sha256:{digest.hex()}")


def _artifact_digest(artifact: bytes | None, artifact_sha256: bytes | None) -> bytes | None:
    if artifact is None:
        return artifact_sha256
    digest = hashlib.sha256(artifact).digest()
    if artifact_sha256 is not None and artifact_sha256 != digest:
        raise VerificationError("the artifact bytes do not match the given artifact digest")
    return digest


# --- engine 1: sigstore-python -------------------------------------------------------------


class _IdentityPolicy:
    """sigstore-python ``VerificationPolicy`` backed by ``fulcio.check_identity``."""

    def __init__(self, authority: KeylessAuthority) -> None:
        self.authority = authority
        self.signer: SignerIdentity | None = None

    def verify(self, cert: x509.Certificate) -> None:
        self.signer = fulcio.check_identity(cert, self.authority)


class _Verifier(Verifier):
    """sigstore-python's verifier with our RFC 3161 check (closed trust-root window, and no
    time in the future of ``now``)."""

    def __init__(self, trust: TrustMaterial, now: datetime) -> None:
        super().__init__(trusted_root=trust.sigstore_trusted_root)
        self._trust = trust
        self._now = now

    def _verify_signed_timestamp(
        self, timestamp_response: rfc3161_client.TimeStampResponse, message: bytes
    ) -> TimestampVerificationResult | None:
        try:
            when = verify_timestamp_response(timestamp_response, message, self._trust)
        except VerificationError:
            return None
        # A verified TSA time in the future refuses the bundle (as on the cosign path): our
        # own VerificationError, which sigstore-python lets through.
        refuse_future(when, self._now, "RFC 3161 timestamp time")
        return TimestampVerificationResult(source=TimestampSource.TIMESTAMP_AUTHORITY, time=when)


def _verify_with_sigstore(
    holder: ParsedBundle,
    parsed: _Parsed,
    trust: TrustMaterial,
    authority: KeylessAuthority,
    digest: bytes | None,
    artifact: bytes | None,
    now: datetime,
) -> BundleResult:
    entry = parsed.entry
    if entry is not None and entry.integrated_time is not None:
        # sigstore-python trusts an integrated time backed by a SET however far ahead it is.
        refuse_future(
            datetime.fromtimestamp(entry.integrated_time, UTC),
            now,
            "transparency log integrated time",
        )
    # Cheap and local: a bundle from another identity is refused before sigstore-python's chain,
    # log and timestamp work (which checks the identity again through the policy).
    assert parsed.leaf is not None  # _use_sigstore_python chose this engine for certificates
    fulcio.check_identity(parsed.leaf, authority)
    policy = _IdentityPolicy(authority)
    try:
        bundle = holder.sigstore_bundle
        verifier = _Verifier(trust, now)
        if parsed.envelope is not None:
            payload_type, payload = verifier.verify_dsse(bundle, policy)
        else:
            if digest is None:
                raise VerificationError(
                    "a message-signature bundle needs the artifact or its digest"
                )
            target: bytes | Hashed = (
                artifact
                if artifact is not None
                else Hashed(algorithm=HashAlgorithm.SHA2_256, digest=digest)
            )
            verifier.verify_artifact(target, bundle, policy)
    except sigstore_errors.CertValidationError as exc:
        # sigstore-python calls the Fulcio chain a "timestamp certificate chain"; say what it is.
        raise VerificationError(
            f"certificate not issued by a trusted Fulcio CA of trust root {trust.name!r} ({exc})"
        ) from exc
    except sigstore_errors.Error as exc:
        raise VerificationError(f"bundle did not verify: {exc}") from exc
    except (ValidationError, ValueError) as exc:
        raise EvidenceFormatError(f"bundle is malformed: {exc}") from exc
    if policy.signer is None:  # pragma: no cover - the verifier always consults the policy
        raise VerificationError("bundle identity was not checked")
    when = _verified_time(parsed, trust)
    if parsed.envelope is not None:
        if digest is not None:
            _statement_names_digest(payload_type, payload, digest)
        return BundleResult(policy.signer, when, payload_type, payload, None)
    return BundleResult(policy.signer, when, None, None, digest)


def _verified_time(parsed: _Parsed, trust: TrustMaterial) -> datetime | None:
    """The time the engine relied on, for the result (already verified by the engine)."""
    entry = parsed.entry
    if entry is not None and entry.integrated_time is not None and entry.set_signature is not None:
        return datetime.fromtimestamp(entry.integrated_time, UTC)
    signature = parsed.envelope.signatures[0] if parsed.envelope else parsed.message_signature
    for token in parsed.timestamps:
        try:
            return verify_timestamp_response(
                parse_timestamp_response(token), signature or b"", trust
            )
        except VerificationError:
            continue
    return None


# --- engine 2: our own (SET-only v0.1, intoto entries, managed keys) -----------------------


def _prove_entry(
    raw: bytes, parsed: _Parsed, trust: TrustMaterial, now: datetime
) -> tlog.RekorEntry:
    entry = parsed.entry
    assert entry is not None
    if parsed.media_type != _V01 and not entry.has_checkpoint_proof:
        raise VerificationError("bundle log entry lacks an inclusion proof with checkpoint")
    if entry.has_proof and not entry.has_checkpoint_proof:
        # An inclusion proof without a signed checkpoint proves nothing; one that is present
        # but unverifiable is refused rather than ignored (sigstore-python does the same).
        raise VerificationError(
            "bundle inclusion proof has no checkpoint, so it cannot be verified"
        )
    body_b64 = base64.b64encode(entry.canonicalized_body).decode()
    rekor_entry: tlog.RekorEntry | None = None
    if entry.set_signature is not None and entry.integrated_time is not None:
        rekor_entry = tlog.verify_set(
            body_b64=body_b64,
            integrated_time=entry.integrated_time,
            log_index=entry.log_index,
            log_id=entry.log_id,
            signed_entry_timestamp=entry.set_signature,
            trust=trust,
            now=latest_acceptable(now),
        )
    if entry.has_checkpoint_proof:
        try:
            model = BundleModel.from_json(raw)
            sig_entry = TransparencyLogEntry(model.verification_material.tlog_entries[0])
            keyring = trust.sigstore_trusted_root.rekor_keyring(KeyringPurpose.VERIFY)
            verify_merkle_inclusion(sig_entry)
            verify_checkpoint(keyring, sig_entry)
        except sigstore_errors.Error as exc:
            raise VerificationError(f"bundle inclusion proof did not verify: {exc}") from exc
        except (ValidationError, ValueError) as exc:
            raise EvidenceFormatError(f"bundle inclusion proof is malformed: {exc}") from exc
    if rekor_entry is None:
        if entry.integrated_time is not None:
            raise VerificationError("bundle log entry has an integrated time but no SET")
        raise VerificationError(
            "bundle log entry has no Signed Entry Timestamp; without one it gives no verified time"
        )
    return rekor_entry


def _verified_times(
    parsed: _Parsed, rekor_entry: tlog.RekorEntry | None, trust: TrustMaterial, now: datetime
) -> list[datetime]:
    times = [rekor_entry.integrated_time] if rekor_entry is not None else []
    signature = parsed.envelope.signatures[0] if parsed.envelope else parsed.message_signature
    for token in parsed.timestamps:
        stamped = verify_timestamp_response(
            parse_timestamp_response(token), signature or b"", trust
        )
        refuse_future(stamped, now, "RFC 3161 timestamp time")
        times.append(stamped)
    return times


def _check_signature(
    key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey,
    signature: bytes,
    *,
    data: bytes | None,
    sha256_digest: bytes | None,
) -> None:
    """Verify over ``data``, or over a sha256 prehash when only the digest is known."""
    if data is not None:
        # the same rules as cosign's .sig/.att signatures, P-384 over SHA-256 included
        keys.verify_signature(key, signature, data, cosign_compat=True)
        return
    if isinstance(key, ed25519.Ed25519PublicKey):
        raise VerificationError("an Ed25519 signature needs the artifact bytes, not a digest")
    if sha256_digest is None:
        raise VerificationError("a message signature needs the artifact or its sha256 digest")
    # hashedrekord signs the sha256 of the artifact, whatever the key's curve
    prehashed = utils.Prehashed(hashes.SHA256())
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, sha256_digest, ec.ECDSA(prehashed))
        else:
            key.verify(signature, sha256_digest, padding.PKCS1v15(), prehashed)
    except InvalidSignature:
        raise VerificationError("signature does not verify with the signer's key") from None


def _verify_own(
    raw: bytes,
    parsed: _Parsed,
    trust: TrustMaterial,
    authority: Authority,
    digest: bytes | None,
    now: datetime,
) -> BundleResult:
    identity: SignerIdentity | None = None
    if isinstance(authority, KeylessAuthority):
        if parsed.leaf is None:
            raise VerificationError(
                "bundle is signed with a key, but the authority expects a certificate identity"
            )
        # Cheap and local: a bundle from another identity is refused before the log, timestamp
        # and chain work below. Only a filter: acceptance still needs all of that.
        identity = fulcio.check_identity(parsed.leaf, authority)
    rekor_entry: tlog.RekorEntry | None = None
    if parsed.entry is not None:
        rekor_entry = _prove_entry(raw, parsed, trust, now)
    times = _verified_times(parsed, rekor_entry, trust, now)

    if isinstance(authority, KeylessAuthority):
        assert parsed.leaf is not None and identity is not None  # checked above
        if rekor_entry is None and authority.transparency_log == "required":
            raise VerificationError(
                f"authority {authority.name!r} requires a transparency log entry; the bundle "
                "has none"
                + ("" if times else ", and so no verified time for its certificate either")
            )
        if not times:
            raise VerificationError("bundle carries no verified time for its certificate")
        for verified_time in times:
            fulcio.verify_certificate(parsed.leaf, list(parsed.intermediates), trust, verified_time)
        signer = identity
        public_key = fulcio.certificate_key(parsed.leaf, "bundle certificate")
        signer_pem = parsed.leaf.public_bytes(Encoding.PEM)
    else:
        if parsed.leaf is not None:
            raise VerificationError(
                "bundle is signed with a certificate, but the authority is a key"
            )
        if rekor_entry is None and authority.transparency_log == "required":
            raise VerificationError(
                "authority requires a transparency log entry; the bundle has none"
            )
        try:
            public_key = keys.load_public_key(authority.public_key_pem)
        except EvidenceFormatError as exc:
            raise EvidenceFormatError(
                f"authority {authority.name!r} key is unusable: {exc}"
            ) from exc
        signer = SignerIdentity(
            authority=authority.name, kind="key", key_id=keys.key_id(public_key)
        )
        signer_pem = keys.public_key_pem(public_key)
    if not isinstance(
        public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
    ):
        raise VerificationError("signing key type is not supported")
    when = min(times) if times else None

    if parsed.envelope is not None:
        env = parsed.envelope
        _check_signature(public_key, env.signatures[0], data=env.pae(), sha256_digest=None)
        if rekor_entry is not None:
            tlog.check_intoto_or_dsse(
                rekor_entry,
                envelope_payload=env.payload,
                payload_type=env.payload_type,
                signatures=list(env.signatures),
                signer_pem=signer_pem,
                require_certificate=parsed.leaf is not None,
            )
        if digest is not None:
            _statement_names_digest(env.payload_type, env.payload, digest)
        return BundleResult(signer, when, env.payload_type, env.payload, None)

    assert parsed.message_signature is not None
    if digest is None:
        raise VerificationError("a message-signature bundle needs the artifact or its digest")
    if parsed.message_digest is not None and parsed.message_digest != digest:
        raise VerificationError("bundle message digest does not match the artifact")
    _check_signature(public_key, parsed.message_signature, data=None, sha256_digest=digest)
    if rekor_entry is not None:
        tlog.check_hashedrekord(
            rekor_entry,
            signature=parsed.message_signature,
            signer_pem=signer_pem,
            sha256_digest=digest,
            require_certificate=parsed.leaf is not None,
        )
    return BundleResult(signer, when, None, None, digest)


# --- entry point ---------------------------------------------------------------------------


def _use_sigstore_python(parsed: _Parsed) -> bool:
    entry = parsed.entry
    if parsed.leaf is None or entry is None:
        return False
    if (entry.kind, entry.version) not in {
        ("hashedrekord", "0.0.1"),
        ("hashedrekord", "0.0.2"),
        ("dsse", "0.0.1"),
    }:
        return False
    # sigstore-python insists on an inclusion proof; SET-only v0.1 bundles are ours.
    return not (parsed.media_type == _V01 and not entry.has_checkpoint_proof)


def verify_bundle(
    raw: bytes,
    *,
    trust: TrustMaterial,
    authority: Authority,
    artifact_sha256: bytes | None,
    artifact: bytes | None = None,
    now: datetime | None = None,
    parsed: ParsedBundle | None = None,
) -> BundleResult:
    """Verify an UNVERIFIED Sigstore bundle for ``authority`` under ``trust``.

    For message signatures the artifact (or its sha256) is required; for DSSE bundles a given
    digest must be an in-toto subject digest of the payload. Log and TSA times after
    ``now`` (default: the wall clock) plus ``clock.CLOCK_SKEW`` are refused. ``parsed``
    (from :func:`parse_bundle` of these same bytes) saves parsing again per authority.
    Raises ``VerificationError`` (``EvidenceFormatError`` for malformed input) with the reason.
    """
    if artifact_sha256 is not None and len(artifact_sha256) != 32:
        raise EvidenceFormatError("artifact sha256 digest must be 32 bytes")
    current = now if now is not None else datetime.now(UTC)
    if parsed is None:
        parsed = parse_bundle(raw)
    elif parsed.raw is not raw and parsed.raw != raw:
        raise ValueError("parsed bundle was parsed from other bytes")
    inner = parsed.inner
    digest = _artifact_digest(artifact, artifact_sha256)
    if isinstance(authority, KeylessAuthority) and _use_sigstore_python(inner):
        return _verify_with_sigstore(parsed, inner, trust, authority, digest, artifact, current)
    return _verify_own(raw, inner, trust, authority, digest, current)

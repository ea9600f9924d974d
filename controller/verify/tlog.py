"""Rekor transparency-log entries: Signed Entry Timestamps and entry-body consistency.

Implements cosign's SET check (``pkg/cosign/tlog.go`` VerifySET: ECDSA over the canonical JSON
of ``{body, integratedTime, logID, logIndex}``) and the consistency checks between a log entry
and the evidence it claims to record, for Rekor v1 entry types ``hashedrekord`` v0.0.1,
``rekord`` v0.0.1 (``x509`` format; cosign v1.0 to v1.3), ``intoto`` v0.0.1 / v0.0.2 and
``dsse`` v0.0.1 (shapes from ``rekor/pkg/types``).

Rules enforced:
- The SET is verified with the log key the trust root names for ``logID``; that key must have
  been valid at the integrated time. Unknown log ids are refused by name.
- ``integratedTime`` may not be in the future (past ``now``, which callers pass with their
  clock-skew tolerance added) nor after the year 9999; ``logIndex`` and ``integratedTime`` may
  not be negative; the body must be base64 JSON with ``kind``, ``apiVersion`` and ``spec``.
- Entry bodies must record exactly this signature, this signer (compared as parsed keys and
  certificates, never as PEM text) and this digest or payload; a mismatch means the log entry
  belongs to other evidence (CVE-2022-36056 class).
- For keyless (certificate) signers the entry must record the certificate itself, equal in
  DER; a bare public key is refused, as the identity would then be missing from the log.
  Key signers may be recorded as a bare key or a certificate holding that key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from controller.verify.errors import EvidenceFormatError, VerificationError
from controller.verify.jsontext import load_json_object
from controller.verify.trustroot import TrustMaterial, verify_with_log_key

__all__ = [
    "MAX_INTEGRATED_TIME",
    "MAX_SET_ANNOTATION_BYTES",
    "RekorEntry",
    "check_hashedrekord",
    "check_intoto_or_dsse",
    "verify_cosign_set",
    "verify_set",
]

MAX_SET_ANNOTATION_BYTES = 16 * 1024 * 1024
# an entry body arrives base64-encoded inside an annotation or bundle of at most that size
MAX_ENTRY_BODY_BYTES = MAX_SET_ANNOTATION_BYTES
# 9999-12-31T23:59:59Z: the last second a datetime can hold. Checked before converting, so a
# hostile integratedTime is a refusal, not an OverflowError.
MAX_INTEGRATED_TIME = 253_402_300_799
_MAX_KEY_PEM_BYTES = 64 * 1024


@dataclass(frozen=True)
class RekorEntry:
    """A Rekor entry whose SET (or inclusion proof) verified. ``body`` is the parsed
    canonicalized body; ``canonicalized_body`` its exact bytes."""

    kind: str
    api_version: str
    body: Mapping[str, Any]
    integrated_time: datetime
    log_index: int
    log_id: str  # hex
    canonicalized_body: bytes = field(default=b"", repr=False)

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.body.get("spec")
        if not isinstance(spec, Mapping):
            raise EvidenceFormatError("transparency log entry body has no spec object")
        return spec


def _b64decode(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise EvidenceFormatError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EvidenceFormatError(f"{what} is not valid base64") from exc


def _int(value: object, what: str) -> int:
    # JSON numbers only: bool is an int in Python and must not pass.
    if isinstance(value, bool) or not isinstance(value, int):
        raise EvidenceFormatError(f"{what} is not an integer")
    return value


def parse_entry_body(canonicalized_body: bytes) -> tuple[str, str, Mapping[str, Any]]:
    """(kind, apiVersion, body) of a canonicalized Rekor entry body."""
    body = load_json_object(
        canonicalized_body, "transparency log entry body", max_bytes=MAX_ENTRY_BODY_BYTES
    )
    kind, version = body.get("kind"), body.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(version, str):
        raise EvidenceFormatError("transparency log entry body lacks kind or apiVersion")
    if not isinstance(body.get("spec"), dict):
        raise EvidenceFormatError("transparency log entry body lacks a spec object")
    return kind, version, body


def verify_set(
    *,
    body_b64: str,
    integrated_time: int,
    log_index: int,
    log_id: bytes,
    signed_entry_timestamp: bytes,
    trust: TrustMaterial,
    now: datetime | None = None,
) -> RekorEntry:
    """Verify a Signed Entry Timestamp over an entry's fields; return the entry it vouches for."""
    if log_index < 0:
        raise VerificationError(f"transparency log index {log_index} is negative")
    if integrated_time < 0:
        raise VerificationError(f"transparency log integrated time {integrated_time} is negative")
    if integrated_time > MAX_INTEGRATED_TIME:
        raise VerificationError(
            f"transparency log integrated time {integrated_time} is after the year 9999"
        )
    when = datetime.fromtimestamp(integrated_time, UTC)
    current = now or datetime.now(UTC)
    if when > current:
        raise VerificationError(
            f"transparency log integrated time {when.isoformat()} is in the future"
        )
    key = trust.rekor_key(log_id)
    if not key.window.contains(when):
        raise VerificationError(
            f"transparency log key {log_id.hex()} was not valid at the integrated time "
            f"{when.isoformat()} (valid {key.window.describe()})"
        )
    canonical = json.dumps(
        {
            "body": body_b64,
            "integratedTime": integrated_time,
            "logID": log_id.hex(),
            "logIndex": log_index,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    if not verify_with_log_key(key.public_key, signed_entry_timestamp, canonical):
        raise VerificationError(
            f"transparency log SET does not verify with log key {log_id.hex()} (entry {log_index})"
        )
    raw_body = _b64decode(body_b64, "transparency log entry body")
    kind, version, body = parse_entry_body(raw_body)
    return RekorEntry(
        kind=kind,
        api_version=version,
        body=body,
        integrated_time=when,
        log_index=log_index,
        log_id=log_id.hex(),
        canonicalized_body=raw_body,
    )


def verify_cosign_set(
    annotation_json: bytes, trust: TrustMaterial, *, now: datetime | None = None
) -> RekorEntry:
    """Verify cosign's ``dev.sigstore.cosign/bundle`` annotation (UNVERIFIED JSON):
    ``{"SignedEntryTimestamp": b64, "Payload": {"body", "integratedTime", "logIndex", "logID"}}``.
    """
    doc = load_json_object(
        annotation_json, "Rekor bundle annotation", max_bytes=MAX_SET_ANNOTATION_BYTES
    )
    if not isinstance(doc.get("Payload"), dict):
        raise EvidenceFormatError("Rekor bundle annotation lacks a Payload object")
    payload = doc["Payload"]
    set_sig = _b64decode(doc.get("SignedEntryTimestamp"), "SignedEntryTimestamp")
    body_b64 = payload.get("body")
    if not isinstance(body_b64, str):
        raise EvidenceFormatError("Rekor bundle Payload.body is not a string")
    log_id_hex = payload.get("logID")
    if not isinstance(log_id_hex, str):
        raise EvidenceFormatError("Rekor bundle Payload.logID is not a string")
    try:
        log_id = bytes.fromhex(log_id_hex)
    except ValueError as exc:
        raise EvidenceFormatError("Rekor bundle Payload.logID is not hex") from exc
    return verify_set(
        body_b64=body_b64,
        integrated_time=_int(payload.get("integratedTime"), "Payload.integratedTime"),
        log_index=_int(payload.get("logIndex"), "Payload.logIndex"),
        log_id=log_id,
        signed_entry_timestamp=set_sig,
        trust=trust,
        now=now,
    )


@dataclass(frozen=True, slots=True)
class _Signer:
    spki: bytes
    cert_der: bytes | None


def _signer_from_pem(pem: bytes, what: str) -> _Signer:
    """A certificate or public key, reduced to what identifies it."""
    if len(pem) > _MAX_KEY_PEM_BYTES:
        raise EvidenceFormatError(f"{what} is over the {_MAX_KEY_PEM_BYTES} byte limit")
    try:
        if b"CERTIFICATE" in pem:
            cert = x509.load_pem_x509_certificate(pem)
            key = cert.public_key()
            cert_der: bytes | None = cert.public_bytes(Encoding.DER)
        else:
            key = load_pem_public_key(pem)  # type: ignore[assignment]
            cert_der = None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise EvidenceFormatError(f"{what} is not a PEM certificate or public key") from exc
    return _Signer(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo), cert_der)


def _require_same_signer(recorded: _Signer, expected: _Signer, require_certificate: bool) -> None:
    """The entry's signer must be ours: equal certificates when both are certificates; with
    ``require_certificate`` (keyless evidence) the entry MUST record the certificate, since
    only then does the signer's identity appear in the log for its owner to monitor."""
    if require_certificate:
        if expected.cert_der is None:
            raise ValueError("require_certificate needs the signing certificate as signer")
        if recorded.cert_der is None:
            raise VerificationError(
                "transparency log entry records a bare public key, not the signing "
                "certificate: the signer's identity is not in the log"
            )
    if recorded.cert_der is not None and expected.cert_der is not None:
        same = recorded.cert_der == expected.cert_der
    else:
        same = recorded.spki == expected.spki
    if not same:
        raise VerificationError(
            "transparency log entry records a different signing key or certificate"
        )


def _get(obj: Mapping[str, Any], *path: str) -> Any:
    cur: Any = obj
    for part in path:
        if not isinstance(cur, Mapping) or part not in cur:
            raise EvidenceFormatError(f"transparency log entry lacks spec.{'.'.join(path)}")
        cur = cur[part]
    return cur


def _check_sha256(hash_obj: Any, expected: bytes, what: str) -> None:
    if not isinstance(hash_obj, Mapping) or hash_obj.get("algorithm") != "sha256":
        raise VerificationError(f"transparency log entry {what} is not a sha256 hash")
    value = hash_obj.get("value")
    if not isinstance(value, str) or value.lower() != expected.hex():
        raise VerificationError(
            f"transparency log entry {what} {value!r} does not match {expected.hex()}"
        )


def check_hashedrekord(
    entry: RekorEntry,
    *,
    signature: bytes,
    signer_pem: bytes,
    sha256_digest: bytes,
    require_certificate: bool = False,
) -> None:
    """The ``hashedrekord`` v0.0.1 entry (or the ``rekord`` v0.0.1 entry cosign v1.0 to v1.3
    logged, in its ``x509`` format) must record this signature, signer and sha256 digest.

    ``require_certificate`` (keyless signers; ``signer_pem`` is then the certificate): the
    entry must record that certificate, not merely its public key."""
    kv = (entry.kind, entry.api_version)
    if kv not in {("hashedrekord", "0.0.1"), ("rekord", "0.0.1")}:
        raise VerificationError(
            f"expected a hashedrekord 0.0.1 log entry, found {entry.kind} {entry.api_version}"
        )
    spec = entry.spec
    if kv == ("rekord", "0.0.1") and _get(spec, "signature", "format") != "x509":
        # Only x509 means a raw signature and a PEM key or certificate; pgp, minisign and
        # ssh entries record other formats that say nothing about this signer.
        raise VerificationError("transparency log rekord entry is not in the x509 format")
    recorded_sig = _b64decode(_get(spec, "signature", "content"), "entry signature.content")
    if recorded_sig != signature:
        raise VerificationError("transparency log entry records a different signature")
    recorded_key = _b64decode(
        _get(spec, "signature", "publicKey", "content"), "entry signature.publicKey.content"
    )
    _require_same_signer(
        _signer_from_pem(recorded_key, "entry public key"),
        _signer_from_pem(signer_pem, "signer"),
        require_certificate,
    )
    _check_sha256(_get(spec, "data", "hash"), sha256_digest, "data hash")


def _decode_double_b64(value: object, what: str) -> bytes:
    # intoto v0.0.2 stores base64(<the envelope's base64 string>) for payload and signatures.
    inner = _b64decode(value, what)
    try:
        text = inner.decode("ascii")
        return base64.b64decode(text, validate=True)
    except (UnicodeDecodeError, binascii.Error, ValueError):
        try:
            return base64.urlsafe_b64decode(inner)
        except (binascii.Error, ValueError) as exc:
            raise EvidenceFormatError(f"{what} is not base64") from exc


def check_intoto_or_dsse(
    entry: RekorEntry,
    *,
    envelope_payload: bytes,
    payload_type: str,
    signatures: list[bytes],
    signer_pem: bytes,
    envelope_json: bytes | None = None,
    require_certificate: bool = False,
) -> None:
    """The ``intoto`` (v0.0.1, v0.0.2) or ``dsse`` (v0.0.1) entry must record this DSSE
    envelope: payload hash, signatures and signer. ``envelope_json`` (the exact uploaded
    envelope bytes, as in a cosign ``.att`` layer) lets the envelope hash be checked too.
    ``require_certificate`` as for :func:`check_hashedrekord`."""
    signer = _signer_from_pem(signer_pem, "signer")
    payload_hash = hashlib.sha256(envelope_payload).digest()
    spec = entry.spec
    kv = (entry.kind, entry.api_version)
    if kv == ("intoto", "0.0.2"):
        _check_sha256(_get(spec, "content", "payloadHash"), payload_hash, "payload hash")
        if envelope_json is not None:
            _check_sha256(
                _get(spec, "content", "hash"),
                hashlib.sha256(envelope_json).digest(),
                "envelope hash",
            )
        env = _get(spec, "content", "envelope")
        if not isinstance(env, Mapping):
            raise EvidenceFormatError("transparency log entry envelope is not an object")
        if env.get("payloadType") != payload_type:
            raise VerificationError(
                f"transparency log entry payload type {env.get('payloadType')!r} does not "
                f"match {payload_type!r}"
            )
        if "payload" in env and _decode_double_b64(env["payload"], "entry payload") != (
            envelope_payload
        ):
            raise VerificationError("transparency log entry records a different payload")
        recorded = _get(spec, "content", "envelope", "signatures")
        pairs = [
            (
                _decode_double_b64(s.get("sig"), "entry envelope signature"),
                _b64decode(s.get("publicKey"), "entry publicKey"),
            )
            for s in _list(recorded)
        ]
    elif kv == ("intoto", "0.0.1"):
        content = _get(spec, "content")
        if "payloadHash" in content:
            _check_sha256(content["payloadHash"], payload_hash, "payload hash")
        elif envelope_json is None:
            raise VerificationError(
                "intoto 0.0.1 log entry has no payload hash and the envelope bytes are unknown"
            )
        if envelope_json is not None:
            _check_sha256(
                _get(spec, "content", "hash"),
                hashlib.sha256(envelope_json).digest(),
                "envelope hash",
            )
        recorded_key = _b64decode(_get(spec, "publicKey"), "entry publicKey")
        _require_same_signer(
            _signer_from_pem(recorded_key, "entry public key"), signer, require_certificate
        )
        return
    elif kv == ("dsse", "0.0.1"):
        _check_sha256(_get(spec, "payloadHash"), payload_hash, "payload hash")
        if envelope_json is not None and "envelopeHash" in spec:
            _check_sha256(
                spec["envelopeHash"], hashlib.sha256(envelope_json).digest(), "envelope hash"
            )
        pairs = [
            (
                _b64decode(s.get("signature"), "entry signature"),
                _b64decode(s.get("verifier"), "entry verifier"),
            )
            for s in _list(_get(spec, "signatures"))
        ]
    else:
        raise VerificationError(
            f"expected an intoto or dsse log entry, found {entry.kind} {entry.api_version}"
        )
    if sorted(sig for sig, _ in pairs) != sorted(signatures):
        raise VerificationError("transparency log entry records different envelope signatures")
    for _, key_pem in pairs:
        _require_same_signer(
            _signer_from_pem(key_pem, "entry public key"), signer, require_certificate
        )


def _list(value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not value or not all(isinstance(v, Mapping) for v in value):
        raise EvidenceFormatError("transparency log entry signatures are not a non-empty list")
    return value

"""DSSE envelopes: parsing and signature verification.

Implements the Dead Simple Signing Envelope protocol v1.0
(https://github.com/secure-systems-lab/dsse/blob/master/protocol.md, envelope.md) with these rules:

- The envelope is JSON with a string ``payloadType``, a base64 ``payload`` and a non-empty list
  of ``signatures`` (``sig`` base64, ``keyid`` optional). Standard and URL-safe base64 are both
  accepted, with or without padding; anything else is an :class:`EvidenceFormatError`.
- Envelopes over :data:`MAX_ENVELOPE_BYTES` are refused before parsing.
- Signatures are over PAE(payloadType, payload), never over the payload alone.
- An envelope verifies when any one of its signatures verifies with the given key; ``keyid`` is
  a hint only and never decides anything.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from controller.verify.errors import EvidenceFormatError, VerificationError
from controller.verify.jsontext import load_json_object
from controller.verify.keys import PublicKey, describe_key, verify_signature

__all__ = [
    "MAX_ENVELOPE_BYTES",
    "DsseSignature",
    "Envelope",
    "decode_base64",
    "pae",
    "parse_envelope",
    "verify_envelope",
]

MAX_ENVELOPE_BYTES = 16 * 1024 * 1024  # SBOM attestations run to megabytes
MAX_SIGNATURES = 16


@dataclass(frozen=True, slots=True)
class DsseSignature:
    """One signature of an envelope: the raw signature bytes and the optional key id hint."""

    keyid: str
    sig: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed, UNVERIFIED DSSE envelope."""

    payload_type: str
    payload: bytes
    signatures: tuple[DsseSignature, ...]

    def pae(self) -> bytes:
        """The bytes every signature of this envelope is over."""
        return pae(self.payload_type, self.payload)


def decode_base64(text: str, what: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not; raise a clear error otherwise."""
    compact = text.strip()
    if "-" in compact or "_" in compact:
        if "+" in compact or "/" in compact:
            raise EvidenceFormatError(f"{what} mixes the standard and URL-safe base64 alphabets")
        compact = compact.replace("-", "+").replace("_", "/")
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EvidenceFormatError(f"{what} is not valid base64: {exc}") from exc


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(payload), payload)


def parse_envelope(raw: bytes) -> Envelope:
    """Parse DSSE envelope JSON into an :class:`Envelope` (nothing is verified here)."""
    doc = load_json_object(raw, "DSSE envelope", max_bytes=MAX_ENVELOPE_BYTES)
    payload_type = doc.get("payloadType")
    payload_b64 = doc.get("payload")
    signatures = doc.get("signatures")
    if not isinstance(payload_type, str) or not payload_type:
        raise EvidenceFormatError("DSSE envelope has no payloadType string")
    if not isinstance(payload_b64, str):
        raise EvidenceFormatError("DSSE envelope has no payload string")
    if not isinstance(signatures, list) or not signatures:
        raise EvidenceFormatError("DSSE envelope has no signatures")
    if len(signatures) > MAX_SIGNATURES:
        raise EvidenceFormatError(
            f"DSSE envelope has {len(signatures)} signatures, over the limit of {MAX_SIGNATURES}"
        )
    parsed: list[DsseSignature] = []
    for index, entry in enumerate(signatures):
        if not isinstance(entry, dict):
            raise EvidenceFormatError(f"DSSE signature {index} is not a JSON object")
        sig_b64 = entry.get("sig")
        keyid = entry.get("keyid", "")
        if not isinstance(sig_b64, str) or not sig_b64:
            raise EvidenceFormatError(f"DSSE signature {index} has no sig string")
        if not isinstance(keyid, str):
            raise EvidenceFormatError(f"DSSE signature {index} keyid is not a string")
        parsed.append(DsseSignature(keyid, decode_base64(sig_b64, f"DSSE signature {index}")))
    return Envelope(
        payload_type=payload_type,
        payload=decode_base64(payload_b64, "DSSE payload"),
        signatures=tuple(parsed),
    )


def verify_envelope(envelope: Envelope, key: PublicKey, *, cosign_compat: bool = False) -> bytes:
    """Return the payload when any one signature verifies with ``key``; else raise
    :class:`VerificationError`. ``cosign_compat`` as in :func:`keys.verify_signature`."""
    message = envelope.pae()
    for signature in envelope.signatures:
        try:
            verify_signature(key, signature.sig, message, cosign_compat=cosign_compat)
        except VerificationError:
            continue
        return envelope.payload
    count = len(envelope.signatures)
    if count == 1:
        raise VerificationError(f"DSSE envelope signature does not verify with {describe_key(key)}")
    raise VerificationError(
        f"none of the DSSE envelope's {count} signatures verifies with {describe_key(key)}"
    )

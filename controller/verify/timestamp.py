"""RFC 3161 signed timestamps over a signature, verified against the trust root's TSAs.

Implements RFC 3161 §2.4.2 response checking as Sigstore clients use it (the timestamped
message is the signature bytes; see the Sigstore bundle spec, ``timestampVerificationData``).

Rules enforced:
- Only ``granted`` (or ``grantedWithMods``) responses, checked before the token is read (a
  rejection carries none); the token must be signed by a TSA of the trust root, chaining to
  that TSA's root, with the timestamping EKU (checked by ``rfc3161-client``).
- The imprint must be the hash of exactly these signature bytes.
- The generation time must lie in the TSA's ``validFor`` window (closed interval) and in the TSA
  signing certificate's own validity.
- Responses are size-limited and parsed once; malformed DER is ``EvidenceFormatError``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from datetime import UTC, datetime

from rfc3161_client import (
    PKIStatus,
    TimeStampResponse,
    VerifierBuilder,
    decode_timestamp_response,
)
from rfc3161_client import VerificationError as Rfc3161Error

from controller.verify.errors import EvidenceFormatError, VerificationError
from controller.verify.jsontext import load_json
from controller.verify.trustroot import TrustMaterial

__all__ = [
    "MAX_TIMESTAMP_BYTES",
    "parse_cosign_timestamp_annotation",
    "parse_timestamp_response",
    "verify_rfc3161",
    "verify_timestamp_response",
]

MAX_TIMESTAMP_BYTES = 64 * 1024


def parse_cosign_timestamp_annotation(annotation_json: bytes) -> bytes:
    """The DER response inside cosign's ``dev.sigstore.cosign/rfc3161timestamp`` annotation
    (``{"SignedRFC3161Timestamp": base64}``)."""
    if len(annotation_json) > 2 * MAX_TIMESTAMP_BYTES:
        raise EvidenceFormatError("RFC 3161 timestamp annotation is over the size limit")
    doc = load_json(annotation_json, "RFC 3161 timestamp annotation")
    try:
        raw = base64.b64decode(doc["SignedRFC3161Timestamp"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise EvidenceFormatError(
            'RFC 3161 timestamp annotation is not {"SignedRFC3161Timestamp": base64}'
        ) from exc
    return raw


def parse_timestamp_response(token: bytes) -> TimeStampResponse:
    """Decode an UNVERIFIED DER TimeStampResponse."""
    if len(token) > MAX_TIMESTAMP_BYTES:
        raise EvidenceFormatError(
            f"RFC 3161 timestamp is {len(token)} bytes, over the {MAX_TIMESTAMP_BYTES} limit"
        )
    try:
        return decode_timestamp_response(token)
    except ValueError as exc:
        raise EvidenceFormatError(f"RFC 3161 timestamp is not a valid response: {exc}") from exc


def verify_rfc3161(token: bytes, signature: bytes, trust: TrustMaterial) -> datetime:
    """Verify a DER RFC 3161 response over ``signature``; return its verified time (UTC)."""
    return verify_timestamp_response(parse_timestamp_response(token), signature, trust)


def _generation_time(response: TimeStampResponse) -> datetime:
    """The (unverified) genTime of a granted response; a rejection or a response without a
    token is refused here, before anything reads the token."""
    status = response.status
    if status not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
        detail = ""
        with contextlib.suppress(ValueError):
            detail = "; ".join(response.status_string)
        raise VerificationError(
            f"RFC 3161 response is not a granted timestamp (PKIStatus {status}"
            + (f": {detail}" if detail else "")
            + ")"
        )
    try:
        gen_time = response.tst_info.gen_time
    except ValueError as exc:
        raise EvidenceFormatError(f"RFC 3161 response carries no readable token: {exc}") from exc
    return gen_time if gen_time.tzinfo is not None else gen_time.replace(tzinfo=UTC)


def verify_timestamp_response(
    response: TimeStampResponse, signature: bytes, trust: TrustMaterial
) -> datetime:
    """As ``verify_rfc3161`` for an already-decoded response."""
    authorities = trust.tsa_authorities()
    if not authorities:
        raise VerificationError(
            f"trust root {trust.name!r} names no timestamp authority, but the evidence "
            "carries an RFC 3161 timestamp"
        )
    gen_time = _generation_time(response)
    reasons: list[str] = []
    for tsa in authorities:
        certs = tsa.certificates
        if len(certs) < 2:
            reasons.append("a TSA chain in the trust root lacks a root")
            continue
        builder = VerifierBuilder().tsa_certificate(certs[0]).add_root_certificate(certs[-1])
        for intermediate in certs[1:-1]:
            builder = builder.add_intermediate_certificate(intermediate)
        try:
            builder.build().verify_message(response, signature)
        except Rfc3161Error as exc:
            reasons.append(str(exc))
            continue
        if not tsa.window.contains(gen_time):
            reasons.append(
                f"timestamp time {gen_time.isoformat()} is outside the TSA's trust-root "
                f"validity {tsa.window.describe()}"
            )
            continue
        leaf = certs[0]
        if not leaf.not_valid_before_utc <= gen_time <= leaf.not_valid_after_utc:
            reasons.append(
                f"timestamp time {gen_time.isoformat()} is outside the TSA certificate's validity"
            )
            continue
        return gen_time
    raise VerificationError(
        f"RFC 3161 timestamp does not verify with any TSA of trust root {trust.name!r}: "
        + "; ".join(reasons)
    )

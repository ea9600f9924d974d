"""cosign ``.sig`` and ``.att`` layers, verified against one policy authority.

Implements verification of the cosign signature spec (sigstore/cosign
``specs/SIGNATURE_SPEC.md`` and ``specs/ATTESTATION_SPEC.md``): a simple-signing payload signed
with the ``dev.cosignproject.cosign/signature`` annotation, or a DSSE envelope carrying an
in-toto Statement, each optionally backed by a Rekor SET (``dev.sigstore.cosign/bundle``), a
Fulcio certificate and chain, and an RFC 3161 timestamp. Rules enforced:

- Key authorities: the signature must verify with the authority's key over the exact layer
  payload (DSSE: over PAE); a P-384/P-521 key may also have signed ECDSA over SHA-256, as
  cosign before 2.5 did for every ECDSA key. Transparency log per ``transparency_log``:
  ``required`` needs a valid SET whose entry records this signature, this key and this
  payload; ``optional`` checks a SET when one is present and fails when it is present but
  invalid; ``ignore`` never looks.
- Keyless authorities: a signing time must be VERIFIED, from the Rekor SET (required unless
  an RFC 3161 timestamp verifies and the authority does not demand the log) and/or the RFC 3161
  timestamp. The certificate must chain to the trust root's Fulcio CA, be valid, and carry
  valid SCTs at every verified time; its identity must satisfy the authority; the signature
  verifies with its key; the log entry records this signature, payload and the certificate
  itself (a bare public key in the entry is refused: the identity must be in the log). The
  identity is checked right after the signature, before the chain, SCT, log and timestamp work,
  so a layer from another signer costs little; that is a filter only, every rule still holds.
- Binding to the image: a simple-signing payload's ``docker-manifest-digest`` and some in-toto
  subject's sha256 must equal the image digest.
- Every failure is a :class:`VerificationError` naming what failed; nothing is returned unless
  every rule held.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from controller.evidence.model import CosignLayer
from controller.verify.authority import Authority, KeyAuthority, KeylessAuthority
from controller.verify.clock import latest_acceptable, refuse_future
from controller.verify.dsse import Envelope, decode_base64, parse_envelope, verify_envelope
from controller.verify.errors import EvidenceFormatError, VerificationError
from controller.verify.facts import SignerIdentity, VerifiedSignature, VerifiedStatement
from controller.verify.fulcio import (
    certificate_key,
    check_identity,
    parse_certificate,
    parse_chain,
    verify_certificate,
)
from controller.verify.keys import (
    PublicKey,
    key_id,
    load_public_key,
    public_key_pem,
    verify_signature,
)
from controller.verify.simplesigning import parse_simple_signing, require_image_digest
from controller.verify.statement import statement_from_verified_payload
from controller.verify.timestamp import parse_cosign_timestamp_annotation, verify_rfc3161
from controller.verify.tlog import (
    RekorEntry,
    check_hashedrekord,
    check_intoto_or_dsse,
    verify_cosign_set,
)
from controller.verify.trustroot import TrustMaterial, TrustRoots

__all__ = ["verify_cosign_attestation", "verify_cosign_signature"]

# The two format-specific steps (simple signing vs DSSE): check the signature with a key, and
# check that a log entry records this very signature, signer and payload (the flag: the signer
# is a certificate, which the entry must record as such).
_VerifyWith = Callable[[PublicKey], None]
_CheckEntry = Callable[[RekorEntry, bytes, bool], None]


@dataclass(frozen=True, slots=True)
class _SignedBy:
    """What the cryptography proved: who signed and the verified signing time, if any."""

    signer: SignerIdentity
    integrated_time: datetime | None


def verify_cosign_signature(
    layer: CosignLayer,
    image_digest: str,
    authority: Authority,
    trust_roots: TrustRoots,
    now: datetime,
) -> VerifiedSignature:
    """Verify one ``.sig`` layer against ``authority``; the payload must name ``image_digest``.

    Raises :class:`VerificationError` (or its subclass :class:`EvidenceFormatError`) saying
    precisely what failed.
    """
    if layer.kind != "signature":
        raise EvidenceFormatError(f"{layer.source} is a cosign {layer.kind}, not a signature")
    if not layer.signature_b64:
        raise VerificationError(
            "layer has no signature annotation (dev.cosignproject.cosign/signature)"
        )
    signature = decode_base64(layer.signature_b64, "cosign signature annotation")
    payload_sha256 = hashlib.sha256(layer.payload).digest()

    def verify_with(key: PublicKey) -> None:
        verify_signature(key, signature, layer.payload, cosign_compat=True)

    def check_entry(entry: RekorEntry, signer_pem: bytes, is_certificate: bool) -> None:
        check_hashedrekord(
            entry,
            signature=signature,
            signer_pem=signer_pem,
            sha256_digest=payload_sha256,
            require_certificate=is_certificate,
        )

    signed = _verify(
        layer,
        authority,
        trust_roots,
        now,
        verify_with=verify_with,
        check_entry=check_entry,
        timestamped=signature,
    )
    claims = parse_simple_signing(layer.payload)
    require_image_digest(claims, image_digest)
    return VerifiedSignature(
        image_digest=claims.manifest_digest,
        signer=signed.signer,
        integrated_time=signed.integrated_time,
        source=layer.source,
        annotations=claims.optional,
    )


def verify_cosign_attestation(
    layer: CosignLayer,
    image_digest: str,
    authority: Authority,
    trust_roots: TrustRoots,
    now: datetime,
    *,
    envelope: Envelope | None = None,
) -> VerifiedStatement:
    """Verify one ``.att`` layer (a DSSE envelope) against ``authority``; its in-toto Statement
    must have a subject whose sha256 is ``image_digest``.

    ``envelope`` is ``parse_envelope(layer.payload)`` when the caller already has it (one parse
    per layer, not one per authority). Raises :class:`VerificationError` (or
    :class:`EvidenceFormatError`) saying what failed.
    """
    if layer.kind != "attestation":
        raise EvidenceFormatError(f"{layer.source} is a cosign {layer.kind}, not an attestation")
    if envelope is None:
        envelope = parse_envelope(layer.payload)

    def verify_with(key: PublicKey) -> None:
        verify_envelope(envelope, key, cosign_compat=True)

    def check_entry(entry: RekorEntry, signer_pem: bytes, is_certificate: bool) -> None:
        _check_envelope_entry(entry, envelope, layer.payload, signer_pem, is_certificate)

    # cosign timestamps the uploaded envelope for attestations: there is no detached signature.
    signed = _verify(
        layer,
        authority,
        trust_roots,
        now,
        verify_with=verify_with,
        check_entry=check_entry,
        timestamped=layer.payload,
    )
    return statement_from_verified_payload(
        envelope.payload,
        signed.signer,
        image_digest,
        signed.integrated_time,
        layer.source,
        payload_type=envelope.payload_type,
    )


def _check_envelope_entry(
    entry: RekorEntry,
    envelope: Envelope,
    envelope_json: bytes,
    signer_pem: bytes,
    is_certificate: bool,
) -> None:
    check_intoto_or_dsse(
        entry,
        envelope_payload=envelope.payload,
        payload_type=envelope.payload_type,
        signatures=[s.sig for s in envelope.signatures],
        signer_pem=signer_pem,
        envelope_json=envelope_json,
        require_certificate=is_certificate,
    )


def _verify(
    layer: CosignLayer,
    authority: Authority,
    trust_roots: TrustRoots,
    now: datetime,
    *,
    verify_with: _VerifyWith,
    check_entry: _CheckEntry,
    timestamped: bytes,
) -> _SignedBy:
    if isinstance(authority, KeyAuthority):
        return _verify_key(layer, authority, trust_roots, now, verify_with, check_entry)
    return _verify_keyless(
        layer, authority, trust_roots, now, verify_with, check_entry, timestamped
    )


def _verify_key(
    layer: CosignLayer,
    authority: KeyAuthority,
    trust_roots: TrustRoots,
    now: datetime,
    verify_with: _VerifyWith,
    check_entry: _CheckEntry,
) -> _SignedBy:
    try:
        key = load_public_key(authority.public_key_pem)
    except EvidenceFormatError as exc:
        raise EvidenceFormatError(f"authority {authority.name!r} key is unusable: {exc}") from exc
    try:
        verify_with(key)
    except VerificationError as exc:
        keyless = " (the layer carries a Fulcio certificate: it was signed keyless)"
        raise VerificationError(
            f"{exc}, the key of authority {authority.name!r}"
            + (keyless if layer.certificate_pem else "")
        ) from exc
    signer = SignerIdentity(authority=authority.name, kind="key", key_id=key_id(key))
    mode = authority.transparency_log
    if mode == "ignore":
        return _SignedBy(signer, None)
    if layer.rekor_bundle is None:
        if mode == "required":
            raise VerificationError(
                f"authority {authority.name!r} requires a transparency log entry, but the "
                "layer has no Rekor SET (dev.sigstore.cosign/bundle)"
            )
        return _SignedBy(signer, None)
    trust = trust_roots.get(authority.trust_root)
    entry = _verified_entry(layer.rekor_bundle, trust, now)
    try:
        # The canonical PEM: the log compares parsed keys, and must parse what we accepted.
        check_entry(entry, public_key_pem(key), False)
    except VerificationError as exc:
        raise _entry_mismatch(exc, entry) from exc
    return _SignedBy(signer, entry.integrated_time)


def _verify_keyless(
    layer: CosignLayer,
    authority: KeylessAuthority,
    trust_roots: TrustRoots,
    now: datetime,
    verify_with: _VerifyWith,
    check_entry: _CheckEntry,
    timestamped: bytes,
) -> _SignedBy:
    if not layer.certificate_pem:
        raise VerificationError(
            f"authority {authority.name!r} is keyless, but the layer has no Fulcio certificate "
            "(dev.sigstore.cosign/certificate): it was signed with a key"
        )
    cert = parse_certificate(layer.certificate_pem)
    cert_key = certificate_key(cert, "the layer's certificate")
    # Cheap, local and the most telling failure first: was it signed with this certificate?
    try:
        verify_with(cert_key)
    except VerificationError as exc:
        raise VerificationError(f"{exc}, the layer's certificate key") from exc
    # Also cheap: a layer from another identity is refused before the chain, SCT, log and
    # timestamp work below. Only a filter: acceptance still needs all of that.
    signer = check_identity(cert, authority)
    trust = trust_roots.get(authority.trust_root)
    times: list[tuple[str, datetime]] = []
    entry: RekorEntry | None = None
    mode = authority.transparency_log
    if mode != "ignore" and layer.rekor_bundle is not None:
        entry = _verified_entry(layer.rekor_bundle, trust, now)
        times.append(("transparency log integrated time", entry.integrated_time))
    if layer.rfc3161_timestamp is not None:
        token = parse_cosign_timestamp_annotation(layer.rfc3161_timestamp)
        stamped = verify_rfc3161(token, timestamped, trust)
        refuse_future(stamped, now, "RFC 3161 timestamp time")
        times.append(("RFC 3161 timestamp", stamped))
    if entry is None and (mode == "required" or not times):
        what = "a Rekor SET" if mode == "required" else "a Rekor SET or an RFC 3161 timestamp"
        raise VerificationError(
            f"no verified signing time: authority {authority.name!r} needs {what} "
            "(dev.sigstore.cosign/bundle) to prove the short-lived certificate was valid "
            "when it signed"
        )
    untrusted = parse_chain(layer.chain_pem) if layer.chain_pem else []
    for label, when in times:
        _check_certificate_at(cert, untrusted, trust, when, label)
    if entry is not None:
        try:
            check_entry(entry, layer.certificate_pem, True)
        except VerificationError as exc:
            raise _entry_mismatch(exc, entry) from exc
    # The earliest verified time is when the signature provably existed.
    return _SignedBy(signer, min(when for _, when in times))


def _check_certificate_at(
    cert: x509.Certificate,
    untrusted: list[x509.Certificate],
    trust: TrustMaterial,
    when: datetime,
    label: str,
) -> None:
    try:
        verify_certificate(cert, untrusted, trust, when)
    except VerificationError as exc:
        if isinstance(exc, EvidenceFormatError):
            raise
        raise VerificationError(
            f"{exc} (checked at the {label} {when.isoformat()})", hint=exc.hint
        ) from exc


def _verified_entry(annotation: bytes, trust: TrustMaterial, now: datetime) -> RekorEntry:
    try:
        entry = verify_cosign_set(annotation, trust, now=latest_acceptable(now))
    except VerificationError as exc:
        if isinstance(exc, EvidenceFormatError):
            raise
        raise VerificationError(f"Rekor SET rejected: {exc}", hint=exc.hint) from exc
    return entry


def _entry_mismatch(exc: VerificationError, entry: RekorEntry) -> VerificationError:
    return VerificationError(
        f"Rekor entry {entry.log_index} does not belong to this signature: {exc}",
        hint="the SET is valid but records other evidence; the layer's annotations were mixed",
    )

"""Verify everything found for one image against one policy's authorities.

This is the front door of the trust gate for admission: an ``EvidenceSet`` (unverified bytes)
goes in, a ``VerificationOutcome`` (verified facts plus the reasons other evidence failed)
comes out.

Rules:
- Every piece of evidence is tried against every authority; what verifies becomes a fact
  stamped with that authority's name, what does not becomes a failure with its reason.
- A signature fact always names the image digest: cosign payloads must carry it, bundles must
  sign it (message digest) or carry an in-toto statement whose subject is it.
- A Sigstore bundle whose statement is cosign's signing predicate counts as a signature.
- An in-toto statement stored with this image whose subjects name only OTHER digests (a
  rebuilder that got different bytes signs its own digest) is verified in full (signature,
  certificate, transparency log, timestamp) exactly as any other, against the digest its
  statement names. If it verifies it becomes a ``foreign_statements`` fact, read only by the
  reproducibility check; for everything else it stays what it was before: a failure whose
  reason says it names another digest. The digest to verify against is read from the
  unverified payload only to pick the verification target; the signature then covers it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Literal

from controller.evidence.model import BundleEvidence, EvidenceSet
from controller.verify.authority import Authority, KeyAuthority
from controller.verify.bundle import verify_bundle
from controller.verify.cosign import verify_cosign_attestation, verify_cosign_signature
from controller.verify.dsse import parse_envelope
from controller.verify.errors import VerificationError
from controller.verify.facts import (
    VerificationFailure,
    VerificationOutcome,
    VerifiedSignature,
    VerifiedStatement,
)
from controller.verify.link import VerifiedLink, verify_link
from controller.verify.statement import (
    parse_sha256_digest,
    require_subject_digest,
    statement_from_verified_payload,
)
from controller.verify.trustroot import TrustRoots

__all__ = ["COSIGN_SIGN_PREDICATE", "verify_evidence"]

COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
_INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


def verify_evidence(
    evidence: EvidenceSet,
    authorities: Sequence[Authority],
    trust_roots: TrustRoots,
    now: datetime,
    rebuilders: Sequence[KeyAuthority] = (),
) -> VerificationOutcome:
    """All facts ``evidence`` proves for ``authorities``, and why the rest did not count.

    In-toto rebuild links are checked against ``rebuilders`` only.
    """
    digest = evidence.digest
    signatures: list[VerifiedSignature] = []
    statements: list[VerifiedStatement] = []
    failures: list[VerificationFailure] = []
    for layer in evidence.signatures:
        for authority in authorities:
            try:
                signatures.append(
                    verify_cosign_signature(layer, digest, authority, trust_roots, now)
                )
            except VerificationError as exc:
                failures.append(
                    VerificationFailure(layer.source, authority.name, str(exc), "signature")
                )
    foreign: list[VerifiedStatement] = []
    for layer in evidence.attestations:
        target = _verification_target(_cosign_statement_bytes(layer.payload), digest)
        for authority in authorities:
            try:
                statement = verify_cosign_attestation(layer, target, authority, trust_roots, now)
            except VerificationError as exc:
                failures.append(
                    VerificationFailure(layer.source, authority.name, str(exc), "attestation")
                )
                continue
            _sort_statement(statement, digest, statements, foreign, failures, "attestation")
    for bundle in evidence.bundles:
        target = _verification_target(_bundle_statement_bytes(bundle.raw), digest)
        for authority in authorities:
            try:
                fact = _verify_bundle(bundle, target, authority, trust_roots)
            except VerificationError as exc:
                failures.append(
                    VerificationFailure(bundle.source, authority.name, str(exc), "bundle")
                )
                continue
            if isinstance(fact, VerifiedStatement) and target != digest:
                _sort_statement(fact, digest, statements, foreign, failures, "bundle")
                continue
            if isinstance(fact, VerifiedSignature):
                signatures.append(fact)
            else:
                statements.append(fact)
                if fact.predicate_type == COSIGN_SIGN_PREDICATE:
                    signatures.append(
                        VerifiedSignature(
                            image_digest=digest,
                            signer=fact.signer,
                            integrated_time=fact.integrated_time,
                            source=fact.source,
                            annotations=MappingProxyType({}),
                        )
                    )
    links: list[VerifiedLink] = []
    for link in evidence.links:
        if not rebuilders:
            failures.append(
                VerificationFailure(link.source, "", "the policy lists no rebuilder keys", "link")
            )
            continue
        try:
            links.append(verify_link(link.raw, rebuilders))
        except VerificationError as exc:
            failures.append(VerificationFailure(link.source, "rebuilders", str(exc), "link"))
    return VerificationOutcome(
        signatures=tuple(signatures),
        statements=tuple(statements),
        links=tuple(links),
        failures=tuple(failures),
        foreign_statements=tuple(foreign),
    )


# --- statements naming other digests -------------------------------------------------------

# Bounds the unverified parse that only picks a verification target (the verifiers apply
# their own limits to what they then verify).
_MAX_PEEK_BYTES = 16 * 1024 * 1024


def _sort_statement(
    fact: VerifiedStatement,
    digest: str,
    statements: list[VerifiedStatement],
    foreign: list[VerifiedStatement],
    failures: list[VerificationFailure],
    kind: Literal["attestation", "bundle"],
) -> None:
    """File a verified statement: about this image, or foreign (and then also a failure, so
    checks other than reproducibility explain it exactly as before)."""
    try:
        require_subject_digest(fact, digest)
    except VerificationError as exc:
        foreign.append(fact)
        failures.append(VerificationFailure(fact.source, fact.signer.authority, str(exc), kind))
        return
    statements.append(fact)


def _verification_target(statement: bytes | None, digest: str) -> str:
    """The digest to verify a statement against: the image digest, unless the (still
    unverified) statement parses and its sha256 subjects all name other digests; then the
    first of those, so the full verification runs and proves who signed that statement."""
    if statement is None:
        return digest
    try:
        wanted = parse_sha256_digest(digest)
        doc = json.loads(statement)
    except (VerificationError, ValueError, UnicodeDecodeError):
        return digest
    subjects = doc.get("subject") if isinstance(doc, dict) else None
    if not isinstance(subjects, list):
        return digest
    named: list[str] = []
    for subject in subjects:
        digests = subject.get("digest") if isinstance(subject, dict) else None
        value = digests.get("sha256") if isinstance(digests, dict) else None
        if isinstance(value, str):
            try:
                named.append(parse_sha256_digest(f"sha256:{value}", "subject digest"))
            except VerificationError:
                return digest  # malformed: the normal path reports it
    if not named or wanted in named:
        return digest
    return f"sha256:{named[0]}"


def _cosign_statement_bytes(envelope_json: bytes) -> bytes | None:
    """The UNVERIFIED statement in a cosign ``.att`` DSSE envelope, or None if unreadable."""
    if len(envelope_json) > _MAX_PEEK_BYTES:
        return None
    try:
        return parse_envelope(envelope_json).payload
    except VerificationError:
        return None


def _bundle_statement_bytes(raw: bytes) -> bytes | None:
    """The UNVERIFIED statement in a Sigstore bundle's DSSE envelope, or None."""
    if len(raw) > _MAX_PEEK_BYTES:
        return None
    try:
        doc = json.loads(raw)
        payload = doc["dsseEnvelope"]["payload"]
        return base64.b64decode(payload, validate=True) if isinstance(payload, str) else None
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, binascii.Error):
        return None


def _verify_bundle(
    bundle: BundleEvidence, digest: str, authority: Authority, trust_roots: TrustRoots
) -> VerifiedSignature | VerifiedStatement:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256":
        raise VerificationError(f"bundles over {algo} digests are not supported")
    result = verify_bundle(
        bundle.raw,
        trust=trust_roots.get(authority.trust_root),
        authority=authority,
        artifact_sha256=bytes.fromhex(hexpart),
    )
    if result.payload is not None:
        if result.payload_type != _INTOTO_PAYLOAD_TYPE:
            raise VerificationError(
                f"bundle carries a DSSE payload of type {result.payload_type!r}, "
                "not an in-toto statement"
            )
        return statement_from_verified_payload(
            result.payload, result.signer, digest, result.integrated_time, bundle.source
        )
    return VerifiedSignature(
        image_digest=digest,
        signer=result.signer,
        integrated_time=result.integrated_time,
        source=bundle.source,
        annotations=MappingProxyType({}),
    )

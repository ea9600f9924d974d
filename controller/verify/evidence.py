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
- One piece of evidence failing against one authority never fails the whole call: a
  ``VerificationError`` is recorded as its reason, and any other exception (input no check
  anticipated) as "could not verify: <Type>: <message>", logged with its traceback at debug
  level. A valid signature beside a poisoned one still counts.
- Each DSSE envelope and bundle is parsed once per call, not once per authority.
- An in-toto statement stored with this image whose subjects name only OTHER digests (a
  rebuilder that got different bytes signs its own digest) is verified in full (signature,
  certificate, transparency log, timestamp) exactly as any other, against the digest its
  statement names. If it verifies it becomes a ``foreign_statements`` fact, read only by the
  reproducibility check; for everything else it stays what it was before: a failure whose
  reason says it names another digest. The digest to verify against is read from the
  unverified payload only to pick the verification target; the signature then covers it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from functools import partial
from types import MappingProxyType
from typing import Literal, TypeVar

from controller.evidence.model import BundleEvidence, CosignLayer, EvidenceSet
from controller.verify.authority import Authority, KeyAuthority
from controller.verify.bundle import ParsedBundle, parse_bundle, verify_bundle
from controller.verify.cosign import verify_cosign_attestation, verify_cosign_signature
from controller.verify.dsse import Envelope, parse_envelope
from controller.verify.errors import VerificationError
from controller.verify.facts import (
    VerificationFailure,
    VerificationOutcome,
    VerifiedSignature,
    VerifiedStatement,
)
from controller.verify.link import VerifiedLink, verify_link
from controller.verify.statement import (
    names_digest,
    parse_sha256_digest,
    require_subject_digest,
    statement_from_verified_payload,
    statement_subjects,
)
from controller.verify.trustroot import TrustRoots

__all__ = ["COSIGN_SIGN_PREDICATE", "verify_evidence"]

log = logging.getLogger(__name__)

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

    In-toto rebuild links are checked against ``rebuilders`` only. Never raises for bad
    evidence: whatever goes wrong with one piece against one authority is a failure of that
    piece, so one poisoned layer cannot veto a validly signed image.
    """
    digest = evidence.digest
    signatures: list[VerifiedSignature] = []
    statements: list[VerifiedStatement] = []
    foreign: list[VerifiedStatement] = []
    failures: list[VerificationFailure] = []
    for layer in evidence.signatures:
        for authority in authorities:
            fact = _attempt(
                partial(verify_cosign_signature, layer, digest, authority, trust_roots, now),
                layer.source,
                authority.name,
                "signature",
                failures,
            )
            if fact is not None:
                signatures.append(fact)
    for layer in evidence.attestations:
        for found in _verify_parsed(
            layer.source,
            partial(parse_envelope, layer.payload),
            _envelope_payload,
            partial(_verify_attestation, layer, trust_roots, now),
            "attestation",
            authorities,
            digest,
            failures,
        ):
            _file_fact(found, digest, "attestation", signatures, statements, foreign, failures)
    for bundle in evidence.bundles:
        for found in _verify_parsed(
            bundle.source,
            partial(parse_bundle, bundle.raw),
            _bundle_payload,
            partial(_verify_bundle, bundle, trust_roots, now),
            "bundle",
            authorities,
            digest,
            failures,
        ):
            _file_fact(found, digest, "bundle", signatures, statements, foreign, failures)
    links: list[VerifiedLink] = []
    for link in evidence.links:
        if not rebuilders:
            failures.append(
                VerificationFailure(link.source, "", "the policy lists no rebuilder keys", "link")
            )
            continue
        verified_link = _attempt(
            partial(verify_link, link.raw, rebuilders),
            link.source,
            "rebuilders",
            "link",
            failures,
        )
        if verified_link is not None:
            links.append(verified_link)
    return VerificationOutcome(
        signatures=tuple(signatures),
        statements=tuple(statements),
        links=tuple(links),
        failures=tuple(failures),
        foreign_statements=tuple(foreign),
    )


# --- containing failures -------------------------------------------------------------------

_T = TypeVar("_T")
_FailureKind = Literal["signature", "attestation", "bundle", "link"]
_MAX_REASON_CHARS = 300  # an unexpected exception's text may quote attacker-chosen input


def _attempt(
    call: Callable[[], _T],
    source: str,
    authority: str,
    kind: _FailureKind,
    failures: list[VerificationFailure],
) -> _T | None:
    """``call()``, or None after recording why it failed for ``authority``.

    A ``VerificationError`` is the normal refusal. Anything else is a defect or input no check
    anticipated; it still only fails this piece of evidence (logged with its traceback at
    debug level), never the whole image.
    """
    try:
        return call()
    except VerificationError as exc:
        failures.append(VerificationFailure(source, authority, str(exc), kind))
    except Exception as exc:
        log.debug("could not verify %s for authority %r", source, authority, exc_info=True)
        reason = f"could not verify: {type(exc).__name__}: {exc}"
        if len(reason) > _MAX_REASON_CHARS:
            reason = reason[: _MAX_REASON_CHARS - 3] + "..."
        failures.append(VerificationFailure(source, authority, reason, kind))
    return None


def _attempt_all(
    call: Callable[[], _T],
    source: str,
    authorities: Sequence[Authority],
    kind: _FailureKind,
    failures: list[VerificationFailure],
) -> _T | None:
    """As :func:`_attempt` for a step shared by every authority (parsing): on failure each
    authority gets the same reason, as if each had tried."""
    mine: list[VerificationFailure] = []
    result = _attempt(call, source, "", kind, mine)
    for failure in mine:
        for authority in authorities:
            failures.append(VerificationFailure(source, authority.name, failure.reason, kind))
    return result


# --- attestations and bundles ------------------------------------------------------------

_P = TypeVar("_P")
_Fact = VerifiedSignature | VerifiedStatement


def _verify_parsed(
    source: str,
    parse: Callable[[], _P],
    payload_of: Callable[[_P], bytes | None],
    verify: Callable[[_P, str, Authority], _Fact],
    kind: Literal["attestation", "bundle"],
    authorities: Sequence[Authority],
    digest: str,
    failures: list[VerificationFailure],
) -> Iterator[_Fact]:
    """What one attestation or bundle proves, authority by authority: parsed once for all of
    them (an envelope can be megabytes), verified against the digest its statement is about.

    A generator, so the caller files each fact before the next authority's failures are
    recorded (failures keep the order of evidence, then authority).
    """
    parsed = _attempt_all(parse, source, authorities, kind, failures)
    if parsed is None:
        return
    target = _verification_target(payload_of(parsed), digest)
    for authority in authorities:
        fact = _attempt(
            partial(verify, parsed, target, authority), source, authority.name, kind, failures
        )
        if fact is not None:
            yield fact


def _envelope_payload(envelope: Envelope) -> bytes:
    return envelope.payload


def _bundle_payload(parsed: ParsedBundle) -> bytes | None:
    return parsed.dsse_payload


def _verify_attestation(
    layer: CosignLayer,
    trust_roots: TrustRoots,
    now: datetime,
    envelope: Envelope,
    target: str,
    authority: Authority,
) -> VerifiedStatement:
    return verify_cosign_attestation(layer, target, authority, trust_roots, now, envelope=envelope)


def _file_fact(
    fact: _Fact,
    digest: str,
    kind: Literal["attestation", "bundle"],
    signatures: list[VerifiedSignature],
    statements: list[VerifiedStatement],
    foreign: list[VerifiedStatement],
    failures: list[VerificationFailure],
) -> None:
    """File a verified fact; a bundle statement of cosign's signing predicate about this image
    also counts as a signature."""
    if isinstance(fact, VerifiedSignature):
        signatures.append(fact)
        return
    if not _sort_statement(fact, digest, statements, foreign, failures, kind):
        return
    if kind == "bundle" and fact.predicate_type == COSIGN_SIGN_PREDICATE:
        signatures.append(
            VerifiedSignature(
                image_digest=digest,
                signer=fact.signer,
                integrated_time=fact.integrated_time,
                source=fact.source,
                annotations=MappingProxyType({}),
            )
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
) -> bool:
    """File a verified statement: about this image (True), or foreign (and then also a
    failure, so checks other than reproducibility explain it exactly as before)."""
    try:
        require_subject_digest(fact, digest)
    except VerificationError as exc:
        foreign.append(fact)
        failures.append(VerificationFailure(fact.source, fact.signer.authority, str(exc), kind))
        return False
    statements.append(fact)
    return True


def _verification_target(statement: bytes | None, digest: str) -> str:
    """The digest to verify a statement against: the image digest, unless the (still
    unverified) statement parses and its sha256 subjects all name other digests; then the
    first of those, so the full verification runs and proves who signed that statement."""
    if statement is None or len(statement) > _MAX_PEEK_BYTES:
        return digest
    try:
        parse_sha256_digest(digest)
        subjects = statement_subjects(statement)
    except VerificationError:
        return digest  # malformed: the normal path reports it
    named = [s.digest["sha256"] for s in subjects if "sha256" in s.digest]
    if not named or names_digest(subjects, digest):
        return digest
    return f"sha256:{named[0]}"


def _verify_bundle(
    bundle: BundleEvidence,
    trust_roots: TrustRoots,
    now: datetime,
    parsed: ParsedBundle,
    digest: str,
    authority: Authority,
) -> VerifiedSignature | VerifiedStatement:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256":
        raise VerificationError(f"bundles over {algo} digests are not supported")
    result = verify_bundle(
        bundle.raw,
        trust=trust_roots.get(authority.trust_root),
        authority=authority,
        artifact_sha256=bytes.fromhex(hexpart),
        now=now,
        parsed=parsed,
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

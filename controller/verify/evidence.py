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
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import MappingProxyType

from controller.evidence.model import BundleEvidence, EvidenceSet
from controller.verify.authority import Authority, KeyAuthority
from controller.verify.bundle import verify_bundle
from controller.verify.cosign import verify_cosign_attestation, verify_cosign_signature
from controller.verify.errors import VerificationError
from controller.verify.facts import (
    VerificationFailure,
    VerificationOutcome,
    VerifiedSignature,
    VerifiedStatement,
)
from controller.verify.link import VerifiedLink, verify_link
from controller.verify.statement import statement_from_verified_payload
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
    for layer in evidence.attestations:
        for authority in authorities:
            try:
                statements.append(
                    verify_cosign_attestation(layer, digest, authority, trust_roots, now)
                )
            except VerificationError as exc:
                failures.append(
                    VerificationFailure(layer.source, authority.name, str(exc), "attestation")
                )
    for bundle in evidence.bundles:
        for authority in authorities:
            try:
                fact = _verify_bundle(bundle, digest, authority, trust_roots)
            except VerificationError as exc:
                failures.append(
                    VerificationFailure(bundle.source, authority.name, str(exc), "bundle")
                )
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
    )


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

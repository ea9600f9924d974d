"""Policy checks: each one small object turning verified facts into one ``CheckResult``.

The engine only composes these. A check never sees unverified evidence: its inputs are a
``VerificationOutcome`` whose facts the verify gate produced, plus the failures it recorded,
which appear in reasons only, never as evidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from controller.policy.model import AttestationRequirement, SignatureRequirement
from controller.policy.verdict import CheckResult
from controller.verify.facts import (
    VerificationFailure,
    VerificationOutcome,
    VerifiedSignature,
    VerifiedStatement,
)

__all__ = ["AttestationCheck", "SignatureCheck", "summarise_failures"]

_MAX_LISTED = 3


def summarise_failures(failures: Sequence[VerificationFailure], authorities: Sequence[str]) -> str:
    """Why evidence that was found did not count, for the named authorities, briefly."""
    relevant = [f for f in failures if f.authority in authorities] or list(failures)
    if not relevant:
        return ""
    # one line per piece of evidence: the reason it failed for the first authority tried
    by_source: dict[str, VerificationFailure] = {}
    for f in relevant:
        by_source.setdefault(f.source, f)
    items = list(by_source.values())
    parts = [f"{f.source}: {f.reason}" for f in items[:_MAX_LISTED]]
    more = len(items) - _MAX_LISTED
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def _names(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "(none)"


@dataclass(frozen=True)
class SignatureCheck:
    """``threshold`` distinct authorities among the required ones signed the image digest,
    each backed by a distinct signer.

    A signer (a key, or a certificate identity: issuer and subject) counts for one authority
    at most: one signature matching two overlapping keyless authorities, or one key listed
    under two names, is one signer, not two. The count is a maximum matching between the
    required authorities and the signers that verified for them.
    """

    requirement: SignatureRequirement

    def run(self, outcome: VerificationOutcome) -> CheckResult:
        """Count distinct authorities, each matched to its own signer."""
        req = self.requirement
        required = set(req.authorities)
        signers_of: dict[str, set[_SignerKey]] = {}
        for sig in outcome.signatures:
            if sig.signer.authority in required:
                signers_of.setdefault(sig.signer.authority, set()).add(_signer_key(sig))
        matched = _max_matching(signers_of)
        signed = sorted(matched)
        if len(signed) >= req.threshold:
            if req.threshold == 0:
                return CheckResult("signatures", True, "no signature required")
            return CheckResult(
                "signatures",
                True,
                f"signed by {len(signed)} of the required {req.threshold} ({_names(signed)})",
            )
        missing = [a for a in req.authorities if a not in matched]
        # a signature that verified for some authority already counts: listing how it failed
        # for the others would hide the evidence that is really missing
        counted = {sig.source for sig in outcome.signatures}
        why = summarise_failures(
            [
                f
                for f in outcome.failures
                if f.kind in ("signature", "bundle") and f.source not in counted
            ],
            missing,
        )
        found = f"signed by {len(signed)} ({_names(signed)})" if signed else "no valid signature"
        reason = (
            f"{found}; policy requires {req.threshold} of [{_names(req.authorities)}]"
            f", missing {_names(missing)}"
        )
        shared = _shared_signers(signers_of)
        if shared:
            reason += (
                f". One signature matched several authorities ({shared}); each signer counts "
                "for one authority only"
            )
        if why:
            reason += f". Evidence that did not verify: {why}"
        elif not signers_of:
            reason += (
                ". No signatures were found: looked for cosign .sig tag, OCI referrers and the "
                "referrers tag. Sign the image digest with one of those authorities"
            )
        return CheckResult("signatures", False, reason)


# A signer: ("key", key id) or ("keyless", issuer, subject); the evidence source when the
# verifier named neither (never the case for facts it produces, but never merge them then).
_SignerKey = tuple[str, ...]


def _signer_key(sig: VerifiedSignature) -> _SignerKey:
    signer = sig.signer
    if signer.kind == "key" and signer.key_id:
        return ("key", signer.key_id)
    if signer.kind == "keyless" and signer.issuer is not None and signer.subject is not None:
        return ("keyless", signer.issuer, signer.subject)
    return ("source", sig.source)


def _max_matching(signers_of: Mapping[str, set[_SignerKey]]) -> dict[str, _SignerKey]:
    """Authority -> its own signer, for as many authorities as possible (augmenting paths;
    the graphs are a handful of nodes)."""
    owner: dict[_SignerKey, str] = {}

    def assign(authority: str, seen: set[_SignerKey]) -> bool:
        for key in sorted(signers_of[authority]):
            if key in seen:
                continue
            seen.add(key)
            if key not in owner or assign(owner[key], seen):
                owner[key] = authority
                return True
        return False

    for authority in sorted(signers_of):
        assign(authority, set())
    return {authority: key for key, authority in owner.items()}


def _shared_signers(signers_of: Mapping[str, set[_SignerKey]]) -> str:
    """``signer: a, b`` for every signer that verified for more than one authority."""
    by_signer: dict[_SignerKey, list[str]] = {}
    for authority, keys in signers_of.items():
        for key in keys:
            by_signer.setdefault(key, []).append(authority)
    parts = [
        f"{_describe_signer(key)} for {', '.join(sorted(names))}"
        for key, names in sorted(by_signer.items())
        if len(names) > 1
    ]
    return "; ".join(parts)


def _describe_signer(key: _SignerKey) -> str:
    if key[0] == "key":
        return f"key {key[1][:16]}"
    if key[0] == "keyless":
        return f"{key[2]} (issuer {key[1]})"
    return key[1]


@dataclass(frozen=True)
class AttestationCheck:
    """A statement of ``predicate_type`` signed by one of the named authorities.

    Conditions are applied by the engine to the candidates this check selects.
    """

    requirement: AttestationRequirement

    def candidates(self, outcome: VerificationOutcome) -> list[VerifiedStatement]:
        """Verified statements of the wanted type from an accepted signer."""
        req = self.requirement
        return [
            s
            for s in outcome.statements
            if s.predicate_type == req.predicate_type and s.signer.authority in req.authorities
        ]

    def run(self, outcome: VerificationOutcome) -> CheckResult:
        """Present or not, with what was found instead."""
        req = self.requirement
        check = f"attestation:{req.name}"
        found = self.candidates(outcome)
        if found:
            signers = sorted({str(s.signer) for s in found})
            return CheckResult(
                check, True, f"{req.predicate_type} statement signed by {', '.join(signers)}"
            )
        other_types = sorted(
            {s.predicate_type for s in outcome.statements if s.signer.authority in req.authorities}
        )
        reason = (
            f"no verified {req.predicate_type} attestation signed by "
            f"{' or '.join(req.authorities) or '(no authority)'}"
        )
        if other_types:
            reason += f" (found only {', '.join(other_types)})"
        why = summarise_failures(
            [f for f in outcome.failures if f.kind in ("attestation", "bundle")],
            req.authorities,
        )
        if why:
            reason += f". Evidence that did not verify: {why}"
        return CheckResult(check, False, reason)

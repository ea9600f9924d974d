"""Policy checks: each one small object turning verified facts into one ``CheckResult``.

The engine only composes these. A check never sees unverified evidence: its inputs are a
``VerificationOutcome`` whose facts the verify gate produced, plus the failures it recorded,
which appear in reasons only, never as evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from controller.policy.model import AttestationRequirement, SignatureRequirement
from controller.policy.verdict import CheckResult
from controller.verify.facts import VerificationFailure, VerificationOutcome, VerifiedStatement

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
    """``threshold`` distinct authorities among the required ones signed the image digest."""

    requirement: SignatureRequirement

    def run(self, outcome: VerificationOutcome) -> CheckResult:
        """Count distinct authorities with a verified signature on the image."""
        req = self.requirement
        signed = sorted({s.signer.authority for s in outcome.signatures} & set(req.authorities))
        if len(signed) >= req.threshold:
            if req.threshold == 0:
                return CheckResult("signatures", True, "no signature required")
            return CheckResult(
                "signatures",
                True,
                f"signed by {len(signed)} of the required {req.threshold} ({_names(signed)})",
            )
        missing = [a for a in req.authorities if a not in signed]
        why = summarise_failures(
            [f for f in outcome.failures if f.kind in ("signature", "bundle")], missing
        )
        found = f"signed by {len(signed)} ({_names(signed)})" if signed else "no valid signature"
        reason = (
            f"{found}; policy requires {req.threshold} of [{_names(req.authorities)}]"
            f", missing {_names(missing)}"
        )
        if why:
            reason += f". Evidence that did not verify: {why}"
        elif not signed:
            reason += (
                ". No signatures were found: looked for cosign .sig tag, OCI referrers and the "
                "referrers tag. Sign the image digest with one of those authorities"
            )
        return CheckResult("signatures", False, reason)


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

"""Apply every matching policy to one image's verified facts and compose a verdict.

Rules:
- Every matching policy applies; the image is denied when any enforce-mode policy fails and
  no unexpired exception covers it. warn-mode failures become AdmissionReview warnings;
  audit-mode failures are only recorded.
- An expired exception stops applying and says so in the reasons.
- A condition whose evaluation errors fails closed with the error text.
- Policies see only ``VerificationOutcome`` facts; failures appear only as reasons.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from controller.oci.reference import ImageRef
from controller.policy.checks import AttestationCheck, SignatureCheck
from controller.policy.model import ImagePolicy, PolicyException, PolicySet
from controller.policy.verdict import CheckResult, Evidence, ImageVerdict, PolicyResult, Verdict
from controller.verify.facts import VerificationOutcome

__all__ = ["ImageContext", "PolicyEngine"]


@dataclass(frozen=True)
class ImageContext:
    """What the engine knows about where an image is being admitted."""

    written: str  # the reference as written in the workload
    image: ImageRef  # normalised and pinned to its digest
    namespace: str
    object: Mapping[str, Any] = field(default_factory=dict)
    user: str = ""
    groups: tuple[str, ...] = ()
    operation: str = "CREATE"


class PolicyEngine:
    """The loaded policy set plus the rules for composing results."""

    def __init__(
        self,
        policy_set: PolicySet,
        *,
        no_match: str = "allow",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.policy_set = policy_set
        self.no_match = no_match
        self._clock = clock

    def policies_for(self, image: ImageRef, namespace: str) -> list[ImagePolicy]:
        """The policies whose match selects this image in this namespace."""
        from controller.policy.match import policies_for

        return list(policies_for(self.policy_set, image, namespace))

    def evaluate(
        self, ctx: ImageContext, policy: ImagePolicy, outcome: VerificationOutcome
    ) -> PolicyResult:
        """All checks of ``policy`` against the facts verified with its authorities."""
        checks: list[CheckResult] = []
        if policy.signatures.threshold > 0:
            checks.append(SignatureCheck(policy.signatures).run(outcome))
        for req in policy.attestations:
            checks.append(AttestationCheck(req).run(outcome))
        passed = all(c.passed for c in checks)
        exception: str | None = None
        if not passed:
            exception, note = self._exception_for(ctx, policy.exceptions)
            if note:
                checks.append(CheckResult("exception", False, note))
        return PolicyResult(
            name=policy.name,
            mode=policy.mode,
            passed=passed,
            checks=tuple(checks),
            exception=exception,
        )

    def _exception_for(
        self, ctx: ImageContext, exceptions: Sequence[PolicyException]
    ) -> tuple[str | None, str | None]:
        from controller.policy.match import exception_matches

        now = self._clock()
        expired_note: str | None = None
        for exc in exceptions:
            if not exception_matches(exc, ctx.image, ctx.namespace):
                continue
            if exc.expires is not None and exc.expires <= now:
                expired_note = (
                    f"exception ({exc.reason}) expired at {exc.expires.isoformat()} and no "
                    "longer applies"
                )
                continue
            return exc.reason, None
        return None, expired_note

    def compose(
        self,
        ctx: ImageContext,
        results: Sequence[PolicyResult],
        evidence: Evidence,
    ) -> ImageVerdict:
        """One verdict from the policy results of an image."""
        verdict: Verdict = "allow"
        if not results and self.no_match == "deny":
            return ImageVerdict(
                ref=ctx.written,
                digest=ctx.image.digest,
                verdict="deny",
                policies=(),
                evidence=evidence,
                error="no policy matches this image and the webhook runs with --no-match deny",
            )
        for r in results:
            if r.passed or r.exception:
                continue
            if r.mode == "enforce":
                verdict = "deny"
            elif r.mode == "warn" and verdict == "allow":
                verdict = "warn"
        return ImageVerdict(
            ref=ctx.written,
            digest=ctx.image.digest,
            verdict=verdict,
            policies=tuple(results),
            evidence=evidence,
        )

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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from controller.oci.reference import ImageRef, parse_image_ref
from controller.policy.activation import CelObject, build_activation, statement_value
from controller.policy.cel import CelActivation, ConditionError, evaluate
from controller.policy.checks import AttestationCheck, SignatureCheck, summarise_failures
from controller.policy.match import exception_matches, policies_for
from controller.policy.model import (
    AttestationRequirement,
    Condition,
    ImagePolicy,
    PolicyException,
    PolicySet,
    ProvenanceRequirement,
)
from controller.policy.verdict import CheckResult, Evidence, ImageVerdict, PolicyResult, Verdict
from controller.provenance.level import (
    ProvenanceAssessment,
    assess_provenance,
    trusted_matches,
)
from controller.provenance.reproducibility import (
    ReproducibilityAssessment,
    assess_reproducibility,
)
from controller.provenance.vsa import VsaFacts, assess_vsa
from controller.verify.facts import VerificationOutcome

__all__ = ["ImageContext", "PolicyAssessment", "PolicyEngine"]


@dataclass(frozen=True)
class PolicyAssessment:
    """A policy's result with the facts behind it (for decision records)."""

    result: PolicyResult
    provenance: ProvenanceAssessment
    reproducibility: ReproducibilityAssessment | None
    vsas: VsaFacts


def _explain_missing_provenance(
    checks: Sequence[CheckResult], outcome: VerificationOutcome
) -> list[CheckResult]:
    """When no provenance counted, say which attestations were found but did not verify."""
    out = list(checks)
    for i, c in enumerate(out):
        if c.check == "provenance.present" and not c.passed:
            counted = {s.source for s in outcome.statements}
            why = summarise_failures(
                [
                    f
                    for f in outcome.failures
                    if f.kind in ("attestation", "bundle") and f.source not in counted
                ],
                (),
            )
            if why:
                out[i] = CheckResult(
                    c.check, False, f"{c.reason}. Evidence that did not verify: {why}"
                )
    return out


def _with_vsa_level(
    checks: Sequence[CheckResult], vsas: VsaFacts, min_level: int
) -> list[CheckResult]:
    """A trusted VSA that verified the required build level satisfies provenance.minLevel."""
    out = list(checks)
    if min_level <= 0 or vsas.build_level < min_level:
        return out
    for i, c in enumerate(out):
        if c.check == "provenance.minLevel" and not c.passed:
            out[i] = CheckResult(
                c.check,
                True,
                f"a trusted VSA verified SLSA build level {vsas.build_level} "
                f"(policy requires {min_level}); provenance alone: {c.reason}",
            )
        elif c.check == "provenance.present" and not c.passed:
            out[i] = CheckResult(c.check, True, "no provenance, but a trusted VSA vouches")
    return out


def _condition(check: str, cond: Condition, activation: CelActivation) -> CheckResult:
    if cond.compiled is None:  # the loader compiles every condition; fail closed regardless
        return CheckResult(check, False, "was never compiled; failing closed")
    try:
        ok = evaluate(cond.compiled, activation)
    except ConditionError as exc:
        return CheckResult(check, False, f"could not be evaluated ({exc}); failing closed")
    if ok:
        return CheckResult(check, True, "holds")
    return CheckResult(check, False, cond.message or f"{cond.expression} is false")


def _attestation(
    req: AttestationRequirement, outcome: VerificationOutcome, activation: CelActivation
) -> CheckResult:
    check = AttestationCheck(req)
    present = check.run(outcome)
    if not present.passed or not req.conditions:
        return present
    last: CheckResult | None = None
    for stmt in check.candidates(outcome):
        scoped = activation.with_statement(statement_value(stmt))
        results = [_condition(present.check, c, scoped) for c in req.conditions]
        failed = [r for r in results if not r.passed]
        if not failed:
            return CheckResult(present.check, True, f"{present.reason}; conditions hold")
        last = failed[0]
    assert last is not None
    n = len(check.candidates(outcome))
    return CheckResult(
        present.check,
        False,
        f"{n} verified {req.predicate_type} statement(s) found but none meets the conditions: "
        f"{last.reason}",
    )


@dataclass(frozen=True)
class ImageContext:
    """What the engine knows about where an image is being admitted."""

    written: str  # the reference as written in the workload
    image: ImageRef  # normalised, and pinned to its digest once resolved
    namespace: str
    object: CelObject = field(default_factory=lambda: CelObject({}))
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
        return policies_for(self.policy_set, image, namespace)

    def assess(
        self, ctx: ImageContext, policy: ImagePolicy, outcome: VerificationOutcome
    ) -> PolicyAssessment:
        """All checks of ``policy``, plus the provenance facts they were decided on."""
        digest = ctx.image.digest or ""
        checks: list[CheckResult] = []
        if policy.signatures.threshold > 0:
            checks.append(SignatureCheck(policy.signatures).run(outcome))

        prov_req = policy.provenance or ProvenanceRequirement()
        provenance = assess_provenance(outcome.statements, digest, prov_req)
        verifiers = (
            [a.name for a in policy.reproducibility.vsa_verifiers] if policy.reproducibility else []
        )
        vsas = assess_vsa(outcome.statements, str(ctx.image), digest, verifiers)
        if policy.provenance is not None:
            checks.extend(
                _explain_missing_provenance(
                    _with_vsa_level(provenance.checks, vsas, prov_req.min_level), outcome
                )
            )

        reproducibility = None
        if policy.reproducibility is not None:
            reproducibility = assess_reproducibility(
                digest,
                [(m.provenance, m.builder) for m in provenance.trusted],
                vsas,
                outcome.links,
                policy.reproducibility,
                prov_req.accept_reproducible_claim,
                # rebuilds that produced other bytes: only this check reads foreign statements
                other_digests=[
                    (m.provenance, m.builder)
                    for m in trusted_matches(outcome.foreign_statements, prov_req.trusted_builders)
                ],
            )
            checks.extend(reproducibility.checks)

        if policy.conditions or any(r.conditions for r in policy.attestations):
            try:
                obj = ctx.object.get()
            except TypeError as exc:
                for name in [c.name for c in policy.conditions] + [
                    r.name for r in policy.attestations if r.conditions
                ]:
                    checks.append(
                        CheckResult(
                            name, False, f"the admitted object cannot be given to CEL: {exc}"
                        )
                    )
            else:
                activation = build_activation(
                    image=ctx.image,
                    written=ctx.written,
                    outcome=outcome,
                    provenance=provenance,
                    reproducibility=reproducibility,
                    vsas=vsas,
                    obj=obj,
                    namespace=ctx.namespace,
                    user=ctx.user,
                    groups=ctx.groups,
                    operation=ctx.operation,
                    now=self._clock(),
                )
                for req in policy.attestations:
                    checks.append(_attestation(req, outcome, activation))
                for cond in policy.conditions:
                    checks.append(_condition(f"condition:{cond.name}", cond, activation))
        else:
            checks.extend(AttestationCheck(req).run(outcome) for req in policy.attestations)
        passed = all(c.passed for c in checks)
        exception: str | None = None
        if not passed:
            exception, note = self._exception_for(ctx, policy.exceptions)
            if note:
                checks.append(CheckResult("exception", False, note))
        result = PolicyResult(
            name=policy.name,
            mode=policy.mode,
            passed=passed,
            checks=tuple(checks),
            exception=exception,
        )
        return PolicyAssessment(result, provenance, reproducibility, vsas)

    def _exception_for(
        self, ctx: ImageContext, exceptions: Sequence[PolicyException]
    ) -> tuple[str | None, str | None]:
        now = self._clock()
        expired_note: str | None = None
        # a tag reference we resolved keeps its tag (and matches digest globs by the digest
        # it resolved to); one written with a digest is never waived by a tag glob
        pinned = parse_image_ref(ctx.written).digest is not None
        for exc in exceptions:
            if not exception_matches(exc, ctx.image, ctx.namespace, pinned=pinned):
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

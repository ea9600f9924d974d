"""Results of evaluating policies: one small record per check, composed upwards.

The denial message is assembled from these reasons, never re-derived elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from controller.policy.model import Mode

__all__ = ["CheckResult", "Evidence", "ImageVerdict", "PolicyResult", "Verdict"]

Verdict = Literal["allow", "deny", "warn"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check of one policy: ``check`` names it (e.g. "signatures", "provenance.minLevel",
    "attestation:sbom", "condition:no-latest"); ``reason`` is a sentence a person can act on."""

    check: str
    passed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """One policy applied to one image."""

    name: str
    mode: Mode
    passed: bool
    checks: tuple[CheckResult, ...]
    exception: str | None = None  # reason of the exception that waived a failure

    @property
    def result(self) -> Literal["pass", "fail", "excepted"]:
        """ "pass", "fail" or "excepted" for the decision record."""
        if self.passed:
            return "pass"
        return "excepted" if self.exception else "fail"

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        """The checks that failed."""
        return tuple(c for c in self.checks if not c.passed)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What verified evidence said about an image, for decision records and replay."""

    signers: tuple[str, ...] = ()
    slsa_level: int = 0
    builder: str | None = None
    source: dict[str, str | None] = field(default_factory=dict)  # repository, ref, commit
    dependencies: tuple[dict[str, str], ...] = ()  # {"uri","digest"}
    independent_builds: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ImageVerdict:
    """The verdict for one image occurrence in a review."""

    ref: str  # as written in the pod spec
    digest: str | None
    verdict: Verdict
    policies: tuple[PolicyResult, ...]
    evidence: Evidence = field(default_factory=Evidence)
    error: str | None = None  # image-level failure (bad reference, registry unreachable)

    def denial_reasons(self) -> list[str]:
        """One line per failed enforce-mode check: image, policy, check and reason."""
        out: list[str] = []
        if self.error:
            out.append(f"image {self.ref}: {self.error}")
        for p in self.policies:
            if p.passed or p.exception or p.mode != "enforce":
                continue
            for c in p.failures:
                out.append(f"image {self.ref}: policy {p.name}: {c.check}: {c.reason}")
        return out

    def explain(self) -> list[str]:
        """Human-readable lines: the image error, each policy's result and its checks."""
        lines: list[str] = []
        if self.error:
            lines.append(f"error: {self.error}")
        for p in self.policies:
            note = f" ({p.exception})" if p.exception else ""
            lines.append(f"policy {p.name} [{p.mode}]: {p.result}{note}")
            lines.extend(
                f"  {'ok  ' if c.passed else 'FAIL'} {c.check}: {c.reason}" for c in p.checks
            )
        if not self.policies and not self.error:
            lines.append("no policy matches this image")
        return lines

    def warnings(self) -> list[str]:
        """One line per failed warn-mode check."""
        out: list[str] = []
        for p in self.policies:
            if p.passed or p.exception or p.mode != "warn":
                continue
            for c in p.failures:
                out.append(f"image {self.ref}: policy {p.name}: {c.check}: {c.reason}")
        return out

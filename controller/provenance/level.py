"""SLSA build level of an image from its verified provenance and the policy's trusted builders.

Implements SLSA v1.0 "Verifying artifacts" (https://slsa.dev/spec/v1.0/verifying-artifacts,
"How to verify": the builder identity must be in the map of trusted builder ids to SLSA level,
and the provenance signature must verify) over the build levels of
https://slsa.dev/spec/v1.0/levels. Rules:

- Only statements of an SLSA provenance predicate type whose subject names the image digest
  are considered; a malformed one is a failing ``provenance.wellFormed`` check, never skipped.
- A statement counts for trusted builder B only when B's ``id`` glob (``*`` inside one path
  segment, ``**`` across) matches the provenance's builder id, AND the statement was verified
  for B's signer (``signer.authority == B.signer.name``; an inline signer is named
  ``builder[<index>]:<id>`` after its own entry, so two entries for one builder id, with
  different keys or trust roots, never vouch for each other), AND, when B's signer is keyless with
  neither subject nor subjectRegExp, the certificate subject equals the builder id (for
  GitHub reusable workflows the SAN is the builder id including ``@refs/tags/vX``). This is the
  binding slsa-verifier makes: the builder id is only believed when the builder signed it.
- Level = min(B.level, 3) for provenance that counts for B: a trusted builder's signature
  proves the level the policy trusts it for, and SLSA v1.0 defines no build level above 3.
- Provenance that exists but counts for no trusted builder proves Build L1 and no more: L1
  requires only that provenance exists ("Provenance showing how the package was built";
  levels page, Build L1: it may be unsigned), while L2 requires provenance "signed by the build
  platform" and the verifier to know that platform (Build L2, "Verifying artifacts").
- No provenance: level 0.
- The source and build-type checks read one provenance: the one that satisfies the most of
  the policy (trusted builder, level, repository, ref, build type), preferring higher levels;
  the level, builder and source reported all come from that same provenance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from controller.policy.match import GlobError, glob_matches
from controller.policy.model import ProvenanceRequirement, TrustedBuilder
from controller.policy.verdict import CheckResult
from controller.provenance.slsa import (
    Provenance,
    ProvenanceError,
    is_provenance,
    names_digest,
    parse_provenance,
)
from controller.verify.authority import KeylessAuthority
from controller.verify.facts import VerifiedStatement

__all__ = [
    "MAX_BUILD_LEVEL",
    "BuilderMatch",
    "ProvenanceAssessment",
    "assess_provenance",
    "match_trusted_builder",
    "trusted_matches",
]

MAX_BUILD_LEVEL = 3


@dataclass(frozen=True, slots=True)
class BuilderMatch:
    """A provenance that counts for a trusted builder, and the level that proves."""

    provenance: Provenance
    builder: TrustedBuilder
    level: int


@dataclass(frozen=True, slots=True)
class ProvenanceAssessment:
    """What the provenance of one image proves under one policy."""

    level: int
    builder_id: str | None
    provenance: Provenance | None  # the provenance the level and source checks describe
    checks: tuple[CheckResult, ...]
    all_provenance: tuple[Provenance, ...]  # every well-formed provenance naming the digest
    trusted: tuple[BuilderMatch, ...] = ()  # every provenance that counts for a trusted builder

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(c.passed for c in self.checks)


def match_trusted_builder(
    provenance: Provenance, builders: Sequence[TrustedBuilder]
) -> tuple[BuilderMatch | None, str]:
    """The best trusted builder ``provenance`` counts for, or None and the reason it counts
    for none (one sentence naming the builder id and what did not match)."""
    best: BuilderMatch | None = None
    refusals: list[str] = []
    for builder in builders:
        if not _glob(builder.id, provenance.builder_id):
            continue
        refusal = _signer_refusal(provenance, builder)
        if refusal:
            refusals.append(refusal)
            continue
        level = max(1, min(builder.level, MAX_BUILD_LEVEL))
        if best is None or level > best.level:
            best = BuilderMatch(provenance, builder, level)
    if best is not None:
        return best, ""
    if refusals:
        return None, "; ".join(refusals)
    return None, f"builder {provenance.builder_id} is not on the trusted builder list"


def assess_provenance(
    statements: Sequence[VerifiedStatement], image_digest: str, req: ProvenanceRequirement
) -> ProvenanceAssessment:
    """Assess the SLSA provenance among ``statements`` for ``image_digest`` under ``req``.

    Returns the level proved, the provenance it comes from, and one check per requirement:
    ``provenance.present``, ``provenance.wellFormed`` (only when some provenance is malformed),
    ``provenance.trustedBuilder`` (when the policy lists builders), ``provenance.minLevel``
    (when it requires a level), ``provenance.source.repository``, ``provenance.source.ref``
    and ``provenance.buildType`` (when the policy constrains them).
    """
    parsed: list[Provenance] = []
    malformed: list[str] = []
    other_digests = 0
    for statement in statements:
        if not is_provenance(statement.predicate_type):
            continue
        if not names_digest(statement.subjects, image_digest):
            other_digests += 1
            continue
        try:
            parsed.append(parse_provenance(statement))
        except ProvenanceError as exc:
            malformed.append(str(exc))

    candidates = [_Candidate.evaluate(p, req) for p in parsed]
    chosen = max(candidates, key=_Candidate.rank) if candidates else None

    checks: list[CheckResult] = [_present_check(parsed, image_digest, other_digests, malformed)]
    if malformed:
        checks.append(CheckResult("provenance.wellFormed", False, "; ".join(malformed)))
    if req.trusted_builders:
        checks.append(_trusted_check(chosen, candidates))
    if req.min_level > 0:
        checks.append(_level_check(chosen, req.min_level))
    if req.source.repositories:
        checks.append(_glob_check(chosen, "provenance.source.repository", "source repository"))
    if req.source.refs:
        checks.append(_glob_check(chosen, "provenance.source.ref", "source ref"))
    if req.build_types:
        checks.append(_glob_check(chosen, "provenance.buildType", "build type"))

    return ProvenanceAssessment(
        level=chosen.level if chosen else 0,
        builder_id=chosen.provenance.builder_id if chosen else None,
        provenance=chosen.provenance if chosen else None,
        checks=tuple(checks),
        all_provenance=tuple(parsed),
        trusted=tuple(c.match for c in candidates if c.match is not None),
    )


def trusted_matches(
    statements: Sequence[VerifiedStatement], builders: Sequence[TrustedBuilder]
) -> tuple[BuilderMatch, ...]:
    """Every well-formed SLSA provenance in ``statements`` that counts for one of
    ``builders``, whatever digests it names (malformed or untrusted ones are left out).

    For provenance about OTHER artifacts (``VerificationOutcome.foreign_statements``): the
    reproducibility check uses it to report a trusted builder that produced other bytes.
    """
    out: list[BuilderMatch] = []
    for statement in statements:
        if not is_provenance(statement.predicate_type):
            continue
        try:
            provenance = parse_provenance(statement)
        except ProvenanceError:
            continue
        match, _ = match_trusted_builder(provenance, builders)
        if match is not None:
            out.append(match)
    return tuple(out)


# --- evaluation of one provenance --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Outcome:
    passed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class _Candidate:
    provenance: Provenance
    match: BuilderMatch | None
    untrusted_reason: str
    level: int
    needs_trust: bool
    min_level: int
    outcomes: dict[str, _Outcome]

    @staticmethod
    def evaluate(provenance: Provenance, req: ProvenanceRequirement) -> _Candidate:
        match, why = match_trusted_builder(provenance, req.trusted_builders)
        source = provenance.source
        outcomes: dict[str, _Outcome] = {}
        if req.source.repositories:
            outcomes["source repository"] = _match_value(
                source.repository if source else None,
                req.source.repositories,
                provenance,
                "source repository",
            )
        if req.source.refs:
            outcomes["source ref"] = _match_value(
                source.ref if source else None, req.source.refs, provenance, "source ref"
            )
        if req.build_types:
            outcomes["build type"] = _match_value(
                provenance.build_type, req.build_types, provenance, "build type"
            )
        return _Candidate(
            provenance=provenance,
            match=match,
            untrusted_reason=why,
            level=match.level if match else 1,
            needs_trust=bool(req.trusted_builders),
            min_level=req.min_level,
            outcomes=outcomes,
        )

    def rank(self) -> tuple[bool, int, int]:
        trusted_ok = self.match is not None or not self.needs_trust
        passes = sum(o.passed for o in self.outcomes.values())
        satisfies_all = trusted_ok and self.level >= self.min_level and passes == len(self.outcomes)
        return satisfies_all, self.level, passes


def _match_value(
    value: str | None, globs: Sequence[str], provenance: Provenance, what: str
) -> _Outcome:
    allowed = ", ".join(globs)
    if not value:
        where = f" (source uri {provenance.source.uri})" if provenance.source else ""
        return _Outcome(
            False,
            f"provenance from builder {provenance.builder_id} names no {what}{where}; "
            f"policy allows {allowed}",
        )
    for glob in globs:
        if _glob(glob, value):
            return _Outcome(True, f"{what} {value} matches {glob}")
    return _Outcome(False, f"{what} {value} is not allowed by policy (allowed: {allowed})")


def _signer_refusal(provenance: Provenance, builder: TrustedBuilder) -> str:
    """Why ``provenance`` does not count for ``builder`` although the id matched ("" if it
    does)."""
    signer = provenance.signer
    expected = builder.signer
    prefix = f"builder {provenance.builder_id} matches trusted builder {builder.id}"
    if signer.authority != expected.name:
        who = signer.authority or str(signer)
        return f"{prefix} but its provenance was signed by {who}, not by {expected.name}"
    if isinstance(expected, KeylessAuthority):
        if signer.kind != "keyless":
            return f"{prefix} but its provenance was signed with a key, not a certificate"
        if signer.issuer != expected.issuer:
            return f"{prefix} but its certificate issuer {signer.issuer} is not {expected.issuer}"
        if expected.subject is None and expected.subject_regexp is None:
            if signer.subject != provenance.builder_id:
                return (
                    f"{prefix} but the signing certificate's subject {signer.subject} is not "
                    f"the builder id: the provenance was not signed by that builder"
                )
        elif signer.subject is None or not expected.subject_matches(signer.subject):
            return f"{prefix} but the certificate subject {signer.subject} is not allowed"
    elif signer.kind != "key":
        return f"{prefix} but its provenance was signed by a certificate, not the builder's key"
    return ""


def _glob(glob: str, value: str) -> bool:
    try:
        return glob_matches(glob, value)
    except GlobError:
        return False  # the loader validates globs; an invalid one matches nothing


# --- checks ------------------------------------------------------------------------------


def _present_check(
    parsed: Sequence[Provenance], digest: str, other_digests: int, malformed: Sequence[str]
) -> CheckResult:
    if parsed:
        builders = ", ".join(sorted({p.builder_id for p in parsed}))
        count = len(parsed)
        noun = "statement" if count == 1 else "statements"
        return CheckResult(
            "provenance.present",
            True,
            f"found {count} verified SLSA provenance {noun} for {digest} (builder {builders})",
        )
    notes = []
    if malformed:
        notes.append(f"{len(malformed)} malformed")
    if other_digests:
        notes.append(f"{other_digests} naming other digests")
    extra = f" ({', '.join(notes)})" if notes else ""
    return CheckResult(
        "provenance.present", False, f"no verified SLSA provenance names {digest}{extra}"
    )


def _trusted_check(chosen: _Candidate | None, candidates: Sequence[_Candidate]) -> CheckResult:
    name = "provenance.trustedBuilder"
    if chosen is None:
        return CheckResult(name, False, "no verified provenance to take a builder from")
    if chosen.match is not None:
        m = chosen.match
        return CheckResult(
            name,
            True,
            f"builder {chosen.provenance.builder_id} is trusted (entry {m.builder.id}, "
            f"up to level {m.builder.level}, signed by {m.builder.signer.name})",
        )
    reasons = sorted({c.untrusted_reason for c in candidates if c.match is None})
    return CheckResult(name, False, "; ".join(reasons))


def _level_check(chosen: _Candidate | None, min_level: int) -> CheckResult:
    name = "provenance.minLevel"
    if chosen is None:
        return CheckResult(
            name, False, f"SLSA build level 0 found (no provenance), policy requires {min_level}"
        )
    builder_id = chosen.provenance.builder_id
    if chosen.match is None:
        why = f"builder {builder_id} not trusted for more"
    elif chosen.level < min_level:
        why = f"builder {builder_id} trusted for level {chosen.match.builder.level} at most"
    else:
        why = f"builder {builder_id}"
    return CheckResult(
        name,
        chosen.level >= min_level,
        f"SLSA build level {chosen.level} found ({why}), policy requires {min_level}",
    )


def _glob_check(chosen: _Candidate | None, name: str, what: str) -> CheckResult:
    if chosen is None:
        return CheckResult(name, False, f"no verified provenance to read the {what} from")
    outcome = chosen.outcomes[what]
    return CheckResult(name, outcome.passed, outcome.reason)

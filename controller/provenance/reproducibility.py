"""Reproducibility: did independent builders produce exactly this image digest?

Implements the reproducibility requirement of a reprogate policy
(``reproducibility.minIndependentBuilds``) from three kinds of verified evidence, following
SLSA v1.2 "Verified properties", SLSA_BUILD_REPRODUCED ("the referenced artifact has build
provenance from two or more independently operated Build Platforms which are trusted by the
VSA issuer"). Rules:

- An independent build is (a) SLSA provenance that counts for a trusted builder
  (``controller.provenance.level``) and names the digest, or (b) an in-toto rebuild link,
  verified for one of the policy's rebuilder keys, whose product sha256 equals the digest.
- Builds are independent only when they differ in builder AND in signer: two attestations
  from one builder count once, and so do two builder ids signed by one signer. The signer of a
  keyless build is its OIDC issuer (one issuer is one CI platform, so two workflows on GitHub
  Actions are one platform); of a key-signed build, its key. A rebuild link's builder is its
  rebuilder key. The count is the largest set of builds that is pairwise distinct in both
  (a bipartite matching), so the order of the evidence never changes the result.
- A VSA carrying SLSA_BUILD_REPRODUCED, accepted from one of the policy's VSA verifiers,
  satisfies the requirement on its own: that verifier has checked the property for us.
- A builder's own ``reproducible: true`` (SLSA provenance v0.2 metadata) satisfies the
  requirement only when the policy sets ``acceptReproducibleClaim``, and never counts as an
  independent build.
- A rebuild link from a listed rebuilder whose products do not include the digest is a
  rebuild that produced different bytes: a failing ``reproducibility.mismatch`` check naming
  the rebuilder and both digests, whatever else passed.
- So is SLSA provenance stored with the image, verified for a trusted builder, whose subjects
  name only other digests (``VerificationOutcome.foreign_statements``): that builder built the
  image's source and got other bytes. It never counts as a build of this digest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from controller.policy.model import ReproducibilityRequirement, TrustedBuilder
from controller.policy.verdict import CheckResult
from controller.provenance.slsa import Provenance
from controller.provenance.vsa import BUILD_REPRODUCED, VsaFacts
from controller.verify.link import VerifiedLink

__all__ = ["IndependentBuild", "ReproducibilityAssessment", "assess_reproducibility"]


@dataclass(frozen=True, slots=True)
class IndependentBuild:
    """One build that produced the digest: who built it and who vouches for it."""

    builder: str  # builder id, or "rebuilder <authority>" for rebuild links
    signer: str  # the independence key: "issuer <url>" or "key <id>"
    label: str  # "builder X" / "rebuilder R", for the count check's reason
    description: str  # "builder X (signed by Y)" for messages and decision records


@dataclass(frozen=True, slots=True)
class ReproducibilityAssessment:
    """Whether the image's digest was reproduced, with the evidence and the checks."""

    independent_builds: tuple[str, ...]  # descriptions of the builds that were counted
    mismatches: tuple[str, ...]
    checks: tuple[CheckResult, ...]
    satisfied_by: str = ""  # "builds", "vsa" or "claim" when the count check passed
    builder_ids: tuple[str, ...] = ()  # the builder ids (or "rebuilder <name>") counted

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(c.passed for c in self.checks)


def assess_reproducibility(
    image_digest: str,
    provenance: Sequence[tuple[Provenance, TrustedBuilder]],
    vsas: VsaFacts,
    links: Sequence[VerifiedLink],
    req: ReproducibilityRequirement,
    accept_claim: bool,
    other_digests: Sequence[tuple[Provenance, TrustedBuilder]] = (),
) -> ReproducibilityAssessment:
    """Count independent builds of ``image_digest`` and check them against ``req``.

    ``provenance`` holds only provenance that already counts for a trusted builder (the
    ``trusted`` matches of a ``ProvenanceAssessment``); ``other_digests`` holds trusted
    builders' provenance stored with the image but naming other digests (rebuilds with other
    bytes). Returns the checks ``reproducibility.independentBuilds`` and one
    ``reproducibility.mismatch`` per rebuild that produced other bytes.
    """
    algorithm, _, digest_hex = image_digest.partition(":")
    digest_hex = digest_hex.lower()
    builds: list[IndependentBuild] = []
    claims: list[str] = []
    for prov, builder in provenance:
        if not prov.names_digest(image_digest):
            continue
        signer = prov.signer
        if signer.kind == "keyless":
            signer_key = f"issuer {signer.issuer}"
        else:
            signer_key = f"key {signer.key_id or builder.signer.name}"
        signer_text = _signer_text(prov, builder)
        builds.append(
            IndependentBuild(
                builder=prov.builder_id,
                signer=signer_key,
                label=f"builder {prov.builder_id}",
                description=f"builder {prov.builder_id} (signed by {signer_text})",
            )
        )
        if prov.reproducible:
            claims.append(prov.builder_id)

    rebuilders = {a.name for a in req.rebuilders}
    mismatches: list[str] = []
    for prov, builder in other_digests:
        if prov.names_digest(image_digest):
            continue  # not foreign after all; counted above when it was handed in there
        named = ", ".join(
            dict.fromkeys(
                f"{algo}:{value}" for s in prov.subjects for algo, value in s.digest.items()
            )
        )
        mismatches.append(
            f"trusted builder {prov.builder_id} (signed by {_signer_text(prov, builder)}) produced "
            f"{named or 'no digest'}, but the image is {image_digest} (provenance: {prov.origin})"
        )
    for link in links:
        if link.signer not in rebuilders:
            continue  # verified, but not for a rebuilder this policy lists
        produced = link.product_sha256() if algorithm == "sha256" else {}
        if digest_hex in produced.values():
            builds.append(
                IndependentBuild(
                    builder=f"rebuilder {link.signer}",
                    signer=f"key {link.key_id}",
                    label=f"rebuilder {link.signer}",
                    description=f"rebuilder {link.signer} (key {link.key_id[:16]})",
                )
            )
            continue
        found = ", ".join(f"{path}: sha256:{h}" for path, h in sorted(produced.items()))
        mismatches.append(
            f"rebuilder {link.signer} (link {link.name!r}) produced "
            f"{found or 'no sha256 product'}, but the image is {image_digest}"
        )

    counted = _independent(builds)
    verifier_names = {a.name for a in req.vsa_verifiers}
    vouching = [
        v.verifier_id
        for v in vsas.accepted
        if BUILD_REPRODUCED in v.verified_levels and v.signer.authority in verifier_names
    ]
    checks = [
        _count_check(
            counted, len(builds), req.min_independent_builds, vouching, claims, accept_claim
        )
    ]
    checks.extend(CheckResult("reproducibility.mismatch", False, m) for m in mismatches)
    satisfied_by = ""
    if checks[0].passed:
        if len(counted) >= req.min_independent_builds:
            satisfied_by = "builds"
        elif vouching:
            satisfied_by = "vsa"
        else:
            satisfied_by = "claim"
    return ReproducibilityAssessment(
        independent_builds=tuple(b.description for b in counted),
        builder_ids=tuple(b.builder for b in counted),
        mismatches=tuple(mismatches),
        checks=tuple(checks),
        satisfied_by=satisfied_by,
    )


def _signer_text(prov: Provenance, builder: TrustedBuilder) -> str:
    signer = prov.signer
    if signer.kind == "keyless":
        return f"{signer.subject} from issuer {signer.issuer}"
    name = builder.signer.name
    if name.startswith("builder["):
        # an inline signer: the user wrote a key under this builder, not a name
        return f"the key of trusted builder {builder.id} ({(signer.key_id or '')[:16]})"
    return f"key {name}"


def _independent(builds: Sequence[IndependentBuild]) -> list[IndependentBuild]:
    """The largest set of builds pairwise distinct in builder and in signer.

    A maximum bipartite matching (builders on one side, signers on the other, one edge per
    build) by augmenting paths; evidence lists are small, so the simple algorithm is enough.
    """
    edges: dict[str, list[IndependentBuild]] = {}
    for build in builds:
        options = edges.setdefault(build.builder, [])
        if all(o.signer != build.signer for o in options):
            options.append(build)
    owner: dict[str, IndependentBuild] = {}  # signer -> build currently using it

    def augment(builder: str, seen: set[str]) -> bool:
        for build in edges[builder]:
            if build.signer in seen:
                continue
            seen.add(build.signer)
            holder = owner.get(build.signer)
            if holder is None or augment(holder.builder, seen):
                owner[build.signer] = build
                return True
        return False

    for builder in edges:
        augment(builder, set())
    chosen = {id(b) for b in owner.values()}
    return [b for b in builds if id(b) in chosen]


def _count_check(
    counted: Sequence[IndependentBuild],
    total: int,
    required: int,
    vouching: Sequence[str],
    claims: Sequence[str],
    accept_claim: bool,
) -> CheckResult:
    name = "reproducibility.independentBuilds"
    n = len(counted)
    noun = "build" if n == 1 else "builds"
    listed = f" ({'; '.join(b.label for b in counted)})" if counted else ""
    found = f"found {n} independent {noun}{listed}, policy requires {required}"
    if total > n:
        extra = total - n
        found += (
            f" ({extra} more {'build' if extra == 1 else 'builds'} shared a builder or "
            f"signer with one counted)"
        )
    if n >= required:
        return CheckResult(name, True, found)
    if vouching:
        verifiers = ", ".join(dict.fromkeys(vouching))
        return CheckResult(name, True, f"verifier {verifiers} attested {BUILD_REPRODUCED}; {found}")
    if claims and accept_claim:
        builders = ", ".join(dict.fromkeys(claims))
        return CheckResult(
            name,
            True,
            f"builder {builders} claims a reproducible build, accepted by policy "
            f"(acceptReproducibleClaim); {found}",
        )
    if claims:
        found += (
            f"; builder {', '.join(dict.fromkeys(claims))} claims a reproducible build, "
            f"which counts only with acceptReproducibleClaim"
        )
    return CheckResult(name, False, found)

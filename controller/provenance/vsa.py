"""SLSA Verification Summary Attestations (https://slsa.dev/verification_summary/v1).

Parses VSA v1 predicates from statements ``controller.verify`` has verified, and decides which
of them speak for the image being admitted. Rules:

- Required fields (VSA v1 "Schema"): ``verifier.id``, ``timeVerified``, ``resourceUri``,
  ``policy``, ``verificationResult`` (``PASSED`` or ``FAILED``), ``verifiedLevels``. A missing
  or mistyped field is a :class:`VsaError`, reported, never skipped silently.
- A VSA is accepted for an image only when all of these hold:
  1. it was verified for one of the trusted verifier authorities (``signer.authority``);
  2. ``verificationResult`` is ``PASSED``;
  3. it names this image. ``resourceUri`` (optionally prefixed ``oci://`` or ``docker://``)
     must parse as an image reference of the same registry and repository as the image; and
     the digest must be bound: the reference's own ``@sha256:…`` equals the image digest, or,
     when the reference has no digest (a tag), a statement subject's ``sha256`` equals it.
     A ``resourceUri`` digest different from the image digest is a refusal even when a subject
     matches. A ``resourceUri`` that is not an image reference (``gce_image://…``) names no
     image.
- ``SLSA_BUILD_REPRODUCED`` (SLSA v1.2 verified properties) in an accepted VSA sets
  ``reproduced``; ``SLSA_BUILD_LEVEL_n`` sets the build level; other entries are custom
  properties, passed on as written.
- ``checks`` has one entry ``vsa`` per VSA statement considered: passed when it was accepted,
  else the reason. They explain evidence; whether a missing VSA fails a policy is the caller's
  decision.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from controller.oci.reference import ImageRef, ReferenceError, parse_image_ref
from controller.policy.verdict import CheckResult
from controller.provenance.slsa import names_digest
from controller.verify.facts import SignerIdentity, Subject, VerifiedStatement

__all__ = [
    "BUILD_REPRODUCED",
    "VSA_V1",
    "VerificationSummary",
    "VsaError",
    "VsaFacts",
    "assess_vsa",
    "parse_vsa",
]

VSA_V1 = "https://slsa.dev/verification_summary/v1"
BUILD_REPRODUCED = "SLSA_BUILD_REPRODUCED"
_BUILD_LEVEL = re.compile(r"^SLSA_BUILD_LEVEL_([0-9])$")
_RESULTS = frozenset({"PASSED", "FAILED"})
MAX_LEVELS = 256


class VsaError(ValueError):
    """A VSA predicate that does not have the shape VSA v1 requires."""

    def __init__(self, origin: str, why: str) -> None:
        super().__init__(f"malformed verification summary from {origin}: {why}")


@dataclass(frozen=True, slots=True)
class VerificationSummary:
    """One parsed VSA v1 statement."""

    verifier_id: str
    time_verified: datetime
    resource_uri: str
    policy_uri: str | None
    verification_result: str  # "PASSED" | "FAILED"
    verified_levels: tuple[str, ...]
    dependency_levels: Mapping[str, int]
    slsa_version: str | None
    subjects: tuple[Subject, ...]
    signer: SignerIdentity
    origin: str

    @property
    def build_level(self) -> int:
        """Highest ``SLSA_BUILD_LEVEL_n`` in ``verified_levels`` (0 when none)."""
        levels = [int(m.group(1)) for m in map(_BUILD_LEVEL.match, self.verified_levels) if m]
        return max(levels, default=0)


@dataclass(frozen=True, slots=True)
class VsaFacts:
    """What the accepted VSAs for one image say."""

    accepted: tuple[VerificationSummary, ...]
    levels: tuple[str, ...]  # union of accepted verifiedLevels, in first-seen order
    build_level: int
    reproduced: bool
    reproduced_by: tuple[str, ...]  # verifier ids that attested SLSA_BUILD_REPRODUCED
    custom_properties: tuple[str, ...]  # levels that are neither build levels nor reproduced
    checks: tuple[CheckResult, ...]


def parse_vsa(statement: VerifiedStatement) -> VerificationSummary:
    """Parse the predicate of a verified VSA v1 statement; raise :class:`VsaError`."""
    origin = statement.source or "an attestation"
    if statement.predicate_type != VSA_V1:
        raise VsaError(origin, f"predicate type {statement.predicate_type!r} is not {VSA_V1}")
    p = statement.predicate
    if not isinstance(p, dict):
        raise VsaError(origin, "predicate must be a JSON object")
    verifier = p.get("verifier")
    if not isinstance(verifier, dict):
        raise VsaError(origin, "verifier must be a JSON object")
    verifier_id = _required_str(origin, verifier.get("id"), "verifier.id")
    time_text = _required_str(origin, p.get("timeVerified"), "timeVerified")
    try:
        time_verified = datetime.fromisoformat(time_text)
    except ValueError as exc:
        raise VsaError(origin, f"timeVerified {time_text!r} is not RFC 3339") from exc
    if time_verified.tzinfo is None:
        raise VsaError(origin, f"timeVerified {time_text!r} has no time zone")
    resource_uri = _required_str(origin, p.get("resourceUri"), "resourceUri")
    policy = p.get("policy")
    if not isinstance(policy, dict):
        raise VsaError(origin, "policy must be a JSON object (a ResourceDescriptor)")
    policy_uri = policy.get("uri")
    if policy_uri is not None and not isinstance(policy_uri, str):
        raise VsaError(origin, "policy.uri must be a string")
    result = p.get("verificationResult")
    if result not in _RESULTS:
        raise VsaError(origin, f"verificationResult must be PASSED or FAILED, got {result!r}")
    levels = p.get("verifiedLevels")
    if not isinstance(levels, list) or not all(isinstance(x, str) for x in levels):
        raise VsaError(origin, "verifiedLevels must be a list of strings")
    if len(levels) > MAX_LEVELS:
        raise VsaError(origin, f"verifiedLevels has {len(levels)} entries, over {MAX_LEVELS}")
    dependency_levels = p.get("dependencyLevels", {})
    if not isinstance(dependency_levels, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0
        for v in dependency_levels.values()
    ):
        raise VsaError(origin, "dependencyLevels must map levels to non-negative counts")
    slsa_version = p.get("slsaVersion")
    if slsa_version is not None and not isinstance(slsa_version, str):
        raise VsaError(origin, "slsaVersion must be a string")
    return VerificationSummary(
        verifier_id=verifier_id,
        time_verified=time_verified,
        resource_uri=resource_uri,
        policy_uri=policy_uri,
        verification_result=str(result),
        verified_levels=tuple(levels),
        dependency_levels=MappingProxyType(dict(dependency_levels)),
        slsa_version=slsa_version,
        subjects=statement.subjects,
        signer=statement.signer,
        origin=origin,
    )


def assess_vsa(
    statements: Sequence[VerifiedStatement],
    image_ref_string: str,
    image_digest: str,
    trusted_verifier_authority_names: Collection[str],
) -> VsaFacts:
    """Accept the VSAs among ``statements`` that a trusted verifier issued, that PASSED and
    that name the image ``image_ref_string`` at ``image_digest`` (rules in the module doc)."""
    image = _image_ref(image_ref_string)
    trusted = set(trusted_verifier_authority_names)
    accepted: list[VerificationSummary] = []
    checks: list[CheckResult] = []
    for statement in statements:
        if statement.predicate_type != VSA_V1:
            continue
        try:
            vsa = parse_vsa(statement)
        except VsaError as exc:
            checks.append(CheckResult("vsa", False, str(exc)))
            continue
        refusal = _refusal(vsa, image, image_ref_string, image_digest, trusted)
        if refusal:
            checks.append(CheckResult("vsa", False, refusal))
            continue
        accepted.append(vsa)
        levels = ", ".join(vsa.verified_levels) or "no levels"
        checks.append(
            CheckResult(
                "vsa", True, f"verifier {vsa.verifier_id} PASSED {vsa.resource_uri} ({levels})"
            )
        )

    levels_seen: dict[str, None] = {}
    for vsa in accepted:
        levels_seen.update(dict.fromkeys(vsa.verified_levels))
    reproduced_by = tuple(
        dict.fromkeys(v.verifier_id for v in accepted if BUILD_REPRODUCED in v.verified_levels)
    )
    return VsaFacts(
        accepted=tuple(accepted),
        levels=tuple(levels_seen),
        build_level=max((v.build_level for v in accepted), default=0),
        reproduced=bool(reproduced_by),
        reproduced_by=reproduced_by,
        custom_properties=tuple(
            level
            for level in levels_seen
            if level != BUILD_REPRODUCED and not _BUILD_LEVEL.match(level)
        ),
        checks=tuple(checks),
    )


def _refusal(
    vsa: VerificationSummary,
    image: ImageRef | None,
    image_ref_string: str,
    image_digest: str,
    trusted: set[str],
) -> str:
    who = f"VSA from verifier {vsa.verifier_id} ({vsa.origin})"
    if vsa.signer.authority not in trusted:
        signer = vsa.signer.authority or str(vsa.signer)
        return f"{who} is signed by {signer}, which is not a trusted VSA verifier"
    if vsa.verification_result != "PASSED":
        return f"{who} says {vsa.verification_result} for {vsa.resource_uri}"
    named = _resource_ref(vsa.resource_uri)
    if named is None:
        return f"{who}: resourceUri {vsa.resource_uri} is not an image reference"
    if image is None or named.name != image.name:
        return f"{who}: resourceUri {vsa.resource_uri} does not name image {image_ref_string}"
    if named.digest is not None:
        if named.digest != image_digest:
            return (
                f"{who}: resourceUri {vsa.resource_uri} names digest {named.digest}, "
                f"not {image_digest}"
            )
    elif not names_digest(vsa.subjects, image_digest):
        return (
            f"{who}: resourceUri {vsa.resource_uri} has no digest and no subject names "
            f"{image_digest}"
        )
    return ""


def _resource_ref(uri: str) -> ImageRef | None:
    for prefix in ("oci://", "docker://"):
        if uri.startswith(prefix):
            uri = uri[len(prefix) :]
            break
    if "://" in uri:
        return None
    return _image_ref(uri)


def _image_ref(text: str) -> ImageRef | None:
    try:
        return parse_image_ref(text)
    except ReferenceError:
        return None


def _required_str(origin: str, value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise VsaError(origin, f"{name} is required and must be a non-empty string")
    return value

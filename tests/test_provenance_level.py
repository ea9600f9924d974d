"""SLSA build level assessment on the real slsa-github-generator container provenance.

Statements are built directly from the real DSSE payload with the signer identity the real
Fulcio certificate carries (SAN = the generator workflow at its release tag, GitHub issuer):
the signature itself is verified in the verify package's tests, not here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from controller.policy.model import ProvenanceRequirement, SourceRequirement, TrustedBuilder
from controller.provenance.level import assess_provenance
from controller.verify.authority import KeyAuthority, KeylessAuthority
from controller.verify.facts import SignerIdentity, Subject, VerifiedStatement

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
LAYOUT = VECTORS / "slsa-verifier" / "container" / "container_workflow_dispatch"
GH_ISSUER = "https://token.actions.githubusercontent.com"
GENERATOR = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_container_slsa3.yml@refs/tags/v1.10.0"
)
RELEASES = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_container_slsa3.yml@refs/tags/v*"
)
GHA = KeylessAuthority(name="gha", issuer=GH_ISSUER)
REAL_SIGNER = SignerIdentity(authority="gha", kind="keyless", subject=GENERATOR, issuer=GH_ISSUER)


def real_statement(signer: SignerIdentity = REAL_SIGNER) -> tuple[VerifiedStatement, str]:
    """The real provenance statement and the image digest it names."""
    if not LAYOUT.is_dir():
        pytest.skip(f"slsa-verifier container vector not present at {LAYOUT}")
    import base64

    blobs = LAYOUT / "blobs" / "sha256"
    index = json.loads((LAYOUT / "index.json").read_text())
    atts = next(
        m for m in index["manifests"] if m["annotations"]["kind"] == "dev.cosignproject.cosign/atts"
    )
    manifest = json.loads((blobs / atts["digest"].split(":")[1]).read_text())
    envelope = json.loads((blobs / manifest["layers"][0]["digest"].split(":")[1]).read_bytes())
    payload = base64.b64decode(envelope["payload"])
    doc = json.loads(payload)
    statement = VerifiedStatement(
        signer=signer,
        statement_type=doc["_type"],
        predicate_type=doc["predicateType"],
        subjects=tuple(Subject(s["name"], s["digest"]) for s in doc["subject"]),
        predicate=doc["predicate"],
        payload=payload,
        integrated_time=None,
        source="container_workflow_dispatch .att layer 0",
    )
    digest = (LAYOUT.parent / "container_workflow_dispatch.digest").read_text().strip()
    return statement, digest


def req(
    builders: tuple[TrustedBuilder, ...] = (TrustedBuilder(RELEASES, 3, GHA),),
    min_level: int = 3,
    repositories: tuple[str, ...] = (),
    refs: tuple[str, ...] = (),
    build_types: tuple[str, ...] = (),
) -> ProvenanceRequirement:
    return ProvenanceRequirement(
        min_level=min_level,
        trusted_builders=builders,
        source=SourceRequirement(repositories=repositories, refs=refs),
        build_types=build_types,
    )


def check(assessment: object, name: str) -> tuple[bool, str]:
    for c in assessment.checks:  # type: ignore[attr-defined]
        if c.check == name:
            return c.passed, c.reason
    raise AssertionError(f"no check {name}")


def test_level_3_when_generator_release_is_trusted() -> None:
    statement, digest = real_statement()
    result = assess_provenance(
        [statement],
        digest,
        req(repositories=("github.com/slsa-framework/*",), refs=("refs/tags/v*",)),
    )
    assert result.level == 3
    assert result.builder_id == GENERATOR
    assert result.provenance is not None and result.provenance.source is not None
    assert result.provenance.source.repository == "github.com/slsa-framework/example-package"
    assert result.passed, result.checks
    assert [c.check for c in result.checks] == [
        "provenance.present",
        "provenance.trustedBuilder",
        "provenance.minLevel",
        "provenance.source.repository",
        "provenance.source.ref",
    ]
    assert len(result.trusted) == 1 and result.trusted[0].builder.id == RELEASES


def test_level_1_when_list_omits_the_generator() -> None:
    statement, digest = real_statement()
    generic = (
        "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
        "generator_generic_slsa3.yml@refs/tags/v*"
    )
    result = assess_provenance(
        [statement], digest, req(builders=(TrustedBuilder(generic, 3, GHA),))
    )
    assert result.level == 1
    assert check(result, "provenance.present")[0]
    passed, reason = check(result, "provenance.trustedBuilder")
    assert not passed
    assert reason == f"builder {GENERATOR} is not on the trusted builder list"
    passed, reason = check(result, "provenance.minLevel")
    assert not passed
    assert reason == (
        f"SLSA build level 1 found (builder {GENERATOR} not trusted for more), policy requires 3"
    )


def test_single_star_does_not_cross_path_segments() -> None:
    statement, digest = real_statement()
    one = "https://github.com/slsa-framework/slsa-github-generator/*/generator_container_slsa3.yml@refs/tags/*"
    two = "https://github.com/slsa-framework/slsa-github-generator/**/generator_container_slsa3.yml@refs/tags/*"
    assert assess_provenance([statement], digest, req((TrustedBuilder(one, 3, GHA),))).level == 1
    assert assess_provenance([statement], digest, req((TrustedBuilder(two, 3, GHA),))).level == 3


def test_builder_level_caps_the_result() -> None:
    statement, digest = real_statement()
    result = assess_provenance([statement], digest, req((TrustedBuilder(RELEASES, 2, GHA),)))
    assert result.level == 2
    passed, reason = check(result, "provenance.minLevel")
    assert not passed
    assert reason == (
        f"SLSA build level 2 found (builder {GENERATOR} trusted for level 2 at most), "
        "policy requires 3"
    )


def test_signed_by_another_authority_does_not_count() -> None:
    other = dataclasses.replace(REAL_SIGNER, authority="someone-else")
    statement, digest = real_statement(other)
    result = assess_provenance([statement], digest, req())
    assert result.level == 1
    passed, reason = check(result, "provenance.trustedBuilder")
    assert not passed
    assert "signed by someone-else, not by gha" in reason


def test_certificate_subject_must_equal_builder_id() -> None:
    # e.g. the caller's own workflow signed provenance claiming the generator as builder
    forged = dataclasses.replace(
        REAL_SIGNER,
        subject="https://github.com/slsa-framework/example-package/.github/workflows/x.yml@refs/heads/main",
    )
    statement, digest = real_statement(forged)
    result = assess_provenance([statement], digest, req())
    assert result.level == 1
    passed, reason = check(result, "provenance.trustedBuilder")
    assert not passed
    assert "is not the builder id" in reason


def test_key_builder_requires_key_signature() -> None:
    statement, digest = real_statement()
    key_builder = TrustedBuilder(RELEASES, 3, KeyAuthority("gha", b"unused"))
    result = assess_provenance([statement], digest, req((key_builder,)))
    assert result.level == 1
    assert "signed by a certificate" in check(result, "provenance.trustedBuilder")[1]


@pytest.mark.parametrize(
    ("repositories", "passes", "fragment"),
    [
        (("github.com/slsa-framework/example-package",), True, "matches"),
        (("github.com/**",), True, "matches"),
        (
            ("github.com/acme/*",),
            False,
            "source repository github.com/slsa-framework/example-package is not allowed",
        ),
        (("github.com/slsa-framework",), False, "is not allowed"),
    ],
)
def test_source_repositories(repositories: tuple[str, ...], passes: bool, fragment: str) -> None:
    statement, digest = real_statement()
    result = assess_provenance([statement], digest, req(repositories=repositories))
    passed, reason = check(result, "provenance.source.repository")
    assert passed is passes
    assert fragment in reason


def test_source_ref_and_build_type() -> None:
    statement, digest = real_statement()
    result = assess_provenance(
        [statement],
        digest,
        req(refs=("refs/heads/main",), build_types=("https://github.com/slsa-framework/**",)),
    )
    passed, reason = check(result, "provenance.source.ref")
    assert not passed
    assert (
        reason
        == "source ref refs/tags/v13.0.30 is not allowed by policy (allowed: refs/heads/main)"
    )
    assert check(result, "provenance.buildType")[0]


def test_statement_for_another_digest_is_not_provenance_of_this_image() -> None:
    statement, _ = real_statement()
    result = assess_provenance([statement], "sha256:" + "00" * 32, req())
    assert result.level == 0
    assert result.provenance is None
    passed, reason = check(result, "provenance.present")
    assert not passed
    assert "1 naming other digests" in reason
    assert check(result, "provenance.minLevel") == (
        False,
        "SLSA build level 0 found (no provenance), policy requires 3",
    )


def test_malformed_provenance_is_a_failing_check_not_a_crash() -> None:
    statement, digest = real_statement()
    broken = dataclasses.replace(statement, predicate={"builder": "nope"}, source="broken layer")
    result = assess_provenance([broken, statement], digest, req())
    assert result.level == 3  # the good statement still counts
    passed, reason = check(result, "provenance.wellFormed")
    assert not passed
    assert "broken layer" in reason and "builder must be a JSON object" in reason
    assert not result.passed

    only_broken = assess_provenance([broken], digest, req())
    assert only_broken.level == 0
    assert not check(only_broken, "provenance.present")[0]

"""Reproducibility: independent builds from test builders' provenance (statements built here,
signature verification is the verify package's job), real rebuilderd links verified with
controller.verify.link, and VSAs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from controller.policy.model import ReproducibilityRequirement, TrustedBuilder
from controller.provenance.reproducibility import assess_reproducibility
from controller.provenance.slsa import PROVENANCE_V02, Provenance, parse_provenance
from controller.provenance.vsa import VSA_V1, VsaFacts, assess_vsa
from controller.verify.authority import Authority, KeyAuthority, KeylessAuthority
from controller.verify.facts import SignerIdentity, Subject, VerifiedStatement
from controller.verify.link import VerifiedLink, verify_link

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
LINKS = VECTORS / "rebuilderd-links"
DIGEST = "sha256:" + "c0" * 32
NO_VSA = VsaFacts((), (), 0, False, (), (), ())


def key_authority(name: str) -> KeyAuthority:
    return KeyAuthority(name, b"-----BEGIN PUBLIC KEY-----\n(not read here)\n")


def build(
    builder_id: str,
    signer: Authority,
    *,
    digest: str = DIGEST,
    reproducible: bool = False,
    subject: str | None = None,
) -> tuple[Provenance, TrustedBuilder]:
    """A trusted builder's provenance for ``digest``, as level.py hands it over."""
    if isinstance(signer, KeylessAuthority):
        identity = SignerIdentity(signer.name, "keyless", subject=subject, issuer=signer.issuer)
    else:
        identity = SignerIdentity(
            signer.name, "key", key_id=hashlib.sha256(signer.name.encode()).hexdigest()
        )
    predicate = {
        "builder": {"id": builder_id},
        "buildType": "https://example.com/build@v1",
        "metadata": {"reproducible": reproducible},
    }
    statement = VerifiedStatement(
        signer=identity,
        statement_type="https://in-toto.io/Statement/v0.1",
        predicate_type=PROVENANCE_V02,
        subjects=(Subject("app", {"sha256": digest.split(":")[1]}),),
        predicate=predicate,
        payload=json.dumps(predicate).encode(),
        integrated_time=None,
        source=f"{builder_id} attestation",
    )
    return parse_provenance(statement), TrustedBuilder(builder_id, 3, signer)


ALPHA = build("https://builders.example/alpha", key_authority("alpha-key"))
BETA = build("https://builders.example/beta", key_authority("beta-key"))
GAMMA = build("https://builders.example/gamma", key_authority("gamma-key"))


def requirement(n: int, **kwargs: object) -> ReproducibilityRequirement:
    return ReproducibilityRequirement(min_independent_builds=n, **kwargs)  # type: ignore[arg-type]


def count_check(result: object) -> tuple[bool, str]:
    first = result.checks[0]  # type: ignore[attr-defined]
    assert first.check == "reproducibility.independentBuilds"
    return first.passed, first.reason


def test_one_builder_is_not_enough_for_two() -> None:
    result = assess_reproducibility(DIGEST, [ALPHA], NO_VSA, [], requirement(2), False)
    assert count_check(result) == (
        False,
        "found 1 independent build (builder https://builders.example/alpha), policy requires 2",
    )
    assert result.independent_builds == (
        "builder https://builders.example/alpha (signed by key alpha-key)",
    )
    assert not result.passed


def test_two_and_three_distinct_builders() -> None:
    two = assess_reproducibility(DIGEST, [ALPHA, BETA], NO_VSA, [], requirement(2), False)
    assert two.passed and len(two.independent_builds) == 2
    three = assess_reproducibility(DIGEST, [ALPHA, BETA, GAMMA], NO_VSA, [], requirement(3), False)
    assert three.passed and len(three.independent_builds) == 3
    four = assess_reproducibility(DIGEST, [ALPHA, BETA, GAMMA], NO_VSA, [], requirement(4), False)
    passed, reason = count_check(four)
    assert not passed and reason.startswith("found 3 independent builds (")


def test_same_builder_twice_counts_once() -> None:
    again = build("https://builders.example/alpha", key_authority("alpha-key"))
    result = assess_reproducibility(DIGEST, [ALPHA, again], NO_VSA, [], requirement(2), False)
    passed, reason = count_check(result)
    assert not passed
    assert "found 1 independent build" in reason
    assert "1 more build shared a builder or signer" in reason


def test_one_signer_for_two_builder_ids_counts_once() -> None:
    shared = build("https://builders.example/delta", key_authority("alpha-key"))
    result = assess_reproducibility(DIGEST, [ALPHA, shared], NO_VSA, [], requirement(2), False)
    assert not result.passed


def test_keyless_builders_on_one_issuer_are_one_platform() -> None:
    gha_a = KeylessAuthority("gha-a", "https://token.actions.githubusercontent.com")
    gha_b = KeylessAuthority("gha-b", "https://token.actions.githubusercontent.com")
    gitlab = KeylessAuthority("gitlab", "https://gitlab.com")
    a = build("https://github.com/o/a/.github/workflows/b.yml@refs/tags/v1", gha_a, subject="x")
    b = build("https://github.com/o/b/.github/workflows/b.yml@refs/tags/v1", gha_b, subject="y")
    c = build("https://gitlab.com/o/builder", gitlab, subject="z")
    assert not assess_reproducibility(DIGEST, [a, b], NO_VSA, [], requirement(2), False).passed
    assert assess_reproducibility(DIGEST, [a, b, c], NO_VSA, [], requirement(2), False).passed


def test_count_does_not_depend_on_evidence_order() -> None:
    # b1 signed by s1 and s2, b2 signed by s1: greedy on b1/s1 would find only one
    b1_s1 = build("https://builders.example/b1", key_authority("s1"))
    b1_s2 = build("https://builders.example/b1", key_authority("s2"))
    b2_s1 = build("https://builders.example/b2", key_authority("s1"))
    result = assess_reproducibility(
        DIGEST, [b1_s1, b1_s2, b2_s1], NO_VSA, [], requirement(2), False
    )
    assert result.passed, result.checks


def test_provenance_for_another_digest_is_not_a_build_of_this_one() -> None:
    other = build(
        "https://builders.example/beta", key_authority("beta-key"), digest="sha256:" + "00" * 32
    )
    assert not assess_reproducibility(
        DIGEST, [ALPHA, other], NO_VSA, [], requirement(2), False
    ).passed


def test_reproducible_claim_only_with_accept_claim_and_never_as_a_build() -> None:
    claimed = build("https://builders.example/alpha", key_authority("alpha-key"), reproducible=True)
    refused = assess_reproducibility(DIGEST, [claimed], NO_VSA, [], requirement(2), False)
    passed, reason = count_check(refused)
    assert not passed and "counts only with acceptReproducibleClaim" in reason
    accepted = assess_reproducibility(DIGEST, [claimed], NO_VSA, [], requirement(2), True)
    assert accepted.passed and accepted.satisfied_by == "claim"
    assert len(accepted.independent_builds) == 1


def vsa_facts(levels: list[str], signer_name: str) -> VsaFacts:
    doc: dict[str, Any] = {
        "_type": "https://in-toto.io/Statement/v1",
        "predicateType": VSA_V1,
        "subject": [{"name": "app", "digest": {"sha256": DIGEST.split(":")[1]}}],
        "predicate": {
            "verifier": {"id": "https://verifier.example"},
            "timeVerified": "2025-01-01T00:00:00Z",
            "resourceUri": f"registry.example.com/acme/app@{DIGEST}",
            "policy": {"uri": "https://policies.example/p"},
            "verificationResult": "PASSED",
            "verifiedLevels": levels,
        },
    }
    statement = VerifiedStatement(
        signer=SignerIdentity(signer_name, "key"),
        statement_type=doc["_type"],
        predicate_type=VSA_V1,
        subjects=(Subject("app", {"sha256": DIGEST.split(":")[1]}),),
        predicate=doc["predicate"],
        payload=json.dumps(doc).encode(),
        integrated_time=None,
        source="vsa",
    )
    return assess_vsa([statement], "registry.example.com/acme/app:1", DIGEST, [signer_name])


def test_reproduced_vsa_from_trusted_verifier_satisfies() -> None:
    verifier = key_authority("repro-verifier")
    facts = vsa_facts(["SLSA_BUILD_REPRODUCED"], "repro-verifier")
    result = assess_reproducibility(
        DIGEST, [ALPHA], facts, [], requirement(2, vsa_verifiers=(verifier,)), False
    )
    passed, reason = count_check(result)
    assert passed and result.satisfied_by == "vsa"
    assert reason.startswith("verifier https://verifier.example attested SLSA_BUILD_REPRODUCED")
    # the same VSA does not count when the policy names another verifier
    other = assess_reproducibility(
        DIGEST, [ALPHA], facts, [], requirement(2, vsa_verifiers=(key_authority("x"),)), False
    )
    assert not other.passed
    # nor does a VSA without the property
    plain = vsa_facts(["SLSA_BUILD_LEVEL_3"], "repro-verifier")
    assert not assess_reproducibility(
        DIGEST, [ALPHA], plain, [], requirement(2, vsa_verifiers=(verifier,)), False
    ).passed


def real_links() -> tuple[VerifiedLink, VerifiedLink, str]:
    if not LINKS.is_dir():
        pytest.skip(f"rebuilderd link vectors not present at {LINKS}")
    arch = KeyAuthority("arch", (LINKS / "reproducible-archlinux.pub").read_bytes())
    debian = KeyAuthority("debian", (LINKS / "reproduce-debian-net-amd64.pub").read_bytes())
    arch_link = verify_link(
        (LINKS / "filesystem-2025.10.12-1-any.in-toto.link").read_bytes(), [arch]
    )
    debian_link = verify_link(
        (LINKS / "librust-as-slice-dev_0.2.1-1+b2_amd64.in-toto.link").read_bytes(), [debian]
    )
    pkg = (LINKS / "filesystem-2025.10.12-1-any.pkg.tar.zst").read_bytes()
    return arch_link, debian_link, "sha256:" + hashlib.sha256(pkg).hexdigest()


def test_rebuild_link_is_an_independent_build_and_a_mismatch_fails() -> None:
    arch_link, debian_link, digest = real_links()
    original = build(
        "https://builders.example/arch-official", key_authority("arch-official"), digest=digest
    )
    req = requirement(2, rebuilders=(key_authority("arch"), key_authority("debian")))

    ok = assess_reproducibility(digest, [original], NO_VSA, [arch_link], req, False)
    assert ok.passed, ok.checks
    assert ok.independent_builds[1].startswith("rebuilder arch (key ")

    bad = assess_reproducibility(digest, [original], NO_VSA, [arch_link, debian_link], req, False)
    assert count_check(bad)[0]  # the count is still met ...
    mismatch = [c for c in bad.checks if c.check == "reproducibility.mismatch"]
    assert len(mismatch) == 1 and not mismatch[0].passed  # ... but the mismatch fails
    debian_sha = debian_link.product_sha256()["librust-as-slice-dev_0.2.1-1+b2_amd64.deb"]
    assert "rebuilder debian" in mismatch[0].reason
    assert f"sha256:{debian_sha}" in mismatch[0].reason
    assert f"the image is {digest}" in mismatch[0].reason
    assert not bad.passed


def test_links_from_unlisted_rebuilders_are_ignored() -> None:
    arch_link, _, digest = real_links()
    original = build(
        "https://builders.example/arch-official", key_authority("arch-official"), digest=digest
    )
    result = assess_reproducibility(
        digest, [original], NO_VSA, [arch_link], requirement(2, rebuilders=()), False
    )
    assert not result.passed
    assert result.mismatches == ()

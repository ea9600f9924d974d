"""A signature threshold counts distinct signers, not authority names (gate review M1).

"threshold: 2" means two different signers. One signature that two overlapping keyless
authorities both accept, or one key listed under two authority names, is one signer. The
check is a maximum matching between required authorities and the signers that verified for
them, so a signer that fits two authorities is placed where it lets the most authorities count.
Signatures are real: cosign layers signed by generated keys and a private Sigstore instance.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from controller.evidence.model import CosignLayer, EvidenceSet
from controller.policy.checks import SignatureCheck
from controller.policy.model import SignatureRequirement
from controller.policy.verdict import CheckResult
from controller.verify.authority import Authority, KeyAuthority, KeylessAuthority
from controller.verify.evidence import verify_evidence
from controller.verify.trustroot import TrustRoots, trust_from_json
from tests.support.cosign_sign import as_cosign_layer, public_pem, sign_image
from tests.support.sigstore_pki import DEFAULT_ISSUER, TestSigstore

DIGEST = "sha256:" + "cd" * 32
ALICE = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"
BOB = "https://github.com/acme/zzz/.github/workflows/release.yml@refs/tags/v1.0.0"
RELEASE = KeylessAuthority("release-workflow", DEFAULT_ISSUER, subject=ALICE, trust_root="t")
ANY_ACME = KeylessAuthority(
    "any-acme-workflow", DEFAULT_ISSUER, subject_regexp=r"https://github\.com/acme/.*",
    trust_root="t",
)  # fmt: skip


@pytest.fixture(scope="module")
def sigstore() -> TestSigstore:
    return TestSigstore()


@pytest.fixture(scope="module")
def roots(sigstore: TestSigstore) -> TrustRoots:
    return TrustRoots([trust_from_json(sigstore.trusted_root_json(), "t")])


def _check(
    layers: tuple[CosignLayer, ...],
    authorities: list[Authority],
    threshold: int,
    roots: TrustRoots,
    now: datetime,
) -> CheckResult:
    outcome = verify_evidence(EvidenceSet(DIGEST, signatures=layers), authorities, roots, now)
    names = tuple(a.name for a in authorities)
    return SignatureCheck(SignatureRequirement(threshold, names)).run(outcome)


def _keyless_layer(sigstore: TestSigstore, subject: str, source: str) -> CosignLayer:
    return as_cosign_layer(
        sign_image(sigstore.issue(subject=subject), DIGEST, sigstore=sigstore), source=source
    )


def test_one_signature_matching_two_keyless_authorities_counts_once(
    sigstore: TestSigstore, roots: TrustRoots
) -> None:
    """The reviewer's case: one layer, two overlapping authorities, threshold 2."""
    one = _keyless_layer(sigstore, ALICE, "one layer")
    result = _check((one,), [RELEASE, ANY_ACME], 2, roots, sigstore.now)
    assert not result.passed
    assert result.reason.startswith("signed by 1 ")
    assert "One signature matched several authorities" in result.reason
    assert ALICE in result.reason and "any-acme-workflow, release-workflow" in result.reason


def test_the_same_signer_twice_is_still_one_signer(
    sigstore: TestSigstore, roots: TrustRoots
) -> None:
    layers = (_keyless_layer(sigstore, ALICE, "l0"), _keyless_layer(sigstore, ALICE, "l1"))
    assert not _check(layers, [RELEASE, ANY_ACME], 2, roots, sigstore.now).passed


def test_two_signers_are_matched_to_the_authorities_they_fit(
    sigstore: TestSigstore, roots: TrustRoots
) -> None:
    """Alice fits both authorities, Bob only the regexp: the matching must give Alice to the
    exact one (whatever order it tries them in)."""
    layers = (_keyless_layer(sigstore, ALICE, "alice"), _keyless_layer(sigstore, BOB, "bob"))
    for authorities in ([RELEASE, ANY_ACME], [ANY_ACME, RELEASE]):
        result = _check(layers, list(authorities), 2, roots, sigstore.now)
        assert result.passed, result.reason
        assert result.reason == (
            "signed by 2 of the required 2 (any-acme-workflow, release-workflow)"
        )


def test_one_key_under_two_names_counts_once() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    a = KeyAuthority("team-a", public_pem(key), "ignore")
    b = KeyAuthority("team-b", public_pem(key), "ignore")
    layers = (
        as_cosign_layer(sign_image(key, DIGEST), source="l0"),
        as_cosign_layer(sign_image(key, DIGEST), source="l1"),
    )
    result = _check(layers, [a, b], 2, TrustRoots(), datetime.now(UTC))
    assert not result.passed
    assert "One signature matched several authorities (key " in result.reason
    assert _check(layers, [a, b], 1, TrustRoots(), datetime.now(UTC)).passed


def test_two_keys_count_twice() -> None:
    k1, k2 = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    a = KeyAuthority("team-a", public_pem(k1), "ignore")
    b = KeyAuthority("team-b", public_pem(k2), "ignore")
    layers = (
        as_cosign_layer(sign_image(k1, DIGEST), source="l0"),
        as_cosign_layer(sign_image(k2, DIGEST), source="l1"),
    )
    result = _check(layers, [a, b], 2, TrustRoots(), datetime.now(UTC))
    assert result.passed, result.reason
    assert "One signature matched" not in result.reason

"""Keyless evidence from another identity is refused on its identity alone.

The certificate identity is checked against the authority before the chain, SCT, log and
timestamp work (cosign layers, and both bundle engines), so a layer signed by some other
workflow costs each authority almost nothing. The early check is a filter only: evidence with
the right identity is still refused when its chain or log does not verify.

Evidence here comes from a second private Sigstore instance the trust root does not know, so
every later check would fail too; the reason given shows which check ran first.
"""

from __future__ import annotations

import pytest

from controller.evidence.model import BundleEvidence, EvidenceSet
from controller.verify.authority import KeylessAuthority
from controller.verify.cosign import verify_cosign_signature
from controller.verify.errors import VerificationError
from controller.verify.evidence import verify_evidence
from controller.verify.trustroot import TrustRoots, trust_from_json
from tests.support.cosign_sign import as_cosign_layer, sign_image
from tests.support.sigstore_bundle import dsse_bundle, signature_statement
from tests.support.sigstore_pki import DEFAULT_ISSUER, DEFAULT_SUBJECT, TestSigstore

DIGEST = "sha256:" + "ab" * 32
OTHER_ISSUER = "https://accounts.other.example"


@pytest.fixture(scope="module")
def sigstore() -> TestSigstore:
    return TestSigstore()


@pytest.fixture(scope="module")
def elsewhere(sigstore: TestSigstore) -> TestSigstore:
    return TestSigstore(name="elsewhere", now=sigstore.now)


@pytest.fixture(scope="module")
def roots(sigstore: TestSigstore) -> TrustRoots:
    return TrustRoots([trust_from_json(sigstore.trusted_root_json(), "t")])


AUTHORITY = KeylessAuthority("ci", DEFAULT_ISSUER, subject=DEFAULT_SUBJECT, trust_root="t")


def test_cosign_layer_from_another_identity_is_refused_before_chain_and_log(
    sigstore: TestSigstore, elsewhere: TestSigstore, roots: TrustRoots
) -> None:
    # untrusted CA, a SET from an unknown log: the identity is still the reason given
    other = as_cosign_layer(
        sign_image(elsewhere.issue(issuer=OTHER_ISSUER), DIGEST, sigstore=elsewhere)
    )
    with pytest.raises(VerificationError, match="does not match expected issuer") as caught:
        verify_cosign_signature(other, DIGEST, AUTHORITY, roots, sigstore.now)
    assert OTHER_ISSUER in str(caught.value)
    # the right identity from the same untrusted instance: the later checks still refuse it
    same = as_cosign_layer(sign_image(elsewhere.issue(), DIGEST, sigstore=elsewhere))
    with pytest.raises(VerificationError, match="Rekor SET rejected"):
        verify_cosign_signature(same, DIGEST, AUTHORITY, roots, sigstore.now)
    # and from the trusted instance it verifies
    good = as_cosign_layer(sign_image(sigstore.issue(), DIGEST, sigstore=sigstore))
    fact = verify_cosign_signature(good, DIGEST, AUTHORITY, roots, sigstore.now)
    assert fact.signer.subject == DEFAULT_SUBJECT


@pytest.mark.parametrize("version", ["0.1", "0.3"])  # our engine, sigstore-python's
def test_bundle_from_another_identity_is_refused_before_chain_and_log(
    sigstore: TestSigstore, elsewhere: TestSigstore, roots: TrustRoots, version: str
) -> None:
    def reasons(instance: TestSigstore, issuer: str) -> tuple[int, list[str]]:
        raw = dsse_bundle(
            instance,
            instance.issue(issuer=issuer),
            signature_statement(DIGEST),
            version=version,  # type: ignore[arg-type]
        )
        outcome = verify_evidence(
            EvidenceSet(DIGEST, bundles=(BundleEvidence(raw, "x", "bundle"),)),
            [AUTHORITY],
            roots,
            sigstore.now,
        )
        return len(outcome.signatures), [f.reason for f in outcome.failures]

    count, why = reasons(elsewhere, OTHER_ISSUER)
    assert count == 0
    assert len(why) == 1 and "does not match expected issuer" in why[0], why
    count, why = reasons(elsewhere, DEFAULT_ISSUER)
    assert count == 0
    assert len(why) == 1 and "does not match expected issuer" not in why[0], why
    assert reasons(sigstore, DEFAULT_ISSUER) == (1, [])

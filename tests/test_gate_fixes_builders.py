"""Trusted builders sharing one id stay separate signers (gate review C1).

Two ``trustedBuilders`` entries for the same builder id (key rotation, a stronger key for a
higher level, a staging and a production trust root) used to get the same inline signer name,
so only the first entry's key was used for verification and a statement it verified counted
for every entry with that id: provenance from the weak key got the strong entry's level.
Real policies are loaded from YAML, real keys and a private Sigstore sign real attestations.
"""

from __future__ import annotations

from datetime import UTC, datetime

import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from controller.evaluator import policy_authorities
from controller.evidence.model import EvidenceSet
from controller.policy.loader import load_policy_documents
from controller.policy.model import ImagePolicy, PolicySet
from controller.provenance.level import assess_provenance
from controller.verify.evidence import verify_evidence
from controller.verify.trustroot import TrustRoots, trust_from_json
from tests.support.cosign_sign import SignedLayer, as_cosign_layer, attest, public_pem
from tests.support.provenance_builders import slsa_v1
from tests.support.sigstore_pki import TestSigstore

DIGEST = "sha256:" + "ef" * 32
BUILDER = "https://builder.example/ci"
ISSUER = "https://oidc.builder.example"


def _policy_doc(builders: list[dict[str, object]]) -> dict[str, object]:
    return {
        "apiVersion": "reprogate.dev/v1alpha1",
        "kind": "ImagePolicy",
        "metadata": {"name": "p"},
        "spec": {
            "signatures": {"threshold": 0},
            "provenance": {"minLevel": 3, "trustedBuilders": builders},
        },
    }


def _trust_root_doc(name: str, sigstore: TestSigstore) -> dict[str, object]:
    return {
        "apiVersion": "reprogate.dev/v1alpha1",
        "kind": "TrustRoot",
        "metadata": {"name": name},
        "spec": {"trustedRootJSON": sigstore.trusted_root_json().decode()},
    }


def _load(*docs: dict[str, object]) -> tuple[ImagePolicy, PolicySet]:
    policy_set = load_policy_documents(yaml.safe_dump_all(docs))
    (policy,) = policy_set.policies
    return policy, policy_set


def _level(policy: ImagePolicy, layer: SignedLayer, roots: TrustRoots) -> tuple[int, bool]:
    assert policy.provenance is not None
    evidence = EvidenceSet(DIGEST, attestations=(as_cosign_layer(layer, source="att"),))
    outcome = verify_evidence(evidence, policy_authorities(policy), roots, datetime.now(UTC))
    assessment = assess_provenance(outcome.statements, DIGEST, policy.provenance)
    return assessment.level, assessment.passed


def test_inline_builder_signers_are_named_per_entry() -> None:
    weak, strong = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    policy, _ = _load(
        _policy_doc(
            [
                {"id": BUILDER, "level": 1, "signer": {"key": {"pem": public_pem(weak).decode()}}},
                {
                    "id": BUILDER,
                    "level": 3,
                    "signer": {"key": {"pem": public_pem(strong).decode()}},
                },
            ]
        )
    )
    assert policy.provenance is not None
    names = [b.signer.name for b in policy.provenance.trusted_builders]
    assert names == [f"builder[0]:{BUILDER}", f"builder[1]:{BUILDER}"]
    # Both keys reach verification, not only the first entry's.
    assert [a.name for a in policy_authorities(policy)] == names


def test_weak_key_gets_the_weak_level_and_strong_key_the_strong_one() -> None:
    """The reviewer's exploit: K1 trusted for level 1, K2 for level 3, same builder id."""
    weak, strong = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    policy, _ = _load(
        _policy_doc(
            [
                {
                    "id": BUILDER,
                    "level": 1,
                    "signer": {
                        "key": {"pem": public_pem(weak).decode()},
                        "transparencyLog": "ignore",
                    },
                },
                {
                    "id": BUILDER,
                    "level": 3,
                    "signer": {
                        "key": {"pem": public_pem(strong).decode()},
                        "transparencyLog": "ignore",
                    },
                },
            ]
        )
    )
    statement = slsa_v1(BUILDER, [DIGEST], name="img")
    assert _level(policy, attest(weak, statement), TrustRoots()) == (1, False)
    assert _level(policy, attest(strong, statement), TrustRoots()) == (3, True)


def test_keyless_entries_differing_only_in_trust_root_stay_apart() -> None:
    """A staging root trusted for level 1 cannot lend its statements the production level."""
    staging, production = TestSigstore(name="staging"), TestSigstore(name="production-like")
    keyless = {"issuer": ISSUER}
    policy, policy_set = _load(
        _policy_doc(
            [
                {"id": BUILDER, "level": 1, "signer": {"keyless": {**keyless, "trustRoot": "stg"}}},
                {"id": BUILDER, "level": 3, "signer": {"keyless": {**keyless, "trustRoot": "prd"}}},
            ]
        ),
        _trust_root_doc("stg", staging),
        _trust_root_doc("prd", production),
    )
    roots = TrustRoots(trust_from_json(r.trusted_root_json, r.name) for r in policy_set.trust_roots)
    statement = slsa_v1(BUILDER, [DIGEST], name="img")

    def signed_by(instance: TestSigstore) -> SignedLayer:
        leaf = instance.issue(subject=BUILDER, issuer=ISSUER)
        return attest(leaf, statement, sigstore=instance)

    assert _level(policy, signed_by(staging), roots) == (1, False)
    assert _level(policy, signed_by(production), roots) == (3, True)


def test_keyless_builder_without_subject_still_requires_the_builder_id_as_subject() -> None:
    sigstore = TestSigstore()
    policy, policy_set = _load(
        _policy_doc(
            [
                {
                    "id": BUILDER,
                    "level": 3,
                    "signer": {"keyless": {"issuer": ISSUER, "trustRoot": "t"}},
                }
            ]
        ),
        _trust_root_doc("t", sigstore),
    )
    roots = TrustRoots(trust_from_json(r.trusted_root_json, r.name) for r in policy_set.trust_roots)
    statement = slsa_v1(BUILDER, [DIGEST], name="img")
    impostor = sigstore.issue(subject="https://github.com/evil/x", issuer=ISSUER)
    level, passed = _level(policy, attest(impostor, statement, sigstore=sigstore), roots)
    assert (level, passed) == (1, False)  # provenance exists, but not from the builder

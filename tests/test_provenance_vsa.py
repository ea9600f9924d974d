"""VSA v1: the real BCID VSA from slsa-verifier's test data, and acceptance rules on VSAs built
here (the verify package constructs VerifiedStatement in production; these tests construct it
directly, after verifying the real envelope's signature with the verify package's DSSE code)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from controller.provenance.vsa import VSA_V1, VsaError, assess_vsa, parse_vsa
from controller.verify.dsse import parse_envelope, verify_envelope
from controller.verify.errors import VerificationError
from controller.verify.facts import SignerIdentity, Subject, VerifiedStatement
from controller.verify.keys import load_public_key

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
VSA_DIR = VECTORS / "slsa-verifier" / "vsa"
BCID = "https://bcid.corp.google.com/verifier/bcid_package_enforcer/v0.1"
IMAGE = "registry.example.com/acme/app:1.0"
DIGEST = "sha256:" + "5a" * 32


def real_vsa_files() -> tuple[bytes, bytes]:
    envelope = VSA_DIR / "gke-gce-pre.bcid-vsa.jsonl"
    if not envelope.is_file():
        pytest.skip(f"slsa-verifier VSA vector not present at {VSA_DIR}")
    return envelope.read_bytes(), (VSA_DIR / "vsa_signing_public_key.pem").read_bytes()


def statement(payload: bytes, signer: SignerIdentity, source: str = "test") -> VerifiedStatement:
    doc = json.loads(payload)
    return VerifiedStatement(
        signer=signer,
        statement_type=doc["_type"],
        predicate_type=doc["predicateType"],
        subjects=tuple(Subject(s["name"], s["digest"]) for s in doc["subject"]),
        predicate=doc["predicate"],
        payload=payload,
        integrated_time=None,
        source=source,
    )


VERIFIER = SignerIdentity(authority="vsa-verifier", kind="key", key_id="11" * 32)


def test_real_vsa_signature_verifies_with_its_key_only() -> None:
    raw, pem = real_vsa_files()
    envelope = parse_envelope(raw.strip())
    payload = verify_envelope(envelope, load_public_key(pem))
    assert json.loads(payload)["predicateType"] == VSA_V1

    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    other_pem = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(VerificationError):
        verify_envelope(envelope, load_public_key(other_pem))


def test_real_vsa_facts() -> None:
    raw, _ = real_vsa_files()
    payload = base64.b64decode(json.loads(raw)["payload"])
    vsa = parse_vsa(statement(payload, VERIFIER))
    assert vsa.verifier_id == BCID
    assert vsa.verification_result == "PASSED"
    assert vsa.verified_levels == ("BCID_L1", "SLSA_BUILD_LEVEL_2")
    assert vsa.build_level == 2
    assert vsa.resource_uri == (
        "gce_image://gke-node-images:gke-12615-gke1418000-cos-101-17162-463-29-c-cgpv1-pre"
    )
    assert vsa.subjects[0].digest == {"gce_image_id": "8970095005306000053"}
    assert vsa.time_verified.year == 2024


def test_real_vsa_names_no_container_image() -> None:
    raw, _ = real_vsa_files()
    payload = base64.b64decode(json.loads(raw)["payload"])
    facts = assess_vsa([statement(payload, VERIFIER)], IMAGE, DIGEST, {"vsa-verifier"})
    assert facts.accepted == ()
    assert len(facts.checks) == 1 and not facts.checks[0].passed
    assert "is not an image reference" in facts.checks[0].reason


def make_vsa(
    resource_uri: str,
    levels: list[str],
    *,
    result: str = "PASSED",
    subject_digest: str = DIGEST,
    signer: SignerIdentity = VERIFIER,
    predicate: dict[str, Any] | None = None,
) -> VerifiedStatement:
    doc = {
        "_type": "https://in-toto.io/Statement/v1",
        "predicateType": VSA_V1,
        "subject": [{"name": "app", "digest": {"sha256": subject_digest.split(":")[1]}}],
        "predicate": predicate
        or {
            "verifier": {"id": "https://verifier.example/v1"},
            "timeVerified": "2025-01-01T00:00:00Z",
            "resourceUri": resource_uri,
            "policy": {"uri": "https://policies.example/p"},
            "verificationResult": result,
            "verifiedLevels": levels,
            "slsaVersion": "1.2",
        },
    }
    return statement(json.dumps(doc).encode(), signer, source="vsa layer")


def test_vsa_with_digest_ref_is_accepted_and_reproduced() -> None:
    vsa = make_vsa(
        f"oci://registry.example.com/acme/app@{DIGEST}",
        ["SLSA_BUILD_LEVEL_3", "SLSA_BUILD_REPRODUCED", "ACME_REVIEWED"],
    )
    facts = assess_vsa([vsa], IMAGE, DIGEST, ["vsa-verifier"])
    assert len(facts.accepted) == 1
    assert facts.reproduced and facts.reproduced_by == ("https://verifier.example/v1",)
    assert facts.build_level == 3
    assert facts.custom_properties == ("ACME_REVIEWED",)
    assert facts.checks[0].passed


def test_vsa_with_tag_ref_is_bound_through_subject_digest() -> None:
    ok = make_vsa("registry.example.com/acme/app:1.0", ["SLSA_BUILD_LEVEL_2"])
    assert len(assess_vsa([ok], IMAGE, DIGEST, ["vsa-verifier"]).accepted) == 1
    other_subject = make_vsa(
        "registry.example.com/acme/app:1.0",
        ["SLSA_BUILD_LEVEL_2"],
        subject_digest="sha256:" + "00" * 32,
    )
    facts = assess_vsa([other_subject], IMAGE, DIGEST, ["vsa-verifier"])
    assert facts.accepted == ()
    assert "no subject names" in facts.checks[0].reason


@pytest.mark.parametrize(
    ("vsa_kwargs", "fragment"),
    [
        (
            {"resource_uri": f"registry.example.com/other/app@{DIGEST}"},
            "does not name image registry.example.com/acme/app:1.0",
        ),
        (
            {"resource_uri": "registry.example.com/acme/app@sha256:" + "00" * 32},
            "names digest sha256:0000",
        ),
        (
            {"resource_uri": f"registry.example.com/acme/app@{DIGEST}", "result": "FAILED"},
            "says FAILED",
        ),
        (
            {
                "resource_uri": f"registry.example.com/acme/app@{DIGEST}",
                "signer": SignerIdentity(authority="random", kind="key"),
            },
            "signed by random, which is not a trusted VSA verifier",
        ),
    ],
)
def test_vsa_refusals(vsa_kwargs: dict[str, Any], fragment: str) -> None:
    vsa = make_vsa(levels=["SLSA_BUILD_REPRODUCED"], **vsa_kwargs)
    facts = assess_vsa([vsa], IMAGE, DIGEST, ["vsa-verifier"])
    assert facts.accepted == ()
    assert not facts.reproduced
    assert not facts.checks[0].passed
    assert fragment in facts.checks[0].reason


def test_malformed_vsa_is_reported() -> None:
    vsa = make_vsa("x", [], predicate={"verifier": {"id": "v"}, "timeVerified": "nope"})
    facts = assess_vsa([vsa], IMAGE, DIGEST, ["vsa-verifier"])
    assert facts.accepted == ()
    assert "timeVerified 'nope' is not RFC 3339" in facts.checks[0].reason
    with pytest.raises(VsaError):
        parse_vsa(vsa)

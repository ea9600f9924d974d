"""slsa-verifier's Sigstore bundles of SLSA provenance (real GitHub Actions signatures).

v0.1 bundles carry only a Rekor SET (sigstore-python refuses them: our own path verifies them);
the v0.3 bundle carries an inclusion proof. Identities below were read from the certificates.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from controller.verify.authority import KeylessAuthority
from controller.verify.bundle import verify_bundle
from controller.verify.errors import VerificationError
from controller.verify.trustroot import production_trust

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
BUNDLES = VECTORS / "slsa-verifier" / "bundles"
GITHUB = "https://token.actions.githubusercontent.com"
GENERATOR = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
DELEGATOR = (
    "https://github.com/laurentsimon/slsa-delegator/.github/workflows/"
    "delegator_generic_slsa3.yml@refs/heads/main"
)

pytestmark = pytest.mark.vectors


def _raw(name: str) -> bytes:
    if not BUNDLES.is_dir():
        pytest.skip(f"slsa-verifier vectors not found at {BUNDLES}")
    return (BUNDLES / name).read_bytes()


def _subject_digest(raw: bytes) -> bytes:
    statement = json.loads(base64.b64decode(json.loads(raw)["dsseEnvelope"]["payload"]))
    return bytes.fromhex(statement["subject"][0]["digest"]["sha256"])


@pytest.mark.parametrize(
    ("name", "subject"),
    [
        ("valid.intoto.sigstore", GENERATOR + "builder_docker-based_slsa3.yml@refs/heads/main"),
        ("valid-v0.3.intoto.sigstore", GENERATOR + "generator_generic_slsa3.yml@refs/heads/main"),
        ("attestation.intoto.sigstore", DELEGATOR),
    ],
)
def test_valid_bundles_verify(name: str, subject: str) -> None:
    raw = _raw(name)
    authority = KeylessAuthority(name="slsa", issuer=GITHUB, subject=subject)
    result = verify_bundle(
        raw, trust=production_trust(), authority=authority, artifact_sha256=_subject_digest(raw)
    )
    assert result.signer.subject == subject
    assert result.signer.issuer == GITHUB
    assert result.signer.authority == "slsa"
    assert result.payload_type == "application/vnd.in-toto+json"
    assert result.payload is not None and b"predicateType" in result.payload
    assert result.integrated_time is not None


def test_wrong_identity_refused() -> None:
    raw = _raw("valid.intoto.sigstore")
    authority = KeylessAuthority(name="slsa", issuer=GITHUB, subject=DELEGATOR)
    with pytest.raises(VerificationError, match="does not match expected subject"):
        verify_bundle(raw, trust=production_trust(), authority=authority, artifact_sha256=None)


def test_artifact_not_a_subject_refused() -> None:
    raw = _raw("valid-v0.3.intoto.sigstore")
    authority = KeylessAuthority(name="slsa", issuer=GITHUB, subject_regexp=GENERATOR + ".*")
    with pytest.raises(VerificationError, match="no in-toto subject"):
        verify_bundle(
            raw,
            trust=production_trust(),
            authority=authority,
            artifact_sha256=hashlib.sha256(b"other").digest(),
        )


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        # the log entry belongs to another certificate and payload, logged a day earlier
        ("mismatch-tlog.intoto.sigstore", "certificate not valid until"),
        ("invalid-set.intoto.sigstore", "SET does not verify"),
        ("invalid-dsse-sig.intoto.sigstore", "SET does not verify"),
    ],
)
def test_invalid_bundles_refused(name: str, reason: str) -> None:
    authority = KeylessAuthority(name="slsa", issuer=GITHUB, subject=DELEGATOR)
    with pytest.raises(VerificationError, match=reason):
        verify_bundle(
            _raw(name), trust=production_trust(), authority=authority, artifact_sha256=None
        )

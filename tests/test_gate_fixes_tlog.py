"""Transparency-log binding, trust-root timestamps and one clock (gate review M2, M3, M4).

- M2: for keyless evidence the Rekor entry must record the signing certificate; an entry
  holding only the certificate's bare public key keeps the identity out of the log (an
  identity owner's monitor would never see a signature made with a stolen token). Key
  authorities may still be logged with a bare key.
- M3: a trusted_root.json ``validFor`` time without timezone is refused at load, by name.
- M4: the bundle path measures "in the future" from the same ``now`` as the cosign path,
  with the same ``CLOCK_SKEW``, for log integrated times and RFC 3161 times alike.

Everything is signed for real by a private Sigstore instance (tests/support/sigstore_pki).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from controller.evidence.model import BundleEvidence, EvidenceSet
from controller.verify import tlog
from controller.verify.authority import KeyAuthority, KeylessAuthority
from controller.verify.bundle import verify_bundle
from controller.verify.clock import CLOCK_SKEW
from controller.verify.errors import EvidenceFormatError, VerificationError
from controller.verify.evidence import verify_evidence
from controller.verify.trustroot import TrustRoots, trust_from_json
from tests.support.cosign_sign import (
    as_cosign_layer,
    attest,
    in_toto_statement,
    public_pem,
    sign_image,
)
from tests.support.sigstore_bundle import _tlog_entry, dsse_bundle, signature_statement
from tests.support.sigstore_pki import (
    DEFAULT_ISSUER,
    FulcioLeaf,
    TestSigstore,
    dsse_body,
    hashedrekord_body,
)

DIGEST = "sha256:" + "cd" * 32


@pytest.fixture(scope="module")
def sigstore() -> TestSigstore:
    return TestSigstore()


@pytest.fixture(scope="module")
def roots(sigstore: TestSigstore) -> TrustRoots:
    return TrustRoots([trust_from_json(sigstore.trusted_root_json(), "t")])


def _keyless(tlog_mode: str = "required") -> KeylessAuthority:
    return KeylessAuthority(
        "kl", DEFAULT_ISSUER, subject_regexp=".*", trust_root="t",
        transparency_log=tlog_mode,  # type: ignore[arg-type]
    )  # fmt: skip


def _bare_key_pem(leaf: FulcioLeaf) -> bytes:
    return leaf.certificate.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# --- M2: keyless entries must record the certificate ---------------------------------------


def test_keyless_signature_logged_with_bare_key_is_refused(
    sigstore: TestSigstore, roots: TrustRoots
) -> None:
    leaf = sigstore.issue()
    signed = sign_image(leaf, DIGEST, sigstore=sigstore)
    signature = base64.b64decode(signed.annotations["dev.cosignproject.cosign/signature"])
    body = hashedrekord_body(
        signature, _bare_key_pem(leaf), hashlib.sha256(signed.payload).hexdigest()
    )
    key_only = sign_image(leaf, DIGEST, sigstore=sigstore, set_body=body, signature=signature)
    outcome = verify_evidence(
        EvidenceSet(DIGEST, signatures=(as_cosign_layer(key_only),)), [_keyless()], roots,
        sigstore.now,
    )  # fmt: skip
    assert outcome.signatures == ()
    (failure,) = outcome.failures
    assert "records a bare public key, not the signing certificate" in failure.reason
    # control: the same signature logged with its certificate verifies
    outcome = verify_evidence(
        EvidenceSet(DIGEST, signatures=(as_cosign_layer(signed),)), [_keyless()], roots,
        sigstore.now,
    )  # fmt: skip
    assert len(outcome.signatures) == 1


def test_keyless_attestation_logged_with_bare_key_is_refused(
    sigstore: TestSigstore, roots: TrustRoots
) -> None:
    leaf = sigstore.issue()
    statement = in_toto_statement([DIGEST])
    signed = attest(leaf, statement, sigstore=sigstore)
    envelope = json.loads(signed.payload)
    sig = base64.b64decode(envelope["signatures"][0]["sig"])
    body = dsse_body(signed.payload, statement, [sig], _bare_key_pem(leaf))
    signed.annotations["dev.sigstore.cosign/bundle"] = sigstore.rekor_set(body).decode()
    outcome = verify_evidence(
        EvidenceSet(DIGEST, attestations=(as_cosign_layer(signed),)), [_keyless()], roots,
        sigstore.now,
    )  # fmt: skip
    assert outcome.statements == ()
    assert "records a bare public key" in outcome.failures[0].reason


def test_keyless_bundle_logged_with_bare_key_is_refused(
    sigstore: TestSigstore, roots: TrustRoots
) -> None:
    """Our own bundle engine (v0.1, SET only) applies the same rule."""
    leaf = sigstore.issue()
    statement = signature_statement(DIGEST)
    doc: dict[str, Any] = json.loads(dsse_bundle(sigstore, leaf, statement, version="0.1"))
    envelope = doc["dsseEnvelope"]
    sig = base64.b64decode(envelope["signatures"][0]["sig"])
    envelope_json = json.dumps(envelope, separators=(",", ":")).encode()
    body = dsse_body(envelope_json, statement, [sig], _bare_key_pem(leaf))
    doc["verificationMaterial"]["tlogEntries"] = [_tlog_entry(sigstore, body, "0.1", None, None)]
    bundle = BundleEvidence(json.dumps(doc).encode(), "x", "bundle")
    outcome = verify_evidence(
        EvidenceSet(DIGEST, bundles=(bundle,)), [_keyless()], roots, sigstore.now
    )
    assert outcome.signatures == ()
    assert "records a bare public key" in outcome.failures[0].reason


def test_key_authority_may_still_be_logged_as_a_bare_key(
    sigstore: TestSigstore, roots: TrustRoots
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    layer = as_cosign_layer(sign_image(key, DIGEST, sigstore=sigstore))
    authority = KeyAuthority("k", public_pem(key), "required", "t")
    outcome = verify_evidence(
        EvidenceSet(DIGEST, signatures=(layer,)), [authority], roots, sigstore.now
    )
    assert len(outcome.signatures) == 1, outcome.failures


def test_check_hashedrekord_require_certificate(sigstore: TestSigstore) -> None:
    leaf = sigstore.issue()
    digest = hashlib.sha256(b"payload").digest()

    def entry(signer_pem: bytes) -> tlog.RekorEntry:
        raw = hashedrekord_body(b"sig", signer_pem, digest.hex())
        kind, version, body = tlog.parse_entry_body(raw)
        return tlog.RekorEntry(kind, version, body, sigstore.now, 1, "00", raw)

    kwargs: dict[str, Any] = {"signature": b"sig", "signer_pem": leaf.cert_pem}
    tlog.check_hashedrekord(
        entry(leaf.cert_pem), sha256_digest=digest, require_certificate=True, **kwargs
    )
    tlog.check_hashedrekord(entry(_bare_key_pem(leaf)), sha256_digest=digest, **kwargs)
    with pytest.raises(VerificationError, match="bare public key"):
        tlog.check_hashedrekord(
            entry(_bare_key_pem(leaf)), sha256_digest=digest, require_certificate=True, **kwargs
        )
    other = sigstore.issue()
    with pytest.raises(VerificationError, match="different signing key or certificate"):
        tlog.check_hashedrekord(
            entry(other.cert_pem), sha256_digest=digest, require_certificate=True, **kwargs
        )


# --- M3: trust-root times need a timezone --------------------------------------------------


def test_trust_root_time_without_timezone_is_refused_by_name(sigstore: TestSigstore) -> None:
    raw = sigstore.trusted_root_json().decode()
    naive = re.sub(r'("start": ?")([0-9T:\-\.]+)Z"', r"\1\2" + '"', raw, count=1)
    assert naive != raw
    with pytest.raises(EvidenceFormatError, match=r"validFor\.start .* has no timezone"):
        trust_from_json(naive.encode(), "t")


def test_trust_root_time_with_offset_is_accepted(sigstore: TestSigstore) -> None:
    raw = sigstore.trusted_root_json().decode()
    offset = re.sub(r'("start": ?")([0-9T:\-\.]+)Z"', r"\1\2" + '+02:00"', raw)
    assert offset != raw
    trust = trust_from_json(offset.encode(), "t")
    assert trust.fulcio_authorities()[0].window.start.utcoffset() == timedelta(hours=2)


# --- M4: one clock, one tolerance ----------------------------------------------------------


def _bundle_outcome(
    sigstore: TestSigstore, roots: TrustRoots, raw: bytes, now: datetime, tlog_mode: str
) -> tuple[int, list[str]]:
    outcome = verify_evidence(
        EvidenceSet(DIGEST, bundles=(BundleEvidence(raw, "x", "bundle"),)),
        [_keyless(tlog_mode)], roots, now,
    )  # fmt: skip
    return len(outcome.signatures), [f.reason for f in outcome.failures]


@pytest.mark.parametrize("version", ["0.1", "0.3"])  # our engine, sigstore-python's
def test_bundle_integrated_time_is_judged_by_the_callers_clock(
    sigstore: TestSigstore, roots: TrustRoots, version: str
) -> None:
    leaf = sigstore.issue()
    logged = sigstore.now - timedelta(minutes=4)
    raw = dsse_bundle(
        sigstore, leaf, signature_statement(DIGEST), version=version,  # type: ignore[arg-type]
        integrated_time=logged,
    )  # fmt: skip
    # Our clock, within the skew after the log's time: accepted.
    within = logged - CLOCK_SKEW + timedelta(seconds=30)
    assert _bundle_outcome(sigstore, roots, raw, within, "required")[0] == 1
    # Our clock well before the log's time: the log time is in our future.
    count, reasons = _bundle_outcome(
        sigstore, roots, raw, logged - CLOCK_SKEW - timedelta(minutes=1), "required"
    )
    assert count == 0
    assert any("integrated time" in r and "is in the future" in r for r in reasons), reasons


def test_bundle_rfc3161_time_in_the_future_is_refused_by_our_engine(
    sigstore: TestSigstore, roots: TrustRoots
) -> None:
    leaf = sigstore.issue()
    stamped = sigstore.now - timedelta(minutes=3)
    raw = dsse_bundle(sigstore, leaf, signature_statement(DIGEST), tlog=False, timestamp_at=stamped)
    assert _bundle_outcome(sigstore, roots, raw, stamped, "optional")[0] == 1
    count, reasons = _bundle_outcome(
        sigstore, roots, raw, stamped - CLOCK_SKEW - timedelta(minutes=1), "optional"
    )
    assert count == 0
    assert any("RFC 3161 timestamp time" in r and "is in the future" in r for r in reasons)


def test_bundle_rfc3161_time_in_the_future_is_refused_on_the_sigstore_python_path(
    sigstore: TestSigstore, roots: TrustRoots
) -> None:
    leaf = sigstore.issue()
    now = sigstore.now - timedelta(minutes=4)
    raw = dsse_bundle(
        sigstore, leaf, signature_statement(DIGEST), integrated_time=now,
        timestamp_at=now + CLOCK_SKEW + timedelta(minutes=3),
    )  # fmt: skip
    count, reasons = _bundle_outcome(sigstore, roots, raw, now, "required")
    assert count == 0
    assert any("RFC 3161 timestamp time" in r and "is in the future" in r for r in reasons)
    # control: the same shape with the TSA time inside the tolerance verifies
    raw = dsse_bundle(
        sigstore, leaf, signature_statement(DIGEST), integrated_time=now,
        timestamp_at=now + CLOCK_SKEW - timedelta(minutes=1),
    )  # fmt: skip
    assert _bundle_outcome(sigstore, roots, raw, now, "required")[0] == 1


def test_verify_bundle_defaults_to_the_wall_clock(
    sigstore: TestSigstore, roots: TrustRoots
) -> None:
    leaf = sigstore.issue()
    raw = dsse_bundle(sigstore, leaf, signature_statement(DIGEST), version="0.1")
    result = verify_bundle(
        raw, trust=roots.get("t"), authority=_keyless(),
        artifact_sha256=bytes.fromhex(DIGEST.split(":")[1]),
    )  # fmt: skip
    assert result.integrated_time is not None

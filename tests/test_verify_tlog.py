"""Rekor SET verification (cosign's bundle annotation) and entry-body consistency, with a log
key generated here: a real ECDSA log signs the canonical payload."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from controller.verify.errors import EvidenceFormatError, VerificationError
from controller.verify.tlog import check_hashedrekord, check_intoto_or_dsse, verify_cosign_set
from controller.verify.trustroot import TrustMaterial, trust_from_json

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def _trust(
    log_key: ec.EllipticCurvePrivateKey,
    *,
    start: str = "2020-01-01T00:00:00Z",
    end: str | None = None,
) -> TrustMaterial:
    valid_for = {"start": start} | ({"end": end} if end else {})
    root = {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [
            {
                "baseUrl": "https://rekor.test",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": base64.b64encode(_spki(log_key)).decode(),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": valid_for,
                },
                "logId": {
                    "keyId": base64.b64encode(hashlib.sha256(_spki(log_key)).digest()).decode()
                },
            }
        ],
        "certificateAuthorities": [],
        "ctlogs": [],
    }
    return trust_from_json(json.dumps(root).encode(), "test")


class Signed:
    """A hashedrekord entry for an artifact signed by a fresh key, logged by ``log_key``."""

    def __init__(
        self,
        log_key: ec.EllipticCurvePrivateKey,
        *,
        integrated: datetime = NOW,
        log_index: int = 42,
        sign_with: ec.EllipticCurvePrivateKey | None = None,
    ) -> None:
        self.signer = ec.generate_private_key(ec.SECP256R1())
        self.digest = hashlib.sha256(b"artifact").digest()
        self.signature = self.signer.sign(b"artifact", ec.ECDSA(hashes.SHA256()))
        body = {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": self.digest.hex()}},
                "signature": {
                    "content": base64.b64encode(self.signature).decode(),
                    "publicKey": {"content": base64.b64encode(_pem(self.signer)).decode()},
                },
            },
        }
        self.payload = {
            "body": base64.b64encode(json.dumps(body).encode()).decode(),
            "integratedTime": int(integrated.timestamp()),
            "logID": hashlib.sha256(_spki(log_key)).hexdigest(),
            "logIndex": log_index,
        }
        self.sign(sign_with or log_key)

    def sign(self, key: ec.EllipticCurvePrivateKey) -> None:
        canonical = json.dumps(self.payload, sort_keys=True, separators=(",", ":")).encode()
        self.set = key.sign(canonical, ec.ECDSA(hashes.SHA256()))

    def annotation(self) -> bytes:
        return json.dumps(
            {"SignedEntryTimestamp": base64.b64encode(self.set).decode(), "Payload": self.payload}
        ).encode()


@pytest.fixture()
def log_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_valid_set_gives_entry(log_key: ec.EllipticCurvePrivateKey) -> None:
    signed = Signed(log_key)
    entry = verify_cosign_set(signed.annotation(), _trust(log_key), now=NOW + timedelta(days=1))
    assert (entry.kind, entry.api_version, entry.log_index) == ("hashedrekord", "0.0.1", 42)
    assert entry.integrated_time == NOW
    check_hashedrekord(
        entry,
        signature=signed.signature,
        signer_pem=_pem(signed.signer),
        sha256_digest=signed.digest,
    )


def test_set_signed_by_other_key_refused(log_key: ec.EllipticCurvePrivateKey) -> None:
    signed = Signed(log_key, sign_with=ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(VerificationError, match="SET does not verify"):
        verify_cosign_set(signed.annotation(), _trust(log_key), now=NOW)


def test_changed_body_refused(log_key: ec.EllipticCurvePrivateKey) -> None:
    signed = Signed(log_key)
    signed.payload["body"] = base64.b64encode(b'{"kind":"hashedrekord"}').decode()
    with pytest.raises(VerificationError, match="SET does not verify"):
        verify_cosign_set(signed.annotation(), _trust(log_key), now=NOW)


def test_future_integrated_time_refused(log_key: ec.EllipticCurvePrivateKey) -> None:
    signed = Signed(log_key, integrated=NOW + timedelta(hours=1))
    with pytest.raises(VerificationError, match="in the future"):
        verify_cosign_set(signed.annotation(), _trust(log_key), now=NOW)


def test_unknown_log_id_named(log_key: ec.EllipticCurvePrivateKey) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    signed = Signed(other)
    with pytest.raises(VerificationError, match=hashlib.sha256(_spki(other)).hexdigest()):
        verify_cosign_set(signed.annotation(), _trust(log_key), now=NOW)


def test_negative_log_index_refused(log_key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(VerificationError, match="negative"):
        verify_cosign_set(Signed(log_key, log_index=-1).annotation(), _trust(log_key), now=NOW)


def test_log_key_outside_validity_refused(log_key: ec.EllipticCurvePrivateKey) -> None:
    trust = _trust(log_key, start="2020-01-01T00:00:00Z", end="2024-01-01T00:00:00Z")
    with pytest.raises(VerificationError, match="not valid at the integrated time"):
        verify_cosign_set(Signed(log_key).annotation(), trust, now=NOW)


def test_malformed_annotation_refused(log_key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(EvidenceFormatError):
        verify_cosign_set(b"{not json", _trust(log_key))
    signed = Signed(log_key)
    signed.payload["integratedTime"] = "yesterday"
    with pytest.raises(EvidenceFormatError, match="integratedTime"):
        verify_cosign_set(signed.annotation(), _trust(log_key))


def test_hashedrekord_mismatches_refused(log_key: ec.EllipticCurvePrivateKey) -> None:
    signed = Signed(log_key)
    entry = verify_cosign_set(signed.annotation(), _trust(log_key), now=NOW)
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(VerificationError, match="different signature"):
        check_hashedrekord(
            entry,
            signature=b"x" + signed.signature,
            signer_pem=_pem(signed.signer),
            sha256_digest=signed.digest,
        )
    with pytest.raises(VerificationError, match="different signing key"):
        check_hashedrekord(
            entry, signature=signed.signature, signer_pem=_pem(other), sha256_digest=signed.digest
        )
    with pytest.raises(VerificationError, match="data hash"):
        check_hashedrekord(
            entry,
            signature=signed.signature,
            signer_pem=_pem(signed.signer),
            sha256_digest=hashlib.sha256(b"other").digest(),
        )
    with pytest.raises(VerificationError, match="intoto or dsse"):
        check_intoto_or_dsse(
            entry,
            envelope_payload=b"{}",
            payload_type="x",
            signatures=[],
            signer_pem=_pem(signed.signer),
        )

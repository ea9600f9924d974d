"""One poisoned piece of evidence cannot veto a validly signed image (gate review H1).

Each test puts a valid signature beside one hostile item and checks that the valid
signature still counts and the hostile one fails with a clear reason. Root causes are fixed
where they were (deep JSON, Unicode digits, huge times, unknown key types, RFC 3161
rejections, malformed certificate extensions), so those reasons are precise
``VerificationError`` messages, not the catch-all; the catch-all itself is tested with a
verifier that raises something no check anticipated.
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from controller.evidence.model import BundleEvidence, CosignLayer, EvidenceSet
from controller.verify import evidence as evidence_module
from controller.verify import fulcio, tlog
from controller.verify.authority import KeyAuthority, KeylessAuthority
from controller.verify.cosign import verify_cosign_signature
from controller.verify.errors import EvidenceFormatError, VerificationError
from controller.verify.evidence import verify_evidence
from controller.verify.facts import VerificationOutcome
from controller.verify.jsontext import load_json
from controller.verify.timestamp import verify_rfc3161
from controller.verify.trustroot import TrustRoots, trust_from_json
from tests.support.cosign_sign import (
    as_cosign_layer,
    public_pem,
    sign_image,
    simple_signing_payload,
)
from tests.support.sigstore_pki import TestSigstore

DIGEST = "sha256:" + "ab" * 32
DEEP = b"[" * 100_000 + b"]" * 100_000
# TimeStampResp { status PKIStatusInfo { status rejection(2) } }: no token at all.
RFC3161_REJECTION = bytes.fromhex("30053003020102")
BUNDLE_V01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"


@pytest.fixture(scope="module")
def sigstore() -> TestSigstore:
    return TestSigstore()


@pytest.fixture(scope="module")
def roots(sigstore: TestSigstore) -> TrustRoots:
    return TrustRoots([trust_from_json(sigstore.trusted_root_json(), "t")])


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def good(key: ec.EllipticCurvePrivateKey) -> CosignLayer:
    return as_cosign_layer(sign_image(key, DIGEST), source="good")


def _key_authority(key: ec.EllipticCurvePrivateKey) -> KeyAuthority:
    return KeyAuthority("k", public_pem(key), "optional", "t")


def _keyless_authority() -> KeylessAuthority:
    return KeylessAuthority(
        "kl", "https://oidc.test.example", subject_regexp=".*", trust_root="t",
        transparency_log="optional",
    )  # fmt: skip


def _only_poison_failed(outcome: VerificationOutcome, source: str, expected: str) -> None:
    """The valid signature counted; the poisoned item failed with ``expected`` in its reason,
    from a precise check (not the catch-all)."""
    assert [s.source for s in outcome.signatures] == ["good"]
    reasons = [f.reason for f in outcome.failures if f.source == source]
    assert reasons, outcome.failures
    for reason in reasons:
        assert expected in reason
        assert not reason.startswith("could not verify")


def _self_signed(extension: x509.ExtensionType | None = None) -> tuple[x509.Certificate, bytes]:
    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(k.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(hours=1))
    )
    if extension is not None:
        builder = builder.add_extension(extension, critical=False)
    cert = builder.sign(k, hashes.SHA256())
    return cert, cert.public_bytes(serialization.Encoding.DER)


def _unknown_key_cert_pem() -> bytes:
    """A certificate whose SPKI algorithm is an OID no library knows (1.2.840.10045.2.9)."""
    _, der = _self_signed()
    raw = bytearray(der)
    at = raw.find(bytes.fromhex("06072a8648ce3d0201"))  # id-ecPublicKey
    raw[at + 2 : at + 9] = bytes.fromhex("2a8648ce3d0209")
    return (
        b"-----BEGIN CERTIFICATE-----\n"
        + base64.encodebytes(bytes(raw))
        + b"-----END CERTIFICATE-----\n"
    )


def _bad_basic_constraints_cert() -> tuple[x509.Certificate, bytes]:
    return _self_signed(x509.UnrecognizedExtension(ExtensionOID.BASIC_CONSTRAINTS, b"\x01"))


def _envelope(payload: bytes) -> bytes:
    return json.dumps(
        {
            "payloadType": "application/vnd.in-toto+json",
            "payload": base64.b64encode(payload).decode(),
            "signatures": [{"sig": "AA=="}],
        }
    ).encode()


def _bundle(material: dict[str, object]) -> bytes:
    return json.dumps(
        {
            "mediaType": BUNDLE_V01,
            "verificationMaterial": material,
            "messageSignature": {"signature": "AA=="},
        }
    ).encode()


def _entry(**overrides: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "logIndex": "1",
        "logId": {"keyId": "AA=="},
        "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
        "integratedTime": "1700000000",
        "inclusionPromise": {"signedEntryTimestamp": "AA=="},
        "canonicalizedBody": "e30=",
    }
    entry.update(overrides)
    return entry


# --- the catch-all -------------------------------------------------------------------------


def test_unexpected_exception_fails_only_that_piece(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    key: ec.EllipticCurvePrivateKey,
    good: CosignLayer,
    roots: TrustRoots,
) -> None:
    real = verify_cosign_signature

    def flaky(layer: CosignLayer, *args: object, **kwargs: object) -> object:
        if layer.source == "poison":
            raise ZeroDivisionError("nobody expected this")
        return real(layer, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(evidence_module, "verify_cosign_signature", flaky)
    poison = CosignLayer("signature", b"{}", "AA==", None, None, None, None, "poison")
    with caplog.at_level(logging.DEBUG, logger="controller.verify.evidence"):
        outcome = verify_evidence(
            EvidenceSet(DIGEST, signatures=(good, poison)), [_key_authority(key)], roots,
            datetime.now(UTC),
        )  # fmt: skip
    assert [s.source for s in outcome.signatures] == ["good"]
    (failure,) = [f for f in outcome.failures if f.source == "poison"]
    assert failure.reason == "could not verify: ZeroDivisionError: nobody expected this"
    assert failure.authority == "k"
    logged = [r for r in caplog.records if r.levelno == logging.DEBUG and r.exc_info]
    assert logged and "poison" in logged[0].getMessage()


def test_unexpected_exception_while_parsing_fails_for_every_authority(
    monkeypatch: pytest.MonkeyPatch, key: ec.EllipticCurvePrivateKey, good: CosignLayer
) -> None:
    def broken(raw: bytes) -> object:
        raise MemoryError("too big")

    monkeypatch.setattr(evidence_module, "parse_bundle", broken)
    other = KeyAuthority("k2", public_pem(ec.generate_private_key(ec.SECP256R1())), "ignore")
    outcome = verify_evidence(
        EvidenceSet(DIGEST, signatures=(good,), bundles=(BundleEvidence(b"{}", "x", "b"),)),
        [_key_authority(key), other], TrustRoots(), datetime.now(UTC),
    )  # fmt: skip
    assert [s.source for s in outcome.signatures] == ["good"]
    failed = sorted((f.authority, f.reason) for f in outcome.failures if f.source == "b")
    assert failed == [
        ("k", "could not verify: MemoryError: too big"),
        ("k2", "could not verify: MemoryError: too big"),
    ]


# --- root causes, each through verify_evidence ---------------------------------------------


def test_deeply_nested_envelope(
    key: ec.EllipticCurvePrivateKey, good: CosignLayer, roots: TrustRoots
) -> None:
    poison = CosignLayer("attestation", DEEP, None, None, None, None, None, "poison")
    outcome = verify_evidence(
        EvidenceSet(DIGEST, signatures=(good,), attestations=(poison,)),
        [_key_authority(key)], roots, datetime.now(UTC),
    )  # fmt: skip
    _only_poison_failed(outcome, "poison", "DSSE envelope is nested too deeply")


def test_deeply_nested_statement_in_envelope(
    key: ec.EllipticCurvePrivateKey, good: CosignLayer, roots: TrustRoots
) -> None:
    """The statement is peeked at (unverified) to pick a target; that peek must not crash."""
    poison = CosignLayer("attestation", _envelope(DEEP), None, None, None, None, None, "poison")
    outcome = verify_evidence(
        EvidenceSet(DIGEST, signatures=(good,), attestations=(poison,)),
        [_key_authority(key)], roots, datetime.now(UTC),
    )  # fmt: skip
    _only_poison_failed(outcome, "poison", "DSSE envelope signature does not verify")


def test_deeply_nested_bundle(
    key: ec.EllipticCurvePrivateKey, good: CosignLayer, roots: TrustRoots
) -> None:
    outcome = verify_evidence(
        EvidenceSet(DIGEST, signatures=(good,), bundles=(BundleEvidence(DEEP, "x", "poison"),)),
        [_key_authority(key)], roots, datetime.now(UTC),
    )  # fmt: skip
    _only_poison_failed(outcome, "poison", "bundle is nested too deeply")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("logIndex", "\u00b2", "bundle tlog logIndex is not an integer"),  # "²".isdigit()
        ("logIndex", "9" * 5000, "bundle tlog logIndex is not an integer"),
        ("logIndex", "9" * 20, "out of the int64 range"),
        ("integratedTime", "99999999999999", "after the year 9999"),
        ("integratedTime", 10**20, "out of the int64 range"),
    ],
)
def test_bundle_integers(
    key: ec.EllipticCurvePrivateKey,
    good: CosignLayer,
    roots: TrustRoots,
    field: str,
    value: object,
    expected: str,
) -> None:
    raw = _bundle({"publicKey": {}, "tlogEntries": [_entry(**{field: value})]})
    outcome = verify_evidence(
        EvidenceSet(DIGEST, signatures=(good,), bundles=(BundleEvidence(raw, "x", "poison"),)),
        [_key_authority(key)], roots, datetime.now(UTC),
    )  # fmt: skip
    _only_poison_failed(outcome, "poison", expected)


def test_set_with_huge_integrated_time(
    key: ec.EllipticCurvePrivateKey, good: CosignLayer, roots: TrustRoots
) -> None:
    set_json = json.dumps(
        {
            "SignedEntryTimestamp": "AA==",
            "Payload": {"body": "e30=", "integratedTime": 10**20, "logIndex": 1, "logID": "00"},
        }
    ).encode()
    poison = CosignLayer(
        "signature", good.payload, good.signature_b64, None, None, set_json, None, "poison"
    )
    outcome = verify_evidence(
        EvidenceSet(DIGEST, signatures=(good, poison)), [_key_authority(key)], roots,
        datetime.now(UTC),
    )  # fmt: skip
    _only_poison_failed(outcome, "poison", "is after the year 9999")


def test_signed_payload_with_an_integer_too_long_for_python(
    key: ec.EllipticCurvePrivateKey, good: CosignLayer, roots: TrustRoots
) -> None:
    """json.loads raises a plain ValueError (not JSONDecodeError) past 4300 digits."""
    doc = json.loads(simple_signing_payload(DIGEST))
    text = json.dumps(doc)[:-1] + ', "n": ' + "7" * 5000 + "}"
    poison = as_cosign_layer(sign_image(key, DIGEST, payload=text.encode()), source="poison")
    outcome = verify_evidence(
        EvidenceSet(DIGEST, signatures=(good, poison)), [_key_authority(key)], roots,
        datetime.now(UTC),
    )  # fmt: skip
    _only_poison_failed(outcome, "poison", "simple-signing payload is not valid JSON")


def test_certificate_with_unknown_key_algorithm(sigstore: TestSigstore, roots: TrustRoots) -> None:
    good = as_cosign_layer(sign_image(sigstore.issue(), DIGEST, sigstore=sigstore), source="good")
    poison = CosignLayer(
        "signature", b"{}", "AAAA", _unknown_key_cert_pem(), None, None, None, "poison"
    )
    outcome = verify_evidence(
        EvidenceSet(DIGEST, signatures=(good, poison)), [_keyless_authority()], roots,
        datetime.now(UTC),
    )  # fmt: skip
    _only_poison_failed(outcome, "poison", "the layer's certificate key cannot be used")


def test_rfc3161_rejection_response(sigstore: TestSigstore, roots: TrustRoots) -> None:
    good = as_cosign_layer(sign_image(sigstore.issue(), DIGEST, sigstore=sigstore), source="good")
    attacker = TestSigstore(name="attacker")
    signed = sign_image(attacker.issue(), DIGEST)
    signed.annotations["dev.sigstore.cosign/rfc3161timestamp"] = json.dumps(
        {"SignedRFC3161Timestamp": base64.b64encode(RFC3161_REJECTION).decode()}
    )
    poison = as_cosign_layer(signed, source="poison")
    outcome = verify_evidence(
        EvidenceSet(DIGEST, signatures=(good, poison)), [_keyless_authority()], roots,
        sigstore.now,
    )  # fmt: skip
    _only_poison_failed(outcome, "poison", "RFC 3161 response is not a granted timestamp")


def test_bundle_certificate_with_malformed_extension(
    key: ec.EllipticCurvePrivateKey, good: CosignLayer, roots: TrustRoots
) -> None:
    _, der = _bad_basic_constraints_cert()
    raw = _bundle(
        {"x509CertificateChain": {"certificates": [{"rawBytes": base64.b64encode(der).decode()}]}}
    )
    outcome = verify_evidence(
        EvidenceSet(DIGEST, signatures=(good,), bundles=(BundleEvidence(raw, "x", "poison"),)),
        [_key_authority(key), _keyless_authority()], roots, datetime.now(UTC),
    )  # fmt: skip
    _only_poison_failed(outcome, "poison", "bundle certificate has a malformed extension")


# --- root causes, each at its site ---------------------------------------------------------


def test_load_json_refuses_depth_and_long_integers() -> None:
    with pytest.raises(EvidenceFormatError, match="thing is nested too deeply"):
        load_json(DEEP, "thing")
    with pytest.raises(EvidenceFormatError, match="thing is not valid JSON"):
        load_json(b"7" * 5000, "thing")
    with pytest.raises(EvidenceFormatError, match="thing is not valid JSON"):
        load_json(b"\xff", "thing")
    assert load_json(b'{"a": [1]}', "thing") == {"a": [1]}


def test_verify_set_refuses_integrated_time_past_year_9999_before_converting(
    sigstore: TestSigstore, roots: TrustRoots
) -> None:
    with pytest.raises(VerificationError, match="after the year 9999"):
        tlog.verify_set(
            body_b64="e30=",
            integrated_time=tlog.MAX_INTEGRATED_TIME + 1,
            log_index=1,
            log_id=sigstore.rekor.log_id,
            signed_entry_timestamp=b"\x00",
            trust=roots.get("t"),
        )


def test_rfc3161_rejection_is_a_verification_error(roots: TrustRoots) -> None:
    with pytest.raises(VerificationError, match=r"not a granted timestamp \(PKIStatus 2"):
        verify_rfc3161(RFC3161_REJECTION, b"sig", roots.get("t"))


def test_certificate_key_and_extensions_refuse_cleanly() -> None:
    weird = x509.load_pem_x509_certificate(_unknown_key_cert_pem())
    with pytest.raises(EvidenceFormatError, match="certificate key cannot be used"):
        fulcio.certificate_key(weird)
    bad, _ = _bad_basic_constraints_cert()
    with pytest.raises(EvidenceFormatError, match="certificate has a malformed extension"):
        fulcio.certificate_extensions(bad)
    with pytest.raises(EvidenceFormatError, match="malformed extension"):
        fulcio.certificate_identity(bad)


def test_control_valid_layer_alone_verifies(
    key: ec.EllipticCurvePrivateKey, roots: TrustRoots
) -> None:
    """Control: the valid layer alone verifies (the poison tests are not vacuous)."""
    layer = as_cosign_layer(sign_image(key, DIGEST), source="good")
    outcome = verify_evidence(
        EvidenceSet(DIGEST, signatures=(layer,)), [_key_authority(key)], roots, datetime.now(UTC)
    )
    assert [s.source for s in outcome.signatures] == ["good"]
    assert outcome.failures == ()

"""controller.verify.dsse and controller.verify.statement: envelopes and in-toto Statements."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from controller.verify.bundle import _statement_names_digest
from controller.verify.dsse import (
    MAX_ENVELOPE_BYTES,
    decode_base64,
    pae,
    parse_envelope,
    verify_envelope,
)
from controller.verify.errors import EvidenceFormatError, VerificationError
from controller.verify.evidence import _verification_target
from controller.verify.facts import SignerIdentity
from controller.verify.keys import load_public_key
from controller.verify.statement import (
    INTOTO_PAYLOAD_TYPE,
    names_digest,
    require_subject_digest,
    statement_from_verified_payload,
    statement_subjects,
)
from tests.support.cosign_sign import attest, in_toto_statement, public_pem, sign_raw

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
SIGNER = SignerIdentity(authority="test", kind="key", key_id="00")


def test_pae_matches_the_spec_example() -> None:
    # From the DSSE protocol document.
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_valid_envelope_verifies() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    statement = in_toto_statement([DIGEST])
    envelope = parse_envelope(attest(private, statement).payload)
    assert verify_envelope(envelope, load_public_key(public_pem(private))) == statement


def test_tampered_payload_fails() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    doc = json.loads(attest(private, in_toto_statement([DIGEST])).payload)
    doc["payload"] = base64.b64encode(in_toto_statement([OTHER])).decode()
    envelope = parse_envelope(json.dumps(doc).encode())
    with pytest.raises(VerificationError, match="DSSE envelope signature does not verify"):
        verify_envelope(envelope, load_public_key(public_pem(private)))


def test_signature_over_payload_instead_of_pae_fails() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    statement = in_toto_statement([DIGEST])
    raw = {
        "payloadType": "application/vnd.in-toto+json",
        "payload": base64.b64encode(statement).decode(),
        "signatures": [{"sig": base64.b64encode(sign_raw(private, statement)).decode()}],
    }
    with pytest.raises(VerificationError):
        verify_envelope(
            parse_envelope(json.dumps(raw).encode()), load_public_key(public_pem(private))
        )


def test_wrong_key_fails() -> None:
    signer = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    envelope = parse_envelope(attest(signer, in_toto_statement([DIGEST])).payload)
    with pytest.raises(VerificationError, match="does not verify with ECDSA"):
        verify_envelope(envelope, load_public_key(public_pem(other)))


def test_any_one_signature_suffices() -> None:
    first = ec.generate_private_key(ec.SECP256R1())
    second = ed25519.Ed25519PrivateKey.generate()
    statement = in_toto_statement([DIGEST])
    message = pae("application/vnd.in-toto+json", statement)
    raw = {
        "payloadType": "application/vnd.in-toto+json",
        "payload": base64.urlsafe_b64encode(statement).decode().rstrip("="),
        "signatures": [
            {"keyid": "a", "sig": base64.b64encode(sign_raw(first, message)).decode()},
            {"keyid": "b", "sig": base64.urlsafe_b64encode(sign_raw(second, message)).decode()},
        ],
    }
    envelope = parse_envelope(json.dumps(raw).encode())
    assert verify_envelope(envelope, load_public_key(public_pem(second))) == statement
    third = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(VerificationError, match="none of the DSSE envelope's 2 signatures"):
        verify_envelope(envelope, load_public_key(public_pem(third)))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"payload":"","signatures":[{"sig":"AA=="}]}', "payloadType"),
        (b'{"payloadType":"t","signatures":[{"sig":"AA=="}]}', "payload string"),
        (b'{"payloadType":"t","payload":"","signatures":[]}', "no signatures"),
        (b'{"payloadType":"t","payload":"","signatures":["x"]}', "not a JSON object"),
        (b'{"payloadType":"t","payload":"","signatures":[{"sig":""}]}', "no sig"),
        (b'{"payloadType":"t","payload":"!!","signatures":[{"sig":"AA=="}]}', "base64"),
        (b'{"payloadType":"t","payload":"","signatures":[{"sig":"AA==","keyid":1}]}', "keyid"),
    ],
)
def test_malformed_envelopes_are_format_errors(raw: bytes, message: str) -> None:
    with pytest.raises(EvidenceFormatError, match=message):
        parse_envelope(raw)


def test_oversized_envelope_is_refused_before_parsing() -> None:
    with pytest.raises(EvidenceFormatError, match="over the"):
        parse_envelope(b" " * (MAX_ENVELOPE_BYTES + 1))


def test_decode_base64_accepts_both_alphabets() -> None:
    data = bytes(range(256))
    assert decode_base64(base64.b64encode(data).decode(), "x") == data
    assert decode_base64(base64.urlsafe_b64encode(data).decode().rstrip("="), "x") == data
    with pytest.raises(EvidenceFormatError, match="x mixes"):
        decode_base64("a+b_", "x")
    with pytest.raises(EvidenceFormatError, match="x is not valid base64"):
        decode_base64("ab$d", "x")


@pytest.mark.vectors
def test_real_vsa_verifies_with_its_key_only() -> None:
    folder = VECTORS / "slsa-verifier" / "vsa"
    if not folder.is_dir():
        pytest.skip(f"third-party vectors not present at {folder}")
    envelope = parse_envelope((folder / "gke-gce-pre.bcid-vsa.jsonl").read_bytes().strip())
    assert len(envelope.signatures[0].sig) == 64  # IEEE P1363, not DER
    key = load_public_key((folder / "vsa_signing_public_key.pem").read_bytes())
    payload = verify_envelope(envelope, key)
    statement = json.loads(payload)
    assert statement["predicate"]["verifier"]["id"] == (
        "https://bcid.corp.google.com/verifier/bcid_package_enforcer/v0.1"
    )
    assert statement["predicate"]["verifiedLevels"] == ["BCID_L1", "SLSA_BUILD_LEVEL_2"]
    assert statement["subject"][0]["digest"] == {"gce_image_id": "8970095005306000053"}
    other = load_public_key(public_pem(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(VerificationError):
        verify_envelope(envelope, other)


# -- statements ---------------------------------------------------------------------------------


def test_statement_v1_and_v01_parse_and_bind() -> None:
    for statement_type in ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"):
        payload = in_toto_statement(
            [OTHER, DIGEST.upper().replace("SHA256", "sha256")], statement_type=statement_type
        )
        fact = statement_from_verified_payload(payload, SIGNER, DIGEST, None, "src")
        assert fact.statement_type == statement_type
        assert fact.predicate_type == "https://slsa.dev/provenance/v1"
        assert fact.subjects[1].digest["sha256"] == "ab" * 32  # normalised to lowercase
        assert fact.payload == payload
        assert fact.signer == SIGNER


def test_statement_naming_another_digest_is_refused() -> None:
    payload = in_toto_statement([OTHER])
    with pytest.raises(VerificationError, match=f"subjects name {OTHER} not the image {DIGEST}"):
        statement_from_verified_payload(payload, SIGNER, DIGEST, None, "src")


def test_require_subject_digest_without_sha256() -> None:
    doc = json.loads(in_toto_statement([DIGEST]))
    doc["subject"] = [{"name": "_", "digest": {"gce_image_id": "1"}}]
    with pytest.raises(VerificationError, match="no sha256 digest"):
        statement_from_verified_payload(json.dumps(doc).encode(), SIGNER, DIGEST, None, "src")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(_type="https://example.com/Statement"), "_type"),
        (lambda d: d.pop("predicateType"), "predicateType"),
        (lambda d: d.update(subject=[]), "no subjects"),
        (lambda d: d.update(subject=[{"name": "x"}]), "has no digest"),
        (lambda d: d.update(subject=[{"name": "x", "digest": {"sha256": "abc"}}]), "64 hex"),
        (lambda d: d.update(subject=[{"name": 3, "digest": {"sha256": "ab" * 32}}]), "name"),
        (lambda d: d.update(subject=[{"digest": {"sha256": 5}}]), "not a string"),
    ],
)
def test_malformed_statements_are_format_errors(mutate: object, message: str) -> None:
    doc = json.loads(in_toto_statement([DIGEST]))
    assert callable(mutate)
    mutate(doc)
    with pytest.raises(EvidenceFormatError, match=message):
        statement_from_verified_payload(json.dumps(doc).encode(), SIGNER, DIGEST, None, "src")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(subject=[]),
        lambda d: d.update(subject=[{"name": "x"}]),
        lambda d: d.update(subject=[{"name": "x", "digest": {"sha256": "abc"}}]),
        lambda d: d.update(subject="x"),
    ],
)
def test_every_digest_check_reads_subjects_by_the_same_rules(mutate: object) -> None:
    doc = json.loads(in_toto_statement([DIGEST]))
    assert callable(mutate)
    mutate(doc)
    payload = json.dumps(doc).encode()
    with pytest.raises(EvidenceFormatError) as statement_error:
        statement_from_verified_payload(payload, SIGNER, DIGEST, None, "src")
    with pytest.raises(EvidenceFormatError) as subjects_error:
        statement_subjects(payload)
    with pytest.raises(EvidenceFormatError) as bundle_error:
        _statement_names_digest(INTOTO_PAYLOAD_TYPE, payload, bytes.fromhex("ab" * 32))
    assert str(subjects_error.value) == str(statement_error.value) == str(bundle_error.value)
    # a statement whose subjects cannot be read is verified against the image digest itself
    assert _verification_target(payload, DIGEST) == DIGEST


def test_names_digest_is_the_one_subject_check() -> None:
    subjects = statement_subjects(in_toto_statement([OTHER, DIGEST]))
    assert names_digest(subjects, DIGEST)
    assert names_digest(subjects, DIGEST.replace("ab", "AB"))  # hex compared case-insensitively
    assert not names_digest(subjects, "sha256:" + "ef" * 32)
    assert not names_digest(subjects, "sha512:" + "ab" * 32)  # only the digest's algorithm
    assert not names_digest(subjects, "ab" * 32) and not names_digest(subjects, "sha256:")
    # the bundle check, the target choice and the statement binding give the same answers
    _statement_names_digest(
        INTOTO_PAYLOAD_TYPE, in_toto_statement([DIGEST]), bytes.fromhex("ab" * 32)
    )
    with pytest.raises(VerificationError, match="no in-toto subject has the artifact digest"):
        _statement_names_digest(
            INTOTO_PAYLOAD_TYPE, in_toto_statement([OTHER]), bytes.fromhex("ab" * 32)
        )
    assert _verification_target(in_toto_statement([OTHER, DIGEST]), DIGEST) == DIGEST
    assert _verification_target(in_toto_statement([OTHER]), DIGEST) == OTHER


def test_wrong_payload_type_and_bad_json_are_refused() -> None:
    with pytest.raises(EvidenceFormatError, match="payloadType"):
        statement_from_verified_payload(
            in_toto_statement([DIGEST]), SIGNER, DIGEST, None, "src", payload_type="text/plain"
        )
    with pytest.raises(EvidenceFormatError, match="not valid JSON"):
        statement_from_verified_payload(b"{", SIGNER, DIGEST, None, "src")


def test_bad_image_digest_is_a_format_error() -> None:
    fact = statement_from_verified_payload(in_toto_statement([DIGEST]), SIGNER, DIGEST, None, "s")
    with pytest.raises(EvidenceFormatError, match="not sha256"):
        require_subject_digest(fact, "sha512:" + "ab" * 64)

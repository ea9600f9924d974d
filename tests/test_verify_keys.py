"""controller.verify.keys: key loading, key ids and raw signature checks."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from controller.verify.errors import EvidenceFormatError, VerificationError
from controller.verify.keys import describe_key, key_id, load_public_key, verify_signature
from tests.support.cosign_sign import PrivateKey, public_pem, sign_raw

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"

DATA = b"the exact bytes that were signed"


def _keys() -> list[tuple[str, PrivateKey]]:
    return [
        ("p256", ec.generate_private_key(ec.SECP256R1())),
        ("p384", ec.generate_private_key(ec.SECP384R1())),
        ("p521", ec.generate_private_key(ec.SECP521R1())),
        ("rsa2048", rsa.generate_private_key(65537, 2048)),
        ("ed25519", ed25519.Ed25519PrivateKey.generate()),
    ]


KEYS = _keys()
IDS = [name for name, _ in KEYS]


@pytest.mark.parametrize(("name", "private"), KEYS, ids=IDS)
def test_every_algorithm_verifies_and_rejects(name: str, private: PrivateKey) -> None:
    key = load_public_key(public_pem(private))
    signature = sign_raw(private, DATA)
    verify_signature(key, signature, DATA)
    with pytest.raises(VerificationError, match="does not verify"):
        verify_signature(key, signature, DATA + b"!")
    other = load_public_key(public_pem(dict(_keys())[name]))
    with pytest.raises(VerificationError, match="does not verify"):
        verify_signature(other, signature, DATA)


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_ecdsa_accepts_p1363_and_der(curve: ec.EllipticCurve) -> None:
    private = ec.generate_private_key(curve)
    key = load_public_key(public_pem(private))
    raw = sign_raw(private, DATA, p1363=True)
    assert len(raw) == 2 * ((curve.key_size + 7) // 8)
    verify_signature(key, raw, DATA)
    verify_signature(key, sign_raw(private, DATA), DATA)
    tampered = raw[:-1] + bytes([raw[-1] ^ 1])
    with pytest.raises(VerificationError):
        verify_signature(key, tampered, DATA)


def test_ecdsa_uses_the_curves_hash() -> None:
    # A P-384 signature made with SHA-256 must not pass: the curve fixes SHA-384.
    private = ec.generate_private_key(ec.SECP384R1())
    wrong_hash = private.sign(DATA, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(VerificationError):
        verify_signature(load_public_key(public_pem(private)), wrong_hash, DATA)


def test_rsa_pss_is_accepted() -> None:
    private = rsa.generate_private_key(65537, 2048)
    key = load_public_key(public_pem(private))
    verify_signature(key, sign_raw(private, DATA, rsa_pss=True), DATA)


def test_key_id_is_sha256_of_der_spki() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = load_public_key(public_pem(private))
    assert key_id(key) == hashlib.sha256(der).hexdigest()
    assert key_id(key)[:16] in describe_key(key)


def test_small_rsa_keys_are_refused() -> None:
    private = rsa.generate_private_key(65537, 1024)
    with pytest.raises(EvidenceFormatError, match="RSA 1024-bit keys are too weak"):
        load_public_key(public_pem(private))


def test_unsupported_algorithms_are_refused() -> None:
    with pytest.raises(EvidenceFormatError, match="curve"):
        load_public_key(public_pem(ec.generate_private_key(ec.SECP256K1())))
    dsa_pem = (
        dsa.generate_private_key(2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(EvidenceFormatError, match="DSA"):
        load_public_key(dsa_pem)


@pytest.mark.parametrize(
    "pem",
    [
        b"",
        b"not a key",
        b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
        b"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n"
        b"-----END PUBLIC KEY-----\n",
        "-----BEGIN PUBLIC KEY-----\nü\n-----END PUBLIC KEY-----\n".encode(),
        b"A" * (70 * 1024),
    ],
    ids=["empty", "text", "bad-base64", "truncated", "non-ascii", "oversized"],
)
def test_malformed_pem_is_a_format_error(pem: bytes) -> None:
    with pytest.raises(EvidenceFormatError):
        load_public_key(pem)


def test_empty_and_oversized_signatures_are_format_errors() -> None:
    key = load_public_key(public_pem(ed25519.Ed25519PrivateKey.generate()))
    with pytest.raises(EvidenceFormatError, match="empty"):
        verify_signature(key, b"", DATA)
    with pytest.raises(EvidenceFormatError, match="over"):
        verify_signature(key, b"\x00" * 5000, DATA)


def test_garbage_ecdsa_signature_is_a_verification_error() -> None:
    key = load_public_key(public_pem(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(VerificationError):
        verify_signature(key, b"\x30\x02\x01", DATA)


def test_ed25519_with_null_parameter_matches_the_strict_encoding() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    der = bytes.fromhex("302c300706032b65700500032100") + raw
    pem = b"-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(der) + b"-----END PUBLIC KEY-----\n"
    key = load_public_key(pem)
    assert key_id(key) == key_id(load_public_key(public_pem(private)))
    verify_signature(key, private.sign(DATA), DATA)
    # Only that exact shape is tolerated: a NULL parameter with a short key is refused.
    short = bytes.fromhex("302b300706032b65700500032000") + raw[:31]
    with pytest.raises(EvidenceFormatError):
        load_public_key(
            b"-----BEGIN PUBLIC KEY-----\n"
            + base64.encodebytes(short)
            + b"-----END PUBLIC KEY-----\n"
        )


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.vectors
@pytest.mark.parametrize(
    ("link", "pub"),
    [
        ("filesystem-2025.10.12-1-any.in-toto.link", "reproducible-archlinux.pub"),
        ("librust-as-slice-dev_0.2.1-1+b2_amd64.in-toto.link", "reproduce-debian-net-amd64.pub"),
    ],
)
def test_rebuilderd_null_parameter_keys_verify_their_links(link: str, pub: str) -> None:
    folder = VECTORS / "rebuilderd-links"
    if not folder.is_dir():
        pytest.skip(f"third-party vectors not present at {folder}")
    key = load_public_key((folder / pub).read_bytes())
    doc = json.loads((folder / link).read_bytes())
    signed = _canonical(doc["signed"])
    verified = 0
    for entry in doc["signatures"]:
        try:
            verify_signature(key, bytes.fromhex(entry["sig"]), signed)
        except VerificationError:
            continue
        verified += 1
    assert verified == 1


@pytest.mark.vectors
def test_rebuilderd_tampered_link_does_not_verify() -> None:
    folder = VECTORS / "rebuilderd-links"
    if not folder.is_dir():
        pytest.skip(f"third-party vectors not present at {folder}")
    key = load_public_key((folder / "reproducible-archlinux.pub").read_bytes())
    doc = json.loads((folder / "filesystem-2025.10.12-1-any.INVALID.in-toto.link").read_bytes())
    signed = _canonical(doc["signed"])
    for entry in doc["signatures"]:
        with pytest.raises(VerificationError):
            verify_signature(key, bytes.fromhex(entry["sig"]), signed)

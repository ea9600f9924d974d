"""Ed25519ph (RFC 8032, prehash variant), as cosign >= 2.5 signs with Ed25519 keys."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from controller.verify.ed25519ph import verify_ed25519ph
from tests.support import ed25519ph_sign

# RFC 8032, section 7.3 "Test Vectors for Ed25519ph", TEST abc
RFC_SECRET = bytes.fromhex("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42")
RFC_PUBLIC = bytes.fromhex("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf")
RFC_SIGNATURE = bytes.fromhex(
    "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41"
    "31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406"
)


def test_rfc_8032_vector_verifies_and_nothing_else_does() -> None:
    assert verify_ed25519ph(RFC_PUBLIC, RFC_SIGNATURE, b"abc")
    assert not verify_ed25519ph(RFC_PUBLIC, RFC_SIGNATURE, b"abd")
    assert not verify_ed25519ph(RFC_PUBLIC, RFC_SIGNATURE, b"abc", context=b"x")
    flipped = bytearray(RFC_SIGNATURE)
    flipped[5] ^= 1
    assert not verify_ed25519ph(RFC_PUBLIC, bytes(flipped), b"abc")


def test_the_test_signer_reproduces_the_rfc_signature() -> None:
    assert ed25519ph_sign.public_key(RFC_SECRET) == RFC_PUBLIC
    assert ed25519ph_sign.sign(RFC_SECRET, b"abc") == RFC_SIGNATURE


def test_public_keys_match_cryptographys_derivation() -> None:
    for _ in range(5):
        seed = os.urandom(32)
        key = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key()
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        assert ed25519ph_sign.public_key(seed) == raw
        message = os.urandom(100)
        assert verify_ed25519ph(raw, ed25519ph_sign.sign(seed, message), message)


def test_pure_ed25519_signatures_are_not_ed25519ph() -> None:
    seed = os.urandom(32)
    private = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert not verify_ed25519ph(raw, private.sign(b"payload"), b"payload")


def test_malformed_inputs_are_refused_not_raised() -> None:
    assert not verify_ed25519ph(b"\x00" * 31, RFC_SIGNATURE, b"abc")
    assert not verify_ed25519ph(RFC_PUBLIC, RFC_SIGNATURE[:63], b"abc")
    big_s = RFC_SIGNATURE[:32] + (2**256 - 1).to_bytes(32, "little")
    assert not verify_ed25519ph(RFC_PUBLIC, big_s, b"abc")
    not_a_point = (2**255 - 19 + 1).to_bytes(32, "little")  # y >= p
    assert not verify_ed25519ph(not_a_point, RFC_SIGNATURE, b"abc")

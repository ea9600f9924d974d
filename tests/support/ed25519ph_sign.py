"""An Ed25519ph signer for tests (RFC 8032, 5.1.6 with the SHA-512 prehash), standing in for
cosign >= 2.5 signing with an Ed25519 key. ``cryptography`` signs only pure Ed25519."""

from __future__ import annotations

import hashlib

from controller.verify import ed25519ph as ref

_DOM2 = b"SigEd25519 no Ed25519 collisions" + bytes([1, 0])


def _encode(point: tuple[int, int, int, int]) -> bytes:
    x, y, z, _ = point
    zi = pow(z, ref._P - 2, ref._P)
    x, y = x * zi % ref._P, y * zi % ref._P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def public_key(seed: bytes) -> bytes:
    """The 32-byte public key of a 32-byte seed."""
    return _encode(ref._mul(_scalar(seed), ref._BASE))


def _scalar(seed: bytes) -> int:
    h = hashlib.sha512(seed).digest()
    a = bytearray(h[:32])
    a[0] &= 248
    a[31] &= 127
    a[31] |= 64
    return int.from_bytes(a, "little")


def sign(seed: bytes, message: bytes) -> bytes:
    """Ed25519ph signature (empty context) of ``message`` with the key of ``seed``."""
    h = hashlib.sha512(seed).digest()
    a = _scalar(seed)
    prehash = hashlib.sha512(message).digest()
    r = int.from_bytes(hashlib.sha512(_DOM2 + h[32:] + prehash).digest(), "little") % ref._L
    big_r = _encode(ref._mul(r, ref._BASE))
    k = (
        int.from_bytes(
            hashlib.sha512(_DOM2 + big_r + public_key(seed) + prehash).digest(), "little"
        )
        % ref._L
    )
    return big_r + ((r + k * a) % ref._L).to_bytes(32, "little")

"""Ed25519ph verification (RFC 8032, section 5.1: Ed25519 with a SHA-512 prehash).

cosign 2.5 and later sign with Ed25519 keys in the prehash variant by default, and the
``cryptography`` package verifies only pure Ed25519, so this small verifier fills the gap.
It is used only to verify: never to sign, so no secret ever passes through it, and timing
does not matter.

Rules (RFC 8032, 5.1.7 "Verify"):
- the public key and R must decode to curve points (canonical y, a square root for x);
- S must be below the group order L;
- k = SHA-512(dom2(1, context) || R || A || SHA-512(message)), and [8][S]B = [8]R + [8][k]A.
"""

from __future__ import annotations

import hashlib

__all__ = ["verify_ed25519ph"]

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)

# A point in extended homogeneous coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z, xy = T/Z.
_Point = tuple[int, int, int, int]


def _add(p: _Point, q: _Point) -> _Point:
    a = (p[1] - p[0]) * (q[1] - q[0]) % _P
    b = (p[1] + p[0]) * (q[1] + q[0]) % _P
    c = 2 * p[3] * q[3] * _D % _P
    d = 2 * p[2] * q[2] % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(scalar: int, p: _Point) -> _Point:
    result: _Point = (0, 1, 1, 0)  # the neutral element
    while scalar:
        if scalar & 1:
            result = _add(result, p)
        p = _add(p, p)
        scalar >>= 1
    return result


def _equal(p: _Point, q: _Point) -> bool:
    # x1/z1 == x2/z2 and y1/z1 == y2/z2, without inversions
    return (p[0] * q[2] - q[0] * p[2]) % _P == 0 and (p[1] * q[2] - q[1] * p[2]) % _P == 0


def _recover_x(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P != 0:
        return None
    if (x & 1) != sign:
        x = _P - x
    return x


def _decode(encoded: bytes) -> _Point | None:
    if len(encoded) != 32:
        return None
    y = int.from_bytes(encoded, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % _P)


_G_Y = 4 * pow(5, _P - 2, _P) % _P
_G_X = _recover_x(_G_Y, 0)
assert _G_X is not None  # the base point is on the curve
_BASE: _Point = (_G_X, _G_Y, 1, _G_X * _G_Y % _P)


def _dom2(phflag: int, context: bytes) -> bytes:
    return b"SigEd25519 no Ed25519 collisions" + bytes([phflag, len(context)]) + context


def verify_ed25519ph(
    public_key: bytes, signature: bytes, message: bytes, *, context: bytes = b""
) -> bool:
    """True when ``signature`` is an Ed25519ph signature of ``message`` by ``public_key``
    (32 raw bytes), with ``context`` (empty for cosign)."""
    if len(public_key) != 32 or len(signature) != 64 or len(context) > 255:
        return False
    a = _decode(public_key)
    r = _decode(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= _L:
        return False
    prehash = hashlib.sha512(message).digest()
    k = int.from_bytes(
        hashlib.sha512(_dom2(1, context) + signature[:32] + public_key + prehash).digest(),
        "little",
    )
    left = _mul(8 * s, _BASE)
    right = _mul(8, _add(r, _mul(k, a)))
    return _equal(left, right)

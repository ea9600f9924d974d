"""Public keys and raw signature checks for every signer reprogate accepts.

Implements the key handling cosign and DSSE verifiers need (cosign signature spec, "Public
keys"; DSSE protocol, "Signature verification") with these rules:

- Keys are PEM SubjectPublicKeyInfo: ECDSA P-256/P-384/P-521, RSA of 2048 to 16384 bits,
  Ed25519. Anything else is refused with :class:`EvidenceFormatError`.
- An Ed25519 SPKI carrying an explicit NULL algorithm parameter (as rebuilderd publishes) is
  accepted, but only in that one exact encoding; ``cryptography`` refuses it on its own.
- ECDSA uses the hash that matches the curve (P-256/SHA-256, P-384/SHA-384, P-521/SHA-512) and
  accepts both DER and IEEE P1363 (raw ``r || s``) signatures.
- RSA accepts PKCS#1 v1.5 and PSS, both with SHA-256.
- A key id is the SHA-256 hex of the key's canonical DER SubjectPublicKeyInfo.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from controller.verify.ed25519ph import verify_ed25519ph
from controller.verify.errors import EvidenceFormatError, VerificationError

__all__ = [
    "MAX_PEM_BYTES",
    "MAX_SIGNATURE_BYTES",
    "PublicKey",
    "describe_key",
    "ensure_supported",
    "key_id",
    "load_public_key",
    "public_key_pem",
    "verify_signature",
]

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

MAX_PEM_BYTES = 64 * 1024
MAX_SIGNATURE_BYTES = 4096  # RSA-16384 is 2 KiB; nothing legitimate is larger
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 16384  # bounds the cost of one verification

# SEQUENCE { SEQUENCE { OID 1.3.101.112, NULL }, BIT STRING (33 bytes) }: the only non-DER-strict
# Ed25519 encoding we tolerate. The raw key is the 32 bytes that follow this prefix.
_ED25519_NULL_PARAM_PREFIX = bytes.fromhex("302c300706032b65700500032100")

_CURVE_HASH: dict[str, tuple[hashes.HashAlgorithm, int]] = {
    # curve name -> (hash, byte length of one coordinate)
    "secp256r1": (hashes.SHA256(), 32),
    "secp384r1": (hashes.SHA384(), 48),
    "secp521r1": (hashes.SHA512(), 66),
}


def load_public_key(pem: bytes) -> PublicKey:
    """Parse one PEM ``PUBLIC KEY`` and check that its algorithm and size are allowed.

    Raises :class:`EvidenceFormatError` for malformed PEM and for keys we do not accept.
    """
    if len(pem) > MAX_PEM_BYTES:
        raise EvidenceFormatError(f"public key PEM is {len(pem)} bytes, over {MAX_PEM_BYTES}")
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as exc:
        ed = _ed25519_with_null_parameter(pem)
        if ed is None:
            raise EvidenceFormatError(f"key is not a PEM public key ({exc})") from exc
        return ed
    return _check_allowed(key)


def _ed25519_with_null_parameter(pem: bytes) -> ed25519.Ed25519PublicKey | None:
    """The rebuilderd encoding: Ed25519 SPKI with ``AlgorithmIdentifier.parameters = NULL``."""
    try:
        der = _pem_body(pem, "PUBLIC KEY")
    except EvidenceFormatError:
        return None
    if len(der) != len(_ED25519_NULL_PARAM_PREFIX) + 32:
        return None
    if not der.startswith(_ED25519_NULL_PARAM_PREFIX):
        return None
    return ed25519.Ed25519PublicKey.from_public_bytes(der[len(_ED25519_NULL_PARAM_PREFIX) :])


def _pem_body(pem: bytes, label: str) -> bytes:
    """The DER inside exactly one PEM block with ``label``."""
    if not pem.isascii():
        raise EvidenceFormatError("PEM is not ASCII")
    text = pem.decode("ascii")
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    start = text.find(begin)
    stop = text.find(end)
    if start < 0 or stop < start or text.find(begin, start + 1) >= 0:
        raise EvidenceFormatError(f"expected exactly one PEM {label} block")
    body = "".join(text[start + len(begin) : stop].split())
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error as exc:
        raise EvidenceFormatError(f"PEM {label} body is not base64: {exc}") from exc


def _check_allowed(key: object) -> PublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVE_HASH:
            raise EvidenceFormatError(
                f"ECDSA curve {key.curve.name} is not accepted; use P-256, P-384 or P-521"
            )
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise EvidenceFormatError(
                f"RSA {key.key_size}-bit keys are too weak; use >= {MIN_RSA_BITS}"
            )
        if key.key_size > MAX_RSA_BITS:
            raise EvidenceFormatError(
                f"RSA {key.key_size}-bit keys are too large; use <= {MAX_RSA_BITS}"
            )
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    kind = type(key).__name__.removesuffix("PublicKey") or type(key).__name__
    raise EvidenceFormatError(
        f"unsupported key type {kind}; use ECDSA P-256/P-384/P-521, RSA or Ed25519"
    )


def ensure_supported(key: object) -> PublicKey:
    """Return ``key`` typed as :data:`PublicKey` when it is an algorithm and size we accept
    (used for keys taken from certificates)."""
    return _check_allowed(key)


def key_id(key: PublicKey) -> str:
    """SHA-256 hex of the key's canonical DER SubjectPublicKeyInfo."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def public_key_pem(key: PublicKey) -> bytes:
    """Canonical PEM SubjectPublicKeyInfo of ``key``."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def describe_key(key: PublicKey) -> str:
    """``ECDSA P-256 key 1a2b3c4d…`` for messages."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        algo = f"ECDSA {key.curve.name}"
    elif isinstance(key, rsa.RSAPublicKey):
        algo = f"RSA-{key.key_size}"
    else:
        algo = "Ed25519"
    return f"{algo} key {key_id(key)[:16]}"


def verify_signature(
    key: PublicKey, signature: bytes, data: bytes, *, cosign_compat: bool = False
) -> None:
    """Check ``signature`` over ``data`` with ``key``; raise :class:`VerificationError` if not.

    ``cosign_compat`` accepts the other ways cosign has signed with the same key:
    - P-384/P-521 keys: ECDSA over SHA-256, as cosign before 2.5 signed with every ECDSA key
      (``pkg/cosign/keys.go`` LoadPrivateKey up to v2.4);
    - Ed25519 keys: Ed25519ph, cosign's default from 2.5 (``GetDefaultLoadOptions``).
    Either way only a signature by this key over ``data`` passes.
    """
    if not signature:
        raise EvidenceFormatError("signature is empty")
    if len(signature) > MAX_SIGNATURE_BYTES:
        raise EvidenceFormatError(
            f"signature is {len(signature)} bytes, over {MAX_SIGNATURE_BYTES}"
        )
    if isinstance(key, ec.EllipticCurvePublicKey):
        ok = _verify_ecdsa(key, signature, data) or (
            cosign_compat
            and key.curve.name != "secp256r1"
            and _verify_ecdsa(key, signature, data, hashes.SHA256())
        )
    elif isinstance(key, rsa.RSAPublicKey):
        ok = _verify_rsa(key, signature, data)
    else:
        ok = _attempt(lambda: key.verify(signature, data)) or (
            cosign_compat
            and verify_ed25519ph(
                key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
                signature,
                data,
            )
        )
    if not ok:
        raise VerificationError(f"signature does not verify with {describe_key(key)}")


def _verify_ecdsa(
    key: ec.EllipticCurvePublicKey,
    signature: bytes,
    data: bytes,
    hash_override: hashes.HashAlgorithm | None = None,
) -> bool:
    hash_algorithm, coord = _CURVE_HASH[key.curve.name]
    algorithm = ec.ECDSA(hash_override or hash_algorithm)
    candidates = [signature]
    if len(signature) == 2 * coord:
        # IEEE P1363: fixed-width big-endian r then s. A DER signature of exactly this length
        # is possible, so the DER reading stays a candidate. Either reading needs a valid
        # signature by this key, so accepting both gives a forger nothing.
        r = int.from_bytes(signature[:coord], "big")
        s = int.from_bytes(signature[coord:], "big")
        candidates.insert(0, encode_dss_signature(r, s))
    for candidate in candidates:
        if _attempt(functools.partial(key.verify, candidate, data, algorithm)):
            return True
    return False


def _verify_rsa(key: rsa.RSAPublicKey, signature: bytes, data: bytes) -> bool:
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
    return _attempt(
        lambda: key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    ) or _attempt(lambda: key.verify(signature, data, pss, hashes.SHA256()))


def _attempt(check: Callable[[], object]) -> bool:
    """Run a ``cryptography`` verify call; a malformed or wrong signature is just ``False``."""
    try:
        check()
    except (InvalidSignature, ValueError):
        return False
    return True

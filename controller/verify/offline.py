"""``reprogate verify``: one Sigstore bundle, verified offline against one signer.

Rules enforced:
- Exactly one way to name the signer: a PEM key, or an identity together with its issuer.
- The trust root is the given ``trusted_root.json`` or the production root shipped with
  ``sigstore``; nothing is fetched.
- The artifact is given as bytes or as ``sha256:HEX`` (bare 64-hex accepted); files are read
  under size limits.
"""

from __future__ import annotations

import re
from pathlib import Path

from controller.verify.authority import Authority, KeyAuthority, KeylessAuthority
from controller.verify.bundle import MAX_BUNDLE_BYTES, BundleResult, verify_bundle
from controller.verify.errors import EvidenceFormatError
from controller.verify.trustroot import production_trust, trust_from_json

__all__ = ["parse_artifact_digest", "verify_offline"]

_DIGEST = re.compile(r"(?:sha256:)?([0-9a-fA-F]{64})")


def parse_artifact_digest(text: str) -> bytes:
    """``sha256:HEX`` (or 64 hex digits) to 32 bytes; ``EvidenceFormatError`` otherwise."""
    match = _DIGEST.fullmatch(text.strip())
    if match is None:
        raise EvidenceFormatError(f"artifact digest {text!r} is not sha256:<64 hex digits>")
    return bytes.fromhex(match.group(1))


def _authority(identity: str | None, issuer: str | None, key_pem: bytes | None) -> Authority:
    if key_pem is not None:
        if identity is not None or issuer is not None:
            raise ValueError("give either a key or an identity with its issuer, not both")
        return KeyAuthority(name="", public_key_pem=key_pem, transparency_log="optional")
    if identity is None or issuer is None:
        raise ValueError("keyless verification needs both an identity and an issuer")
    return KeylessAuthority(name="", issuer=issuer, subject=identity)


def verify_offline(
    bundle_path: Path | str,
    *,
    identity: str | None,
    issuer: str | None,
    key_pem: bytes | None,
    trusted_root_json: bytes | None,
    artifact: bytes | None,
    artifact_digest: str | None,
) -> BundleResult:
    """Verify the bundle at ``bundle_path`` offline.

    Raises ``ValueError`` for a usage error (signer or artifact not named correctly, bundle file
    unreadable) and ``VerificationError`` when the evidence does not verify.
    """
    authority = _authority(identity, issuer, key_pem)
    if artifact is None and artifact_digest is None:
        raise ValueError("name the artifact: a file or sha256:HEX")
    digest = parse_artifact_digest(artifact_digest) if artifact_digest is not None else None
    path = Path(bundle_path)
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read bundle {path}: {exc.strerror}") from exc
    if len(raw) > MAX_BUNDLE_BYTES:
        raise EvidenceFormatError(f"bundle {path} is over the {MAX_BUNDLE_BYTES} byte limit")
    trust = (
        trust_from_json(trusted_root_json, "custom")
        if trusted_root_json is not None
        else production_trust()
    )
    return verify_bundle(
        raw, trust=trust, authority=authority, artifact_sha256=digest, artifact=artifact
    )

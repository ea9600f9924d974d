"""cosign "simple signing" payloads: what a cosign ``.sig`` layer's signature is over.

Implements the payload format of the cosign signature spec (sigstore/cosign
``specs/SIGNATURE_SPEC.md``, "Simple Signing"; the containers/image signature format with
type ``cosign container image signature``). Rules enforced:

- The payload is a JSON object of at most :data:`MAX_PAYLOAD_BYTES` with a ``critical`` object
  holding ``identity.docker-reference`` (string), ``image.docker-manifest-digest``
  (``sha256:<64 hex>``) and ``type`` exactly ``cosign container image signature``.
- ``optional`` is absent, null or an object; its claims are carried through unchanged as
  signer-asserted annotations.
- :func:`require_image_digest` binds the payload to an image: ``docker-manifest-digest`` must
  equal the image's digest, so a signature copied from another image never counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from controller.verify.errors import EvidenceFormatError, VerificationError
from controller.verify.jsontext import load_json_object
from controller.verify.statement import parse_sha256_digest

__all__ = [
    "COSIGN_SIGNATURE_TYPE",
    "MAX_PAYLOAD_BYTES",
    "SimpleSigningPayload",
    "parse_simple_signing",
    "require_image_digest",
]

COSIGN_SIGNATURE_TYPE = "cosign container image signature"
MAX_PAYLOAD_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SimpleSigningPayload:
    """The claims of a simple-signing payload (trusted only once its signature verified)."""

    docker_reference: str
    manifest_digest: str  # normalised: sha256:<lowercase hex>
    optional: Mapping[str, Any]


def parse_simple_signing(payload: bytes) -> SimpleSigningPayload:
    """Parse a cosign simple-signing payload; :class:`EvidenceFormatError` when malformed."""
    doc = load_json_object(payload, "simple-signing payload", max_bytes=MAX_PAYLOAD_BYTES)
    critical = doc.get("critical")
    if not isinstance(critical, dict):
        raise EvidenceFormatError("simple-signing payload has no 'critical' object")
    kind = critical.get("type")
    if kind != COSIGN_SIGNATURE_TYPE:
        raise EvidenceFormatError(f"simple-signing type is {kind!r}, not {COSIGN_SIGNATURE_TYPE!r}")
    identity = critical.get("identity")
    image = critical.get("image")
    if not isinstance(identity, dict) or not isinstance(identity.get("docker-reference"), str):
        raise EvidenceFormatError(
            "simple-signing payload has no critical.identity.docker-reference"
        )
    if not isinstance(image, dict) or not isinstance(image.get("docker-manifest-digest"), str):
        raise EvidenceFormatError(
            "simple-signing payload has no critical.image.docker-manifest-digest"
        )
    digest = image["docker-manifest-digest"]
    optional = doc.get("optional")
    if optional is None:
        optional = {}
    if not isinstance(optional, dict):
        raise EvidenceFormatError("simple-signing 'optional' is not a JSON object")
    return SimpleSigningPayload(
        docker_reference=identity["docker-reference"],
        manifest_digest=f"sha256:{parse_sha256_digest(digest, 'docker-manifest-digest')}",
        optional=MappingProxyType(optional),
    )


def require_image_digest(payload: SimpleSigningPayload, image_digest: str) -> None:
    """Raise :class:`VerificationError` unless the payload names ``image_digest``."""
    wanted = f"sha256:{parse_sha256_digest(image_digest)}"
    if payload.manifest_digest != wanted:
        raise VerificationError(
            f"signed payload names {payload.manifest_digest} not the image {wanted}"
        )

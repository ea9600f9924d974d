"""Evidence as found in the registry: raw, UNVERIFIED bytes plus where they came from.

Nothing here is trusted. ``controller.verify`` is the only consumer allowed to turn these into
facts; a policy never sees an ``EvidenceSet`` directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["BundleEvidence", "CosignLayer", "EvidenceSet", "LinkEvidence"]

# cosign's annotations on the layers of a `.sig` / `.att` manifest
ANN_SIGNATURE = "dev.cosignproject.cosign/signature"
ANN_CERTIFICATE = "dev.sigstore.cosign/certificate"
ANN_CHAIN = "dev.sigstore.cosign/chain"
ANN_BUNDLE = "dev.sigstore.cosign/bundle"  # Rekor SET: {"SignedEntryTimestamp","Payload":{...}}
ANN_RFC3161 = "dev.sigstore.cosign/rfc3161timestamp"

SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
SIGSTORE_BUNDLE_PREFIX = "application/vnd.dev.sigstore.bundle"
# reprogate's convention for rebuilders' in-toto v0.9 link metadata (the rebuilderd format)
# attached to an image: an OCI referrer of this artifactType whose first layer is the link
IN_TOTO_LINK_ARTIFACT_TYPE = "application/vnd.in-toto.link+json"


@dataclass(frozen=True, slots=True)
class CosignLayer:
    """One layer of a cosign ``.sig`` (kind "signature") or ``.att`` (kind "attestation") manifest.

    For signatures ``payload`` is the simple-signing JSON and ``signature_b64`` the annotation.
    For attestations ``payload`` is the DSSE envelope JSON (the signature lives inside it).
    """

    kind: Literal["signature", "attestation"]
    payload: bytes
    signature_b64: str | None
    certificate_pem: bytes | None
    chain_pem: bytes | None
    rekor_bundle: bytes | None  # JSON text of the dev.sigstore.cosign/bundle annotation
    rfc3161_timestamp: bytes | None  # JSON text of the rfc3161timestamp annotation
    source: str  # human description: "registry/repo:sha256-<hex>.sig layer 0"


@dataclass(frozen=True, slots=True)
class BundleEvidence:
    """A Sigstore bundle (v0.1/v0.2/v0.3) found as a referrer or in the referrers tag index."""

    raw: bytes
    media_type: str
    source: str


@dataclass(frozen=True, slots=True)
class LinkEvidence:
    """in-toto link metadata from a rebuilder (rebuilderd format)."""

    raw: bytes
    source: str


@dataclass(frozen=True, slots=True)
class EvidenceSet:
    """Everything found for one image digest, before verification."""

    digest: str
    signatures: tuple[CosignLayer, ...] = ()
    attestations: tuple[CosignLayer, ...] = ()
    bundles: tuple[BundleEvidence, ...] = ()
    links: tuple[LinkEvidence, ...] = ()
    problems: tuple[str, ...] = ()  # non-fatal: a referrer that could not be read, etc.

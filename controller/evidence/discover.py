"""Find every signature and attestation stored for one image digest, in every format.

Storage formats read (all UNVERIFIED; ``controller.verify`` decides what they prove):
- cosign's legacy tags ``sha256-<hex>.sig`` / ``sha256-<hex>.att`` in the image's repository,
  one layer per signature, evidence in layer annotations (cosign "Signature Specification").
- OCI 1.1 referrers (``GET /v2/<name>/referrers/<digest>``) whose artifactType is a Sigstore
  bundle media type; the bundle is the referrer manifest's first layer.
- The referrers tag schema (``sha256-<hex>`` holding an image index of referrer descriptors)
  for registries without the referrers API (OCI distribution spec, "Referrers Tag Schema").

Rules:
- A tag that does not exist means "no evidence of that kind", not an error.
- Any other registry failure propagates as RegistryError: a timeout is never "unsigned".
- Counts and sizes are capped, so a hostile registry cannot make us read without bound.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from controller.evidence.model import (
    ANN_BUNDLE,
    ANN_CERTIFICATE,
    ANN_CHAIN,
    ANN_RFC3161,
    ANN_SIGNATURE,
    SIGSTORE_BUNDLE_PREFIX,
    BundleEvidence,
    CosignLayer,
    EvidenceSet,
)
from controller.oci.client import RegistryClient
from controller.oci.errors import RegistryError
from controller.oci.manifest import Descriptor, Manifest
from controller.oci.reference import ImageRef

__all__ = ["DiscoveryLimits", "discover_evidence", "legacy_tag"]


@dataclass(frozen=True)
class DiscoveryLimits:
    """Caps on what one image's evidence may make us read."""

    max_layers: int = 32  # layers read from one .sig/.att manifest
    max_referrers: int = 32  # Sigstore bundle referrers read
    max_annotation_bytes: int = 64 * 1024  # one certificate / chain / SET annotation


def legacy_tag(digest: str, suffix: str) -> str:
    """cosign's tag for evidence on ``digest``: ``sha256-<hex>.<suffix>``."""
    algo, _, hexpart = digest.partition(":")
    return f"{algo}-{hexpart}.{suffix}" if suffix else f"{algo}-{hexpart}"


async def discover_evidence(
    client: RegistryClient, image: ImageRef, limits: DiscoveryLimits | None = None
) -> EvidenceSet:
    """Everything stored for ``image`` (which must be pinned to a digest)."""
    if image.digest is None:
        raise ValueError("discover_evidence needs an image pinned to a digest")
    limits = limits or DiscoveryLimits()
    digest = image.digest
    sigs, atts, (bundles, problems) = await asyncio.gather(
        _legacy_layers(client, image, digest, "sig", limits),
        _legacy_layers(client, image, digest, "att", limits),
        _bundles(client, image, digest, limits),
    )
    return EvidenceSet(
        digest=digest,
        signatures=sigs,
        attestations=atts,
        bundles=bundles,
        problems=problems,
    )


async def _legacy_layers(
    client: RegistryClient, image: ImageRef, digest: str, suffix: str, limits: DiscoveryLimits
) -> tuple[CosignLayer, ...]:
    tag = legacy_tag(digest, suffix)
    manifest = await client.get_manifest(image, tag)
    if manifest is None:
        return ()
    if manifest.is_index:
        raise RegistryError(
            "invalid", f"{image.name}:{tag} is an image index, expected a cosign manifest"
        )
    layers = manifest.layers[: limits.max_layers]
    payloads = await asyncio.gather(*(client.get_blob(image, d) for d in layers))
    kind: str = "signature" if suffix == "sig" else "attestation"
    out: list[CosignLayer] = []
    for i, (desc, payload) in enumerate(zip(layers, payloads, strict=True)):
        out.append(_cosign_layer(kind, desc, payload, f"{image.name}:{tag} layer {i}", limits))
    return tuple(out)


def _cosign_layer(
    kind: str, desc: Descriptor, payload: bytes, source: str, limits: DiscoveryLimits
) -> CosignLayer:
    def ann(key: str) -> bytes | None:
        value = desc.annotations.get(key)
        if not value:
            return None
        raw = value.encode()
        if len(raw) > limits.max_annotation_bytes:
            raise RegistryError("too_large", f"{source}: annotation {key} is over the size cap")
        return raw

    return CosignLayer(
        kind="signature" if kind == "signature" else "attestation",
        payload=payload,
        signature_b64=desc.annotations.get(ANN_SIGNATURE) or None,
        certificate_pem=ann(ANN_CERTIFICATE),
        chain_pem=ann(ANN_CHAIN),
        rekor_bundle=ann(ANN_BUNDLE),
        rfc3161_timestamp=ann(ANN_RFC3161),
        source=source,
    )


async def _bundles(
    client: RegistryClient, image: ImageRef, digest: str, limits: DiscoveryLimits
) -> tuple[tuple[BundleEvidence, ...], tuple[str, ...]]:
    referrers = await client.get_referrers(image, digest)
    via = "referrers API"
    if referrers is None:
        index = await client.get_manifest(image, legacy_tag(digest, ""))
        referrers = list(index.manifests) if index is not None and index.is_index else []
        via = "referrers tag"
    wanted = [d for d in referrers if (d.artifact_type or "").startswith(SIGSTORE_BUNDLE_PREFIX)][
        : limits.max_referrers
    ]
    problems: list[str] = []
    if len(referrers) > limits.max_referrers:
        problems.append(f"{len(referrers)} referrers found; only {limits.max_referrers} read")
    manifests = await asyncio.gather(*(client.get_manifest(image, d.digest) for d in wanted))
    found: list[tuple[Manifest, Descriptor]] = []
    for desc, manifest in zip(wanted, manifests, strict=True):
        if manifest is None or not manifest.layers:
            problems.append(f"referrer {desc.digest} ({via}) has no readable bundle layer")
            continue
        if manifest.subject is not None and manifest.subject.digest != digest:
            problems.append(f"referrer {desc.digest} ({via}) is attached to another digest")
            continue
        found.append((manifest, manifest.layers[0]))
    blobs = await asyncio.gather(*(client.get_blob(image, layer) for _, layer in found))
    bundles = tuple(
        BundleEvidence(
            raw=blob,
            media_type=layer.media_type,
            source=f"{image.name}@{manifest.digest} ({via})",
        )
        for (manifest, layer), blob in zip(found, blobs, strict=True)
    )
    return bundles, tuple(problems)

"""Find every signature and attestation stored for one image digest, in every format.

Storage formats read (all UNVERIFIED; ``controller.verify`` decides what they prove):
- cosign's legacy tags ``sha256-<hex>.sig`` / ``sha256-<hex>.att`` in the image's repository,
  one layer per signature, evidence in layer annotations (cosign "Signature Specification").
- OCI 1.1 referrers (``GET /v2/<name>/referrers/<digest>``) whose artifactType is a Sigstore
  bundle media type; the bundle is the referrer manifest's first layer. Referrers of
  artifactType ``application/vnd.in-toto.link+json`` carry rebuilders' in-toto links the same
  way (reprogate's convention; rebuilderd publishes links, not OCI artifacts).
- The referrers tag schema (``sha256-<hex>`` holding an image index of referrer descriptors)
  for registries without the referrers API (OCI distribution spec, "Referrers Tag Schema").

Rules:
- A tag that does not exist means "no evidence of that kind", not an error.
- One bad item (a manifest or blob that is missing, too large, malformed or does not match
  its digest; an oversized annotation) is recorded in ``EvidenceSet.problems`` and skipped;
  the rest of the evidence is kept, so one poisoned referrer cannot hide a valid signature.
- Transport failures (RegistryError kinds ``unreachable``, ``timeout``, ``server``,
  ``unauthorized``) propagate: a registry we could not read is never "unsigned".
- Counts and sizes are capped, so a hostile registry cannot make us read without bound:
  ``.sig`` payloads at ``max_signature_bytes``, ``.att`` layers and bundles at
  ``max_blob_bytes``, and all blobs of one digest together at ``max_total_bytes`` (items past
  it are skipped with a problem; ``.sig`` layers are budgeted first, then bundles, then
  ``.att`` layers, so signatures are the last thing crowded out).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

from controller.evidence.model import (
    ANN_BUNDLE,
    ANN_CERTIFICATE,
    ANN_CHAIN,
    ANN_RFC3161,
    ANN_SIGNATURE,
    IN_TOTO_LINK_ARTIFACT_TYPE,
    SIGSTORE_BUNDLE_PREFIX,
    BundleEvidence,
    CosignLayer,
    EvidenceSet,
    LinkEvidence,
)
from controller.oci.client import RegistryClient
from controller.oci.errors import RegistryError, RegistryErrorKind
from controller.oci.manifest import Descriptor, Manifest
from controller.oci.reference import ImageRef

__all__ = ["FATAL_KINDS", "DiscoveryLimits", "discover_evidence", "legacy_tag"]

log = logging.getLogger(__name__)

# Failures that say nothing about one item but about reaching the registry at all.
FATAL_KINDS: frozenset[RegistryErrorKind] = frozenset(
    {"unreachable", "timeout", "server", "unauthorized"}
)

_T = TypeVar("_T")
_Kind = Literal["signature", "attestation"]


@dataclass(frozen=True)
class DiscoveryLimits:
    """Caps on what one image's evidence may make us read."""

    max_layers: int = 32  # layers read from one .sig/.att manifest
    max_referrers: int = 32  # Sigstore bundle referrers read
    max_annotation_bytes: int = 64 * 1024  # one certificate / chain / SET annotation
    max_signature_bytes: int = 256 * 1024  # one .sig layer (a simple-signing payload)
    max_blob_bytes: int | None = None  # one .att layer or bundle; None: the client's cap
    max_total_bytes: int = 32 * 1024 * 1024  # every blob read for one digest together


def legacy_tag(digest: str, suffix: str) -> str:
    """cosign's tag for evidence on ``digest``: ``sha256-<hex>.<suffix>``."""
    algo, _, hexpart = digest.partition(":")
    return f"{algo}-{hexpart}.{suffix}" if suffix else f"{algo}-{hexpart}"


@dataclass(frozen=True, slots=True)
class _Planned:
    """One blob we mean to read, with what it becomes."""

    descriptor: Descriptor
    cap: int
    source: str
    layer: CosignLayer | None  # cosign layer awaiting its payload; None for a referrer
    link: bool = False  # a referrer holding an in-toto link rather than a Sigstore bundle


class _Problems:
    """Per-item problems of one discovery; transport failures are re-raised."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, text: str) -> None:
        log.info("evidence problem: %s", text)
        self.items.append(text)

    async def guard(self, what: str, call: Awaitable[_T]) -> _T | None:
        """``await call``; None (and a recorded problem) when it failed for this item only."""
        try:
            return await call
        except RegistryError as exc:
            if exc.kind in FATAL_KINDS:
                raise
            self.add(f"{what}: skipped, {exc.kind}: {exc.message}")
            return None


async def discover_evidence(
    client: RegistryClient, image: ImageRef, limits: DiscoveryLimits | None = None
) -> EvidenceSet:
    """Everything stored for ``image`` (which must be pinned to a digest).

    Raises RegistryError only for transport failures (see ``FATAL_KINDS``); everything wrong
    with one item is in the result's ``problems``.
    """
    if image.digest is None:
        raise ValueError("discover_evidence needs an image pinned to a digest")
    limits = limits or DiscoveryLimits()
    digest = image.digest
    problems = _Problems()
    sig_layers, att_layers, bundle_layers = await asyncio.gather(
        _legacy_layers(client, image, digest, "sig", limits, problems),
        _legacy_layers(client, image, digest, "att", limits, problems),
        _bundle_layers(client, image, digest, limits, problems),
    )
    blob_cap = (
        client.settings.max_blob_bytes if limits.max_blob_bytes is None else limits.max_blob_bytes
    )
    candidates = (
        [_Planned(d, limits.max_signature_bytes, s, lay) for d, s, lay in sig_layers]
        + [_Planned(d, blob_cap, s, None, link) for d, s, link in bundle_layers]
        + [_Planned(d, blob_cap, s, lay) for d, s, lay in att_layers]
    )
    planned = _plan(candidates, limits.max_total_bytes, problems)
    blobs = await asyncio.gather(
        *(
            problems.guard(p.source, client.get_blob(image, p.descriptor, max_bytes=p.cap))
            for p in planned
        )
    )
    signatures: list[CosignLayer] = []
    attestations: list[CosignLayer] = []
    bundles: list[BundleEvidence] = []
    links: list[LinkEvidence] = []
    for item, blob in zip(planned, blobs, strict=True):
        if blob is None:
            continue
        if item.link:
            links.append(LinkEvidence(blob, item.source))
            continue
        if item.layer is None:
            bundles.append(BundleEvidence(blob, item.descriptor.media_type, item.source))
            continue
        layer = _with_payload(item.layer, blob)
        (signatures if layer.kind == "signature" else attestations).append(layer)
    return EvidenceSet(
        digest=digest,
        signatures=tuple(signatures),
        attestations=tuple(attestations),
        bundles=tuple(bundles),
        links=tuple(links),
        problems=tuple(problems.items),
    )


def _plan(candidates: list[_Planned], budget: int, problems: _Problems) -> list[_Planned]:
    """The blobs to read, in order, within each one's cap and the digest's total budget.

    Declared sizes are exact: the client refuses a blob whose length differs from its
    descriptor, so the budget bounds what is actually read.
    """
    out: list[_Planned] = []
    used = 0
    for item in candidates:
        size, cap = item.descriptor.size, item.cap
        if size > cap:
            problems.add(f"{item.source}: skipped, declares {size} bytes, over the {cap}-byte cap")
            continue
        if used + size > budget:
            problems.add(
                f"{item.source}: skipped, the evidence for this digest is over the "
                f"{budget}-byte budget"
            )
            continue
        used += size
        out.append(item)
    return out


async def _legacy_layers(
    client: RegistryClient,
    image: ImageRef,
    digest: str,
    suffix: str,
    limits: DiscoveryLimits,
    problems: _Problems,
) -> list[tuple[Descriptor, str, CosignLayer]]:
    """The layers of a cosign ``.sig``/``.att`` manifest, annotations read, payload pending."""
    tag = legacy_tag(digest, suffix)
    where = f"{image.name}:{tag}"
    manifest = await problems.guard(where, client.get_manifest(image, tag))
    if manifest is None:
        return []
    if manifest.is_index:
        problems.add(f"{where}: skipped, an image index where a cosign manifest was expected")
        return []
    if len(manifest.layers) > limits.max_layers:
        problems.add(
            f"{where}: {len(manifest.layers)} layers; only the first {limits.max_layers} read"
        )
    kind: _Kind = "signature" if suffix == "sig" else "attestation"
    out: list[tuple[Descriptor, str, CosignLayer]] = []
    for i, desc in enumerate(manifest.layers[: limits.max_layers]):
        source = f"{where} layer {i}"
        try:
            layer = _cosign_layer(kind, desc, source, limits)
        except _OversizedAnnotation as exc:
            problems.add(f"{source}: skipped, {exc}")
            continue
        out.append((desc, source, layer))
    return out


class _OversizedAnnotation(Exception):
    """A layer annotation over ``max_annotation_bytes``."""


def _cosign_layer(
    kind: _Kind, desc: Descriptor, source: str, limits: DiscoveryLimits
) -> CosignLayer:
    def ann(key: str) -> bytes | None:
        value = desc.annotations.get(key)
        if not value:
            return None
        raw = value.encode()
        if len(raw) > limits.max_annotation_bytes:
            raise _OversizedAnnotation(
                f"annotation {key} is {len(raw)} bytes, over the "
                f"{limits.max_annotation_bytes}-byte cap"
            )
        return raw

    return CosignLayer(
        kind=kind,
        payload=b"",
        signature_b64=desc.annotations.get(ANN_SIGNATURE) or None,
        certificate_pem=ann(ANN_CERTIFICATE),
        chain_pem=ann(ANN_CHAIN),
        rekor_bundle=ann(ANN_BUNDLE),
        rfc3161_timestamp=ann(ANN_RFC3161),
        source=source,
    )


def _with_payload(layer: CosignLayer, payload: bytes) -> CosignLayer:
    return replace(layer, payload=payload)


async def _bundle_layers(
    client: RegistryClient,
    image: ImageRef,
    digest: str,
    limits: DiscoveryLimits,
    problems: _Problems,
) -> list[tuple[Descriptor, str, bool]]:
    """The layer of every Sigstore bundle or in-toto link referrer, where it came from, and
    whether it is a link."""
    referrers = await problems.guard(
        f"{image.name} referrers of {digest}", client.get_referrers(image, digest)
    )
    via = "referrers API"
    if referrers is None:
        tag = legacy_tag(digest, "")
        index = await problems.guard(f"{image.name}:{tag}", client.get_manifest(image, tag))
        referrers = list(index.manifests) if index is not None and index.is_index else []
        via = "referrers tag"
    bundles = [
        d
        for d in referrers
        if (d.artifact_type or "").startswith(SIGSTORE_BUNDLE_PREFIX)
        or d.artifact_type == IN_TOTO_LINK_ARTIFACT_TYPE
    ]
    wanted = bundles[: limits.max_referrers]
    if len(bundles) > limits.max_referrers:
        problems.add(f"{len(bundles)} evidence referrers found; only {limits.max_referrers} read")

    async def referrer(desc: Descriptor) -> Manifest:
        manifest = await client.get_manifest(image, desc.digest)
        if manifest is None:
            raise RegistryError("not_found", "the registry does not have its manifest")
        return manifest

    manifests: list[Manifest | None] = await asyncio.gather(
        *(problems.guard(f"referrer {d.digest} ({via})", referrer(d)) for d in wanted)
    )
    out: list[tuple[Descriptor, str, bool]] = []
    for desc, manifest in zip(wanted, manifests, strict=True):
        if manifest is None:
            continue  # guard recorded why
        if not manifest.layers:
            problems.add(f"referrer {desc.digest} ({via}) has no layer")
            continue
        if manifest.subject is not None and manifest.subject.digest != digest:
            problems.add(f"referrer {desc.digest} ({via}) is attached to another digest")
            continue
        link = desc.artifact_type == IN_TOTO_LINK_ARTIFACT_TYPE
        out.append((manifest.layers[0], f"{image.name}@{manifest.digest} ({via})", link))
    return out

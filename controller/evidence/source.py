"""Where evidence comes from: a registry in production, files in offline policy tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from controller.evidence.discover import DiscoveryLimits, discover_evidence
from controller.evidence.model import EvidenceSet
from controller.oci.client import RegistryClient
from controller.oci.errors import RegistryError
from controller.oci.reference import ImageRef

__all__ = ["EvidenceSource", "OfflineEvidence", "RegistryEvidence"]


class EvidenceSource(Protocol):
    """Resolves tags and finds the (unverified) evidence stored for a digest."""

    async def resolve(self, image: ImageRef) -> str:
        """The digest ``image``'s tag points at."""
        ...

    async def discover(self, image: ImageRef) -> EvidenceSet:
        """Everything stored for the pinned ``image``."""
        ...


class RegistryEvidence:
    """Evidence read from OCI registries through one pooled client."""

    def __init__(self, client: RegistryClient, limits: DiscoveryLimits | None = None) -> None:
        self.client = client
        self.limits = limits

    async def resolve(self, image: ImageRef) -> str:
        """Tag -> digest via the registry."""
        return await self.client.resolve(image)

    async def discover(self, image: ImageRef) -> EvidenceSet:
        """cosign tags, referrers API and referrers tag of ``image``."""
        return await discover_evidence(self.client, image, self.limits)


class OfflineEvidence:
    """Evidence given up front (policy test cases): no registry is contacted."""

    def __init__(self, by_digest: Mapping[str, EvidenceSet]) -> None:
        self.by_digest = dict(by_digest)

    async def resolve(self, image: ImageRef) -> str:
        """Offline there is no tag resolution: test cases name digests."""
        raise RegistryError(
            "unsupported", f"{image} is not pinned to a digest; offline tests need @sha256:..."
        )

    async def discover(self, image: ImageRef) -> EvidenceSet:
        """The evidence the test case supplied (none when it supplied none)."""
        assert image.digest is not None
        return self.by_digest.get(image.digest, EvidenceSet(digest=image.digest))

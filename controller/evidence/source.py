"""Where evidence comes from: a registry in production, files in offline policy tests.

``credentials`` (a request's pull secrets) are used for that call only, over the process's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from controller.evidence.discover import DiscoveryLimits, discover_evidence
from controller.evidence.model import EvidenceSet
from controller.oci.client import RegistryClient
from controller.oci.credentials import CredentialStore
from controller.oci.errors import RegistryError
from controller.oci.reference import ImageRef

__all__ = ["EvidenceSource", "OfflineEvidence", "RegistryEvidence"]


class EvidenceSource(Protocol):
    """Resolves tags and finds the (unverified) evidence stored for a digest."""

    async def resolve(self, image: ImageRef, credentials: CredentialStore | None = None) -> str:
        """The digest ``image``'s tag points at."""
        ...

    async def discover(
        self, image: ImageRef, credentials: CredentialStore | None = None
    ) -> EvidenceSet:
        """Everything stored for the pinned ``image``."""
        ...


class RegistryEvidence:
    """Evidence read from OCI registries through one pooled client."""

    def __init__(self, client: RegistryClient, limits: DiscoveryLimits | None = None) -> None:
        self.client = client
        self.limits = limits

    async def resolve(self, image: ImageRef, credentials: CredentialStore | None = None) -> str:
        """Tag -> digest via the registry."""
        return await self._client(credentials).resolve(image)

    async def discover(
        self, image: ImageRef, credentials: CredentialStore | None = None
    ) -> EvidenceSet:
        """cosign tags, referrers API and referrers tag of ``image``."""
        return await discover_evidence(self._client(credentials), image, self.limits)

    def _client(self, credentials: CredentialStore | None) -> RegistryClient:
        # A view sharing the pooled session; tokens stay cached per credential fingerprint.
        return self.client.with_credentials(credentials) if credentials else self.client


class OfflineEvidence:
    """Evidence given up front (policy test cases): no registry is contacted."""

    def __init__(self, by_digest: Mapping[str, EvidenceSet]) -> None:
        self.by_digest = dict(by_digest)

    async def resolve(self, image: ImageRef, credentials: CredentialStore | None = None) -> str:
        """Offline there is no tag resolution: test cases name digests."""
        raise RegistryError(
            "unsupported", f"{image} is not pinned to a digest; offline tests need @sha256:..."
        )

    async def discover(
        self, image: ImageRef, credentials: CredentialStore | None = None
    ) -> EvidenceSet:
        """The evidence the test case supplied (none when it supplied none)."""
        assert image.digest is not None
        return self.by_digest.get(image.digest, EvidenceSet(digest=image.digest))

"""Async OCI distribution client. (Interface fixed; the implementation is being written.)"""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.oci.manifest import Descriptor, Manifest
from controller.oci.reference import ImageRef

__all__ = ["RegistryClient", "RegistrySettings"]


@dataclass(frozen=True)
class RegistrySettings:
    """How to reach registries; built once from config/flags."""

    ca_file: str | None = None  # extra CA bundle (PEM) trusted in addition to the system's
    insecure_registries: frozenset[str] = frozenset()  # host[:port] reached over plain HTTP
    docker_config: str | None = None  # path of a docker config.json with credentials
    request_timeout: float = 5.0  # seconds for one HTTP request
    max_manifest_bytes: int = 4 * 1024 * 1024
    max_blob_bytes: int = 16 * 1024 * 1024
    mirrors: dict[str, str] = field(default_factory=dict)  # registry -> mirror host


class RegistryClient:
    """One pooled aiohttp session for every registry; verifies every digest it receives."""

    def __init__(self, settings: RegistrySettings) -> None:
        self.settings = settings

    async def close(self) -> None:
        """Close the pooled session."""
        raise NotImplementedError

    async def resolve(self, ref: ImageRef) -> str:
        """Tag -> digest (HEAD, GET fallback). A pinned ref returns its digest unchanged."""
        raise NotImplementedError

    async def get_manifest(self, ref: ImageRef, reference: str) -> Manifest | None:
        """Fetch a manifest by tag or digest in ``ref``'s repository; None when 404."""
        raise NotImplementedError

    async def get_blob(self, ref: ImageRef, descriptor: Descriptor, max_bytes: int | None = None) -> bytes:
        """Fetch a blob, check size and digest against ``descriptor``."""
        raise NotImplementedError

    async def get_referrers(
        self, ref: ImageRef, digest: str, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        """OCI 1.1 referrers of ``digest``; None when the registry lacks the API."""
        raise NotImplementedError

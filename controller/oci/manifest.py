"""OCI / Docker manifest and descriptor value objects, parsed once from registry bytes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from controller.oci.errors import RegistryError
from controller.oci.reference import is_digest

__all__ = [
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "INDEX_MEDIA_TYPES",
    "MANIFEST_MEDIA_TYPES",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Descriptor",
    "Manifest",
    "parse_manifest",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_MEDIA_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_MEDIA_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
ACCEPT_ALL = ", ".join((*MANIFEST_MEDIA_TYPES, *INDEX_MEDIA_TYPES))

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI content descriptor (manifest entry, layer, config, referrer)."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    artifact_type: str | None = None
    platform: str | None = None  # "os/arch[/variant]" for index entries

    @classmethod
    def from_json(cls, obj: Any, where: str) -> Descriptor:
        """Parse one descriptor object; ``where`` names it in errors."""
        if not isinstance(obj, dict):
            raise RegistryError("invalid", f"{where}: descriptor is not an object")
        digest = obj.get("digest")
        size = obj.get("size")
        media_type = obj.get("mediaType", "")
        if not isinstance(digest, str) or not is_digest(digest):
            raise RegistryError("invalid", f"{where}: descriptor digest {digest!r} is malformed")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise RegistryError("invalid", f"{where}: descriptor size {size!r} is not a count")
        if not isinstance(media_type, str):
            raise RegistryError("invalid", f"{where}: descriptor mediaType is not a string")
        annotations = obj.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise RegistryError("invalid", f"{where}: annotations must map strings to strings")
        artifact_type = obj.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise RegistryError("invalid", f"{where}: artifactType is not a string")
        platform = None
        plat = obj.get("platform")
        if isinstance(plat, dict):
            platform = "/".join(
                str(plat[k]) for k in ("os", "architecture", "variant") if plat.get(k)
            )
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            annotations=MappingProxyType(dict(annotations)),
            artifact_type=artifact_type,
            platform=platform,
        )


@dataclass(frozen=True, slots=True)
class Manifest:
    """A verified manifest: ``digest`` is the sha256 of ``raw``, checked by the client."""

    digest: str
    media_type: str
    raw: bytes
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    manifests: tuple[Descriptor, ...]  # entries of an image index
    annotations: Mapping[str, str]
    artifact_type: str | None
    subject: Descriptor | None

    @property
    def is_index(self) -> bool:
        """True for an OCI image index or Docker manifest list."""
        return self.media_type in INDEX_MEDIA_TYPES


def parse_manifest(raw: bytes, digest: str, content_type: str | None) -> Manifest:
    """Parse manifest bytes whose digest the caller has already checked."""
    try:
        # decode explicitly: json.loads(bytes) guesses UTF-16/32 and reports garbage confusingly
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise RegistryError("invalid", f"manifest {digest} is not UTF-8 JSON") from None
    except RecursionError:
        raise RegistryError("invalid", f"manifest {digest} is nested too deeply") from None
    except ValueError as exc:
        raise RegistryError("invalid", f"manifest {digest} is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise RegistryError("invalid", f"manifest {digest} is not a JSON object")
    media_type = obj.get("mediaType") or (content_type or "").split(";")[0].strip()
    if not isinstance(media_type, str):
        raise RegistryError("invalid", f"manifest {digest}: mediaType is not a string")
    if not media_type:
        media_type = OCI_INDEX if "manifests" in obj else OCI_MANIFEST
    where = f"manifest {digest}"
    config = obj.get("config")
    layers = obj.get("layers") or []
    entries = obj.get("manifests") or []
    if not isinstance(layers, list) or not isinstance(entries, list):
        raise RegistryError("invalid", f"{where}: layers/manifests must be lists")
    annotations = obj.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise RegistryError("invalid", f"{where}: annotations must be an object")
    subject = obj.get("subject")
    artifact_type = obj.get("artifactType")
    return Manifest(
        digest=digest,
        media_type=media_type,
        raw=raw,
        config=Descriptor.from_json(config, f"{where} config") if config is not None else None,
        layers=tuple(Descriptor.from_json(d, f"{where} layer {i}") for i, d in enumerate(layers)),
        manifests=tuple(
            Descriptor.from_json(d, f"{where} entry {i}") for i, d in enumerate(entries)
        ),
        annotations=MappingProxyType({str(k): str(v) for k, v in annotations.items()}),
        artifact_type=artifact_type if isinstance(artifact_type, str) else None,
        subject=Descriptor.from_json(subject, f"{where} subject") if subject is not None else None,
    )

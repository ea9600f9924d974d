"""Container image references, parsed and normalised the way Kubernetes and Docker read them.

Rules (distribution/reference grammar, docker normalisation):
- The first path component is a registry host only if it contains ``.`` or ``:`` or is
  ``localhost``; otherwise the image lives on Docker Hub (``docker.io``).
- ``index.docker.io`` and ``registry-1.docker.io`` are spellings of ``docker.io``.
- Single-component Docker Hub names live under ``library/``.
- No tag and no digest means ``:latest``; a digest, when present, is what gets pulled.
- Registry hosts are lower-cased and a ``:443`` port dropped: they name the same endpoint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

__all__ = ["DOCKER_HUB", "ImageRef", "ReferenceError", "is_digest", "parse_image_ref"]

DOCKER_HUB = "docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_MAX_REF_LEN = 4096

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$")
_HOST = re.compile(
    r"^(?:\[[0-9a-fA-F:.]+\]|(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*)(?::[0-9]{1,5})?$"
)
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$")


class ReferenceError(ValueError):
    """An image reference that Kubernetes would not be able to pull."""

    def __init__(self, ref: str, why: str) -> None:
        super().__init__(f"invalid image reference {ref!r}: {why}")
        self.ref = ref
        self.why = why


def is_digest(value: str) -> bool:
    """True when ``value`` is a well-formed ``sha256:<64 hex>`` (or sha512) digest."""
    return bool(_DIGEST.match(value))


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A normalised image reference. ``tag`` defaults to ``latest`` when no digest was given."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``registry/repository``, the string policies' image globs match against."""
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str) -> ImageRef:
        """The same image pinned to ``digest`` (the tag is kept for display)."""
        if not is_digest(digest):
            raise ReferenceError(digest, "not a sha256/sha512 digest")
        return replace(self, digest=digest)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_image_ref(text: str) -> ImageRef:
    """Parse ``text`` as Kubernetes would read a container's ``image`` field.

    Raises ReferenceError with the reason when the reference is malformed.
    """
    if not isinstance(text, str) or not text:
        raise ReferenceError(str(text), "empty reference")
    if len(text) > _MAX_REF_LEN:
        raise ReferenceError(text[:64] + "...", f"longer than {_MAX_REF_LEN} characters")
    if text != text.strip() or any(c.isspace() for c in text):
        raise ReferenceError(text, "contains whitespace")

    rest = text
    digest: str | None = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not is_digest(digest):
            raise ReferenceError(text, f"digest {digest!r} is not sha256:<64 lowercase hex>")
    tag: str | None = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.match(tag):
            raise ReferenceError(text, f"tag {tag!r} is not a valid tag")
    if not rest:
        raise ReferenceError(text, "no repository name")

    parts = rest.split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost"):
        registry = first
        if not _HOST.match(registry):
            raise ReferenceError(text, f"registry host {registry!r} is malformed")
        path = parts[1:]
    else:
        registry = DOCKER_HUB
        path = parts
    # Host names are case-insensitive and :443 is the HTTPS default: normalise both, or a
    # policy on ghcr.io/acme/** would not see GHCR.IO/acme/app or ghcr.io:443/acme/app.
    registry = registry.lower().removesuffix(":443")
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
        if len(path) == 1:
            path = ["library", *path]
    for component in path:
        if not _COMPONENT.match(component):
            raise ReferenceError(
                text,
                f"path component {component!r} must be lowercase letters, digits and separators",
            )
    repository = "/".join(path)
    if len(registry) + 1 + len(repository) > 255:
        raise ReferenceError(text, "repository name longer than 255 characters")
    if tag is None and digest is None:
        tag = "latest"
    return ImageRef(registry=registry, repository=repository, tag=tag, digest=digest)

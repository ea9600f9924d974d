"""Glob matching of images, namespaces and identities, and choosing the policies for an image.

Glob language (one for every glob field in a policy):
- ``*`` matches any run of characters inside one path segment (never ``/``);
- ``**`` matches any run of characters across segments (including ``/``); ``a/**/b`` also
  matches ``a/b``; ``***`` is refused;
- ``?`` matches one character other than ``/``;
- ``[abc]``, ``[a-z]`` and ``[!abc]`` are character classes (never matching ``/``);
- everything else is literal; matching is case-sensitive and covers the whole string.

Image globs match the normalised name ``registry/repository`` (``ImageRef.name``), e.g.
``docker.io/library/nginx``. Rules:
- a glob whose first segment is a plain name (no ``.``, ``:``, wildcard, not ``localhost``) is
  normalised as Docker does: ``nginx`` -> ``docker.io/library/nginx``, ``acme/*`` ->
  ``docker.io/acme/*``; ``index.docker.io`` and ``registry-1.docker.io`` become ``docker.io``;
- a glob containing ``@`` matches ``name@digest`` (never an image without a digest);
- a glob with ``:`` after its last ``/`` matches ``name:tag`` (an untagged image with no digest
  has tag ``latest``; an image pinned only by digest has no tag and never matches).
"""

from __future__ import annotations

import re
from functools import lru_cache

from controller.oci.reference import DOCKER_HUB, ImageRef
from controller.policy.model import ImagePolicy, Match, PolicyException, PolicySet

__all__ = [
    "GlobError",
    "exception_matches",
    "glob_matches",
    "glob_to_regex",
    "image_matches",
    "namespace_matches",
    "normalise_image_glob",
    "policies_for",
]

_MAX_GLOB_LEN = 1024
_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io")
_WILDCARDS = frozenset("*?[")


class GlobError(ValueError):
    """A glob that cannot be compiled; the message says what is wrong and where."""


@lru_cache(maxsize=4096)
def glob_to_regex(glob: str) -> re.Pattern[str]:
    """Compile ``glob`` (language in the module docstring) into a fully anchored pattern.

    Raises GlobError for empty globs, ``***``, unterminated or empty character classes and
    control characters.
    """
    if not glob:
        raise GlobError("a glob must not be empty")
    if len(glob) > _MAX_GLOB_LEN:
        raise GlobError(f"a glob must be at most {_MAX_GLOB_LEN} characters")
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if ord(c) < 0x20 or c == "\x7f":
            raise GlobError(f"control character at position {i + 1}")
        if c == "*":
            run = 1
            while i + run < n and glob[i + run] == "*":
                run += 1
            if run > 2:
                raise GlobError(f"'{'*' * run}' at position {i + 1}: use '*' or '**'")
            if run == 1:
                out.append("[^/]*")
            elif out and out[-1] == "/" and glob[i + 2 : i + 3] == "/":
                # "a/**/b" also matches "a/b": zero or more whole segments
                out[-1] = "/(?:.*/)?"
                run += 1
            else:
                out.append(".*")
            i += run
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = glob.find("]", i + 2 if glob[i + 1 : i + 2] in ("!", "^") else i + 1)
            body = glob[i + 1 : end] if end != -1 else ""
            if end == -1:
                raise GlobError(f"unterminated character class at position {i + 1}")
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            if not body:
                raise GlobError(f"empty character class at position {i + 1}")
            if "/" in body:
                raise GlobError(f"'/' cannot appear in a character class (position {i + 1})")
            escaped = "".join("\\" + ch if ch in "\\^[]" else ch for ch in body)
            try:
                re.compile(f"[{escaped}]")
            except re.error as exc:
                raise GlobError(f"bad character class at position {i + 1}: {exc}") from None
            out.append(f"[^/{escaped}]" if negate else f"[{escaped}]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def glob_matches(glob: str, text: str) -> bool:
    """True when ``glob`` matches the whole of ``text``."""
    return glob_to_regex(glob).fullmatch(text) is not None


@lru_cache(maxsize=4096)
def normalise_image_glob(glob: str) -> str:
    """The glob with its registry normalised as Docker normalises references (see module doc)."""
    first, sep, rest = glob.partition("/")
    if any(c in _WILDCARDS for c in first):
        return glob
    if not sep:
        # a single plain component: an official Docker Hub image, maybe with tag/digest
        return f"{DOCKER_HUB}/library/{glob}"
    if first in _HUB_ALIASES:
        first = DOCKER_HUB
    elif "." not in first and ":" not in first and first != "localhost":
        return f"{DOCKER_HUB}/{glob}"
    if first == DOCKER_HUB and "/" not in rest and not any(c in _WILDCARDS for c in rest):
        return f"{DOCKER_HUB}/library/{rest}"
    return f"{first}/{rest}"


def _image_subject(glob: str, image: ImageRef, *, narrowing: bool, pinned: bool) -> str | None:
    """What an image glob is compared with: name, name:tag or name@digest (None: no match).

    ``narrowing`` globs (excludeImages, exceptions) take something away from a policy: a tag
    glob never matches a reference pinned to a digest, because kubelet pulls the digest and
    ignores the tag (``app:debug@sha256:...`` must not escape through an exclusion of
    ``app:debug``). ``pinned``: the reference was written with a digest (a tag reference
    resolved to ``image.digest`` keeps its tag).
    """
    if "@" in glob:
        return f"{image.name}@{image.digest}" if image.digest else None
    if ":" in glob[glob.rfind("/") + 1 :]:
        if narrowing and pinned:
            return None
        return f"{image.name}:{image.tag}" if image.tag else None
    return image.name


def _any_image_glob(
    globs: tuple[str, ...], image: ImageRef, *, narrowing: bool = False, pinned: bool | None = None
) -> bool:
    if pinned is None:
        pinned = image.digest is not None
    for g in globs:
        normalised = normalise_image_glob(g)
        subject = _image_subject(normalised, image, narrowing=narrowing, pinned=pinned)
        if subject is not None and glob_matches(normalised, subject):
            return True
    return False


def namespace_matches(globs: tuple[str, ...], namespace: str) -> bool:
    """Empty ``globs`` match every namespace; otherwise any glob must match."""
    return not globs or any(glob_matches(g, namespace) for g in globs)


def image_matches(match: Match, image: ImageRef, namespace: str) -> bool:
    """True when ``match`` selects ``image`` in ``namespace``.

    The image must match one of ``images``, none of ``excludeImages``, and the namespace one of
    ``namespaces`` (empty = all).
    """
    return (
        _any_image_glob(match.images, image)
        and not _any_image_glob(match.exclude_images, image, narrowing=True)
        and namespace_matches(match.namespaces, namespace)
    )


def policies_for(policy_set: PolicySet, image: ImageRef, namespace: str) -> list[ImagePolicy]:
    """The policies that apply to ``image`` in ``namespace``, in load order."""
    return [p for p in policy_set.policies if image_matches(p.match, image, namespace)]


def exception_matches(
    exc: PolicyException, image: ImageRef, namespace: str, *, pinned: bool | None = None
) -> bool:
    """True when ``exc`` covers ``image`` in ``namespace``, ignoring its expiry.

    ``images`` and ``namespaces`` each match everything when empty (the loader refuses an
    exception with both empty). ``pinned``: whether the reference as written carried a digest
    (default: whether ``image`` has one). A tag reference resolved to ``image.digest`` is
    matched by its tag and by that digest; a reference written with a digest never by a tag.
    """
    if exc.images and not _any_image_glob(exc.images, image, narrowing=True, pinned=pinned):
        return False
    return namespace_matches(exc.namespaces, namespace)

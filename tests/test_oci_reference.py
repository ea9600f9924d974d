"""Image reference parsing: every form the module docstring names, and malformed input."""

from __future__ import annotations

import pytest

from controller.oci.reference import (
    DOCKER_HUB,
    ImageRef,
    ReferenceError,
    is_digest,
    parse_image_ref,
)

D = "sha256:" + "ab" * 32
D512 = "sha512:" + "cd" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        # No registry host: Docker Hub, single components under library/.
        ("nginx", DOCKER_HUB, "library/nginx", "latest", None),
        ("nginx:1.25-alpine", DOCKER_HUB, "library/nginx", "1.25-alpine", None),
        ("acme/app", DOCKER_HUB, "acme/app", "latest", None),
        ("acme/team/app:v1", DOCKER_HUB, "acme/team/app", "v1", None),
        # Docker Hub spellings all normalise to docker.io.
        ("docker.io/nginx", DOCKER_HUB, "library/nginx", "latest", None),
        ("index.docker.io/library/nginx:1", DOCKER_HUB, "library/nginx", "1", None),
        ("registry-1.docker.io/acme/app", DOCKER_HUB, "acme/app", "latest", None),
        ("INDEX.DOCKER.IO/busybox", DOCKER_HUB, "library/busybox", "latest", None),
        # First component is a host when it has '.' or ':' or is localhost.
        ("localhost/app", "localhost", "app", "latest", None),
        ("localhost:5000/app:dev", "localhost:5000", "app", "dev", None),
        ("registry.example.com/a/b/c:tag", "registry.example.com", "a/b/c", "tag", None),
        ("127.0.0.1:5000/app", "127.0.0.1:5000", "app", "latest", None),
        ("[::1]:5000/app", "[::1]:5000", "app", "latest", None),
        ("ghcr.io/acme/app_x__y.z-w", "ghcr.io", "acme/app_x__y.z-w", "latest", None),
        # Single-component names that look like hosts but have no path stay on Docker Hub.
        ("localhost", DOCKER_HUB, "library/localhost", "latest", None),
        ("localhost:5000", DOCKER_HUB, "library/localhost", "5000", None),
        # Digests: pinned; a tag given alongside is kept for display.
        (f"nginx@{D}", DOCKER_HUB, "library/nginx", None, D),
        (f"ghcr.io/acme/app:v1@{D}", "ghcr.io", "acme/app", "v1", D),
        (f"ghcr.io/acme/app@{D512}", "ghcr.io", "acme/app", None, D512),
        (f"example.com:443/app@{D}", "example.com", "app", None, D),
    ],
)
def test_parses_and_normalises(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_image_ref(text)
    assert ref == ImageRef(registry=registry, repository=repository, tag=tag, digest=digest)


def test_reference_prefers_digest_and_str_round_trips() -> None:
    pinned = parse_image_ref(f"ghcr.io/acme/app:v1@{D}")
    assert pinned.reference == D
    assert pinned.name == "ghcr.io/acme/app"
    assert str(pinned) == f"ghcr.io/acme/app:v1@{D}"
    assert parse_image_ref(str(pinned)) == pinned
    tagged = parse_image_ref("nginx")
    assert tagged.reference == "latest"
    assert str(tagged) == "docker.io/library/nginx:latest"


def test_with_digest() -> None:
    ref = parse_image_ref("ghcr.io/acme/app:v1")
    pinned = ref.with_digest(D)
    assert (pinned.tag, pinned.digest) == ("v1", D)
    assert pinned.name == ref.name
    with pytest.raises(ReferenceError):
        ref.with_digest("sha256:short")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        (" nginx", "whitespace"),
        ("nginx latest", "whitespace"),
        ("nginx\n", "whitespace"),
        ("Nginx", "lowercase"),
        ("acme/App", "lowercase"),
        ("nginx:", "tag"),
        ("nginx:bad!tag", "tag"),
        ("nginx:-lead", "tag"),
        ("nginx:" + "t" * 129, "tag"),
        ("nginx@sha256:abc", "digest"),
        ("nginx@md5:" + "a" * 32, "digest"),
        ("nginx@sha256:" + "AB" * 32, "digest"),
        (":tag", "repository"),
        ("a//b", "component"),
        ("foo..bar", "component"),
        ("-foo", "component"),
        ("foo-", "component"),
        ("registry.example.com/", "component"),
        ("bad_host.example.com:port/app", "registry host"),
        ("-bad.example.com/app", "registry host"),
        ("x" * 5000, "longer than"),
        ("registry.example.com/" + "a" * 250, "255"),
    ],
)
def test_rejects_malformed(text: str, why: str) -> None:
    with pytest.raises(ReferenceError) as info:
        parse_image_ref(text)
    assert why in str(info.value)


def test_rejects_non_string() -> None:
    with pytest.raises(ReferenceError):
        parse_image_ref(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (D, True),
        (D512, True),
        ("sha256:" + "ab" * 31, False),
        ("sha256:" + "AB" * 32, False),
        ("sha384:" + "ab" * 48, False),
        ("ab" * 32, False),
        ("", False),
    ],
)
def test_is_digest(value: str, ok: bool) -> None:
    assert is_digest(value) is ok


@pytest.mark.parametrize(
    "text, name",
    [
        ("GHCR.IO/acme/app:1.0", "ghcr.io/acme/app"),
        ("Ghcr.io/acme/app", "ghcr.io/acme/app"),
        ("ghcr.io:443/acme/app", "ghcr.io/acme/app"),
        ("LOCALHOST:5000/a/b", "localhost:5000/a/b"),
        ("Index.Docker.IO/nginx", "docker.io/library/nginx"),
    ],
)
def test_registry_host_case_and_default_port_are_normalised(text: str, name: str) -> None:
    """A policy on ghcr.io/acme/** must see every spelling of that registry."""
    assert parse_image_ref(text).name == name

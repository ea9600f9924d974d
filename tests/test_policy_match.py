"""Tests for controller.policy.match: the glob language, image selection and exceptions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controller.oci.reference import parse_image_ref
from controller.policy.loader import load_policy_documents
from controller.policy.match import (
    GlobError,
    exception_matches,
    glob_matches,
    glob_to_regex,
    image_matches,
    normalise_image_glob,
    policies_for,
)
from controller.policy.model import Match, PolicyException


@pytest.mark.parametrize(
    ("glob", "text", "expected"),
    [
        ("registry.example.com/acme/*", "registry.example.com/acme/app", True),
        ("registry.example.com/acme/*", "registry.example.com/acme/team/app", False),
        ("registry.example.com/acme/**", "registry.example.com/acme/team/app", True),
        ("registry.example.com/acme/**", "registry.example.com/acmex/app", False),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/xb", False),
        ("v?", "v1", True),
        ("v?", "v10", False),
        ("?", "/", False),
        ("[a-c]x", "bx", True),
        ("[a-c]x", "dx", False),
        ("[!a-c]x", "dx", True),
        ("[!a-c]x", "/x", False),
        ("a.b", "aXb", False),
        ("refs/tags/v*", "refs/tags/v1.2.3", True),
        ("refs/tags/v*", "refs/tags/v1/evil", False),
        ("prod-*", "prod-eu", True),
        ("prod-*", "staging", False),
        ("**", "anything/at/all", True),
        ("a+b", "aab", False),
    ],
)
def test_glob_semantics(glob: str, text: str, expected: bool) -> None:
    assert glob_matches(glob, text) is expected


@pytest.mark.parametrize("glob", ["", "***", "[abc", "[]", "[a/b]", "a\x00b", "x" * 2000])
def test_invalid_globs_are_refused(glob: str) -> None:
    with pytest.raises(GlobError):
        glob_to_regex(glob)


@pytest.mark.parametrize(
    ("glob", "normalised"),
    [
        ("nginx", "docker.io/library/nginx"),
        ("nginx:latest", "docker.io/library/nginx:latest"),
        ("acme/*", "docker.io/acme/*"),
        ("index.docker.io/nginx", "docker.io/library/nginx"),
        ("docker.io/acme/app", "docker.io/acme/app"),
        ("ghcr.io/acme/**", "ghcr.io/acme/**"),
        ("localhost:5000/app", "localhost:5000/app"),
        ("**", "**"),
        ("**:latest", "**:latest"),
    ],
)
def test_image_glob_normalisation(glob: str, normalised: str) -> None:
    assert normalise_image_glob(glob) == normalised


def _match(
    images: tuple[str, ...] = ("**",), exclude: tuple[str, ...] = (), ns: tuple[str, ...] = ()
) -> Match:
    return Match(images=images, exclude_images=exclude, namespaces=ns)


DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("images", "ref", "expected"),
    [
        (("nginx",), "nginx:1.25", True),
        (("nginx",), "docker.io/library/nginx", True),
        (("docker.io/library/*",), "redis", True),
        (("ghcr.io/acme/*",), "ghcr.io/acme/app:v1", True),
        (("ghcr.io/acme/*",), "ghcr.io/other/app:v1", False),
        (("**:latest",), "nginx", True),  # no tag means :latest
        (("**:latest",), "nginx:1.25", False),
        (("**:latest",), f"nginx@{DIGEST}", False),  # digest-only refs have no tag
        (("ghcr.io/acme/app:v*",), "ghcr.io/acme/app:v2", True),
        ((f"ghcr.io/acme/app@{DIGEST}",), f"ghcr.io/acme/app@{DIGEST}", True),
        ((f"ghcr.io/acme/app@{DIGEST}",), "ghcr.io/acme/app:v1", False),
        (("localhost:5000/**",), "localhost:5000/team/app", True),
    ],
)
def test_image_matches(images: tuple[str, ...], ref: str, expected: bool) -> None:
    assert image_matches(_match(images), parse_image_ref(ref), "default") is expected


def test_exclude_and_namespaces() -> None:
    m = _match(("ghcr.io/acme/**",), ("ghcr.io/acme/experimental/**",), ("prod-*",))
    assert image_matches(m, parse_image_ref("ghcr.io/acme/app"), "prod-eu")
    assert not image_matches(m, parse_image_ref("ghcr.io/acme/app"), "dev")
    assert not image_matches(m, parse_image_ref("ghcr.io/acme/experimental/x"), "prod-eu")


def test_policies_for_keeps_load_order() -> None:
    text = "---\n".join(
        f"apiVersion: reprogate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {{name: {n}}}\n"
        f"spec:\n  match: {{images: ['{g}']}}\n"
        for n, g in [("all", "**"), ("acme", "ghcr.io/acme/*"), ("other", "quay.io/**")]
    )
    ps = load_policy_documents(text)
    names = [p.name for p in policies_for(ps, parse_image_ref("ghcr.io/acme/app:v1"), "ns")]
    assert names == ["all", "acme"]


def test_exceptions() -> None:
    expires = datetime(2026, 12, 31, tzinfo=UTC)
    exc = PolicyException(("ghcr.io/acme/legacy",), ("billing",), "migration", expires)
    legacy = parse_image_ref("ghcr.io/acme/legacy:1")
    assert exception_matches(exc, legacy, "billing")
    assert not exception_matches(exc, legacy, "prod")
    assert not exception_matches(exc, parse_image_ref("ghcr.io/acme/app"), "billing")
    ns_only = PolicyException((), ("sandbox",), "anything goes in sandbox", None)
    assert exception_matches(ns_only, legacy, "sandbox")


def test_tag_globs_never_narrow_a_digest_pinned_reference() -> None:
    """kubelet pulls the digest and ignores the tag: ``app:debug@sha256:...`` must not escape
    a policy through ``excludeImages: [app:debug]`` or an exception for ``app:debug``."""
    digest = "sha256:" + "c" * 64
    pinned = parse_image_ref(f"reg.example/app:debug@{digest}")
    tagged = parse_image_ref("reg.example/app:debug")
    match = Match(images=("reg.example/**",), exclude_images=("reg.example/app:debug",))
    assert image_matches(match, pinned, "ns")
    assert not image_matches(match, tagged, "ns")
    exc = PolicyException(("reg.example/app:debug",), (), "debug builds", None)
    assert not exception_matches(exc, pinned, "ns")
    assert exception_matches(exc, tagged, "ns")
    # a digest glob still narrows a pinned reference, and a tag glob still selects it
    assert exception_matches(
        PolicyException((f"reg.example/app@{digest}",), (), "r", None), pinned, "ns"
    )
    assert image_matches(Match(images=("reg.example/app:debug",)), pinned, "ns")

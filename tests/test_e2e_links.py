"""Rebuilders' in-toto links found in the registry, end to end.

A rebuilder attaches its in-toto v0.9 link (the rebuilderd format) to the image as an OCI
referrer of artifactType ``application/vnd.in-toto.link+json``. Debian's docker-registry has no
referrers API, so the referrer is listed under the referrers tag schema (``sha256-<hex>``
index), which is what clients do for such registries; the registry itself is real.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from controller.evidence.model import IN_TOTO_LINK_ARTIFACT_TYPE
from controller.oci.manifest import OCI_INDEX, OCI_MANIFEST, Descriptor
from tests.support.cosign_sign import public_pem
from tests.support.policy_fixtures import _link
from tests.support.provenance_builders import (
    key_builder,
    push_attestations,
    slsa_v1,
    write_documents,
)
from tests.support.referrers_registry import (
    EMPTY_CONFIG,
    OCI_EMPTY,
    referrer_manifest,
    referrers_index,
)
from tests.support.registry import RunningRegistry, push_blob, push_manifest, push_random_image
from tests.test_e2e_provenance import checks_of, image_policy, run_check


def attach_link(reg: RunningRegistry, repo: str, digest: str, link: bytes) -> None:
    """Attach ``link`` to ``digest`` as a referrer listed in the referrers tag index."""
    import hashlib

    push_blob(reg, repo, EMPTY_CONFIG, OCI_EMPTY)
    layer = push_blob(reg, repo, link, IN_TOTO_LINK_ARTIFACT_TYPE)
    subject = Descriptor(OCI_MANIFEST, digest, 0)
    raw = referrer_manifest(subject, layer, IN_TOTO_LINK_ARTIFACT_TYPE)
    ref_digest = push_manifest(
        reg, repo, "sha256:" + hashlib.sha256(raw).hexdigest(), raw, OCI_MANIFEST
    )
    entry = Descriptor(OCI_MANIFEST, ref_digest, len(raw), artifact_type=IN_TOTO_LINK_ARTIFACT_TYPE)
    push_manifest(reg, repo, digest.replace(":", "-"), referrers_index([entry]), OCI_INDEX)


def test_a_rebuild_link_in_the_registry_counts_as_an_independent_build(
    registry: RunningRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = "links-e2e/app"
    builder = key_builder("ci-key", "https://ci.acme.test/build@v1", 3)
    rebuilder = ec.generate_private_key(ec.SECP256R1())
    stranger = ec.generate_private_key(ec.SECP256R1())
    images = {}
    for case in ("rebuilt", "provenance-only", "other-bytes", "unlisted-key"):
        digest = push_random_image(registry, repo, case)
        push_attestations(
            registry,
            repo,
            digest,
            [builder.attest(slsa_v1(builder.builder_id, [digest], name=repo))],
        )
        images[case] = (digest, registry.ref(repo, case))
    attach_link(registry, repo, images["rebuilt"][0], _link(rebuilder, images["rebuilt"][0]))
    attach_link(registry, repo, images["other-bytes"][0], _link(rebuilder, "sha256:" + "e" * 64))
    attach_link(
        registry, repo, images["unlisted-key"][0], _link(stranger, images["unlisted-key"][0])
    )
    policies = write_documents(
        tmp_path / "policies" / "p.yaml",
        [
            image_policy(
                "two-builds",
                {
                    "match": {"images": [f"{registry.host}/{repo}"]},
                    "authorities": [builder.authority()],
                    "signatures": {"threshold": 0},
                    "provenance": {"trustedBuilders": [builder.policy_entry()]},
                    "reproducibility": {
                        "minIndependentBuilds": 2,
                        "rebuilders": [
                            {"name": "rebuilderd", "key": {"pem": public_pem(rebuilder).decode()}}
                        ],
                    },
                },
            )
        ],
    ).parent
    run = run_check(capsys, registry, policies, [ref for _, ref in images.values()])
    verdicts = {case: run.image(ref)["verdict"] for case, (_, ref) in images.items()}
    assert verdicts == {
        "rebuilt": "allow",
        "provenance-only": "deny",
        "other-bytes": "deny",
        "unlisted-key": "deny",
    }
    rebuilt = checks_of(run.image(images["rebuilt"][1]), "two-builds")
    assert "rebuilder rebuilderd" in rebuilt["reproducibility.independentBuilds"]["reason"]
    other = checks_of(run.image(images["other-bytes"][1]), "two-builds")
    assert other["reproducibility.mismatch"]["result"] == "fail"
    assert "sha256:" + "e" * 64 in other["reproducibility.mismatch"]["reason"]

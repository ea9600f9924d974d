"""SLSA provenance, build levels and reproducibility end to end (issue 4).

``reprogate check`` (``controller.cli.main``, stdout captured) runs against the real test
registry (Debian's docker-registry over TLS), with policies written to a temporary directory:

- images whose cosign ``.att`` tags carry SLSA provenance (v1 and v0.2) from one, two and three
  distinct test builders (two signing with their own keys, one keyless through a private
  Sigstore instance published as its own ``TrustRoot``), the same builder twice, and a rebuild
  that produced a different digest;
- the real slsa-github-generator container image (slsa-verifier's test data), pushed as
  ``cosign save`` wrote it, under a trusted-builder list naming the generator at release tags.

Engine-level tests (``Evaluator`` over ``OfflineEvidence``, as ``reprogate test`` runs) show a
trusted VSA carrying ``SLSA_BUILD_REPRODUCED`` and real rebuilderd links, and that CEL
conditions see provenance and reproducibility facts as typed values.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from controller.admission.model import AdmissionRequest, ImageUse
from controller.cli import _load, main
from controller.config import Settings
from controller.evaluator import Evaluator
from controller.evidence.model import CosignLayer, EvidenceSet, LinkEvidence
from controller.evidence.source import OfflineEvidence
from controller.policy.verdict import ImageVerdict
from tests.support.cosign_sign import SignedLayer, as_cosign_layer, attest, public_pem
from tests.support.provenance_builders import (
    API_VERSION,
    SourceSpec,
    TestBuilder,
    key_builder,
    keyless_builder,
    push_attestations,
    slsa_v02,
    slsa_v1,
    trust_root_document,
    vsa_v1,
    write_documents,
)
from tests.support.registry import RunningRegistry, push_oci_layout, push_random_image
from tests.support.sigstore_pki import TestSigstore

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
CONTAINER = VECTORS / "slsa-verifier" / "container"
LINKS = VECTORS / "rebuilderd-links"

REPO = "provenance-e2e/app"
SOURCE = SourceSpec()
GAMMA_ISSUER = "https://oidc.gamma.test"
BASE_IMAGE = "pkg:oci/debian@sha256:" + "ba" * 32

GH_ISSUER = "https://token.actions.githubusercontent.com"
GENERATOR = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_container_slsa3.yml@refs/tags/v1.10.0"
)
GENERATOR_RELEASES = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_container_slsa3.yml@refs/tags/v*"
)
GENERIC_RELEASES = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_generic_slsa3.yml@refs/tags/v*"
)
EXAMPLE_REPO = "github.com/slsa-framework/example-package"
EXAMPLE_REF = "refs/tags/v13.0.30"
EXAMPLE_COMMIT = "d37a7f740ee7404914456f24dcd90e865a0509e8"


# --- helpers --------------------------------------------------------------------------------


def image_policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ImagePolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


@dataclass(frozen=True)
class CheckRun:
    """One ``reprogate check -o json`` run: exit code and the decision records."""

    code: int
    records: list[dict[str, Any]]

    def image(self, ref: str) -> dict[str, Any]:
        for record in self.records:
            for image in record["images"]:
                if image["ref"] == ref:
                    return dict(image)
        raise AssertionError(f"no image {ref} in the decision records")


def run_check(
    capsys: pytest.CaptureFixture[str],
    reg: RunningRegistry,
    policies: Path,
    images: Sequence[str],
) -> CheckRun:
    capsys.readouterr()  # drop anything printed before
    code = main(
        [
            "check",
            *images,
            "--policies",
            str(policies),
            "--registry-ca",
            str(reg.ca_file),
            "-o",
            "json",
        ]
    )
    out = capsys.readouterr().out
    assert code in (0, 1), f"reprogate check exited {code}: {out}"
    return CheckRun(code, json.loads(out))


def checks_of(image: dict[str, Any], policy: str) -> dict[str, dict[str, str]]:
    """check name -> {result, reason} for ``policy`` (names are unique per check kind)."""
    for p in image["policies"]:
        if p["name"] == policy:
            out: dict[str, dict[str, str]] = {}
            for c in p["checks"]:
                # several mismatch checks may exist; keep them all under numbered names
                key = c["check"]
                n = 2
                while key in out:
                    key, n = f"{c['check']}#{n}", n + 1
                out[key] = {"result": c["result"], "reason": c["reason"]}
            return out
    raise AssertionError(f"policy {policy} did not apply: {image['policies']}")


# --- part 1: one, two, three builders, duplicates and a differing rebuild --------------------


@dataclass
class Builds:
    """The test builders and the images they built, pushed to the registry."""

    reg: RunningRegistry
    policies: Path
    alpha: TestBuilder
    beta: TestBuilder
    gamma: TestBuilder
    refs: dict[str, str]  # scenario -> image reference pinned to its digest
    digests: dict[str, str]
    rebuild_digest: str  # what beta got when it rebuilt the "rebuild-differs" image


@pytest.fixture(scope="module")
def builds(registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> Builds:
    reg = registry
    work = tmp_path_factory.mktemp("provenance-e2e")
    alpha = key_builder("alpha-key", "https://builders.alpha.test/container@v1", 2)
    beta = key_builder("beta-key", "https://builders.beta.test/container@v1", 2)
    gamma = keyless_builder(
        TestSigstore(name="gamma-sigstore"),
        "https://ci.gamma.test/acme/app/.github/workflows/build.yml@refs/tags/v1.2.3",
        3,
        issuer=GAMMA_ISSUER,
        trust_root="gamma-sigstore",
    )
    name = f"{reg.host}/{REPO}"
    digests: dict[str, str] = {}
    refs: dict[str, str] = {}
    # what beta got when it rebuilt the "rebuild-differs" image: other bytes, other digest
    rebuild = push_random_image(reg, REPO, "beta-rebuild")

    def v1(b: TestBuilder, tag_digest: str) -> SignedLayer:
        return b.attest(slsa_v1(b.builder_id, [tag_digest], name=name, source=SOURCE))

    def v02(b: TestBuilder, tag_digest: str) -> SignedLayer:
        return b.attest(
            slsa_v02(
                b.builder_id, [tag_digest], name=name, source=SOURCE, dependencies=[BASE_IMAGE]
            )
        )

    # The statements must name the image digest, so push the image first, then its .att.
    plans: dict[str, Callable[[str], list[SignedLayer]]] = {
        "one": lambda d: [v1(alpha, d)],
        "two": lambda d: [v1(alpha, d), v02(gamma, d)],
        "three": lambda d: [v1(alpha, d), v02(beta, d), v1(gamma, d)],
        "same-builder": lambda d: [v1(alpha, d), v02(alpha, d)],
        "rebuild-differs": lambda d: [v1(alpha, d), v02(gamma, d), v02(beta, rebuild)],
        "only-rebuild": lambda d: [v02(beta, rebuild)],
    }
    for tag, plan in plans.items():
        digest = push_random_image(reg, REPO, tag)
        push_attestations(reg, REPO, digest, plan(digest))
        digests[tag] = digest
        refs[tag] = reg.ref(REPO, digest=digest)

    policies = work / "policies"
    assert gamma.sigstore is not None
    write_documents(
        policies / "reproduced.yaml",
        [
            trust_root_document("gamma-sigstore", gamma.sigstore),
            image_policy(
                "reproduced-twice",
                {
                    "match": {"images": [f"{reg.host}/{REPO}"]},
                    "authorities": [alpha.authority(), beta.authority()],
                    "signatures": {"threshold": 0},
                    "provenance": {
                        "trustedBuilders": [b.policy_entry() for b in (alpha, beta, gamma)]
                    },
                    "reproducibility": {"minIndependentBuilds": 2},
                },
            ),
        ],
    )
    return Builds(reg, policies, alpha, beta, gamma, refs, digests, rebuild)


def describe(b: TestBuilder) -> str:
    """How the reproducibility check and the decision record describe one build by ``b``."""
    if b.keyless:
        return f"builder {b.builder_id} (signed by {b.builder_id} from issuer {b.issuer})"
    return f"builder {b.builder_id} (signed by key {b.name})"


def test_min_independent_builds_admits_exactly_the_reproduced_images(
    builds: Builds, capsys: pytest.CaptureFixture[str]
) -> None:
    order = ["one", "two", "three", "same-builder", "rebuild-differs", "only-rebuild"]
    run = run_check(capsys, builds.reg, builds.policies, [builds.refs[t] for t in order])
    assert run.code == 1  # some are denied
    verdicts = {t: run.image(builds.refs[t])["verdict"] for t in order}
    assert verdicts == {
        "one": "deny",
        "two": "allow",
        "three": "allow",
        "same-builder": "deny",
        "rebuild-differs": "deny",
        "only-rebuild": "deny",
    }
    alpha, beta, gamma = builds.alpha, builds.beta, builds.gamma

    one = checks_of(run.image(builds.refs["one"]), "reproduced-twice")
    assert one["reproducibility.independentBuilds"] == {
        "result": "fail",
        "reason": f"found 1 independent build (builder {alpha.builder_id}), policy requires 2",
    }

    two = checks_of(run.image(builds.refs["two"]), "reproduced-twice")
    assert two["reproducibility.independentBuilds"]["result"] == "pass"
    assert two["reproducibility.independentBuilds"]["reason"].startswith("found 2 independent")

    three = checks_of(run.image(builds.refs["three"]), "reproduced-twice")
    assert three["reproducibility.independentBuilds"]["reason"].startswith(
        "found 3 independent builds"
    )
    for b in (alpha, beta, gamma):
        assert b.builder_id in three["reproducibility.independentBuilds"]["reason"]

    same = checks_of(run.image(builds.refs["same-builder"]), "reproduced-twice")
    assert same["reproducibility.independentBuilds"] == {
        "result": "fail",
        "reason": (
            f"found 1 independent build (builder {alpha.builder_id}), policy requires 2 "
            "(1 more build shared a builder or signer with one counted)"
        ),
    }
    # both attestations verified and are provenance of this image: the count is what failed
    assert same["provenance.present"]["result"] == "pass"
    assert "found 2 verified SLSA provenance statements" in same["provenance.present"]["reason"]


def test_rebuild_with_another_digest_is_a_reproducibility_failure(
    builds: Builds, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = builds.refs["rebuild-differs"]
    run = run_check(capsys, builds.reg, builds.policies, [ref])
    assert run.code == 1
    image = run.image(ref)
    assert image["verdict"] == "deny"
    checks = checks_of(image, "reproduced-twice")
    # alpha and gamma reproduced it, so the count holds; beta's different bytes still deny
    assert checks["reproducibility.independentBuilds"]["result"] == "pass"
    mismatch = checks["reproducibility.mismatch"]
    assert mismatch["result"] == "fail"
    reason = mismatch["reason"]
    assert reason.startswith(
        f"trusted builder {builds.beta.builder_id} (signed by key beta-key) produced "
        f"{builds.rebuild_digest}, but the image is {builds.digests['rebuild-differs']}"
    ), reason
    # the foreign statement never became provenance of this image
    assert "found 2 verified SLSA provenance statements" in checks["provenance.present"]["reason"]
    assert len(image["evidence"]["independentBuilds"]) == 2


def test_statement_about_another_digest_is_never_provenance_of_this_image(
    builds: Builds, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = builds.refs["only-rebuild"]
    run = run_check(capsys, builds.reg, builds.policies, [ref])
    image = run.image(ref)
    assert image["verdict"] == "deny"
    checks = checks_of(image, "reproduced-twice")
    present = checks["provenance.present"]
    assert present["result"] == "fail"
    assert present["reason"].startswith(
        f"no verified SLSA provenance names {builds.digests['only-rebuild']}"
    )
    assert checks["reproducibility.independentBuilds"]["reason"].startswith(
        "found 0 independent builds"
    )
    assert builds.rebuild_digest in checks["reproducibility.mismatch"]["reason"]
    assert image["evidence"]["slsaLevel"] == 0 and image["evidence"]["builder"] is None


def test_exit_codes_follow_the_verdicts(builds: Builds, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_check(capsys, builds.reg, builds.policies, [builds.refs["two"]]).code == 0
    assert run_check(capsys, builds.reg, builds.policies, [builds.refs["three"]]).code == 0
    assert run_check(capsys, builds.reg, builds.policies, [builds.refs["one"]]).code == 1


def test_decision_records_carry_the_provenance_evidence(
    builds: Builds, capsys: pytest.CaptureFixture[str]
) -> None:
    refs = [builds.refs[t] for t in ("one", "two", "three")]
    run = run_check(capsys, builds.reg, builds.policies, refs)
    alpha, beta, gamma = builds.alpha, builds.beta, builds.gamma
    source = {"repository": "github.com/acme/app", "ref": SOURCE.ref, "commit": SOURCE.commit}
    git_uri = f"git+{SOURCE.repository}@{SOURCE.ref}"
    base_digest = "sha256:" + hashlib.sha256(BASE_IMAGE.encode()).hexdigest()

    one = run.image(builds.refs["one"])["evidence"]
    assert one == {
        "signers": [],
        "slsaLevel": 2,  # alpha is trusted for level 2
        "builder": alpha.builder_id,
        "source": source,
        # SLSA v1 resolvedDependencies: the source at its commit
        "dependencies": [{"uri": git_uri, "digest": f"gitCommit:{SOURCE.commit}"}],
        "independentBuilds": [describe(alpha)],
    }

    two = run.image(builds.refs["two"])["evidence"]
    assert two == {
        "signers": [],
        "slsaLevel": 3,  # gamma (level 3) is the best provenance; alpha has level 2
        "builder": gamma.builder_id,
        "source": source,
        # SLSA v0.2 materials: the source and the base image
        "dependencies": [
            {"uri": git_uri, "digest": f"sha1:{SOURCE.commit}"},
            {"uri": BASE_IMAGE, "digest": base_digest},
        ],
        "independentBuilds": sorted([describe(alpha), describe(gamma)]),
    }

    three = run.image(builds.refs["three"])["evidence"]
    assert three["slsaLevel"] == 3 and three["builder"] == gamma.builder_id
    assert three["independentBuilds"] == sorted(describe(b) for b in (alpha, beta, gamma))


# --- part 2: the real slsa-github-generator container image ----------------------------------


@dataclass(frozen=True)
class RealImage:
    reg: RunningRegistry
    ref: str
    digest: str
    work: Path


@pytest.fixture(scope="module")
def real_image(registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> RealImage:
    layout = CONTAINER / "container_workflow_dispatch"
    if not layout.is_dir():
        pytest.skip(f"slsa-verifier container vector not present at {layout}")
    digest = (CONTAINER / "container_workflow_dispatch.digest").read_text().strip()
    repo = "provenance-e2e/slsa-container"
    pushed = push_oci_layout(registry, repo, layout)
    assert pushed.image_digest == digest
    return RealImage(
        registry, registry.ref(repo, digest=digest), digest, tmp_path_factory.mktemp("real")
    )


def generator_policy(
    real: RealImage,
    name: str,
    builder_ids: Sequence[str],
    *,
    repositories: Sequence[str] = (),
    refs: Sequence[str] = (),
) -> Path:
    provenance: dict[str, Any] = {
        "minLevel": 3,
        "trustedBuilders": [
            {
                "id": builder_id,
                "level": 3,
                # no subject: the certificate subject must equal the builder id
                "signer": {"keyless": {"issuer": GH_ISSUER, "trustRoot": "production"}},
            }
            for builder_id in builder_ids
        ],
    }
    source: dict[str, Any] = {}
    if repositories:
        source["repositories"] = list(repositories)
    if refs:
        source["refs"] = list(refs)
    if source:
        provenance["source"] = source
    directory = real.work / name
    write_documents(
        directory / "policy.yaml",
        [
            image_policy(
                name,
                {
                    "match": {"images": [f"{real.reg.host}/provenance-e2e/**"]},
                    "signatures": {"threshold": 0},
                    "provenance": provenance,
                },
            )
        ],
    )
    return directory


def test_generator_provenance_is_level_3_under_its_release_tags(
    real_image: RealImage, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = generator_policy(
        real_image,
        "slsa3",
        [GENERATOR_RELEASES],
        repositories=[EXAMPLE_REPO],
        refs=["refs/tags/v*"],
    )
    run = run_check(capsys, real_image.reg, policies, [real_image.ref])
    image = run.image(real_image.ref)
    assert run.code == 0, image
    assert image["verdict"] == "allow"
    checks = checks_of(image, "slsa3")
    assert checks["provenance.minLevel"] == {
        "result": "pass",
        "reason": f"SLSA build level 3 found (builder {GENERATOR}), policy requires 3",
    }
    assert checks["provenance.source.repository"] == {
        "result": "pass",
        "reason": f"source repository {EXAMPLE_REPO} matches {EXAMPLE_REPO}",
    }
    assert checks["provenance.source.ref"] == {
        "result": "pass",
        "reason": f"source ref {EXAMPLE_REF} matches refs/tags/v*",
    }
    assert image["evidence"] == {
        "signers": [],
        "slsaLevel": 3,
        "builder": GENERATOR,
        "source": {"repository": EXAMPLE_REPO, "ref": EXAMPLE_REF, "commit": EXAMPLE_COMMIT},
        "dependencies": [
            {
                "uri": f"git+https://{EXAMPLE_REPO}@{EXAMPLE_REF}",
                "digest": f"sha1:{EXAMPLE_COMMIT}",
            }
        ],
        "independentBuilds": [],
    }


def test_generator_not_on_the_list_is_denied_with_the_level_found(
    real_image: RealImage, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = generator_policy(real_image, "generic-only", [GENERIC_RELEASES])
    run = run_check(capsys, real_image.reg, policies, [real_image.ref])
    image = run.image(real_image.ref)
    assert run.code == 1 and image["verdict"] == "deny"
    checks = checks_of(image, "generic-only")
    assert checks["provenance.trustedBuilder"] == {
        "result": "fail",
        "reason": f"builder {GENERATOR} is not on the trusted builder list",
    }
    assert checks["provenance.minLevel"] == {
        "result": "fail",
        "reason": (
            f"SLSA build level 1 found (builder {GENERATOR} not trusted for more), "
            "policy requires 3"
        ),
    }
    # provenance exists (level 1), it just is not from a builder this policy trusts
    assert image["evidence"]["slsaLevel"] == 1


def test_generator_source_repository_and_ref_are_enforced(
    real_image: RealImage, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = generator_policy(
        real_image,
        "acme-only",
        [GENERATOR_RELEASES],
        repositories=["github.com/acme/*"],
        refs=["refs/heads/main"],
    )
    run = run_check(capsys, real_image.reg, policies, [real_image.ref])
    image = run.image(real_image.ref)
    assert run.code == 1 and image["verdict"] == "deny"
    checks = checks_of(image, "acme-only")
    assert checks["provenance.minLevel"]["result"] == "pass"  # only the source is wrong
    assert checks["provenance.source.repository"] == {
        "result": "fail",
        "reason": (
            f"source repository {EXAMPLE_REPO} is not allowed by policy "
            "(allowed: github.com/acme/*)"
        ),
    }
    assert checks["provenance.source.ref"] == {
        "result": "fail",
        "reason": f"source ref {EXAMPLE_REF} is not allowed by policy (allowed: refs/heads/main)",
    }


# --- part 4: VSAs and rebuild links at the engine level (offline) ----------------------------


def evaluate_offline(
    policies: Path, image: str, evidence: EvidenceSet, now: datetime | None = None
) -> ImageVerdict:
    """Evaluate one image as ``reprogate test`` does: the Evaluator over OfflineEvidence."""
    policy_set, roots = _load(Settings(policies=str(policies)))
    when = now or datetime.now(UTC)
    evaluator = Evaluator(
        Settings(),
        policy_set,
        OfflineEvidence({evidence.digest: evidence}),
        roots,
        clock=lambda: when,
    )
    request = AdmissionRequest(
        uid="offline",
        kind="Pod",
        namespace="default",
        name="offline",
        operation="CREATE",
        user="test",
        groups=(),
        object={},
        images=(ImageUse(image, "app", "/spec/containers/0/image"),),
    )
    return asyncio.run(evaluator.evaluate(request, mutate=False)).images[0]


def verdict_checks(verdict: ImageVerdict, policy: str) -> dict[str, tuple[bool, str]]:
    for p in verdict.policies:
        if p.name == policy:
            return {c.check: (c.passed, c.reason) for c in p.checks}
    raise AssertionError(f"policy {policy} did not apply")


def att_layers(*layers: SignedLayer) -> tuple[CosignLayer, ...]:
    return tuple(as_cosign_layer(x, source=f"offline .att layer {i}") for i, x in enumerate(layers))


VSA_VERIFIER = "https://verifier.reprogate.test/reproducer@v1"


def vsa_policy(tmp: Path, alpha: TestBuilder, verifier_key: ec.EllipticCurvePrivateKey) -> Path:
    write_documents(
        tmp / "policies" / "vsa.yaml",
        [
            image_policy(
                "reproduced",
                {
                    "match": {"images": ["registry.test/acme/**"]},
                    "authorities": [alpha.authority()],
                    "signatures": {"threshold": 0},
                    "provenance": {"trustedBuilders": [alpha.policy_entry()]},
                    "reproducibility": {
                        "minIndependentBuilds": 2,
                        "verifiers": [
                            {
                                "name": "reproducer",
                                "key": {"pem": public_pem(verifier_key).decode()},
                            }
                        ],
                    },
                },
            )
        ],
    )
    return tmp / "policies"


def test_trusted_vsa_with_build_reproduced_satisfies_min_independent_builds(
    tmp_path: Path,
) -> None:
    alpha = key_builder("alpha-key", "https://builders.alpha.test/container@v1", 2)
    verifier = ec.generate_private_key(ec.SECP256R1())
    stranger = ec.generate_private_key(ec.SECP256R1())
    policies = vsa_policy(tmp_path, alpha, verifier)
    digest = "sha256:" + "7e" * 32
    image = f"registry.test/acme/app@{digest}"
    provenance = alpha.attest(slsa_v1(alpha.builder_id, [digest], name="registry.test/acme/app"))
    vsa = vsa_v1(
        image,
        digest,
        verifier_id=VSA_VERIFIER,
        levels=["SLSA_BUILD_LEVEL_2", "SLSA_BUILD_REPRODUCED"],
    )

    alone = evaluate_offline(
        policies, image, EvidenceSet(digest=digest, attestations=att_layers(provenance))
    )
    assert alone.verdict == "deny"
    assert verdict_checks(alone, "reproduced")["reproducibility.independentBuilds"] == (
        False,
        f"found 1 independent build (builder {alpha.builder_id}), policy requires 2",
    )

    vouched = evaluate_offline(
        policies,
        image,
        EvidenceSet(digest=digest, attestations=att_layers(provenance, attest(verifier, vsa))),
    )
    assert vouched.verdict == "allow", vouched
    passed, reason = verdict_checks(vouched, "reproduced")["reproducibility.independentBuilds"]
    assert passed
    assert reason.startswith(f"verifier {VSA_VERIFIER} attested SLSA_BUILD_REPRODUCED"), reason

    # the same VSA signed by a key the policy does not list proves nothing
    forged = evaluate_offline(
        policies,
        image,
        EvidenceSet(digest=digest, attestations=att_layers(provenance, attest(stranger, vsa))),
    )
    assert forged.verdict == "deny"
    assert not verdict_checks(forged, "reproduced")["reproducibility.independentBuilds"][0]


def link_vector(name: str) -> bytes:
    path = LINKS / name
    if not path.is_file():
        pytest.skip(f"rebuilderd link vectors not present at {LINKS}")
    return path.read_bytes()


ARCH_PKG = "filesystem-2025.10.12-1-any.pkg.tar.zst"
DEB_PKG = "librust-as-slice-dev_0.2.1-1+b2_amd64.deb"


def test_rebuild_links_count_as_independent_builds_and_a_differing_one_is_a_mismatch(
    tmp_path: Path,
) -> None:
    arch_link = link_vector("filesystem-2025.10.12-1-any.in-toto.link")
    invalid_link = link_vector("filesystem-2025.10.12-1-any.INVALID.in-toto.link")
    deb_link = link_vector(f"{DEB_PKG.removesuffix('.deb')}.in-toto.link")
    arch_pub = link_vector("reproducible-archlinux.pub").decode()
    deb_pub = link_vector("reproduce-debian-net-amd64.pub").decode()
    # The artifact the Arch rebuilder reproduced, as an "image" digest for this test.
    digest = "sha256:" + hashlib.sha256(link_vector(ARCH_PKG)).hexdigest()
    deb_digest = "sha256:" + hashlib.sha256(link_vector(DEB_PKG)).hexdigest()
    image = f"registry.test/archlinux/filesystem@{digest}"
    alpha = key_builder("alpha-key", "https://builders.alpha.test/container@v1", 2)
    write_documents(
        tmp_path / "policies" / "links.yaml",
        [
            image_policy(
                "rebuilt",
                {
                    "match": {"images": ["registry.test/archlinux/**"]},
                    "authorities": [alpha.authority()],
                    "signatures": {"threshold": 0},
                    "provenance": {"trustedBuilders": [alpha.policy_entry()]},
                    "reproducibility": {
                        "minIndependentBuilds": 2,
                        "rebuilders": [
                            {"name": "arch-rebuilderd", "key": {"pem": arch_pub}},
                            {"name": "debian-rebuilderd", "key": {"pem": deb_pub}},
                        ],
                    },
                },
            )
        ],
    )
    policies = tmp_path / "policies"
    provenance = att_layers(
        alpha.attest(slsa_v1(alpha.builder_id, [digest], name="registry.test/archlinux/filesystem"))
    )

    def links(*raw: tuple[str, bytes]) -> tuple[LinkEvidence, ...]:
        return tuple(LinkEvidence(raw=data, source=name) for name, data in raw)

    rebuilt = evaluate_offline(
        policies,
        image,
        EvidenceSet(digest=digest, attestations=provenance, links=links(("arch", arch_link))),
    )
    assert rebuilt.verdict == "allow", rebuilt
    passed, reason = verdict_checks(rebuilt, "rebuilt")["reproducibility.independentBuilds"]
    assert passed
    assert reason.startswith("found 2 independent builds"), reason
    assert f"builder {alpha.builder_id}" in reason and "rebuilder arch-rebuilderd" in reason
    assert any(
        b.startswith("rebuilder arch-rebuilderd (key ") for b in rebuilt.evidence.independent_builds
    )

    # the tampered link verifies with no listed key: one build only
    tampered = evaluate_offline(
        policies,
        image,
        EvidenceSet(digest=digest, attestations=provenance, links=links(("bad", invalid_link))),
    )
    assert tampered.verdict == "deny"
    assert verdict_checks(tampered, "rebuilt")["reproducibility.independentBuilds"][1].startswith(
        "found 1 independent build"
    )

    # a listed rebuilder whose product is other bytes: reported, and the image is denied
    # although the count holds
    differs = evaluate_offline(
        policies,
        image,
        EvidenceSet(
            digest=digest,
            attestations=provenance,
            links=links(("arch", arch_link), ("debian", deb_link)),
        ),
    )
    assert differs.verdict == "deny"
    checks = verdict_checks(differs, "rebuilt")
    assert checks["reproducibility.independentBuilds"][0]
    passed, reason = checks["reproducibility.mismatch"]
    assert not passed
    assert reason.startswith("rebuilder debian-rebuilderd (link ")
    assert f"{DEB_PKG}: {deb_digest}" in reason and reason.endswith(f"but the image is {digest}")


# --- part 5: CEL sees provenance and reproducibility as typed values -------------------------


def test_cel_conditions_see_typed_provenance_and_reproducibility(tmp_path: Path) -> None:
    alpha = key_builder("alpha-key", "https://builders.alpha.test/container@v1", 2)
    sigstore = TestSigstore(name="gamma-sigstore")
    gamma = keyless_builder(
        sigstore,
        "https://ci.gamma.test/acme/app/.github/workflows/build.yml@refs/tags/v1.2.3",
        3,
        issuer=GAMMA_ISSUER,
        trust_root="gamma-sigstore",
    )
    write_documents(
        tmp_path / "policies" / "cel.yaml",
        [
            trust_root_document("gamma-sigstore", sigstore),
            image_policy(
                "typed",
                {
                    "match": {"images": ["registry.test/acme/**"]},
                    "authorities": [alpha.authority()],
                    "signatures": {"threshold": 0},
                    "provenance": {"trustedBuilders": [alpha.policy_entry(), gamma.policy_entry()]},
                    "reproducibility": {"minIndependentBuilds": 1},
                    "conditions": [
                        {
                            # int arithmetic and comparison: a string or double would error
                            "name": "level",
                            "expression": "provenance.level + 1 >= 4",
                            "message": "needs build level 3",
                        },
                        {
                            "name": "repository",
                            "expression": (
                                'provenance.source.repository.startsWith("github.com/acme/") '
                                "&& provenance.source.repository.size() == 19"
                            ),
                            "message": "source must be github.com/acme/app",
                        },
                        {
                            "name": "reproduced",
                            "expression": "reproducibility.independentBuilds * 2 >= 4",
                            "message": "needs two independent builds",
                        },
                    ],
                },
            ),
        ],
    )
    policies = tmp_path / "policies"
    digest = "sha256:" + "3c" * 32
    image = f"registry.test/acme/app@{digest}"
    name = "registry.test/acme/app"
    from_alpha = alpha.attest(slsa_v1(alpha.builder_id, [digest], name=name))
    from_gamma = gamma.attest(slsa_v02(gamma.builder_id, [digest], name=name))

    both = evaluate_offline(
        policies, image, EvidenceSet(digest=digest, attestations=att_layers(from_alpha, from_gamma))
    )
    checks = verdict_checks(both, "typed")
    assert both.verdict == "allow", checks
    assert checks["condition:level"] == (True, "holds")
    assert checks["condition:repository"] == (True, "holds")
    assert checks["condition:reproduced"] == (True, "holds")

    only_alpha = evaluate_offline(
        policies, image, EvidenceSet(digest=digest, attestations=att_layers(from_alpha))
    )
    checks = verdict_checks(only_alpha, "typed")
    assert only_alpha.verdict == "deny"
    assert checks["reproducibility.independentBuilds"][0]  # 1 is enough for the policy ...
    assert checks["condition:level"] == (False, "needs build level 3")  # ... level is 2
    assert checks["condition:repository"] == (True, "holds")
    assert checks["condition:reproduced"] == (False, "needs two independent builds")


# --- the verify gate: statements naming other digests ----------------------------------------


def test_verify_gate_keeps_other_digest_statements_apart() -> None:
    from controller.verify.authority import KeyAuthority
    from controller.verify.evidence import verify_evidence
    from controller.verify.trustroot import TrustRoots

    beta = key_builder("beta-key", "https://builders.beta.test/container@v1", 2)
    stranger = ec.generate_private_key(ec.SECP256R1())
    digest, other = "sha256:" + "11" * 32, "sha256:" + "22" * 32
    name = "registry.test/acme/app"
    rebuild = beta.attest(slsa_v02(beta.builder_id, [other], name=name))
    both = beta.attest(slsa_v02(beta.builder_id, [other, digest], name=name))
    forged = attest(stranger, slsa_v02(beta.builder_id, [other], name=name))
    assert isinstance(beta.signer, ec.EllipticCurvePrivateKey)
    authority = KeyAuthority("beta-key", public_pem(beta.signer))
    outcome = verify_evidence(
        EvidenceSet(digest=digest, attestations=att_layers(rebuild, both, forged)),
        [authority],
        TrustRoots(),
        datetime.now(UTC),
    )
    # naming the image among others: ordinary evidence about this image
    assert [s.source for s in outcome.statements] == ["offline .att layer 1"]
    # verified, naming only another digest: a foreign fact, and still a failure for the rest
    assert [s.source for s in outcome.foreign_statements] == ["offline .att layer 0"]
    assert outcome.foreign_statements[0].signer.authority == "beta-key"
    reasons = {f.source: f.reason for f in outcome.failures}
    assert reasons["offline .att layer 0"] == (
        f"statement subjects name {other} not the image {digest}"
    )
    # not signed by the authority: neither evidence nor a foreign fact
    assert "offline .att layer 2" in reasons
    assert "offline .att layer 2" not in reasons["offline .att layer 0"]
    assert all(s.source != "offline .att layer 2" for s in outcome.foreign_statements)


def test_other_digest_provenance_from_untrusted_builders_is_not_a_mismatch(
    tmp_path: Path,
) -> None:
    alpha = key_builder("alpha-key", "https://builders.alpha.test/container@v1", 2)
    beta = key_builder("beta-key", "https://builders.beta.test/container@v1", 2)
    stranger = ec.generate_private_key(ec.SECP256R1())
    write_documents(
        tmp_path / "policies" / "p.yaml",
        [
            image_policy(
                "reproduced",
                {
                    "match": {"images": ["registry.test/acme/**"]},
                    "authorities": [alpha.authority(), beta.authority()],
                    "signatures": {"threshold": 0},
                    "provenance": {"trustedBuilders": [alpha.policy_entry(), beta.policy_entry()]},
                    "reproducibility": {"minIndependentBuilds": 2},
                },
            )
        ],
    )
    digest, other = "sha256:" + "44" * 32, "sha256:" + "55" * 32
    name = "registry.test/acme/app"
    image = f"{name}@{digest}"
    layers = att_layers(
        alpha.attest(slsa_v1(alpha.builder_id, [digest], name=name)),
        beta.attest(slsa_v1(beta.builder_id, [digest], name=name)),
        # signed by alpha's key but claiming a builder id the policy does not list
        alpha.attest(slsa_v1("https://builders.unlisted.test/x", [other], name=name)),
        # beta's builder id, but not signed by beta: proves nothing
        attest(stranger, slsa_v1(beta.builder_id, [other], name=name)),
    )
    verdict = evaluate_offline(
        tmp_path / "policies", image, EvidenceSet(digest, attestations=layers)
    )
    checks = verdict_checks(verdict, "reproduced")
    assert verdict.verdict == "allow", checks
    assert "reproducibility.mismatch" not in checks
    assert checks["reproducibility.independentBuilds"][1].startswith("found 2 independent builds")

"""Policy semantics through the real evaluator, offline: modes, several policies, exceptions,
conditions that fail closed. Evidence is real (ECDSA-signed cosign layers); only the registry
is replaced by ``OfflineEvidence``, the same stand-in ``reprogate test`` uses."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from controller.admission.model import AdmissionRequest, ImageUse, ReviewDecision
from controller.config import Settings
from controller.evaluator import Evaluator
from controller.evidence.model import EvidenceSet
from controller.evidence.source import EvidenceSource, OfflineEvidence
from controller.oci.errors import RegistryError
from controller.oci.reference import ImageRef
from controller.policy.loader import load_policy_documents
from controller.verify.trustroot import TrustRoots
from tests.support.cosign_sign import as_cosign_layer, public_pem, sign_image

DIGEST = "sha256:" + hashlib.sha256(b"image").hexdigest()
IMAGE = f"registry.example.com/acme/app:1.0@{DIGEST}"
KEY = ec.generate_private_key(ec.SECP256R1())
OTHER = ec.generate_private_key(ec.SECP256R1())
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return "\n".join("          " + line for line in public_pem(key).decode().splitlines())


def policy(
    name: str, *, mode: str = "enforce", key: ec.EllipticCurvePrivateKey = KEY, extra: str = ""
) -> str:
    return f"""---
apiVersion: reprogate.dev/v1alpha1
kind: ImagePolicy
metadata: {{name: {name}}}
spec:
  mode: {mode}
  match: {{images: ["registry.example.com/acme/**"]}}
  authorities:
    - name: release
      key:
        pem: |
{_pem(key)}
{extra}"""


class _TagsResolveToDigest(OfflineEvidence):
    """Offline evidence where every tag resolves to DIGEST (as a registry would)."""

    async def resolve(self, image: ImageRef, credentials: object = None) -> str:
        return DIGEST


def _evaluate(
    policies: str,
    source: EvidenceSource,
    *,
    namespace: str = "prod",
    image: str = IMAGE,
    obj: dict[str, Any] | None = None,
) -> ReviewDecision:
    """One Pod running ``image``, decided by the real evaluator over ``source``."""
    evaluator = Evaluator(
        Settings(),
        load_policy_documents(policies, "test.yaml"),
        source,
        TrustRoots(),
        clock=lambda: NOW,
    )
    request = AdmissionRequest(
        uid="u",
        kind="Pod",
        namespace=namespace,
        name="p",
        operation="CREATE",
        user="bob",
        groups=(),
        object={"metadata": {"labels": {"team": "payments"}}} if obj is None else obj,
        images=(ImageUse(image, "c", "/spec/containers/0/image"),),
    )
    return asyncio.run(evaluator.evaluate(request, mutate=False))


def decide(
    policies: str,
    *,
    signed_by: ec.EllipticCurvePrivateKey | None = KEY,
    namespace: str = "prod",
    image: str = IMAGE,
) -> ReviewDecision:
    layers = (as_cosign_layer(sign_image(signed_by, DIGEST)),) if signed_by else ()
    evidence = EvidenceSet(digest=DIGEST, signatures=layers)
    return _evaluate(
        policies, _TagsResolveToDigest({DIGEST: evidence}), namespace=namespace, image=image
    )


def test_enforce_allows_signed_and_denies_unsigned() -> None:
    assert decide(policy("p")).allowed
    denied = decide(policy("p"), signed_by=None)
    assert not denied.allowed
    assert f"image {IMAGE}: policy p: signatures:" in denied.message


def test_warn_mode_admits_with_a_warning() -> None:
    d = decide(policy("p", mode="warn"), signed_by=OTHER)
    assert d.allowed and d.decision == "warn"
    assert len(d.warnings) == 1 and "policy p: signatures" in d.warnings[0]


def test_audit_mode_admits_and_records_the_would_be_denial() -> None:
    d = decide(policy("p", mode="audit"), signed_by=OTHER)
    assert d.allowed and not d.warnings
    result = d.images[0].policies[0]
    assert result.mode == "audit" and result.result == "fail"


def test_every_matching_policy_applies() -> None:
    both = policy("a") + policy("b", key=OTHER)
    d = decide(both)
    assert not d.allowed
    assert "policy b: signatures" in d.message and "policy a" not in d.message


def test_exception_waives_until_it_expires() -> None:
    extra = """  exceptions:
    - images: ["registry.example.com/acme/app"]
      namespaces: ["prod"]
      reason: "INC-42 hotfix, signed build pending"
      expires: "{when}"
"""
    active = decide(policy("p", extra=extra.format(when="2026-07-01T00:00:00Z")), signed_by=None)
    assert active.allowed
    assert active.images[0].policies[0].result == "excepted"
    assert active.images[0].policies[0].exception == "INC-42 hotfix, signed build pending"
    expired = decide(policy("p", extra=extra.format(when="2026-05-01T00:00:00Z")), signed_by=None)
    assert not expired.allowed
    assert "expired at 2026-05-01" in expired.message
    other_ns = decide(
        policy("p", extra=extra.format(when="2026-07-01T00:00:00Z")),
        signed_by=None,
        namespace="dev",
    )
    assert not other_ns.allowed


def test_exceptions_match_a_resolved_tag_by_its_tag_and_its_digest() -> None:
    """A tag reference resolved by reprogate is covered by a tag glob and by a glob naming the
    digest it resolved to; a reference written with a digest is never covered by a tag glob."""

    def excepted(glob: str, image: str) -> bool:
        extra = f"""  exceptions:
    - images: ["{glob}"]
      reason: "INC-42"
"""
        return decide(policy("p", extra=extra), signed_by=None, image=image).allowed

    by_tag, by_digest = (
        "registry.example.com/acme/app:1.0",
        f"registry.example.com/acme/app@{DIGEST}",
    )
    assert excepted(by_digest, by_tag)
    assert excepted(by_digest, by_digest)
    assert excepted(by_tag, by_tag)
    assert not excepted(by_tag, f"{by_tag}@{DIGEST}")
    assert not excepted(f"registry.example.com/acme/app@sha256:{'0' * 64}", by_tag)


def test_conditions_see_image_object_and_request() -> None:
    extra = """  conditions:
    - name: no-latest
      expression: image.tag != "latest"
      message: "pin a version tag, not :latest"
    - name: team-label
      expression: object.metadata.labels.team == "payments" && request.user == "bob"
      message: "only the payments team"
"""
    assert decide(policy("p", extra=extra)).allowed
    latest = decide(
        policy("p", extra=extra), image=f"registry.example.com/acme/app:latest@{DIGEST}"
    )
    assert not latest.allowed
    assert "condition:no-latest: pin a version tag, not :latest" in latest.message


def test_condition_evaluation_error_fails_closed_with_the_error() -> None:
    extra = """  conditions:
    - name: missing-field
      expression: object.spec.nodeName == "x"
      message: "must run on x"
"""
    d = decide(policy("p", extra=extra))
    assert not d.allowed
    assert "condition:missing-field: could not be evaluated" in d.message
    assert "failing closed" in d.message


def test_unmatched_image_is_not_evaluated() -> None:
    d = decide(policy("p"), image=f"docker.io/library/nginx@{DIGEST}", signed_by=None)
    assert d.allowed and d.images[0].policies == ()


def test_many_copies_of_one_image_cost_one_evaluation(monkeypatch: object) -> None:
    """A pod with 300 containers of one image and a 2 MB object: one evaluation, one
    conversion of the object for CEL (the W1 denial-of-service report)."""
    import controller.policy.activation as engine_module

    conversions: list[int] = []
    real_to_cel = engine_module.to_cel

    def counting(value: object) -> object:
        conversions.append(1)
        return real_to_cel(value)

    monkeypatch.setattr(engine_module, "to_cel", counting)  # type: ignore[attr-defined]
    extra = """  conditions:
    - name: has-team
      expression: has(object.metadata.labels.team)
"""
    layers = (as_cosign_layer(sign_image(KEY, DIGEST)),)
    evaluator = Evaluator(
        Settings(),
        load_policy_documents(policy("p", extra=extra), "test.yaml"),
        OfflineEvidence({DIGEST: EvidenceSet(digest=DIGEST, signatures=layers)}),
        TrustRoots(),
        clock=lambda: NOW,
    )
    big = {"metadata": {"labels": {"team": "x"}, "annotations": {"a": "x" * 2_000_000}}}
    request = AdmissionRequest(
        uid="u",
        kind="Pod",
        namespace="prod",
        name="p",
        operation="CREATE",
        user="bob",
        groups=(),
        object=big,
        images=tuple(ImageUse(IMAGE, f"c{i}", f"/spec/containers/{i}/image") for i in range(300)),
    )
    decision = asyncio.run(evaluator.evaluate(request, mutate=False))
    assert decision.allowed
    assert len(decision.images) == 300
    assert len({id(v) for v in decision.images}) == 1
    assert len(conversions) == 1


class _DownRegistry:
    """An evidence source whose registry cannot be reached (no network stand-in needed: the
    evaluator only sees the classified RegistryError the real client raises)."""

    async def resolve(self, image: object, credentials: object = None) -> str:
        raise RegistryError("unreachable", "connection refused", "registry.example.com")

    async def discover(self, image: object, credentials: object = None) -> EvidenceSet:
        raise RegistryError("unreachable", "connection refused", "registry.example.com")


def _decide_down(mode: str) -> ReviewDecision:
    return _evaluate(policy("p", mode=mode), _DownRegistry(), obj={})


def test_registry_failure_under_enforce_denies_naming_the_registry() -> None:
    d = _decide_down("enforce")
    assert not d.allowed
    assert "registry.example.com could not be reached" in d.message


def test_registry_failure_under_warn_admits_with_the_reason_as_warning() -> None:
    d = _decide_down("warn")
    assert d.allowed and d.decision == "warn"
    assert any("could not be reached" in w for w in d.warnings), d.warnings


def test_registry_failure_under_audit_records_why_it_would_have_denied() -> None:
    d = _decide_down("audit")
    assert d.allowed and not d.warnings
    (result,) = d.images[0].policies
    assert result.result == "fail"
    assert result.checks[0].check == "evidence"
    assert "could not be reached" in result.checks[0].reason


def test_conditions_see_trusted_vsas_with_custom_properties() -> None:
    """A VSA from a listed verifier exposes its levels and custom properties to CEL; one from
    another key exposes nothing."""
    import textwrap

    from tests.support.cosign_sign import attest
    from tests.support.provenance_builders import vsa_v1

    verifier = ec.generate_private_key(ec.SECP256R1())
    stranger = ec.generate_private_key(ec.SECP256R1())
    statement = vsa_v1(
        IMAGE,
        DIGEST,
        verifier_id="https://verifier.acme.test",
        levels=["SLSA_BUILD_LEVEL_3", "ACME_FIPS_BUILD"],
    )
    extra = f"""  signatures: {{threshold: 0}}
  reproducibility:
    minIndependentBuilds: 0
    verifiers:
      - name: acme-verifier
        key:
          pem: |
{textwrap.indent(public_pem(verifier).decode(), " " * 12)}
  conditions:
    - name: fips
      expression: '"ACME_FIPS_BUILD" in vsa.properties && vsa.buildLevel >= 3'
      message: "needs a FIPS build verified at SLSA build level 3"
"""

    def decide_with(signer: ec.EllipticCurvePrivateKey) -> ReviewDecision:
        layers = (as_cosign_layer(attest(signer, statement)),)
        evidence = EvidenceSet(digest=DIGEST, attestations=layers)
        return _evaluate(policy("p", extra=extra), OfflineEvidence({DIGEST: evidence}), obj={})

    assert decide_with(verifier).allowed
    refused = decide_with(stranger)
    assert not refused.allowed
    assert "needs a FIPS build verified at SLSA build level 3" in refused.message


def test_a_deny_verdict_denies_even_without_reason_lines() -> None:
    """The verdict decides, not whether a reason line could be written for it."""
    from controller.policy.verdict import ImageVerdict

    evaluator = Evaluator(
        Settings(),
        load_policy_documents(policy("p"), "test.yaml"),
        OfflineEvidence({}),
        TrustRoots(),
    )
    bare = ImageVerdict(IMAGE, DIGEST, "deny", ())  # no error, no policy failures
    decision = evaluator._decide([bare], {})
    assert not decision.allowed and decision.decision == "deny"
    assert f"image {IMAGE}: denied by policy" in decision.message

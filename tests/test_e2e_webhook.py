"""End to end over HTTPS: a real ``reprogate serve`` process, a real registry, real keys.

The registry is Debian's docker-registry on 127.0.0.1 with a TLS certificate from a CA this
test run created; signatures are cosign-format ``.sig`` manifests signed with real ECDSA keys.
There is no Kubernetes API server here, so AdmissionReviews are built as kube-apiserver sends
them (tests/support/webhook.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.cosign_sign import public_pem, sign_image, simple_signing_payload
from tests.support.registry import (
    RunningRegistry,
    launch_registry,
    push_cosign_manifest,
    push_random_image,
)
from tests.support.tls import TlsFiles
from tests.support.webhook import Webhook, deployment, pod, start_webhook

pytestmark = pytest.mark.usefixtures("tls_files")


def write_policy(directory: Path, host: str, key_pem: bytes, *, mode: str = "enforce") -> Path:
    """One ImagePolicy: images under host/e2e/** must be signed by the release key."""
    directory.mkdir(parents=True, exist_ok=True)
    pem = "\n".join("          " + line for line in key_pem.decode().strip().splitlines())
    (directory / "release.yaml").write_text(
        f"""apiVersion: reprogate.dev/v1alpha1
kind: ImagePolicy
metadata: {{name: release-signed}}
spec:
  mode: {mode}
  match:
    images: ["{host}/e2e/**"]
  authorities:
    - name: release-key
      key:
        pem: |
{pem}
  signatures:
    threshold: 1
"""
    )
    return directory


def push_signed(
    reg: RunningRegistry,
    repo: str,
    tag: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    payload_digest: str | None = None,
    tamper: bool = False,
) -> str:
    """Push an image and a cosign signature over it (or over another digest); its digest."""
    digest = push_random_image(reg, repo, tag)
    layer = sign_image(key, digest, payload=simple_signing_payload(payload_digest or digest))
    annotations = dict(layer.annotations)
    if tamper:
        sig = annotations["dev.cosignproject.cosign/signature"]
        annotations["dev.cosignproject.cosign/signature"] = (
            sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
        )
    push_cosign_manifest(reg, repo, digest, "sig", [(layer.payload, layer.media_type, annotations)])
    return digest


@dataclass
class Scene:
    reg: RunningRegistry
    hook: Webhook
    signed: str
    unsigned: str
    other_key: str
    wrong_digest: str
    tampered: str


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles) -> Iterator[Scene]:
    from tests.conftest import _require_registry_binary

    _require_registry_binary()
    work = tmp_path_factory.mktemp("e2e")
    reg = launch_registry(work / "registry", tls_files)
    release = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    repo = "e2e/app"
    push_signed(reg, repo, "signed", release)
    other_digest = push_random_image(reg, repo, "decoy")
    s = Scene(
        reg=reg,
        hook=None,  # type: ignore[arg-type]
        signed=reg.ref(repo, "signed"),
        unsigned=(push_random_image(reg, repo, "unsigned"), reg.ref(repo, "unsigned"))[1],
        other_key=(push_signed(reg, repo, "otherkey", other), reg.ref(repo, "otherkey"))[1],
        wrong_digest=(
            push_signed(reg, repo, "wrongdigest", release, payload_digest=other_digest),
            reg.ref(repo, "wrongdigest"),
        )[1],
        tampered=(
            push_signed(reg, repo, "tampered", release, tamper=True),
            reg.ref(repo, "tampered"),
        )[1],
    )
    policies = write_policy(work / "policies", reg.host, public_pem(release))
    s.hook = start_webhook(work / "hook", tls_files, policies, registry_ca=reg.ca_file)
    yield s
    s.hook.stop()
    reg.stop()


def test_signed_image_is_admitted(scene: Scene) -> None:
    resp = scene.hook.review(pod("signed", scene.signed))
    assert resp["allowed"] is True, resp


def test_unsigned_image_is_denied_with_actionable_reason(scene: Scene) -> None:
    resp = scene.hook.review(pod("unsigned", scene.unsigned))
    assert resp["allowed"] is False
    msg = resp["status"]["message"]
    assert scene.unsigned in msg
    assert "release-signed" in msg and "signatures" in msg
    assert "No signatures were found" in msg


def test_signed_by_another_key_is_denied(scene: Scene) -> None:
    resp = scene.hook.review(pod("otherkey", scene.other_key))
    assert resp["allowed"] is False
    msg = resp["status"]["message"]
    assert scene.other_key in msg and "release-key" in msg
    assert "did not verify" in msg


def test_payload_naming_another_digest_is_denied(scene: Scene) -> None:
    resp = scene.hook.review(pod("wrongdigest", scene.wrong_digest))
    assert resp["allowed"] is False
    assert "signed payload names sha256:" in resp["status"]["message"]
    assert "not the image sha256:" in resp["status"]["message"]


def test_tampered_signature_is_denied(scene: Scene) -> None:
    resp = scene.hook.review(pod("tampered", scene.tampered))
    assert resp["allowed"] is False
    assert scene.tampered in resp["status"]["message"]


def test_deployment_with_one_unsigned_container_names_that_image(scene: Scene) -> None:
    resp = scene.hook.review(deployment("three", scene.signed, scene.unsigned, scene.signed))
    assert resp["allowed"] is False
    msg = resp["status"]["message"]
    assert scene.unsigned in msg
    assert msg.splitlines()[0] == "reprogate denied this workload:"
    assert msg.splitlines()[1].startswith(f"image {scene.unsigned}: policy release-signed:")
    # the signed image is not blamed
    assert not any(line.startswith(f"image {scene.signed}:") for line in msg.splitlines()), msg


def test_malformed_review_gets_400_and_server_keeps_serving(scene: Scene) -> None:
    status, body = scene.hook.post("/validate", b'{"apiVersion": "admission.k8s.io/v1", "kind":')
    assert status == 400
    assert body
    resp = scene.hook.review(pod("after", scene.signed))
    assert resp["allowed"] is True


def test_unmatched_image_is_allowed(scene: Scene) -> None:
    resp = scene.hook.review(pod("other", f"{scene.reg.host}/elsewhere/app:1"))
    assert resp["allowed"] is True


def test_one_decision_record_per_review(scene: Scene) -> None:
    before = len(scene.hook.records())
    scene.hook.review(pod("rec", scene.unsigned), namespace="team-a")
    records = scene.hook.records()
    assert len(records) == before + 1
    rec = records[-1]
    assert rec["decision"] == "deny" and rec["namespace"] == "team-a" and rec["kind"] == "Pod"
    image = rec["images"][0]
    assert image["ref"] == scene.unsigned and image["digest"].startswith("sha256:")
    assert image["policies"][0]["name"] == "release-signed"
    assert image["policies"][0]["result"] == "fail"
    assert image["policies"][0]["checks"][0] == {
        "check": "signatures",
        "result": "fail",
        "reason": image["policies"][0]["checks"][0]["reason"],
    }
    assert "No signatures were found" in image["policies"][0]["checks"][0]["reason"]


def test_repeated_reviews_hit_the_cache(scene: Scene) -> None:
    scene.hook.review(pod("warm1", scene.signed))
    scene.hook.review(pod("warm2", scene.signed))
    rec = scene.hook.records()[-1]
    assert rec["cache"]["misses"] == 0 and rec["cache"]["hits"] > 0, rec["cache"]


def test_registry_down_is_denied_within_deadline_naming_registry(
    tmp_path: Path, tls_files: TlsFiles
) -> None:
    from tests.conftest import _require_registry_binary

    _require_registry_binary()
    reg = launch_registry(tmp_path / "registry", tls_files)
    key = ec.generate_private_key(ec.SECP256R1())
    push_signed(reg, "e2e/app", "v1", key)
    policies = write_policy(tmp_path / "policies", reg.host, public_pem(key))
    hook = start_webhook(
        tmp_path / "hook",
        tls_files,
        policies,
        registry_ca=reg.ca_file,
        extra=["--deadline", "3"],
    )
    try:
        reg.stop()
        # like the API server, give up if no answer comes within its webhook timeout (the
        # deadline plus a margin): a denial must come back before that, not a hang
        resp = hook.review(pod("down", reg.ref("e2e/app", "v1")), timeout=3 + 2)
        assert resp["allowed"] is False
        msg = resp["status"]["message"]
        assert reg.ref("e2e/app", "v1") in msg
        assert "could not be reached" in msg or "unreachable" in msg, msg
        assert reg.host in msg
    finally:
        hook.stop()
        reg.stop()


def test_metrics_and_health(scene: Scene) -> None:
    assert scene.hook.get("/healthz")[0] == 200
    assert scene.hook.get("/readyz")[0] == 200
    scene.hook.review(pod("metrics", scene.signed))
    scene.hook.review(pod("metrics2", scene.signed))
    status, body = scene.hook.get("/metrics")
    assert status == 200
    text = body.decode()
    assert 'reprogate_admission_requests_total{path="/validate",decision="allow"}' in text
    hits = [
        line
        for line in text.splitlines()
        if line.startswith('reprogate_cache_requests_total{cache="evidence",result="hit"}')
    ]
    assert hits and float(hits[0].split()[-1]) >= 1, text
    assert 'reprogate_cache_entries{cache="verification"}' in text


def test_decision_records_carry_no_object_body(scene: Scene) -> None:
    records = scene.hook.records()
    assert records
    for rec in records:
        text = json.dumps(rec)
        assert '"containers"' not in text and '"spec"' not in text and "userInfo" not in text


def test_mutate_pins_admitted_tags_to_digests(scene: Scene) -> None:
    import base64

    resp = scene.hook.review(deployment("pin", scene.signed), path="/mutate")
    assert resp["allowed"] is True
    assert resp["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(resp["patch"]))
    assert len(patch) == 1
    op = patch[0]
    assert op["op"] == "replace"
    assert op["path"] == "/spec/template/spec/containers/0/image"
    assert op["value"].startswith(scene.signed + "@sha256:")


def test_mutate_still_denies_unsigned(scene: Scene) -> None:
    resp = scene.hook.review(pod("pin-bad", scene.unsigned), path="/mutate")
    assert resp["allowed"] is False
    assert "patch" not in resp


def test_concurrent_rollout_of_a_new_image_fetches_once(scene: Scene) -> None:
    """30 pods of a never-seen image at once: one tag resolution, one evidence fetch, one
    verification; every other review waits on those loads or hits the cache."""
    from concurrent.futures import ThreadPoolExecutor

    key = ec.generate_private_key(ec.SECP256R1())
    push_signed(scene.reg, "e2e/rollout", "v1", key)  # signed by a key the policy ignores
    image = scene.reg.ref("e2e/rollout", "v1")
    before = len(scene.hook.records())
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda i: scene.hook.review(pod(f"r{i}", image)), range(30)))
    assert all(a["allowed"] is False for a in answers)
    records = scene.hook.records()[before:]
    assert len(records) == 30
    # one miss each for tag->digest, digest->evidence and (evidence, authorities)->facts
    assert sum(r["cache"]["misses"] for r in records) == 3
    assert sum(r["cache"]["hits"] for r in records) == 29 * 3


def test_policies_reload_while_serving_and_a_broken_edit_keeps_the_old_ones(
    tmp_path: Path, tls_files: TlsFiles, registry: RunningRegistry
) -> None:
    """A ConfigMap edit reaches the running webhook; a malformed one is refused and the
    policies in force stay (never allow-everything)."""
    key = ec.generate_private_key(ec.SECP256R1())
    push_random_image(registry, "reload/app", "unsigned")
    image = registry.ref("reload/app", "unsigned")
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "placeholder.yaml").write_text(
        "apiVersion: reprogate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: elsewhere}\n"
        "spec:\n  match: {images: ['other.example/**']}\n  signatures: {threshold: 0}\n"
    )
    hook = start_webhook(
        tmp_path / "hook",
        tls_files,
        policies,
        registry_ca=registry.ca_file,
        extra=["--config", str(_reload_config(tmp_path))],
    )
    try:
        assert hook.review(pod("before", image))["allowed"] is True  # no policy matches yet
        write_policy(policies, registry.host, public_pem(key))
        (policies / "release.yaml").write_text(
            (policies / "release.yaml").read_text().replace("/e2e/**", "/reload/**")
        )
        assert _eventually(lambda: hook.review(pod("after", image))["allowed"] is False)
        (policies / "release.yaml").write_text("apiVersion: [broken\n")
        # the broken edit is refused: the signature policy stays in force
        assert _eventually(lambda: "policy reload refused" in hook.stderr())
        assert hook.review(pod("still", image))["allowed"] is False
    finally:
        hook.stop()


def _reload_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("policy_reload_seconds: 0.2\n")
    return cfg


def _eventually(check: object, attempts: int = 100) -> bool:
    """Poll ``check`` (a bounded number of times, 0.1 s apart) until it holds."""
    import time as _time

    for _ in range(attempts):
        if check():  # type: ignore[operator]
            return True
        _time.sleep(0.1)
    return False

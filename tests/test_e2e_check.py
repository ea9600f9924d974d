"""``reprogate check`` as a user runs it: a real process, a real TLS registry, real keys.

Exit codes are the contract: 0 admitted, 1 denied, 2 bad input or configuration.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.cosign_sign import public_pem
from tests.support.registry import RunningRegistry, launch_registry, push_random_image
from tests.support.tls import TlsFiles
from tests.support.webhook import ROOT
from tests.test_e2e_webhook import push_signed, write_policy


@dataclass
class Setup:
    reg: RunningRegistry
    policies: Path
    signed: str
    unsigned: str
    work: Path

    def run(self, *args: str, ca: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "controller.cli", "check", *args]
        if ca:
            cmd += ["--registry-ca", str(self.reg.ca_file)]
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles) -> Iterator[Setup]:
    from tests.conftest import _require_registry_binary

    _require_registry_binary()
    work = tmp_path_factory.mktemp("check")
    reg = launch_registry(work / "registry", tls_files)
    key = ec.generate_private_key(ec.SECP256R1())
    push_signed(reg, "e2e/app", "signed", key)
    push_random_image(reg, "e2e/app", "unsigned")
    policies = write_policy(work / "policies", reg.host, public_pem(key))
    yield Setup(reg, policies, reg.ref("e2e/app", "signed"), reg.ref("e2e/app", "unsigned"), work)
    reg.stop()


def test_signed_image_exits_0(setup: Setup) -> None:
    out = setup.run(setup.signed, "--policies", str(setup.policies))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("ADMIT")
    assert "release-signed" in out.stdout


def test_unsigned_image_exits_1_and_says_why(setup: Setup) -> None:
    out = setup.run(setup.signed, setup.unsigned, "--policies", str(setup.policies))
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"DENY     {setup.unsigned}" in out.stdout
    assert "No signatures were found" in out.stdout


def test_json_output_is_a_decision_record(setup: Setup) -> None:
    out = setup.run(setup.unsigned, "--policies", str(setup.policies), "-o", "json")
    assert out.returncode == 1
    records = json.loads(out.stdout)
    assert records[0]["decision"] == "deny"
    image = records[0]["images"][0]
    assert image["ref"] == setup.unsigned and image["digest"].startswith("sha256:")
    assert image["policies"][0]["checks"][0]["check"] == "signatures"


def test_manifest_file(setup: Setup) -> None:
    manifest = setup.work / "deploy.yaml"
    manifest.write_text(
        f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: prod}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      initContainers: [{{name: init, image: "{setup.signed}"}}]
      containers: [{{name: web, image: "{setup.signed}"}}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {{name: nightly}}
spec:
  schedule: "0 0 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{{name: job, image: "{setup.unsigned}"}}]
"""
    )
    out = setup.run("-f", str(manifest), "--policies", str(setup.policies))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "[Deployment/web]" in out.stdout and "[CronJob/nightly]" in out.stdout
    assert f"DENY     {setup.unsigned}" in out.stdout


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["not a ref!"], "invalid image reference"),
        (["--policies", "/nonexistent/policies", "nginx"], "does not exist"),
        (["-f", "/nonexistent/deploy.yaml"], "No such file"),
        ([], "give image references"),
    ],
)
def test_bad_input_exits_2(setup: Setup, args: list[str], fragment: str) -> None:
    if args and not args[0].startswith("-") and "--policies" not in args:
        args = [*args, "--policies", str(setup.policies)]
    out = setup.run(*args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert fragment in out.stderr


def test_malformed_policy_exits_2_naming_file_and_field(setup: Setup, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: reprogate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: x}\n"
        "spec:\n  signatures: {threshold: two}\n"
    )
    out = setup.run(setup.signed, "--policies", str(tmp_path))
    assert out.returncode == 2
    assert "bad.yaml" in out.stderr and "spec.signatures.threshold" in out.stderr


def test_untrusted_registry_ca_is_denied_not_crashed(setup: Setup) -> None:
    out = setup.run(setup.signed, "--policies", str(setup.policies), ca=False)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "TLS" in out.stdout or "certificate" in out.stdout


def test_no_match_deny_switch(setup: Setup) -> None:
    unmatched = setup.reg.ref("elsewhere/app", "1")
    allowed = setup.run(unmatched, "--policies", str(setup.policies))
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "no policy matches this image" in allowed.stdout
    denied = setup.run(unmatched, "--policies", str(setup.policies), "--no-match", "deny")
    assert denied.returncode == 1
    assert "no policy matches this image" in denied.stdout


def test_policy_dir_without_policies_is_bad_input(setup: Setup, tmp_path: Path) -> None:
    """A forgotten --policies must not pass CI: zero ImagePolicies is exit 2, not ADMIT."""
    out = setup.run(setup.unsigned, "--policies", str(tmp_path))
    assert out.returncode == 2
    assert "no ImagePolicy found" in out.stderr


def test_denied_check_piped_into_head_keeps_its_exit_code(setup: Setup) -> None:
    """Enough output to overflow the pipe buffer, so the write really breaks when ``head``
    closes its end (one evaluation: the image repeats)."""
    images = " ".join([setup.unsigned] * 80)
    cmd = (
        f"{sys.executable} -m controller.cli check {images} --policies {setup.policies} "
        f"--registry-ca {setup.reg.ca_file} -o json | head -c 10 >/dev/null; "
        "echo ${PIPESTATUS[0]}"
    )
    out = subprocess.run(["bash", "-c", cmd], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "1", out.stdout + out.stderr
    assert "Traceback" not in out.stderr


def test_unusable_trust_root_names_file_document_and_field(setup: Setup, tmp_path: Path) -> None:
    (tmp_path / "root.yaml").write_text(
        "apiVersion: reprogate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: p}\nspec: {}\n"
        "---\napiVersion: reprogate.dev/v1alpha1\nkind: TrustRoot\nmetadata: {name: corp}\n"
        "spec:\n  trustedRootJSON: |\n"
        '    {"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",\n'
        '     "tlogs": [], "certificateAuthorities": []}\n'
    )
    out = setup.run(setup.signed, "--policies", str(tmp_path))
    assert out.returncode == 2
    assert (
        f"{tmp_path / 'root.yaml'} document 2: spec.trustedRootJSON: TrustRoot corp:" in out.stderr
    )

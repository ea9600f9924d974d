"""A real keyless-signed container image through ``reprogate check``, offline.

The image is slsa-verifier's test vector ``container_workflow_dispatch``: an OCI layout written
by ``cosign save`` of a multi-arch image built by slsa-github-generator's
``generator_container_slsa3.yml`` (v1.10.0). It carries a cosign ``.att`` attestation (DSSE,
SLSA v0.2 provenance) with a Fulcio certificate from the public-good Sigstore instance and a
Rekor SET, and no plain signature. The tests push the layout into the local registry and let
``reprogate check`` verify it against the production trust root that ships with ``sigstore``,
with no network beyond 127.0.0.1 (one test blocks every other connection to prove it).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controller.cli import main
from tests.support.registry import RunningRegistry, push_oci_layout

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
LAYOUT = VECTORS / "slsa-verifier" / "container" / "container_workflow_dispatch"
DIGEST_FILE = VECTORS / "slsa-verifier" / "container" / "container_workflow_dispatch.digest"

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
# The certificate's SAN (read from the layer's dev.sigstore.cosign/certificate annotation).
CERT_SUBJECT = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_container_slsa3.yml@refs/tags/v1.10.0"
)
# Any release tag of that reusable workflow: the policy does not pin v1.10.0.
SUBJECT_REGEXP = (
    r"https://github\.com/slsa-framework/slsa-github-generator/\.github/workflows/"
    r"generator_container_slsa3\.yml@refs/tags/v[0-9]+\.[0-9]+\.[0-9]+"
)
OTHER_SUBJECT = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_generic_slsa3.yml@refs/tags/v1.10.0"
)
SLSA_V02 = "https://slsa.dev/provenance/v0.2"
REPO = "e2e-slsa/container-workflow-dispatch"


@dataclass(frozen=True)
class Pushed:
    registry: RunningRegistry
    ref: str  # host/repo@digest


@pytest.fixture(scope="module")
def pushed(registry: RunningRegistry) -> Pushed:
    if not (LAYOUT / "index.json").is_file() or not DIGEST_FILE.is_file():
        pytest.skip(f"slsa-verifier container vector not found under {LAYOUT.parent}")
    layout = push_oci_layout(registry, REPO, LAYOUT)
    expected = DIGEST_FILE.read_text().strip()
    assert layout.image_digest == expected
    return Pushed(registry, registry.ref(REPO, digest=expected))


def write_policy(
    directory: Path,
    host: str,
    *,
    subject: str | None = None,
    subject_regexp: str | None = None,
    issuer: str = GITHUB_ISSUER,
) -> Path:
    """An ImagePolicy requiring SLSA v0.2 provenance from the container generator's identity
    under the production trust root, and no plain signature."""
    directory.mkdir(parents=True, exist_ok=True)
    identity = (
        f"subject: '{subject}'" if subject is not None else f"subjectRegExp: '{subject_regexp}'"
    )
    (directory / "slsa.yaml").write_text(
        f"""apiVersion: reprogate.dev/v1alpha1
kind: ImagePolicy
metadata: {{name: slsa-container-generator}}
spec:
  mode: enforce
  match:
    images: ["{host}/e2e-slsa/**"]
  authorities:
    - name: container-generator
      keyless:
        issuer: {issuer}
        {identity}
        trustRoot: production
  signatures:
    threshold: 0
  attestations:
    - name: provenance
      predicateType: {SLSA_V02}
      authorities: [container-generator]
"""
    )
    return directory


def _check_args(policies: Path, pushed: Pushed) -> list[str]:
    return [
        "check",
        "--policies",
        str(policies),
        "--registry-ca",
        str(pushed.registry.ca_file),
        pushed.ref,
    ]


def test_admitted_offline_with_production_root(pushed: Pushed, tmp_path: Path) -> None:
    policies = write_policy(tmp_path, pushed.registry.host, subject_regexp=SUBJECT_REGEXP)
    # A real process, as an operator would run it.
    proc = subprocess.run(
        [sys.executable, "-m", "controller.cli", *_check_args(policies, pushed)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ADMIT"), proc.stdout
    assert (
        f"ok   attestation:provenance: {SLSA_V02} statement signed by {CERT_SUBJECT} "
        f"(issuer {GITHUB_ISSUER})"
    ) in proc.stdout


def test_exact_subject_is_admitted(
    pushed: Pushed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = write_policy(tmp_path, pushed.registry.host, subject=CERT_SUBJECT)
    assert main(_check_args(policies, pushed)) == 0, capsys.readouterr().out


def test_another_subject_is_denied_naming_expected_and_found(
    pushed: Pushed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = write_policy(tmp_path, pushed.registry.host, subject=OTHER_SUBJECT)
    code = main(_check_args(policies, pushed))
    out = capsys.readouterr().out
    assert code == 1, out
    assert out.startswith("DENY"), out
    assert f"FAIL attestation:provenance: no verified {SLSA_V02} attestation" in out
    assert (
        f"certificate subject '{CERT_SUBJECT}' does not match expected subject '{OTHER_SUBJECT}'"
    ) in out


def test_subject_regexp_is_fully_anchored(
    pushed: Pushed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A prefix of the real subject must not match: the expression has to cover all of it.
    policies = write_policy(
        tmp_path,
        pushed.registry.host,
        subject_regexp=r"https://github\.com/slsa-framework/slsa-github-generator/",
    )
    code = main(_check_args(policies, pushed))
    out = capsys.readouterr().out
    assert code == 1, out
    assert f"certificate subject '{CERT_SUBJECT}' does not match expected subject matching" in out


def test_another_issuer_is_denied_naming_the_issuer_mismatch(
    pushed: Pushed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = write_policy(
        tmp_path,
        pushed.registry.host,
        subject_regexp=SUBJECT_REGEXP,
        issuer="https://accounts.google.com",
    )
    code = main(_check_args(policies, pushed))
    out = capsys.readouterr().out
    assert code == 1, out
    assert (
        f"certificate issuer '{GITHUB_ISSUER}' does not match expected issuer "
        "'https://accounts.google.com'"
    ) in out


def test_no_connection_leaves_loopback(
    pushed: Pushed,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With every socket connection and name lookup except 127.0.0.1 refused in-process,
    verification against the production root still admits the image."""
    attempts: list[Any] = []
    loopback: list[Any] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def is_loopback(address: Any) -> bool:
        return isinstance(address, tuple) and address[0] in ("127.0.0.1", "localhost")

    def connect(self: socket.socket, address: Any) -> None:
        if self.family == socket.AF_UNIX:  # local IPC (e.g. the event loop's self-pipe)
            return real_connect(self, address)
        if not is_loopback(address):
            attempts.append(address)
            raise OSError(f"network blocked by test: {address!r}")
        loopback.append(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family != socket.AF_UNIX and not is_loopback(address):
            attempts.append(address)
            return 111  # ECONNREFUSED
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost", None):
            attempts.append(host)
            raise socket.gaierror(f"name lookup blocked by test: {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    # The guard works: an outside address is refused before any packet leaves.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe, pytest.raises(OSError):
        probe.connect(("192.0.2.1", 443))
    attempts.clear()

    policies = write_policy(tmp_path, pushed.registry.host, subject_regexp=SUBJECT_REGEXP)
    code = main(_check_args(policies, pushed))
    out = capsys.readouterr().out
    assert code == 0, out
    assert attempts == []
    assert loopback, "the check never reached the registry through the guarded connect"

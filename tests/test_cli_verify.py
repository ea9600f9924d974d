"""``reprogate verify``: exit codes and messages of the command-line contract (DESIGN.md).

``reprogate verify --bundle FILE (--identity I --issuer U | --key PEM) [--trusted-root F]
(ARTIFACT_FILE | sha256:HEX)``: exit 0 verified, 1 not verified (reason on stdout after
``FAIL:``), 2 bad input (message on stderr). Real bundles come from sigstore-conformance's
``bundle-verify`` vectors (production root, offline) and from the private test instance
(``--trusted-root``).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from controller.cli import main
from tests.support.cosign_sign import in_toto_statement, public_pem
from tests.support.sigstore_bundle import dsse_bundle
from tests.support.sigstore_pki import DEFAULT_ISSUER, DEFAULT_SUBJECT, TestSigstore

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
CASES = VECTORS / "sigstore-conformance" / "bundle-verify"
IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
ISSUER = "https://token.actions.githubusercontent.com"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def vectors() -> Path:
    if not (CASES / "a.txt").is_file():
        pytest.skip(f"sigstore-conformance vectors not found at {CASES}")
    return CASES


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> Result:
    """``reprogate verify ARGS`` in-process."""
    capsys.readouterr()
    code = main(["verify", *args])
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def run_process(args: list[str]) -> Result:
    """``reprogate verify ARGS`` as a real process."""
    proc = subprocess.run(
        [sys.executable, "-m", "controller.cli", "verify", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def keyless(vectors: Path, case: str, artifact: str, identity: str = IDENTITY) -> list[str]:
    bundle = str(vectors / case / "bundle.sigstore.json")
    return ["--bundle", bundle, "--identity", identity, "--issuer", ISSUER, artifact]


def a_txt_digest(vectors: Path) -> str:
    return "sha256:" + hashlib.sha256((vectors / "a.txt").read_bytes()).hexdigest()


# --------------------------------------------------------------------------- exit 0


def test_happy_bundle_verifies_exit_0(vectors: Path) -> None:
    result = run_process(keyless(vectors, "happy-path-v0.3", str(vectors / "a.txt")))
    assert result.code == 0, result.out + result.err
    assert result.out == f"OK: verified, signed by {IDENTITY} (issuer {ISSUER})\n"


@pytest.mark.parametrize("case", ["happy-path-v0.3", "happy-path-intoto-in-dsse-v3"])
def test_sha256_hex_artifact_form(
    case: str, vectors: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Message signatures and DSSE statements alike verify against a digest alone.
    result = run(keyless(vectors, case, a_txt_digest(vectors)), capsys)
    assert result.code == 0, result.out + result.err
    assert result.out.startswith("OK: verified")


def test_managed_key_vector_with_key_path(
    vectors: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = vectors / "managed-key-happy-path"
    args = ["--bundle", str(case / "bundle.sigstore.json"), "--key", str(case / "key.pub")]
    result = run([*args, str(vectors / "a.txt")], capsys)
    assert result.code == 0, result.out + result.err
    assert result.out.startswith("OK: verified, signed by key ")
    assert run([*args, a_txt_digest(vectors)], capsys).code == 0


def test_private_trusted_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sigstore = TestSigstore(name="cli-sigstore")
    artifact = "sha256:" + hashlib.sha256(b"an image").hexdigest()
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(dsse_bundle(sigstore, sigstore.issue(), in_toto_statement([artifact])))
    root = tmp_path / "trusted_root.json"
    root.write_bytes(sigstore.trusted_root_json())
    args = ["--bundle", str(bundle), "--issuer", DEFAULT_ISSUER, "--trusted-root", str(root)]
    ok = run([*args, "--identity", DEFAULT_SUBJECT, artifact], capsys)
    assert ok.code == 0, ok.out + ok.err
    # Without --trusted-root the production root is used, which never issued this certificate.
    production = run(
        [
            "--bundle",
            str(bundle),
            "--issuer",
            DEFAULT_ISSUER,
            "--identity",
            DEFAULT_SUBJECT,
            artifact,
        ],
        capsys,
    )
    assert production.code == 1
    assert "FAIL: " in production.out and "trust root 'production'" in production.out


# --------------------------------------------------------------------------- exit 1


def test_fail_vector_exits_1_with_reason_on_stdout(vectors: Path) -> None:
    result = run_process(keyless(vectors, "signature-mismatch_fail", str(vectors / "a.txt")))
    assert result.code == 1
    assert result.out == "FAIL: bundle did not verify: Signature is invalid for input\n"
    assert "Traceback" not in result.err


def test_wrong_identity_exits_1_naming_both(
    vectors: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
    result = run(keyless(vectors, "happy-path-v0.3", a_txt_digest(vectors), other), capsys)
    assert result.code == 1
    assert f"certificate subject '{IDENTITY}' does not match expected subject '{other}'" in (
        result.out
    )


def test_digest_of_another_artifact_exits_1(
    vectors: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = "sha256:" + hashlib.sha256(b"not a.txt").hexdigest()
    result = run(keyless(vectors, "happy-path-v0.3", other), capsys)
    assert result.code == 1
    assert result.out == "FAIL: bundle did not verify: Bundle message digest mismatch\n"


def test_key_that_did_not_sign_exits_1(
    vectors: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "other.pub"
    key.write_bytes(public_pem(ec.generate_private_key(ec.SECP256R1())))
    bundle = vectors / "managed-key-happy-path" / "bundle.sigstore.json"
    result = run(["--bundle", str(bundle), "--key", str(key), str(vectors / "a.txt")], capsys)
    assert result.code == 1
    assert result.out == "FAIL: signature does not verify with the signer's key\n"


def test_certificate_bundle_with_key_exits_1(
    vectors: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = vectors / "managed-key-happy-path" / "key.pub"
    bundle = vectors / "happy-path-v0.3" / "bundle.sigstore.json"
    result = run(["--bundle", str(bundle), "--key", str(key), str(vectors / "a.txt")], capsys)
    assert result.code == 1
    assert "signed with a certificate, but the authority is a key" in result.out


# --------------------------------------------------------------------------- exit 2


def test_missing_bundle_flag_exits_2() -> None:
    result = run_process(["--key", "k.pub", "sha256:" + "0" * 64])
    assert result.code == 2
    assert "--bundle" in result.err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--key", "KEY", "--identity", "x", "--issuer", "y"], "use either --key or --identity"),
        (["--identity", "x"], "give --identity and --issuer, or --key"),
        (["--issuer", "y"], "give --identity and --issuer, or --key"),
        ([], "give --identity and --issuer, or --key"),
    ],
)
def test_signer_misuse_exits_2(
    extra: list[str], message: str, vectors: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = str(vectors / "managed-key-happy-path" / "key.pub")
    args = [a if a != "KEY" else key for a in extra]
    bundle = str(vectors / "happy-path-v0.3" / "bundle.sigstore.json")
    result = run(["--bundle", bundle, *args, a_txt_digest(vectors)], capsys)
    assert result.code == 2
    assert result.out == ""
    assert message in result.err


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("artifact", "No such file or directory"),
        ("bundle", "cannot read bundle"),
        ("key", "No such file or directory"),
        ("digest", "is not sha256:<64 hex digits>"),
    ],
)
def test_bad_input_exits_2_without_traceback(
    what: str, message: str, vectors: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = vectors / "managed-key-happy-path"
    bundle, key, artifact = case / "bundle.sigstore.json", case / "key.pub", a_txt_digest(vectors)
    missing = tmp_path / "missing"
    if what == "artifact":
        artifact = str(missing)
    elif what == "bundle":
        bundle = missing
    elif what == "key":
        key = missing
    else:
        artifact = "sha256:xyz"
    result = run(["--bundle", str(bundle), "--key", str(key), artifact], capsys)
    assert result.code == 2, result.out + result.err
    assert result.out == ""
    assert result.err.startswith("reprogate verify: ") and message in result.err

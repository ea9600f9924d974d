"""The policy library in policies/: every case passes, every folder is tested both ways, the
evidence is public material only, and the generator reproduces what is committed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from controller.cli import main
from controller.policy.loader import load_policies
from controller.policy.testing import load_test_files, run_policy_tests
from tests.support.policy_fixtures import write_library

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"
FOLDERS = sorted(p for p in POLICIES.iterdir() if p.is_dir() and p.name != "schema")


def test_reprogate_test_policies_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(POLICIES)]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].endswith(" passed, 0 failed")
    assert "FAIL" not in out


def test_the_library_has_the_promised_policies() -> None:
    names = {p.name for p in load_policies(POLICIES).policies}
    assert names >= {
        "require-key-signature",
        "require-github-workflow",
        "require-slsa3-builders",
        "require-independent-builds",
        "require-hermetic-build",
        "require-vuln-scan",
        "deny-latest-tag",
        "allowed-registries",
        "exception-example",
    }


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_every_folder_has_admitting_and_denying_cases(folder: Path) -> None:
    assert (folder / f"{folder.name}.yaml").read_text().startswith(f"# {folder.name}: ")
    tests, errors = load_test_files(folder)
    assert not errors
    verdicts = [c.expect_verdict for t in tests for c in t.cases]
    assert "deny" in verdicts, f"{folder.name} has no denying case"
    assert {"allow", "warn"} & set(verdicts), f"{folder.name} has no admitting case"
    for t in tests:
        for c in t.cases:
            if c.expect_verdict == "deny":
                assert c.expect_reasons, f"{c.label}: a denying case must say why"


def test_no_private_key_is_committed() -> None:
    for path in POLICIES.rglob("*"):
        if path.is_file():
            assert b"PRIVATE KEY" not in path.read_bytes(), path


def test_the_generator_reproduces_the_library(tmp_path: Path) -> None:
    """Fresh keys, same files: the tests are byte-identical and the new evidence passes."""
    write_library(tmp_path)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(
        p.relative_to(POLICIES)
        for p in POLICIES.rglob("*")
        if p.is_file() and p.relative_to(POLICIES).parts[0] != "schema"
    )
    assert generated == committed
    for rel in generated:
        if rel.name.endswith(".test.yaml") or rel.name == "README.md":
            assert (tmp_path / rel).read_text() == (POLICIES / rel).read_text(), rel
    out = io.StringIO()
    assert run_policy_tests(tmp_path, out) == 0, out.getvalue()

"""Tests for controller.policy.testing (``reprogate test``) on small real policy directories."""

from __future__ import annotations

import asyncio
import io
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from controller import evaluator as evaluator_module
from controller.cli import main
from controller.evaluator import Evaluator
from controller.evidence.model import EvidenceSet
from controller.policy import testing
from controller.policy.testing import (
    MAX_TEST_FILE_BYTES,
    PolicyTestError,
    load_test_file,
    run_policy_tests,
)
from tests.support.cosign_sign import public_pem, sign_image

DIGEST = "sha256:" + "ab" * 32
IMAGE = f"registry.example.com/acme/app:1.0@{DIGEST}"


def _policy(name: str, pem: bytes, images: str = "registry.example.com/acme/**") -> str:
    key = "".join(f"          {line}\n" for line in pem.decode().strip().splitlines())
    return (
        "apiVersion: reprogate.dev/v1alpha1\nkind: ImagePolicy\n"
        f'metadata: {{name: {name}}}\nspec:\n  match:\n    images: ["{images}"]\n'
        "  authorities:\n    - name: release\n      key:\n        pem: |\n" + key
    )


def _tests(*cases: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "reprogate.dev/v1alpha1",
            "kind": "PolicyTest",
            "metadata": {"name": "t"},
            "spec": {"cases": list(cases)},
        },
        sort_keys=False,
    )


def _signed_case(name: str = "signed", verdict: str = "allow", **expect: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": IMAGE,
        "evidence": {"signatures": [{"payload": "sig.json", "signature": "sig.b64"}]},
        "expect": {"verdict": verdict, **expect},
    }


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """A directory with one key policy and a real cosign signature of DIGEST beside it."""
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "policy.yaml").write_text(_policy("signed", public_pem(key)))
    layer = sign_image(key, DIGEST)
    (tmp_path / "sig.json").write_bytes(layer.payload)
    (tmp_path / "sig.b64").write_text(layer.annotations["dev.cosignproject.cosign/signature"])
    return tmp_path


def _run(directory: Path) -> tuple[int, str]:
    out = io.StringIO()
    code = run_policy_tests(directory, out)
    return code, out.getvalue()


# --- passing and failing cases -------------------------------------------------------------


def test_passing_case_exits_0(policy_dir: Path) -> None:
    (policy_dir / "p.test.yaml").write_text(
        _tests(_signed_case(policies={"signed": "pass"}), {
            "name": "unsigned",
            "image": IMAGE,
            "expect": {
                "verdict": "deny",
                "reasons": ["no valid signature", {"check": "signatures", "policy": "signed"}],
                "policies": {"signed": "fail"},
            },
        })
    )  # fmt: skip
    code, out = _run(policy_dir)
    assert code == 0, out
    assert f"PASS {policy_dir / 'p.test.yaml'}::signed" in out
    assert out.strip().splitlines()[-1] == "2 passed, 0 failed"


def test_failing_case_shows_the_difference_and_exits_1(policy_dir: Path) -> None:
    (policy_dir / "p.test.yaml").write_text(
        _tests(
            _signed_case(),
            {"name": "unsigned", "image": IMAGE, "expect": {"verdict": "allow"}},
        )
    )
    code, out = _run(policy_dir)
    assert code == 1
    assert "PASS " in out and "FAIL " in out
    assert "verdict: expected allow, got deny" in out
    # what reprogate decided, check by check, so the author sees why
    assert "policy signed [enforce]: fail" in out
    assert "FAIL signatures: no valid signature" in out
    assert out.strip().splitlines()[-1] == "1 passed, 1 failed"


def test_reason_and_policy_expectations_are_checked(policy_dir: Path) -> None:
    (policy_dir / "p.test.yaml").write_text(
        _tests(
            _signed_case("wrong policy result", policies={"signed": "excepted"}),
            {
                "name": "reason names another check",
                "image": IMAGE,
                "expect": {
                    "verdict": "deny",
                    "reasons": [{"check": "provenance.present"}, "no such words"],
                },
            },
            {
                "name": "check name must match exactly",
                "image": IMAGE,
                "expect": {"verdict": "deny", "reasons": [{"check": "signature"}]},
            },
        )
    )
    code, out = _run(policy_dir)
    assert code == 1
    assert "policy signed: expected excepted, got pass" in out
    assert "reasons: no failed check with check provenance.present" in out
    assert "reasons: no failed check with reason containing 'no such words'" in out
    assert "reasons: no failed check with check signature\n" in out
    assert "0 passed, 3 failed" in out


def test_unmatched_policy_expectation(policy_dir: Path) -> None:
    other = f"docker.io/library/busybox@{DIGEST}"
    (policy_dir / "p.test.yaml").write_text(
        _tests({"name": "out of scope", "image": other,
                "expect": {"verdict": "allow", "policies": {"signed": "unmatched"}}})
    )  # fmt: skip
    assert _run(policy_dir)[0] == 0


def test_now_pins_the_clock(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "apiVersion: reprogate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: clock}\n"
        "spec:\n  conditions:\n    - name: before-2027\n"
        "      expression: 'now < timestamp(\"2027-01-01T00:00:00Z\")'\n"
    )
    case = {"image": IMAGE, "now": "2026-06-01T00:00:00Z"}
    (tmp_path / "p.test.yaml").write_text(
        _tests(
            {"name": "early", **case, "expect": {"verdict": "allow"}},
            {"name": "late", **case, "now": "2027-06-01T00:00:00+02:00",
             "expect": {"verdict": "deny", "reasons": [{"check": "condition:before-2027"}]}},
        )
    )  # fmt: skip
    code, out = _run(tmp_path)
    assert code == 0, out


def test_each_test_file_sees_only_its_folder(tmp_path: Path) -> None:
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "p.yaml").write_text(
            "apiVersion: reprogate.dev/v1alpha1\nkind: ImagePolicy\n"
            f"metadata: {{name: deny-all-{name}}}\n"
            "spec:\n  conditions:\n    - {name: never, expression: 'false'}\n"
        )
        (folder / "p.test.yaml").write_text(
            _tests({"name": "denied by own policy only", "image": IMAGE, "expect": {
                "verdict": "deny", "policies": {f"deny-all-{name}": "fail"}}})
        )  # fmt: skip
    code, out = _run(tmp_path)
    assert code == 0, out
    # a policy of another folder is unknown to this file's scope: a malformed expectation
    (tmp_path / "a" / "p.test.yaml").write_text(
        _tests({"name": "x", "image": IMAGE,
                "expect": {"verdict": "deny", "policies": {"deny-all-b": "fail"}}})
    )  # fmt: skip
    code, out = _run(tmp_path)
    assert code == 2
    assert "no policy named 'deny-all-b'" in out


def test_one_evaluator_per_scope_and_each_scope_loaded_once(
    policy_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[Path] = []
    real_load = testing._load_scope

    def counting_load(directory: Path) -> Any:
        loads.append(directory)
        return real_load(directory)

    built: list[Evaluator] = []

    class CountingEvaluator(Evaluator):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(testing, "_load_scope", counting_load)
    monkeypatch.setattr(evaluator_module, "Evaluator", CountingEvaluator)

    def unsigned(name: str) -> dict[str, Any]:
        return {"name": name, "image": IMAGE, "expect": {"verdict": "deny"}}

    sub = policy_dir / "sub"
    sub.mkdir()
    (sub / "p.yaml").write_text(
        "apiVersion: reprogate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: clock}\n"
        "spec:\n  conditions:\n    - name: before-2027\n"
        "      expression: 'now < timestamp(\"2027-01-01T00:00:00Z\")'\n"
    )
    # The same digest with and without evidence, and clocks either side of 2027, in one scope
    # each: a case that saw an earlier case's evidence, verification or clock would fail.
    (policy_dir / "p.test.yaml").write_text(
        _tests(
            unsigned("unsigned first"),
            _signed_case(),
            unsigned("unsigned again"),
            _signed_case("signed again"),
        )
    )
    (sub / "p.test.yaml").write_text(
        _tests(
            {"name": "late", "image": IMAGE, "now": "2027-06-01T00:00:00Z",
             "expect": {"verdict": "deny"}},
            {"name": "early", "image": IMAGE, "now": "2026-06-01T00:00:00Z",
             "expect": {"verdict": "allow"}},
            {"name": "late again", "image": IMAGE, "now": "2027-06-01T00:00:00Z",
             "expect": {"verdict": "deny"}},
        )
    )  # fmt: skip
    code, out = _run(policy_dir)
    assert code == 0, out
    assert out.strip().splitlines()[-1] == "7 passed, 0 failed"
    assert loads == [policy_dir]  # the directory loads once; scopes are cut from it
    assert len(built) == 2


def test_a_load_still_running_from_an_earlier_case_is_never_joined(policy_dir: Path) -> None:
    (policy_dir / "p.test.yaml").write_text(_tests(_signed_case()))
    (case,) = load_test_file(policy_dir / "p.test.yaml").cases
    policy_set, roots = testing._load_scope(policy_dir)

    async def scenario() -> None:
        runner = testing._ScopeRunner(policy_set, roots)
        first = runner._evaluator
        never: asyncio.Future[EvidenceSet] = asyncio.get_running_loop().create_future()
        stuck = asyncio.ensure_future(first.evidence.get("left over", lambda: never))
        await asyncio.sleep(0)  # let the load start
        assert first.evidence.loading == 1
        verdict = await runner.run(case)
        assert verdict.verdict == "allow"
        assert runner._evaluator is not first  # a fresh one, with nothing in flight
        second = runner._evaluator
        assert (await runner.run(case)).verdict == "allow"
        assert runner._evaluator is second  # reused while nothing is left running
        stuck.cancel()

    asyncio.run(scenario())


def test_cli_runs_tests(policy_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (policy_dir / "p.test.yaml").write_text(_tests(_signed_case()))
    assert main(["test", str(policy_dir)]) == 0
    assert "1 passed, 0 failed" in capsys.readouterr().out
    assert main(["test", str(policy_dir / "p.test.yaml")]) == 0  # one file also works
    assert main(["test", str(policy_dir / "missing")]) == 2


def test_no_cases_is_a_failure(policy_dir: Path) -> None:
    code, out = _run(policy_dir)
    assert code == 1
    assert "no test cases" in out


# --- malformed test files ------------------------------------------------------------------


def _malformed(directory: Path, case: dict[str, Any]) -> str:
    (directory / "bad.test.yaml").write_text(_tests(case))
    code, out = _run(directory)
    assert code == 2, out
    assert "no case was run" in out
    return out


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"expected": {}}, "expected", "unknown field"),
        ({"image": "registry.example.com/acme/app:1.0"}, "image", "must be pinned"),
        ({"image": "UPPER/Case@sha256:12"}, "image", ""),
        ({"now": "yesterday"}, "now", "RFC 3339"),
        ({"now": "2026-01-01T00:00:00"}, "now", "timezone"),
        ({"expect": {"verdict": "admit"}}, "expect.verdict", "allow, deny or warn"),
        ({"expect": {"verdict": "allow", "policy": {}}}, "expect.policy", "unknown field"),
        ({"expect": {"verdict": "allow", "policies": {"signed": "ok"}}},
         "expect.policies.signed", "pass, fail, excepted, unmatched"),
        ({"expect": {"verdict": "allow", "reasons": [{"chek": "x"}]}},
         "expect.reasons[0].chek", "unknown field"),
        ({"expect": {"verdict": "allow", "reasons": "signatures"}}, "expect.reasons", "list"),
        ({"evidence": {"signature": []}}, "evidence.signature", "unknown field"),
        ({"evidence": {"signatures": [{"payload": "sig.json", "sig": "x"}]}},
         "evidence.signatures[0].sig", "unknown field"),
        ({"evidence": {"bundles": ["missing.json"]}}, "evidence.bundles[0]", "cannot read"),
        ({"evidence": {"links": [""]}}, "evidence.links[0]", "non-empty string"),
        ({"evidence": {"attestations": [{"certificate": "sig.json"}]}},
         "evidence.attestations[0].envelope", "is required"),
        ({"groups": "admins"}, "groups", "list of strings"),
    ],
)  # fmt: skip
def test_malformed_case_names_file_case_and_field(
    policy_dir: Path, change: dict[str, Any], field: str, message: str
) -> None:
    case = {**_signed_case("the case"), **change}
    out = _malformed(policy_dir, case)
    (line,) = [x for x in out.splitlines() if x.startswith("ERROR ")]
    assert line.startswith(f"ERROR {policy_dir / 'bad.test.yaml'} case 1 'the case': {field}: ")
    assert message in line


def test_missing_name_and_expect(policy_dir: Path) -> None:
    out = _malformed(policy_dir, {"image": IMAGE, "expect": {"verdict": "allow"}})
    assert "case 1: name: must be a non-empty string" in out
    out = _malformed(policy_dir, {"name": "n", "image": IMAGE})
    assert "case 1 'n': expect: is required" in out


@pytest.mark.parametrize(
    "text",
    [
        "apiVersion: reprogate.dev/v1alpha1\nkind: ImagePolicy\nspec: {}\n",
        "apiVersion: reprogate.dev/v1alpha1\nkind: PolicyTest\nspec: {cases: []}\n",
        "apiVersion: reprogate.dev/v1alpha1\nkind: PolicyTest\nspec: {cases: [{}]}\nextra: 1\n",
        "apiVersion: reprogate.dev/v1alpha1\nkind: PolicyTest\nspec: {cases: [], more: 1}\n",
        "a: &x 1\nb: *x\n",
        "apiVersion: v\napiVersion: v\n",
        "kind: [unclosed\n",
    ],
)
def test_malformed_documents(policy_dir: Path, text: str) -> None:
    (policy_dir / "bad.test.yaml").write_text(text)
    code, out = _run(policy_dir)
    assert code == 2
    assert f"ERROR {policy_dir / 'bad.test.yaml'}" in out


def test_every_malformed_file_is_reported(policy_dir: Path) -> None:
    (policy_dir / "one.test.yaml").write_text(_tests({**_signed_case(), "image": "x:1"}))
    (policy_dir / "two.test.yaml").write_text(_tests({**_signed_case(), "now": "never"}))
    code, out = _run(policy_dir)
    assert code == 2
    assert "one.test.yaml case 1 'signed': image" in out
    assert "two.test.yaml case 1 'signed': now" in out
    assert "2 errors; no case was run" in out


def test_duplicate_case_names(policy_dir: Path) -> None:
    (policy_dir / "p.test.yaml").write_text(_tests(_signed_case(), _signed_case()))
    code, out = _run(policy_dir)
    assert code == 2
    assert "case 2 'signed': name: duplicate case name" in out


def test_oversized_test_file(policy_dir: Path) -> None:
    (policy_dir / "big.test.yaml").write_text("#" * (MAX_TEST_FILE_BYTES + 1))
    code, out = _run(policy_dir)
    assert code == 2
    assert "larger than" in out


def test_policies_that_do_not_load_exit_2(policy_dir: Path) -> None:
    (policy_dir / "p.test.yaml").write_text(_tests(_signed_case()))
    (policy_dir / "broken.yaml").write_text("apiVersion: reprogate.dev/v1alpha1\nkind: Nope\n")
    code, out = _run(policy_dir)
    assert code == 2
    assert "broken.yaml document 1: kind" in out


# --- evidence paths ------------------------------------------------------------------------


@pytest.mark.parametrize("escape", ["../outside.json", "sub/../../outside.json", "ABSOLUTE"])
def test_evidence_path_escaping_the_directory_is_refused(tmp_path: Path, escape: str) -> None:
    root = tmp_path / "policies"
    root.mkdir()
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    rel = str(outside) if escape == "ABSOLUTE" else escape
    (root / "p.test.yaml").write_text(
        _tests({"name": "escape", "image": IMAGE, "evidence": {"bundles": [rel]},
                "expect": {"verdict": "allow"}})
    )  # fmt: skip
    code, out = _run(root)
    assert code == 2
    assert "case 1 'escape': evidence.bundles[0]:" in out
    assert "outside the tested directory" in out


def test_symlink_out_of_the_directory_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "policies"
    root.mkdir()
    (tmp_path / "secret.json").write_text("{}")
    os.symlink(tmp_path / "secret.json", root / "link.json")
    (root / "p.test.yaml").write_text(
        _tests({"name": "link", "image": IMAGE, "evidence": {"bundles": ["link.json"]},
                "expect": {"verdict": "allow"}})
    )  # fmt: skip
    code, out = _run(root)
    assert code == 2
    assert "outside the tested directory" in out


def test_dotdot_inside_the_tested_directory_is_allowed(policy_dir: Path) -> None:
    sub = policy_dir / "cases"  # the loader skips a folder called cases: same policies apply
    sub.mkdir()
    (policy_dir / "p.test.yaml").write_text(_tests(_signed_case()))
    case = _signed_case("shared evidence")
    case["evidence"] = {"signatures": [{"payload": "../sig.json", "signature": "../sig.b64"}]}
    (sub / "p.test.yaml").write_text(_tests(case))
    code, out = _run(policy_dir)
    assert code == 0, out


def test_directory_as_evidence_is_refused(policy_dir: Path) -> None:
    (policy_dir / "dir").mkdir()
    out = _malformed(
        policy_dir,
        {**_signed_case("d"), "evidence": {"bundles": ["dir"]}},
    )
    assert "evidence.bundles[0]: dir is not a regular file" in out


def test_load_test_file_api(policy_dir: Path) -> None:
    path = policy_dir / "p.test.yaml"
    path.write_text(_tests(_signed_case(reasons=["x", {"check": "signatures"}])))
    loaded = load_test_file(path)
    (case,) = loaded.cases
    assert case.evidence.digest == DIGEST
    assert case.evidence.signatures[0].signature_b64
    assert [r.check for r in case.expect_reasons] == [None, "signatures"]
    path.write_text(_tests({**_signed_case(), "image": "x"}))
    with pytest.raises(PolicyTestError) as info:
        load_test_file(path)
    assert info.value.field == "image"
    assert info.value.where == "case 1 'signed'"


# --- docs/policies.md ----------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs" / "policies.md"


def _docs_blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOCS.read_text(), re.DOTALL)


def test_docs_format_example_loads(tmp_path: Path) -> None:
    block = _docs_blocks("yaml-test")[0]
    for rel in re.findall(r"evidence/[\w.-]+", block):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")
    (tmp_path / "docs.test.yaml").write_text(block)
    loaded = load_test_file(tmp_path / "docs.test.yaml")
    first, second = loaded.cases
    assert first.evidence.signatures[0].rekor_bundle == b"{}"
    assert first.expect_policies == {"release-images": "pass"}
    assert second.expect_reasons[1].check == "signatures"


def test_docs_exception_example_passes_against_the_docs_policy(tmp_path: Path) -> None:
    (policy,) = [b for b in _docs_blocks("yaml") if "signed-with-legacy-exception" in b]
    (tmp_path / "policy.yaml").write_text(policy)
    (tmp_path / "exception.test.yaml").write_text(_docs_blocks("yaml-test")[1])
    code, out = _run(tmp_path)
    assert code == 0, out
    assert "2 passed, 0 failed" in out


def test_a_trust_root_above_a_folder_is_visible_to_its_tests(policy_dir: Path) -> None:
    """A library shares one private TrustRoot at its top; each folder's tests see it."""
    from tests.support.sigstore_pki import TestSigstore

    root_json = TestSigstore(name="corp", with_tsa=False).trusted_root_json().decode()
    indented = "\n".join("    " + line for line in root_json.splitlines())
    (policy_dir / "trustroot.yaml").write_text(
        "apiVersion: reprogate.dev/v1alpha1\nkind: TrustRoot\nmetadata: {name: corp}\n"
        f"spec:\n  trustedRootJSON: |\n{indented}\n"
    )
    sub = policy_dir / "keyless"
    sub.mkdir()
    (sub / "p.yaml").write_text(
        "apiVersion: reprogate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: corp-ci}\n"
        "spec:\n  authorities:\n    - name: ci\n      keyless:\n"
        "        issuer: https://oidc.corp.example\n        subject: ci@corp.example\n"
        "        trustRoot: corp\n"
    )
    (sub / "p.test.yaml").write_text(
        _tests({"name": "unsigned", "image": IMAGE, "expect": {"verdict": "deny"}})
    )
    code, out = _run(sub.parent)
    assert code == 0, out
    assert "keyless/p.test.yaml::unsigned" in out


def test_every_bad_case_of_a_file_is_reported_in_one_run(policy_dir: Path) -> None:
    (policy_dir / "bad.test.yaml").write_text(
        _tests(
            {"name": "a", "image": "nginx", "expect": {"verdict": "deny"}},
            {"name": "b", "image": IMAGE, "expect": {"verdict": "maybe"}},
            {"name": "c", "image": IMAGE, "bogus": 1, "expect": {"verdict": "deny"}},
        )
    )
    code, out = _run(policy_dir)
    assert code == 2
    errors = [line for line in out.splitlines() if line.startswith("ERROR ")]
    assert len(errors) == 3, out
    assert out.strip().splitlines()[-1] == "3 errors; no case was run"

"""``reprogate audit --replay``: recorded decisions decided again under other policies,
against a real TLS registry with real signatures."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from controller.config import Settings
from controller.decisions.record import DecisionRecord, ImageRecord
from controller.decisions.replay import replay_records
from controller.evaluator import Evaluator
from controller.evidence.source import OfflineEvidence
from controller.policy.loader import load_policy_documents
from controller.verify.trustroot import TrustRoots
from tests.support.cosign_sign import public_pem
from tests.support.registry import RunningRegistry, push_random_image
from tests.support.webhook import ROOT
from tests.test_e2e_webhook import push_signed, write_policy


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_replay_shows_what_a_stricter_policy_would_have_denied(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    old_key = ec.generate_private_key(ec.SECP256R1())
    new_key = ec.generate_private_key(ec.SECP256R1())
    push_signed(registry, "e2e/app", "replay-old", old_key)
    push_random_image(registry, "e2e/app", "replay-unsigned")
    signed, unsigned = (
        registry.ref("e2e/app", "replay-old"),
        registry.ref("e2e/app", "replay-unsigned"),
    )
    then = write_policy(tmp_path / "then", registry.host, public_pem(old_key))
    now = write_policy(tmp_path / "now", registry.host, public_pem(new_key))
    ca = ["--registry-ca", str(registry.ca_file)]

    checked = _cli("check", signed, unsigned, "--policies", str(then), "-o", "json", *ca)
    assert checked.returncode == 1, checked.stderr
    log = tmp_path / "decisions.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in json.loads(checked.stdout)))

    table = _cli("audit", str(log), "--replay", str(now), *ca)
    assert table.returncode == 0, table.stderr
    assert f"{signed}@sha256:" in table.stdout and ": allow -> deny" in table.stdout
    assert "2 recorded image decisions replayed; 1 would be decided differently" in table.stdout

    rows = json.loads(_cli("audit", str(log), "--replay", str(now), "-o", "json", *ca).stdout)
    by_ref = {r["image"].split("@")[0]: r for r in rows}
    assert by_ref[signed]["before"] == "allow" and by_ref[signed]["after"] == "deny"
    assert by_ref[signed]["changed"] is True
    assert by_ref[unsigned]["changed"] is False
    assert any("signatures" in reason for reason in by_ref[signed]["reasons"])


@pytest.mark.parametrize("output", ["csv", "html"])
def test_replay_refuses_outputs_it_does_not_write(tmp_path: Path, output: str) -> None:
    (tmp_path / "log").write_text("")
    out = _cli("audit", str(tmp_path / "log"), "--replay", str(tmp_path), "-o", output)
    assert out.returncode == 2
    assert "-o table or -o json" in out.stderr


def test_replay_matches_the_reference_as_written_at_the_recorded_digest() -> None:
    """A tag exception that excepted an image then excepts it in the replay too: the recorded
    ``app:legacy`` is not turned into ``app:legacy@sha256:...`` (which no tag glob waives),
    and its tag is not resolved again."""
    from tests.test_policy_engine import DIGEST, NOW, policy

    extra = """  exceptions:
    - images: ["registry.example.com/acme/app:legacy"]
      reason: "INC-42"
"""
    evaluator = Evaluator(
        Settings(),
        load_policy_documents(policy("p", extra=extra), "now.yaml"),
        OfflineEvidence({}),  # resolving a tag offline fails: the recorded digest must be used
        TrustRoots(),
        clock=lambda: NOW,
    )
    record = DecisionRecord(
        time="2026-06-01T00:00:00.000Z",
        uid="u",
        decision="allow",
        mode="enforce",
        operation="CREATE",
        kind="Pod",
        namespace="prod",
        name="p",
        user="bob",
        images=(ImageRecord("registry.example.com/acme/app:legacy", DIGEST, "allow"),),
        latency_ms=1.0,
        cache={},
    )
    (row,) = asyncio.run(replay_records([record], evaluator))
    assert (row.before, row.after, row.reasons) == ("allow", "allow", ())
    assert row.image == f"registry.example.com/acme/app:legacy@{DIGEST}"

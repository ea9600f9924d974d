"""PolicyReloader: changes are applied, broken edits are refused and keep the old set."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from controller.policy.model import PolicySet
from controller.policy.reload import PolicyReloader
from controller.verify.trustroot import TrustRoots

POLICY = (
    "apiVersion: reprogate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {{name: {name}}}\n"
    "spec:\n  signatures: {{threshold: 0}}\n"
)


def test_reload_applies_changes_and_refuses_broken_ones(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(POLICY.format(name="a"))
    applied: list[tuple[str, ...]] = []

    def apply(policy_set: PolicySet, roots: TrustRoots) -> None:
        applied.append(tuple(p.name for p in policy_set.policies))

    reloader = PolicyReloader(tmp_path, 1.0, apply)

    async def scenario() -> None:
        assert await reloader.check() is False  # nothing changed since construction
        (tmp_path / "b.yaml").write_text(POLICY.format(name="b"))
        assert await reloader.check() is True
        assert applied == [("a", "b")]
        (tmp_path / "b.yaml").write_text("apiVersion: [oops\n")
        os.utime(tmp_path / "b.yaml", ns=(1, 1))  # a distinct mtime even on coarse clocks
        assert await reloader.check() is False
        assert reloader.failures == 1 and "b.yaml" in (reloader.last_error or "")
        assert applied == [("a", "b")]  # the broken edit never replaced the set in force
        (tmp_path / "b.yaml").unlink()
        assert await reloader.check() is True
        assert applied[-1] == ("a",) and reloader.last_error is None

    asyncio.run(scenario())

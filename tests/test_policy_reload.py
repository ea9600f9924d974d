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


def test_a_configmap_update_is_seen(tmp_path: Path) -> None:
    """kubelet updates a ConfigMap volume by writing a new ``..<timestamp>`` directory and
    swapping the ``..data`` symlink; the visible files are symlinks through it."""
    (tmp_path / "..v1").mkdir()
    (tmp_path / "..v1" / "p.yaml").write_text(POLICY.format(name="first"))
    (tmp_path / "..data").symlink_to("..v1")
    (tmp_path / "p.yaml").symlink_to("..data/p.yaml")
    applied: list[tuple[str, ...]] = []
    reloader = PolicyReloader(
        tmp_path, 1.0, lambda ps, roots: applied.append(tuple(p.name for p in ps.policies))
    )

    async def scenario() -> None:
        (tmp_path / "..v2").mkdir()
        (tmp_path / "..v2" / "p.yaml").write_text(POLICY.format(name="second-version"))
        (tmp_path / "..data_tmp").symlink_to("..v2")
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
        assert await reloader.check() is True
        assert applied == [("second-version",)]

    asyncio.run(scenario())

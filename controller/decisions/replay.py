"""Replay recorded decisions under other policies: "what would this policy have denied?"

Each image of each kept decision record is evaluated again, pinned to the digest that was
admitted or denied then, against the policies given now (evidence is read from the registry
as admission would). Auditors and security teams see which decisions would change before a
policy is enforced.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TextIO

from controller.admission.model import AdmissionRequest, ImageUse
from controller.decisions.record import DecisionRecord
from controller.evaluator import Evaluator

__all__ = ["ReplayRow", "replay_records", "write_replay"]


@dataclass(frozen=True)
class ReplayRow:
    """One recorded image and its verdict then and now."""

    time: str
    namespace: str
    workload: str  # Kind/name
    image: str  # the reference as evaluated now (pinned to the recorded digest)
    before: str
    after: str
    reasons: tuple[str, ...]  # why it is denied or warned now

    @property
    def changed(self) -> bool:
        """True when the verdict differs."""
        return self.before != self.after


def _pinned(ref: str, digest: str) -> str:
    return ref if "@" in ref else f"{ref}@{digest}"


async def replay_records(
    records: Sequence[DecisionRecord], evaluator: Evaluator
) -> list[ReplayRow]:
    """Every image of ``records`` that carries a digest, decided again by ``evaluator``."""
    rows: list[ReplayRow] = []
    for record in records:
        for i, image in enumerate(record.images):
            if not image.digest:
                continue  # nothing to replay: it never resolved (bad reference, registry down)
            ref = _pinned(image.ref, image.digest)
            request = AdmissionRequest(
                uid=f"replay-{record.uid}-{i}",
                kind=record.kind,
                namespace=record.namespace,
                name=record.name,
                operation=record.operation,
                user=record.user,
                groups=(),
                object={},
                images=(),
            )
            # the reference as written, at the recorded digest: tag globs in excludeImages and
            # exceptions apply as they did, and the tag is not resolved again
            now = await evaluator.evaluate_image(
                ImageUse(image.ref, f"image-{i}", f"/replay/{i}"), request, resolved=image.digest
            )
            rows.append(
                ReplayRow(
                    time=record.time,
                    namespace=record.namespace,
                    workload=f"{record.kind}/{record.name}",
                    image=ref,
                    before=image.verdict,
                    after=now.verdict,
                    reasons=tuple(now.denial_reasons() + now.warnings()),
                )
            )
    return rows


def write_replay(rows: Sequence[ReplayRow], output: str, out: TextIO) -> None:
    """A table of the decisions that would change (or JSON of every row), then a summary."""
    changed = [r for r in rows if r.changed]
    if output == "json":
        json.dump([{**asdict(r), "changed": r.changed} for r in rows], out, indent=2)
        out.write("\n")
        return
    for r in changed:
        out.write(f"{r.time}  {r.namespace}  {r.workload}  {r.image}: {r.before} -> {r.after}\n")
        for reason in r.reasons[:3]:
            out.write(f"    {reason}\n")
    out.write(
        f"{len(rows)} recorded image decisions replayed; {len(changed)} would be decided "
        "differently\n"
    )

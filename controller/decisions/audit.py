"""``reprogate audit``: read decision logs back, filter them and report.

Rules enforced:
- Input is JSON lines as written by :class:`controller.decisions.record.DecisionLog`; a bad line
  is reported on stderr with its file and line number and skipped, never fatal.
- ``--since`` takes RFC 3339 (``2026-01-02T03:04:05Z``) or a relative age (``90s``, ``15m``,
  ``24h``, ``7d``, ``2w``); ``--namespace`` matches exactly; ``--policy`` keeps records where that
  policy was applied to any image; ``--decision`` is one of allow, deny, warn.
- Output is ``table`` (aligned text, control characters replaced, summary line), ``json`` (one
  array), ``csv`` (one row per image, spreadsheet formula prefixes neutralised) or ``html``
  (one self-contained page, every value HTML-escaped).
- Exit status: 0 when the report was written, 2 on a bad argument or an unreadable log.
"""

from __future__ import annotations

import csv
import html
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TextIO

from controller.decisions.record import DecisionRecord, DecisionRecordError, parse_time

__all__ = [
    "OUTPUTS",
    "AuditFilter",
    "AuditUsageError",
    "parse_since",
    "read_records",
    "run_audit",
    "write_csv",
    "write_html",
    "write_json",
    "write_table",
]

OUTPUTS = ("table", "json", "csv", "html")
DECISIONS = ("allow", "deny", "warn")
_RELATIVE = re.compile(r"^(\d{1,9})([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MAX_LINE = 4 * 1024 * 1024


class AuditUsageError(ValueError):
    """A filter or output option is not valid."""


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """``text`` as an aware datetime: RFC 3339, or a relative age like ``24h`` before ``now``."""
    m = _RELATIVE.match(text.strip())
    if m:
        amount, unit = int(m.group(1)), m.group(2)
        return (now or datetime.now(UTC)) - timedelta(seconds=amount * _UNIT_SECONDS[unit])
    try:
        return parse_time(text)
    except ValueError:
        raise AuditUsageError(
            f"--since {text!r} is neither RFC 3339 (2026-01-02T03:04:05Z) "
            "nor a relative age like 24h or 7d"
        ) from None


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which records to keep; ``None`` means no constraint."""

    since: datetime | None = None
    namespace: str | None = None
    policy: str | None = None
    decision: str | None = None

    def keeps(self, record: DecisionRecord) -> bool:
        """True when ``record`` passes every given constraint."""
        if self.since is not None and record.timestamp < self.since:
            return False
        if self.namespace is not None and record.namespace != self.namespace:
            return False
        if self.decision is not None and record.decision != self.decision:
            return False
        return self.policy is None or self.policy in record.policy_names()


def _lines(path: str) -> Iterator[tuple[int, str]]:
    if path == "-":
        yield from enumerate(sys.stdin, start=1)
        return
    with open(path, encoding="utf-8", errors="replace") as fh:
        yield from enumerate(fh, start=1)


def read_records(paths: Sequence[str], err: TextIO) -> tuple[list[DecisionRecord], int]:
    """Every parseable record in ``paths`` (``-`` = stdin) and the count of skipped lines.

    Raises OSError when a file cannot be opened.
    """
    records: list[DecisionRecord] = []
    skipped = 0
    for path in paths or ["-"]:
        label = "<stdin>" if path == "-" else path
        for n, line in _lines(path):
            if not line.strip():
                continue
            if len(line) > _MAX_LINE:
                err.write(f"{label}:{n}: skipped: line longer than {_MAX_LINE} characters\n")
                skipped += 1
                continue
            try:
                records.append(DecisionRecord.from_json(line))
            except DecisionRecordError as exc:
                err.write(f"{label}:{n}: skipped: {exc}\n")
                skipped += 1
    return records, skipped


# --- shared helpers --------------------------------------------------------------------------


def _printable(text: str) -> str:
    # Records carry attacker-influenced strings (image names, users): never let them drive
    # the terminal.
    return "".join(c if c.isprintable() else "?" for c in text)


def _first_failure(record: DecisionRecord) -> str:
    for image in record.images:
        if image.error:
            return f"{image.ref}: {image.error}"
        for policy in image.policies:
            if policy.result != "fail":
                continue
            for check in policy.checks:
                if check.result == "fail":
                    return f"{image.ref}: {policy.name}: {check.check}: {check.reason}"
    return ""


def _summary(records: Sequence[DecisionRecord], skipped: int) -> str:
    counts = Counter(r.decision for r in records)
    parts = ", ".join(f"{counts[d]} {d}" for d in DECISIONS)
    others = sum(v for k, v in counts.items() if k not in DECISIONS)
    if others:
        parts += f", {others} other"
    text = f"{len(records)} record{'s' if len(records) != 1 else ''} ({parts})"
    if skipped:
        text += f"; {skipped} bad line{'s' if skipped != 1 else ''} skipped"
    return text


# --- writers ---------------------------------------------------------------------------------

_TABLE_COLUMNS = ("TIME", "DECISION", "NAMESPACE", "KIND", "NAME", "USER", "IMAGES", "REASON")
_MAX_CELL = 100


def _table_row(r: DecisionRecord) -> tuple[str, ...]:
    cells = (
        r.time,
        r.decision,
        r.namespace,
        r.kind,
        r.name,
        r.user,
        str(len(r.images)),
        _first_failure(r),
    )
    out = []
    for cell in cells:
        cell = _printable(cell)
        out.append(cell if len(cell) <= _MAX_CELL else cell[: _MAX_CELL - 3] + "...")
    return tuple(out)


def write_table(records: Sequence[DecisionRecord], skipped: int, out: TextIO) -> None:
    """Aligned columns, then a summary line."""
    rows = [_TABLE_COLUMNS, *(_table_row(r) for r in records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_TABLE_COLUMNS))]
    for row in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
    out.write(_summary(records, skipped) + "\n")


def write_json(records: Sequence[DecisionRecord], out: TextIO) -> None:
    """One JSON array of records in the decision-log shape."""
    json.dump([r.to_dict() for r in records], out, indent=2)
    out.write("\n")


_CSV_COLUMNS = (
    "time",
    "uid",
    "decision",
    "mode",
    "operation",
    "kind",
    "namespace",
    "name",
    "user",
    "image",
    "digest",
    "verdict",
    "policies",
    "failures",
    "latencyMs",
)


def _csv_safe(value: str) -> str:
    # A cell starting with these is a formula to spreadsheet programs (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _csv_rows(r: DecisionRecord) -> Iterable[list[str]]:
    base = [r.time, r.uid, r.decision, r.mode, r.operation, r.kind, r.namespace, r.name, r.user]
    if not r.images:
        yield [*base, "", "", "", "", "", f"{r.latency_ms:g}"]
        return
    for image in r.images:
        failures = [f"{image.ref}: {image.error}"] if image.error else []
        failures += [
            f"{p.name}: {c.check}: {c.reason}"
            for p in image.policies
            if p.result == "fail"
            for c in p.checks
            if c.result == "fail"
        ]
        policies = "; ".join(f"{p.name}={p.result}" for p in image.policies)
        yield [
            *base,
            image.ref,
            image.digest or "",
            image.verdict,
            policies,
            "; ".join(failures),
            f"{r.latency_ms:g}",
        ]


def write_csv(records: Sequence[DecisionRecord], out: TextIO) -> None:
    """One row per image (one row for a record without images), RFC 4180 quoting."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    for r in records:
        for row in _csv_rows(r):
            writer.writerow([_csv_safe(c) for c in row])


_HTML_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top;font-size:14px}
th{background:#f0f0f0}
tr.deny td:nth-child(2){color:#b00020;font-weight:bold}
tr.warn td:nth-child(2){color:#a06000;font-weight:bold}
tr.allow td:nth-child(2){color:#006400}
code{font-size:13px;word-break:break-all}
ul{margin:0;padding-left:1.2em}
"""


def _h(value: object) -> str:
    return html.escape(str(value), quote=True)


def _html_images(r: DecisionRecord) -> str:
    items = []
    for image in r.images:
        lines = [
            f"<code>{_h(image.ref)}</code> {_h(image.verdict)}"
            + (f" <code>{_h(image.digest)}</code>" if image.digest else "")
        ]
        if image.error:
            lines.append(f"error: {_h(image.error)}")
        for p in image.policies:
            failed = [c for c in p.checks if c.result == "fail"]
            detail = "; ".join(f"{_h(c.check)}: {_h(c.reason)}" for c in failed)
            lines.append(f"{_h(p.name)}: {_h(p.result)}" + (f" ({detail})" if detail else ""))
        items.append("<li>" + "<br>".join(lines) + "</li>")
    return "<ul>" + "".join(items) + "</ul>" if items else ""


def write_html(records: Sequence[DecisionRecord], skipped: int, out: TextIO) -> None:
    """A single self-contained HTML page (inline CSS, no scripts, no external resources)."""
    out.write(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>reprogate decisions</title>"
        f"<style>{_HTML_STYLE}</style></head><body>\n"
        "<h1>reprogate decisions</h1>\n"
        f"<p>{_h(_summary(records, skipped))}</p>\n<table>\n<thead><tr>"
    )
    for col in ("Time", "Decision", "Namespace", "Kind", "Name", "User", "Operation", "Images"):
        out.write(f"<th>{col}</th>")
    out.write("</tr></thead>\n<tbody>\n")
    for r in records:
        css = r.decision if r.decision in DECISIONS else "other"
        cells = (r.time, r.decision, r.namespace, r.kind, r.name, r.user, r.operation)
        out.write(f'<tr class="{css}">' + "".join(f"<td>{_h(c)}</td>" for c in cells))
        out.write(f"<td>{_html_images(r)}</td></tr>\n")
    out.write("</tbody></table>\n</body></html>\n")


def run_audit(
    paths: Sequence[str],
    since: str | None,
    namespace: str | None,
    policy: str | None,
    decision: str | None,
    output: str,
    out_stream: TextIO,
    *,
    err_stream: TextIO | None = None,
    now: datetime | None = None,
) -> int:
    """Read ``paths`` (empty or ``-``: stdin), filter, and write the report to ``out_stream``.

    Returns 0 on success, 2 on a bad option or an unreadable log (message on ``err_stream``).
    """
    err = err_stream or sys.stderr
    try:
        if output not in OUTPUTS:
            raise AuditUsageError(f"output {output!r} is not one of {', '.join(OUTPUTS)}")
        if decision is not None and decision not in DECISIONS:
            raise AuditUsageError(f"--decision {decision!r} is not one of {', '.join(DECISIONS)}")
        filt = AuditFilter(
            since=parse_since(since, now=now) if since else None,
            namespace=namespace,
            policy=policy,
            decision=decision,
        )
    except AuditUsageError as exc:
        err.write(f"reprogate audit: {exc}\n")
        return 2
    try:
        records, skipped = read_records(paths, err)
    except OSError as exc:
        err.write(f"reprogate audit: cannot read {exc.filename or 'input'}: {exc.strerror}\n")
        return 2
    kept = sorted((r for r in records if filt.keeps(r)), key=lambda r: r.timestamp)
    if output == "table":
        write_table(kept, skipped, out_stream)
    elif output == "json":
        write_json(kept, out_stream)
    elif output == "csv":
        write_csv(kept, out_stream)
    else:
        write_html(kept, skipped, out_stream)
    return 0

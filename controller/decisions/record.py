"""Decision records: one JSON object per admission review (DESIGN.md "Decision record").

Fields: ``time, uid, decision, mode, operation, kind, namespace, name, user, images[{ref,
digest, verdict, policies[{name, result, checks[{check, result, reason}]}], evidence{signers,
slsaLevel, builder, source{repository, ref, commit}, dependencies[{uri, digest}],
independentBuilds}}], latencyMs, cache``. An image that failed before any policy ran (bad
reference, registry unreachable, deadline) also carries ``error`` so the record explains it.

Rules enforced:
- Enough to explain and replay a decision, never a secret: no object body, no pull secrets,
  no user groups or extra attributes, only verified evidence summaries.
- ``time`` is RFC 3339 in UTC with millisecond precision and a ``Z`` suffix.
- ``from_json`` ignores unknown fields (newer writers) but is strict on the types of the fields
  it knows, raising :class:`DecisionRecordError`.
- :class:`DecisionLog` writes one line per record, flushed, under a lock; a failed write is
  logged and reported as ``False``, never raised (it must not turn a denial into an error path
  that could admit).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from controller.admission.model import AdmissionRequest, ReviewDecision
from controller.policy.verdict import ImageVerdict

__all__ = [
    "CheckRecord",
    "DecisionLog",
    "DecisionLogError",
    "DecisionRecord",
    "DecisionRecordError",
    "DependencyRecord",
    "EvidenceRecord",
    "ImageRecord",
    "PolicyRecord",
    "SourceRecord",
    "format_time",
    "parse_time",
    "record_from",
]

log = logging.getLogger("reprogate.decisions")

MAX_LINE_CHARS = 4 * 1024 * 1024


class DecisionRecordError(ValueError):
    """A decision record line is not valid JSON or has a field of the wrong type."""


class DecisionLogError(OSError):
    """The decision log cannot be opened."""


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-01-02T03:04:05.678Z``."""
    if moment.tzinfo is None:
        raise ValueError("decision times must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp (``Z`` or numeric offset) into an aware datetime."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no timezone offset")
    return moment


# --- value objects -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckRecord:
    """One check of one policy: ``result`` is ``pass`` or ``fail``."""

    check: str
    result: str
    reason: str


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """One policy applied to one image: ``result`` is ``pass``, ``fail`` or ``excepted``."""

    name: str
    result: str
    checks: tuple[CheckRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """Where the verified provenance says the image was built from."""

    repository: str | None = None
    ref: str | None = None
    commit: str | None = None


@dataclass(frozen=True, slots=True)
class DependencyRecord:
    """One resolved build dependency from verified provenance."""

    uri: str
    digest: str


@dataclass(frozen=True, slots=True)
class EvidenceRecord:
    """Summary of the verified evidence for one image."""

    signers: tuple[str, ...] = ()
    slsa_level: int = 0
    builder: str | None = None
    source: SourceRecord = SourceRecord()
    dependencies: tuple[DependencyRecord, ...] = ()
    independent_builds: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """One image of the review and what was decided about it."""

    ref: str
    digest: str | None
    verdict: str
    policies: tuple[PolicyRecord, ...] = ()
    evidence: EvidenceRecord = EvidenceRecord()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One admission review, as written to the decision log."""

    time: str
    uid: str
    decision: str
    mode: str
    operation: str
    kind: str
    namespace: str
    name: str
    user: str
    images: tuple[ImageRecord, ...]
    latency_ms: float
    cache: Mapping[str, int]

    @property
    def timestamp(self) -> datetime:
        """``time`` as an aware datetime."""
        return parse_time(self.time)

    def policy_names(self) -> set[str]:
        """Every policy that appears on any image."""
        return {p.name for i in self.images for p in i.policies}

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape, with DESIGN.md's field names and order."""
        return {
            "time": self.time,
            "uid": self.uid,
            "decision": self.decision,
            "mode": self.mode,
            "operation": self.operation,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "user": self.user,
            "images": [_image_dict(i) for i in self.images],
            "latencyMs": self.latency_ms,
            "cache": dict(self.cache),
        }

    def to_json_line(self) -> str:
        """One line of JSON (no trailing newline), ASCII-only so any log sink accepts it."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=True)

    @classmethod
    def from_json(cls, line: str | bytes) -> DecisionRecord:
        """Parse one line written by :meth:`to_json_line` (or a newer writer)."""
        if len(line) > MAX_LINE_CHARS:
            raise DecisionRecordError(f"record longer than {MAX_LINE_CHARS} characters")
        try:
            data = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DecisionRecordError(f"not JSON: {exc}") from None
        except RecursionError:
            raise DecisionRecordError("not JSON: nested too deeply") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> DecisionRecord:
        """Build from parsed JSON; strict on known fields' types, unknown fields ignored."""
        d = _obj(data, "record")
        time_text = _str(d, "time", "record")
        try:
            parse_time(time_text)
        except ValueError as exc:
            raise DecisionRecordError(f"record.time: {exc}") from None
        cache_raw = _obj(d.get("cache", {}), "record.cache")
        cache: dict[str, int] = {}
        for key, value in cache_raw.items():
            if not isinstance(value, int) or isinstance(value, bool):
                raise DecisionRecordError(f"record.cache.{key} must be an integer")
            cache[key] = value
        latency = d.get("latencyMs", 0)
        if not isinstance(latency, int | float) or isinstance(latency, bool):
            raise DecisionRecordError("record.latencyMs must be a number")
        return cls(
            time=time_text,
            uid=_str(d, "uid", "record"),
            decision=_str(d, "decision", "record"),
            mode=_str(d, "mode", "record", default=""),
            operation=_str(d, "operation", "record", default=""),
            kind=_str(d, "kind", "record", default=""),
            namespace=_str(d, "namespace", "record", default=""),
            name=_str(d, "name", "record", default=""),
            user=_str(d, "user", "record", default=""),
            images=tuple(
                _image_from(x, f"record.images[{i}]")
                for i, x in enumerate(_list(d, "images", "record"))
            ),
            latency_ms=float(latency),
            cache=cache,
        )


# --- JSON helpers ----------------------------------------------------------------------------


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DecisionRecordError(f"{where} must be an object, got {type(value).__name__}")
    return value


_REQUIRED = object()


def _str(d: dict[str, Any], key: str, where: str, default: Any = _REQUIRED) -> str:
    if key not in d:
        if default is _REQUIRED:
            raise DecisionRecordError(f"{where}.{key} is missing")
        return str(default)
    value = d[key]
    if not isinstance(value, str):
        raise DecisionRecordError(f"{where}.{key} must be a string")
    return value


def _opt_str(d: dict[str, Any], key: str, where: str) -> str | None:
    value = d.get(key)
    if value is not None and not isinstance(value, str):
        raise DecisionRecordError(f"{where}.{key} must be a string or null")
    return value


def _list(d: dict[str, Any], key: str, where: str) -> list[Any]:
    value = d.get(key, [])
    if not isinstance(value, list):
        raise DecisionRecordError(f"{where}.{key} must be a list")
    return value


def _str_list(d: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    values = _list(d, key, where)
    if not all(isinstance(v, str) for v in values):
        raise DecisionRecordError(f"{where}.{key} must be a list of strings")
    return tuple(values)


def _image_dict(image: ImageRecord) -> dict[str, Any]:
    ev = image.evidence
    out: dict[str, Any] = {
        "ref": image.ref,
        "digest": image.digest,
        "verdict": image.verdict,
        "policies": [
            {
                "name": p.name,
                "result": p.result,
                "checks": [
                    {"check": c.check, "result": c.result, "reason": c.reason} for c in p.checks
                ],
            }
            for p in image.policies
        ],
        "evidence": {
            "signers": list(ev.signers),
            "slsaLevel": ev.slsa_level,
            "builder": ev.builder,
            "source": {
                "repository": ev.source.repository,
                "ref": ev.source.ref,
                "commit": ev.source.commit,
            },
            "dependencies": [{"uri": d.uri, "digest": d.digest} for d in ev.dependencies],
            "independentBuilds": list(ev.independent_builds),
        },
    }
    if image.error is not None:
        out["error"] = image.error
    return out


def _image_from(value: Any, where: str) -> ImageRecord:
    d = _obj(value, where)
    policies = []
    for i, p_raw in enumerate(_list(d, "policies", where)):
        pw = f"{where}.policies[{i}]"
        p = _obj(p_raw, pw)
        checks = []
        for j, c_raw in enumerate(_list(p, "checks", pw)):
            cw = f"{pw}.checks[{j}]"
            c = _obj(c_raw, cw)
            checks.append(
                CheckRecord(_str(c, "check", cw), _str(c, "result", cw), _str(c, "reason", cw, ""))
            )
        policies.append(PolicyRecord(_str(p, "name", pw), _str(p, "result", pw), tuple(checks)))
    ew = f"{where}.evidence"
    e = _obj(d.get("evidence", {}), ew)
    level = e.get("slsaLevel", 0)
    if not isinstance(level, int) or isinstance(level, bool):
        raise DecisionRecordError(f"{ew}.slsaLevel must be an integer")
    sw = f"{ew}.source"
    s = _obj(e.get("source") or {}, sw)
    deps = []
    for k, dep_raw in enumerate(_list(e, "dependencies", ew)):
        dw = f"{ew}.dependencies[{k}]"
        dep = _obj(dep_raw, dw)
        deps.append(DependencyRecord(_str(dep, "uri", dw, ""), _str(dep, "digest", dw, "")))
    evidence = EvidenceRecord(
        signers=_str_list(e, "signers", ew),
        slsa_level=level,
        builder=_opt_str(e, "builder", ew),
        source=SourceRecord(
            _opt_str(s, "repository", sw), _opt_str(s, "ref", sw), _opt_str(s, "commit", sw)
        ),
        dependencies=tuple(deps),
        independent_builds=_str_list(e, "independentBuilds", ew),
    )
    return ImageRecord(
        ref=_str(d, "ref", where),
        digest=_opt_str(d, "digest", where),
        verdict=_str(d, "verdict", where),
        policies=tuple(policies),
        evidence=evidence,
        error=_opt_str(d, "error", where),
    )


# --- building records ------------------------------------------------------------------------


def _image_record(v: ImageVerdict) -> ImageRecord:
    ev = v.evidence
    src = ev.source or {}
    return ImageRecord(
        ref=v.ref,
        digest=v.digest,
        verdict=v.verdict,
        policies=tuple(
            PolicyRecord(
                name=p.name,
                result=p.result,
                checks=tuple(
                    CheckRecord(c.check, "pass" if c.passed else "fail", c.reason) for c in p.checks
                ),
            )
            for p in v.policies
        ),
        evidence=EvidenceRecord(
            signers=tuple(ev.signers),
            slsa_level=ev.slsa_level,
            builder=ev.builder,
            source=SourceRecord(src.get("repository"), src.get("ref"), src.get("commit")),
            dependencies=tuple(
                DependencyRecord(str(d.get("uri", "")), str(d.get("digest", "")))
                for d in ev.dependencies
            ),
            independent_builds=tuple(ev.independent_builds),
        ),
        error=v.error,
    )


def record_from(
    request: AdmissionRequest,
    decision: ReviewDecision,
    latency_ms: float,
    *,
    now: datetime | None = None,
) -> DecisionRecord:
    """The record of ``decision`` on ``request``; ``now`` defaults to the current UTC time."""
    return DecisionRecord(
        time=format_time(now or datetime.now(UTC)),
        uid=request.uid,
        decision=decision.decision,
        mode=decision.mode,
        operation=request.operation,
        kind=request.kind,
        namespace=request.namespace,
        name=request.name,
        user=request.user,
        images=tuple(_image_record(v) for v in decision.images),
        latency_ms=round(float(latency_ms), 3),
        cache={str(k): int(v) for k, v in decision.cache.items()},
    )


# --- the log ---------------------------------------------------------------------------------


class DecisionLog:
    """Appends decision records as JSON lines to stdout (``"-"``) or a file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        self._closed = False
        if path != "-":
            try:
                self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives with self
            except OSError as exc:
                raise DecisionLogError(f"cannot open decision log {path}: {exc}") from exc

    def write(self, record: DecisionRecord) -> bool:
        """Write and flush one line; on failure log the error and return False."""
        try:
            line = record.to_json_line() + "\n"
            with self._lock:
                if self._closed:
                    raise ValueError("decision log is closed")
                # Look up sys.stdout at write time so redirection (and tests) are honoured.
                stream = self._file if self._file is not None else sys.stdout
                stream.write(line)
                stream.flush()
        except (OSError, ValueError) as exc:
            log.error("could not write decision record uid=%s: %s", record.uid, exc)
            return False
        return True

    def close(self) -> None:
        """Close the file (stdout is left open)."""
        with self._lock:
            self._closed = True
            if self._file is not None:
                self._file.close()

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

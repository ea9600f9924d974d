"""Prometheus metrics for the webhook, rendered by hand in the text exposition format 0.0.4.

Rules enforced:
- Metric and label names are fixed at construction and checked against the Prometheus grammar.
- Label values are escaped (backslash, double quote, newline) as the format requires.
- Histograms are cumulative: ``_bucket{le=...}`` counts include every smaller bucket, ``+Inf``
  equals ``_count``.
- Updates are guarded by a lock so a thread (e.g. a decision-log writer) may also record.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "CONTENT_TYPE",
    "AdmissionMetrics",
    "Counter",
    "Gauge",
    "Histogram",
    "Registry",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        if not _NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        for label in labelnames:
            if not _LABEL.match(label) or label == "le":
                raise ValueError(f"invalid label name {label!r}")
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()

    def _key(self, labels: Sequence[str]) -> tuple[str, ...]:
        if len(labels) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(labels)}")
        return tuple(labels)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def render(self) -> list[str]:
        raise NotImplementedError


class _Summed(_Metric):
    """A number per label set, changed by adding to it (counters and gauges)."""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labelnames)
        self._values: dict[tuple[str, ...], float] = {}

    def _add(self, labels: Sequence[str], amount: float) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, *labels: str) -> float:
        """Current value of one series (0 when never changed)."""
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        if not items and not self.labelnames:
            items = [((), 0.0)]  # an unlabelled series always exists
        return _series_lines(self, items)


def _series_lines(metric: _Metric, items: Sequence[tuple[tuple[str, ...], float]]) -> list[str]:
    return [*metric.header()] + [
        f"{metric.name}{_labels(metric.labelnames, k)} {_fmt(v)}" for k, v in items
    ]


class Counter(_Summed):
    """A monotonically increasing count per label set."""

    kind = "counter"

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        """Add ``amount`` (>= 0) to the series for ``labels``."""
        if amount < 0:
            raise ValueError("a counter cannot decrease")
        self._add(labels, amount)


class Gauge(_Summed):
    """A value that goes up and down per label set."""

    kind = "gauge"

    def add(self, *labels: str, amount: float = 1.0) -> None:
        """Add ``amount`` (may be negative)."""
        self._add(labels, amount)


class Collected(_Metric):
    """Values read from their owner at scrape time (e.g. cache counters), not pushed."""

    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str],
        kind: str,
        collect: Callable[[], Mapping[tuple[str, ...], float]],
    ) -> None:
        super().__init__(name, help_text, labelnames)
        self.kind = kind
        self._collect = collect

    def render(self) -> list[str]:
        return _series_lines(self, sorted(self._collect().items()))


@dataclass
class _Series:
    counts: list[int]
    total: float = 0.0
    count: int = 0


class Histogram(_Metric):
    """Observations in cumulative buckets, with ``_sum`` and ``_count``."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        super().__init__(name, help_text, labelnames)
        if list(buckets) != sorted(set(buckets)) or not buckets:
            raise ValueError("buckets must be strictly increasing")
        self.buckets = tuple(float(b) for b in buckets)
        self._series: dict[tuple[str, ...], _Series] = {}

    def observe(self, value: float, *labels: str) -> None:
        """Record one observation for ``labels``."""
        key = self._key(labels)
        with self._lock:
            series = self._series.setdefault(key, _Series(counts=[0] * len(self.buckets)))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    series.counts[i] += 1
            series.total += value
            series.count += 1

    def count(self, *labels: str) -> int:
        """Number of observations for ``labels``."""
        with self._lock:
            series = self._series.get(self._key(labels))
            return series.count if series else 0

    def render(self) -> list[str]:
        lines = self.header()
        with self._lock:
            items = sorted(
                (k, _Series(list(s.counts), s.total, s.count)) for k, s in self._series.items()
            )
        for key, series in items:
            for bound, n in zip(self.buckets, series.counts, strict=True):
                le = f'le="{_fmt(bound)}"'
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, le)} {n}")
            inf = 'le="+Inf"'
            lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, inf)} {series.count}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, key)} {_fmt(series.total)}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, key)} {series.count}")
        return lines


@dataclass
class Registry:
    """An ordered set of metrics rendered together."""

    metrics: list[_Metric] = field(default_factory=list)

    def register(self, metric: _Metric) -> None:
        """Add ``metric``; names must be unique."""
        if any(m.name == metric.name for m in self.metrics):
            raise ValueError(f"metric {metric.name} already registered")
        self.metrics.append(metric)

    def render(self) -> str:
        """The whole exposition, newline-terminated."""
        lines: list[str] = []
        for metric in self.metrics:
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"


class AdmissionMetrics:
    """The webhook's own metrics, one instance per application."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.requests = Counter(
            "reprogate_admission_requests_total",
            "Admission reviews answered, by path and decision (allow, deny, warn, error).",
            ("path", "decision"),
        )
        self.errors = Counter(
            "reprogate_admission_errors_total",
            "Reviews that failed: bad_request, too_large, timeout, internal.",
            ("path", "reason"),
        )
        self.latency = Histogram(
            "reprogate_admission_duration_seconds",
            "Time from reading a review to answering it.",
            ("path",),
        )
        self.in_flight = Gauge(
            "reprogate_admission_in_flight", "Reviews being evaluated right now."
        )
        self.events_emitted = Counter(
            "reprogate_events_emitted_total",
            "Kubernetes Events created for decisions, by reason (ReprogateDenied, ...).",
            ("reason",),
        )
        self.events_dropped = Counter(
            "reprogate_events_dropped_total",
            "Kubernetes Events not created: queue_full (API server too slow) or api_error.",
            ("cause",),
        )
        for metric in (
            self.requests,
            self.errors,
            self.latency,
            self.in_flight,
            self.events_emitted,
            self.events_dropped,
        ):
            self.registry.register(metric)

    def add_collected(self, metric: Collected) -> None:
        """Register a metric whose values its owner reports at scrape time."""
        self.registry.register(metric)

    def render(self) -> str:
        """Prometheus text exposition of every metric."""
        return self.registry.render()

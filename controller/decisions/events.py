"""Kubernetes Events for denials and warnings (DESIGN.md data flow, "decisions/: ... Event").

Implements core/v1 ``Event`` creation as ``kubectl describe`` shows it: the Event names the
workload (``involvedObject``), a ``reason`` and a human ``message``.

Rules:
- Only denials (reason ``ReprogateDenied``) and admissions with warnings (``ReprogateWarning``)
  produce an Event, type ``Warning``; plain admissions and dry-run requests produce none.
- An Event never delays or changes an admission answer: ``emit`` only enqueues (bounded queue,
  default 256); a background task posts. When the queue is full the Event is dropped and
  counted (``reprogate_events_dropped_total{cause="queue_full"}``).
- API failures are counted (``cause="api_error"``) and logged at warning level at most once a
  minute (with the number suppressed meanwhile); nothing is ever raised to the caller.
- The message is the denial message as the admission response shows it (or the warnings),
  on one line, capped at 1 KiB of UTF-8, the limit the Events API documents for a note. It
  carries what the decision record says, never a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes import client as k8s

from controller.admission.metrics import AdmissionMetrics
from controller.admission.model import AdmissionRequest, ReviewDecision
from controller.admission.response import denial_message

__all__ = [
    "COMPONENT",
    "MAX_EVENT_MESSAGE_BYTES",
    "REASON_DENIED",
    "REASON_WARNING",
    "DecisionEvent",
    "EventSink",
    "EventWriter",
    "KubernetesEvents",
    "NullEvents",
    "decision_event",
    "event_body",
]

log = logging.getLogger("reprogate.events")

COMPONENT = "reprogate"
REASON_DENIED = "ReprogateDenied"
REASON_WARNING = "ReprogateWarning"
MAX_EVENT_MESSAGE_BYTES = 1024
_TRUNCATED = " …(truncated)"
_LOG_INTERVAL = 60.0
_MAX_NAME_PREFIX = 200  # generateName prefix; the API server appends 5 characters
_NOT_DNS = re.compile(r"[^a-z0-9.-]+")


class EventSink(Protocol):
    """Where decisions become Kubernetes Events; must return at once and never raise."""

    async def emit(self, request: AdmissionRequest, decision: ReviewDecision) -> None:
        """Record ``decision`` on ``request``'s workload (or do nothing)."""
        ...


class EventWriter(Protocol):
    """The one API call KubernetesEvents needs (``controller.kube.KubeClient`` has it)."""

    async def create_event(self, namespace: str, event: Any) -> None:
        """POST a core/v1 Event into ``namespace``."""
        ...


class NullEvents:
    """No Events (outside a cluster, or ``events: false``)."""

    async def emit(self, request: AdmissionRequest, decision: ReviewDecision) -> None:
        """Do nothing."""
        return None

    async def close(self) -> None:
        """Nothing to stop."""
        return None


@dataclass(frozen=True, slots=True)
class DecisionEvent:
    """What one Event says: where it goes, which workload, why."""

    namespace: str
    kind: str
    name: str
    api_version: str | None
    uid: str | None
    reason: str
    message: str


def decision_event(request: AdmissionRequest, decision: ReviewDecision) -> DecisionEvent | None:
    """The Event for a decision, or None when the decision deserves none (allow, dry run)."""
    if request.dry_run:
        return None
    if not decision.allowed:
        # the same text the API server shows the user (response.review_response)
        text = decision.message or denial_message(decision.images) or "denied by reprogate"
        reason = REASON_DENIED
    elif decision.warnings:
        reason = REASON_WARNING
        text = "reprogate admitted this workload with warnings: " + "; ".join(decision.warnings)
    else:
        return None
    api_version = request.object.get("apiVersion")
    meta = request.object.get("metadata")
    uid = meta.get("uid") if isinstance(meta, Mapping) else None
    return DecisionEvent(
        # core/v1 Events about cluster-scoped objects live in "default", as client-go does
        namespace=request.namespace or "default",
        kind=request.kind,
        name=request.name,
        api_version=api_version if isinstance(api_version, str) and api_version else None,
        uid=uid if isinstance(uid, str) and uid else None,
        reason=reason,
        message=_cap_utf8(_one_line(text), MAX_EVENT_MESSAGE_BYTES),
    )


def event_body(event: DecisionEvent, *, instance: str, now: datetime) -> Any:
    """The ``kubernetes.client.CoreV1Event`` to POST for ``event``."""
    stamp = now.astimezone(UTC).replace(microsecond=0)
    return k8s.CoreV1Event(
        api_version="v1",
        kind="Event",
        metadata=k8s.V1ObjectMeta(
            generate_name=_name_prefix(event.name), namespace=event.namespace
        ),
        involved_object=k8s.V1ObjectReference(
            api_version=event.api_version,
            kind=event.kind,
            name=event.name,
            namespace=event.namespace,
            uid=event.uid,
        ),
        reason=event.reason,
        message=event.message,
        type="Warning",
        source=k8s.V1EventSource(component=COMPONENT),
        reporting_component=COMPONENT,
        reporting_instance=instance[:128] or COMPONENT,
        first_timestamp=stamp,
        last_timestamp=stamp,
        count=1,
    )


class KubernetesEvents:
    """Posts decision Events in the background through a bounded queue."""

    def __init__(
        self,
        writer: EventWriter,
        *,
        metrics: AdmissionMetrics | None = None,
        queue_size: int = 256,
        workers: int = 1,
        instance: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if queue_size < 1 or workers < 1:
            raise ValueError("queue_size and workers must be at least 1")
        self._writer = writer
        self._metrics = metrics or AdmissionMetrics()
        self._queue_size = queue_size
        self._workers = workers
        self._instance = instance or socket.gethostname()
        self._queue: asyncio.Queue[DecisionEvent] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._failures = _Throttled(clock)
        self._drops = _Throttled(clock)

    @property
    def metrics(self) -> AdmissionMetrics:
        """Where emitted and dropped Events are counted."""
        return self._metrics

    async def emit(self, request: AdmissionRequest, decision: ReviewDecision) -> None:
        """Queue the Event for ``decision``; returns at once, never raises."""
        try:
            event = decision_event(request, decision)
            if event is None:
                return
            queue = self._running_queue()
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self._metrics.events_dropped.inc("queue_full")
                self._drops.warn(
                    "Event queue full (%d): dropped the %s Event for %s %s/%s",
                    self._queue_size,
                    event.reason,
                    event.kind,
                    event.namespace,
                    event.name,
                )
        except Exception:  # an Event is never worth failing a review for
            log.exception("could not queue an Event for uid=%s", request.uid)

    async def close(self, timeout: float = 2.0) -> None:
        """Give queued Events ``timeout`` seconds to go out, then stop the workers."""
        queue, self._queue = self._queue, None
        if queue is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(queue.join(), timeout)
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _running_queue(self) -> asyncio.Queue[DecisionEvent]:
        if self._queue is None or not self._tasks or all(t.done() for t in self._tasks):
            queue: asyncio.Queue[DecisionEvent] = asyncio.Queue(maxsize=self._queue_size)
            self._queue = queue
            self._tasks = [
                asyncio.create_task(self._work(queue), name=f"reprogate-events-{i}")
                for i in range(self._workers)
            ]
        return self._queue

    async def _work(self, queue: asyncio.Queue[DecisionEvent]) -> None:
        while True:
            event = await queue.get()
            try:
                await self._post(event)
            finally:
                queue.task_done()

    async def _post(self, event: DecisionEvent) -> None:
        try:
            body = event_body(event, instance=self._instance, now=datetime.now(UTC))
            await self._writer.create_event(event.namespace, body)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._metrics.events_dropped.inc("api_error")
            self._failures.warn(
                "could not create the %s Event for %s %s/%s: %s",
                event.reason,
                event.kind,
                event.namespace,
                event.name,
                exc,
            )
            return
        self._metrics.events_emitted.inc(event.reason)


class _Throttled:
    """A warning logged at most once per interval, saying how many were suppressed."""

    def __init__(self, clock: Callable[[], float], interval: float = _LOG_INTERVAL) -> None:
        self._clock = clock
        self._interval = interval
        self._next = float("-inf")
        self._suppressed = 0

    def warn(self, message: str, *args: object) -> None:
        now = self._clock()
        if now < self._next:
            self._suppressed += 1
            return
        if self._suppressed:
            message += " (%d similar messages suppressed in the last minute)"
            args = (*args, self._suppressed)
        self._suppressed = 0
        self._next = now + self._interval
        log.warning(message, *args)


def _one_line(text: str) -> str:
    # an Event message is shown in one table row: the response's lines joined with "; ",
    # other control characters become spaces
    out = ""
    for line in (ln.strip() for ln in text.split("\n")):
        if not line:
            continue
        line = "".join(c if c.isprintable() else " " for c in line)
        if out:
            out += " " if out.endswith(":") else "; "
        out += line
    return out


def _cap_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, on a character boundary, marked."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    room = limit - len(_TRUNCATED.encode("utf-8"))
    return data[:room].decode("utf-8", "ignore") + _TRUNCATED


def _name_prefix(name: str) -> str:
    """A DNS-subdomain prefix for ``generateName``: the workload name, sanitised, plus '.'."""
    labels = (label.strip("-") for label in _NOT_DNS.sub("-", name.lower()).split("."))
    base = ".".join(label for label in labels if label)[:_MAX_NAME_PREFIX].strip("-.")
    return f"{base or COMPONENT}."

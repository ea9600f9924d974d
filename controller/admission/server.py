"""The webhook's aiohttp application: routes, thin handlers, fail-closed deadlines.

Routes: ``POST /validate``, ``POST /mutate``, ``GET /healthz``, ``GET /readyz``, ``GET /metrics``.

Rules enforced:
- Bodies are read with a hard cap (default 3 MiB); larger ones get 413 before being buffered.
- A malformed AdmissionReview gets 400 with the parser's message; the server keeps serving.
- The evaluator runs under the deadline, measured from the moment the request arrived. On
  timeout or any exception the review is denied (fail closed) with "reprogate could not reach
  a decision within Ns: <what>", and a decision record is still written.
- Exactly one decision record per parsed review; a failed record write is logged, not raised.
- After the record, the decision goes to the EventSink (if any), which only enqueues: an
  Event never delays or changes the answer, and its failure is logged, not raised.
- ``/mutate`` answers with the evaluator's patch, or when it gives none, a patch pinning
  admitted tag-only images to their digests.
- ``/healthz`` is 200 while the process serves; ``/readyz`` is 200 only when the evaluator is
  ready and the server is not shutting down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import ssl
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from aiohttp import web

from controller.admission.metrics import CONTENT_TYPE, AdmissionMetrics
from controller.admission.model import AdmissionRequest, ReviewDecision, ReviewEvaluator
from controller.admission.response import digest_pin_patch, review_response
from controller.admission.review import AdmissionReviewError, parse_admission_review
from controller.decisions.record import DecisionLog, record_from
from controller.policy.verdict import ImageVerdict

if TYPE_CHECKING:  # kubernetes is imported only when Events are enabled
    from controller.decisions.events import EventSink

__all__ = [
    "DEFAULT_MAX_BODY",
    "METRICS_KEY",
    "build_app",
    "fail_closed_decision",
    "run_server",
    "start_server",
]

log = logging.getLogger("reprogate.admission")

DEFAULT_MAX_BODY = 3 * 1024 * 1024
METRICS_KEY = web.AppKey("reprogate_metrics", AdmissionMetrics)
_STATE_KEY = web.AppKey("reprogate_state", dict[str, Any])
_READ_CHUNK = 64 * 1024


class _BodyTooLarge(Exception):
    pass


async def _read_capped(request: web.Request, max_body: int) -> bytes:
    if request.content_length is not None and request.content_length > max_body:
        raise _BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(_READ_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > max_body:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def fail_closed_decision(
    request: AdmissionRequest, deadline_seconds: float, what: str
) -> ReviewDecision:
    """The denial used when no decision was reached; every image carries the reason."""
    images = list(dict.fromkeys(u.image for u in request.images))
    named = ", ".join(images[:3]) + (f" and {len(images) - 3} more" if len(images) > 3 else "")
    message = f"reprogate could not reach a decision within {deadline_seconds:g}s: {what}" + (
        f" (evaluating {named}); retry, and if it persists check reprogate's logs and the "
        "registries it reads"
        if images
        else ""
    )
    return ReviewDecision(
        allowed=False,
        message=message,
        images=tuple(
            ImageVerdict(ref=u.image, digest=None, verdict="deny", policies=(), error=message)
            for u in request.images
        ),
        decision="deny",
        mode="enforce",
    )


def build_app(
    evaluator: ReviewEvaluator,
    *,
    decision_log: DecisionLog,
    deadline_seconds: float,
    max_body: int = DEFAULT_MAX_BODY,
    events: EventSink | None = None,
    metrics: AdmissionMetrics | None = None,
) -> web.Application:
    """The webhook application; ``deadline_seconds`` bounds each review end to end.

    ``events`` receives every decision after its record is written (Kubernetes Events);
    ``metrics`` lets the caller share one metrics object with it.
    """
    if deadline_seconds <= 0:
        raise ValueError("deadline_seconds must be positive")
    app = web.Application(client_max_size=max_body)
    metrics = metrics if metrics is not None else AdmissionMetrics()
    app[METRICS_KEY] = metrics
    state: dict[str, Any] = {"draining": False, "tasks": set()}
    app[_STATE_KEY] = state

    async def decide(
        request: AdmissionRequest, *, mutate: bool, started: float
    ) -> tuple[ReviewDecision, str | None]:
        """The evaluator's decision, or a fail-closed one and the error kind."""
        remaining = max(0.0, deadline_seconds - (time.monotonic() - started))
        # A task rather than awaiting in place: if the evaluator swallows cancellation the
        # answer still leaves on time, and the straggler is only logged.
        task = asyncio.ensure_future(evaluator.evaluate(request, mutate=mutate))
        done, _ = await asyncio.wait({task}, timeout=remaining)
        if not done:
            task.cancel()
            state["tasks"].add(task)
            task.add_done_callback(_forget(state["tasks"]))
            log.error("evaluation of uid=%s exceeded %gs", request.uid, deadline_seconds)
            return fail_closed_decision(request, deadline_seconds, "evaluation timed out"), (
                "timeout"
            )
        try:
            return task.result(), None
        except (Exception, asyncio.CancelledError) as exc:
            # the task is done, so a CancelledError here is the evaluator's own (this handler
            # was not cancelled): deny like any other failure, never answer HTTP 500
            log.exception("evaluation failed for uid=%s", request.uid)
            what = f"internal error ({type(exc).__name__})"
            return fail_closed_decision(request, deadline_seconds, what), "internal"

    async def review(http: web.Request, *, mutate: bool) -> web.StreamResponse:
        path = http.path
        started = time.monotonic()
        try:
            body = await _read_capped(http, max_body)
        except _BodyTooLarge:
            metrics.errors.inc(path, "too_large")
            log.warning("rejected review on %s: body larger than %d bytes", path, max_body)
            return web.Response(
                status=413,
                text=f"AdmissionReview body is larger than the {max_body} byte limit\n",
            )
        try:
            request = parse_admission_review(body)
        except AdmissionReviewError as exc:
            metrics.errors.inc(path, "bad_request")
            log.warning("malformed AdmissionReview on %s: %s", path, exc)
            return web.Response(status=400, text=f"malformed AdmissionReview: {exc}\n")

        metrics.in_flight.add()
        try:
            decision, failure = await decide(request, mutate=mutate, started=started)
        finally:
            metrics.in_flight.add(amount=-1)
        if failure is not None:
            metrics.errors.inc(path, failure)
        try:
            if not mutate and decision.patch:
                # A validating webhook must not answer with a patch.
                decision = replace(decision, patch=())
            if mutate and decision.allowed and not decision.patch:
                patch = digest_pin_patch(request, decision.images)
                if patch:
                    decision = replace(decision, patch=patch)
            answer = review_response(request.uid, decision, api_version=request.api_version)
            body_out = json.dumps(answer).encode()
        except Exception as exc:
            # An unencodable decision must still be a denial, never an HTTP 500 that a
            # failurePolicy of Ignore would turn into an admission.
            log.exception("could not encode the response for uid=%s", request.uid)
            metrics.errors.inc(path, "internal")
            what = f"internal error ({type(exc).__name__})"
            decision = fail_closed_decision(request, deadline_seconds, what)
            answer = review_response(request.uid, decision, api_version=request.api_version)
            body_out = json.dumps(answer).encode()
        latency = time.monotonic() - started
        metrics.latency.observe(latency, path)
        metrics.requests.inc(path, decision.decision)
        try:
            decision_log.write(record_from(request, decision, latency * 1000))
        except Exception:
            log.exception("could not build the decision record for uid=%s", request.uid)
        if events is not None:
            try:
                await events.emit(request, decision)
            except Exception:
                log.exception("could not hand the decision for uid=%s to Events", request.uid)
        log.info(
            "uid=%s %s %s %s/%s images=%d decision=%s latency_ms=%.1f",
            request.uid,
            request.operation,
            request.kind,
            request.namespace,
            request.name,
            len(request.images),
            decision.decision,
            latency * 1000,
        )
        return web.Response(body=body_out, content_type="application/json")

    async def validate(http: web.Request) -> web.StreamResponse:
        return await review(http, mutate=False)

    async def mutate(http: web.Request) -> web.StreamResponse:
        return await review(http, mutate=True)

    async def healthz(_: web.Request) -> web.StreamResponse:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.StreamResponse:
        if state["draining"]:
            return web.Response(status=503, text="shutting down\n")
        try:
            ready = evaluator.ready()
        except Exception:
            log.exception("readiness check failed")
            ready = False
        if not ready:
            return web.Response(status=503, text="policies or trust roots not loaded\n")
        return web.Response(text="ready\n")

    async def metrics_handler(_: web.Request) -> web.StreamResponse:
        return web.Response(body=metrics.render().encode(), headers={"Content-Type": CONTENT_TYPE})

    app.add_routes(
        [
            web.post("/validate", validate),
            web.post("/mutate", mutate),
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/metrics", metrics_handler),
        ]
    )
    return app


def _forget(tasks: set[asyncio.Future[ReviewDecision]]) -> Any:
    def done(task: asyncio.Future[ReviewDecision]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("evaluation finished after its deadline with %r", task.exception())

    return done


async def start_server(
    app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None
) -> tuple[web.AppRunner, int]:
    """Start serving ``app``; returns the runner and the bound port (useful with port 0)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    bound = port
    if port == 0 and runner.addresses:
        bound = int(runner.addresses[0][1])
    return runner, bound


async def run_server(
    app: web.Application,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    *,
    stop: asyncio.Event | None = None,
    shutdown_timeout: float = 10.0,
    drain_delay: float = 0.0,
) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set), then drain in-flight reviews.

    On shutdown ``/readyz`` turns 503 and the server keeps answering for ``drain_delay``
    seconds (while Kubernetes removes the endpoint), then the listener closes and running
    handlers get up to ``shutdown_timeout`` seconds to finish.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        log.info("serving on %s:%d (%s)", host, port, "TLS" if ssl_context else "plain HTTP")
        await stop.wait()
        log.info("shutting down: draining in-flight reviews")
        if _STATE_KEY in app:
            app[_STATE_KEY]["draining"] = True
        if drain_delay > 0:
            await asyncio.sleep(drain_delay)
    finally:
        await runner.cleanup()
        for sig in installed:
            loop.remove_signal_handler(sig)

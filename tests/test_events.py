"""Kubernetes Events for denials and warnings (controller/decisions/events.py).

The webhook runs for real (build_app over TLS with the real Evaluator and real ECDSA-signed
evidence, offline); the Kubernetes API server is the recorded-protocol stand-in of
tests/support/kube_api.py (HTTPS on 127.0.0.1, bearer token, the JSON shapes kube-apiserver
returns), reached through the real ``kubernetes`` client.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from controller.admission.metrics import AdmissionMetrics
from controller.admission.model import AdmissionRequest, ReviewDecision
from controller.admission.server import build_app, start_server
from controller.config import Settings, load_settings
from controller.decisions.events import (
    MAX_EVENT_MESSAGE_BYTES,
    REASON_DENIED,
    REASON_WARNING,
    KubernetesEvents,
    NullEvents,
    decision_event,
)
from controller.decisions.record import DecisionLog
from controller.evaluator import Evaluator
from controller.evidence.model import EvidenceSet
from controller.evidence.source import OfflineEvidence
from controller.kube import KubeClient, KubeConfigError, in_cluster_configuration
from controller.policy.loader import load_policy_documents
from controller.verify.trustroot import TrustRoots
from tests.support.cosign_sign import as_cosign_layer, public_pem, sign_image
from tests.support.kube_api import KubeApiStandIn, configuration, running_kube_api
from tests.support.registry import free_port
from tests.support.tls import TlsFiles, client_ssl_context, server_ssl_context
from tests.support.webhook import admission_review, pod

KEY = ec.generate_private_key(ec.SECP256R1())
SIGNED = "sha256:" + hashlib.sha256(b"signed").hexdigest()
UNSIGNED = "sha256:" + hashlib.sha256(b"unsigned").hexdigest()
SIGNED_IMAGE = f"registry.example.com/acme/app@{SIGNED}"
UNSIGNED_IMAGE = f"registry.example.com/acme/app@{UNSIGNED}"
TRIAL_IMAGE = f"registry.example.com/trial/app@{UNSIGNED}"


def _policies() -> str:
    pem = "\n".join("          " + line for line in public_pem(KEY).decode().splitlines())
    doc = """---
apiVersion: reprogate.dev/v1alpha1
kind: ImagePolicy
metadata: {{name: {name}}}
spec:
  mode: {mode}
  match: {{images: ["{glob}"]}}
  authorities:
    - name: release
      key:
        pem: |
{pem}
"""
    return doc.format(
        name="release", mode="enforce", glob="registry.example.com/acme/**", pem=pem
    ) + doc.format(name="trial", mode="warn", glob="registry.example.com/trial/**", pem=pem)


def _evaluator() -> Evaluator:
    evidence = {
        SIGNED: EvidenceSet(digest=SIGNED, signatures=(as_cosign_layer(sign_image(KEY, SIGNED)),)),
        UNSIGNED: EvidenceSet(digest=UNSIGNED),
    }
    return Evaluator(
        Settings(),
        load_policy_documents(_policies(), "events-test.yaml"),
        OfflineEvidence(evidence),
        TrustRoots(),
        clock=lambda: datetime(2026, 6, 1, tzinfo=UTC),
    )


@dataclass
class Webhook:
    session: aiohttp.ClientSession
    base: str
    metrics: AdmissionMetrics

    async def review(
        self, obj: dict[str, Any], namespace: str = "team-a", *, dry_run: bool = False
    ) -> dict[str, Any]:
        body = admission_review(obj, namespace)
        body["request"]["dryRun"] = dry_run
        async with self.session.post(f"{self.base}/validate", json=body) as resp:
            assert resp.status == 200
            answer: dict[str, Any] = (await resp.json())["response"]
            return answer


@asynccontextmanager
async def webhook(
    tls: TlsFiles, tmp_path: Path, events: KubernetesEvents | NullEvents, metrics: AdmissionMetrics
) -> AsyncIterator[Webhook]:
    """build_app over TLS with the real evaluator and ``events``."""
    log = DecisionLog(str(tmp_path / "decisions.jsonl"))
    app = build_app(
        _evaluator(), decision_log=log, deadline_seconds=5, events=events, metrics=metrics
    )
    runner, port = await start_server(app, "127.0.0.1", 0, server_ssl_context(tls))
    try:
        connector = aiohttp.TCPConnector(ssl=client_ssl_context(tls.ca_cert))
        async with aiohttp.ClientSession(connector=connector) as session:
            yield Webhook(session, f"https://127.0.0.1:{port}", metrics)
    finally:
        await events.close()
        await runner.cleanup()
        log.close()


async def eventually(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait (bounded) for background work to show; not a timing assertion."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def run(scenario: Callable[[], Any]) -> None:
    asyncio.run(scenario())


def test_denial_creates_one_event_naming_the_workload(tls_files: TlsFiles, tmp_path: Path) -> None:
    """Kubernetes API: the stand-in of tests/support/kube_api.py (no API server here)."""

    async def scenario() -> None:
        async with running_kube_api(tls_files) as (api, cfg):
            kube = KubeClient(cfg)
            metrics = AdmissionMetrics()
            events = KubernetesEvents(kube, metrics=metrics, instance="reprogate-0")
            async with webhook(tls_files, tmp_path, events, metrics) as hook:
                answer = await hook.review(pod("web", UNSIGNED_IMAGE))
                assert answer["allowed"] is False
                await api.wait_for(lambda: len(api.events) == 1)
                await eventually(lambda: metrics.events_emitted.value(REASON_DENIED) == 1)
            kube.close()
        [event] = api.events
        assert event["involvedObject"] == {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": "web",
            "namespace": "team-a",
        }
        assert event["metadata"]["namespace"] == "team-a"
        assert event["metadata"]["name"].startswith("web.")
        assert (event["reason"], event["type"]) == (REASON_DENIED, "Warning")
        header, *reasons = answer["status"]["message"].split("\n")
        assert event["message"] == header + " " + "; ".join(reasons)
        assert "policy release: signatures" in event["message"]
        assert event["reportingComponent"] == "reprogate"
        assert event["reportingInstance"] == "reprogate-0"
        assert event["source"] == {"component": "reprogate"}
        assert event["count"] == 1
        assert "reprogate_events_emitted_total" in metrics.render()

    run(scenario)


def test_allow_and_dry_run_create_no_event(tls_files: TlsFiles, tmp_path: Path) -> None:
    """Kubernetes API: the stand-in of tests/support/kube_api.py (no API server here).

    Events go out in order through one worker, so once the last denial's Event has arrived,
    any Event the earlier reviews had queued would have arrived before it.
    """

    async def scenario() -> None:
        async with running_kube_api(tls_files) as (api, cfg):
            kube = KubeClient(cfg)
            metrics = AdmissionMetrics()
            events = KubernetesEvents(kube, metrics=metrics)
            async with webhook(tls_files, tmp_path, events, metrics) as hook:
                allowed = await hook.review(pod("signed", SIGNED_IMAGE))
                assert allowed["allowed"] is True and "warnings" not in allowed
                dry = await hook.review(pod("dry", UNSIGNED_IMAGE), dry_run=True)
                assert dry["allowed"] is False
                last = await hook.review(pod("last", UNSIGNED_IMAGE))
                assert last["allowed"] is False
                await api.wait_for(
                    lambda: any(e["involvedObject"]["name"] == "last" for e in api.events)
                )
            kube.close()
        assert [e["involvedObject"]["name"] for e in api.events] == ["last"]

    run(scenario)


def test_warning_creates_a_warning_event(tls_files: TlsFiles, tmp_path: Path) -> None:
    """Kubernetes API: the stand-in of tests/support/kube_api.py (no API server here)."""

    async def scenario() -> None:
        async with running_kube_api(tls_files) as (api, cfg):
            kube = KubeClient(cfg)
            metrics = AdmissionMetrics()
            events = KubernetesEvents(kube, metrics=metrics)
            async with webhook(tls_files, tmp_path, events, metrics) as hook:
                answer = await hook.review(pod("trial", TRIAL_IMAGE), namespace="team-b")
                assert answer["allowed"] is True and answer["warnings"]
                await api.wait_for(lambda: len(api.events) == 1)
            kube.close()
        [event] = api.events
        assert event["reason"] == REASON_WARNING and event["type"] == "Warning"
        assert event["involvedObject"]["namespace"] == "team-b"
        assert "policy trial: signatures" in event["message"]

    run(scenario)


def test_dead_api_server_changes_nothing_and_is_logged_once(
    tls_files: TlsFiles, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Kubernetes API: a Configuration pointing at a 127.0.0.1 port nobody listens on (the
    stand-in's address shape, with no server), so every Event POST fails to connect."""

    async def scenario() -> None:
        cfg = configuration(f"127.0.0.1:{free_port()}", tls_files.ca_cert, "token")
        kube = KubeClient(cfg)
        metrics = AdmissionMetrics()
        events = KubernetesEvents(kube, metrics=metrics)
        async with webhook(tls_files, tmp_path, events, metrics) as hook:
            first = await hook.review(pod("web", UNSIGNED_IMAGE))
            second = await hook.review(pod("api", UNSIGNED_IMAGE))
            allowed = await hook.review(pod("ok", SIGNED_IMAGE))
            await eventually(lambda: metrics.events_dropped.value("api_error") == 2)
        kube.close()
        for answer in (first, second):
            assert answer["allowed"] is False
            assert answer["status"]["code"] == 403
            assert "policy release: signatures" in answer["status"]["message"]
        assert allowed["allowed"] is True
        assert metrics.events_emitted.value(REASON_DENIED) == 0

    with caplog.at_level(logging.WARNING, logger="reprogate.events"):
        run(scenario)
    failures = [r for r in caplog.records if "could not create the ReprogateDenied" in r.message]
    # two failures within a minute: one warning, the second suppressed
    assert len(failures) == 1
    assert "Pod team-a/web" in failures[0].getMessage()


def test_full_queue_drops_and_counts(tls_files: TlsFiles) -> None:
    """Kubernetes API: the stand-in of tests/support/kube_api.py, told to hold every Event POST
    unanswered (an API server that stopped answering)."""

    async def scenario() -> None:
        state = KubeApiStandIn(hold=asyncio.Event())
        async with running_kube_api(tls_files, state) as (api, cfg):
            kube = KubeClient(cfg, read_timeout=30)
            metrics = AdmissionMetrics()
            events = KubernetesEvents(kube, metrics=metrics, queue_size=2)
            denial = ReviewDecision(allowed=False, message="denied", decision="deny")
            await events.emit(_request("p0"), denial)
            # the worker takes the first one and waits on the API server
            await api.wait_for(lambda: api.event_posts_started == 1)
            for i in range(1, 6):
                await events.emit(_request(f"p{i}"), denial)
            # one in flight, two queued, three dropped
            assert metrics.events_dropped.value("queue_full") == 3
            assert api.hold is not None
            api.hold.set()
            await api.wait_for(lambda: len(api.events) == 3)
            await events.close()
            kube.close()
        assert [e["involvedObject"]["name"] for e in api.events] == ["p0", "p1", "p2"]

    run(scenario)


def _request(name: str, *, dry_run: bool = False, namespace: str = "team-a") -> AdmissionRequest:
    return AdmissionRequest(
        uid=f"uid-{name}",
        kind="Pod",
        namespace=namespace,
        name=name,
        operation="CREATE",
        user="alice",
        groups=(),
        object={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}},
        images=(),
        dry_run=dry_run,
    )


def test_event_message_is_capped_at_1_kib_on_a_character_boundary() -> None:
    long = "reprogate denied this workload:\n" + "é" * 2000
    event = decision_event(_request("p"), ReviewDecision(allowed=False, message=long))
    assert event is not None
    encoded = event.message.encode("utf-8")
    assert len(encoded) <= MAX_EVENT_MESSAGE_BYTES
    assert event.message.endswith("(truncated)")
    assert event.message.startswith("reprogate denied this workload: éé")


def test_no_event_for_allow_or_dry_run() -> None:
    deny = ReviewDecision(allowed=False, message="no", decision="deny")
    assert decision_event(_request("p", dry_run=True), deny) is None
    assert decision_event(_request("p"), ReviewDecision(allowed=True, message="")) is None
    warn = ReviewDecision(allowed=True, message="", warnings=("w1", "w2"), decision="warn")
    event = decision_event(_request("p"), warn)
    assert event is not None and event.reason == REASON_WARNING
    assert event.message.endswith("warnings: w1; w2")


def test_cluster_scoped_request_goes_to_default_namespace() -> None:
    event = decision_event(
        _request("p", namespace=""), ReviewDecision(allowed=False, message="denied")
    )
    assert event is not None and event.namespace == "default"


def test_outside_a_cluster_there_is_no_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    with pytest.raises(KubeConfigError, match="no in-cluster Kubernetes configuration"):
        in_cluster_configuration()


def test_events_setting_from_config_file_and_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("events: true\npull_secrets: false\n")
    assert load_settings(str(cfg), {}, env={}).events is True
    assert load_settings(None, {}, env={"REPROGATE_EVENTS": "true"}).events is True
    assert load_settings(None, {}, env={}).events is False
    with pytest.raises(ValueError, match="events must be true or false"):
        load_settings(None, {}, env={"REPROGATE_EVENTS": "sometimes"})


def test_metrics_render_event_counters() -> None:
    metrics = AdmissionMetrics()
    metrics.events_emitted.inc(REASON_DENIED)
    metrics.events_dropped.inc("queue_full")
    text = metrics.render()
    assert 'reprogate_events_emitted_total{reason="ReprogateDenied"} 1' in text
    assert 'reprogate_events_dropped_total{cause="queue_full"} 1' in text


def test_serve_without_a_cluster_logs_and_runs_without_events(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from controller.server_main import _kube_configuration

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert _kube_configuration(Settings()) is None  # nothing asked for: nothing tried
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="reprogate"):
        assert _kube_configuration(Settings(events=True)) is None
    assert "events set, but no in-cluster Kubernetes configuration" in caplog.text

"""Wire the webhook together for ``reprogate serve``: client, evaluator, app, TLS, server.

With ``events`` or ``pull_secrets`` set, a Kubernetes API client is built from the pod's
in-cluster configuration; outside a cluster that fails, is logged, and the feature is off.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from controller.admission.metrics import AdmissionMetrics, Collected
from controller.admission.server import build_app, run_server
from controller.admission.tls import self_signed_certificate, server_ssl_context
from controller.config import Settings
from controller.decisions.events import KubernetesEvents, NullEvents
from controller.decisions.record import DecisionLog
from controller.evaluator import Evaluator
from controller.evidence.source import RegistryEvidence
from controller.kube import KubeClient, KubeConfigError, in_cluster_configuration
from controller.oci.client import RegistryClient
from controller.policy.model import PolicySet
from controller.policy.reload import PolicyReloader
from controller.policy.store import production_root_loader
from controller.pull_secrets import PullSecretResolver
from controller.verify.trustroot import TrustRoots

__all__ = ["serve"]

log = logging.getLogger("reprogate")


async def serve(settings: Settings, policy_set: PolicySet, roots: TrustRoots) -> None:
    """Run the webhook until SIGTERM; one pooled registry client for the whole process."""
    client = RegistryClient(settings.registry)
    decision_log = DecisionLog(settings.decision_log)
    metrics = AdmissionMetrics()
    kube_config = _kube_configuration(settings)
    kube_clients: list[KubeClient] = []
    events: KubernetesEvents | NullEvents = NullEvents()
    resolver: PullSecretResolver | None = None
    if kube_config is not None and settings.events:
        # A client of its own with one thread: a slow API server must not hold up secret reads.
        kube_clients.append(KubeClient(kube_config, workers=1, name="events"))
        events = KubernetesEvents(kube_clients[-1], metrics=metrics)
    if kube_config is not None and settings.pull_secrets:
        kube_clients.append(KubeClient(kube_config, workers=2, name="secrets"))
        resolver = PullSecretResolver(kube_clients[-1])
    self_signed = None
    tasks: list[asyncio.Task[None]] = []
    try:
        if settings.tls_cert and settings.tls_key:
            ssl_context = server_ssl_context(settings.tls_cert, settings.tls_key)
        else:
            self_signed = self_signed_certificate(("localhost", socket.gethostname()))
            ssl_context = self_signed.context
            log.warning("no --tls-cert given: serving a self-signed certificate")
        evaluator = Evaluator(
            settings, policy_set, RegistryEvidence(client), roots, pull_secrets=resolver
        )
        metrics.add_collected(
            Collected(
                "reprogate_cache_requests_total",
                "Cache lookups by cache (digest, evidence, verification) and result "
                "(hit, coalesced = waited on a load in flight, miss, failure).",
                ("cache", "result"),
                "counter",
                evaluator.cache_counters,
            )
        )
        metrics.add_collected(
            Collected(
                "reprogate_cache_entries",
                "Entries held per cache.",
                ("cache",),
                "gauge",
                evaluator.cache_sizes,
            )
        )
        if settings.policy_reload_seconds > 0:
            reloader = PolicyReloader(
                settings.policies,
                settings.policy_reload_seconds,
                evaluator.replace_policies,
                production=production_root_loader(settings.tuf_cache),
            )
            tasks.append(asyncio.create_task(reloader.run()))
        app = build_app(
            evaluator,
            decision_log=decision_log,
            deadline_seconds=settings.deadline_seconds,
            events=events,
            metrics=metrics,
        )
        log.info(
            "loaded %d policies and %d trust roots",
            len(policy_set.policies),
            len(policy_set.trust_roots),
        )
        await run_server(app, settings.host, settings.port, ssl_context, drain_delay=2.0)
    finally:
        for task in tasks:
            task.cancel()
        await events.close()
        for kube in kube_clients:
            kube.close()
        await client.close()
        decision_log.close()
        if self_signed is not None:
            self_signed.cleanup()


def _kube_configuration(settings: Settings) -> Any:
    """The in-cluster API configuration when a feature needs it; None (logged) otherwise."""
    wanted = [name for name in ("events", "pull_secrets") if getattr(settings, name)]
    if not wanted:
        return None
    try:
        return in_cluster_configuration()
    except KubeConfigError as exc:
        log.warning("%s set, but %s: running without them", " and ".join(wanted), exc)
        return None

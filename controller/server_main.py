"""Wire the webhook together for ``reprogate serve``: client, evaluator, app, TLS, server."""

from __future__ import annotations

import logging
import socket

from controller.admission.server import build_app, run_server
from controller.admission.tls import self_signed_certificate, server_ssl_context
from controller.config import Settings
from controller.decisions.record import DecisionLog
from controller.evaluator import Evaluator
from controller.evidence.source import RegistryEvidence
from controller.oci.client import RegistryClient
from controller.policy.model import PolicySet
from controller.verify.trustroot import TrustRoots

__all__ = ["serve"]

log = logging.getLogger("reprogate")


async def serve(settings: Settings, policy_set: PolicySet, roots: TrustRoots) -> None:
    """Run the webhook until SIGTERM; one pooled registry client for the whole process."""
    client = RegistryClient(settings.registry)
    decision_log = DecisionLog(settings.decision_log)
    self_signed = None
    try:
        if settings.tls_cert and settings.tls_key:
            ssl_context = server_ssl_context(settings.tls_cert, settings.tls_key)
        else:
            self_signed = self_signed_certificate(("localhost", socket.gethostname()))
            ssl_context = self_signed.context
            log.warning("no --tls-cert given: serving a self-signed certificate")
        evaluator = Evaluator(settings, policy_set, RegistryEvidence(client), roots)
        app = build_app(
            evaluator, decision_log=decision_log, deadline_seconds=settings.deadline_seconds
        )
        log.info(
            "loaded %d policies and %d trust roots",
            len(policy_set.policies),
            len(policy_set.trust_roots),
        )
        await run_server(app, settings.host, settings.port, ssl_context, drain_delay=2.0)
    finally:
        await client.close()
        decision_log.close()
        if self_signed is not None:
            self_signed.cleanup()

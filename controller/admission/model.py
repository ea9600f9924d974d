"""What the webhook reads from an AdmissionReview and what it answers, as value objects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from controller.policy.verdict import ImageVerdict

__all__ = ["AdmissionRequest", "ImageUse", "ReviewDecision", "ReviewEvaluator"]


@dataclass(frozen=True, slots=True)
class ImageUse:
    """One image reference in a workload, with where it sits (for messages and patches)."""

    image: str  # exactly as written in the spec
    container: str  # container (or volume) name
    path: str  # JSON pointer to the image field, e.g. /spec/template/spec/containers/0/image


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    """The parts of an ``admission.k8s.io/v1`` AdmissionReview request that we use."""

    uid: str
    kind: str  # Pod, Deployment, ...
    namespace: str
    name: str
    operation: str  # CREATE, UPDATE, ...
    user: str
    groups: tuple[str, ...]
    object: Mapping[str, Any]
    images: tuple[ImageUse, ...]
    dry_run: bool = False
    api_version: str = "admission.k8s.io/v1"  # the response must echo the request's version
    sub_resource: str = ""  # e.g. "ephemeralcontainers"
    pull_secrets: tuple[str, ...] = ()  # the pod spec's imagePullSecrets names, in order
    service_account: str = "default"  # the pod's service account; kubelet uses its secrets too


@dataclass(frozen=True, slots=True)
class ReviewDecision:
    """The answer to one review: allowed or not, the message, warnings and per-image verdicts."""

    allowed: bool
    message: str
    warnings: tuple[str, ...] = ()
    images: tuple[ImageVerdict, ...] = ()
    patch: tuple[Mapping[str, Any], ...] = ()  # JSONPatch ops (mutate only)
    decision: str = "allow"  # allow | deny | warn, for the record
    mode: str = "enforce"
    cache: Mapping[str, int] = field(default_factory=dict)  # hits/misses for the record


class ReviewEvaluator(Protocol):
    """What the server calls: the engine behind the webhook."""

    async def evaluate(self, request: AdmissionRequest, *, mutate: bool) -> ReviewDecision:
        """Decide on one request; must not raise for policy outcomes."""
        ...

    def ready(self) -> bool:
        """True once policies and trust roots are loaded."""
        ...

"""The admission pipeline for one review: images -> digests -> evidence -> facts -> verdicts.

Rules:
- Images of one review are evaluated concurrently, each under the review's deadline.
- Registry work is cached per key with one load in flight (tag->digest, digest->evidence,
  (digest, authorities)->verified facts), so a rollout of N pods costs one round trip.
- Any failure (malformed reference, registry down, timeout, internal error) is a denial that
  names the image and what went wrong, unless only warn/audit policies cover the image.
- An image that no policy matches is not fetched at all; it is allowed (or denied with
  ``no_match: deny``).
- With pull secrets (``pull_secrets: true``), registry calls for a request use its pod's
  credentials, and the digest and evidence caches are keyed by that credential's fingerprint,
  so one namespace's private evidence never answers for a namespace without the secret.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from controller.admission.model import AdmissionRequest, ImageUse, ReviewDecision
from controller.config import Settings
from controller.evidence.cache import AsyncTTLCache, count_cache_use
from controller.evidence.model import EvidenceSet
from controller.evidence.source import EvidenceSource
from controller.oci.credentials import normalize_registry_key
from controller.oci.errors import RegistryError
from controller.oci.reference import ReferenceError, parse_image_ref
from controller.policy.activation import CelObject
from controller.policy.engine import ImageContext, PolicyAssessment, PolicyEngine
from controller.policy.model import ImagePolicy, PolicySet
from controller.policy.verdict import CheckResult, Evidence, ImageVerdict, PolicyResult, Verdict
from controller.pull_secrets import NO_CREDENTIALS, PendingCredentials, PullSecretResolver
from controller.verify.authority import Authority, KeyAuthority
from controller.verify.evidence import verify_evidence
from controller.verify.facts import VerificationOutcome
from controller.verify.trustroot import TrustRoots

__all__ = ["VERIFY_WORKERS", "Evaluator", "policy_authorities"]

log = logging.getLogger(__name__)

# Threads verifying evidence at once, per evaluator (the webhook runs on 2 cores).
VERIFY_WORKERS = 2


def policy_authorities(policy: ImagePolicy) -> tuple[Authority, ...]:
    """Every signer a policy trusts for anything: authorities, builders, rebuilders, verifiers."""
    seen: dict[str, Authority] = {a.name: a for a in policy.authorities}
    if policy.provenance is not None:
        for b in policy.provenance.trusted_builders:
            seen.setdefault(b.signer.name, b.signer)
    if policy.reproducibility is not None:
        for a in (*policy.reproducibility.rebuilders, *policy.reproducibility.vsa_verifiers):
            seen.setdefault(a.name, a)
    return tuple(seen.values())


@dataclass
class _Stage:
    """What an image evaluation is doing, so a timeout can say what it was waiting for."""

    what: str = "starting"
    waiting_on_registry: bool = False


class Evaluator:
    """Implements ``ReviewEvaluator`` for the server and ``reprogate check``."""

    def __init__(
        self,
        settings: Settings,
        policy_set: PolicySet,
        source: EvidenceSource,
        trust_roots: TrustRoots,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        pull_secrets: PullSecretResolver | None = None,
    ) -> None:
        self.settings = settings
        self.pull_secrets = pull_secrets
        self.source = source
        self._mirrors = {normalize_registry_key(k): v for k, v in settings.registry.mirrors.items()}
        self.trust_roots = trust_roots
        self.engine = PolicyEngine(policy_set, no_match=settings.no_match, clock=clock)
        self._clock = clock
        self.digests: AsyncTTLCache[str] = AsyncTTLCache(
            ttl=settings.digest_ttl, negative_ttl=settings.negative_ttl
        )
        self.evidence: AsyncTTLCache[EvidenceSet] = AsyncTTLCache(
            ttl=settings.evidence_ttl, negative_ttl=settings.negative_ttl
        )
        self.outcomes: AsyncTTLCache[VerificationOutcome] = AsyncTTLCache(
            ttl=settings.evidence_ttl, negative_ttl=settings.negative_ttl
        )
        # Verification is CPU work in threads that a deadline cannot stop. Its own small pool
        # bounds how much of the machine hostile evidence can take, and keeps asyncio's
        # default pool (DNS, file reads) free for everything else. Shut down with the
        # evaluator; idle workers exit then.
        self._verify_pool = ThreadPoolExecutor(
            max_workers=VERIFY_WORKERS, thread_name_prefix="reprogate-verify"
        )
        weakref.finalize(self, self._verify_pool.shutdown, wait=False, cancel_futures=True)

    def replace_policies(self, policy_set: PolicySet, trust_roots: TrustRoots) -> None:
        """Swap in newly loaded policies (hot reload). Reviews already running finish on the
        set they started with; the caches stay valid (keyed by evidence and authorities)."""
        self.engine = PolicyEngine(policy_set, no_match=self.settings.no_match, clock=self._clock)
        self.trust_roots = trust_roots

    def ready(self) -> bool:
        """Policies and trust roots are loaded at construction."""
        return True

    def cache_counters(self) -> dict[tuple[str, ...], float]:
        """(cache, result) -> count since start, for ``reprogate_cache_requests_total``."""
        out: dict[tuple[str, ...], float] = {}
        for name, cache in (
            ("digest", self.digests),
            ("evidence", self.evidence),
            ("verification", self.outcomes),
        ):
            out[(name, "hit")] = cache.stats.hits
            out[(name, "coalesced")] = cache.stats.coalesced
            out[(name, "miss")] = cache.stats.misses
            out[(name, "failure")] = cache.stats.failures
        return out

    def cache_sizes(self) -> dict[tuple[str, ...], float]:
        """cache -> entries held, for ``reprogate_cache_entries``."""
        return {
            ("digest",): len(self.digests),
            ("evidence",): len(self.evidence),
            ("verification",): len(self.outcomes),
        }

    async def evaluate(self, request: AdmissionRequest, *, mutate: bool) -> ReviewDecision:
        """Decide on one admission request."""
        stats = count_cache_use()
        # The same image in many containers is one decision, not many (a pod with 500 copies
        # of one image must cost what one costs).
        first_use: dict[str, ImageUse] = {}
        for use in request.images:
            first_use.setdefault(use.image, use)
        unique = list(first_use)
        credentials = (
            self.pull_secrets.for_request(
                request.namespace, request.pull_secrets, request.service_account
            )
            if self.pull_secrets is not None
            else None
        )
        cel_object = CelObject(request.object)  # converted once, only if a condition needs it
        decided = await asyncio.gather(
            *(
                self.evaluate_image(
                    first_use[image], request, credentials=credentials, cel_object=cel_object
                )
                for image in unique
            )
        )
        by_image = dict(zip(unique, decided, strict=True))
        verdicts = [by_image[use.image] for use in request.images]
        cache = {"hits": stats.hits + stats.coalesced, "misses": stats.misses}
        # /mutate patches (digest pinning) are built by the server from these verdicts
        return self._decide(verdicts, cache)

    def _decide(self, verdicts: Sequence[ImageVerdict], cache: dict[str, int]) -> ReviewDecision:
        # the verdicts decide; the reason lines only explain (a deny never hinges on its text)
        denied = [v for v in verdicts if v.verdict == "deny"]
        denials = list(
            dict.fromkeys(
                line
                for v in denied
                for line in (v.denial_reasons() or [f"image {v.ref}: denied by policy"])
            )
        )
        warnings = tuple(dict.fromkeys(line for v in verdicts for line in v.warnings()))
        modes = {p.mode for v in verdicts for p in v.policies}
        # a denial without any policy (malformed reference, --no-match deny) is enforcement
        mode = (
            "enforce" if "enforce" in modes or denied else ("warn" if "warn" in modes else "audit")
        )
        if denied:
            return ReviewDecision(
                allowed=False,
                message="reprogate denied this workload:\n" + "\n".join(denials),
                warnings=warnings,
                images=tuple(verdicts),
                decision="deny",
                mode=mode,
                cache=cache,
            )
        return ReviewDecision(
            allowed=True,
            message="",
            warnings=warnings,
            images=tuple(verdicts),
            decision="warn" if warnings else "allow",
            mode=mode if modes else "none",
            cache=cache,
        )

    async def evaluate_image(
        self,
        use: ImageUse,
        request: AdmissionRequest,
        *,
        credentials: PendingCredentials | None = None,
        cel_object: CelObject | None = None,
        resolved: str | None = None,
    ) -> ImageVerdict:
        """The verdict for one image of a request; never raises.

        ``credentials`` are the request's pull secrets, read only if the registry is needed.
        ``resolved``: the digest a tag reference is taken to point at instead of asking the
        registry (a replayed decision); the reference keeps its tag for matching, as written.
        """
        try:
            image = parse_image_ref(use.image)
            # matched as written (below), evaluated at the given digest
            at = image.with_digest(resolved) if resolved and image.digest is None else image
        except ReferenceError as exc:
            return ImageVerdict(use.image, None, "deny", (), error=str(exc))
        namespace = request.namespace
        engine = self.engine  # a hot reload mid-review does not mix two policy sets
        policies = engine.policies_for(image, namespace)
        ctx = ImageContext(
            written=use.image,
            image=at,
            namespace=namespace,
            object=cel_object if cel_object is not None else CelObject(request.object),
            user=request.user,
            groups=request.groups,
            operation=request.operation,
        )
        if not policies:
            return engine.compose(ctx, (), Evidence())
        stage = _Stage()
        try:
            async with asyncio.timeout(self._budget()):
                return await self._evaluate_pinned(engine, ctx, policies, stage, credentials)
        except TimeoutError:
            error = f"no decision within the {self._budget():g}s deadline while {stage.what}"
            if stage.waiting_on_registry:
                error += "; the registry may be slow or unreachable"
        except RegistryError as exc:
            error = f"could not fetch evidence while {stage.what}: {exc.diagnostics()}"
            if exc.kind == "unauthorized" and credentials is not None:
                # the refusal may be because a pull secret could not be read: say which
                error += "".join(f"; {p}" for p in credentials.problems())
        except Exception as exc:  # fail closed on anything unexpected, and say so
            log.exception("internal error evaluating %s", use.image)
            error = f"internal error while {stage.what}: {type(exc).__name__}: {exc}"
        return self._failed(ctx, policies, error)

    def _budget(self) -> float:
        """Per-image time: a little under the server's deadline, so the denial can say which
        step was still waiting instead of the server's generic timeout."""
        deadline = self.settings.deadline_seconds
        return max(0.05, deadline - min(1.0, deadline * 0.2))

    def _failed(
        self, ctx: ImageContext, policies: Sequence[ImagePolicy], error: str
    ) -> ImageVerdict:
        modes = {p.mode for p in policies}
        if "enforce" in modes:
            results = tuple(PolicyResult(p.name, p.mode, False, ()) for p in policies)
            return ImageVerdict(ctx.written, ctx.image.digest, "deny", results, error=error)
        # Only warn/audit policies: admit, but every policy result carries the reason, so a
        # warn policy warns with it and an audit record says why it would have denied.
        results = tuple(
            PolicyResult(p.name, p.mode, False, (CheckResult("evidence", False, error),))
            for p in policies
        )
        verdict: Verdict = "warn" if "warn" in modes else "allow"
        return ImageVerdict(ctx.written, ctx.image.digest, verdict, results)

    async def _evaluate_pinned(
        self,
        engine: PolicyEngine,
        ctx: ImageContext,
        policies: Sequence[ImagePolicy],
        stage: _Stage,
        credentials: PendingCredentials | None = None,
    ) -> ImageVerdict:
        image = ctx.image
        creds = NO_CREDENTIALS
        if credentials is not None:
            stage.what = f"reading image pull secrets in namespace {credentials.namespace}"
            creds = await credentials.get()
        store = creds.store if len(creds.store) else None
        # Keyed by the credential that fetched it: another namespace must fetch for itself.
        mirror = self._mirrors.get(normalize_registry_key(image.registry))
        fingerprint = creds.fingerprint_for(image, mirror)
        if image.digest is None:
            stage.what = f"resolving tag {image.tag} on {image.registry}"
            stage.waiting_on_registry = True
            digest = await self.digests.get(
                _cache_key(str(image), fingerprint),
                lambda: self.source.resolve(image, credentials=store),
            )
            image = image.with_digest(digest)
            ctx = replace(ctx, image=image)
        stage.what = f"fetching signatures and attestations from {image.registry}"
        stage.waiting_on_registry = True
        pinned = image
        evidence = await self.evidence.get(
            _cache_key(f"{pinned.name}@{pinned.digest}", fingerprint),
            lambda: self.source.discover(pinned, credentials=store),
            ttl_for=self._evidence_ttl,
        )
        assessments: list[PolicyAssessment] = []
        outcomes: list[VerificationOutcome] = []
        for policy in policies:
            stage.what = f"verifying evidence for policy {policy.name}"
            stage.waiting_on_registry = False
            outcome = await self._outcome(evidence, policy)
            outcomes.append(outcome)
            assessments.append(engine.assess(ctx, policy, outcome))
        return engine.compose(
            ctx, [a.result for a in assessments], _evidence_summary(outcomes, assessments)
        )

    def _evidence_ttl(self, evidence: EvidenceSet) -> float:
        empty = not (evidence.signatures or evidence.attestations or evidence.bundles)
        return self.settings.empty_evidence_ttl if empty else self.settings.evidence_ttl

    async def _outcome(self, evidence: EvidenceSet, policy: ImagePolicy) -> VerificationOutcome:
        authorities = policy_authorities(policy)
        rebuilders = tuple(
            a
            for a in (policy.reproducibility.rebuilders if policy.reproducibility else ())
            if isinstance(a, KeyAuthority)
        )
        # the trust roots are part of the key: a reload may bring a changed TrustRoot
        key = (evidence, authorities, rebuilders, self.trust_roots)
        now = self._clock()
        verify = functools.partial(
            verify_evidence, evidence, authorities, self.trust_roots, now, rebuilders
        )

        async def load() -> VerificationOutcome:
            # Runs as the cache's own task: when this request's deadline passes, the
            # verification still finishes and its outcome serves the next request.
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._verify_pool, verify)

        return await self.outcomes.get(key, load)


def _cache_key(key: str, fingerprint: str | None) -> Hashable:
    """``key`` alone for process-wide credentials, else ``(key, fingerprint)``."""
    return key if fingerprint is None else (key, fingerprint)


def _evidence_summary(
    outcomes: Sequence[VerificationOutcome], assessments: Sequence[PolicyAssessment]
) -> Evidence:
    """What the verified evidence said, for the decision record (never a secret)."""
    signers = sorted({str(s.signer) for o in outcomes for s in o.signatures})
    best = max(assessments, key=lambda a: a.provenance.level, default=None)
    prov = best.provenance if best is not None else None
    p = prov.provenance if prov is not None else None
    independent = sorted(
        {b for a in assessments if a.reproducibility for b in a.reproducibility.independent_builds}
    )
    return Evidence(
        signers=tuple(signers),
        slsa_level=max([prov.level if prov else 0] + [a.vsas.build_level for a in assessments]),
        builder=p.builder_id if p else None,
        source={
            "repository": p.source.repository if p and p.source else None,
            "ref": p.source.ref if p and p.source else None,
            "commit": p.source.commit if p and p.source else None,
        },
        dependencies=tuple(
            {"uri": d.uri, "digest": _digest_text(d.digest)}
            for d in (p.resolved_dependencies if p else ())
        ),
        independent_builds=tuple(independent),
    )


def _digest_text(digest: Mapping[str, str]) -> str:
    """``sha256:<hex>`` (or the first algorithm given) from an in-toto digest set."""
    if "sha256" in digest:
        return f"sha256:{digest['sha256']}"
    for algo, value in digest.items():
        return f"{algo}:{value}"
    return ""

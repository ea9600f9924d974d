"""Bounded verification cost per digest (gate review H3).

- Each envelope and bundle is parsed once per ``verify_evidence`` call, not once per
  authority (counted by wrapping the parsers).
- 32 attestation layers against 4 authorities completes, every pair reported (the time is
  printed by bench/verify_cost.py; tests assert no timing).
- Verification runs in the evaluator's own bounded pool, and a verification that outlives
  its request's deadline still fills the cache for the next request.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from controller import evaluator as evaluator_module
from controller.config import Settings
from controller.evaluator import VERIFY_WORKERS, Evaluator
from controller.evidence.model import BundleEvidence, CosignLayer, EvidenceSet
from controller.evidence.source import OfflineEvidence
from controller.policy.loader import load_policy_documents
from controller.policy.model import ImagePolicy
from controller.verify import bundle as bundle_module
from controller.verify import cosign as cosign_module
from controller.verify import evidence as evidence_module
from controller.verify.authority import KeyAuthority
from controller.verify.dsse import parse_envelope
from controller.verify.evidence import verify_evidence
from controller.verify.facts import VerificationOutcome
from controller.verify.trustroot import TrustRoots
from tests.support.cosign_sign import as_cosign_layer, attest, in_toto_statement, public_pem

DIGEST = "sha256:" + "ab" * 32


def _authorities(count: int) -> list[KeyAuthority]:
    return [
        KeyAuthority(f"k{i}", public_pem(ec.generate_private_key(ec.SECP256R1())), "ignore")
        for i in range(count)
    ]


def _big_envelope(size: int) -> bytes:
    statement = in_toto_statement([DIGEST], predicate={"pad": "A" * size})
    return json.dumps(
        {
            "payloadType": "application/vnd.in-toto+json",
            "payload": base64.b64encode(statement).decode(),
            "signatures": [{"sig": base64.b64encode(b"x" * 70).decode()}],
        }
    ).encode()


def test_each_envelope_and_bundle_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, int] = {"envelope": 0, "bundle": 0}
    real_envelope, real_bundle = parse_envelope, bundle_module._parse

    def count_envelope(raw: bytes) -> Any:
        calls["envelope"] += 1
        return real_envelope(raw)

    def count_bundle(raw: bytes) -> Any:
        calls["bundle"] += 1
        return real_bundle(raw)

    # wherever the verifiers look the parsers up
    monkeypatch.setattr(evidence_module, "parse_envelope", count_envelope)
    monkeypatch.setattr(cosign_module, "parse_envelope", count_envelope)
    monkeypatch.setattr(bundle_module, "_parse", count_bundle)
    key = ec.generate_private_key(ec.SECP256R1())
    signed = as_cosign_layer(attest(key, in_toto_statement([DIGEST])), source="att")
    bundle = BundleEvidence(b'{"mediaType": "nope"}', "x", "bundle")
    authorities = [*_authorities(3), KeyAuthority("signer", public_pem(key), "ignore")]
    outcome = verify_evidence(
        EvidenceSet(DIGEST, attestations=(signed, signed), bundles=(bundle,)),
        authorities, TrustRoots(), datetime.now(UTC),
    )  # fmt: skip
    assert calls == {"envelope": 2, "bundle": 1}
    assert len(outcome.statements) == 2  # the signer's key verified both copies
    # every authority still gets its own failure line for the unreadable bundle
    assert sorted(f.authority for f in outcome.failures if f.source == "bundle") == sorted(
        a.name for a in authorities
    )


def test_32_attestation_layers_times_4_authorities_complete() -> None:
    layers = tuple(
        CosignLayer("attestation", _big_envelope(64 * 1024), None, None, None, None, None, f"l{i}")
        for i in range(32)
    )
    authorities = _authorities(4)
    outcome = verify_evidence(
        EvidenceSet(DIGEST, attestations=layers), authorities, TrustRoots(), datetime.now(UTC)
    )
    assert outcome.statements == ()
    assert len(outcome.failures) == 32 * 4
    assert {f.reason.split(" with ")[0] for f in outcome.failures} == {
        "DSSE envelope signature does not verify"
    }


# --- the evaluator's verification pool -----------------------------------------------------


def _policy() -> ImagePolicy:
    key = ec.generate_private_key(ec.SECP256R1())
    doc = {
        "apiVersion": "reprogate.dev/v1alpha1",
        "kind": "ImagePolicy",
        "metadata": {"name": "p"},
        "spec": {
            "authorities": [{"name": "k", "key": {"pem": public_pem(key).decode()}}],
            "signatures": {"threshold": 1},
        },
    }
    (policy,) = load_policy_documents(yaml.safe_dump(doc)).policies
    return policy


def _evaluator() -> Evaluator:
    policy_set = load_policy_documents("")
    return Evaluator(Settings(), policy_set, OfflineEvidence({}), TrustRoots())


def test_verification_runs_in_the_evaluators_bounded_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []
    running = 0
    most = 0
    lock = threading.Lock()
    gate = threading.Event()

    def record(evidence: EvidenceSet, *args: object) -> VerificationOutcome:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            seen.append(threading.current_thread().name)
        gate.wait(5)
        with lock:
            running -= 1
        return VerificationOutcome()

    monkeypatch.setattr(evaluator_module, "verify_evidence", record)
    evaluator, policy = _evaluator(), _policy()

    async def scenario() -> None:
        sets = [EvidenceSet("sha256:" + f"{i:02x}" * 32) for i in range(6)]
        tasks = [asyncio.ensure_future(evaluator._outcome(e, policy)) for e in sets]
        while len(seen) < VERIFY_WORKERS:  # the pool's workers are all busy
            await asyncio.sleep(0.01)
        assert len(seen) == VERIFY_WORKERS  # and nothing else runs beside them
        gate.set()
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
    assert VERIFY_WORKERS == 2
    assert len(seen) == 6 and most <= VERIFY_WORKERS
    assert all(name.startswith("reprogate-verify") for name in seen)


def test_verification_past_the_deadline_still_fills_the_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    release = threading.Event()

    def slow(evidence: EvidenceSet, *args: object) -> VerificationOutcome:
        calls.append(1)
        release.wait(10)
        return VerificationOutcome(failures=())

    monkeypatch.setattr(evaluator_module, "verify_evidence", slow)
    evaluator, policy = _evaluator(), _policy()
    evidence = EvidenceSet(DIGEST)

    async def scenario() -> VerificationOutcome:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await evaluator._outcome(evidence, policy)
        release.set()
        while not len(evaluator.outcomes):  # the abandoned verification settles
            await asyncio.sleep(0.01)
        return await evaluator._outcome(evidence, policy)

    assert asyncio.run(scenario()) == VerificationOutcome()
    assert calls == [1]  # the second request was answered from the cache
    assert evaluator.outcomes.stats.hits == 1

"""``reprogate test``: run policy test cases offline, with no registry and no network.

Test files are YAML documents of ``kind: PolicyTest`` in files named ``*.test.yaml`` anywhere
under the policy directory (the policy loader skips them). Each case names an image pinned to a
digest, the evidence files that stand in for the registry (paths relative to the test file),
optional namespace/object/time, and the expected verdict and reason fragments::

    apiVersion: reprogate.dev/v1alpha1
    kind: PolicyTest
    metadata: {name: release-images}
    spec:
      cases:
        - name: signed by the release key
          image: registry.example.com/acme/app@sha256:<64 hex>
          namespace: prod
          now: "2026-01-01T00:00:00Z"        # optional clock for expiry/age checks
          evidence:
            signatures:   [{payload: sig.json, signature: sig.b64}]   # cosign .sig layers
            attestations: [{envelope: prov.dsse.json}]                # cosign .att layers
            bundles: [build.sigstore.json]                            # Sigstore bundles
            links: [rebuild.link]                                     # in-toto rebuild links
          expect:
            verdict: allow                    # allow | deny | warn
            reasons: ["signatures"]           # fragments that must appear in the reasons
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import yaml

from controller.admission.model import AdmissionRequest, ImageUse
from controller.config import Settings
from controller.evidence.model import BundleEvidence, CosignLayer, EvidenceSet, LinkEvidence
from controller.evidence.source import OfflineEvidence
from controller.oci.reference import ReferenceError, parse_image_ref
from controller.policy.model import API_VERSION, PolicySet
from controller.policy.verdict import ImageVerdict

__all__ = ["PolicyTestCase", "PolicyTestError", "load_test_cases", "run_policy_tests"]

_MAX_FILE = 1024 * 1024
_MAX_EVIDENCE = 16 * 1024 * 1024
_CASE_KEYS = {"name", "image", "namespace", "object", "now", "evidence", "expect", "user"}
_EVIDENCE_KEYS = {"signatures", "attestations", "bundles", "links"}


class PolicyTestError(ValueError):
    """A malformed test file or case; the message names file, case and field."""


@dataclass(frozen=True)
class PolicyTestCase:
    """One case, ready to run."""

    file: str
    name: str
    image: str
    namespace: str
    evidence: EvidenceSet
    expect_verdict: str
    expect_reasons: tuple[str, ...]
    object: Mapping[str, Any] = field(default_factory=dict)
    now: datetime | None = None
    user: str = "reprogate-test"


def _read(base: Path, rel: Any, where: str, limit: int = _MAX_EVIDENCE) -> bytes:
    if not isinstance(rel, str) or not rel:
        raise PolicyTestError(f"{where}: expected a file path, got {rel!r}")
    path = (base / rel).resolve()
    try:
        if path.stat().st_size > limit:
            raise PolicyTestError(f"{where}: {rel} is larger than {limit} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise PolicyTestError(f"{where}: cannot read {rel}: {exc.strerror}") from None


def _layer(base: Path, kind: str, item: Any, where: str) -> CosignLayer:
    if isinstance(item, str):
        item = {"envelope" if kind == "attestation" else "payload": item}
    if not isinstance(item, dict):
        raise PolicyTestError(f"{where}: expected a mapping of files")
    main_key = "envelope" if kind == "attestation" else "payload"
    allowed = {main_key, "signature", "certificate", "chain", "rekorBundle", "timestamp"}
    unknown = set(item) - allowed
    if unknown:
        raise PolicyTestError(f"{where}: unknown field(s) {sorted(unknown)}; use {sorted(allowed)}")
    if main_key not in item:
        raise PolicyTestError(f"{where}: {main_key} is required")

    def opt(key: str) -> bytes | None:
        return _read(base, item[key], f"{where}.{key}") if key in item else None

    sig = opt("signature")
    return CosignLayer(
        kind="attestation" if kind == "attestation" else "signature",
        payload=_read(base, item[main_key], f"{where}.{main_key}"),
        signature_b64=sig.decode().strip() if sig is not None else None,
        certificate_pem=opt("certificate"),
        chain_pem=opt("chain"),
        rekor_bundle=opt("rekorBundle"),
        rfc3161_timestamp=opt("timestamp"),
        source=f"{item[main_key]}",
    )


def _case(file: Path, index: int, raw: Any) -> PolicyTestCase:
    where = f"{file} case {index + 1}"
    if not isinstance(raw, dict):
        raise PolicyTestError(f"{where}: a case must be a mapping")
    unknown = set(raw) - _CASE_KEYS
    if unknown:
        raise PolicyTestError(f"{where}: unknown field(s) {sorted(unknown)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise PolicyTestError(f"{where}: name is required")
    where = f"{file} case {name!r}"
    image = raw.get("image")
    if not isinstance(image, str):
        raise PolicyTestError(f"{where}: image is required")
    try:
        ref = parse_image_ref(image)
    except ReferenceError as exc:
        raise PolicyTestError(f"{where}: image: {exc}") from None
    if ref.digest is None:
        raise PolicyTestError(f"{where}: image must be pinned (@sha256:...) in offline tests")
    ev = raw.get("evidence") or {}
    if not isinstance(ev, dict) or set(ev) - _EVIDENCE_KEYS:
        raise PolicyTestError(f"{where}: evidence may hold only {sorted(_EVIDENCE_KEYS)}")
    base = file.parent
    lists: dict[str, list[Any]] = {}
    for key in _EVIDENCE_KEYS:
        value = ev.get(key) or []
        if not isinstance(value, list):
            raise PolicyTestError(f"{where}: evidence.{key} must be a list")
        lists[key] = value
    evidence = EvidenceSet(
        digest=ref.digest,
        signatures=tuple(
            _layer(base, "signature", it, f"{where}: evidence.signatures[{i}]")
            for i, it in enumerate(lists["signatures"])
        ),
        attestations=tuple(
            _layer(base, "attestation", it, f"{where}: evidence.attestations[{i}]")
            for i, it in enumerate(lists["attestations"])
        ),
        bundles=tuple(
            BundleEvidence(
                raw=_read(base, it, f"{where}: evidence.bundles[{i}]"),
                media_type="application/vnd.dev.sigstore.bundle+json",
                source=str(it),
            )
            for i, it in enumerate(lists["bundles"])
        ),
        links=tuple(
            LinkEvidence(raw=_read(base, it, f"{where}: evidence.links[{i}]"), source=str(it))
            for i, it in enumerate(lists["links"])
        ),
    )
    expect = raw.get("expect")
    if not isinstance(expect, dict) or expect.get("verdict") not in ("allow", "deny", "warn"):
        raise PolicyTestError(f"{where}: expect.verdict must be allow, deny or warn")
    reasons = expect.get("reasons") or []
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise PolicyTestError(f"{where}: expect.reasons must be a list of strings")
    now = raw.get("now")
    when: datetime | None = None
    if now is not None:
        try:
            when = now if isinstance(now, datetime) else datetime.fromisoformat(str(now))
        except ValueError:
            raise PolicyTestError(f"{where}: now must be an RFC 3339 time") from None
        if when.tzinfo is None:
            raise PolicyTestError(f"{where}: now needs a timezone (e.g. Z)")
    obj = raw.get("object") or {}
    if not isinstance(obj, dict):
        raise PolicyTestError(f"{where}: object must be a mapping")
    return PolicyTestCase(
        file=str(file),
        name=name,
        image=image,
        namespace=str(raw.get("namespace") or "default"),
        evidence=evidence,
        expect_verdict=expect["verdict"],
        expect_reasons=tuple(reasons),
        object=obj,
        now=when,
        user=str(raw.get("user") or "reprogate-test"),
    )


def load_test_cases(directory: str | Path) -> list[PolicyTestCase]:
    """Every case in ``*.test.yaml`` files under ``directory``, in a stable order."""
    cases: list[PolicyTestCase] = []
    for file in sorted(Path(directory).rglob("*.test.yaml")):
        if file.stat().st_size > _MAX_FILE:
            raise PolicyTestError(f"{file}: larger than {_MAX_FILE} bytes")
        try:
            docs = list(yaml.safe_load_all(file.read_text()))
        except yaml.YAMLError as exc:
            raise PolicyTestError(f"{file}: not valid YAML: {exc}") from None
        for d, doc in enumerate(docs):
            if doc is None:
                continue
            if (
                not isinstance(doc, dict)
                or doc.get("apiVersion") != API_VERSION
                or doc.get("kind") != "PolicyTest"
            ):
                raise PolicyTestError(
                    f"{file} document {d + 1}: expected apiVersion {API_VERSION}, kind PolicyTest"
                )
            spec = doc.get("spec")
            if not isinstance(spec, dict) or not isinstance(spec.get("cases"), list):
                raise PolicyTestError(f"{file} document {d + 1}: spec.cases must be a list")
            cases.extend(_case(file, i, c) for i, c in enumerate(spec["cases"]))
    return cases


def _reasons(v: ImageVerdict) -> list[str]:
    lines = v.denial_reasons() + v.warnings()
    for p in v.policies:
        lines.extend(f"policy {p.name}: {c.check}: {c.reason}" for c in p.checks)
    return lines


async def _run_case(case: PolicyTestCase, policy_set: PolicySet, roots: Any) -> ImageVerdict:
    from controller.evaluator import Evaluator

    now = case.now or datetime.now(UTC)
    evaluator = Evaluator(
        Settings(),
        policy_set,
        OfflineEvidence({case.evidence.digest: case.evidence}),
        roots,
        clock=lambda: now,
    )
    request = AdmissionRequest(
        uid=f"test-{case.name}",
        kind="Pod",
        namespace=case.namespace,
        name=case.name,
        operation="CREATE",
        user=case.user,
        groups=(),
        object=case.object,
        images=(ImageUse(case.image, "test", "/spec/containers/0/image"),),
    )
    decision = await evaluator.evaluate(request, mutate=False)
    return decision.images[0]


def run_policy_tests(directory: str, out: TextIO) -> int:
    """Run every case under ``directory`` against the policies there; 0 when all pass."""
    from controller.cli import UsageError, _load
    from controller.config import Settings as _Settings

    try:
        policy_set, roots = _load(_Settings(policies=directory))
        cases = load_test_cases(directory)
    except (UsageError, PolicyTestError) as exc:
        out.write(f"ERROR {exc}\n")
        return 2
    if not cases:
        out.write(f"no test cases (*.test.yaml) under {directory}\n")
        return 1
    failed = 0
    for case in cases:
        verdict = asyncio.run(_run_case(case, policy_set, roots))
        reasons = _reasons(verdict)
        problems: list[str] = []
        if verdict.verdict != case.expect_verdict:
            problems.append(f"expected {case.expect_verdict}, got {verdict.verdict}")
        for fragment in case.expect_reasons:
            if not any(fragment in r for r in reasons) and fragment not in (verdict.error or ""):
                problems.append(f"no reason contains {fragment!r}")
        label = f"{case.file}::{case.name}"
        if problems:
            failed += 1
            out.write(f"FAIL {label}\n")
            for p in problems:
                out.write(f"     {p}\n")
            if verdict.error:
                out.write(f"     error: {verdict.error}\n")
            for r in reasons:
                out.write(f"     reason: {r}\n")
        else:
            out.write(f"PASS {label}\n")
    passed = len(cases) - failed
    out.write(f"{passed} passed, {failed} failed\n")
    return 1 if failed else 0

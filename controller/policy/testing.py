"""``reprogate test [DIR]``: run policy test cases offline, with no registry and no network.

Test files are YAML documents of ``kind: PolicyTest`` in files named ``*.test.yaml`` (or
``*.test.yml``) anywhere under DIR (the policy loader skips them). Each case names an image
pinned to a digest, the evidence files that stand in for the registry (paths relative to the
test file), optional request context and clock, and what reprogate must decide::

    apiVersion: reprogate.dev/v1alpha1
    kind: PolicyTest
    metadata: {name: release-images}
    spec:
      cases:
        - name: signed by the release key
          image: registry.example.com/acme/app@sha256:<64 hex>
          namespace: prod                     # default: default
          now: "2026-03-05T00:00:00Z"         # clock for expiry/age checks; default: real time
          user: alice                         # request.user; also groups, operation
          object: {kind: Pod}                 # the admitted object CEL sees
          evidence:
            signatures:   [{payload: sig.json, signature: sig.b64, certificate: c.pem,
                            chain: chain.pem, rekorBundle: set.json, timestamp: tsa.json}]
            attestations: [{envelope: prov.dsse.json, certificate: c.pem, rekorBundle: s.json}]
            bundles: [build.sigstore.json]    # Sigstore bundles
            links: [rebuild.link]             # in-toto rebuild links
          expect:
            verdict: allow                    # allow | deny | warn
            reasons:                          # each must match a failed check or the error
              - "signatures"                  # substring of "POLICY: CHECK: REASON"
              - {check: signatures, reason: "no valid signature", policy: release-images}
            policies: {release-images: pass}  # pass | fail | excepted | unmatched

Rules:
- DIR loads once, as one policy set (duplicate names across folders are errors). A test file
  is evaluated against the policies of the directory that holds it and its subdirectories,
  and every TrustRoot of DIR (so a library can share one private root at its top).
- Evidence paths are relative to the test file and must stay inside DIR after resolving
  ``..`` and symbolic links; absolute paths outside DIR are refused too.
- Malformed test files (bad YAML, unknown or missing field, wrong type, unpinned image,
  unreadable or oversized evidence, unknown policy name in ``expect``) are reported all at
  once, each naming file, case and field, and nothing runs: exit 2. Policies that do not load
  are exit 2 as well. Any failing case is exit 1; otherwise 0.
- Limits: test files of at most 1 MiB, 500 cases per file, 64 evidence files per list, 16 MiB
  per evidence file and 64 MiB of evidence per case.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TextIO

import yaml

from controller.admission.model import AdmissionRequest, ImageUse
from controller.config import Settings
from controller.evidence.model import BundleEvidence, CosignLayer, EvidenceSet, LinkEvidence
from controller.evidence.source import OfflineEvidence
from controller.oci.credentials import CredentialStore
from controller.oci.reference import ImageRef, ReferenceError, parse_image_ref
from controller.policy.model import API_VERSION, PolicySet
from controller.policy.verdict import ImageVerdict
from controller.policy.yamlstrict import StrictYamlLoader
from controller.verify.trustroot import TrustRoots

if TYPE_CHECKING:
    from controller.evaluator import Evaluator

__all__ = [
    "CaseResult",
    "ExpectedReason",
    "PolicyTestCase",
    "PolicyTestError",
    "PolicyTestFile",
    "check_case",
    "load_test_file",
    "load_test_files",
    "run_case",
    "run_policy_tests",
]

MAX_TEST_FILE_BYTES: Final = 1024 * 1024
MAX_TEST_FILES: Final = 1000
MAX_CASES: Final = 500
MAX_EVIDENCE_ITEMS: Final = 64
MAX_EVIDENCE_BYTES: Final = 16 * 1024 * 1024
MAX_CASE_EVIDENCE_BYTES: Final = 64 * 1024 * 1024
BUNDLE_MEDIA_TYPE: Final = "application/vnd.dev.sigstore.bundle+json"

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_MALFORMED: Final = 2

PolicyOutcome = Literal["pass", "fail", "excepted", "unmatched"]
_OUTCOMES: Final = ("pass", "fail", "excepted", "unmatched")
_VERDICTS: Final = ("allow", "deny", "warn")
_DOC_KEYS: Final = frozenset({"apiVersion", "kind", "metadata", "spec"})
_METADATA_KEYS: Final = frozenset({"name", "labels", "annotations"})
_CASE_KEYS: Final = frozenset(
    {"name", "image", "namespace", "now", "user", "groups", "operation", "object", "evidence",
     "expect"}
)  # fmt: skip
_EVIDENCE_KEYS: Final = ("signatures", "attestations", "bundles", "links")
_EXPECT_KEYS: Final = frozenset({"verdict", "reasons", "policies"})
_REASON_KEYS: Final = frozenset({"check", "reason", "policy"})
_LAYER_OPTIONAL: Final = ("signature", "certificate", "chain", "rekorBundle", "timestamp")


class PolicyTestError(ValueError):
    """A malformed test file or case: ``str()`` reads ``FILE case N 'NAME': FIELD: MESSAGE``."""

    def all(self) -> list[PolicyTestError]:
        """Every problem this error stands for (one, or several for a whole file)."""
        return [self]

    def __init__(self, file: str, where: str, field: str, message: str) -> None:
        self.file = file
        self.where = where  # "case 3 'unsigned'", "document 1" or ""
        self.field = field
        self.message = message
        location = f"{file} {where}".rstrip()
        super().__init__(f"{location}: {field}: {message}" if field else f"{location}: {message}")


class PolicyTestErrors(PolicyTestError):
    """Every problem found in one test file, reported together."""

    def __init__(self, errors: list[PolicyTestError]) -> None:
        first = errors[0]
        super().__init__(first.file, first.where, first.field, first.message)
        self.errors = errors

    def all(self) -> list[PolicyTestError]:
        """Each problem, in file order."""
        return list(self.errors)


@dataclass(frozen=True)
class ExpectedReason:
    """A fragment that must occur in the reasons of a failed check (or the image error).

    With ``check`` (and/or ``policy``) the failed check must have exactly that name (policy).
    """

    fragment: str = ""
    check: str | None = None
    policy: str | None = None

    def describe(self) -> str:
        """How the expectation reads in a failure report."""
        parts = [f"check {self.check}"] if self.check else []
        if self.policy:
            parts.append(f"policy {self.policy}")
        if self.fragment:
            parts.append(f"reason containing {self.fragment!r}")
        return ", ".join(parts)


@dataclass(frozen=True)
class PolicyTestCase:
    """One case, ready to run."""

    file: Path
    name: str
    image: str
    namespace: str
    evidence: EvidenceSet
    expect_verdict: str
    expect_reasons: tuple[ExpectedReason, ...] = ()
    expect_policies: Mapping[str, PolicyOutcome] = field(default_factory=dict)
    object: Mapping[str, Any] = field(default_factory=dict)
    now: datetime | None = None
    user: str = "reprogate-test"
    groups: tuple[str, ...] = ()
    operation: str = "CREATE"

    @property
    def label(self) -> str:
        """``FILE::CASE`` as in the output."""
        return f"{self.file}::{self.name}"


@dataclass(frozen=True)
class PolicyTestFile:
    """The cases of one ``*.test.yaml`` file."""

    path: Path
    cases: tuple[PolicyTestCase, ...]


@dataclass(frozen=True)
class CaseResult:
    """What reprogate decided for a case, and how that differs from the expectation."""

    case: PolicyTestCase
    verdict: ImageVerdict
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """True when the decision matched every expectation."""
        return not self.problems


# --- reading test files --------------------------------------------------------------------


@dataclass
class _Where:
    """Where in a test file we are, for messages."""

    file: str
    where: str

    def error(self, field: str, message: str) -> PolicyTestError:
        return PolicyTestError(self.file, self.where, field, message)


def _unknown(at: _Where, data: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        field = f"{path}.{unknown[0]}" if path else unknown[0]
        raise at.error(field, f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _mapping(at: _Where, value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise at.error(path, f"must be a mapping, got {type(value).__name__}")
    return value


def _text(at: _Where, value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise at.error(path, f"must be a non-empty string, got {value!r}")
    return value


class _EvidenceReader:
    """Reads evidence files relative to a test file, confined to the tested directory."""

    def __init__(self, at: _Where, base: Path, root: Path) -> None:
        self.at = at
        self.base = base
        self.root = root
        self.total = 0

    def read(self, rel: Any, path: str) -> bytes:
        name = _text(self.at, rel, path)
        target = (self.base / name).resolve()
        if not target.is_relative_to(self.root):
            raise self.at.error(
                path,
                f"{name} resolves to {target}, outside the tested directory {self.root}; "
                "evidence must live beside the policies",
            )
        if target.exists() and not target.is_file():
            raise self.at.error(path, f"{name} is not a regular file")
        try:
            with target.open("rb") as fh:
                data = fh.read(MAX_EVIDENCE_BYTES + 1)
        except OSError as exc:
            raise self.at.error(path, f"cannot read {name}: {exc.strerror}") from None
        if len(data) > MAX_EVIDENCE_BYTES:
            raise self.at.error(path, f"{name} is larger than {MAX_EVIDENCE_BYTES} bytes")
        self.total += len(data)
        if self.total > MAX_CASE_EVIDENCE_BYTES:
            raise self.at.error(
                path, f"the case's evidence exceeds {MAX_CASE_EVIDENCE_BYTES} bytes in total"
            )
        return data

    def layer(self, kind: Literal["signature", "attestation"], item: Any, path: str) -> CosignLayer:
        main = "envelope" if kind == "attestation" else "payload"
        if isinstance(item, str):
            item = {main: item}
        raw = _mapping(self.at, item, path)
        _unknown(self.at, raw, frozenset({main, *_LAYER_OPTIONAL}), path)
        if main not in raw:
            raise self.at.error(f"{path}.{main}", "is required")

        def opt(key: str) -> bytes | None:
            return self.read(raw[key], f"{path}.{key}") if key in raw else None

        payload = self.read(raw[main], f"{path}.{main}")
        sig = opt("signature")
        try:
            sig_text = sig.decode("ascii").strip() if sig is not None else None
        except UnicodeDecodeError:
            raise self.at.error(f"{path}.signature", "must be base64 text") from None
        return CosignLayer(
            kind=kind,
            payload=payload,
            signature_b64=sig_text,
            certificate_pem=opt("certificate"),
            chain_pem=opt("chain"),
            rekor_bundle=opt("rekorBundle"),
            rfc3161_timestamp=opt("timestamp"),
            source=str(raw[main]),
        )


def _evidence(at: _Where, raw: Any, digest: str, reader: _EvidenceReader) -> EvidenceSet:
    if raw is None:
        return EvidenceSet(digest=digest)
    ev = _mapping(at, raw, "evidence")
    _unknown(at, ev, frozenset(_EVIDENCE_KEYS), "evidence")
    lists: dict[str, list[Any]] = {}
    for key in _EVIDENCE_KEYS:
        value = ev.get(key, [])
        if not isinstance(value, list):
            raise at.error(f"evidence.{key}", "must be a list")
        if len(value) > MAX_EVIDENCE_ITEMS:
            raise at.error(f"evidence.{key}", f"more than {MAX_EVIDENCE_ITEMS} entries")
        lists[key] = value
    return EvidenceSet(
        digest=digest,
        signatures=tuple(
            reader.layer("signature", it, f"evidence.signatures[{i}]")
            for i, it in enumerate(lists["signatures"])
        ),
        attestations=tuple(
            reader.layer("attestation", it, f"evidence.attestations[{i}]")
            for i, it in enumerate(lists["attestations"])
        ),
        bundles=tuple(
            BundleEvidence(
                raw=reader.read(it, f"evidence.bundles[{i}]"),
                media_type=BUNDLE_MEDIA_TYPE,
                source=str(it),
            )
            for i, it in enumerate(lists["bundles"])
        ),
        links=tuple(
            LinkEvidence(raw=reader.read(it, f"evidence.links[{i}]"), source=str(it))
            for i, it in enumerate(lists["links"])
        ),
    )


def _reasons(at: _Where, raw: Any) -> tuple[ExpectedReason, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise at.error("expect.reasons", "must be a list of strings or {check, reason, policy}")
    out: list[ExpectedReason] = []
    for i, item in enumerate(raw):
        path = f"expect.reasons[{i}]"
        if isinstance(item, str) and item:
            out.append(ExpectedReason(fragment=item))
            continue
        entry = _mapping(at, item, path)
        _unknown(at, entry, _REASON_KEYS, path)
        if not entry:
            raise at.error(path, "give at least one of check, reason, policy")
        values = {k: _text(at, entry[k], f"{path}.{k}") for k in entry}
        out.append(
            ExpectedReason(values.get("reason", ""), values.get("check"), values.get("policy"))
        )
    return tuple(out)


def _policies(at: _Where, raw: Any) -> dict[str, PolicyOutcome]:
    if raw is None:
        return {}
    entries = _mapping(at, raw, "expect.policies")
    out: dict[str, PolicyOutcome] = {}
    for name, outcome in entries.items():
        if outcome not in _OUTCOMES:
            raise at.error(
                f"expect.policies.{name}", f"must be one of {', '.join(_OUTCOMES)}, got {outcome!r}"
            )
        out[str(name)] = outcome
    return out


def _now(at: _Where, raw: Any) -> datetime | None:
    if raw is None:
        return None
    text = _text(at, raw, "now")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise at.error(
            "now", f"must be an RFC 3339 time like 2026-03-05T00:00:00Z, got {text!r}"
        ) from None
    if when.tzinfo is None:
        raise at.error("now", f"needs a timezone (e.g. Z), got {text!r}")
    return when


def _case(file: Path, index: int, raw: Any, root: Path) -> PolicyTestCase:
    at = _Where(str(file), f"case {index + 1}")
    data = _mapping(at, raw, "")
    if "name" in data and isinstance(data["name"], str):
        at.where = f"case {index + 1} {data['name']!r}"
    _unknown(at, data, _CASE_KEYS, "")
    name = _text(at, data.get("name"), "name")
    image = _text(at, data.get("image"), "image")
    try:
        ref = parse_image_ref(image)
    except ReferenceError as exc:
        raise at.error("image", str(exc)) from None
    if ref.digest is None:
        raise at.error(
            "image",
            f"must be pinned to a digest (@sha256:...); offline tests cannot resolve {image}",
        )
    if "expect" not in data:
        raise at.error("expect", "is required")
    expect = _mapping(at, data["expect"], "expect")
    _unknown(at, expect, _EXPECT_KEYS, "expect")
    verdict = expect.get("verdict")
    if verdict not in _VERDICTS:
        raise at.error("expect.verdict", f"must be allow, deny or warn, got {verdict!r}")
    obj = _mapping(at, data.get("object", {}), "object")
    groups = data.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise at.error("groups", "must be a list of strings")
    reader = _EvidenceReader(at, file.parent, root)
    return PolicyTestCase(
        file=file,
        name=name,
        image=image,
        namespace=_text(at, data.get("namespace", "default"), "namespace"),
        evidence=_evidence(at, data.get("evidence"), ref.digest, reader),
        expect_verdict=verdict,
        expect_reasons=_reasons(at, expect.get("reasons")),
        expect_policies=_policies(at, expect.get("policies")),
        object=obj,
        now=_now(at, data.get("now")),
        user=_text(at, data.get("user", "reprogate-test"), "user"),
        groups=tuple(groups),
        operation=_text(at, data.get("operation", "CREATE"), "operation"),
    )


def _documents(file: Path) -> Iterator[tuple[int, Any]]:
    try:
        size = file.stat().st_size
        if size > MAX_TEST_FILE_BYTES:
            raise PolicyTestError(str(file), "", "", f"larger than {MAX_TEST_FILE_BYTES} bytes")
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyTestError(str(file), "", "", f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise PolicyTestError(str(file), "", "", f"not UTF-8 text: {exc.reason}") from None
    try:
        docs = list(yaml.load_all(text, Loader=StrictYamlLoader))  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyTestError(str(file), "", "", f"invalid YAML{line}: {problem}") from None
    for index, doc in enumerate(docs, start=1):
        if doc is not None:
            yield index, doc


def load_test_file(file: str | Path, root: str | Path | None = None) -> PolicyTestFile:
    """The cases of one test file; evidence paths must stay inside ``root`` (default: the
    file's directory). Raises :class:`PolicyTestError` naming file, case and field."""
    path = Path(file)
    base = Path(root if root is not None else path.parent).resolve()
    cases: list[PolicyTestCase] = []
    problems: list[PolicyTestError] = []
    for index, doc in _documents(path):
        at = _Where(str(path), f"document {index}")
        data = _mapping(at, doc, "")
        if data.get("apiVersion") != API_VERSION or data.get("kind") != "PolicyTest":
            raise at.error("kind", f"expected apiVersion {API_VERSION} and kind PolicyTest")
        _unknown(at, data, _DOC_KEYS, "")
        _unknown(at, _mapping(at, data.get("metadata", {}), "metadata"), _METADATA_KEYS, "metadata")
        spec = _mapping(at, data.get("spec"), "spec")
        _unknown(at, spec, frozenset({"cases"}), "spec")
        raw_cases = spec.get("cases")
        if not isinstance(raw_cases, list) or not raw_cases:
            raise at.error("spec.cases", "must be a non-empty list of cases")
        if len(cases) + len(raw_cases) > MAX_CASES:
            raise at.error("spec.cases", f"more than {MAX_CASES} cases in one file")
        for i, raw in enumerate(raw_cases):
            try:
                cases.append(_case(path, i, raw, base))
            except PolicyTestError as exc:
                problems.append(exc)  # keep going: report every bad case in one run
    names = [c.name for c in cases]
    for i, name in enumerate(names):
        if name in names[:i]:
            problems.append(
                PolicyTestError(str(path), f"case {i + 1} {name!r}", "name", "duplicate case name")
            )
    if problems:
        raise PolicyTestErrors(problems) if len(problems) > 1 else problems[0]
    return PolicyTestFile(path, tuple(cases))


def _test_files(root: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(
            Path(dirpath) / f
            for f in filenames
            if f.endswith((".test.yaml", ".test.yml")) and not f.startswith(".")
        )
    return sorted(found)


def load_test_files(
    directory: str | Path,
) -> tuple[list[PolicyTestFile], list[PolicyTestError]]:
    """Every test file under ``directory`` (or the one file given), and every problem found."""
    target = Path(directory)
    root = (target.parent if target.is_file() else target).resolve()
    paths = [target] if target.is_file() else _test_files(target)
    if len(paths) > MAX_TEST_FILES:
        return [], [PolicyTestError(str(target), "", "", f"more than {MAX_TEST_FILES} test files")]
    files: list[PolicyTestFile] = []
    errors: list[PolicyTestError] = []
    for path in paths:
        try:
            files.append(load_test_file(path, root))
        except PolicyTestError as exc:
            errors.extend(exc.all())
    return files, errors


# --- running -------------------------------------------------------------------------------


def _load_scope(directory: Path) -> tuple[PolicySet, TrustRoots]:
    """Policies and trust roots as ``--policies directory`` loads them; PolicyTestError if not."""
    from controller.policy.store import PolicyStoreError, load_policy_store

    try:
        return load_policy_store(directory)
    except PolicyStoreError as exc:
        raise PolicyTestError(str(directory), "", "", str(exc)) from None


def _cut_scope(whole: tuple[PolicySet, TrustRoots], scope: Path) -> tuple[PolicySet, TrustRoots]:
    """The policies loaded from ``scope`` and below, with every TrustRoot of the whole
    directory (names are unique there), so a private root can be shared by a library."""
    policy_set, roots = whole
    where = scope.resolve()

    def inside(source: str) -> bool:
        return Path(source.rsplit("#", 1)[0]).resolve().is_relative_to(where)

    policies = tuple(p for p in policy_set.policies if inside(p.source))
    return PolicySet(policies, policy_set.trust_roots), roots


def _check_names(test: PolicyTestFile, policy_set: PolicySet) -> None:
    known = {p.name for p in policy_set.policies}
    for i, case in enumerate(test.cases):
        wanted = [*case.expect_policies, *(r.policy for r in case.expect_reasons if r.policy)]
        for name in wanted:
            if name not in known:
                raise PolicyTestError(
                    str(test.path),
                    f"case {i + 1} {case.name!r}",
                    "expect",
                    f"no policy named {name!r} is loaded from {test.path.parent} "
                    f"(loaded: {', '.join(sorted(known)) or 'none'})",
                )


class _ScopeRunner:
    """Runs the cases of one policy scope through one Evaluator (and its verification pool).

    The Evaluator reads the clock and the evidence of the case being run from here, and its
    caches are emptied before each case, so no case sees another's evidence, verification or
    time. Should a load of an earlier case still be running (it outlived that case's
    deadline), a case could join it: then the next case gets a new Evaluator instead.
    """

    def __init__(self, policy_set: PolicySet, roots: TrustRoots) -> None:
        self._policy_set = policy_set
        self._roots = roots
        self._now = datetime.now(UTC)
        self._evidence = OfflineEvidence({})
        self._evaluator = self._new_evaluator()

    def _new_evaluator(self) -> Evaluator:
        from controller.evaluator import Evaluator

        return Evaluator(Settings(), self._policy_set, self, self._roots, clock=self._clock)

    def _clock(self) -> datetime:
        return self._now

    async def resolve(self, image: ImageRef, credentials: CredentialStore | None = None) -> str:
        """Tag resolution as the current case's offline evidence does it (refused)."""
        return await self._evidence.resolve(image, credentials)

    async def discover(
        self, image: ImageRef, credentials: CredentialStore | None = None
    ) -> EvidenceSet:
        """The current case's evidence."""
        return await self._evidence.discover(image, credentials)

    async def run(self, case: PolicyTestCase) -> ImageVerdict:
        """Evaluate ``case`` as admission would, offline, with the case's clock."""
        self._now = case.now or datetime.now(UTC)
        self._evidence = OfflineEvidence({case.evidence.digest: case.evidence})
        caches = (self._evaluator.digests, self._evaluator.evidence, self._evaluator.outcomes)
        if any(cache.loading for cache in caches):
            self._evaluator = self._new_evaluator()
        else:
            for cache in caches:
                cache.clear()
        request = AdmissionRequest(
            uid=f"test-{case.name}",
            kind=str(case.object.get("kind") or "Pod"),
            namespace=case.namespace,
            name=case.name,
            operation=case.operation,
            user=case.user,
            groups=case.groups,
            object=case.object,
            images=(ImageUse(case.image, "test", "/spec/containers/0/image"),),
        )
        decision = await self._evaluator.evaluate(request, mutate=False)
        return decision.images[0]


async def run_case(case: PolicyTestCase, policy_set: PolicySet, roots: TrustRoots) -> ImageVerdict:
    """Evaluate ``case`` as admission would, offline, with the case's clock."""
    return await _ScopeRunner(policy_set, roots).run(case)


def _failure_lines(verdict: ImageVerdict) -> list[tuple[str, str, str]]:
    """(policy, check, reason) of every failed check, plus the image-level error."""
    out = [("", "error", verdict.error)] if verdict.error else []
    for p in verdict.policies:
        out.extend((p.name, c.check, c.reason) for c in p.checks if not c.passed)
    return out


def _reason_found(expected: ExpectedReason, failures: Sequence[tuple[str, str, str]]) -> bool:
    for policy, check, reason in failures:
        if expected.policy is not None and policy != expected.policy:
            continue
        if expected.check is not None and check != expected.check:
            continue
        text = f"{policy}: {check}: {reason}" if expected.check is None else reason
        if expected.fragment in text:
            return True
    return False


def check_case(case: PolicyTestCase, verdict: ImageVerdict) -> tuple[str, ...]:
    """Every difference between what ``case`` expects and ``verdict`` (empty: it passed)."""
    problems: list[str] = []
    if verdict.verdict != case.expect_verdict:
        problems.append(f"verdict: expected {case.expect_verdict}, got {verdict.verdict}")
    failures = _failure_lines(verdict)
    for expected in case.expect_reasons:
        if not _reason_found(expected, failures):
            problems.append(f"reasons: no failed check with {expected.describe()}")
    results = {p.name: p.result for p in verdict.policies}
    for name, want in case.expect_policies.items():
        got = results.get(name, "unmatched")
        if got != want:
            problems.append(f"policy {name}: expected {want}, got {got}")
    return tuple(problems)


def _describe(verdict: ImageVerdict, out: TextIO) -> None:
    out.write(f"     reprogate decided {verdict.verdict} for {verdict.ref}:\n")
    out.writelines(f"       {line}\n" for line in verdict.explain())


async def _run_all(
    tests: Sequence[PolicyTestFile],
    scopes: Mapping[Path, tuple[PolicySet, TrustRoots]],
    out: TextIO,
) -> list[CaseResult]:
    results: list[CaseResult] = []
    runners: dict[Path, _ScopeRunner] = {}
    for test in tests:
        scope = test.path.parent
        if scope not in runners:
            runners[scope] = _ScopeRunner(*scopes[scope])
        for case in test.cases:
            verdict = await runners[scope].run(case)
            result = CaseResult(case, verdict, check_case(case, verdict))
            results.append(result)
            if result.passed:
                out.write(f"PASS {case.label}\n")
                continue
            out.write(f"FAIL {case.label}\n")
            for problem in result.problems:
                out.write(f"     {problem}\n")
            _describe(verdict, out)
    return results


def run_policy_tests(directory: str | Path, out: TextIO) -> int:
    """Run every case under ``directory`` (or in one test file); 0 all passed, 1 some failed,
    2 malformed test files or policies."""
    target = Path(directory)
    if not target.exists():
        out.write(f"ERROR {target}: no such file or directory\n")
        return EXIT_MALFORMED
    errors: list[PolicyTestError] = []
    scopes: dict[Path, tuple[PolicySet, TrustRoots]] = {}
    whole: tuple[PolicySet, TrustRoots] | None = None
    try:
        # DIR loads once, as one policy set; each test file's scope is cut from it
        whole = _load_scope(target if target.is_dir() else target.parent)
    except PolicyTestError as exc:
        errors.append(exc)
    tests, file_errors = load_test_files(target)
    errors.extend(file_errors)
    if whole is not None:
        for test in tests:
            scope = test.path.parent
            if scope not in scopes:
                scopes[scope] = _cut_scope(whole, scope)
            try:
                _check_names(test, scopes[scope][0])
            except PolicyTestError as exc:
                errors.append(exc)
    if errors:
        for error in errors:
            out.write(f"ERROR {error}\n")
        out.write(f"{len(errors)} error{'s' if len(errors) != 1 else ''}; no case was run\n")
        return EXIT_MALFORMED
    if not any(t.cases for t in tests):
        out.write(f"no test cases (*.test.yaml) under {target}\n")
        return EXIT_FAILED
    results = asyncio.run(_run_all(tests, scopes, out))
    failed = sum(not r.passed for r in results)
    out.write(f"{len(results) - failed} passed, {failed} failed\n")
    return EXIT_FAILED if failed else EXIT_OK

"""Loading ImagePolicy and TrustRoot documents (``reprogate.dev/v1alpha1``) into a PolicySet.

Rules this module keeps:
- the structure (field names, types, enums, ranges, required and exclusive fields) comes from
  ``controller.policy.schema``; this module adds the semantic checks the schema cannot state;
- YAML is read with a SafeLoader subclass: no tags beyond plain data, no anchors or aliases,
  no duplicate keys, timestamps stay strings; at most 1 MiB and 64 documents per file;
- every problem of a load is collected; one PolicyLoadError lists them all, each naming the
  file, the 1-based document number and the field path;
- nothing half-loaded escapes: a load either returns a complete PolicySet or raises.

Which files a directory load reads (so ``reprogate test`` cases can live beside policies):
every ``*.yaml`` / ``*.yml`` file under the directory, recursively, in sorted path order,
except files named ``*.test.yaml`` / ``*.test.yml``, hidden files, and anything inside a
directory named ``tests`` or ``cases`` or starting with ``.`` (below the given directory).
A path naming a single file is always read.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePath
from typing import Any, Final
from urllib.parse import urlsplit

import yaml

from controller.policy.cel import (
    ATTESTATION_VARIABLES,
    POLICY_VARIABLES,
    Where,
    compile_condition,
)
from controller.policy.match import GlobError, glob_to_regex, normalise_image_glob
from controller.policy.model import (
    AttestationRequirement,
    Condition,
    ImagePolicy,
    Match,
    Mode,
    PolicyError,
    PolicyException,
    PolicyLoadError,
    PolicySet,
    ProvenanceRequirement,
    ReproducibilityRequirement,
    SignatureRequirement,
    SourceRequirement,
    TrustedBuilder,
    TrustRootDoc,
)
from controller.policy.schema import KINDS, describe, join, validate
from controller.policy.yamlstrict import StrictYamlLoader
from controller.verify.authority import Authority, KeyAuthority, KeylessAuthority, TlogMode
from controller.verify.errors import EvidenceFormatError
from controller.verify.keys import load_public_key, public_key_pem

__all__ = [
    "MAX_DOCUMENTS",
    "MAX_FILE_BYTES",
    "PolicyError",
    "PolicyLoadError",
    "is_policy_file",
    "load_policies",
    "load_policy_documents",
    "policy_files",
]

MAX_FILE_BYTES: Final = 1 << 20
MAX_DOCUMENTS: Final = 64
MAX_FILES: Final = 4096
PRODUCTION: Final = "production"
TRUSTED_ROOT_MEDIA_TYPE: Final = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
_SKIPPED_DIRS: Final = frozenset({"tests", "cases"})
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$"
)

# --- YAML ----------------------------------------------------------------------------------


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"invalid YAML{where}: {problem}"


def _documents(text: str, source: str, errors: list[PolicyError]) -> Iterator[tuple[int, Any]]:
    """(1-based index, data) per YAML document; stops at the first YAML error."""
    loader = StrictYamlLoader(text)
    index = 0
    try:
        while True:
            try:
                if not loader.check_data():  # type: ignore[no-untyped-call]
                    return
                index += 1
                if index > MAX_DOCUMENTS:
                    errors.append(
                        PolicyError(source, None, "", f"more than {MAX_DOCUMENTS} documents")
                    )
                    return
                data = loader.get_data()
            except yaml.YAMLError as exc:
                errors.append(PolicyError(source, max(index, 1), "", _yaml_problem(exc)))
                return
            except RecursionError:
                errors.append(PolicyError(source, max(index, 1), "", "YAML nested too deeply"))
                return
            yield index, data
    finally:
        loader.dispose()


# --- per-document context ------------------------------------------------------------------


@dataclass
class _Doc:
    """Where we are (file, document) and the errors found there."""

    file: str
    index: int
    errors: list[PolicyError]

    def err(self, path: str, message: str) -> None:
        self.errors.append(PolicyError(self.file, self.index, path, message))

    def where(self, path: str) -> Where:
        return Where(self.file, self.index, path)

    @property
    def source(self) -> str:
        return f"{self.file}#{self.index}"


@dataclass
class _Pending:
    """Cross-document checks done once every file is read."""

    trust_root_refs: list[tuple[_Doc, str, str]] = field(default_factory=list)
    names: dict[tuple[str, str], _Doc] = field(default_factory=dict)


def _get(d: Any, key: str) -> Any:
    return d.get(key) if isinstance(d, dict) else None


def _str(d: Any, key: str) -> str | None:
    v = _get(d, key)
    return v if isinstance(v, str) and v else None


def _list(d: Any, key: str) -> list[Any]:
    v = _get(d, key)
    return v if isinstance(v, list) else []


def _strs(d: Any, key: str) -> list[tuple[int, str]]:
    return [(i, v) for i, v in enumerate(_list(d, key)) if isinstance(v, str) and v]


def _int(d: Any, key: str) -> int | None:
    v = _get(d, key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _globs(doc: _Doc, d: Any, key: str, path: str, *, image: bool = False) -> tuple[str, ...]:
    out: list[str] = []
    for i, g in _strs(d, key):
        try:
            glob_to_regex(normalise_image_glob(g) if image else g)
        except GlobError as exc:
            doc.err(f"{join(path, key)}[{i}]", f"bad glob {describe(g)}: {exc}")
            continue
        out.append(g)
    return tuple(out)


def _unique(doc: _Doc, items: list[Any], path: str, what: str) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        name = _str(item, "name")
        if name is None:
            continue
        if name in seen:
            doc.err(f"{path}[{i}].name", f"duplicate {what} name {describe(name)}")
        seen.add(name)


# --- keys and identities -------------------------------------------------------------------


def _public_key(pem: str) -> bytes:
    """The key re-encoded as canonical PEM SPKI; ValueError with the reason otherwise.

    The key itself is checked by ``controller.verify.keys.load_public_key``, the loader
    verification uses, so a policy loads only keys verification accepts.
    """
    if "BEGIN CERTIFICATE" in pem:
        raise ValueError("is a certificate, not a public key (use keyless, or its public key)")
    if "PRIVATE KEY" in pem:
        raise ValueError("is a private key: give the public key only, and rotate this one")
    try:
        data = pem.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("is not ASCII PEM") from None
    try:
        key = load_public_key(data)
    except EvidenceFormatError as exc:
        raise ValueError(str(exc)) from None
    return public_key_pem(key)


def _issuer_ok(issuer: str) -> bool:
    parts = urlsplit(issuer)
    return parts.scheme in ("https", "http") and bool(parts.netloc) and " " not in issuer


def _trust_root(doc: _Doc, pending: _Pending, d: Any, path: str) -> str:
    name = _str(d, "trustRoot") or PRODUCTION
    if name != PRODUCTION:
        pending.trust_root_refs.append((doc, join(path, "trustRoot"), name))
    return name


def _authority_body(
    doc: _Doc,
    pending: _Pending,
    raw: Any,
    path: str,
    name: str,
    *,
    subject_required: bool,
) -> Authority | None:
    """A key or keyless authority from ``raw`` ({key|keyless, transparencyLog})."""
    tlog = _str(raw, "transparencyLog")
    tlog_mode: TlogMode | None = tlog if tlog in ("required", "optional", "ignore") else None  # type: ignore[assignment]
    key, keyless = _get(raw, "key"), _get(raw, "keyless")
    if isinstance(key, dict):
        trust_root = _trust_root(doc, pending, key, join(path, "key"))
        pem = _str(key, "pem")
        if pem is None:
            return None
        try:
            canonical = _public_key(pem)
        except ValueError as exc:
            doc.err(join(path, "key.pem"), f"{exc}")
            return None
        return KeyAuthority(name, canonical, tlog_mode or "optional", trust_root)
    if isinstance(keyless, dict):
        kpath = join(path, "keyless")
        trust_root = _trust_root(doc, pending, keyless, kpath)
        issuer = _str(keyless, "issuer")
        ok = True
        if issuer is not None and not _issuer_ok(issuer):
            doc.err(join(kpath, "issuer"), f"must be an http(s) URL, got {describe(issuer)}")
            ok = False
        subject, regexp = _str(keyless, "subject"), _str(keyless, "subjectRegExp")
        if regexp is not None:
            try:
                re.compile(regexp)
            except re.error as exc:
                doc.err(join(kpath, "subjectRegExp"), f"bad regular expression: {exc}")
                ok = False
        if not ok or issuer is None or (subject is not None and regexp is not None):
            return None
        if subject_required and subject is None and regexp is None:
            return None
        return KeylessAuthority(
            name,
            issuer,
            subject=subject,
            subject_regexp=regexp,
            trust_root=trust_root,
            transparency_log=tlog_mode or "required",
        )
    return None


def _authorities(doc: _Doc, pending: _Pending, spec: Any, key: str, path: str) -> list[Authority]:
    out: list[Authority] = []
    for i, raw in enumerate(_list(spec, key)):
        name = _str(raw, "name")
        if name is None:
            continue
        a = _authority_body(doc, pending, raw, f"{path}[{i}]", name, subject_required=True)
        if a is not None:
            out.append(a)
    return out


# --- the spec sections ---------------------------------------------------------------------


def _names_used(
    doc: _Doc, d: Any, path: str, defined: list[str], what: str = "authority"
) -> tuple[str, ...]:
    """Names listed under ``d[authorities]``; each must be defined and listed once."""
    out: list[str] = []
    for i, name in _strs(d, "authorities"):
        if name not in defined:
            known = ", ".join(defined) or "none defined"
            doc.err(
                f"{path}.authorities[{i}]",
                f"unknown {what} {describe(name)} (defined: {known})",
            )
        elif name in out:
            doc.err(f"{path}.authorities[{i}]", f"{what} {describe(name)} listed twice")
        else:
            out.append(name)
    return tuple(out)


def _conditions(
    doc: _Doc, items: list[Any], path: str, variables: frozenset[str]
) -> tuple[Condition, ...]:
    _unique(doc, items, path, "condition")
    out: list[Condition] = []
    for i, raw in enumerate(items):
        name, expression = _str(raw, "name"), _str(raw, "expression")
        if name is None or expression is None:
            continue
        try:
            compiled = compile_condition(
                expression, doc.where(f"{path}[{i}].expression"), variables=variables
            )
        except PolicyError as exc:
            doc.errors.append(exc)
            continue
        message = _str(raw, "message") or f"condition {expression!r} is not true"
        out.append(Condition(name, expression, message, compiled))
    return tuple(out)


def _signatures(doc: _Doc, spec: Any, defined: list[str]) -> SignatureRequirement:
    raw = _get(spec, "signatures")
    if not isinstance(raw, dict):
        return SignatureRequirement(1 if defined else 0, tuple(defined))
    path = "spec.signatures"
    names = _names_used(doc, raw, path, defined) or tuple(defined)
    threshold = _int(raw, "threshold")
    if threshold is None:
        threshold = 1 if names else 0
    elif threshold > len(names):
        doc.err(
            f"{path}.threshold",
            f"threshold {threshold} is more than the {len(names)} authorities it counts "
            f"({', '.join(names) or 'none'})",
        )
    return SignatureRequirement(threshold, names)


def _attestations(doc: _Doc, spec: Any, defined: list[str]) -> tuple[AttestationRequirement, ...]:
    items = _list(spec, "attestations")
    _unique(doc, items, "spec.attestations", "attestation")
    out: list[AttestationRequirement] = []
    for i, raw in enumerate(items):
        path = f"spec.attestations[{i}]"
        names = _names_used(doc, raw, path, defined) or tuple(defined)
        if isinstance(raw, dict) and not defined:
            doc.err(path, "spec.authorities defines no signer for this attestation")
        conditions = _conditions(
            doc, _list(raw, "conditions"), f"{path}.conditions", ATTESTATION_VARIABLES
        )
        name, predicate_type = _str(raw, "name"), _str(raw, "predicateType")
        if name is not None and predicate_type is not None:
            out.append(AttestationRequirement(name, predicate_type, names, conditions))
    return tuple(out)


def _provenance(
    doc: _Doc, pending: _Pending, spec: Any, authorities: list[Authority], defined: list[str]
) -> ProvenanceRequirement | None:
    raw = _get(spec, "provenance")
    if not isinstance(raw, dict):
        return None
    path = "spec.provenance"
    builders: list[TrustedBuilder] = []
    raw_builders = _list(raw, "trustedBuilders")
    for i, b in enumerate(raw_builders):
        bpath = f"{path}.trustedBuilders[{i}]"
        builder_id, level, signer_raw = _str(b, "id"), _int(b, "level"), _get(b, "signer")
        glob_ok = builder_id is not None
        if builder_id is not None:
            try:
                glob_to_regex(builder_id)
            except GlobError as exc:
                doc.err(join(bpath, "id"), f"bad glob {describe(builder_id)}: {exc}")
                glob_ok = False
        signer: Authority | None = None
        spath = join(bpath, "signer")
        ref = _str(signer_raw, "authority")
        if ref is not None:
            if ref not in defined:
                known = ", ".join(defined) or "none defined"
                doc.err(join(spath, "authority"), f"unknown authority {describe(ref)} ({known})")
            if _get(signer_raw, "transparencyLog") is not None:
                doc.err(
                    join(spath, "transparencyLog"),
                    "set transparencyLog on the referenced authority instead",
                )
            signer = next((a for a in authorities if a.name == ref), None)
        else:
            # Unique per entry: two entries for one builder id (key rotation, a stronger
            # key for a higher level) must stay two signers, or one would take the other's
            # level. Authority names cannot contain "[" or ":", so none collides with these.
            signer = _authority_body(
                doc,
                pending,
                signer_raw,
                spath,
                f"builder[{i}]:{builder_id}",
                subject_required=False,
            )
        if builder_id is not None and glob_ok and level is not None and signer is not None:
            builders.append(TrustedBuilder(builder_id, level, signer))
    if raw.get("trustedBuilders") in (None, []):
        doc.err(
            f"{path}.trustedBuilders",
            "at least one trusted builder is required: provenance only counts when a builder "
            "listed here signed it",
        )
    min_level = _int(raw, "minLevel") or 0
    levels = [lv for b in raw_builders if (lv := _int(b, "level")) is not None]
    if levels and max(levels) < min_level <= 3:
        doc.err(
            f"{path}.minLevel",
            f"minLevel {min_level} is above every trusted builder's level (highest "
            f"{max(levels)}): no provenance could pass",
        )
    source_raw = _get(raw, "source")
    source = SourceRequirement(
        repositories=_globs(doc, source_raw, "repositories", f"{path}.source"),
        refs=_globs(doc, source_raw, "refs", f"{path}.source"),
    )
    claim = _get(raw, "acceptReproducibleClaim")
    return ProvenanceRequirement(
        min_level=min_level,
        trusted_builders=tuple(builders),
        source=source,
        build_types=_globs(doc, raw, "buildTypes", path),
        accept_reproducible_claim=claim is True,
    )


def _reproducibility(
    doc: _Doc, pending: _Pending, spec: Any, has_builders: bool
) -> ReproducibilityRequirement | None:
    raw = _get(spec, "reproducibility")
    if not isinstance(raw, dict):
        return None
    path = "spec.reproducibility"
    rebuilders = _authorities(doc, pending, raw, "rebuilders", f"{path}.rebuilders")
    verifiers = _authorities(doc, pending, raw, "verifiers", f"{path}.verifiers")
    minimum = _int(raw, "minIndependentBuilds") or 0
    has_sources = has_builders or bool(_list(raw, "rebuilders")) or bool(_list(raw, "verifiers"))
    if minimum > 0 and not has_sources:
        doc.err(
            f"{path}.minIndependentBuilds",
            "independent builds need provenance.trustedBuilders, rebuilders or verifiers; "
            "none are configured",
        )
    return ReproducibilityRequirement(minimum, tuple(rebuilders), tuple(verifiers))


def _exceptions(doc: _Doc, spec: Any) -> tuple[PolicyException, ...]:
    out: list[PolicyException] = []
    for i, raw in enumerate(_list(spec, "exceptions")):
        path = f"spec.exceptions[{i}]"
        images = _globs(doc, raw, "images", path, image=True)
        namespaces = _globs(doc, raw, "namespaces", path)
        if isinstance(raw, dict) and not _list(raw, "images") and not _list(raw, "namespaces"):
            doc.err(path, "an exception must name images or namespaces (or both)")
        expires: datetime | None = None
        text = _get(raw, "expires")
        if isinstance(text, str):
            if not _RFC3339.match(text):
                doc.err(
                    join(path, "expires"),
                    "must be an RFC 3339 time with a timezone, like 2026-12-31T00:00:00Z, "
                    f"got {describe(text)}",
                )
            else:
                try:
                    expires = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
                except ValueError as exc:
                    doc.err(join(path, "expires"), f"not a valid time: {exc}")
        reason = _str(raw, "reason")
        if reason is not None:
            out.append(PolicyException(images, namespaces, reason, expires))
    return tuple(out)


def _match(doc: _Doc, spec: Any) -> Match:
    raw = _get(spec, "match")
    path = "spec.match"
    if isinstance(raw, dict) and raw.get("images") == []:
        doc.err(f"{path}.images", "must not be empty (omit it to match every image)")
    has_images = isinstance(raw, dict) and "images" in raw
    images = _globs(doc, raw, "images", path, image=True) if has_images else ("**",)
    return Match(
        images=images,
        exclude_images=_globs(doc, raw, "excludeImages", path, image=True),
        namespaces=_globs(doc, raw, "namespaces", path),
    )


def _image_policy(doc: _Doc, pending: _Pending, data: dict[str, Any]) -> ImagePolicy | None:
    spec = data.get("spec")
    authorities_raw = _list(spec, "authorities")
    _unique(doc, authorities_raw, "spec.authorities", "authority")
    defined = [n for a in authorities_raw if (n := _str(a, "name")) is not None]
    authorities = _authorities(doc, pending, spec, "authorities", "spec.authorities")

    # authority names are what verified facts carry; they must be unambiguous across lists
    repro = _get(spec, "reproducibility")
    seen = set(defined)
    for key in ("rebuilders", "verifiers"):
        for i, raw in enumerate(_list(repro, key)):
            name = _str(raw, "name")
            if name is not None and name in seen:
                doc.err(
                    f"spec.reproducibility.{key}[{i}].name",
                    f"name {describe(name)} is already used by another authority",
                )
            if name is not None:
                seen.add(name)

    mode_raw = _str(spec, "mode")
    mode: Mode = mode_raw if mode_raw in ("enforce", "warn", "audit") else "enforce"  # type: ignore[assignment]
    match = _match(doc, spec)
    signatures = _signatures(doc, spec, defined)
    attestations = _attestations(doc, spec, defined)
    provenance = _provenance(doc, pending, spec, authorities, defined)
    reproducibility = _reproducibility(
        doc, pending, spec, bool(provenance and _list(_get(spec, "provenance"), "trustedBuilders"))
    )
    conditions = _conditions(doc, _list(spec, "conditions"), "spec.conditions", POLICY_VARIABLES)
    exceptions = _exceptions(doc, spec)
    name = _str(_get(data, "metadata"), "name")
    if name is None:
        return None
    return ImagePolicy(
        name=name,
        mode=mode,
        match=match,
        authorities=tuple(authorities),
        signatures=signatures,
        attestations=attestations,
        provenance=provenance,
        reproducibility=reproducibility,
        conditions=conditions,
        exceptions=exceptions,
        source=doc.source,
    )


def _trust_root_doc(doc: _Doc, data: dict[str, Any]) -> TrustRootDoc | None:
    name = _str(_get(data, "metadata"), "name")
    if name == PRODUCTION:
        doc.err("metadata.name", f"{PRODUCTION!r} is the built-in public Sigstore trust root")
    text = _str(_get(data, "spec"), "trustedRootJSON")
    if text is None:
        return None
    path = "spec.trustedRootJSON"
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        doc.err(path, f"is not JSON: {exc}")
        return None
    if not isinstance(parsed, dict):
        doc.err(path, "must be a JSON object")
        return None
    media_type = parsed.get("mediaType")
    if media_type != TRUSTED_ROOT_MEDIA_TYPE:
        doc.err(path, f"mediaType must be {TRUSTED_ROOT_MEDIA_TYPE}, got {describe(media_type)}")
    for key in ("tlogs", "certificateAuthorities"):
        if not isinstance(parsed.get(key), list):
            doc.err(path, f"{key} must be a list in a Sigstore trusted root")
    if name is None:
        return None
    return TrustRootDoc(name, text.encode("utf-8"), source=doc.source)


# --- the load ------------------------------------------------------------------------------


class _Load:
    """One load: documents in, PolicySet or PolicyLoadError out."""

    def __init__(self) -> None:
        self.errors: list[PolicyError] = []
        self.pending = _Pending()
        self.policies: list[ImagePolicy] = []
        self.trust_roots: list[TrustRootDoc] = []

    def add_text(self, text: str, source: str) -> None:
        for index, data in _documents(text, source, self.errors):
            if data is not None:
                self._add_document(_Doc(source, index, self.errors), data)

    def _add_document(self, doc: _Doc, data: Any) -> None:
        if not isinstance(data, dict):
            doc.err("", f"a document must be a mapping, got {describe(data)}")
            return
        kind = data.get("kind")
        if not isinstance(kind, str) or kind not in KINDS:
            if "apiVersion" not in data:
                doc.err("apiVersion", "is required")
            doc.err(
                "kind",
                "is required (ImagePolicy or TrustRoot)"
                if kind is None
                else f"must be one of {', '.join(KINDS)}, got {describe(kind)}",
            )
            return
        for path, message in validate(KINDS[kind], data):
            doc.err(path, message)
        name = _str(_get(data, "metadata"), "name")
        if name is not None:
            first = self.pending.names.get((kind, name))
            if first is not None:
                doc.err(
                    "metadata.name",
                    f"duplicate {kind} name {describe(name)} (first in {first.file} "
                    f"document {first.index})",
                )
            else:
                self.pending.names[(kind, name)] = doc
        if kind == "ImagePolicy":
            policy = _image_policy(doc, self.pending, data)
            if policy is not None:
                self.policies.append(policy)
        else:
            root = _trust_root_doc(doc, data)
            if root is not None:
                self.trust_roots.append(root)

    def add_file(self, path: Path) -> None:
        source = str(path)
        try:
            with path.open("rb") as fh:
                raw = fh.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            self.errors.append(PolicyError(source, None, "", f"cannot read: {exc.strerror}"))
            return
        if len(raw) > MAX_FILE_BYTES:
            self.errors.append(PolicyError(source, None, "", f"larger than {MAX_FILE_BYTES} bytes"))
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.errors.append(PolicyError(source, None, "", f"not UTF-8 text: {exc.reason}"))
            return
        self.add_text(text, source)

    def finish(self) -> PolicySet:
        names = {PRODUCTION} | {r.name for r in self.trust_roots}
        for doc, path, name in self.pending.trust_root_refs:
            if name not in names:
                known = ", ".join(sorted(names))
                doc.err(path, f"unknown trust root {describe(name)} (known: {known})")
        if self.errors:
            # report in file order, then document order, regardless of which pass found them
            order = {id(e): i for i, e in enumerate(self.errors)}
            self.errors.sort(key=lambda e: (e.file, e.document or 0, order[id(e)]))
            raise PolicyLoadError(self.errors)
        return PolicySet(policies=tuple(self.policies), trust_roots=tuple(self.trust_roots))


def is_policy_file(relative: PurePath) -> bool:
    """The directory-load rule (module docstring) for a path relative to the loaded directory."""
    name = relative.name
    if name.startswith(".") or not name.endswith((".yaml", ".yml")):
        return False
    if name.endswith((".test.yaml", ".test.yml")):
        return False
    return not any(p in _SKIPPED_DIRS or p.startswith(".") for p in relative.parts[:-1])


def policy_files(root: Path) -> list[Path]:
    """The policy files a load of directory ``root`` reads, in load order."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if d not in _SKIPPED_DIRS and not d.startswith(".")
        )
        base = Path(dirpath)
        for f in filenames:
            p = base / f
            if is_policy_file(p.relative_to(root)):
                found.append(p)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def load_policies(path: str | Path) -> PolicySet:
    """Load every policy under ``path`` (a directory, recursively, or one file).

    Raises PolicyLoadError listing every problem found (file, document, field, message).
    """
    root = Path(path)
    load = _Load()
    if root.is_dir():
        files = policy_files(root)
        if len(files) > MAX_FILES:
            raise PolicyLoadError(
                [PolicyError(str(root), None, "", f"more than {MAX_FILES} policy files")]
            )
        for f in files:
            load.add_file(f)
    elif root.exists():
        load.add_file(root)
    else:
        raise PolicyLoadError([PolicyError(str(root), None, "", "no such file or directory")])
    return load.finish()


def load_policy_documents(text: str, source: str = "<text>") -> PolicySet:
    """Load the YAML documents in ``text`` as if read from a file called ``source``."""
    load = _Load()
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise PolicyLoadError(
            [PolicyError(source, None, "", f"larger than {MAX_FILE_BYTES} bytes")]
        )
    load.add_text(text, source)
    return load.finish()

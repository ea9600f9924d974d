"""SLSA provenance predicates, normalised into one typed :class:`Provenance`.

Implements parsing of the SLSA provenance formats (https://slsa.dev/provenance/v0.1, v0.2 and
v1) from statements whose signature ``controller.verify`` has already checked. Rules:

- Only ``https://slsa.dev/provenance/v0.1``, ``/v0.2`` and ``/v1`` are provenance; other
  predicate types are not this module's business (:func:`is_provenance`).
- Fields the spec marks REQUIRED (``builder.id``; ``buildType`` / ``recipe.type``; in v1
  ``buildDefinition.externalParameters``) must be present with the right JSON type; a field of
  the wrong type anywhere is a :class:`ProvenanceError` naming the field, never a crash and never
  a silently empty value.
- Timestamps are RFC 3339 with a time zone; anything else is a :class:`ProvenanceError`.
- The source is normalised to ``host/owner/name`` (lower-case host, no scheme, no ``.git``),
  with the git ref and commit kept apart. Where it is read from:
  v0.2 ``invocation.configSource`` (slsa-github-generator writes
  ``git+https://github.com/owner/name@refs/tags/v1`` there), else the first git material;
  v1 ``externalParameters.workflow.repository``/``ref`` (GitHub Actions build type), else
  ``externalParameters.source``, else the first ``git+`` resolved dependency;
  v0.1 the material ``recipe.definedInMaterial`` points at, else the first git material.
  The commit is the ``gitCommit``/``sha1`` digest recorded for that source.
- v1 has no ``completeness`` or ``reproducible``; both read as false (nothing claimed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from controller.verify.facts import SignerIdentity, Subject, VerifiedStatement
from controller.verify.statement import names_digest

__all__ = [
    "PROVENANCE_TYPES",
    "PROVENANCE_V01",
    "PROVENANCE_V02",
    "PROVENANCE_V1",
    "Completeness",
    "Provenance",
    "ProvenanceError",
    "ResolvedDependency",
    "SourceInfo",
    "is_provenance",
    "names_digest",
    "parse_provenance",
    "parse_source_uri",
]

PROVENANCE_V01 = "https://slsa.dev/provenance/v0.1"
PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"
PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
PROVENANCE_TYPES = frozenset({PROVENANCE_V01, PROVENANCE_V02, PROVENANCE_V1})

MAX_DEPENDENCIES = 10_000  # bounds the work one statement can cause
_HEX_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@([A-Za-z0-9.-]+):(?!//)(.+)$")
_COMMIT_DIGESTS = ("gitCommit", "sha1", "sha256")
_EMPTY: Mapping[str, Any] = MappingProxyType({})


class ProvenanceError(ValueError):
    """A provenance predicate that does not have the shape its SLSA version requires."""

    def __init__(self, origin: str, why: str) -> None:
        super().__init__(f"malformed SLSA provenance from {origin}: {why}")
        self.origin = origin
        self.why = why


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """Where the build's top-level source came from.

    ``repository`` is ``host/owner/name`` (None when ``uri`` is not a recognisable git URL).
    """

    uri: str
    repository: str | None
    ref: str | None
    commit: str | None


@dataclass(frozen=True, slots=True)
class ResolvedDependency:
    """A material (v0.1/v0.2) or resolved dependency (v1): an artifact the build read."""

    uri: str
    digest: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Completeness:
    """v0.1/v0.2 ``metadata.completeness``: which lists the builder claims are complete."""

    parameters: bool = False
    environment: bool = False
    materials: bool = False


@dataclass(frozen=True, slots=True)
class Provenance:
    """One SLSA provenance statement, normalised across v0.1, v0.2 and v1."""

    predicate_type: str
    builder_id: str
    build_type: str
    source: SourceInfo | None
    external_parameters: Mapping[str, Any]
    resolved_dependencies: tuple[ResolvedDependency, ...]
    started_on: datetime | None
    finished_on: datetime | None
    completeness: Completeness
    reproducible: bool  # v0.1/v0.2 ``metadata.reproducible``: the builder's own claim
    subjects: tuple[Subject, ...]
    signer: SignerIdentity
    origin: str  # where the statement was found, for messages
    internal_parameters: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def names_digest(self, image_digest: str) -> bool:
        """True when one of the subjects carries ``image_digest`` (``sha256:<hex>``)."""
        return names_digest(self.subjects, image_digest)


def is_provenance(predicate_type: str) -> bool:
    """True for the SLSA provenance predicate types this module parses."""
    return predicate_type in PROVENANCE_TYPES


def parse_provenance(statement: VerifiedStatement) -> Provenance:
    """Normalise the predicate of a verified provenance statement.

    Raises :class:`ProvenanceError` when the predicate type is not SLSA provenance or the
    predicate does not have the shape its version requires.
    """
    reader = _Reader(statement.source or "an attestation")
    predicate = reader.obj(statement.predicate, "predicate")
    if statement.predicate_type == PROVENANCE_V02:
        parts = _parse_v02(reader, predicate)
    elif statement.predicate_type == PROVENANCE_V1:
        parts = _parse_v1(reader, predicate)
    elif statement.predicate_type == PROVENANCE_V01:
        parts = _parse_v01(reader, predicate)
    else:
        raise ProvenanceError(
            reader.origin, f"predicate type {statement.predicate_type!r} is not SLSA provenance"
        )
    return Provenance(
        predicate_type=statement.predicate_type,
        subjects=statement.subjects,
        signer=statement.signer,
        origin=reader.origin,
        **parts,
    )


def parse_source_uri(uri: str) -> SourceInfo:
    """Split a source URI into ``host/owner/name``, ref and commit.

    Understands ``git+https://host/owner/name@refs/tags/v1``, ``https://host/owner/name.git``,
    ``https://host/owner/name.git#<commit or ref>``, ``ssh://git@host/owner/name`` and
    ``git@host:owner/name.git``. Anything else yields ``repository=None``.
    """
    text = uri.strip()
    if text.startswith("git+"):
        text = text[4:]
    ref: str | None = None
    commit: str | None = None
    if "#" in text:
        text, fragment = text.split("#", 1)
        if _HEX_COMMIT.match(fragment.lower()):
            commit = fragment.lower()
        elif fragment:
            ref = fragment
    scp = _SCP_LIKE.match(text)
    if scp:
        host, path = scp.group(1), scp.group(2)
    else:
        try:
            parts = urlsplit(text)
            hostname = parts.hostname
            port = parts.port
        except ValueError:
            return SourceInfo(uri, None, ref, commit)
        if parts.scheme not in ("https", "http", "ssh", "git") or not hostname:
            return SourceInfo(uri, None, ref, commit)
        host = f"{hostname}:{port}" if port else hostname
        path = parts.path
    if "@" in path:
        path, path_ref = path.split("@", 1)
        if path_ref:
            ref = path_ref
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")]
    if commit is None and ref is not None and _HEX_COMMIT.match(ref):
        commit = ref
    if not path or any(not segment for segment in path.split("/")):
        return SourceInfo(uri, None, ref, commit)
    return SourceInfo(uri, f"{host.lower()}/{path}", ref, commit)


# --- per-version parsing -----------------------------------------------------------------


def _parse_v02(r: _Reader, predicate: Mapping[str, Any]) -> dict[str, Any]:
    builder = r.obj(predicate.get("builder"), "builder")
    builder_id = r.required_str(builder.get("id"), "builder.id")
    build_type = r.required_str(predicate.get("buildType"), "buildType")
    invocation = r.optional_obj(predicate.get("invocation"), "invocation")
    config = r.optional_obj(invocation.get("configSource"), "invocation.configSource")
    parameters = r.optional_obj(invocation.get("parameters"), "invocation.parameters")
    metadata = r.optional_obj(predicate.get("metadata"), "metadata")
    completeness = r.optional_obj(metadata.get("completeness"), "metadata.completeness")
    materials = r.dependencies(predicate.get("materials"), "materials", uri_key="uri")

    source: SourceInfo | None = None
    config_uri = r.optional_str(config.get("uri"), "invocation.configSource.uri")
    if config_uri:
        config_digest = r.digest(config.get("digest"), "invocation.configSource.digest")
        source = _with_commit(parse_source_uri(config_uri), config_digest, materials)
    else:
        source = _first_git_source(materials)
    return {
        "builder_id": builder_id,
        "build_type": build_type,
        "source": source,
        "external_parameters": parameters,
        "resolved_dependencies": materials,
        **_legacy_metadata(r, metadata, completeness, "parameters"),
    }


def _parse_v1(r: _Reader, predicate: Mapping[str, Any]) -> dict[str, Any]:
    definition = r.obj(predicate.get("buildDefinition"), "buildDefinition")
    run = r.obj(predicate.get("runDetails"), "runDetails")
    builder = r.obj(run.get("builder"), "runDetails.builder")
    builder_id = r.required_str(builder.get("id"), "runDetails.builder.id")
    build_type = r.required_str(definition.get("buildType"), "buildDefinition.buildType")
    external = r.obj(definition.get("externalParameters"), "buildDefinition.externalParameters")
    internal = r.optional_obj(
        definition.get("internalParameters"), "buildDefinition.internalParameters"
    )
    dependencies = r.dependencies(
        definition.get("resolvedDependencies"),
        "buildDefinition.resolvedDependencies",
        uri_key="uri",
    )
    metadata = r.optional_obj(run.get("metadata"), "runDetails.metadata")
    return {
        "builder_id": builder_id,
        "build_type": build_type,
        "source": _v1_source(r, external, dependencies),
        "external_parameters": external,
        "internal_parameters": internal,
        "resolved_dependencies": dependencies,
        "started_on": r.timestamp(metadata.get("startedOn"), "runDetails.metadata.startedOn"),
        "finished_on": r.timestamp(metadata.get("finishedOn"), "runDetails.metadata.finishedOn"),
        "completeness": Completeness(),
        "reproducible": False,
    }


def _v1_source(
    r: _Reader, external: Mapping[str, Any], dependencies: tuple[ResolvedDependency, ...]
) -> SourceInfo | None:
    workflow = external.get("workflow")
    if isinstance(workflow, Mapping) and "repository" in workflow:
        # GitHub Actions workflow build type: repository URL and ref stored separately.
        repo_uri = r.required_str(
            workflow.get("repository"), "externalParameters.workflow.repository"
        )
        ref = r.optional_str(workflow.get("ref"), "externalParameters.workflow.ref")
        parsed = parse_source_uri(repo_uri)
        parsed = SourceInfo(parsed.uri, parsed.repository, ref or parsed.ref, parsed.commit)
        return _with_commit(parsed, _EMPTY, dependencies)
    source = external.get("source")
    if isinstance(source, str) and source:
        return _with_commit(parse_source_uri(source), _EMPTY, dependencies)
    if isinstance(source, Mapping) and source.get("uri") is not None:
        uri = r.required_str(source.get("uri"), "externalParameters.source.uri")
        digest = r.digest(source.get("digest"), "externalParameters.source.digest")
        return _with_commit(parse_source_uri(uri), digest, dependencies)
    return _first_git_source(dependencies)


def _parse_v01(r: _Reader, predicate: Mapping[str, Any]) -> dict[str, Any]:
    builder = r.obj(predicate.get("builder"), "builder")
    builder_id = r.required_str(builder.get("id"), "builder.id")
    recipe = r.obj(predicate.get("recipe"), "recipe")
    build_type = r.required_str(recipe.get("type"), "recipe.type")
    arguments = r.optional_obj(recipe.get("arguments"), "recipe.arguments")
    metadata = r.optional_obj(predicate.get("metadata"), "metadata")
    completeness = r.optional_obj(metadata.get("completeness"), "metadata.completeness")
    materials = r.dependencies(predicate.get("materials"), "materials", uri_key="uri")
    index = recipe.get("definedInMaterial")
    source: SourceInfo | None
    if index is None:
        source = _first_git_source(materials)
    elif isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(materials):
        material = materials[index]
        source = _with_commit(parse_source_uri(material.uri), material.digest, materials)
    else:
        raise ProvenanceError(
            r.origin, f"recipe.definedInMaterial {index!r} is not an index into materials"
        )
    return {
        "builder_id": builder_id,
        "build_type": build_type,
        "source": source,
        "external_parameters": arguments,
        "resolved_dependencies": materials,
        **_legacy_metadata(r, metadata, completeness, "arguments"),
    }


# --- helpers -----------------------------------------------------------------------------


def _legacy_metadata(
    r: _Reader,
    metadata: Mapping[str, Any],
    completeness: Mapping[str, Any],
    parameters_key: str,
) -> dict[str, Any]:
    """Times, completeness and the reproducible claim, as v0.1 and v0.2 both record them
    (v0.1 calls the parameters "arguments")."""
    return {
        "started_on": r.timestamp(metadata.get("buildStartedOn"), "metadata.buildStartedOn"),
        "finished_on": r.timestamp(metadata.get("buildFinishedOn"), "metadata.buildFinishedOn"),
        "completeness": Completeness(
            parameters=r.flag(completeness.get(parameters_key), f"completeness.{parameters_key}"),
            environment=r.flag(completeness.get("environment"), "completeness.environment"),
            materials=r.flag(completeness.get("materials"), "completeness.materials"),
        ),
        "reproducible": r.flag(metadata.get("reproducible"), "metadata.reproducible"),
    }


def _commit_from(digest: Mapping[str, str]) -> str | None:
    for algorithm in _COMMIT_DIGESTS:
        value = digest.get(algorithm)
        if value and _HEX_COMMIT.match(value.lower()):
            return value.lower()
    return None


def _with_commit(
    source: SourceInfo, digest: Mapping[str, str], dependencies: Sequence[ResolvedDependency]
) -> SourceInfo:
    """Fill in the commit from the source's own digest, else from the dependency that is the
    same repository (GitHub workflow provenance records it only there)."""
    commit = _commit_from(digest) or source.commit
    if commit is None and source.repository is not None:
        for dependency in dependencies:
            if parse_source_uri(dependency.uri).repository == source.repository:
                commit = _commit_from(dependency.digest)
                if commit:
                    break
    return SourceInfo(source.uri, source.repository, source.ref, commit)


def _first_git_source(dependencies: Sequence[ResolvedDependency]) -> SourceInfo | None:
    for dependency in dependencies:
        uri = dependency.uri
        if uri.startswith("git+") or uri.endswith(".git") or ".git#" in uri:
            parsed = parse_source_uri(uri)
            if parsed.repository is not None:
                return _with_commit(parsed, dependency.digest, ())
    return None


class _Reader:
    """Typed access to untrusted JSON with errors that name the field."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, why: str) -> ProvenanceError:
        return ProvenanceError(self.origin, why)

    def obj(self, value: object, name: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(f"{name} must be a JSON object, got {_kind(value)}")
        return MappingProxyType(value)

    def optional_obj(self, value: object, name: str) -> Mapping[str, Any]:
        return _EMPTY if value is None else self.obj(value, name)

    def required_str(self, value: object, name: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(f"{name} is required and must be a non-empty string")
        return value

    def optional_str(self, value: object, name: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(f"{name} must be a string, got {_kind(value)}")
        return value or None

    def flag(self, value: object, name: str) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.fail(f"{name} must be true or false, got {_kind(value)}")
        return value

    def digest(self, value: object, name: str) -> Mapping[str, str]:
        if value is None:
            return _EMPTY
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise self.fail(f"{name} must map algorithm names to hex strings")
        return MappingProxyType(dict(value))

    def timestamp(self, value: object, name: str) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(f"{name} must be an RFC 3339 timestamp string, got {_kind(value)}")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise self.fail(f"{name} {value!r} is not an RFC 3339 timestamp") from exc
        if parsed.tzinfo is None:
            raise self.fail(f"{name} {value!r} has no time zone")
        return parsed

    def dependencies(
        self, value: object, name: str, *, uri_key: str
    ) -> tuple[ResolvedDependency, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(f"{name} must be a list, got {_kind(value)}")
        if len(value) > MAX_DEPENDENCIES:
            raise self.fail(f"{name} has {len(value)} entries, over {MAX_DEPENDENCIES}")
        out: list[ResolvedDependency] = []
        for index, entry in enumerate(value):
            item = self.obj(entry, f"{name}[{index}]")
            uri = self.optional_str(item.get(uri_key), f"{name}[{index}].{uri_key}")
            if uri is None:  # a v1 ResourceDescriptor may carry only a name
                uri = self.optional_str(item.get("name"), f"{name}[{index}].name") or ""
            out.append(ResolvedDependency(uri, self.digest(item.get("digest"), f"{name}[{index}]")))
        return tuple(out)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)

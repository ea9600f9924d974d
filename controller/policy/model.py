"""The ImagePolicy / TrustRoot model (``reprogate.dev/v1alpha1``), parsed once by the loader.

Field names mirror DESIGN.md's policy shape; the loader is the only place raw YAML is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from controller.verify.authority import Authority

if TYPE_CHECKING:
    from controller.policy.cel import CompiledCondition

__all__ = [
    "API_VERSION",
    "AttestationRequirement",
    "Condition",
    "ImagePolicy",
    "Match",
    "Mode",
    "PolicyError",
    "PolicyException",
    "PolicyLoadError",
    "PolicySet",
    "ProvenanceRequirement",
    "ReproducibilityRequirement",
    "SignatureRequirement",
    "SourceRequirement",
    "TrustRootDoc",
    "TrustedBuilder",
]

API_VERSION = "reprogate.dev/v1alpha1"
Mode = Literal["enforce", "warn", "audit"]


class PolicyError(ValueError):
    """One refusal in a policy file: where (file, 1-based document, field path) and why.

    ``str()`` reads ``policies/x.yaml document 2: spec.signatures.threshold: must be ...``;
    ``document`` is None for file-level problems and ``field`` is "" for document-level ones.
    """

    def __init__(self, file: str, document: int | None, field: str, message: str) -> None:
        self.file = file
        self.document = document
        self.field = field
        self.message = message
        where = file if document is None else f"{file} document {document}"
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


class PolicyLoadError(ValueError):
    """Every problem found while loading a set of policies (never just the first)."""

    def __init__(self, errors: list[PolicyError] | tuple[PolicyError, ...]) -> None:
        self.errors: tuple[PolicyError, ...] = tuple(errors)
        count = len(self.errors)
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"{count} error{'s' if count != 1 else ''} in policies:\n{lines}")


@dataclass(frozen=True)
class Match:
    """Which images and namespaces a policy applies to (globs; ``**`` crosses ``/``)."""

    images: tuple[str, ...] = ("**",)
    exclude_images: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()  # empty = all


@dataclass(frozen=True)
class SignatureRequirement:
    """``threshold`` distinct authorities among ``authorities`` (names) must have signed."""

    threshold: int
    authorities: tuple[str, ...]  # resolved: never empty unless the policy has none


@dataclass(frozen=True)
class Condition:
    """A named CEL expression and its compiled form (set by the loader)."""

    name: str
    expression: str
    message: str
    compiled: CompiledCondition | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class AttestationRequirement:
    """A signed in-toto statement of ``predicate_type`` from any of ``authorities``."""

    name: str
    predicate_type: str
    authorities: tuple[str, ...]
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class TrustedBuilder:
    """A builder id glob, the highest SLSA level it can attest, and who signs for it.

    A keyless ``signer`` with neither subject nor subjectRegExp means the certificate subject
    must equal the provenance's builder id.
    """

    id: str
    level: int
    signer: Authority


@dataclass(frozen=True)
class SourceRequirement:
    """Globs over the normalised source repository (host/owner/name) and the git ref."""

    repositories: tuple[str, ...] = ()
    refs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProvenanceRequirement:
    """SLSA provenance demands."""

    min_level: int = 0
    trusted_builders: tuple[TrustedBuilder, ...] = ()
    source: SourceRequirement = field(default_factory=SourceRequirement)
    build_types: tuple[str, ...] = ()  # globs; empty = any
    # a builder's own ``reproducible: true`` claim may count toward reproducibility (never as
    # an independent build) only when this is set
    accept_reproducible_claim: bool = False


@dataclass(frozen=True)
class ReproducibilityRequirement:
    """``min_independent_builds`` distinct trusted builders must have produced this digest."""

    min_independent_builds: int
    rebuilders: tuple[Authority, ...] = ()  # keys whose in-toto rebuild links count
    vsa_verifiers: tuple[Authority, ...] = ()  # verifiers whose SLSA_BUILD_REPRODUCED counts


@dataclass(frozen=True)
class PolicyException:
    """Images/namespaces exempted until ``expires``, with a reason auditors can read."""

    images: tuple[str, ...]
    namespaces: tuple[str, ...]
    reason: str
    expires: datetime | None


@dataclass(frozen=True)
class ImagePolicy:
    """One ``kind: ImagePolicy`` document."""

    name: str
    mode: Mode
    match: Match
    authorities: tuple[Authority, ...]
    signatures: SignatureRequirement
    attestations: tuple[AttestationRequirement, ...] = ()
    provenance: ProvenanceRequirement | None = None
    reproducibility: ReproducibilityRequirement | None = None
    conditions: tuple[Condition, ...] = ()
    exceptions: tuple[PolicyException, ...] = ()
    source: str = ""  # "file.yaml#2" for messages

    def authority(self, name: str) -> Authority:
        """The authority called ``name`` (the loader guarantees it exists)."""
        for a in self.authorities:
            if a.name == name:
                return a
        raise KeyError(name)


@dataclass(frozen=True)
class TrustRootDoc:
    """One ``kind: TrustRoot`` document: a Sigstore trusted_root.json by name."""

    name: str
    trusted_root_json: bytes
    source: str = ""


@dataclass(frozen=True)
class PolicySet:
    """Everything loaded from a policy directory."""

    policies: tuple[ImagePolicy, ...]
    trust_roots: tuple[TrustRootDoc, ...] = ()

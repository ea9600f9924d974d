"""Verified facts: the only things that cross from ``controller.verify`` to policies.

Only code in ``controller.verify`` constructs these, and only after the cryptography and the
binding to the image digest have been checked. Downstream code trusts them without re-checking.

One exception to the digest binding, kept apart in its own field:
``VerificationOutcome.foreign_statements`` holds statements stored with this image whose
signature verified in full but whose subjects name only OTHER digests (a rebuilder that got
different bytes signs its own digest). They are verified facts about other artifacts; only the
reproducibility check reads them, to report a rebuild that did not reproduce the image.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from controller.verify.link import VerifiedLink

__all__ = [
    "SignerIdentity",
    "Subject",
    "VerificationFailure",
    "VerificationOutcome",
    "VerifiedSignature",
    "VerifiedStatement",
]


@dataclass(frozen=True, slots=True)
class SignerIdentity:
    """Who signed: the policy authority that matched and what the evidence proved about it."""

    authority: str  # the policy's authority name ("" when verified outside a policy)
    kind: Literal["key", "keyless"]
    key_id: str | None = None  # sha256 hex of the public key's DER SPKI
    subject: str | None = None  # certificate SAN (URI or email)
    issuer: str | None = None  # OIDC issuer from the certificate

    def __str__(self) -> str:
        if self.kind == "key":
            return f"key {self.authority or (self.key_id or '')[:16]}"
        return f"{self.subject} (issuer {self.issuer})"


@dataclass(frozen=True, slots=True)
class Subject:
    """An in-toto subject: a name and its digests by algorithm."""

    name: str
    digest: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """A signature over ``image_digest`` that verified for ``signer``."""

    image_digest: str
    signer: SignerIdentity
    integrated_time: datetime | None  # verified time (tlog or TSA); None when key-only
    source: str
    annotations: Mapping[str, Any]  # simple-signing "optional" claims


@dataclass(frozen=True, slots=True)
class VerifiedStatement:
    """An in-toto Statement whose envelope verified for ``signer`` and names the image digest."""

    signer: SignerIdentity
    statement_type: str
    predicate_type: str
    subjects: tuple[Subject, ...]
    predicate: Any  # the parsed JSON predicate
    payload: bytes  # exact bytes that were signed
    integrated_time: datetime | None
    source: str


@dataclass(frozen=True, slots=True)
class VerificationFailure:
    """One piece of evidence that did not verify against one authority, and why."""

    source: str
    authority: str
    reason: str
    kind: Literal["signature", "attestation", "bundle", "link"] = "signature"


@dataclass(frozen=True, slots=True)
class VerificationOutcome:
    """Everything verification produced for one image and one set of authorities."""

    signatures: tuple[VerifiedSignature, ...] = ()
    statements: tuple[VerifiedStatement, ...] = ()
    links: tuple[VerifiedLink, ...] = ()  # rebuild links verified with a rebuilder's key
    failures: tuple[VerificationFailure, ...] = ()
    # Stored with this image, signature fully verified, but every subject names another
    # digest. Never evidence about this image: signature, attestation and provenance checks
    # must not read them; reproducibility reads them to report rebuilds with other bytes.
    foreign_statements: tuple[VerifiedStatement, ...] = ()

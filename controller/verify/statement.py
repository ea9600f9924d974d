"""in-toto Statements, turned into :class:`VerifiedStatement` only after their envelope verified.

Implements the in-toto Attestation Framework Statement layer, v0.1
(``https://in-toto.io/Statement/v0.1``) and v1 (``https://in-toto.io/Statement/v1``), carried
in DSSE with payloadType ``application/vnd.in-toto+json``. Rules enforced:

- The only way to build a :class:`VerifiedStatement` is :func:`_verified_statement`, which takes
  payload bytes whose signature the caller has ALREADY verified and the :class:`SignerIdentity`
  that verification proved. It is private to ``controller.verify`` (cosign layers and Sigstore
  bundles); nothing outside that package may call it.
- The payloadType must be the in-toto one; ``_type`` must be one of the two Statement versions;
  ``predicateType`` must be a non-empty string.
- ``subject`` is a non-empty list; every subject has a non-empty ``digest`` map of string to
  string, and its ``sha256`` (when present) is 64 hex characters (normalised to lowercase).
- :func:`statement_from_verified_payload` is the package's entry point: parse, then require a
  subject naming the image.
- :func:`names_digest` is the one test of "does a subject name this digest" (the algorithm of
  the digest, hex compared case-insensitively); :func:`require_subject_digest` binds a
  statement to an image with it (some subject's sha256 must equal the image's digest), and
  :func:`statement_subjects` reads the subjects of payload bytes by the same rules, for
  callers that hold only the payload.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from controller.verify.dsse import MAX_ENVELOPE_BYTES
from controller.verify.errors import EvidenceFormatError, VerificationError
from controller.verify.facts import SignerIdentity, Subject, VerifiedStatement
from controller.verify.jsontext import load_json_object

__all__ = [
    "INTOTO_PAYLOAD_TYPE",
    "STATEMENT_TYPES",
    "names_digest",
    "parse_sha256_digest",
    "require_subject_digest",
    "statement_from_verified_payload",
    "statement_subjects",
]

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPES = frozenset(
    {"https://in-toto.io/Statement/v0.1", "https://in-toto.io/Statement/v1"}
)
MAX_SUBJECTS = 10_000
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


def parse_sha256_digest(digest: str, what: str = "image digest") -> str:
    """The lowercase hex of a ``sha256:<64 hex>`` digest; :class:`EvidenceFormatError` else."""
    algorithm, _, hex_value = digest.partition(":")
    if algorithm != "sha256" or _SHA256_HEX.fullmatch(hex_value) is None:
        raise EvidenceFormatError(f"{what} {digest!r} is not sha256:<64 hex>")
    return hex_value.lower()


def _verified_statement(
    payload: bytes,
    payload_type: str,
    signer: SignerIdentity,
    *,
    integrated_time: datetime | None,
    source: str,
) -> VerifiedStatement:
    """Build a :class:`VerifiedStatement` from a payload whose signature has been verified.

    Package-private: call it only from ``controller.verify`` right after the DSSE signature (and
    log entry, when one is required) verified for ``signer``. Raises
    :class:`EvidenceFormatError` when the payload is not a well-formed in-toto Statement.
    """
    if payload_type != INTOTO_PAYLOAD_TYPE:
        raise EvidenceFormatError(
            f"DSSE payloadType is {payload_type!r}, not the in-toto {INTOTO_PAYLOAD_TYPE!r}"
        )
    doc = _statement_object(payload)
    statement_type = doc.get("_type")
    if statement_type not in STATEMENT_TYPES:
        raise EvidenceFormatError(
            f"in-toto statement _type {statement_type!r} is not one of {sorted(STATEMENT_TYPES)}"
        )
    predicate_type = doc.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type:
        raise EvidenceFormatError("in-toto statement has no predicateType string")
    return VerifiedStatement(
        signer=signer,
        statement_type=statement_type,
        predicate_type=predicate_type,
        subjects=_parse_subjects(doc.get("subject")),
        predicate=doc.get("predicate"),
        payload=payload,
        integrated_time=integrated_time,
        source=source,
    )


def statement_from_verified_payload(
    payload: bytes,
    signer: SignerIdentity,
    image_digest: str,
    integrated_time: datetime | None,
    source: str,
    *,
    payload_type: str = INTOTO_PAYLOAD_TYPE,
) -> VerifiedStatement:
    """The statement in ``payload``, already verified for ``signer``, bound to ``image_digest``.

    Only for ``controller.verify``: call it right after the envelope's signature (and any
    required log entry) verified. Raises :class:`EvidenceFormatError` for a malformed
    statement and :class:`VerificationError` when no subject names ``image_digest``.
    """
    statement = _verified_statement(
        payload, payload_type, signer, integrated_time=integrated_time, source=source
    )
    require_subject_digest(statement, image_digest)
    return statement


def _statement_object(payload: bytes) -> dict[str, Any]:
    # a statement is the payload of an envelope, so the envelope's limit bounds it
    return load_json_object(payload, "in-toto statement", max_bytes=MAX_ENVELOPE_BYTES)


def statement_subjects(payload: bytes) -> tuple[Subject, ...]:
    """The subjects of the in-toto statement in ``payload``, checked as a verified statement's
    are; :class:`EvidenceFormatError` when malformed.

    Reads only the subject list and proves nothing: use it to check or pick the digest a
    statement is about, never in place of :func:`statement_from_verified_payload`.
    """
    return _parse_subjects(_statement_object(payload).get("subject"))


def _parse_subjects(raw: object) -> tuple[Subject, ...]:
    if not isinstance(raw, list) or not raw:
        raise EvidenceFormatError("in-toto statement has no subjects")
    if len(raw) > MAX_SUBJECTS:
        raise EvidenceFormatError(
            f"in-toto statement has {len(raw)} subjects, over the limit of {MAX_SUBJECTS}"
        )
    subjects: list[Subject] = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise EvidenceFormatError(f"in-toto subject {index} is not a JSON object")
        name = entry.get("name", "")
        digest = entry.get("digest")
        if not isinstance(name, str):
            raise EvidenceFormatError(f"in-toto subject {index} name is not a string")
        if not isinstance(digest, dict) or not digest:
            raise EvidenceFormatError(f"in-toto subject {index} ({name!r}) has no digest")
        clean: dict[str, str] = {}
        for algorithm, value in digest.items():
            if not isinstance(value, str) or not value:
                raise EvidenceFormatError(
                    f"in-toto subject {index} ({name!r}) digest {algorithm!r} is not a string"
                )
            if algorithm == "sha256":
                if _SHA256_HEX.fullmatch(value) is None:
                    raise EvidenceFormatError(
                        f"in-toto subject {index} ({name!r}) sha256 is not 64 hex characters"
                    )
                value = value.lower()
            clean[algorithm] = value
        subjects.append(Subject(name=name, digest=clean))
    return tuple(subjects)


def names_digest(subjects: Sequence[Subject], digest: str) -> bool:
    """True when a subject's digest for the algorithm of ``digest`` (``algorithm:hex``) equals
    its hex, compared case-insensitively; False for a digest without both parts."""
    algorithm, sep, hex_value = digest.partition(":")
    if not sep or not hex_value:
        return False
    hex_value = hex_value.lower()
    return any(
        isinstance(s.digest.get(algorithm), str) and s.digest[algorithm].lower() == hex_value
        for s in subjects
    )


def require_subject_digest(statement: VerifiedStatement, image_digest: str) -> None:
    """Raise :class:`VerificationError` unless some subject's sha256 equals ``image_digest``."""
    wanted = parse_sha256_digest(image_digest)
    if names_digest(statement.subjects, f"sha256:{wanted}"):
        return
    named = [s.digest["sha256"] for s in statement.subjects if "sha256" in s.digest]
    if not named:
        raise VerificationError(
            f"statement subjects carry no sha256 digest, so none is the image {image_digest}"
        )
    shown = ", ".join(f"sha256:{d}" for d in named[:3])
    more = f" and {len(named) - 3} more" if len(named) > 3 else ""
    raise VerificationError(f"statement subjects name {shown}{more} not the image {image_digest}")

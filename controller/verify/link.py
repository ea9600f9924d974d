"""in-toto v0.9 link metadata, as rebuilderd publishes for independent rebuilds.

Implements signature verification of in-toto link metadata (in-toto specification v0.9,
section 4.3 "File formats: link", and 4.2 "Metadata signatures") with these rules:

- The document is ``{"signed": {...}, "signatures": [{"keyid", "sig"}]}`` with
  ``signed._type == "link"``; ``signed.name`` a string; ``materials`` and ``products`` objects
  mapping a path to ``{algorithm: hex digest}``. Anything else is :class:`EvidenceFormatError`.
- Documents over :data:`MAX_LINK_BYTES`, with more than :data:`MAX_SIGNATURES` signatures or
  :data:`MAX_ARTIFACTS` artifacts, with duplicate object keys, or with floating-point numbers
  (which canonical JSON cannot encode) are refused before any signature is checked.
- Signatures are hex and are over the canonical JSON of ``signed`` exactly as securesystemslib
  encodes it (OLPC canonical JSON): object keys sorted by code point, no whitespace, strings
  quoted with only ``\\`` and ``"`` escaped (every other character, control characters
  included, written as-is in UTF-8), integers in decimal, ``true``/``false``/``null``.
- ``keyid`` is a hint only: every signature is tried against every listed key, so a key id
  computed another way (in-toto-rs vs securesystemslib) changes nothing.
- The link verifies when one signature verifies with one listed key; the first key (in the
  order given) that verifies is the signer. No valid signature -> :class:`VerificationError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from controller.verify.authority import KeyAuthority
from controller.verify.errors import EvidenceFormatError, VerificationError
from controller.verify.keys import PublicKey, key_id, load_public_key, verify_signature

__all__ = [
    "MAX_ARTIFACTS",
    "MAX_LINK_BYTES",
    "MAX_SIGNATURES",
    "VerifiedLink",
    "canonical_json",
    "verify_link",
]

MAX_LINK_BYTES = 4 * 1024 * 1024
MAX_SIGNATURES = 16
MAX_ARTIFACTS = 100_000
_MAX_SIG_HEX = 2 * 4096

ArtifactDigests = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class VerifiedLink:
    """An in-toto link whose signature verified for ``signer`` (a policy authority name)."""

    name: str
    products: ArtifactDigests  # path -> {algorithm: lower-case hex}
    materials: ArtifactDigests
    signer: str
    key_id: str  # sha256 hex of the signer key's DER SubjectPublicKeyInfo
    link_keyid: str  # the in-toto keyid hint on the signature that verified

    def product_sha256(self) -> dict[str, str]:
        """``{path: sha256 hex}`` for every product that records a sha256."""
        return {path: d["sha256"] for path, d in self.products.items() if "sha256" in d}


def verify_link(raw: bytes, keys: Sequence[KeyAuthority]) -> VerifiedLink:
    """Verify in-toto link metadata ``raw`` (UNVERIFIED bytes) against ``keys``.

    Raises :class:`EvidenceFormatError` for malformed metadata and :class:`VerificationError`
    when no signature verifies with any listed key.
    """
    document = _parse(raw)
    signed = document.get("signed")
    if not isinstance(signed, dict):
        raise EvidenceFormatError("in-toto link has no 'signed' object")
    if signed.get("_type") != "link":
        raise EvidenceFormatError(
            f"in-toto metadata _type is {signed.get('_type')!r}, expected 'link'"
        )
    name = signed.get("name")
    if not isinstance(name, str):
        raise EvidenceFormatError("in-toto link 'name' is not a string")
    materials = _artifacts(signed.get("materials"), "materials")
    products = _artifacts(signed.get("products"), "products")
    signatures = _signatures(document.get("signatures"))
    message = canonical_json(signed)

    loaded: list[tuple[KeyAuthority, PublicKey]] = []
    key_problems: list[str] = []
    for authority in keys:
        try:
            loaded.append((authority, load_public_key(authority.public_key_pem)))
        except EvidenceFormatError as exc:
            key_problems.append(f"key {authority.name}: {exc}")
    for authority, key in loaded:
        for hint, sig in signatures:
            try:
                verify_signature(key, sig, message)
            except VerificationError:
                continue
            return VerifiedLink(
                name=name,
                products=products,
                materials=materials,
                signer=authority.name,
                key_id=key_id(key),
                link_keyid=hint,
            )
    names = ", ".join(a.name for a in keys) or "none"
    detail = f" ({'; '.join(key_problems)})" if key_problems else ""
    raise VerificationError(
        f"none of the {len(signatures)} signatures on in-toto link {name!r} verifies with "
        f"the listed keys: {names}{detail}",
        hint="check that the rebuilder's public key in the policy is the one that signed",
    )


def canonical_json(value: Any) -> bytes:
    """securesystemslib's canonical JSON encoding of ``value`` (see the module docstring)."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"')
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif value is None:
        out.append("null")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        for index, key in enumerate(sorted(value)):
            if not isinstance(key, str):
                raise EvidenceFormatError("canonical JSON object keys must be strings")
            if index:
                out.append(",")
            _encode(key, out)
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    else:
        raise EvidenceFormatError(f"canonical JSON cannot encode {type(value).__name__}")


def _parse(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_LINK_BYTES:
        raise EvidenceFormatError(
            f"in-toto link is {len(raw)} bytes, over the {MAX_LINK_BYTES} byte limit"
        )
    try:
        text = raw.decode("utf-8")
        document = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=_no_float,
            parse_constant=_no_float,
        )
    except UnicodeDecodeError as exc:
        raise EvidenceFormatError(f"in-toto link is not UTF-8: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise EvidenceFormatError(f"in-toto link is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise EvidenceFormatError("in-toto link is nested too deeply") from exc
    if not isinstance(document, dict):
        raise EvidenceFormatError("in-toto link is not a JSON object")
    return document


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise EvidenceFormatError(f"in-toto link repeats the key {key!r}")
        out[key] = value
    return out


def _no_float(text: str) -> Any:
    raise EvidenceFormatError(
        f"in-toto link contains the non-integer number {text}, which canonical JSON forbids"
    )


def _artifacts(value: object, field: str) -> ArtifactDigests:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, dict):
        raise EvidenceFormatError(f"in-toto link '{field}' is not an object")
    if len(value) > MAX_ARTIFACTS:
        raise EvidenceFormatError(
            f"in-toto link '{field}' has {len(value)} entries, over {MAX_ARTIFACTS}"
        )
    out: dict[str, Mapping[str, str]] = {}
    for path, digests in value.items():
        if not isinstance(digests, dict) or not all(
            isinstance(alg, str) and isinstance(hex_value, str)
            for alg, hex_value in digests.items()
        ):
            raise EvidenceFormatError(
                f"in-toto link '{field}' entry {path!r} is not an object of digest strings"
            )
        out[path] = MappingProxyType({alg: h.lower() for alg, h in digests.items()})
    return MappingProxyType(out)


def _signatures(value: object) -> list[tuple[str, bytes]]:
    if not isinstance(value, list) or not value:
        raise EvidenceFormatError("in-toto link has no signatures")
    if len(value) > MAX_SIGNATURES:
        raise EvidenceFormatError(
            f"in-toto link has {len(value)} signatures, over the limit of {MAX_SIGNATURES}"
        )
    out: list[tuple[str, bytes]] = []
    for index, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise EvidenceFormatError(f"in-toto link signature {index} is not an object")
        keyid = entry.get("keyid", "")
        sig = entry.get("sig")
        if not isinstance(keyid, str):
            raise EvidenceFormatError(f"in-toto link signature {index} keyid is not a string")
        if not isinstance(sig, str) or not sig or len(sig) > _MAX_SIG_HEX:
            raise EvidenceFormatError(f"in-toto link signature {index} has no usable 'sig'")
        try:
            out.append((keyid, bytes.fromhex(sig)))
        except ValueError as exc:
            raise EvidenceFormatError(f"in-toto link signature {index} is not hex: {exc}") from exc
    return out

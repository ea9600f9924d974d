"""The structure of ImagePolicy and TrustRoot documents (``reprogate.dev/v1alpha1``), once.

This module is the single source of truth for field names, types, ranges and defaults:
- the loader validates every document against it (unknown fields, wrong types, enums, ranges,
  required fields, mutually exclusive fields) before its semantic checks;
- it generates the JSON Schema (draft 2020-12) files in ``policies/schema/``, the CRD
  manifests in ``deploy/crds/`` and the field table in ``docs/policies.md``.

``python -m controller.policy.schema`` rewrites the generated files; ``--check`` exits 1 when a
committed file differs from what would be generated (CI runs it through a test).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from controller.policy.model import API_VERSION

__all__ = [
    "IMAGE_POLICY",
    "TRUST_ROOT",
    "Arr",
    "Bool",
    "Int",
    "Node",
    "Obj",
    "Str",
    "StrMap",
    "crd_manifest",
    "docs_table",
    "generated_files",
    "json_schema",
    "main",
    "validate",
]

GROUP: Final = "reprogate.dev"
VERSION: Final = "v1alpha1"


@dataclass(frozen=True)
class Str:
    """A string, optionally from ``enum`` or matching ``pattern`` (described by ``hint``)."""

    description: str
    enum: tuple[str, ...] = ()
    pattern: str | None = None
    hint: str = ""
    fmt: str | None = None
    default: str | None = None
    min_length: int = 1
    max_length: int | None = None


@dataclass(frozen=True)
class Int:
    """An integer in ``[minimum, maximum]``."""

    description: str
    minimum: int | None = None
    maximum: int | None = None
    default: int | None = None


@dataclass(frozen=True)
class Bool:
    """true or false."""

    description: str
    default: bool | None = None


@dataclass(frozen=True)
class Arr:
    """A list of ``items``."""

    items: Node
    description: str
    default: tuple[Any, ...] | None = None
    max_items: int | None = None


@dataclass(frozen=True)
class StrMap:
    """A mapping of strings to strings (labels, annotations)."""

    description: str


@dataclass(frozen=True)
class Obj:
    """A mapping with known ``fields``; any other key is refused."""

    description: str
    fields: Mapping[str, Node] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    exactly_one: tuple[tuple[str, ...], ...] = ()  # groups: exactly one member present
    at_most_one: tuple[tuple[str, ...], ...] = ()  # groups: at most one member present


Node = Str | Int | Bool | Arr | StrMap | Obj

# --- the documents -------------------------------------------------------------------------

_DNS_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_DNS_HINT = (
    "a DNS-1123 name (lowercase letters, digits, '-' and '.'; starting and ending alphanumeric)"
)
_NAME = r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$"
_NAME_HINT = "a name of letters, digits, '-', '_' and '.' (starting and ending alphanumeric)"
_TLOG = ("required", "optional", "ignore")
_MAX_PEM = 16384


def _name(description: str) -> Str:
    return Str(description, pattern=_NAME, hint=_NAME_HINT, max_length=63)


def _globs(description: str, default: tuple[str, ...] | None = None) -> Arr:
    return Arr(Str("A glob.", max_length=1024), description, default=default)


def _key(description: str) -> Obj:
    return Obj(
        description,
        {
            "pem": Str(
                "PEM SubjectPublicKeyInfo (ECDSA P-256/P-384/P-521, RSA 2048-16384 bits, Ed25519).",
                max_length=_MAX_PEM,
            ),
            "trustRoot": Str(
                "Trust root whose Rekor logs are checked: `production` or a TrustRoot name.",
                default="production",
            ),
        },
        required=("pem",),
    )


def _keyless(description: str, *, subject_required: bool) -> Obj:
    subject_note = (
        "exactly one of `subject` and `subjectRegExp` is required"
        if subject_required
        else "with neither, the certificate subject must equal the builder id"
    )
    return Obj(
        f"{description} ({subject_note}).",
        {
            "issuer": Str("OIDC issuer URL in the Fulcio certificate.", fmt="uri", max_length=1024),
            "subject": Str("Exact certificate subject (SAN URI or email).", max_length=1024),
            "subjectRegExp": Str(
                "Regular expression that must match the whole certificate subject.",
                max_length=1024,
            ),
            "trustRoot": Str(
                "Fulcio/Rekor trust root: `production` (public Sigstore) or a TrustRoot name.",
                default="production",
            ),
        },
        required=("issuer",),
        exactly_one=(("subject", "subjectRegExp"),) if subject_required else (),
        at_most_one=() if subject_required else (("subject", "subjectRegExp"),),
    )


_TLOG_FIELD = Str(
    "Transparency-log demand: `required`, `optional` (checked when present) or `ignore`. "
    "Default: optional for keys, required for keyless.",
    enum=_TLOG,
)

AUTHORITY: Final = Obj(
    "A named signer: exactly one of `key` and `keyless`.",
    {
        "name": _name("Name, unique among the policy's authorities, rebuilders and verifiers."),
        "key": _key("A long-lived public key."),
        "keyless": _keyless("A Sigstore keyless (Fulcio) identity", subject_required=True),
        "transparencyLog": _TLOG_FIELD,
    },
    required=("name",),
    exactly_one=(("key", "keyless"),),
)

SIGNER: Final = Obj(
    "Who signs the builder's provenance: exactly one of `key`, `keyless`, `authority`.",
    {
        "key": _key("A long-lived public key."),
        "keyless": _keyless("A Sigstore keyless identity", subject_required=False),
        "authority": _name("Name of an authority of this policy."),
        "transparencyLog": _TLOG_FIELD,
    },
    exactly_one=(("key", "keyless", "authority"),),
)

CONDITION: Final = Obj(
    "A named CEL expression that must evaluate to true.",
    {
        "name": _name("Name, unique in its list; reported as `condition:<name>`."),
        "expression": Str("CEL expression returning a bool.", max_length=8192),
        "message": Str(
            "Reason shown when the expression is false. Default: names the expression.",
            max_length=1024,
        ),
    },
    required=("name", "expression"),
)

IMAGE_POLICY_SPEC: Final = Obj(
    "What images must carry to be admitted.",
    {
        "mode": Str(
            "`enforce` denies, `warn` admits with a warning, `audit` only records.",
            enum=("enforce", "warn", "audit"),
            default="enforce",
        ),
        "match": Obj(
            "Which images and namespaces the policy applies to.",
            {
                "images": _globs("Image globs over `registry/repository`.", ("**",)),
                "excludeImages": _globs("Image globs taken out of `images`."),
                "namespaces": _globs("Namespace globs; empty means every namespace."),
            },
        ),
        "authorities": Arr(AUTHORITY, "Named signers used by signatures and attestations."),
        "signatures": Obj(
            "Signatures on the image itself. Omitted: threshold 1 over all authorities "
            "(0 when there are none).",
            {
                "threshold": Int(
                    "Distinct authorities that must have signed; 0 requires none. Default 1 "
                    "(0 when there are no authorities).",
                    minimum=0,
                ),
                "authorities": Arr(
                    _name("An authority name."), "Authority names; empty means all."
                ),
            },
        ),
        "attestations": Arr(
            Obj(
                "A signed in-toto statement the image must carry.",
                {
                    "name": _name("Name, unique in the policy; reported as `attestation:<name>`."),
                    "predicateType": Str("in-toto predicateType URI.", max_length=1024),
                    "authorities": Arr(
                        _name("An authority name."),
                        "Authorities, any one of which must have signed; empty means all.",
                    ),
                    "conditions": Arr(CONDITION, "CEL over the verified `statement`."),
                },
                required=("name", "predicateType"),
            ),
            "Attestations required on the image.",
        ),
        "provenance": Obj(
            "SLSA provenance requirements.",
            {
                "minLevel": Int(
                    "Minimum SLSA build level (0-3) of a trusted builder's provenance.",
                    minimum=0,
                    maximum=3,
                    default=0,
                ),
                "trustedBuilders": Arr(
                    Obj(
                        "A builder whose signed provenance is accepted.",
                        {
                            "id": Str("Glob over the provenance's builder id.", max_length=1024),
                            "level": Int(
                                "Highest SLSA build level this builder attests (0-3).",
                                minimum=0,
                                maximum=3,
                            ),
                            "signer": SIGNER,
                        },
                        required=("id", "level", "signer"),
                    ),
                    "Builders whose provenance counts; at least one when `provenance` is set.",
                ),
                "source": Obj(
                    "Where the source must come from.",
                    {
                        "repositories": _globs(
                            "Globs over the normalised source repository `host/owner/name`; "
                            "empty means any."
                        ),
                        "refs": _globs("Globs over the git ref (`refs/tags/v*`); empty means any."),
                    },
                ),
                "buildTypes": _globs("Globs over the provenance buildType; empty means any."),
                "acceptReproducibleClaim": Bool(
                    "Let a builder's own `reproducible: true` claim satisfy "
                    "`reproducibility.reproduced` (never an independent build).",
                    default=False,
                ),
            },
        ),
        "reproducibility": Obj(
            "Independent rebuild evidence.",
            {
                "minIndependentBuilds": Int(
                    "Distinct trusted builders, rebuilders or VSA verifiers that must have "
                    "produced this digest.",
                    minimum=0,
                ),
                "rebuilders": Arr(AUTHORITY, "Signers whose in-toto rebuild links count."),
                "verifiers": Arr(
                    AUTHORITY, "Signers whose SLSA VSAs with SLSA_BUILD_REPRODUCED count."
                ),
            },
            required=("minIndependentBuilds",),
        ),
        "conditions": Arr(CONDITION, "CEL conditions over the verified evidence."),
        "exceptions": Arr(
            Obj(
                "A time-limited waiver; at least one of `images` and `namespaces`.",
                {
                    "images": _globs("Image globs; empty means every matched image."),
                    "namespaces": _globs("Namespace globs; empty means every namespace."),
                    "reason": Str("Why, for auditors.", max_length=1024),
                    "expires": Str(
                        "RFC 3339 time with timezone after which the waiver ends.",
                        fmt="date-time",
                    ),
                },
                required=("reason",),
            ),
            "Waivers: a failing policy passes as `excepted` for the covered images.",
        ),
    },
)

METADATA: Final = Obj(
    "Object metadata.",
    {
        "name": Str("Name, unique per kind.", pattern=_DNS_NAME, hint=_DNS_HINT, max_length=253),
        "namespace": Str("Ignored (policies are cluster-wide).", max_length=63),
        "labels": StrMap("Ignored by reprogate."),
        "annotations": StrMap("Ignored by reprogate."),
    },
    required=("name",),
)


def _document(kind: str, spec: Obj, description: str) -> Obj:
    return Obj(
        description,
        {
            "apiVersion": Str("API version.", enum=(API_VERSION,)),
            "kind": Str("Kind.", enum=(kind,)),
            "metadata": METADATA,
            "spec": spec,
        },
        required=("apiVersion", "kind", "metadata", "spec"),
    )


IMAGE_POLICY: Final = _document(
    "ImagePolicy", IMAGE_POLICY_SPEC, "A reprogate image admission policy."
)
TRUST_ROOT: Final = _document(
    "TrustRoot",
    Obj(
        "A Sigstore trust root.",
        {
            "trustedRootJSON": Str(
                "Contents of a Sigstore trusted_root.json "
                "(mediaType application/vnd.dev.sigstore.trustedroot+json;version=0.1).",
                max_length=1 << 20,
            )
        },
        required=("trustedRootJSON",),
    ),
    "A named Sigstore trust root (Fulcio CAs, Rekor logs, TSAs) for keyless authorities.",
)

KINDS: Final[Mapping[str, Obj]] = {"ImagePolicy": IMAGE_POLICY, "TrustRoot": TRUST_ROOT}

# --- validation ----------------------------------------------------------------------------


def describe(value: Any) -> str:
    """A short rendering of ``value`` for "got ..." in messages."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        text = json.dumps(value[:60] + ("..." if len(value) > 60 else ""))
        return text
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def join(path: str, key: str) -> str:
    """``path.key`` (just ``key`` at the top)."""
    return f"{path}.{key}" if path else key


def _int_rule(node: Int) -> str:
    if node.minimum is not None and node.maximum is not None:
        return f"an integer from {node.minimum} to {node.maximum}"
    if node.minimum is not None:
        return f"an integer >= {node.minimum}"
    if node.maximum is not None:
        return f"an integer <= {node.maximum}"
    return "an integer"


def validate(node: Node, value: Any, path: str = "") -> list[tuple[str, str]]:
    """Structural problems of ``value`` against ``node`` as (field path, message) pairs."""
    out: list[tuple[str, str]] = []
    if isinstance(node, Obj):
        if not isinstance(value, dict):
            return [(path, f"must be a mapping, got {describe(value)}")]
        for key, item in value.items():
            if key not in node.fields:
                allowed = ", ".join(node.fields)
                out.append((join(path, str(key)), f"unknown field (expected one of: {allowed})"))
            else:
                out.extend(validate(node.fields[key], item, join(path, key)))
        for key in node.required:
            if key not in value:
                out.append((join(path, key), "is required"))
        for group in node.exactly_one:
            present = [k for k in group if k in value]
            if len(present) != 1:
                got = "none" if not present else " and ".join(present)
                out.append((path, f"exactly one of {', '.join(group)} must be set, got {got}"))
        for group in node.at_most_one:
            present = [k for k in group if k in value]
            if len(present) > 1:
                out.append((path, f"at most one of {', '.join(group)} may be set"))
    elif isinstance(node, Arr):
        if not isinstance(value, list):
            return [(path, f"must be a list, got {describe(value)}")]
        if node.max_items is not None and len(value) > node.max_items:
            out.append((path, f"must have at most {node.max_items} items"))
        for i, item in enumerate(value):
            out.extend(validate(node.items, item, f"{path}[{i}]"))
    elif isinstance(node, Str):
        if not isinstance(value, str):
            return [(path, f"must be a string, got {describe(value)}")]
        if node.enum and value not in node.enum:
            out.append((path, f"must be one of {', '.join(node.enum)}, got {describe(value)}"))
        elif len(value) < node.min_length:
            out.append((path, "must not be empty"))
        elif node.max_length is not None and len(value) > node.max_length:
            out.append((path, f"must be at most {node.max_length} characters long"))
        elif node.pattern is not None and not re.match(node.pattern, value):
            out.append((path, f"must be {node.hint}, got {describe(value)}"))
    elif isinstance(node, Int):
        ok = isinstance(value, int) and not isinstance(value, bool)
        if (
            not ok
            or (node.minimum is not None and value < node.minimum)
            or (node.maximum is not None and value > node.maximum)
        ):
            out.append((path, f"must be {_int_rule(node)}, got {describe(value)}"))
    elif isinstance(node, Bool):
        if not isinstance(value, bool):
            out.append((path, f"must be true or false, got {describe(value)}"))
    elif isinstance(node, StrMap):
        strings = isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        )
        if not strings:
            out.append((path, f"must be a mapping of strings to strings, got {describe(value)}"))
    return out


def walk_fields(node: Node, path: str = "") -> list[tuple[str, Node]]:
    """Every field path under ``node`` (``[]`` marks list items), depth first."""
    out: list[tuple[str, Node]] = []
    if isinstance(node, Obj):
        for key, child in node.fields.items():
            sub = join(path, key)
            out.append((sub, child))
            out.extend(walk_fields(child, sub))
    elif isinstance(node, Arr):
        out.extend(walk_fields(node.items, f"{path}[]"))
    return out


# --- generation ----------------------------------------------------------------------------


def _schema(node: Node, crd: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(node, Obj):
        out["type"] = "object"
        out["description"] = node.description
        out["properties"] = {k: _schema(v, crd) for k, v in node.fields.items()}
        if node.required:
            out["required"] = list(node.required)
        if not crd:
            # CRDs prune unknown fields instead; structural schemas forbid this keyword
            out["additionalProperties"] = False
        rules: list[dict[str, Any]] = []
        for group in node.exactly_one:
            rules.append({"oneOf": [{"required": [k]} for k in group]})
        for group in node.at_most_one:
            for i, a in enumerate(group):
                for b in group[i + 1 :]:
                    rules.append({"not": {"required": [a, b]}})
        if len(rules) == 1:
            out.update(rules[0])
        elif rules:
            out["allOf"] = rules
    elif isinstance(node, Arr):
        out["type"] = "array"
        out["description"] = node.description
        out["items"] = _schema(node.items, crd)
        if node.default is not None:
            out["default"] = list(node.default)
        if node.max_items is not None:
            out["maxItems"] = node.max_items
    elif isinstance(node, Str):
        out["type"] = "string"
        out["description"] = node.description
        if node.enum:
            out["enum"] = list(node.enum)
        if node.pattern:
            out["pattern"] = node.pattern
        if node.fmt:
            out["format"] = node.fmt
        if node.min_length and not node.enum:
            out["minLength"] = node.min_length
        if node.max_length is not None:
            out["maxLength"] = node.max_length
        if node.default is not None:
            out["default"] = node.default
    elif isinstance(node, Int):
        out["type"] = "integer"
        out["description"] = node.description
        if node.minimum is not None:
            out["minimum"] = node.minimum
        if node.maximum is not None:
            out["maximum"] = node.maximum
        if node.default is not None:
            out["default"] = node.default
    elif isinstance(node, Bool):
        out["type"] = "boolean"
        out["description"] = node.description
        if node.default is not None:
            out["default"] = node.default
    else:
        out["type"] = "object"
        out["description"] = node.description
        out["additionalProperties"] = {"type": "string"}
    return out


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) for documents of ``kind``."""
    body = _schema(KINDS[kind], crd=False)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://{GROUP}/schemas/{kind.lower()}.schema.json",
        "title": f"{kind} ({API_VERSION})",
        **body,
    }


_PLURALS: Final = {"ImagePolicy": "imagepolicies", "TrustRoot": "trustroots"}
_SHORT: Final = {"ImagePolicy": ["imgpol"], "TrustRoot": ["trustroot"]}


def crd_manifest(kind: str) -> dict[str, Any]:
    """The CustomResourceDefinition (apiextensions.k8s.io/v1) for ``kind``, cluster-scoped."""
    body = _schema(KINDS[kind], crd=True)
    props = dict(body["properties"])
    props["apiVersion"] = {"type": "string", "description": "API version."}
    props["kind"] = {"type": "string", "description": "Kind."}
    props["metadata"] = {"type": "object"}
    body["properties"] = props
    body["required"] = ["spec"]
    plural = _PLURALS[kind]
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": body},
    }
    if kind == "ImagePolicy":
        version["additionalPrinterColumns"] = [
            {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": _SHORT[kind],
            },
            "scope": "Cluster",
            "versions": [version],
        },
    }


def _type_text(node: Node) -> str:
    if isinstance(node, Obj):
        return "object"
    if isinstance(node, Arr):
        return f"list of {_type_text(node.items)}"
    if isinstance(node, StrMap):
        return "map of string"
    if isinstance(node, Bool):
        return "bool"
    if isinstance(node, Int):
        return _int_rule(node).removeprefix("an ")
    if node.enum:
        return " \\| ".join(f"`{e}`" for e in node.enum)
    return "string" + (f" ({node.fmt})" if node.fmt else "")


def _default_text(node: Node, required: bool) -> str:
    if required:
        return "required"
    default = getattr(node, "default", None)
    if default is None:
        return ""
    return f"`{json.dumps(list(default) if isinstance(default, tuple) else default)}`"


def docs_table(kind: str) -> str:
    """The markdown field table for ``kind`` (embedded in docs/policies.md)."""
    rows = ["| field | type | default | meaning |", "|---|---|---|---|"]

    def emit(node: Node, path: str) -> None:
        if isinstance(node, Arr):
            emit(node.items, f"{path}[]")
            return
        if not isinstance(node, Obj):
            return
        for key, child in node.fields.items():
            sub = join(path, key)
            desc = child.description.replace("|", "\\|")
            default = _default_text(child, key in node.required)
            rows.append(f"| `{sub}` | {_type_text(child)} | {default} | {desc} |")
            emit(child, sub)

    emit(KINDS[kind], "")
    return "\n".join(rows) + "\n"


def _root() -> Path:
    return Path(__file__).resolve().parents[2]


_HEADER = "# Generated by `python -m controller.policy.schema` from controller/policy/schema.py.\n"
_DOCS_BEGIN = "<!-- BEGIN GENERATED: {kind} fields (python -m controller.policy.schema) -->\n"
_DOCS_END = "<!-- END GENERATED: {kind} fields -->\n"


def _with_docs_tables(text: str) -> str:
    for kind in KINDS:
        begin, end = _DOCS_BEGIN.format(kind=kind), _DOCS_END.format(kind=kind)
        start, stop = text.find(begin), text.find(end)
        if start == -1 or stop == -1 or stop < start:
            continue
        text = text[: start + len(begin)] + docs_table(kind) + text[stop:]
    return text


def generated_files(root: Path | None = None) -> dict[Path, str]:
    """Every generated file under ``root`` (the repository) and its expected contents."""
    root = root or _root()
    out: dict[Path, str] = {}
    for kind in KINDS:
        out[root / "policies" / "schema" / f"{kind.lower()}.schema.json"] = (
            json.dumps(json_schema(kind), indent=2) + "\n"
        )
        out[root / "deploy" / "crds" / f"{_PLURALS[kind]}.{GROUP}.yaml"] = _HEADER + yaml.safe_dump(
            crd_manifest(kind), sort_keys=False, width=100
        )
    docs = root / "docs" / "policies.md"
    if docs.is_file():
        out[docs] = _with_docs_tables(docs.read_text(encoding="utf-8"))
    return out


def main(argv: list[str] | None = None) -> int:
    """Write the generated files, or with ``--check`` report the stale ones (exit 1)."""
    parser = argparse.ArgumentParser(prog="python -m controller.policy.schema")
    parser.add_argument("--check", action="store_true", help="exit 1 if files are stale")
    parser.add_argument("--root", type=Path, default=None, help="repository root")
    args = parser.parse_args(argv)
    stale: list[Path] = []
    for path, text in generated_files(args.root).items():
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        for path in stale:
            print(f"stale: {path} (run python -m controller.policy.schema)", file=sys.stderr)
        return 1
    for path in stale:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

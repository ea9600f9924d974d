"""Tests for controller.policy.loader and controller.policy.schema (real keys, real files)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from controller.policy import schema
from controller.policy.loader import (
    MAX_DOCUMENTS,
    MAX_FILE_BYTES,
    is_policy_file,
    load_policies,
    load_policy_documents,
    policy_files,
)
from controller.policy.model import PolicyError, PolicyLoadError
from controller.verify.authority import KeyAuthority, KeylessAuthority
from controller.verify.errors import EvidenceFormatError
from controller.verify.keys import load_public_key

ROOT = Path(__file__).resolve().parents[1]
MALFORMED = Path(__file__).resolve().parent / "malformed_policies"
DOCS = ROOT / "docs" / "policies.md"
GH = "https://token.actions.githubusercontent.com"


def _pem_block(pem: bytes, indent: int) -> str:
    pad = " " * indent
    return "|\n" + "".join(pad + line + "\n" for line in pem.decode().strip().splitlines())


def _ec_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _policy(name: str, spec: str) -> str:
    return (
        f"apiVersion: reprogate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {{name: {name}}}\n{spec}"
    )


def _errors(text: str, source: str = "p.yaml") -> list[PolicyError]:
    with pytest.raises(PolicyLoadError) as info:
        load_policy_documents(text, source)
    return list(info.value.errors)


# --- malformed fixtures --------------------------------------------------------------------


def _expectations(path: Path) -> tuple[int, str, str]:
    head = dict(re.findall(r"^# expect-(document|field|message): ?(.*)$", path.read_text(), re.M))
    return int(head["document"]), head["field"], head["message"]


MALFORMED_FILES = sorted(MALFORMED.glob("*.yaml"))


def test_there_are_enough_malformed_fixtures() -> None:
    assert len(MALFORMED_FILES) >= 22


@pytest.mark.parametrize("path", MALFORMED_FILES, ids=lambda p: p.stem)
def test_malformed_policy_is_refused_with_location(path: Path) -> None:
    document, field, message = _expectations(path)
    with pytest.raises(PolicyLoadError) as info:
        load_policies(path)
    matching = [
        e
        for e in info.value.errors
        if e.file == str(path) and e.document == document and e.field == field
    ]
    assert matching, f"no error at document {document} field {field!r}: {info.value}"
    assert any(message in e.message for e in matching), str(info.value)
    prefix = f"{path} document {document}: {field + ': ' if field else ''}"
    assert any(str(e).startswith(prefix) for e in matching)
    assert str(matching[0]) in str(info.value)


def test_all_errors_of_a_load_are_reported_not_just_the_first(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(_policy("a", "spec:\n  mode: loud\n"))
    (tmp_path / "b.yaml").write_text(
        _policy("b", "spec:\n  signatures: {threshold: two}\n  bogus: 1\n")
        + "---\n"
        + _policy("c", "spec:\n  match: {images: ['[oops']}\n")
    )
    with pytest.raises(PolicyLoadError) as info:
        load_policies(tmp_path)
    located = {(Path(e.file).name, e.document, e.field) for e in info.value.errors}
    assert located == {
        ("a.yaml", 1, "spec.mode"),
        ("b.yaml", 1, "spec.signatures.threshold"),
        ("b.yaml", 1, "spec.bogus"),
        ("b.yaml", 2, "spec.match.images[0]"),
    }
    assert str(info.value).startswith("4 errors in policies:")


def test_error_string_format() -> None:
    text = _policy("x", "spec:\n  signatures: {threshold: two}\n")
    (err,) = _errors(text, "policies/x.yaml")
    assert str(err) == (
        'policies/x.yaml document 1: spec.signatures.threshold: must be an integer >= 0, got "two"'
    )
    errs = _errors(_policy("ok", "spec: {}\n") + "---\n" + text, "policies/x.yaml")
    assert str(errs[0]).startswith("policies/x.yaml document 2: spec.signatures.threshold:")


# --- size and YAML limits ------------------------------------------------------------------


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(_policy("big", "spec: {}\n") + "#" * MAX_FILE_BYTES)
    with pytest.raises(PolicyLoadError) as info:
        load_policies(big)
    (err,) = info.value.errors
    assert err.document is None and "larger than" in err.message


def test_too_many_documents_is_refused() -> None:
    docs = "---\n".join(_policy(f"p{i}", "spec: {}\n") for i in range(MAX_DOCUMENTS + 1))
    errs = _errors(docs)
    assert any(f"more than {MAX_DOCUMENTS} documents" in e.message for e in errs)


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "latin1.yaml"
    f.write_bytes(_policy("x", "spec: {}\n# caf\xe9\n").encode("latin-1"))
    with pytest.raises(PolicyLoadError, match="not UTF-8"):
        load_policies(f)


def test_unsafe_yaml_tags_are_refused() -> None:
    errs = _errors("!!python/object/apply:os.system ['true']\n")
    assert errs[0].message.startswith("invalid YAML")


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="no such file"):
        load_policies(tmp_path / "absent")


def test_deeply_nested_yaml_is_an_error_not_a_crash() -> None:
    errs = _errors("spec: " + "[" * 5000 + "]" * 5000 + "\n")
    assert errs


# --- directory rule ------------------------------------------------------------------------


def test_directory_load_skips_test_cases_and_hidden_files(tmp_path: Path) -> None:
    def put(rel: str, name: str) -> None:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(_policy(name, "spec: {}\n"))

    put("b/second.yml", "second")
    put("a.yaml", "first")
    put("a.test.yaml", "skipped-test")
    put("tests/x.yaml", "skipped-tests-dir")
    put("b/cases/y.yaml", "skipped-cases-dir")
    put(".git/z.yaml", "skipped-hidden-dir")
    put(".hidden.yaml", "skipped-hidden-file")
    (tmp_path / "notes.txt").write_text("not yaml")
    names = [p.name for p in load_policies(tmp_path).policies]
    assert names == ["first", "second"]
    assert [p.relative_to(tmp_path).as_posix() for p in policy_files(tmp_path)] == [
        "a.yaml",
        "b/second.yml",
    ]


def test_single_file_is_read_whatever_its_name(tmp_path: Path) -> None:
    f = tmp_path / "only.test.yaml"
    f.write_text(_policy("only", "spec: {}\n"))
    assert [p.name for p in load_policies(f).policies] == ["only"]


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        ("p.yaml", True),
        ("deep/er/p.yml", True),
        ("p.test.yaml", False),
        ("cases/p.yaml", False),
        ("x/tests/p.yaml", False),
        ("p.json", False),
    ],
)
def test_is_policy_file(rel: str, expected: bool) -> None:
    assert is_policy_file(Path(rel)) is expected


# --- semantics -----------------------------------------------------------------------------


def test_defaults() -> None:
    pem = _ec_pem()
    text = _policy(
        "d",
        f"spec:\n  authorities:\n    - name: k\n      key:\n        pem: {_pem_block(pem, 10)}"
        f"    - name: ci\n      keyless: {{issuer: '{GH}', subject: me}}\n",
    )
    (p,) = load_policy_documents(text).policies
    assert p.mode == "enforce"
    assert p.match.images == ("**",)
    assert p.signatures.threshold == 1 and p.signatures.authorities == ("k", "ci")
    key, keyless = p.authorities
    assert isinstance(key, KeyAuthority) and key.transparency_log == "optional"
    assert key.public_key_pem == pem and key.trust_root == "production"
    assert isinstance(keyless, KeylessAuthority) and keyless.transparency_log == "required"
    assert keyless.trust_root == "production"
    assert p.source == "<text>#1"


def test_no_authorities_means_threshold_zero() -> None:
    (p,) = load_policy_documents(_policy("none", "spec: {}\n")).policies
    assert p.signatures.threshold == 0 and p.signatures.authorities == ()


def test_signatures_block_without_threshold_defaults_to_one_over_named() -> None:
    text = _policy(
        "n",
        f"spec:\n  authorities:\n    - {{name: a, keyless: {{issuer: '{GH}', subject: a}}}}\n"
        f"    - {{name: b, keyless: {{issuer: '{GH}', subject: b}}}}\n"
        "  signatures: {authorities: [b]}\n",
    )
    (p,) = load_policy_documents(text).policies
    assert p.signatures.threshold == 1 and p.signatures.authorities == ("b",)


def test_ed25519_key_with_null_parameters_is_accepted_and_canonicalised() -> None:
    raw = ed25519.Ed25519PrivateKey.generate().public_key()
    canonical = raw.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw_bytes = raw.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    der = bytes.fromhex("302c300706032b65700500032100") + raw_bytes
    import base64

    odd = b"-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(der) + b"-----END PUBLIC KEY-----\n"
    with pytest.raises(ValueError):
        serialization.load_pem_public_key(odd)  # the reason for the special case
    text = _policy(
        "ed",
        f"spec:\n  authorities:\n    - name: k\n      key:\n        pem: {_pem_block(odd, 10)}",
    )
    (p,) = load_policy_documents(text).policies
    assert p.authorities[0].public_key_pem == canonical  # type: ignore[union-attr]


def _spki_pem(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _rsa_public_pem(bits: int) -> bytes:
    # Only the modulus size matters to the loader; generating a 16400-bit key takes minutes.
    modulus = (1 << (bits - 1)) | 1
    return _spki_pem(rsa.RSAPublicNumbers(65537, modulus).public_key())


@pytest.mark.parametrize(
    ("make_pem", "message"),
    [
        (lambda: _rsa_public_pem(16400), "RSA 16400-bit keys are too large; use <= 16384"),
        (lambda: _rsa_public_pem(1024), "RSA 1024-bit keys are too weak; use >= 2048"),
        (
            lambda: _spki_pem(dsa.generate_private_key(2048).public_key()),
            "unsupported key type DSA; use ECDSA P-256/P-384/P-521, RSA or Ed25519",
        ),
        (
            lambda: _spki_pem(ec.generate_private_key(ec.SECP256K1()).public_key()),
            "ECDSA curve secp256k1 is not accepted",
        ),
    ],
    ids=["rsa-16400", "rsa-1024", "dsa", "secp256k1"],
)
def test_keys_verification_cannot_use_are_refused_at_load(
    make_pem: Callable[[], bytes], message: str
) -> None:
    pem = make_pem()
    text = _policy(
        "k", f"spec:\n  authorities:\n    - name: k\n      key:\n        pem: {_pem_block(pem, 10)}"
    )
    (err,) = _errors(text)
    assert err.field == "spec.authorities[0].key.pem"
    assert message in err.message
    # the loader refuses exactly what verification refuses, with the same reason
    with pytest.raises(EvidenceFormatError) as info:
        load_public_key(pem)
    assert str(info.value) == err.message


def test_trust_root_reference_across_files(tmp_path: Path) -> None:
    (tmp_path / "a-policy.yaml").write_text(
        _policy(
            "p",
            f"spec:\n  authorities:\n    - name: ci\n      keyless: {{issuer: '{GH}', "
            "subject: me, trustRoot: corp}\n",
        )
    )
    (tmp_path / "z-root.yaml").write_text(
        "apiVersion: reprogate.dev/v1alpha1\nkind: TrustRoot\nmetadata: {name: corp}\nspec:\n"
        '  trustedRootJSON: \'{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;'
        'version=0.1", "tlogs": [], "certificateAuthorities": []}\'\n'
    )
    ps = load_policies(tmp_path)
    assert [r.name for r in ps.trust_roots] == ["corp"]
    assert ps.trust_roots[0].trusted_root_json.startswith(b"{")
    assert ps.policies[0].authorities[0].trust_root == "corp"


def test_builder_signers_are_resolved() -> None:
    text = _policy(
        "b",
        f"spec:\n  authorities:\n    - {{name: rk, keyless: {{issuer: '{GH}', subject: x}}}}\n"
        "  provenance:\n    minLevel: 2\n    trustedBuilders:\n"
        f"      - {{id: 'https://gen/*', level: 3, signer: {{keyless: {{issuer: '{GH}'}}}}}}\n"
        "      - {id: 'https://other', level: 2, signer: {authority: rk}}\n",
    )
    (p,) = load_policy_documents(text).policies
    assert p.provenance is not None
    first, second = p.provenance.trusted_builders
    assert isinstance(first.signer, KeylessAuthority)
    assert first.signer.name == "builder[0]:https://gen/*"
    assert first.signer.subject is None and first.signer.subject_regexp is None
    assert second.signer is p.authorities[0]


def test_exception_expiry_with_offset_is_parsed() -> None:
    text = _policy(
        "e",
        "spec:\n  exceptions:\n    - {namespaces: [dev], reason: r, "
        "expires: 2027-01-31T12:00:00+01:00}\n",
    )
    (p,) = load_policy_documents(text).policies
    assert p.exceptions[0].expires == datetime(2027, 1, 31, 11, 0, tzinfo=UTC)


def test_conditions_are_compiled_once_at_load() -> None:
    text = _policy("c", "spec:\n  conditions:\n    - {name: t, expression: 'image.tag != \"x\"'}\n")
    (p,) = load_policy_documents(text).policies
    assert p.conditions[0].compiled is not None
    assert "image.tag" in p.conditions[0].message


# --- docs and schema -----------------------------------------------------------------------


def _doc_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.DOTALL)


def test_docs_has_examples() -> None:
    assert len(_doc_blocks()) >= 9


@pytest.mark.parametrize("index", range(len(re.findall(r"```yaml\n", DOCS.read_text()))))
def test_every_docs_example_loads(index: int, tmp_path: Path) -> None:
    """Each example loads as `reprogate check --policies` would load it: the policy loader,
    then every TrustRoot parsed as a real trusted root."""
    from controller.cli import _load
    from controller.config import Settings

    ps = load_policy_documents(_doc_blocks()[index], f"docs/policies.md block {index + 1}")
    assert ps.policies or ps.trust_roots
    (tmp_path / "example.yaml").write_text(_doc_blocks()[index])
    loaded, roots = _load(Settings(policies=str(tmp_path)))
    for doc in loaded.trust_roots:
        assert roots.get(doc.name).name == doc.name


def _schema_fields(node: schema.Node, out: set[tuple[int, str]]) -> set[tuple[int, str]]:
    """(definition, field) pairs: a shared definition (e.g. an authority) counts once."""
    if isinstance(node, schema.Arr):
        _schema_fields(node.items, out)
    elif isinstance(node, schema.Obj):
        for key, child in node.fields.items():
            out.add((id(node), key))
            _schema_fields(child, out)
    return out


def _used_fields(node: schema.Node, value: Any, out: set[tuple[int, str]]) -> None:
    if isinstance(node, schema.Arr) and isinstance(value, list):
        for item in value:
            _used_fields(node.items, item, out)
    elif isinstance(node, schema.Obj) and isinstance(value, dict):
        for key, item in value.items():
            assert key in node.fields, key
            out.add((id(node), key))
            _used_fields(node.fields[key], item, out)


def test_every_schema_field_appears_in_a_docs_example_that_loads() -> None:
    used: set[tuple[int, str]] = set()
    for block in _doc_blocks():
        load_policy_documents(block)
        for doc in yaml.safe_load_all(block):
            _used_fields(schema.KINDS[doc["kind"]], doc, used)
    names = {
        (id(parent), path.rsplit(".", 1)[-1]): path
        for kind in schema.KINDS.values()
        for path, parent in _named(kind)
    }
    missing = set()
    for node in schema.KINDS.values():
        missing |= _schema_fields(node, set()) - used
    assert not missing, sorted(names.get(m, m[1]) for m in missing)


def _named(node: schema.Node, path: str = "") -> list[tuple[str, schema.Node]]:
    out: list[tuple[str, schema.Node]] = []
    if isinstance(node, schema.Arr):
        out.extend(_named(node.items, path + "[]"))
    elif isinstance(node, schema.Obj):
        for key, child in node.fields.items():
            out.append((f"{path}.{key}", node))
            out.extend(_named(child, f"{path}.{key}"))
    return out


def test_generated_files_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "controller.policy.schema", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_schema_check_detects_a_stale_file(tmp_path: Path) -> None:
    assert schema.main(["--root", str(tmp_path), "--check"]) == 1
    assert schema.main(["--root", str(tmp_path)]) == 0
    assert schema.main(["--root", str(tmp_path), "--check"]) == 0
    crd = tmp_path / "deploy" / "crds" / "imagepolicies.reprogate.dev.yaml"
    crd.write_text(crd.read_text() + "# edited\n")
    assert schema.main(["--root", str(tmp_path), "--check"]) == 1


def test_crd_is_structural_and_matches_kind() -> None:
    crd = schema.crd_manifest("ImagePolicy")
    body = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert crd["metadata"]["name"] == "imagepolicies.reprogate.dev"
    assert crd["spec"]["scope"] == "Cluster"

    def no_additional_false(node: Any) -> None:
        if isinstance(node, dict):
            assert node.get("additionalProperties") is not False
            for v in node.values():
                no_additional_false(v)
        elif isinstance(node, list):
            for v in node:
                no_additional_false(v)

    no_additional_false(body)
    spec = body["properties"]["spec"]["properties"]
    assert spec["signatures"]["properties"]["threshold"]["minimum"] == 0


def test_json_schema_refuses_unknown_fields() -> None:
    js = schema.json_schema("ImagePolicy")
    assert js["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert js["properties"]["spec"]["additionalProperties"] is False
    auth = js["properties"]["spec"]["properties"]["authorities"]["items"]
    assert auth["oneOf"] == [{"required": ["key"]}, {"required": ["keyless"]}]


def test_schema_defaults_agree_with_loader_defaults() -> None:
    spec = schema.IMAGE_POLICY_SPEC.fields
    (p,) = load_policy_documents(_policy("d", "spec: {}\n")).policies
    assert spec["mode"].default == p.mode  # type: ignore[union-attr]
    match = spec["match"]
    assert isinstance(match, schema.Obj)
    assert match.fields["images"].default == p.match.images  # type: ignore[union-attr]

"""controller.verify.cosign: cosign .sig/.att layers against key and keyless authorities.

Keyless cases run against a private Sigstore instance (tests/support/sigstore_pki.py): real
certificates, SCTs and SETs, so every check in the chain can be made to fail on its own.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from controller.evidence.model import (
    ANN_BUNDLE,
    ANN_CERTIFICATE,
    ANN_CHAIN,
    ANN_RFC3161,
    CosignLayer,
)
from controller.verify.authority import KeyAuthority, KeylessAuthority, TlogMode
from controller.verify.cosign import verify_cosign_attestation, verify_cosign_signature
from controller.verify.errors import EvidenceFormatError, VerificationError
from controller.verify.trustroot import TrustRoots, trust_from_json
from tests.support.cosign_sign import (
    PrivateKey,
    as_cosign_layer,
    attest,
    in_toto_statement,
    public_pem,
    sign_image,
    sign_raw,
    simple_signing_payload,
)
from tests.support.sigstore_pki import LogKeyPair, TestSigstore, hashedrekord_body

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
ISSUER = "https://oidc.test.example"
SUBJECT = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"


@pytest.fixture(scope="module")
def sigstore() -> TestSigstore:
    return TestSigstore(name="corp")


@pytest.fixture(scope="module")
def roots(sigstore: TestSigstore) -> TrustRoots:
    return TrustRoots([trust_from_json(sigstore.trusted_root_json(), "corp")])


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_authority(private: PrivateKey, tlog: TlogMode = "ignore") -> KeyAuthority:
    return KeyAuthority(
        name="release-key",
        public_key_pem=public_pem(private),
        transparency_log=tlog,
        trust_root="corp",
    )


def keyless_authority(**changes: object) -> KeylessAuthority:
    fields: dict[str, object] = {
        "name": "ci",
        "issuer": ISSUER,
        "subject": SUBJECT,
        "trust_root": "corp",
    }
    fields.update(changes)
    return KeylessAuthority(**fields)  # type: ignore[arg-type]


# -- key authorities: signatures ---------------------------------------------------------------


@pytest.mark.parametrize(
    "private",
    [
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP384R1()),
        rsa.generate_private_key(65537, 2048),
        ed25519.Ed25519PrivateKey.generate(),
    ],
    ids=["p256", "p384", "rsa", "ed25519"],
)
def test_key_signature_verifies(
    private: PrivateKey, sigstore: TestSigstore, roots: TrustRoots
) -> None:
    payload = simple_signing_payload(DIGEST, optional={"team": "payments"})
    layer = as_cosign_layer(sign_image(private, DIGEST, payload=payload))
    fact = verify_cosign_signature(layer, DIGEST, key_authority(private), roots, sigstore.now)
    assert fact.image_digest == DIGEST
    assert fact.signer.kind == "key"
    assert fact.signer.authority == "release-key"
    assert fact.signer.key_id is not None and len(fact.signer.key_id) == 64
    assert fact.integrated_time is None
    assert fact.annotations == {"team": "payments"}
    assert fact.source == "test layer 0"


def test_key_signature_in_p1363_form_verifies(
    key: ec.EllipticCurvePrivateKey, roots: TrustRoots
) -> None:
    layer = as_cosign_layer(sign_image(key, DIGEST, p1363=True))
    verify_cosign_signature(layer, DIGEST, key_authority(key), roots, datetime.now(UTC))


def test_other_key_is_refused(key: ec.EllipticCurvePrivateKey, roots: TrustRoots) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    layer = as_cosign_layer(sign_image(other, DIGEST))
    with pytest.raises(VerificationError, match=r"does not verify with .*authority 'release-key'"):
        verify_cosign_signature(layer, DIGEST, key_authority(key), roots, datetime.now(UTC))


def test_tampered_signature_is_refused(key: ec.EllipticCurvePrivateKey, roots: TrustRoots) -> None:
    payload = simple_signing_payload(DIGEST)
    good = sign_raw(key, payload)
    bad = sign_raw(key, payload + b" ")
    assert good != bad
    layer = as_cosign_layer(sign_image(key, DIGEST, signature=bad))
    with pytest.raises(VerificationError, match="signature does not verify"):
        verify_cosign_signature(layer, DIGEST, key_authority(key), roots, datetime.now(UTC))


def test_tampered_payload_is_refused(key: ec.EllipticCurvePrivateKey, roots: TrustRoots) -> None:
    layer = as_cosign_layer(sign_image(key, DIGEST))
    forged = replace(layer, payload=simple_signing_payload(DIGEST, reference="evil.test/x"))
    with pytest.raises(VerificationError, match="signature does not verify"):
        verify_cosign_signature(forged, DIGEST, key_authority(key), roots, datetime.now(UTC))


def test_payload_naming_another_digest_is_refused(
    key: ec.EllipticCurvePrivateKey, roots: TrustRoots
) -> None:
    layer = as_cosign_layer(sign_image(key, OTHER))
    with pytest.raises(VerificationError, match=f"payload names {OTHER} not the image {DIGEST}"):
        verify_cosign_signature(layer, DIGEST, key_authority(key), roots, datetime.now(UTC))


def test_malformed_layers_are_format_errors(
    key: ec.EllipticCurvePrivateKey, roots: TrustRoots
) -> None:
    now = datetime.now(UTC)
    layer = as_cosign_layer(sign_image(key, DIGEST))
    with pytest.raises(EvidenceFormatError, match="base64"):
        verify_cosign_signature(
            replace(layer, signature_b64="%%%"), DIGEST, key_authority(key), roots, now
        )
    with pytest.raises(VerificationError, match="no signature annotation"):
        verify_cosign_signature(
            replace(layer, signature_b64=None), DIGEST, key_authority(key), roots, now
        )
    not_json = b"not json"
    signed = replace(
        layer,
        payload=not_json,
        signature_b64=base64.b64encode(sign_raw(key, not_json)).decode(),
    )
    with pytest.raises(EvidenceFormatError, match="simple-signing payload is not valid JSON"):
        verify_cosign_signature(signed, DIGEST, key_authority(key), roots, now)
    with pytest.raises(EvidenceFormatError, match="not a signature"):
        verify_cosign_signature(
            replace(layer, kind="attestation"), DIGEST, key_authority(key), roots, now
        )


def test_wrong_simple_signing_type_is_refused(
    key: ec.EllipticCurvePrivateKey, roots: TrustRoots
) -> None:
    doc = json.loads(simple_signing_payload(DIGEST))
    doc["critical"]["type"] = "atomic container signature"
    payload = json.dumps(doc).encode()
    layer = as_cosign_layer(sign_image(key, DIGEST, payload=payload))
    with pytest.raises(EvidenceFormatError, match="atomic container signature"):
        verify_cosign_signature(layer, DIGEST, key_authority(key), roots, datetime.now(UTC))


# -- key authorities: transparency log modes ----------------------------------------------------


def test_tlog_required_needs_a_set(
    key: ec.EllipticCurvePrivateKey, sigstore: TestSigstore, roots: TrustRoots
) -> None:
    bare = as_cosign_layer(sign_image(key, DIGEST))
    with pytest.raises(VerificationError, match="requires a transparency log entry"):
        verify_cosign_signature(bare, DIGEST, key_authority(key, "required"), roots, sigstore.now)
    logged = as_cosign_layer(sign_image(key, DIGEST, sigstore=sigstore))
    fact = verify_cosign_signature(
        logged, DIGEST, key_authority(key, "required"), roots, sigstore.now
    )
    assert fact.integrated_time == sigstore.now - timedelta(minutes=4)


def test_tlog_optional_checks_a_present_set(
    key: ec.EllipticCurvePrivateKey, sigstore: TestSigstore, roots: TrustRoots
) -> None:
    authority = key_authority(key, "optional")
    bare = as_cosign_layer(sign_image(key, DIGEST))
    assert (
        verify_cosign_signature(bare, DIGEST, authority, roots, sigstore.now).integrated_time
        is None
    )
    logged = as_cosign_layer(sign_image(key, DIGEST, sigstore=sigstore))
    assert verify_cosign_signature(logged, DIGEST, authority, roots, sigstore.now).integrated_time
    forged = as_cosign_layer(
        sign_image(key, DIGEST, sigstore=sigstore, set_signing_log=LogKeyPair.generate())
    )
    with pytest.raises(VerificationError, match="Rekor SET rejected: transparency log id"):
        verify_cosign_signature(forged, DIGEST, authority, roots, sigstore.now)


def test_tlog_ignore_never_looks(
    key: ec.EllipticCurvePrivateKey, sigstore: TestSigstore, roots: TrustRoots
) -> None:
    forged = as_cosign_layer(
        sign_image(key, DIGEST, sigstore=sigstore, set_signing_log=LogKeyPair.generate())
    )
    fact = verify_cosign_signature(
        forged, DIGEST, key_authority(key, "ignore"), roots, sigstore.now
    )
    assert fact.integrated_time is None


def test_key_set_for_another_signature_is_refused(
    key: ec.EllipticCurvePrivateKey, sigstore: TestSigstore, roots: TrustRoots
) -> None:
    other_payload = simple_signing_payload(OTHER)
    other_sig = sign_raw(key, other_payload)
    body = hashedrekord_body(other_sig, public_pem(key), hashlib.sha256(other_payload).hexdigest())
    layer = as_cosign_layer(sign_image(key, DIGEST, sigstore=sigstore, set_body=body))
    with pytest.raises(VerificationError, match="does not belong to this signature"):
        verify_cosign_signature(layer, DIGEST, key_authority(key, "required"), roots, sigstore.now)


def test_key_set_for_another_key_is_refused(
    key: ec.EllipticCurvePrivateKey, sigstore: TestSigstore, roots: TrustRoots
) -> None:
    payload = simple_signing_payload(DIGEST)
    sig = sign_raw(key, payload)
    other = ec.generate_private_key(ec.SECP256R1())
    body = hashedrekord_body(sig, public_pem(other), hashlib.sha256(payload).hexdigest())
    layer = as_cosign_layer(
        sign_image(key, DIGEST, sigstore=sigstore, set_body=body, signature=sig)
    )
    with pytest.raises(VerificationError, match="different signing key"):
        verify_cosign_signature(layer, DIGEST, key_authority(key, "required"), roots, sigstore.now)


def test_set_in_the_future_is_refused(
    key: ec.EllipticCurvePrivateKey, sigstore: TestSigstore, roots: TrustRoots
) -> None:
    layer = as_cosign_layer(
        sign_image(
            key, DIGEST, sigstore=sigstore, integrated_time=sigstore.now + timedelta(hours=1)
        )
    )
    with pytest.raises(VerificationError, match="in the future"):
        verify_cosign_signature(layer, DIGEST, key_authority(key, "required"), roots, sigstore.now)


def test_keyless_layer_against_key_authority_says_so(
    key: ec.EllipticCurvePrivateKey, sigstore: TestSigstore, roots: TrustRoots
) -> None:
    layer = as_cosign_layer(sign_image(sigstore.issue(), DIGEST, sigstore=sigstore))
    with pytest.raises(VerificationError, match="signed keyless"):
        verify_cosign_signature(layer, DIGEST, key_authority(key), roots, sigstore.now)


# -- keyless authorities ------------------------------------------------------------------------


def test_keyless_signature_verifies(sigstore: TestSigstore, roots: TrustRoots) -> None:
    layer = as_cosign_layer(sign_image(sigstore.issue(), DIGEST, sigstore=sigstore))
    fact = verify_cosign_signature(layer, DIGEST, keyless_authority(), roots, sigstore.now)
    assert fact.signer.kind == "keyless"
    assert fact.signer.subject == SUBJECT
    assert fact.signer.issuer == ISSUER
    assert fact.signer.authority == "ci"
    assert fact.integrated_time == sigstore.now - timedelta(minutes=4)


def test_keyless_email_identity_and_regexp(sigstore: TestSigstore, roots: TrustRoots) -> None:
    leaf = sigstore.issue(subject="dev@acme.example", email=True)
    layer = as_cosign_layer(sign_image(leaf, DIGEST, sigstore=sigstore))
    authority = keyless_authority(subject=None, subject_regexp=r".*@acme\.example")
    fact = verify_cosign_signature(layer, DIGEST, authority, roots, sigstore.now)
    assert fact.signer.subject == "dev@acme.example"
    partial = keyless_authority(subject=None, subject_regexp=r"dev@acme")
    with pytest.raises(VerificationError, match="does not match expected subject matching"):
        verify_cosign_signature(layer, DIGEST, partial, roots, sigstore.now)


def test_keyless_wrong_subject(sigstore: TestSigstore, roots: TrustRoots) -> None:
    layer = as_cosign_layer(sign_image(sigstore.issue(), DIGEST, sigstore=sigstore))
    authority = keyless_authority(subject="https://github.com/acme/other/.github/workflows/x.yml")
    with pytest.raises(VerificationError) as caught:
        verify_cosign_signature(layer, DIGEST, authority, roots, sigstore.now)
    assert SUBJECT in str(caught.value)
    assert "acme/other" in str(caught.value)


def test_keyless_wrong_issuer(sigstore: TestSigstore, roots: TrustRoots) -> None:
    leaf = sigstore.issue(issuer="https://accounts.evil.example")
    layer = as_cosign_layer(sign_image(leaf, DIGEST, sigstore=sigstore))
    with pytest.raises(
        VerificationError, match=r"issuer 'https://accounts\.evil\.example' does not"
    ):
        verify_cosign_signature(layer, DIGEST, keyless_authority(), roots, sigstore.now)


def test_keyless_without_trusted_time_is_refused(sigstore: TestSigstore, roots: TrustRoots) -> None:
    expired = sigstore.issue(not_before=sigstore.now - timedelta(hours=2))
    layer = as_cosign_layer(sign_image(expired, DIGEST))
    for tlog in ("required", "optional"):
        with pytest.raises(VerificationError, match="no verified signing time"):
            verify_cosign_signature(
                layer, DIGEST, keyless_authority(transparency_log=tlog), roots, sigstore.now
            )


def test_keyless_tlog_ignore_needs_a_timestamp(sigstore: TestSigstore, roots: TrustRoots) -> None:
    layer = as_cosign_layer(sign_image(sigstore.issue(), DIGEST, sigstore=sigstore))
    authority = keyless_authority(transparency_log="ignore")
    with pytest.raises(VerificationError, match="no verified signing time"):
        verify_cosign_signature(layer, DIGEST, authority, roots, sigstore.now)


def test_keyless_certificate_expired_before_log_time(
    sigstore: TestSigstore, roots: TrustRoots
) -> None:
    leaf = sigstore.issue(not_before=sigstore.now - timedelta(hours=2))
    layer = as_cosign_layer(sign_image(leaf, DIGEST, sigstore=sigstore))
    with pytest.raises(VerificationError, match=r"certificate expired at .* before .*log time"):
        verify_cosign_signature(layer, DIGEST, keyless_authority(), roots, sigstore.now)


def test_keyless_set_signed_by_another_key(sigstore: TestSigstore, roots: TrustRoots) -> None:
    rogue = LogKeyPair.generate()
    leaf = sigstore.issue()
    unknown = as_cosign_layer(sign_image(leaf, DIGEST, sigstore=sigstore, set_signing_log=rogue))
    with pytest.raises(VerificationError, match="is not in trust root 'corp'"):
        verify_cosign_signature(unknown, DIGEST, keyless_authority(), roots, sigstore.now)
    # A rogue key claiming our log's id: the SET signature itself fails.
    layer = sign_image(leaf, DIGEST, sigstore=sigstore)
    doc = json.loads(layer.annotations[ANN_BUNDLE])
    canonical = json.dumps(doc["Payload"], sort_keys=True, separators=(",", ":")).encode()
    doc["SignedEntryTimestamp"] = base64.b64encode(rogue.sign(canonical)).decode()
    impostor = replace(as_cosign_layer(layer), rekor_bundle=json.dumps(doc).encode())
    with pytest.raises(VerificationError, match="SET does not verify with log key"):
        verify_cosign_signature(impostor, DIGEST, keyless_authority(), roots, sigstore.now)


def test_keyless_log_entry_for_another_signature(sigstore: TestSigstore, roots: TrustRoots) -> None:
    leaf = sigstore.issue()
    other_payload = simple_signing_payload(OTHER)
    other_sig = leaf.sign(other_payload)
    body = hashedrekord_body(other_sig, leaf.cert_pem, hashlib.sha256(other_payload).hexdigest())
    layer = as_cosign_layer(sign_image(leaf, DIGEST, sigstore=sigstore, set_body=body))
    with pytest.raises(VerificationError, match="does not belong to this signature"):
        verify_cosign_signature(layer, DIGEST, keyless_authority(), roots, sigstore.now)


def test_keyless_log_entry_for_another_certificate(
    sigstore: TestSigstore, roots: TrustRoots
) -> None:
    leaf, other = sigstore.issue(), sigstore.issue()
    payload = simple_signing_payload(DIGEST)
    sig = leaf.sign(payload)
    body = hashedrekord_body(sig, other.cert_pem, hashlib.sha256(payload).hexdigest())
    layer = as_cosign_layer(
        sign_image(leaf, DIGEST, sigstore=sigstore, set_body=body, signature=sig)
    )
    with pytest.raises(VerificationError, match="different signing key or certificate"):
        verify_cosign_signature(layer, DIGEST, keyless_authority(), roots, sigstore.now)


def test_keyless_untrusted_ca(sigstore: TestSigstore, roots: TrustRoots) -> None:
    elsewhere = TestSigstore(name="elsewhere", now=sigstore.now)
    leaf = elsewhere.issue()
    layer = as_cosign_layer(sign_image(leaf, DIGEST, sigstore=sigstore))
    with pytest.raises(VerificationError, match="not issued by a trusted Fulcio CA"):
        verify_cosign_signature(layer, DIGEST, keyless_authority(), roots, sigstore.now)


def test_keyless_missing_sct_is_refused(sigstore: TestSigstore, roots: TrustRoots) -> None:
    leaf = sigstore.issue(with_sct=False)
    layer = as_cosign_layer(sign_image(leaf, DIGEST, sigstore=sigstore))
    with pytest.raises(VerificationError, match="no valid SCT"):
        verify_cosign_signature(layer, DIGEST, keyless_authority(), roots, sigstore.now)


def test_keyless_signature_by_another_key_than_the_certificate(
    sigstore: TestSigstore, roots: TrustRoots
) -> None:
    leaf = sigstore.issue()
    rogue = ec.generate_private_key(ec.SECP256R1())
    sig = sign_raw(rogue, simple_signing_payload(DIGEST))
    layer = as_cosign_layer(sign_image(leaf, DIGEST, sigstore=sigstore, signature=sig))
    with pytest.raises(VerificationError, match="the layer's certificate key"):
        verify_cosign_signature(layer, DIGEST, keyless_authority(), roots, sigstore.now)


def test_keyless_without_certificate_or_with_unknown_root(
    key: ec.EllipticCurvePrivateKey, sigstore: TestSigstore, roots: TrustRoots
) -> None:
    keyed = as_cosign_layer(sign_image(key, DIGEST, sigstore=sigstore))
    with pytest.raises(VerificationError, match="no Fulcio certificate"):
        verify_cosign_signature(keyed, DIGEST, keyless_authority(), roots, sigstore.now)
    layer = as_cosign_layer(sign_image(sigstore.issue(), DIGEST, sigstore=sigstore))
    with pytest.raises(VerificationError, match="unknown trust root 'nope'"):
        verify_cosign_signature(
            layer, DIGEST, keyless_authority(trust_root="nope"), roots, sigstore.now
        )


def test_keyless_chain_annotation_is_optional(sigstore: TestSigstore, roots: TrustRoots) -> None:
    layer = as_cosign_layer(
        sign_image(sigstore.issue(), DIGEST, sigstore=sigstore, with_chain=False)
    )
    assert layer.chain_pem is None
    verify_cosign_signature(layer, DIGEST, keyless_authority(), roots, sigstore.now)


# -- attestations -------------------------------------------------------------------------------


def test_key_attestation_verifies(key: ec.EllipticCurvePrivateKey, roots: TrustRoots) -> None:
    statement = in_toto_statement([DIGEST], predicate={"builder": {"id": "b"}})
    layer = as_cosign_layer(attest(key, statement))
    assert layer.kind == "attestation" and layer.signature_b64 is None
    fact = verify_cosign_attestation(layer, DIGEST, key_authority(key), roots, datetime.now(UTC))
    assert fact.predicate_type == "https://slsa.dev/provenance/v1"
    assert fact.predicate == {"builder": {"id": "b"}}
    assert fact.payload == statement
    assert fact.signer.kind == "key"


def test_attestation_with_other_key_or_other_subject_is_refused(
    key: ec.EllipticCurvePrivateKey, roots: TrustRoots
) -> None:
    now = datetime.now(UTC)
    other = ec.generate_private_key(ec.SECP256R1())
    layer = as_cosign_layer(attest(other, in_toto_statement([DIGEST])))
    with pytest.raises(VerificationError, match="DSSE envelope signature does not verify"):
        verify_cosign_attestation(layer, DIGEST, key_authority(key), roots, now)
    elsewhere = as_cosign_layer(attest(key, in_toto_statement([OTHER])))
    with pytest.raises(VerificationError, match=f"subjects name {OTHER} not the image {DIGEST}"):
        verify_cosign_attestation(elsewhere, DIGEST, key_authority(key), roots, now)


@pytest.mark.parametrize("entry_kind", ["dsse", "intoto"])
def test_keyless_attestation_verifies(
    entry_kind: Literal["dsse", "intoto"], sigstore: TestSigstore, roots: TrustRoots
) -> None:
    layer = as_cosign_layer(
        attest(
            sigstore.issue(), in_toto_statement([DIGEST]), sigstore=sigstore, entry_kind=entry_kind
        )
    )
    fact = verify_cosign_attestation(layer, DIGEST, keyless_authority(), roots, sigstore.now)
    assert fact.signer.subject == SUBJECT
    assert fact.integrated_time == sigstore.now - timedelta(minutes=4)


def test_keyless_attestation_entry_for_another_envelope(
    sigstore: TestSigstore, roots: TrustRoots
) -> None:
    leaf = sigstore.issue()
    first = attest(leaf, in_toto_statement([DIGEST]), sigstore=sigstore)
    second = attest(leaf, in_toto_statement([DIGEST, OTHER]), sigstore=sigstore)
    mixed = replace(as_cosign_layer(second), rekor_bundle=first.annotations[ANN_BUNDLE].encode())
    with pytest.raises(VerificationError, match="does not belong to this signature"):
        verify_cosign_attestation(mixed, DIGEST, keyless_authority(), roots, sigstore.now)


def test_keyless_attestation_subject_names_another_digest(
    sigstore: TestSigstore, roots: TrustRoots
) -> None:
    layer = as_cosign_layer(attest(sigstore.issue(), in_toto_statement([OTHER]), sigstore=sigstore))
    with pytest.raises(VerificationError, match="not the image"):
        verify_cosign_attestation(layer, DIGEST, keyless_authority(), roots, sigstore.now)


def test_attestation_with_non_intoto_payload_type_is_refused(
    key: ec.EllipticCurvePrivateKey, roots: TrustRoots
) -> None:
    layer = as_cosign_layer(attest(key, in_toto_statement([DIGEST]), payload_type="text/plain"))
    with pytest.raises(EvidenceFormatError, match="payloadType"):
        verify_cosign_attestation(layer, DIGEST, key_authority(key), roots, datetime.now(UTC))


# -- the real slsa-github-generator container attestation -----------------------------------------


def _vector_layer() -> tuple[CosignLayer, str]:
    folder = VECTORS / "slsa-verifier" / "container"
    layout = folder / "container_workflow_dispatch"
    if not layout.is_dir():
        pytest.skip(f"third-party vectors not present at {folder}")
    blobs = layout / "blobs" / "sha256"
    index = json.loads((layout / "index.json").read_bytes())
    atts = next(
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("kind") == "dev.cosignproject.cosign/atts"
    )
    manifest = json.loads((blobs / atts["digest"].split(":")[1]).read_bytes())
    descriptor = manifest["layers"][0]
    ann = descriptor["annotations"]
    layer = CosignLayer(
        kind="attestation",
        payload=(blobs / descriptor["digest"].split(":")[1]).read_bytes(),
        signature_b64=ann.get("dev.cosignproject.cosign/signature") or None,
        certificate_pem=ann[ANN_CERTIFICATE].encode(),
        chain_pem=ann[ANN_CHAIN].encode(),
        rekor_bundle=ann[ANN_BUNDLE].encode(),
        rfc3161_timestamp=None,
        source="container_workflow_dispatch .att layer 0",
    )
    digest = (folder / "container_workflow_dispatch.digest").read_text().strip()
    return layer, digest


GENERATOR = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_container_slsa3.yml@refs/tags/v1.10.0"
)


@pytest.mark.vectors
def test_real_container_attestation_verifies_offline() -> None:
    layer, digest = _vector_layer()
    authority = KeylessAuthority(
        name="slsa-generator",
        issuer="https://token.actions.githubusercontent.com",
        subject_regexp=r"https://github\.com/slsa-framework/slsa-github-generator/\.github/"
        r"workflows/generator_container_slsa3\.yml@refs/tags/v.*",
    )
    fact = verify_cosign_attestation(layer, digest, authority, TrustRoots(), datetime.now(UTC))
    assert fact.signer.subject == GENERATOR
    assert fact.predicate_type == "https://slsa.dev/provenance/v0.2"
    assert fact.integrated_time == datetime.fromtimestamp(1711017244, UTC)


@pytest.mark.vectors
def test_real_container_attestation_refuses_other_identity_and_digest() -> None:
    layer, digest = _vector_layer()
    wrong = KeylessAuthority(
        name="other",
        issuer="https://token.actions.githubusercontent.com",
        subject="https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main",
    )
    with pytest.raises(VerificationError, match="does not match expected subject"):
        verify_cosign_attestation(layer, digest, wrong, TrustRoots(), datetime.now(UTC))
    right = replace(wrong, subject=GENERATOR)
    with pytest.raises(VerificationError, match="not the image"):
        verify_cosign_attestation(layer, OTHER, right, TrustRoots(), datetime.now(UTC))
    tampered = replace(layer, payload=layer.payload.replace(b'"keyid":""', b'"keyid":"x"'))
    assert tampered.payload != layer.payload
    with pytest.raises(VerificationError, match="envelope hash"):
        verify_cosign_attestation(tampered, digest, right, TrustRoots(), datetime.now(UTC))


# -- RFC 3161 timestamps ------------------------------------------------------------------------


def test_keyless_timestamp_alone_when_log_not_required(
    sigstore: TestSigstore, roots: TrustRoots
) -> None:
    when = sigstore.now - timedelta(minutes=3)
    layer = as_cosign_layer(
        sign_image(sigstore.issue(), DIGEST, timestamp_by=sigstore, timestamp_at=when)
    )
    assert layer.rekor_bundle is None
    for tlog in ("optional", "ignore"):
        fact = verify_cosign_signature(
            layer, DIGEST, keyless_authority(transparency_log=tlog), roots, sigstore.now
        )
        assert fact.integrated_time == when
    with pytest.raises(VerificationError, match="needs a Rekor SET"):
        verify_cosign_signature(layer, DIGEST, keyless_authority(), roots, sigstore.now)


def test_keyless_timestamp_and_set_both_checked(sigstore: TestSigstore, roots: TrustRoots) -> None:
    # Valid until one minute before the SET's integrated time plus three: now - 3 min.
    leaf = sigstore.issue(
        not_before=sigstore.now - timedelta(minutes=30), lifetime=timedelta(minutes=27)
    )
    when = sigstore.now - timedelta(minutes=4, seconds=30)
    layer = as_cosign_layer(sign_image(leaf, DIGEST, sigstore=sigstore, timestamp_at=when))
    fact = verify_cosign_signature(layer, DIGEST, keyless_authority(), roots, sigstore.now)
    assert fact.integrated_time == when  # the earlier of the two verified times
    late = sigstore.now - timedelta(minutes=1)  # after the certificate expired
    expired = as_cosign_layer(sign_image(leaf, DIGEST, sigstore=sigstore, timestamp_at=late))
    with pytest.raises(VerificationError, match=r"expired .*checked at the RFC 3161 timestamp"):
        verify_cosign_signature(expired, DIGEST, keyless_authority(), roots, sigstore.now)


def test_keyless_timestamp_over_another_signature_or_from_another_tsa(
    sigstore: TestSigstore, roots: TrustRoots
) -> None:
    leaf = sigstore.issue()
    when = sigstore.now - timedelta(minutes=3)
    authority = keyless_authority(transparency_log="optional")
    other_sig = leaf.sign(b"something else")
    stamped_other = sign_image(
        leaf, OTHER, signature=other_sig, timestamp_by=sigstore, timestamp_at=when
    )
    layer = replace(
        as_cosign_layer(sign_image(leaf, DIGEST)),
        rfc3161_timestamp=stamped_other.annotations[ANN_RFC3161].encode(),
    )
    with pytest.raises(VerificationError, match="RFC 3161 timestamp does not verify"):
        verify_cosign_signature(layer, DIGEST, authority, roots, sigstore.now)
    future = as_cosign_layer(
        sign_image(
            leaf, DIGEST, timestamp_by=sigstore, timestamp_at=sigstore.now + timedelta(hours=1)
        )
    )
    with pytest.raises(VerificationError, match="in the future"):
        verify_cosign_signature(future, DIGEST, authority, roots, sigstore.now)
    rogue = TestSigstore(name="rogue", now=sigstore.now)
    foreign = as_cosign_layer(sign_image(leaf, DIGEST, timestamp_by=rogue, timestamp_at=when))
    with pytest.raises(VerificationError, match="RFC 3161 timestamp does not verify"):
        verify_cosign_signature(foreign, DIGEST, authority, roots, sigstore.now)


def test_keyless_attestation_with_timestamp_only(sigstore: TestSigstore, roots: TrustRoots) -> None:
    when = sigstore.now - timedelta(minutes=2)
    layer = as_cosign_layer(
        attest(
            sigstore.issue(), in_toto_statement([DIGEST]), timestamp_by=sigstore, timestamp_at=when
        )
    )
    assert layer.rekor_bundle is None
    authority = keyless_authority(transparency_log="optional")
    fact = verify_cosign_attestation(layer, DIGEST, authority, roots, sigstore.now)
    assert fact.integrated_time == when
    # cosign timestamps the envelope for attestations: a token over anything else fails.
    other = attest(
        sigstore.issue(), in_toto_statement([DIGEST]), timestamp_by=sigstore, timestamp_at=when
    )
    swapped = replace(layer, rfc3161_timestamp=other.annotations[ANN_RFC3161].encode())
    with pytest.raises(VerificationError, match="RFC 3161 timestamp does not verify"):
        verify_cosign_attestation(swapped, DIGEST, authority, roots, sigstore.now)


def test_key_attestation_with_required_log(
    key: ec.EllipticCurvePrivateKey, sigstore: TestSigstore, roots: TrustRoots
) -> None:
    authority = key_authority(key, "required")
    layer = as_cosign_layer(attest(key, in_toto_statement([DIGEST]), sigstore=sigstore))
    fact = verify_cosign_attestation(layer, DIGEST, authority, roots, sigstore.now)
    assert fact.integrated_time == sigstore.now - timedelta(minutes=4)
    with pytest.raises(VerificationError, match="requires a transparency log entry"):
        verify_cosign_attestation(
            replace(layer, rekor_bundle=None), DIGEST, authority, roots, sigstore.now
        )


def test_null_parameter_ed25519_key_with_required_log(
    sigstore: TestSigstore, roots: TrustRoots
) -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    der = bytes.fromhex("302c300706032b65700500032100") + raw
    pem = b"-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(der) + b"-----END PUBLIC KEY-----\n"
    authority = KeyAuthority(
        name="rebuilder", public_key_pem=pem, transparency_log="required", trust_root="corp"
    )
    layer = as_cosign_layer(sign_image(private, DIGEST, sigstore=sigstore))
    fact = verify_cosign_signature(layer, DIGEST, authority, roots, sigstore.now)
    assert fact.signer.authority == "rebuilder"

"""Evidence built byte for byte as real cosign (v1.x, v2.x, v3.x) writes it.

The other verify tests build evidence with the project's own fixtures; these pin the shapes
cosign and Rekor actually produce, each test naming the cosign / Rekor source it follows, so
a real signed image is handled as ``cosign verify`` would. Shapes covered:

- the ``dev.sigstore.cosign/bundle`` annotation as Go's ``json.Marshal`` writes
  ``cbundle.RekorBundle`` (``SignedEntryTimestamp`` base64, ``Payload`` with ``body`` base64 of
  the canonicalized entry, ``integratedTime``/``logIndex`` JSON numbers, ``logID`` hex);
- the Rekor entry kinds cosign logs: ``hashedrekord`` 0.0.1 for ``cosign sign`` (key or
  certificate PEM), ``intoto`` 0.0.1 and ``dsse`` 0.0.1 for ``cosign attest``, and ``intoto``
  0.0.2 (with its double-base64 ``sig`` and, in proposed form, payload);
- ``.att`` layers with an empty signature annotation and a ``predicateType`` annotation;
- cosign v3 image signatures: a v0.3 bundle whose statement has no subject ``name`` and an
  empty (or absent) predicate, signed keyless or with a key (``publicKey.hint``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from controller.evidence.discover import discover_evidence
from controller.evidence.model import ANN_BUNDLE, DSSE_MEDIA_TYPE, BundleEvidence, EvidenceSet
from controller.oci.client import RegistryClient, RegistrySettings
from controller.oci.reference import parse_image_ref
from controller.verify.authority import KeyAuthority, KeylessAuthority, TlogMode
from controller.verify.cosign import verify_cosign_attestation, verify_cosign_signature
from controller.verify.errors import VerificationError
from controller.verify.evidence import COSIGN_SIGN_PREDICATE, verify_evidence
from controller.verify.trustroot import TrustRoots, trust_from_json
from tests.support.cosign_sign import (
    SignedLayer,
    as_cosign_layer,
    attest,
    in_toto_statement,
    public_pem,
    sign_image,
    simple_signing_payload,
)
from tests.support.registry import RunningRegistry, push_cosign_manifest, push_random_image
from tests.support.sigstore_bundle import BUNDLE_V03, dsse_bundle, keyed_dsse_bundle
from tests.support.sigstore_pki import (
    DEFAULT_ISSUER,
    DEFAULT_SUBJECT,
    TestSigstore,
    hashedrekord_body,
    intoto_v001_body,
)

DIGEST = "sha256:" + "5e" * 32
INTOTO = "application/vnd.in-toto+json"


@pytest.fixture(scope="module")
def sigstore() -> TestSigstore:
    return TestSigstore(name="compat")


@pytest.fixture(scope="module")
def roots(sigstore: TestSigstore) -> TrustRoots:
    return TrustRoots([trust_from_json(sigstore.trusted_root_json(), "compat")])


def keyless() -> KeylessAuthority:
    return KeylessAuthority(
        name="ci", issuer=DEFAULT_ISSUER, subject=DEFAULT_SUBJECT, trust_root="compat"
    )


def keyed(private: ec.EllipticCurvePrivateKey, tlog: TlogMode = "required") -> KeyAuthority:
    return KeyAuthority(
        name="release",
        public_key_pem=public_pem(private),
        transparency_log=tlog,
        trust_root="compat",
    )


def go_rekor_bundle(sigstore: TestSigstore, body: bytes, *, log_index: int = 12345678) -> str:
    """``dev.sigstore.cosign/bundle`` exactly as cosign writes it: Go ``json.Marshal`` of
    ``cbundle.RekorBundle`` (cosign ``pkg/cosign/bundle/rekor.go``, ``pkg/oci/static/options.go``
    makeOptions): struct field order, no spaces, ``SignedEntryTimestamp`` []byte as base64,
    ``integratedTime``/``logIndex`` int64 numbers, ``logID`` the hex Rekor returns. The SET is
    over the RFC 8785 canonical JSON of the four payload fields (Rekor ``pkg/api/entries.go``,
    cosign ``pkg/cosign/verify.go`` VerifySET)."""
    integrated = int((sigstore.now - timedelta(minutes=3)).timestamp())
    body_b64 = base64.b64encode(body).decode()
    log_id = sigstore.rekor.log_id.hex()
    canonical = (
        f'{{"body":"{body_b64}","integratedTime":{integrated},'
        f'"logID":"{log_id}","logIndex":{log_index}}}'
    ).encode()
    set_b64 = base64.b64encode(sigstore.rekor.sign(canonical)).decode()
    return (
        f'{{"SignedEntryTimestamp":"{set_b64}","Payload":{{"body":"{body_b64}",'
        f'"integratedTime":{integrated},"logIndex":{log_index},"logID":"{log_id}"}}}}'
    )


def go_json(obj: object) -> bytes:
    """Compact JSON, as Go's encoder writes Rekor's canonicalized entry bodies."""
    return json.dumps(obj, separators=(",", ":")).encode()


def with_bundle(layer: SignedLayer, annotation: str) -> SignedLayer:
    return SignedLayer(
        layer.payload, layer.media_type, {**layer.annotations, ANN_BUNDLE: annotation}
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sha(data: bytes) -> dict[str, str]:
    """A Rekor hash object: ``{"algorithm": "sha256", "value": <hex>}``."""
    return {"algorithm": "sha256", "value": hashlib.sha256(data).hexdigest()}


# -- cosign sign: .sig layers with hashedrekord 0.0.1 ----------------------------------------


def test_sign_with_key_and_tlog_go_shapes(sigstore: TestSigstore, roots: TrustRoots) -> None:
    """``cosign sign --key`` (v1.4 to v2.x) with the log: the hashedrekord records the PEM
    *public key* (cosign ``internal/pkg/cosign/rekor/signer.go``: MarshalPublicKeyToPEM when
    there is no certificate; ``pkg/cosign/tlog.go`` rekorEntry: ``signature.content`` base64,
    ``publicKey.content`` base64 of the PEM, ``data.hash`` sha256 hex of the payload)."""
    private = ec.generate_private_key(ec.SECP256R1())
    payload = simple_signing_payload(DIGEST)  # "optional": null, as cosign without -a
    layer = sign_image(private, DIGEST, payload=payload)
    signature = base64.b64decode(layer.annotations["dev.cosignproject.cosign/signature"])
    body = go_json(
        {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": sha(payload)},
                "signature": {
                    "content": b64(signature),
                    "publicKey": {"content": b64(public_pem(private))},
                },
            },
        }
    )
    cosign_layer = as_cosign_layer(with_bundle(layer, go_rekor_bundle(sigstore, body)))
    fact = verify_cosign_signature(cosign_layer, DIGEST, keyed(private), roots, sigstore.now)
    assert fact.integrated_time is not None
    assert fact.annotations == {}


def test_sign_keyless_chain_with_root_go_shapes(sigstore: TestSigstore, roots: TrustRoots) -> None:
    """Keyless ``cosign sign``: the certificate annotation is the leaf PEM, the chain annotation
    Fulcio's chain *including the root* (cosign ``pkg/oci/static/options.go`` WithCertChain),
    and the hashedrekord records the certificate PEM."""
    leaf = sigstore.issue()
    layer = sign_image(leaf, DIGEST, with_chain=True)
    assert leaf.chain[-1].issuer == leaf.chain[-1].subject  # the root is in the chain
    signature = base64.b64decode(layer.annotations["dev.cosignproject.cosign/signature"])
    body = hashedrekord_body(signature, leaf.cert_pem, hashlib.sha256(layer.payload).hexdigest())
    cosign_layer = as_cosign_layer(with_bundle(layer, go_rekor_bundle(sigstore, body)))
    fact = verify_cosign_signature(cosign_layer, DIGEST, keyless(), roots, sigstore.now)
    assert fact.signer.kind == "keyless"


# -- cosign attest: .att layers ----------------------------------------------------------------


def _att(sigstore: TestSigstore) -> tuple[SignedLayer, bytes, bytes, bytes]:
    """A keyless ``.att`` layer without log entry: (layer, statement, raw sig, cert PEM)."""
    leaf = sigstore.issue()
    statement = in_toto_statement([DIGEST], statement_type="https://in-toto.io/Statement/v0.1")
    layer = attest(leaf, statement)
    envelope = json.loads(layer.payload)
    layer.annotations["predicateType"] = "https://slsa.dev/provenance/v1"  # cosign sets it
    return layer, statement, base64.b64decode(envelope["signatures"][0]["sig"]), leaf.cert_pem


def test_attest_intoto_v001_entry(sigstore: TestSigstore, roots: TrustRoots) -> None:
    """``cosign attest`` before v2.2 (and ``--rekor-entry-type intoto`` since) logs an
    ``intoto`` **0.0.1** entry (cosign ``pkg/cosign/tlog.go`` intotoEntry passes
    ``intoto_v001.APIVERSION``); Rekor stores only ``publicKey`` (base64 of the certificate
    PEM), ``content.hash`` (sha256 of the uploaded envelope) and ``content.payloadHash``
    (rekor ``pkg/types/intoto/v0.0.1/entry.go`` validate/Canonicalize)."""
    layer, statement, _, cert_pem = _att(sigstore)
    body = intoto_v001_body(layer.payload, statement, cert_pem)
    cosign_layer = as_cosign_layer(with_bundle(layer, go_rekor_bundle(sigstore, body)))
    fact = verify_cosign_attestation(cosign_layer, DIGEST, keyless(), roots, sigstore.now)
    assert fact.predicate_type == "https://slsa.dev/provenance/v1"
    assert fact.integrated_time is not None


def test_attest_dsse_entry(sigstore: TestSigstore, roots: TrustRoots) -> None:
    """cosign 2.2+ default ``--rekor-entry-type dsse``: a ``dsse`` 0.0.1 entry whose
    ``signatures[].signature`` is the envelope's ``sig`` string verbatim and ``verifier`` base64
    of the certificate PEM; ``envelopeHash`` is over the uploaded envelope bytes, the same bytes
    cosign stores as the ``.att`` layer (rekor ``pkg/types/dsse/v0.0.1/entry.go`` Unmarshal)."""
    layer, statement, _, cert_pem = _att(sigstore)
    envelope = json.loads(layer.payload)
    body = go_json(
        {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": sha(layer.payload),
                "payloadHash": sha(statement),
                "signatures": [
                    {"signature": envelope["signatures"][0]["sig"], "verifier": b64(cert_pem)}
                ],
            },
        }
    )
    cosign_layer = as_cosign_layer(with_bundle(layer, go_rekor_bundle(sigstore, body)))
    fact = verify_cosign_attestation(cosign_layer, DIGEST, keyless(), roots, sigstore.now)
    assert fact.statement_type == "https://in-toto.io/Statement/v0.1"


@pytest.mark.parametrize("with_payload", [False, True], ids=["canonical", "proposed"])
def test_attest_intoto_v002_entry(
    sigstore: TestSigstore, roots: TrustRoots, with_payload: bool
) -> None:
    """``intoto`` 0.0.2: ``sig`` is base64 of the envelope's base64 ``sig`` string and, in the
    proposed form, ``payload`` base64 of the envelope's base64 payload (rekor
    ``pkg/types/intoto/v0.0.2/entry.go`` CreateFromArtifactProperties); the canonicalized body
    drops the payload (Canonicalize)."""
    layer, statement, _, cert_pem = _att(sigstore)
    envelope = json.loads(layer.payload)
    entry_envelope: dict[str, object] = {
        "payloadType": INTOTO,
        "signatures": [
            {
                "keyid": "",
                "publicKey": b64(cert_pem),
                "sig": b64(envelope["signatures"][0]["sig"].encode()),
            }
        ],
    }
    if with_payload:
        entry_envelope["payload"] = b64(envelope["payload"].encode())
    body = go_json(
        {
            "apiVersion": "0.0.2",
            "kind": "intoto",
            "spec": {
                "content": {
                    "envelope": entry_envelope,
                    "hash": sha(layer.payload),
                    "payloadHash": sha(statement),
                }
            },
        }
    )
    cosign_layer = as_cosign_layer(with_bundle(layer, go_rekor_bundle(sigstore, body)))
    verify_cosign_attestation(cosign_layer, DIGEST, keyless(), roots, sigstore.now)


# -- registry round trip of cosign v2 .sig and .att manifests ---------------------------------


def test_cosign_v2_manifests_discovered_and_verified(
    registry: RunningRegistry, sigstore: TestSigstore, roots: TrustRoots
) -> None:
    """``.sig`` and ``.att`` manifests as cosign pushes them (cosign ``pkg/oci/static``:
    simple-signing and DSSE layer media types; ``.att`` layers carry an EMPTY
    ``dev.cosignproject.cosign/signature`` and a ``predicateType`` annotation,
    ``cmd/cosign/cli/attest/attest.go``), found and verified end to end."""
    repo = "compat/v2"
    digest = push_random_image(registry, repo, None, layers=1)
    leaf = sigstore.issue()
    sig = sign_image(leaf, digest, sigstore=sigstore)
    statement = in_toto_statement([digest])
    att = attest(leaf, statement)
    envelope = json.loads(att.payload)
    body = intoto_v001_body(att.payload, statement, leaf.cert_pem)
    att_ann = {
        **att.annotations,
        ANN_BUNDLE: go_rekor_bundle(sigstore, body),
        "predicateType": "https://slsa.dev/provenance/v1",
    }
    assert att_ann["dev.cosignproject.cosign/signature"] == ""
    assert envelope["payloadType"] == INTOTO
    push_cosign_manifest(registry, repo, digest, "sig", [sig])
    push_cosign_manifest(registry, repo, digest, "att", [(att.payload, DSSE_MEDIA_TYPE, att_ann)])

    async def run() -> EvidenceSet:
        settings = RegistrySettings(ca_file=str(registry.ca_file))
        async with RegistryClient(settings) as client:
            image = parse_image_ref(f"{registry.host}/{repo}@{digest}")
            return await discover_evidence(client, image)

    evidence = asyncio.run(run())
    assert len(evidence.signatures) == 1 and len(evidence.attestations) == 1
    outcome = verify_evidence(evidence, [keyless()], roots, sigstore.now)
    assert not outcome.failures
    assert len(outcome.signatures) == 1 and len(outcome.statements) == 1


# -- cosign v3: new bundle format ------------------------------------------------------------


def cosign_v3_sign_statement(digest: str, *, predicate: bool = True) -> bytes:
    """The statement ``cosign sign`` puts in a bundle: protojson of an in-toto v1 Statement
    whose only subject has a digest (and, v3, empty annotations) but NO name, predicate type
    ``https://sigstore.dev/cosign/sign/v1`` and an empty predicate (cosign v3
    ``cmd/cosign/cli/sign/sign.go`` signDigestBundle); cosign v2.6 sets no predicate at all.
    protojson may put a space after separators."""
    algorithm, _, hexpart = digest.partition(":")
    subject = f'{{"digest":{{"{algorithm}":"{hexpart}"}}, "annotations":{{}}}}'
    text = (
        f'{{"_type":"https://in-toto.io/Statement/v1", "subject":[{subject}], '
        f'"predicateType":"{COSIGN_SIGN_PREDICATE}"' + (', "predicate":{}}' if predicate else "}")
    )
    return text.encode()


@pytest.mark.parametrize("predicate", [True, False], ids=["v3", "v2.6"])
def test_v3_keyless_sign_bundle_counts_as_signature(
    sigstore: TestSigstore, roots: TrustRoots, predicate: bool
) -> None:
    """A cosign v3 (or v2.6 ``--new-bundle-format``) keyless image signature."""
    statement = cosign_v3_sign_statement(DIGEST, predicate=predicate)
    bundle = dsse_bundle(sigstore, sigstore.issue(), statement)
    evidence = EvidenceSet(digest=DIGEST, bundles=(_bundle_evidence(bundle),))
    outcome = verify_evidence(evidence, [keyless()], roots, sigstore.now)
    assert not outcome.failures, outcome.failures
    assert len(outcome.signatures) == 1
    assert outcome.signatures[0].image_digest == DIGEST


def test_v3_keyed_sign_bundle_counts_as_signature(
    sigstore: TestSigstore, roots: TrustRoots
) -> None:
    """``cosign sign --key`` in v3: ``verificationMaterial.publicKey.hint`` (no key in the
    bundle), Rekor ``dsse`` 0.0.1 entry whose verifier is the PEM public key."""
    private = ec.generate_private_key(ec.SECP256R1())
    bundle = keyed_dsse_bundle(sigstore, private, cosign_v3_sign_statement(DIGEST))
    evidence = EvidenceSet(digest=DIGEST, bundles=(_bundle_evidence(bundle),))
    outcome = verify_evidence(evidence, [keyed(private)], roots, sigstore.now)
    assert not outcome.failures, outcome.failures
    assert len(outcome.signatures) == 1


def test_v2_4_new_bundle_format_with_a_p384_key_counts_as_signature(
    sigstore: TestSigstore, roots: TrustRoots
) -> None:
    """cosign 2.4 ``--new-bundle-format`` with a P-384 key: the DSSE envelope is signed ECDSA
    over SHA-256 (keys loaded with a fixed SHA-256 before 2.5), as on the ``.sig`` path; a
    signature by another key still fails."""
    private = ec.generate_private_key(ec.SECP384R1())
    bundle = keyed_dsse_bundle(sigstore, private, cosign_v3_sign_statement(DIGEST))
    evidence = EvidenceSet(digest=DIGEST, bundles=(_bundle_evidence(bundle),))
    outcome = verify_evidence(evidence, [keyed(private)], roots, sigstore.now)
    assert not outcome.failures, outcome.failures
    assert len(outcome.signatures) == 1
    other = ec.generate_private_key(ec.SECP384R1())
    refused = verify_evidence(evidence, [keyed(other)], roots, sigstore.now)
    assert not refused.signatures and refused.failures


def _bundle_evidence(raw: bytes) -> BundleEvidence:
    return BundleEvidence(raw, BUNDLE_V03, "compat referrer")


# -- mismatches found: keys cosign signs with a fixed SHA-256, old rekord entries ------------


@pytest.mark.parametrize("curve", [ec.SECP384R1(), ec.SECP521R1()], ids=["p384", "p521"])
def test_sign_p384_key_sha256_cosign_before_2_5(
    sigstore: TestSigstore, roots: TrustRoots, curve: ec.EllipticCurve
) -> None:
    """cosign up to 2.4 loads every ECDSA key with a fixed SHA-256 (cosign v2.4.1
    ``pkg/cosign/keys.go`` LoadPrivateKey: ``signature.LoadECDSASignerVerifier(pk,
    crypto.SHA256)``; KMS signers likewise), so a P-384/P-521 key signs ECDSA over SHA-256 and
    the hashedrekord records the sha256 of the payload."""
    private = ec.generate_private_key(curve)
    payload = simple_signing_payload(DIGEST)
    signature = private.sign(payload, ec.ECDSA(hashes.SHA256()))
    layer = sign_image(private, DIGEST, payload=payload, signature=signature)
    body = hashedrekord_body(signature, public_pem(private), hashlib.sha256(payload).hexdigest())
    cosign_layer = as_cosign_layer(with_bundle(layer, go_rekor_bundle(sigstore, body)))
    fact = verify_cosign_signature(cosign_layer, DIGEST, keyed(private), roots, sigstore.now)
    assert fact.signer.kind == "key"
    # the same signature over other bytes still fails: the fallback is a hash, not a pass
    changed = simple_signing_payload(DIGEST, optional={"env": "prod"})
    other = as_cosign_layer(sign_image(private, DIGEST, payload=changed, signature=signature))
    with pytest.raises(VerificationError, match="does not verify"):
        verify_cosign_signature(other, DIGEST, keyed(private, "ignore"), roots, sigstore.now)


def test_attest_p384_key_sha256_cosign_before_2_5(
    sigstore: TestSigstore, roots: TrustRoots
) -> None:
    """``cosign attest --key`` with a P-384 key before cosign 2.5: the DSSE signature over PAE
    is ECDSA with SHA-256 (``dsse.WrapSigner`` around the SHA-256 signer of
    ``pkg/cosign/keys.go``)."""
    private = ec.generate_private_key(ec.SECP384R1())
    statement = in_toto_statement([DIGEST])
    pae = b"DSSEv1 %d %b %d %b" % (len(INTOTO), INTOTO.encode(), len(statement), statement)
    signature = private.sign(pae, ec.ECDSA(hashes.SHA256()))
    envelope = go_json(
        {
            "payloadType": INTOTO,
            "payload": b64(statement),
            "signatures": [{"keyid": "", "sig": b64(signature)}],
        }
    )
    layer = SignedLayer(envelope, DSSE_MEDIA_TYPE, {"dev.cosignproject.cosign/signature": ""})
    fact = verify_cosign_attestation(
        as_cosign_layer(layer), DIGEST, keyed(private, "ignore"), roots, sigstore.now
    )
    assert fact.signer.kind == "key"
    # the same signature on another statement still fails
    forged = envelope.replace(
        b64(statement).encode(), b64(in_toto_statement([DIGEST], name="x")).encode()
    )
    with pytest.raises(VerificationError, match="does not verify"):
        verify_cosign_attestation(
            as_cosign_layer(SignedLayer(forged, DSSE_MEDIA_TYPE, layer.annotations)),
            DIGEST,
            keyed(private, "ignore"),
            roots,
            sigstore.now,
        )


def test_sign_rekord_entry_cosign_1_0_to_1_3(sigstore: TestSigstore, roots: TrustRoots) -> None:
    """cosign v1.0 to v1.3 logged ``cosign sign`` as a ``rekord`` 0.0.1 entry (cosign v1.3.0
    ``pkg/cosign/tlog.go`` rekorEntry returns ``rekord_v001.V001Entry``); Rekor stores
    ``data.hash`` and ``signature.{content, format: "x509", publicKey.content}`` (rekor
    ``pkg/types/rekord/v0.0.1/entry.go`` Canonicalize), and cosign still verifies it
    (``pkg/cosign/verify.go`` bundleSig/bundleKey/bundleHash handle ``rekord_v001``)."""
    leaf = sigstore.issue()
    layer = sign_image(leaf, DIGEST)
    signature = base64.b64decode(layer.annotations["dev.cosignproject.cosign/signature"])

    def rekord(fmt: str, signed: bytes = signature) -> bytes:
        return go_json(
            {
                "apiVersion": "0.0.1",
                "kind": "rekord",
                "spec": {
                    "data": {"hash": sha(layer.payload)},
                    "signature": {
                        "content": b64(signed),
                        "format": fmt,
                        "publicKey": {"content": b64(leaf.cert_pem)},
                    },
                },
            }
        )

    ok = as_cosign_layer(with_bundle(layer, go_rekor_bundle(sigstore, rekord("x509"))))
    fact = verify_cosign_signature(ok, DIGEST, keyless(), roots, sigstore.now)
    assert fact.integrated_time is not None
    # the entry must still record this very signature, in the x509 format
    for body in (rekord("minisign"), rekord("x509", b"\x30" + signature[1:-1] + b"\x00")):
        bad = as_cosign_layer(with_bundle(layer, go_rekor_bundle(sigstore, body)))
        with pytest.raises(VerificationError):
            verify_cosign_signature(bad, DIGEST, keyless(), roots, sigstore.now)


# -- Ed25519 keys: cosign >= 2.5 signs Ed25519ph by default ----------------------------------


def test_ed25519_key_signs_ed25519ph_from_cosign_2_5(sigstore: TestSigstore) -> None:
    """cosign 2.5 ``pkg/cosign/keys.go`` GetDefaultLoadOptions: an Ed25519 key signs
    Ed25519ph over the payload (``.sig``) and over the DSSE PAE (``.att``); earlier cosign
    signed pure Ed25519. Both verify with the key; neither with another key, nor over other
    bytes."""
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from controller.verify.dsse import pae
    from tests.support import ed25519ph_sign

    seed = os.urandom(32)
    private = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    authority = KeyAuthority(name="release", public_key_pem=pem, transparency_log="ignore")
    roots = TrustRoots()
    payload = simple_signing_payload(DIGEST)
    for signature in (ed25519ph_sign.sign(seed, payload), private.sign(payload)):
        layer = sign_image(private, DIGEST, payload=payload, signature=signature)
        fact = verify_cosign_signature(
            as_cosign_layer(layer), DIGEST, authority, roots, sigstore.now
        )
        assert fact.signer.authority == "release"
    other = ed25519.Ed25519PrivateKey.generate()
    other_pem = other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    stranger = KeyAuthority(name="other", public_key_pem=other_pem, transparency_log="ignore")
    layer = sign_image(
        private, DIGEST, payload=payload, signature=ed25519ph_sign.sign(seed, payload)
    )
    with pytest.raises(VerificationError):
        verify_cosign_signature(as_cosign_layer(layer), DIGEST, stranger, roots, sigstore.now)
    tampered = sign_image(
        private, DIGEST, payload=payload, signature=ed25519ph_sign.sign(seed, payload + b" ")
    )
    with pytest.raises(VerificationError):
        verify_cosign_signature(as_cosign_layer(tampered), DIGEST, authority, roots, sigstore.now)

    statement = in_toto_statement([DIGEST])
    envelope = json.dumps(
        {
            "payloadType": "application/vnd.in-toto+json",
            "payload": base64.b64encode(statement).decode(),
            "signatures": [
                {
                    "keyid": "",
                    "sig": base64.b64encode(
                        ed25519ph_sign.sign(seed, pae("application/vnd.in-toto+json", statement))
                    ).decode(),
                }
            ],
        }
    ).encode()
    att = SignedLayer(envelope, DSSE_MEDIA_TYPE, {"dev.cosignproject.cosign/signature": ""})
    fact2 = verify_cosign_attestation(as_cosign_layer(att), DIGEST, authority, roots, sigstore.now)
    assert fact2.predicate_type == "https://slsa.dev/provenance/v1"

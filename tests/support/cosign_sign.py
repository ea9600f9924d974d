"""Build cosign ``.sig`` and ``.att`` layers the way ``cosign sign`` / ``cosign attest`` do.

Each builder returns a :class:`SignedLayer` ``(payload, media_type, annotations)``: push it as a
layer of a cosign signature manifest with the registry helper, or turn it straight into the
:class:`CosignLayer` that evidence discovery would produce with :func:`as_cosign_layer`.

Signers are either a private key (``cosign sign --key``) or a :class:`FulcioLeaf` from
:mod:`tests.support.sigstore_pki` (keyless). A Rekor SET is attached when a
:class:`TestSigstore` is given; ``set_body`` / ``set_signing_log`` / ``integrated_time`` forge
the negative cases.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime
from typing import Any, Literal, NamedTuple

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from controller.evidence.model import (
    ANN_BUNDLE,
    ANN_CERTIFICATE,
    ANN_CHAIN,
    ANN_RFC3161,
    ANN_SIGNATURE,
    DSSE_MEDIA_TYPE,
    SIMPLE_SIGNING_MEDIA_TYPE,
    CosignLayer,
)
from tests.support.sigstore_pki import (
    FulcioLeaf,
    LogKeyPair,
    TestSigstore,
    dsse_body,
    hashedrekord_body,
    intoto_body,
)

__all__ = [
    "PrivateKey",
    "SignedLayer",
    "as_cosign_layer",
    "attest",
    "in_toto_statement",
    "public_pem",
    "sign_image",
    "sign_raw",
    "simple_signing_payload",
]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
Signer = PrivateKey | FulcioLeaf

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


class SignedLayer(NamedTuple):
    """One layer of a cosign signature/attestation manifest."""

    payload: bytes
    media_type: str
    annotations: dict[str, str]


def public_pem(key: PrivateKey) -> bytes:
    """PEM SubjectPublicKeyInfo of ``key``'s public half."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sign_raw(signer: Signer, data: bytes, *, p1363: bool = False, rsa_pss: bool = False) -> bytes:
    """Sign ``data`` as cosign would for this key type (ECDSA with the curve's hash)."""
    if isinstance(signer, FulcioLeaf):
        return signer.sign(data)
    if isinstance(signer, ec.EllipticCurvePrivateKey):
        algorithm: hashes.HashAlgorithm = {
            "secp256r1": hashes.SHA256(),
            "secp384r1": hashes.SHA384(),
            "secp521r1": hashes.SHA512(),
        }[signer.curve.name]
        der = signer.sign(data, ec.ECDSA(algorithm))
        if not p1363:
            return der
        r, s = decode_dss_signature(der)
        width = (signer.curve.key_size + 7) // 8
        return r.to_bytes(width, "big") + s.to_bytes(width, "big")
    if isinstance(signer, rsa.RSAPrivateKey):
        if rsa_pss:
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            return signer.sign(data, pss, hashes.SHA256())
        return signer.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return signer.sign(data)


def _signer_pem(signer: Signer) -> bytes:
    return signer.cert_pem if isinstance(signer, FulcioLeaf) else public_pem(signer)


def simple_signing_payload(
    digest: str,
    *,
    reference: str = "registry.test/acme/app",
    optional: dict[str, Any] | None = None,
) -> bytes:
    """The simple-signing JSON ``cosign sign`` signs for ``digest``."""
    doc = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": optional,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def in_toto_statement(
    digests: list[str],
    *,
    predicate_type: str = "https://slsa.dev/provenance/v1",
    predicate: dict[str, Any] | None = None,
    statement_type: str = "https://in-toto.io/Statement/v1",
    name: str = "registry.test/acme/app",
) -> bytes:
    """An in-toto Statement whose subjects are ``digests`` (``sha256:<hex>``)."""
    doc = {
        "_type": statement_type,
        "subject": [{"name": name, "digest": {"sha256": d.split(":", 1)[1]}} for d in digests],
        "predicateType": predicate_type,
        "predicate": predicate if predicate is not None else {"builder": {"id": "test"}},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _keyless_annotations(signer: Signer, with_chain: bool) -> dict[str, str]:
    if not isinstance(signer, FulcioLeaf):
        return {}
    annotations = {ANN_CERTIFICATE: signer.cert_pem.decode()}
    if with_chain:
        annotations[ANN_CHAIN] = signer.chain_pem.decode()
    return annotations


def sign_image(
    signer: Signer,
    digest: str,
    *,
    payload: bytes | None = None,
    sigstore: TestSigstore | None = None,
    with_chain: bool = True,
    integrated_time: datetime | None = None,
    set_body: bytes | None = None,
    set_signing_log: LogKeyPair | None = None,
    signature: bytes | None = None,
    timestamp_at: datetime | None = None,
    timestamp_by: TestSigstore | None = None,
    p1363: bool = False,
) -> SignedLayer:
    """A ``.sig`` layer for ``digest``. With ``sigstore``, a Rekor SET over a hashedrekord of
    this signature is attached (``set_body`` replaces that body: an entry for other evidence).
    With ``timestamp_at``, ``timestamp_by``'s TSA (default: ``sigstore``'s) timestamps the raw
    signature bytes, as cosign does."""
    payload = payload if payload is not None else simple_signing_payload(digest)
    sig = signature if signature is not None else sign_raw(signer, payload, p1363=p1363)
    annotations = {ANN_SIGNATURE: base64.b64encode(sig).decode()}
    annotations.update(_keyless_annotations(signer, with_chain))
    if sigstore is not None:
        body = set_body or hashedrekord_body(
            sig, _signer_pem(signer), hashlib.sha256(payload).hexdigest()
        )
        annotations[ANN_BUNDLE] = sigstore.rekor_set(
            body, integrated_time=integrated_time, signing_log=set_signing_log
        ).decode()
    if timestamp_at is not None:
        annotations[ANN_RFC3161] = _timestamp(timestamp_by or sigstore, sig, timestamp_at)
    return SignedLayer(payload, SIMPLE_SIGNING_MEDIA_TYPE, annotations)


def _timestamp(instance: TestSigstore | None, message: bytes, when: datetime) -> str:
    if instance is None or instance.tsa is None:
        raise ValueError("a timestamp needs a TestSigstore with a TSA")
    token = instance.tsa.timestamp(message, when)
    return json.dumps({"SignedRFC3161Timestamp": base64.b64encode(token).decode()})


def attest(
    signer: Signer,
    statement: bytes,
    *,
    payload_type: str = INTOTO_PAYLOAD_TYPE,
    sigstore: TestSigstore | None = None,
    entry_kind: Literal["dsse", "intoto"] = "dsse",
    with_chain: bool = True,
    integrated_time: datetime | None = None,
    set_body: bytes | None = None,
    set_signing_log: LogKeyPair | None = None,
    timestamp_at: datetime | None = None,
    timestamp_by: TestSigstore | None = None,
) -> SignedLayer:
    """An ``.att`` layer: a DSSE envelope over ``statement``, optionally with a Rekor SET over
    a ``dsse`` (current cosign) or ``intoto`` v0.0.2 (older cosign) entry, and an RFC 3161
    timestamp over the envelope bytes (what cosign timestamps for attestations)."""
    type_bytes = payload_type.encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(statement), statement)
    sig = sign_raw(signer, pae)
    envelope = json.dumps(
        {
            "payloadType": payload_type,
            "payload": base64.b64encode(statement).decode(),
            "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}],
        },
        separators=(",", ":"),
    ).encode()
    annotations = {ANN_SIGNATURE: ""}  # cosign writes an empty signature annotation on .att
    annotations.update(_keyless_annotations(signer, with_chain))
    if sigstore is not None:
        pem = _signer_pem(signer)
        body = set_body or (
            dsse_body(envelope, statement, [sig], pem)
            if entry_kind == "dsse"
            else intoto_body(envelope, payload_type, statement, [sig], pem)
        )
        annotations[ANN_BUNDLE] = sigstore.rekor_set(
            body, integrated_time=integrated_time, signing_log=set_signing_log
        ).decode()
    if timestamp_at is not None:
        annotations[ANN_RFC3161] = _timestamp(timestamp_by or sigstore, envelope, timestamp_at)
    return SignedLayer(envelope, DSSE_MEDIA_TYPE, annotations)


def as_cosign_layer(layer: SignedLayer, *, source: str = "test layer 0") -> CosignLayer:
    """The :class:`CosignLayer` evidence discovery would produce for ``layer``."""
    ann = layer.annotations

    def raw(name: str) -> bytes | None:
        return ann[name].encode() if name in ann else None

    kind: Literal["signature", "attestation"] = (
        "attestation" if layer.media_type == DSSE_MEDIA_TYPE else "signature"
    )
    return CosignLayer(
        kind=kind,
        payload=layer.payload,
        signature_b64=ann.get(ANN_SIGNATURE) or None,
        certificate_pem=raw(ANN_CERTIFICATE),
        chain_pem=raw(ANN_CHAIN),
        rekor_bundle=raw(ANN_BUNDLE),
        rfc3161_timestamp=raw(ANN_RFC3161),
        source=source,
    )

"""Sigstore bundles for the private test instance (``tests.support.sigstore_pki.TestSigstore``).

Builds what ``cosign`` v3 attaches to images as OCI 1.1 referrers, in the shapes of the Sigstore
bundle specification (``sigstore_bundle.proto``):

- v0.1 (``application/vnd.dev.sigstore.bundle+json;version=0.1``): certificate "chain" holding
  the leaf, one Rekor entry with a Signed Entry Timestamp and no inclusion proof (cosign 2.x);
- v0.3 (``application/vnd.dev.sigstore.bundle.v0.3+json``): the leaf as a single certificate,
  one Rekor entry with a SET *and* an inclusion proof whose root is vouched for by a checkpoint
  signed with the log key (a signed note, transparency-dev "checkpoint" format, as Rekor v1
  writes it: ``origin\\nsize\\nbase64(root)\\n\\n— origin base64(keyhint || signature)\\n``).

The inclusion proof is real: the entry is a leaf of a small RFC 6962 Merkle tree (leaf hash
``sha256(0x00 || body)``, node hash ``sha256(0x01 || left || right)``), and the audit path is
RFC 6962 §2.1.1 ``PATH(m, D[n])``, lowest level first, as sigstore-python verifies it.

The content is a DSSE envelope over an in-toto Statement: cosign's image-signature predicate
``https://sigstore.dev/cosign/sign/v1`` (:func:`signature_statement`) or any attestation
(:func:`tests.support.cosign_sign.in_toto_statement`). Knobs for negative cases: the SET's
signing key, the log entry body (an entry for other evidence), dropping the transparency log
entry, and an RFC 3161 timestamp.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.sigstore_pki import FulcioLeaf, LogKeyPair, TestSigstore, dsse_body

__all__ = [
    "BUNDLE_V01",
    "BUNDLE_V03",
    "COSIGN_SIGN_PREDICATE",
    "INTOTO_PAYLOAD_TYPE",
    "InclusionProof",
    "checkpoint",
    "dsse_bundle",
    "inclusion_proof",
    "keyed_dsse_bundle",
    "leaf_hash",
    "merkle_root",
    "signature_statement",
]

BUNDLE_V01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"

BundleVersion = Literal["0.1", "0.3"]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------- RFC 6962 Merkle


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 §2.1 leaf hash: ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n > 1``)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle Tree Hash ``MTH(D[n])`` over the leaf *data* ``leaves`` (n >= 1)."""
    if not leaves:
        raise ValueError("a Merkle tree needs at least one leaf here")
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = _split(len(leaves))
    return _node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def _path(m: int, leaves: list[bytes]) -> list[bytes]:
    # RFC 6962 §2.1.1: PATH(m, D[n]); the sibling nearest the leaf comes first.
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return [*_path(m, leaves[:k]), merkle_root(leaves[k:])]
    return [*_path(m - k, leaves[k:]), merkle_root(leaves[:k])]


@dataclass(frozen=True)
class InclusionProof:
    """A leaf's audit path in a tree of ``tree_size`` leaves with root ``root_hash``."""

    log_index: int
    tree_size: int
    root_hash: bytes
    hashes: tuple[bytes, ...]


def inclusion_proof(body: bytes, *, index: int, tree_size: int) -> InclusionProof:
    """Put ``body`` at ``index`` among random filler leaves and prove its inclusion."""
    if not 0 <= index < tree_size:
        raise ValueError("index must lie inside the tree")
    leaves = [secrets.token_bytes(32) for _ in range(tree_size)]
    leaves[index] = body
    return InclusionProof(index, tree_size, merkle_root(leaves), tuple(_path(index, leaves)))


def checkpoint(
    log: LogKeyPair, log_name: str, tree_id: int, tree_size: int, root_hash: bytes
) -> str:
    """A Rekor v1 checkpoint: a signed note over origin, size and root, signed by ``log``.

    The origin line is ``<log_name> - <tree_id>``; the signature line names the log (no spaces)
    and carries the 4-byte key hint (the first bytes of the log id) before the ECDSA signature
    over the note text, as sigstore-python's ``SignedNote.verify`` expects.
    """
    note = f"{log_name} - {tree_id}\n{tree_size}\n{_b64(root_hash)}\n"
    signature = log.sign(note.encode())
    return f"{note}\n\u2014 {log_name} {_b64(log.log_id[:4] + signature)}\n"


# --------------------------------------------------------------------------- statements


def signature_statement(digest: str, *, name: str = "registry.test/acme/app") -> bytes:
    """cosign v3's image signature: an in-toto Statement of predicate
    ``https://sigstore.dev/cosign/sign/v1`` whose subject is the image ``digest``."""
    algorithm, _, hexpart = digest.partition(":")
    doc = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {algorithm: hexpart}}],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- bundles


def _pae(payload_type: str, payload: bytes) -> bytes:
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def dsse_bundle(
    sigstore: TestSigstore,
    leaf: FulcioLeaf,
    statement: bytes,
    *,
    version: BundleVersion = "0.3",
    payload_type: str = INTOTO_PAYLOAD_TYPE,
    tlog: bool = True,
    integrated_time: datetime | None = None,
    set_signing_log: LogKeyPair | None = None,
    entry_body: bytes | None = None,
    timestamp_at: datetime | None = None,
) -> bytes:
    """A Sigstore bundle (JSON bytes) holding a DSSE envelope over ``statement`` signed by
    ``leaf``, logged in ``sigstore``'s Rekor.

    - ``tlog=False`` leaves out the transparency log entry (no verified time from the log).
    - ``set_signing_log`` signs the SET with another key while keeping the real log id.
    - ``entry_body`` replaces the logged ``dsse`` body (an entry for other evidence); the SET,
      inclusion proof and checkpoint are then valid *for that body*.
    - ``timestamp_at`` adds an RFC 3161 timestamp from ``sigstore``'s TSA over the signature.
    """
    signature = leaf.sign(_pae(payload_type, statement))
    envelope = {
        "payload": _b64(statement),
        "payloadType": payload_type,
        "signatures": [{"sig": _b64(signature), "keyid": ""}],
    }
    cert_der = leaf.certificate.public_bytes(serialization.Encoding.DER)
    material: dict[str, Any] = (
        {"certificate": {"rawBytes": _b64(cert_der)}}
        if version == "0.3"
        else {"x509CertificateChain": {"certificates": [{"rawBytes": _b64(cert_der)}]}}
    )
    if tlog:
        body = entry_body or dsse_body(
            json.dumps(envelope, separators=(",", ":")).encode(),
            statement,
            [signature],
            leaf.cert_pem,
        )
        material["tlogEntries"] = [
            _tlog_entry(sigstore, body, version, integrated_time, set_signing_log)
        ]
    else:
        material["tlogEntries"] = []
    if timestamp_at is not None:
        if sigstore.tsa is None:
            raise ValueError("a timestamp needs a TestSigstore with a TSA")
        token = sigstore.tsa.timestamp(signature, timestamp_at)
        material["timestampVerificationData"] = {
            "rfc3161Timestamps": [{"signedTimestamp": _b64(token)}]
        }
    doc = {
        "mediaType": BUNDLE_V03 if version == "0.3" else BUNDLE_V01,
        "verificationMaterial": material,
        "dsseEnvelope": envelope,
    }
    return json.dumps(doc, indent=1).encode()


_TREE_SIZE = 11  # small, odd-sized, so proofs mix inner and right-border hashes


def _tlog_entry(
    sigstore: TestSigstore,
    body: bytes,
    version: BundleVersion,
    integrated_time: datetime | None,
    set_signing_log: LogKeyPair | None,
) -> dict[str, Any]:
    when = integrated_time if integrated_time is not None else sigstore.now - timedelta(minutes=4)
    index = secrets.randbelow(_TREE_SIZE)
    seconds = int(when.timestamp())
    log_id = sigstore.rekor.log_id
    # cosign's SET: the log key signs the canonical JSON of these four fields.
    canonical = json.dumps(
        {"body": _b64(body), "integratedTime": seconds, "logID": log_id.hex(), "logIndex": index},
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    entry: dict[str, Any] = {
        "logIndex": str(index),
        "logId": {"keyId": _b64(log_id)},
        "kindVersion": {"kind": "dsse", "version": "0.0.1"},
        "integratedTime": str(seconds),
        "inclusionPromise": {
            "signedEntryTimestamp": _b64((set_signing_log or sigstore.rekor).sign(canonical))
        },
        "canonicalizedBody": _b64(body),
    }
    if version == "0.3":
        proof = inclusion_proof(body, index=index, tree_size=_TREE_SIZE)
        entry["inclusionProof"] = {
            "logIndex": str(index),
            "rootHash": _b64(proof.root_hash),
            "treeSize": str(_TREE_SIZE),
            "hashes": [_b64(h) for h in proof.hashes],
            "checkpoint": {
                "envelope": checkpoint(
                    sigstore.rekor,
                    f"rekor.{sigstore.name}.example",
                    int.from_bytes(log_id[:7], "big"),
                    _TREE_SIZE,
                    proof.root_hash,
                )
            },
        }
    return entry


def keyed_dsse_bundle(
    sigstore: TestSigstore,
    private_key: ec.EllipticCurvePrivateKey,
    statement: bytes,
    *,
    tlog: bool = True,
) -> bytes:
    """A v0.3 bundle as ``cosign sign --key`` / ``cosign attest --key`` (cosign v3, new bundle
    format) writes it: ``verificationMaterial.publicKey.hint`` instead of a certificate, a DSSE
    envelope signed with the key, and a Rekor v1 ``dsse`` 0.0.1 entry whose verifier is the
    PEM public key (cosign ``pkg/cosign/bundle/sign.go`` SignData, sigstore-go ``pkg/sign``)."""
    signature = private_key.sign(_pae(INTOTO_PAYLOAD_TYPE, statement), ec.ECDSA(hashes.SHA256()))
    envelope = {
        "payload": _b64(statement),
        "payloadType": INTOTO_PAYLOAD_TYPE,
        "signatures": [{"sig": _b64(signature)}],
    }
    public_der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    material: dict[str, Any] = {"publicKey": {"hint": _b64(hashlib.sha256(public_der).digest())}}
    if tlog:
        body = dsse_body(
            json.dumps(envelope, separators=(",", ":")).encode(), statement, [signature], public_pem
        )
        material["tlogEntries"] = [_tlog_entry(sigstore, body, "0.3", None, None)]
    doc = {"mediaType": BUNDLE_V03, "verificationMaterial": material, "dsseEnvelope": envelope}
    return json.dumps(doc, separators=(",", ":")).encode()

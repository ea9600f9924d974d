"""Test builders that sign SLSA provenance, and the policy documents that trust them.

A :class:`TestBuilder` is one build platform with its own builder id and its own signer:
either a private key (``cosign attest --key``) or a keyless identity from a private
:class:`~tests.support.sigstore_pki.TestSigstore` instance (Fulcio certificate whose subject is
the builder id, Rekor SET), with that instance's ``trusted_root.json`` published as a
``TrustRoot`` document. Statements are SLSA provenance v1 or v0.2 (and VSA v1) in the shapes
the specs give; attestations are cosign ``.att`` layers built by
:func:`tests.support.cosign_sign.attest`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.cosign_sign import SignedLayer, attest, public_pem
from tests.support.registry import RunningRegistry, push_cosign_manifest
from tests.support.sigstore_pki import FulcioLeaf, TestSigstore

__all__ = [
    "API_VERSION",
    "SourceSpec",
    "TestBuilder",
    "key_builder",
    "keyless_builder",
    "push_attestations",
    "slsa_v02",
    "slsa_v1",
    "trust_root_document",
    "vsa_v1",
    "write_documents",
]

API_VERSION = "reprogate.dev/v1alpha1"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"


@dataclass(frozen=True)
class SourceSpec:
    """The source a test build read: repository URL, git ref and commit."""

    repository: str = "https://github.com/acme/app"
    ref: str = "refs/tags/v1.2.3"
    commit: str = "1f0e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"

    @property
    def normalised(self) -> str:
        """``host/owner/name`` as reprogate normalises it."""
        return self.repository.split("://", 1)[1]


@dataclass
class TestBuilder:
    """One build platform: a builder id, a signer, and the level a policy trusts it for."""

    __test__ = False  # not a pytest class

    name: str  # policy authority name of its signer
    builder_id: str
    level: int
    signer: ec.EllipticCurvePrivateKey | FulcioLeaf
    sigstore: TestSigstore | None = None  # keyless: the instance that issued the certificate
    issuer: str | None = None  # keyless: OIDC issuer in the certificate
    trust_root: str | None = None  # keyless: TrustRoot document name
    layers: list[SignedLayer] = field(default_factory=list)

    @property
    def keyless(self) -> bool:
        return isinstance(self.signer, FulcioLeaf)

    def attest(self, statement: bytes) -> SignedLayer:
        """A cosign ``.att`` layer: this builder's DSSE signature over ``statement`` (with a
        Rekor SET from its Sigstore instance when keyless, as cosign uploads one)."""
        return attest(self.signer, statement, sigstore=self.sigstore)

    def authority(self) -> dict[str, Any] | None:
        """A key builder's signer as a policy ``authorities`` entry (None when keyless: a
        keyless builder signer names no subject, which only ``trustedBuilders`` allows)."""
        if isinstance(self.signer, FulcioLeaf):
            return None
        return {"name": self.name, "key": {"pem": public_pem(self.signer).decode()}}

    def policy_entry(self) -> dict[str, Any]:
        """This builder as a ``provenance.trustedBuilders`` entry of a policy."""
        if isinstance(self.signer, FulcioLeaf):
            # no subject: the certificate subject must equal the builder id
            signer: dict[str, Any] = {
                "keyless": {"issuer": self.issuer, "trustRoot": self.trust_root}
            }
        else:
            signer = {"authority": self.name}
        return {"id": self.builder_id, "level": self.level, "signer": signer}


def key_builder(name: str, builder_id: str, level: int) -> TestBuilder:
    """A builder that signs with its own freshly generated P-256 key."""
    return TestBuilder(name, builder_id, level, ec.generate_private_key(ec.SECP256R1()))


def keyless_builder(
    sigstore: TestSigstore, builder_id: str, level: int, *, issuer: str, trust_root: str
) -> TestBuilder:
    """A builder that signs keyless: a certificate from ``sigstore`` for ``builder_id``."""
    leaf = sigstore.issue(subject=builder_id, issuer=issuer)
    return TestBuilder(
        name=f"{trust_root}-builder",
        builder_id=builder_id,
        level=level,
        signer=leaf,
        sigstore=sigstore,
        issuer=issuer,
        trust_root=trust_root,
    )


def _subjects(name: str, digests: Sequence[str]) -> list[dict[str, Any]]:
    return [{"name": name, "digest": {"sha256": d.split(":", 1)[1]}} for d in digests]


def _statement(
    statement_type: str, predicate_type: str, subjects: list[dict[str, Any]], predicate: Any
) -> bytes:
    doc = {
        "_type": statement_type,
        "subject": subjects,
        "predicateType": predicate_type,
        "predicate": predicate,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _dependency_digest(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()


def slsa_v1(
    builder_id: str,
    digests: Sequence[str],
    *,
    name: str,
    source: SourceSpec = SourceSpec(),
    dependencies: Sequence[str] = (),
) -> bytes:
    """An in-toto v1 Statement with SLSA provenance v1 (``externalParameters.source`` names the
    source; ``resolvedDependencies`` lists the source and ``dependencies``)."""
    resolved = [
        {
            "uri": f"git+{source.repository}@{source.ref}",
            "digest": {"gitCommit": source.commit},
        },
        *({"uri": uri, "digest": {"sha256": _dependency_digest(uri)}} for uri in dependencies),
    ]
    predicate = {
        "buildDefinition": {
            "buildType": "https://reprogate.test/build/container@v1",
            "externalParameters": {
                "source": {
                    "uri": f"git+{source.repository}@{source.ref}",
                    "digest": {"gitCommit": source.commit},
                },
            },
            "resolvedDependencies": resolved,
        },
        "runDetails": {
            "builder": {"id": builder_id},
            "metadata": {
                "invocationId": f"{builder_id}/runs/1",
                "startedOn": "2026-01-02T03:04:05Z",
                "finishedOn": "2026-01-02T03:14:05Z",
            },
        },
    }
    return _statement(
        STATEMENT_V1, "https://slsa.dev/provenance/v1", _subjects(name, digests), predicate
    )


def slsa_v02(
    builder_id: str,
    digests: Sequence[str],
    *,
    name: str,
    source: SourceSpec = SourceSpec(),
    dependencies: Sequence[str] = (),
    reproducible: bool = False,
) -> bytes:
    """An in-toto v0.1 Statement with SLSA provenance v0.2 (source in
    ``invocation.configSource``, as slsa-github-generator writes it)."""
    materials = [
        {"uri": f"git+{source.repository}@{source.ref}", "digest": {"sha1": source.commit}},
        *({"uri": uri, "digest": {"sha256": _dependency_digest(uri)}} for uri in dependencies),
    ]
    predicate = {
        "builder": {"id": builder_id},
        "buildType": "https://reprogate.test/build/container@v0.2",
        "invocation": {
            "configSource": {
                "uri": f"git+{source.repository}@{source.ref}",
                "digest": {"sha1": source.commit},
                "entryPoint": ".ci/build.yml",
            },
            "parameters": {},
        },
        "metadata": {
            "buildStartedOn": "2026-01-02T03:04:05Z",
            "buildFinishedOn": "2026-01-02T03:14:05Z",
            "completeness": {"parameters": True, "environment": False, "materials": True},
            "reproducible": reproducible,
        },
        "materials": materials,
    }
    return _statement(
        STATEMENT_V01, "https://slsa.dev/provenance/v0.2", _subjects(name, digests), predicate
    )


def vsa_v1(
    image_ref: str,
    digest: str,
    *,
    verifier_id: str,
    levels: Sequence[str],
    result: Literal["PASSED", "FAILED"] = "PASSED",
) -> bytes:
    """An in-toto v1 Statement with a VSA v1 predicate about ``image_ref`` (its subject is
    ``digest``)."""
    predicate = {
        "verifier": {"id": verifier_id},
        "timeVerified": "2026-01-03T00:00:00Z",
        "resourceUri": image_ref,
        "policy": {"uri": "https://reprogate.test/policies/reproduced"},
        "verificationResult": result,
        "verifiedLevels": list(levels),
    }
    name = image_ref.split("@", 1)[0]
    return _statement(
        STATEMENT_V1,
        "https://slsa.dev/verification_summary/v1",
        _subjects(name, [digest]),
        predicate,
    )


def push_attestations(
    reg: RunningRegistry, repo: str, digest: str, layers: Sequence[SignedLayer]
) -> str:
    """Store ``layers`` as the image's cosign attestation manifest (``sha256-<hex>.att``)."""
    return push_cosign_manifest(
        reg, repo, digest, "att", [(x.payload, x.media_type, x.annotations) for x in layers]
    )


def trust_root_document(name: str, sigstore: TestSigstore) -> dict[str, Any]:
    """A ``kind: TrustRoot`` document publishing ``sigstore``'s trusted root."""
    return {
        "apiVersion": API_VERSION,
        "kind": "TrustRoot",
        "metadata": {"name": name},
        "spec": {"trustedRootJSON": sigstore.trusted_root_json().decode()},
    }


def write_documents(path: Path, documents: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``documents`` as one multi-document YAML file (creating its directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all([dict(d) for d in documents], sort_keys=False))
    return path

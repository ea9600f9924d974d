"""Keyless signatures end to end through ``reprogate check``, in every evidence storage format.

A private Sigstore instance (own Fulcio-like CA, CT log, Rekor key and TSA, from
``tests.support.sigstore_pki``) is handed to the policies as a ``TrustRoot`` document; keyless
authorities name it with ``trustRoot:``. Every image is checked by the real CLI entry point
(``controller.cli.main``), which discovers evidence over HTTPS and verifies it offline.

Storage formats:
- ``legacy``: cosign ``.sig`` / ``.att`` tags in the real registry (Debian docker-registry),
  Rekor SET in ``dev.sigstore.cosign/bundle``.
- ``referrers-api``: Sigstore bundles attached as OCI 1.1 referrers, served by the
  recorded-protocol stand-in (``tests.support.referrers_registry``) because distribution 2.8
  has no referrers API.
- ``referrers-tag``: the same bundles in the real registry under the referrers tag schema
  (``sha256-<hex>`` index of referrer descriptors with ``artifactType``).

Image signatures in bundles are cosign v3's DSSE statements of predicate
``https://sigstore.dev/cosign/sign/v1``; attestations are SLSA provenance / SPDX statements.
v0.3 bundles carry a real RFC 6962 inclusion proof and a checkpoint signed by the log key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from controller.cli import main
from controller.evidence.model import ANN_BUNDLE, ANN_SIGNATURE
from controller.oci.manifest import OCI_INDEX, OCI_MANIFEST, Descriptor
from tests.support.cosign_sign import (
    SignedLayer,
    attest,
    in_toto_statement,
    public_pem,
    sign_image,
    simple_signing_payload,
)
from tests.support.referrers_registry import (
    EMPTY_CONFIG,
    OCI_EMPTY,
    ReferrersRegistry,
    RunningStandIn,
    referrer_manifest,
    referrers_index,
    running_referrers_registry,
)
from tests.support.registry import (
    RunningRegistry,
    push_blob,
    push_cosign_manifest,
    push_manifest,
    push_random_image,
)
from tests.support.sigstore_bundle import (
    BUNDLE_V01,
    BUNDLE_V03,
    dsse_bundle,
    signature_statement,
)
from tests.support.sigstore_pki import (
    DEFAULT_ISSUER,
    DEFAULT_SUBJECT,
    FulcioLeaf,
    LogKeyPair,
    TestSigstore,
    dsse_body,
    hashedrekord_body,
)
from tests.support.tls import TlsFiles, client_ssl_context

Format = Literal["legacy", "referrers-api", "referrers-tag"]
FORMATS: tuple[Format, ...] = ("legacy", "referrers-api", "referrers-tag")

TRUST_ROOT = "corp-sigstore"
OTHER_SUBJECT = "https://github.com/acme/other/.github/workflows/release.yml@refs/tags/v1.0.0"
PROVENANCE = "https://slsa.dev/provenance/v1"
SPDX = "https://spdx.dev/Document"


# --------------------------------------------------------------------------- PKI


@dataclass(frozen=True)
class Pki:
    """The trusted private instance, a second one nobody trusts, and a release key."""

    sigstore: TestSigstore
    foreign: TestSigstore
    release_key: ec.EllipticCurvePrivateKey

    def leaf(self, subject: str = DEFAULT_SUBJECT) -> FulcioLeaf:
        return self.sigstore.issue(subject=subject)

    def expired_leaf(self) -> FulcioLeaf:
        """A certificate whose ten minutes ended two days ago."""
        return self.sigstore.issue(not_before=self.sigstore.now - timedelta(days=2))


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki(
        sigstore=TestSigstore(name=TRUST_ROOT),
        foreign=TestSigstore(name="foreign-sigstore"),
        release_key=ec.generate_private_key(ec.SECP256R1()),
    )


# --------------------------------------------------------------------------- evidence builders


def _signature_of(layer: SignedLayer) -> bytes:
    return base64.b64decode(layer.annotations[ANN_SIGNATURE])


def legacy_signature(pki: Pki, case: str, digest: str) -> SignedLayer:
    """A cosign ``.sig`` layer for ``digest`` made keyless, broken as ``case`` says."""
    ss = pki.sigstore
    payload = simple_signing_payload(digest)
    if case == "valid":
        return sign_image(pki.leaf(), digest, sigstore=ss)
    if case == "expired-no-time":
        return sign_image(pki.expired_leaf(), digest)  # no SET, no timestamp
    if case == "expired-at-log-time":
        leaf = pki.expired_leaf()
        return sign_image(
            leaf, digest, sigstore=ss, integrated_time=leaf.not_after + timedelta(hours=1)
        )
    if case == "wrong-identity":
        return sign_image(pki.leaf(OTHER_SUBJECT), digest, sigstore=ss)
    if case == "untrusted-ca":
        return sign_image(pki.foreign.issue(), digest, sigstore=ss)
    if case == "set-other-key":
        leaf = pki.leaf()
        layer = sign_image(leaf, digest)
        body = hashedrekord_body(
            _signature_of(layer), leaf.cert_pem, hashlib.sha256(payload).hexdigest()
        )
        # Signed by a key the trust root does not hold, yet claiming the trusted log's id.
        forged = ss.rekor_set(body, signing_log=LogKeyPair.generate(), log_id=ss.rekor.log_id)
        return layer._replace(annotations={**layer.annotations, ANN_BUNDLE: forged.decode()})
    if case == "entry-other-signature":
        leaf = pki.leaf()
        other_sig = leaf.sign(simple_signing_payload(digest, reference="registry.test/other"))
        body = hashedrekord_body(other_sig, leaf.cert_pem, hashlib.sha256(payload).hexdigest())
        return sign_image(leaf, digest, sigstore=ss, set_body=body)
    raise ValueError(case)


def bundle_signature(pki: Pki, case: str, digest: str) -> tuple[bytes, str]:
    """A Sigstore bundle signing ``digest`` (cosign v3 shape) and its media type."""
    ss = pki.sigstore
    statement = signature_statement(digest)
    if case == "valid":
        return dsse_bundle(ss, pki.leaf(), statement), BUNDLE_V03
    if case == "valid-v01":
        return dsse_bundle(ss, pki.leaf(), statement, version="0.1"), BUNDLE_V01
    if case == "expired-no-time":
        return dsse_bundle(ss, pki.expired_leaf(), statement, version="0.1", tlog=False), BUNDLE_V01
    if case == "wrong-identity":
        return dsse_bundle(ss, pki.leaf(OTHER_SUBJECT), statement), BUNDLE_V03
    if case == "untrusted-ca":
        return dsse_bundle(ss, pki.foreign.issue(), statement), BUNDLE_V03
    if case == "set-other-key":
        return dsse_bundle(
            ss, pki.leaf(), statement, set_signing_log=LogKeyPair.generate()
        ), BUNDLE_V03
    if case == "set-other-key-v01":
        bundle = dsse_bundle(
            ss, pki.leaf(), statement, version="0.1", set_signing_log=LogKeyPair.generate()
        )
        return bundle, BUNDLE_V01
    if case == "entry-other-signature":
        leaf = pki.leaf()
        other_statement = signature_statement(digest, name="registry.test/other")
        body = dsse_body(b"{}", other_statement, [leaf.sign(other_statement)], leaf.cert_pem)
        return dsse_bundle(ss, leaf, statement, entry_body=body), BUNDLE_V03
    if case == "other-digest":
        other_digest = "sha256:" + hashlib.sha256(b"another image").hexdigest()
        return dsse_bundle(ss, pki.leaf(), signature_statement(other_digest)), BUNDLE_V03
    if case == "corrupt-inclusion-proof":
        doc = json.loads(dsse_bundle(ss, pki.leaf(), statement))
        proof = doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
        proof["hashes"][0] = base64.b64encode(bytes(32)).decode()
        return json.dumps(doc).encode(), BUNDLE_V03
    raise ValueError(case)


ATTESTATIONS = {
    # case: (signing subject, predicate type)
    "valid": (DEFAULT_SUBJECT, PROVENANCE),
    "unlisted-authority": (OTHER_SUBJECT, PROVENANCE),
    "other-type": (DEFAULT_SUBJECT, SPDX),
}


def attestation_statement(case: str, digest: str) -> tuple[str, bytes]:
    subject, predicate_type = ATTESTATIONS[case]
    return subject, in_toto_statement(
        [digest], predicate_type=predicate_type, predicate={"builder": {"id": "test"}}
    )


# --------------------------------------------------------------------------- publishing


def _manifest_size(reg: RunningRegistry, repo: str, digest: str) -> int:
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPSHandler(context=client_ssl_context(reg.ca_file)),
    )
    req = urllib.request.Request(f"{reg.url}/v2/{repo}/manifests/{digest}", method="HEAD")
    req.add_header("Accept", OCI_MANIFEST)
    with opener.open(req, timeout=30) as resp:
        return int(resp.headers["Content-Length"])


def push_referrers_tag(
    reg: RunningRegistry, repo: str, subject: Descriptor, bundles: list[tuple[bytes, str]]
) -> str:
    """Attach ``bundles`` to ``subject`` the way a client does for a registry without the
    referrers API: push each referrer manifest, then the ``sha256-<hex>`` tag index."""
    push_blob(reg, repo, EMPTY_CONFIG, OCI_EMPTY)
    entries: list[Descriptor] = []
    for payload, media_type in bundles:
        layer = push_blob(reg, repo, payload, media_type)
        raw = referrer_manifest(subject, layer, media_type)
        digest = push_manifest(
            reg, repo, "sha256:" + hashlib.sha256(raw).hexdigest(), raw, OCI_MANIFEST
        )
        entries.append(Descriptor(OCI_MANIFEST, digest, len(raw), artifact_type=media_type))
    tag = subject.digest.replace(":", "-")
    return push_manifest(reg, repo, tag, referrers_index(entries), OCI_INDEX)


@dataclass
class Scene:
    """Every pushed image by (policy area, format, case), and the policy directory."""

    registry: RunningRegistry
    stand_in: RunningStandIn
    policies: Path
    refs: dict[tuple[str, Format, str], str]

    def ref(self, area: str, fmt: Format, case: str) -> str:
        return self.refs[(area, fmt, case)]


class Publisher:
    """Pushes one image per case and its evidence in the requested storage format."""

    def __init__(self, reg: RunningRegistry, stand_in: RunningStandIn) -> None:
        self.reg = reg
        self.stand_in = stand_in
        self.refs: dict[tuple[str, Format, str], str] = {}

    def image(self, area: str, fmt: Format, case: str) -> tuple[str, Descriptor]:
        repo = f"keyless/{area}/{fmt}-{case}"
        if fmt == "referrers-api":
            desc = self.stand_in.content.put_image(repo, f"{area} {case}".encode())
            self.refs[(area, fmt, case)] = self.stand_in.ref(repo, desc.digest)
            return repo, desc
        digest = push_random_image(self.reg, repo, None, layers=1)
        self.refs[(area, fmt, case)] = self.reg.ref(repo, digest=digest)
        size = _manifest_size(self.reg, repo, digest)
        return repo, Descriptor(OCI_MANIFEST, digest, size)

    def legacy(self, repo: str, digest: str, suffix: str, layers: list[SignedLayer]) -> None:
        push_cosign_manifest(
            self.reg,
            repo,
            digest,
            suffix,
            [(s.payload, s.media_type, s.annotations) for s in layers],
        )

    def bundles(
        self, fmt: Format, repo: str, subject: Descriptor, bundles: list[tuple[bytes, str]]
    ) -> None:
        if fmt == "referrers-api":
            for payload, media_type in bundles:
                self.stand_in.content.attach(repo, subject, payload, media_type)
        else:
            push_referrers_tag(self.reg, repo, subject, bundles)


SIGNATURE_CASES: dict[Format, tuple[str, ...]] = {
    "legacy": (
        "valid",
        "expired-no-time",
        "expired-at-log-time",
        "wrong-identity",
        "untrusted-ca",
        "set-other-key",
        "entry-other-signature",
    ),
    "referrers-api": (
        "valid",
        "valid-v01",
        "other-digest",
        "wrong-identity",
        "set-other-key",
        "corrupt-inclusion-proof",
    ),
    "referrers-tag": (
        "valid",
        "valid-v01",
        "expired-no-time",
        "untrusted-ca",
        "entry-other-signature",
        "set-other-key-v01",
    ),
}


def _yaml_block(text: str, indent: int) -> str:
    pad = " " * indent
    return "\n".join(pad + line for line in text.strip().splitlines())


def write_policies(directory: Path, hosts: list[str], pki: Pki) -> Path:
    """A TrustRoot for the private instance and three ImagePolicies:
    ``keyless-signed`` (one keyless signature), ``keyless-attested`` (SLSA provenance by ``ci``;
    ``other-team`` is an authority of the policy but not of the attestation) and
    ``two-of-two`` (a key and a keyless signature)."""
    directory.mkdir(parents=True, exist_ok=True)

    def images(area: str) -> str:
        return json.dumps([f"{h}/keyless/{area}/**" for h in hosts])

    keyless = (
        f"keyless: {{issuer: {DEFAULT_ISSUER}, subject: '{{subject}}', trustRoot: {TRUST_ROOT}}}"
    )
    ci = keyless.replace("{subject}", DEFAULT_SUBJECT)
    other = keyless.replace("{subject}", OTHER_SUBJECT)
    root_json = pki.sigstore.trusted_root_json().decode()
    (directory / "keyless.yaml").write_text(
        f"""apiVersion: reprogate.dev/v1alpha1
kind: TrustRoot
metadata: {{name: {TRUST_ROOT}}}
spec:
  trustedRootJSON: |
{_yaml_block(root_json, 4)}
---
apiVersion: reprogate.dev/v1alpha1
kind: ImagePolicy
metadata: {{name: keyless-signed}}
spec:
  match: {{images: {images("sig")}}}
  authorities:
    - name: ci
      {ci}
  signatures: {{threshold: 1}}
---
apiVersion: reprogate.dev/v1alpha1
kind: ImagePolicy
metadata: {{name: keyless-attested}}
spec:
  match: {{images: {images("att")}}}
  authorities:
    - name: ci
      {ci}
    - name: other-team
      {other}
  signatures: {{threshold: 0}}
  attestations:
    - name: provenance
      predicateType: {PROVENANCE}
      authorities: [ci]
---
apiVersion: reprogate.dev/v1alpha1
kind: ImagePolicy
metadata: {{name: two-of-two}}
spec:
  match: {{images: {images("kofn")}}}
  authorities:
    - name: release-key
      key:
        pem: |
{_yaml_block(public_pem(pki.release_key).decode(), 10)}
    - name: ci
      {ci}
  signatures: {{threshold: 2}}
"""
    )
    return directory


@pytest.fixture(scope="module")
def scene(
    registry: RunningRegistry,
    tls_files: TlsFiles,
    pki: Pki,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Scene]:
    with running_referrers_registry(tls_files, ReferrersRegistry()) as stand_in:
        pub = Publisher(registry, stand_in)
        for fmt, cases in SIGNATURE_CASES.items():
            for case in cases:
                repo, desc = pub.image("sig", fmt, case)
                if fmt == "legacy":
                    pub.legacy(repo, desc.digest, "sig", [legacy_signature(pki, case, desc.digest)])
                else:
                    pub.bundles(fmt, repo, desc, [bundle_signature(pki, case, desc.digest)])
        for fmt in FORMATS:
            for case in ATTESTATIONS:
                repo, desc = pub.image("att", fmt, case)
                subject, statement = attestation_statement(case, desc.digest)
                leaf = pki.leaf(subject)
                if fmt == "legacy":
                    layer = attest(leaf, statement, sigstore=pki.sigstore)
                    pub.legacy(repo, desc.digest, "att", [layer])
                else:
                    version: Literal["0.1", "0.3"] = "0.3" if fmt == "referrers-api" else "0.1"
                    bundle = dsse_bundle(pki.sigstore, leaf, statement, version=version)
                    media_type = BUNDLE_V03 if version == "0.3" else BUNDLE_V01
                    pub.bundles(fmt, repo, desc, [(bundle, media_type)])
        # k-of-n: the key signature always as a legacy .sig; the keyless one present or not.
        for case in ("both", "key-only", "key-and-bundle"):
            repo, desc = pub.image("kofn", "legacy", case)
            layers = [sign_image(pki.release_key, desc.digest)]
            if case == "both":
                layers.append(sign_image(pki.leaf(), desc.digest, sigstore=pki.sigstore))
            pub.legacy(repo, desc.digest, "sig", layers)
            if case == "key-and-bundle":
                statement = signature_statement(desc.digest)
                bundle = dsse_bundle(pki.sigstore, pki.leaf(), statement)
                push_referrers_tag(registry, repo, desc, [(bundle, BUNDLE_V03)])
        policies = write_policies(
            tmp_path_factory.mktemp("keyless-policies"), [registry.host, stand_in.host], pki
        )
        yield Scene(registry, stand_in, policies, pub.refs)


# --------------------------------------------------------------------------- running check


@dataclass(frozen=True)
class CheckRun:
    code: int
    out: str
    err: str


Runner = Callable[[str], CheckRun]


@pytest.fixture
def check(scene: Scene, capsys: pytest.CaptureFixture[str]) -> Runner:
    """Run ``reprogate check IMAGE`` in-process against the scene's policies."""

    def run(image: str) -> CheckRun:
        capsys.readouterr()
        code = main(
            [
                "check",
                "--policies",
                str(scene.policies),
                "--registry-ca",
                str(scene.registry.ca_file),
                image,
            ]
        )
        captured = capsys.readouterr()
        return CheckRun(code, captured.out, captured.err)

    return run


def _assert_denied(run: CheckRun, *fragments: str) -> None:
    assert run.code == 1, run.out + run.err
    assert "DENY" in run.out, run.out
    for fragment in fragments:
        assert fragment in run.out, f"{fragment!r} not in:\n{run.out}"


def _assert_admitted(run: CheckRun) -> None:
    assert run.code == 0, run.out + run.err
    assert run.out.startswith("ADMIT"), run.out


# --------------------------------------------------------------------------- signatures


@pytest.mark.parametrize("fmt", FORMATS)
def test_valid_keyless_signature_is_admitted(fmt: Format, scene: Scene, check: Runner) -> None:
    run = check(scene.ref("sig", fmt, "valid"))
    _assert_admitted(run)
    assert "ok   signatures: signed by 1 of the required 1 (ci)" in run.out


@pytest.mark.parametrize("fmt", ["referrers-api", "referrers-tag"])
def test_v01_bundle_with_set_only_is_admitted(fmt: Format, scene: Scene, check: Runner) -> None:
    _assert_admitted(check(scene.ref("sig", fmt, "valid-v01")))


def test_referrers_api_is_what_found_the_bundle(scene: Scene, check: Runner) -> None:
    ref = scene.ref("sig", "referrers-api", "valid")
    digest = ref.rsplit("@", 1)[1]
    _assert_admitted(check(ref))
    answered = scene.stand_in.content.requests_to(f"/referrers/{digest}")
    assert answered and all(r.status == 200 for r in answered), answered
    # the bundle came from the referrer, not from a tag fallback
    tag_index = f"/manifests/{digest.replace(':', '-')}"
    assert not [
        r for r in scene.stand_in.content.requests_to(tag_index) if r.path.endswith(tag_index)
    ]


def test_referrers_tag_is_used_on_a_registry_without_the_api(scene: Scene, check: Runner) -> None:
    ref = scene.ref("sig", "referrers-tag", "valid")
    _assert_admitted(check(ref))
    # Debian's docker-registry has no referrers API, and the image has no .sig tag: the
    # signature can only have come from the sha256-<hex> referrers tag index.
    name, digest = ref.split("/", 1)[1].rsplit("@", 1)
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPSHandler(context=client_ssl_context(scene.registry.ca_file)),
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open(f"{scene.registry.url}/v2/{name}/referrers/{digest}", timeout=30)
    assert err.value.code == 404
    with pytest.raises(urllib.error.HTTPError):
        opener.open(
            f"{scene.registry.url}/v2/{name}/manifests/{digest.replace(':', '-')}.sig",
            timeout=30,
        )


@pytest.mark.parametrize(
    ("fmt", "case", "fragments"),
    [
        (
            "legacy",
            "expired-no-time",
            ("no verified signing time", "authority 'ci' needs a Rekor SET"),
        ),
        (
            "referrers-tag",
            "expired-no-time",
            ("requires a transparency log entry", "no verified time for its certificate"),
        ),
        ("legacy", "expired-at-log-time", ("certificate expired at", "log time")),
        ("legacy", "wrong-identity", (f"certificate subject '{OTHER_SUBJECT}' does not match",)),
        (
            "referrers-api",
            "wrong-identity",
            (f"certificate subject '{OTHER_SUBJECT}' does not match expected subject",),
        ),
        ("legacy", "untrusted-ca", ("certificate not issued by a trusted Fulcio CA",)),
        (
            "referrers-tag",
            "untrusted-ca",
            (f"certificate not issued by a trusted Fulcio CA of trust root '{TRUST_ROOT}'",),
        ),
        ("legacy", "set-other-key", ("Rekor SET rejected", "SET does not verify with log key")),
        ("referrers-api", "set-other-key", ("SET: invalid inclusion promise",)),
        ("referrers-tag", "set-other-key-v01", ("SET does not verify with log key",)),
        (
            "legacy",
            "entry-other-signature",
            ("does not belong to this signature", "records a different signature"),
        ),
        ("referrers-tag", "entry-other-signature", ("log entry payload hash does not match",)),
        ("referrers-api", "other-digest", ("statement subjects name", "not the image")),
        ("referrers-api", "corrupt-inclusion-proof", ("inclusion proof",)),
    ],
)
def test_broken_keyless_signature_is_denied_with_the_reason(
    fmt: Format, case: str, fragments: tuple[str, ...], scene: Scene, check: Runner
) -> None:
    ref = scene.ref("sig", fmt, case)
    run = check(ref)
    _assert_denied(run, "FAIL signatures: no valid signature", "missing ci", *fragments)
    assert ref in run.out


def test_other_digest_names_the_image_digest(scene: Scene, check: Runner) -> None:
    ref = scene.ref("sig", "referrers-api", "other-digest")
    run = check(ref)
    _assert_denied(run, ref.rsplit("@", 1)[1])


def test_every_format_has_its_happy_path_and_two_failures() -> None:
    # The brief's coverage rule, kept true as cases change.
    for fmt, cases in SIGNATURE_CASES.items():
        assert "valid" in cases
        assert len([c for c in cases if not c.startswith("valid")]) >= 2, fmt


# --------------------------------------------------------------------------- attestations


@pytest.mark.parametrize("fmt", FORMATS)
def test_required_attestation_signed_by_listed_authority_is_admitted(
    fmt: Format, scene: Scene, check: Runner
) -> None:
    run = check(scene.ref("att", fmt, "valid"))
    _assert_admitted(run)
    assert f"ok   attestation:provenance: {PROVENANCE} statement signed by {DEFAULT_SUBJECT}" in (
        run.out
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_attestation_signed_by_unlisted_authority_is_denied(
    fmt: Format, scene: Scene, check: Runner
) -> None:
    run = check(scene.ref("att", fmt, "unlisted-authority"))
    _assert_denied(
        run,
        f"FAIL attestation:provenance: no verified {PROVENANCE} attestation signed by ci",
        f"certificate subject '{OTHER_SUBJECT}' does not match expected subject "
        f"'{DEFAULT_SUBJECT}'",
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_only_another_predicate_type_is_denied_naming_it(
    fmt: Format, scene: Scene, check: Runner
) -> None:
    run = check(scene.ref("att", fmt, "other-type"))
    _assert_denied(
        run,
        f"FAIL attestation:provenance: no verified {PROVENANCE} attestation signed by ci",
        f"(found only {SPDX})",
    )


# --------------------------------------------------------------------------- k-of-n


def test_key_and_keyless_signatures_meet_threshold_two(scene: Scene, check: Runner) -> None:
    run = check(scene.ref("kofn", "legacy", "both"))
    _assert_admitted(run)
    assert "signed by 2 of the required 2 (ci, release-key)" in run.out


def test_key_signature_and_keyless_bundle_meet_threshold_two(scene: Scene, check: Runner) -> None:
    # Distinct authorities count across storage formats: .sig tag plus referrers-tag bundle.
    run = check(scene.ref("kofn", "legacy", "key-and-bundle"))
    _assert_admitted(run)
    assert "signed by 2 of the required 2 (ci, release-key)" in run.out


def test_one_of_two_signatures_is_denied_naming_the_missing_authority(
    scene: Scene, check: Runner
) -> None:
    run = check(scene.ref("kofn", "legacy", "key-only"))
    _assert_denied(
        run,
        "FAIL signatures: signed by 1 (release-key); policy requires 2 of [release-key, ci], "
        "missing ci",
    )

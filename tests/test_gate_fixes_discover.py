"""Discovery keeps the good evidence when one item is bad, within a byte budget (gate review
H2, H3).

These tests use a STAND-IN registry client (``FakeRegistry`` below), not a real registry: a
small fake implementing the ``RegistryClient`` methods discovery uses (``get_manifest``,
``get_referrers``, ``get_blob`` and ``settings``), holding manifests and blobs in memory and
enforcing the real client's blob contract (a declared size over the cap is ``too_large``,
content of another length or digest is ``invalid``). Failures are injected per item, which a
real registry would make hard to stage; the client itself is tested against a real registry
in test_oci_client.py.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping

import pytest

from controller.evidence.discover import DiscoveryLimits, discover_evidence, legacy_tag
from controller.evidence.model import ANN_CERTIFICATE, ANN_SIGNATURE, EvidenceSet
from controller.oci.client import RegistryClient, RegistrySettings
from controller.oci.errors import RegistryError
from controller.oci.manifest import Descriptor, Manifest
from controller.oci.reference import ImageRef

DIGEST = "sha256:" + "ab" * 32
IMAGE = ImageRef("registry.test", "acme/app", None, DIGEST)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SIG_MEDIA = "application/vnd.dev.cosign.simplesigning.v1+json"
ATT_MEDIA = "application/vnd.dsse.envelope.v1+json"
BUNDLE_MEDIA = "application/vnd.dev.sigstore.bundle.v0.3+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _manifest(
    layers: list[Descriptor] = (),  # type: ignore[assignment]
    *,
    media_type: str = OCI_MANIFEST,
    manifests: list[Descriptor] = (),  # type: ignore[assignment]
    subject: str | None = DIGEST,
) -> Manifest:
    raw = repr((layers, manifests)).encode()
    return Manifest(
        digest=_digest(raw),
        media_type=media_type,
        raw=raw,
        config=None,
        layers=tuple(layers),
        manifests=tuple(manifests),
        annotations={},
        artifact_type=None,
        subject=Descriptor(OCI_MANIFEST, subject, 1) if subject else None,
    )


class FakeRegistry:
    """Stand-in for ``RegistryClient`` (see the module docstring)."""

    def __init__(self) -> None:
        self.settings = RegistrySettings()
        self.manifests: dict[str, Manifest | RegistryError] = {}
        self.referrers: list[Descriptor] | RegistryError | None = []
        self.blobs: dict[str, bytes | RegistryError] = {}
        self.fetched: list[tuple[str, int | None]] = []  # (digest, max_bytes) per get_blob

    def blob(
        self, data: bytes, media_type: str, annotations: Mapping[str, str] | None = None
    ) -> Descriptor:
        """Store ``data``; its descriptor."""
        desc = Descriptor(media_type, _digest(data), len(data), dict(annotations or {}))
        self.blobs[desc.digest] = data
        return desc

    def bundle_referrer(self, data: bytes) -> Descriptor:
        """A referrer manifest whose layer is the bundle ``data``; the referrer descriptor."""
        manifest = _manifest([self.blob(data, BUNDLE_MEDIA)])
        self.manifests[manifest.digest] = manifest
        return Descriptor(OCI_MANIFEST, manifest.digest, 100, artifact_type=BUNDLE_MEDIA)

    async def get_manifest(self, ref: ImageRef, reference: str) -> Manifest | None:
        found = self.manifests.get(reference)
        if isinstance(found, RegistryError):
            raise found
        return found

    async def get_referrers(self, ref: ImageRef, digest: str) -> list[Descriptor] | None:
        if isinstance(self.referrers, RegistryError):
            raise self.referrers
        return self.referrers

    async def get_blob(
        self, ref: ImageRef, descriptor: Descriptor, max_bytes: int | None = None
    ) -> bytes:
        self.fetched.append((descriptor.digest, max_bytes))
        cap = self.settings.max_blob_bytes if max_bytes is None else max_bytes
        if descriptor.size > cap:
            raise RegistryError("too_large", f"declares {descriptor.size} bytes, cap {cap}")
        found = self.blobs.get(descriptor.digest)
        if found is None:
            raise RegistryError("not_found", f"blob {descriptor.digest}: not found")
        if isinstance(found, RegistryError):
            raise found
        if len(found) != descriptor.size or _digest(found) != descriptor.digest:
            raise RegistryError("invalid", f"blob {descriptor.digest}: content does not match")
        return found


def _discover(fake: FakeRegistry, limits: DiscoveryLimits | None = None) -> EvidenceSet:
    client: RegistryClient = fake  # type: ignore[assignment]
    return asyncio.run(discover_evidence(client, IMAGE, limits))


def _with_sig(fake: FakeRegistry, *payloads: bytes) -> None:
    layers = [fake.blob(p, SIG_MEDIA, {ANN_SIGNATURE: "AA=="}) for p in payloads]
    fake.manifests[legacy_tag(DIGEST, "sig")] = _manifest(layers, subject=None)


def _with_att(fake: FakeRegistry, *layers: Descriptor) -> None:
    fake.manifests[legacy_tag(DIGEST, "att")] = _manifest(list(layers), subject=None)


# --- H2: one bad item is a problem, not a failure ------------------------------------------


def test_referrer_layer_declaring_a_gigabyte_is_skipped_and_the_signature_kept() -> None:
    """The reviewer's case (discover_poison.py)."""
    fake = FakeRegistry()
    _with_sig(fake, b"signature payload")
    huge = Descriptor(BUNDLE_MEDIA, "sha256:" + "33" * 32, 10**9)
    referrer = _manifest([huge])
    fake.manifests[referrer.digest] = referrer
    fake.referrers = [Descriptor(OCI_MANIFEST, referrer.digest, 100, artifact_type=BUNDLE_MEDIA)]
    evidence = _discover(fake)
    assert [layer.payload for layer in evidence.signatures] == [b"signature payload"]
    assert evidence.bundles == ()
    (problem,) = evidence.problems
    assert referrer.digest in problem and "1000000000 bytes" in problem
    assert huge.digest not in [d for d, _ in fake.fetched]  # refused before fetching


@pytest.mark.parametrize(
    "failure",
    [None, RegistryError("invalid", "manifest is not JSON"), RegistryError("too_large", "big")],
    ids=["missing", "malformed", "too-large"],
)
def test_unreadable_referrer_manifest_is_a_problem(failure: RegistryError | None) -> None:
    fake = FakeRegistry()
    good = fake.bundle_referrer(b'{"bundle": "good"}')
    bad = Descriptor(OCI_MANIFEST, "sha256:" + "44" * 32, 100, artifact_type=BUNDLE_MEDIA)
    if failure is not None:
        fake.manifests[bad.digest] = failure
    fake.referrers = [bad, good]
    evidence = _discover(fake)
    assert [b.raw for b in evidence.bundles] == [b'{"bundle": "good"}']
    (problem,) = evidence.problems
    assert f"referrer {bad.digest} (referrers API): skipped" in problem


def test_blob_whose_digest_does_not_match_is_a_problem() -> None:
    fake = FakeRegistry()
    _with_sig(fake, b"signature payload")
    att = fake.blob(b"envelope", ATT_MEDIA)
    fake.blobs[att.digest] = b"tampered"  # same length, other content
    _with_att(fake, att)
    evidence = _discover(fake)
    assert len(evidence.signatures) == 1 and evidence.attestations == ()
    (problem,) = evidence.problems
    assert "sha256-" + "ab" * 32 + ".att layer 0: skipped, invalid" in problem


def test_malformed_legacy_manifest_and_index_are_problems() -> None:
    fake = FakeRegistry()
    fake.manifests[legacy_tag(DIGEST, "sig")] = RegistryError("invalid", "not a manifest")
    fake.manifests[legacy_tag(DIGEST, "att")] = _manifest(media_type=OCI_INDEX, subject=None)
    good = fake.bundle_referrer(b'{"bundle": 1}')
    fake.referrers = [good]
    evidence = _discover(fake)
    assert len(evidence.bundles) == 1
    assert len(evidence.problems) == 2
    assert any(".sig: skipped, invalid: not a manifest" in p for p in evidence.problems)
    assert any(".att: skipped, an image index" in p for p in evidence.problems)


def test_oversized_annotation_skips_only_that_layer() -> None:
    fake = FakeRegistry()
    big = fake.blob(b"p1", SIG_MEDIA, {ANN_SIGNATURE: "AA==", ANN_CERTIFICATE: "x" * 70_000})
    ok = fake.blob(b"p2", SIG_MEDIA, {ANN_SIGNATURE: "AA=="})
    fake.manifests[legacy_tag(DIGEST, "sig")] = _manifest([big, ok], subject=None)
    evidence = _discover(fake)
    assert [layer.payload for layer in evidence.signatures] == [b"p2"]
    (problem,) = evidence.problems
    assert ".sig layer 0: skipped, annotation dev.sigstore.cosign/certificate" in problem
    assert big.digest not in [d for d, _ in fake.fetched]


def test_unreadable_referrers_list_falls_back_to_the_referrers_tag() -> None:
    fake = FakeRegistry()
    fake.referrers = RegistryError("invalid", "referrers answer is not an index")
    good = fake.bundle_referrer(b'{"bundle": 2}')
    fake.manifests[legacy_tag(DIGEST, "")] = _manifest(
        media_type=OCI_INDEX, manifests=[good], subject=None
    )
    evidence = _discover(fake)
    assert [b.raw for b in evidence.bundles] == [b'{"bundle": 2}']
    assert "(referrers tag)" in evidence.bundles[0].source
    assert len(evidence.problems) == 1


@pytest.mark.parametrize("kind", ["timeout", "unreachable", "server", "unauthorized"])
@pytest.mark.parametrize("where", ["blob", "manifest", "referrers"])
def test_transport_failures_still_propagate(kind: str, where: str) -> None:
    """A registry we could not read must never look like "unsigned"."""
    fake = FakeRegistry()
    _with_sig(fake, b"signature payload")
    error = RegistryError(kind, "boom")  # type: ignore[arg-type]
    if where == "blob":
        fake.blobs[next(iter(fake.blobs))] = error
    elif where == "manifest":
        fake.manifests[legacy_tag(DIGEST, "att")] = error
    else:
        fake.referrers = error
    with pytest.raises(RegistryError) as raised:
        _discover(fake)
    assert raised.value.kind == kind


# --- H3: caps and the per-digest budget ----------------------------------------------------


def test_sig_layers_are_capped_at_256_kib() -> None:
    fake = FakeRegistry()
    _with_sig(fake, b"s" * (256 * 1024 + 1), b"small")
    evidence = _discover(fake)
    assert [layer.payload for layer in evidence.signatures] == [b"small"]
    (problem,) = evidence.problems
    assert "over the 262144-byte cap" in problem
    assert fake.fetched == [(_digest(b"small"), 256 * 1024)]


def test_att_layers_and_bundles_use_the_registry_blob_cap() -> None:
    fake = FakeRegistry()
    fake.settings = RegistrySettings(max_blob_bytes=1000)
    _with_att(fake, fake.blob(b"a" * 1001, ATT_MEDIA), fake.blob(b"a" * 999, ATT_MEDIA))
    fake.referrers = [fake.bundle_referrer(b"b" * 1001)]
    evidence = _discover(fake)
    assert [len(a.payload) for a in evidence.attestations] == [999]
    assert evidence.bundles == ()
    assert len(evidence.problems) == 2
    assert all("over the 1000-byte cap" in p for p in evidence.problems)


def test_total_budget_skips_what_does_not_fit_signatures_first() -> None:
    fake = FakeRegistry()
    _with_sig(fake, b"s" * 40)
    _with_att(fake, fake.blob(b"a" * 30, ATT_MEDIA), fake.blob(b"A" * 5, ATT_MEDIA))
    fake.referrers = [fake.bundle_referrer(b"b" * 30)]
    evidence = _discover(fake, DiscoveryLimits(max_total_bytes=99))
    # .sig (40) then the bundle (30) fit; the 30-byte .att layer would make 100 > 99; the 5-byte
    # one still fits: the budget skips items, it does not stop at the first that misses.
    assert [len(s.payload) for s in evidence.signatures] == [40]
    assert [len(b.raw) for b in evidence.bundles] == [30]
    assert [len(a.payload) for a in evidence.attestations] == [5]
    (problem,) = evidence.problems
    assert ".att layer 0: skipped, the evidence for this digest is over the 99-byte budget" in (
        problem
    )
    assert _digest(b"a" * 30) not in [d for d, _ in fake.fetched]


def test_default_budget_is_32_mib() -> None:
    limits = DiscoveryLimits()
    assert limits.max_total_bytes == 32 * 1024 * 1024
    assert limits.max_signature_bytes == 256 * 1024
    assert limits.max_blob_bytes is None  # the registry's max_blob_bytes (16 MiB default)
    assert RegistrySettings().max_blob_bytes == 16 * 1024 * 1024


def test_layer_and_referrer_counts_are_reported_when_capped() -> None:
    fake = FakeRegistry()
    _with_sig(fake, b"1", b"2", b"3")
    fake.referrers = [fake.bundle_referrer(bytes([65 + i])) for i in range(3)]
    evidence = _discover(fake, DiscoveryLimits(max_layers=2, max_referrers=2))
    assert len(evidence.signatures) == 2 and len(evidence.bundles) == 2
    assert any("3 layers; only the first 2 read" in p for p in evidence.problems)
    assert any("3 evidence referrers found; only 2 read" in p for p in evidence.problems)

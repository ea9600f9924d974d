"""in-toto v0.9 link verification on real rebuilderd links (Arch Linux, Debian) and on links
signed here with generated keys."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from controller.verify.authority import KeyAuthority
from controller.verify.errors import EvidenceFormatError, VerificationError
from controller.verify.link import MAX_LINK_BYTES, canonical_json, verify_link

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
LINKS = VECTORS / "rebuilderd-links"
ARCH_PKG = "filesystem-2025.10.12-1-any.pkg.tar.zst"
DEB_PKG = "librust-as-slice-dev_0.2.1-1+b2_amd64.deb"


def vector(name: str) -> bytes:
    path = LINKS / name
    if not path.is_file():
        pytest.skip(f"rebuilderd link vectors not present at {LINKS}")
    return path.read_bytes()


def arch_key() -> KeyAuthority:
    return KeyAuthority("arch-rebuilderd", vector("reproducible-archlinux.pub"))


def debian_key() -> KeyAuthority:
    return KeyAuthority("debian-rebuilderd", vector("reproduce-debian-net-amd64.pub"))


def test_arch_link_verifies_with_arch_key() -> None:
    link = verify_link(vector("filesystem-2025.10.12-1-any.in-toto.link"), [arch_key()])
    assert link.signer == "arch-rebuilderd"
    assert link.name == f"rebuild {ARCH_PKG}"
    assert link.product_sha256() == {ARCH_PKG: hashlib.sha256(vector(ARCH_PKG)).hexdigest()}
    assert len(link.key_id) == 64


def test_invalid_arch_link_does_not_verify() -> None:
    with pytest.raises(VerificationError) as info:
        verify_link(vector("filesystem-2025.10.12-1-any.INVALID.in-toto.link"), [arch_key()])
    assert "arch-rebuilderd" in str(info.value)


def test_debian_link_verifies_with_debian_key_only() -> None:
    raw = vector(f"{DEB_PKG.removesuffix('.deb')}.in-toto.link")
    link = verify_link(raw, [arch_key(), debian_key()])
    assert link.signer == "debian-rebuilderd"
    assert link.product_sha256() == {DEB_PKG: hashlib.sha256(vector(DEB_PKG)).hexdigest()}
    assert set(link.materials) == {"rust-as-slice_0.2.1-1+b2_amd64.buildinfo"}
    with pytest.raises(VerificationError):
        verify_link(raw, [arch_key()])


def test_arch_link_does_not_verify_with_debian_key() -> None:
    with pytest.raises(VerificationError):
        verify_link(vector("filesystem-2025.10.12-1-any.in-toto.link"), [debian_key()])


# --- links signed here --------------------------------------------------------------------


def pem_of(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def signed_link(signed: dict[str, Any], key: ed25519.Ed25519PrivateKey) -> bytes:
    sig = key.sign(canonical_json(signed)).hex()
    return json.dumps({"signed": signed, "signatures": [{"keyid": "x", "sig": sig}]}).encode()


SIGNED: dict[str, Any] = {
    "_type": "link",
    "name": "rebuild café\nline",
    "materials": {},
    "products": {"app.tar": {"sha256": "AB" * 32}},
    "environment": None,
    "byproducts": {"return-value": 0, "stdout": 'quote " and \\ back'},
    "command": ["make", "-j2"],
}


def test_canonical_json_matches_securesystemslib_rules() -> None:
    assert canonical_json({"b": [1, True, None], "a": 'é\n"\\'}) == (
        '{"a":"é\n\\"\\\\","b":[1,true,null]}'.encode()
    )
    with pytest.raises(EvidenceFormatError):
        canonical_json({"x": 1.5})


def test_generated_link_round_trip_and_tamper() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    authority = KeyAuthority("me", pem_of(key))
    raw = signed_link(SIGNED, key)
    link = verify_link(raw, [authority])
    assert link.product_sha256() == {"app.tar": "ab" * 32}  # normalised to lower case
    tampered = raw.replace(b"make", b"mAke")
    with pytest.raises(VerificationError):
        verify_link(tampered, [authority])


def test_ecdsa_signed_link() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    from cryptography.hazmat.primitives import hashes

    sig = key.sign(canonical_json(SIGNED), ec.ECDSA(hashes.SHA256())).hex()
    raw = json.dumps({"signed": SIGNED, "signatures": [{"keyid": "", "sig": sig}]}).encode()
    assert verify_link(raw, [KeyAuthority("ec", pem_of(key))]).signer == "ec"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"signed": {"_type": "layout"}, "signatures": []}', "expected 'link'"),
        (b'{"signed": {"_type": "link", "name": 3}}', "'name' is not a string"),
        (
            b'{"signed": {"_type": "link", "name": "n", "products": {"a": "b"}}, "signatures": []}',
            "not an object of digest strings",
        ),
        (b'{"signed": {"_type": "link", "name": "n"}, "signatures": []}', "no signatures"),
        (
            b'{"signed": {"_type": "link", "name": "n"}, "signatures": [{"sig": "zz"}]}',
            "is not hex",
        ),
        (b'{"signed": {"_type": "link", "name": "n", "x": 1.5}}', "non-integer number"),
        (b'{"signed": {"_type": "link", "name": "n", "name": "m"}}', "repeats the key 'name'"),
        (b'{"a": ' * 100_000, "nested too deeply"),
        (b"\xff", "not UTF-8"),
    ],
)
def test_malformed_links(raw: bytes, fragment: str) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(EvidenceFormatError) as info:
        verify_link(raw, [KeyAuthority("me", pem_of(key))])
    assert fragment in str(info.value)


def test_oversized_link_is_refused_before_parsing() -> None:
    with pytest.raises(EvidenceFormatError) as info:
        verify_link(b" " * (MAX_LINK_BYTES + 1), [])
    assert "over the" in str(info.value)


def test_no_keys_means_no_verification() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(VerificationError) as info:
        verify_link(signed_link(SIGNED, key), [])
    assert "listed keys: none" in str(info.value)

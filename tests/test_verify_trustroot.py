"""Trust roots: the shipped production root loads offline without writing, custom roots load,
malformed ones are refused, unknown names and log ids are named in the error."""

from __future__ import annotations

import builtins
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from controller.verify import trustroot
from controller.verify.errors import EvidenceFormatError, VerificationError
from controller.verify.trustroot import TrustRoots, production_trust, trust_from_json

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"


def test_production_root_loads_offline_without_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = builtins.open

    def read_only_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(flag in mode for flag in "wax+"):
            raise AssertionError(f"production_trust tried to write {file}")
        return real_open(file, mode, *args, **kwargs)

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("production_trust tried to use the network")

    monkeypatch.setattr(builtins, "open", read_only_open)
    monkeypatch.setattr(Path, "write_bytes", no_network)
    monkeypatch.setattr(Path, "mkdir", no_network)
    monkeypatch.setattr("socket.socket.connect", no_network)
    production_trust.cache_clear()
    material = production_trust()
    assert material.name == "production"
    assert len(material.fulcio_certificates()) >= 2
    assert material.rekor_log_ids()
    # the public-good Rekor log id (sha256 of its key), as cosign and the vectors name it
    key = material.rekor_key(
        bytes.fromhex("c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d")
    )
    assert key.valid_from.year == 2021
    assert material.sigstore_trusted_root is material.sigstore_trusted_root
    assert production_trust() is material


def test_custom_root_loads() -> None:
    path = VECTORS / "sigstore-conformance" / "bundle-verify" / "intoto-with-custom-trust-root"
    if not path.is_dir():
        pytest.skip(f"vectors not found at {path}")
    material = trust_from_json((path / "trusted_root.json").read_bytes(), "corp")
    assert material.name == "corp"
    assert material.fulcio_authorities()
    assert all(ca.window.start for ca in material.fulcio_authorities())
    roots = TrustRoots([material])
    assert roots.get("corp") is material
    assert roots.get("production").name == "production"


def test_malformed_roots_refused() -> None:
    with pytest.raises(EvidenceFormatError, match=r"not a valid trusted_root\.json"):
        trust_from_json(b"{", "bad")
    good = json.loads(
        resources.files("sigstore")
        .joinpath("_store/https%3A%2F%2Ftuf-repo-cdn.sigstore.dev/trusted_root.json")
        .read_bytes()
    )
    del good["tlogs"][0]["publicKey"]["validFor"]["start"]
    with pytest.raises(EvidenceFormatError, match=r"validFor\.start"):
        trust_from_json(json.dumps(good).encode(), "bad")
    with pytest.raises(EvidenceFormatError, match="limit"):
        trust_from_json(b" " * (trustroot.MAX_TRUSTED_ROOT_BYTES + 1), "big")


def test_unknown_names_refused() -> None:
    with pytest.raises(VerificationError, match="unknown trust root 'corp'"):
        TrustRoots().get("corp")
    with pytest.raises(VerificationError, match="00" * 32):
        production_trust().rekor_key(bytes(32))


def test_tuf_refresh_failure_falls_back_to_the_shipped_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the opt-in TUF refresh fails (no network), the webhook still starts, on the root
    that ships with the sigstore package. The refresh is replaced by a failing stand-in: tests
    never reach beyond 127.0.0.1."""
    from controller.cli import _load
    from controller.config import Settings

    calls: list[Path] = []

    def offline(cache_dir: Path) -> trustroot.TrustMaterial:
        calls.append(cache_dir)
        raise VerificationError("TUF refresh of the production trust root failed: offline")

    monkeypatch.setattr(trustroot, "refresh_production_via_tuf", offline)

    (tmp_path / "p.yaml").write_text(
        "apiVersion: reprogate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: p}\n"
        "spec:\n  match: {images: ['example.com/**']}\n  signatures: {threshold: 0}\n"
    )
    _, roots = _load(Settings(policies=str(tmp_path), tuf_cache=str(tmp_path / "tuf")))
    assert roots.get("production").name == "production"
    assert roots.get("production") is production_trust()
    assert calls == [tmp_path / "tuf"]

"""Every sigstore-conformance ``bundle-verify`` case through ``verify_offline``.

Layout (``bundle-verify/README.md``): ``bundle.sigstore.json``; optional ``artifact`` (default
``../a.txt``), ``identity`` / ``issuer`` (defaults below), ``key.pub`` (verify with that key
instead of an identity) and ``trusted_root.json`` (default: the production root). Folders whose
name ends in ``_fail`` must be refused with ``VerificationError``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.verify.errors import VerificationError
from controller.verify.offline import verify_offline

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
CASES_DIR = VECTORS / "sigstore-conformance" / "bundle-verify"
DEFAULT_IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
DEFAULT_ISSUER = "https://token.actions.githubusercontent.com"

CASES = sorted(p.name for p in CASES_DIR.iterdir() if p.is_dir()) if CASES_DIR.is_dir() else []

pytestmark = pytest.mark.vectors


def _optional(case: Path, name: str) -> bytes | None:
    path = case / name
    return path.read_bytes() if path.exists() else None


def _run(case: Path) -> object:
    key = _optional(case, "key.pub")
    identity = _optional(case, "identity")
    issuer = _optional(case, "issuer")
    artifact = _optional(case, "artifact") or (CASES_DIR / "a.txt").read_bytes()
    return verify_offline(
        case / "bundle.sigstore.json",
        identity=None if key else (identity.decode().strip() if identity else DEFAULT_IDENTITY),
        issuer=None if key else (issuer.decode().strip() if issuer else DEFAULT_ISSUER),
        key_pem=key,
        trusted_root_json=_optional(case, "trusted_root.json"),
        artifact=artifact,
        artifact_digest=None,
    )


def test_vectors_present() -> None:
    if not CASES_DIR.is_dir():
        pytest.skip(f"sigstore-conformance vectors not found at {CASES_DIR}")
    assert len(CASES) == 70
    assert sum(name.endswith("_fail") for name in CASES) == 49


@pytest.mark.parametrize("name", CASES or ["<vectors absent>"])
def test_bundle_verify_case(name: str) -> None:
    if not CASES:
        pytest.skip(f"sigstore-conformance vectors not found at {CASES_DIR}")
    case = CASES_DIR / name
    if name.endswith("_fail"):
        with pytest.raises(VerificationError):
            _run(case)
    else:
        result = _run(case)
        assert result is not None

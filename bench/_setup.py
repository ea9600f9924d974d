"""Shared bench set-up: a real TLS registry on 127.0.0.1 with one signed image and a policy.

Benchmarks print figures; they assert nothing about time.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from tests.support.cosign_sign import public_pem  # noqa: E402
from tests.support.registry import RunningRegistry, launch_registry  # noqa: E402
from tests.support.tls import TlsFiles, make_tls_files  # noqa: E402
from tests.test_e2e_webhook import push_signed, write_policy  # noqa: E402


@dataclass
class BenchScene:
    """A registry with a signed image and a policy requiring that signature."""

    work: Path
    tls: TlsFiles
    reg: RunningRegistry
    policies: Path
    image: str


def make_scene() -> BenchScene:
    """Start a registry and push ``e2e/app:signed`` signed with a fresh ECDSA key."""
    work = Path(tempfile.mkdtemp(prefix="reprogate-bench-"))
    tls = make_tls_files(work / "pki")
    reg = launch_registry(work / "registry", tls)
    key = ec.generate_private_key(ec.SECP256R1())
    push_signed(reg, "e2e/app", "signed", key)
    policies = write_policy(work / "policies", reg.host, public_pem(key))
    return BenchScene(work, tls, reg, policies, reg.ref("e2e/app", "signed"))

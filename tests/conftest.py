"""Shared fixtures that start real services: registries (anonymous, Basic, token auth).

Fixtures:
- ``tls_files``: a test CA and a 127.0.0.1/localhost server certificate (session).
- ``registry``: Debian's docker-registry 2.8 over TLS, anonymous (session).
- ``fresh_registry``: the same, private to one test, for tests that stop/restart it.
- ``auth_registry``: a registry with htpasswd (bcrypt) Basic auth (session).
- ``token_registry``: a registry with ``auth: token``; its ``token_server`` issues ES256 JWTs
  signed by a test key whose certificate is the registry's rootcertbundle (session).
All skip with a reason when /usr/bin/docker-registry is missing.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The project root, so test modules can import ``controller`` and ``tests.support`` without
# installing the package.
_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from tests.support.registry import (  # noqa: E402
    REGISTRY_BINARY,
    RunningRegistry,
    TokenServer,
    launch_registry,
    write_htpasswd,
)
from tests.support.tls import TlsFiles, make_signing_identity, make_tls_files  # noqa: E402

TOKEN_SERVICE = "reprogate-test-registry"
TOKEN_ISSUER = "reprogate-test-token-issuer"


def _require_registry_binary() -> None:
    if not REGISTRY_BINARY.is_file():
        pytest.skip(
            f"{REGISTRY_BINARY} not found: install Debian's docker-registry package "
            "(or set REPROGATE_TEST_REGISTRY) to run tests against a real registry"
        )


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A test CA and a server certificate for 127.0.0.1, localhost and ::1."""
    return make_tls_files(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def registry(
    tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles
) -> Iterator[RunningRegistry]:
    """An anonymous TLS registry shared by the session; do not stop it (use fresh_registry)."""
    _require_registry_binary()
    reg = launch_registry(tmp_path_factory.mktemp("registry"), tls_files)
    yield reg
    reg.stop()


@pytest.fixture
def fresh_registry(tmp_path: Path, tls_files: TlsFiles) -> Iterator[RunningRegistry]:
    """A registry of this test's own, free to stop() and start() again."""
    _require_registry_binary()
    reg = launch_registry(tmp_path / "registry", tls_files)
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def auth_registry(
    tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles
) -> Iterator[RunningRegistry]:
    """A registry requiring HTTP Basic auth (htpasswd, bcrypt); ``username``/``password``
    are set on the returned object."""
    _require_registry_binary()
    workdir = tmp_path_factory.mktemp("auth-registry")
    username, password = "reprogate", secrets.token_urlsafe(12)
    htpasswd = workdir / "htpasswd"
    if not write_htpasswd(htpasswd, username, password):
        pytest.skip("cannot make a bcrypt htpasswd entry (no crypt(3) bcrypt support)")
    reg = launch_registry(
        workdir,
        tls_files,
        auth={"htpasswd": {"realm": "reprogate-test", "path": str(htpasswd)}},
        username=username,
        password=password,
    )
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles
) -> Iterator[RunningRegistry]:
    """A registry with bearer-token auth. ``token_server`` (a TokenServer) knows the user
    ``username``/``password`` and the refresh token ``token_server.refresh_tokens``."""
    _require_registry_binary()
    workdir = tmp_path_factory.mktemp("token-registry")
    signer = make_signing_identity(workdir, "token-signer")
    username, password = "alice", secrets.token_urlsafe(12)
    server = TokenServer(
        tls_files,
        signer,
        service=TOKEN_SERVICE,
        issuer=TOKEN_ISSUER,
        users={username: password},
        refresh_tokens={f"refresh-{secrets.token_hex(8)}": username},
    )
    try:
        reg = launch_registry(
            workdir,
            tls_files,
            auth={
                "token": {
                    "realm": server.realm,
                    "service": TOKEN_SERVICE,
                    "issuer": TOKEN_ISSUER,
                    "rootcertbundle": str(signer.cert_file),
                }
            },
            username=username,
            password=password,
            token_server=server,
        )
    except BaseException:
        server.stop()
        raise
    yield reg
    reg.stop()
    server.stop()

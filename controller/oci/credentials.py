"""Registry credentials from a docker ``config.json`` or Kubernetes image pull secrets.

Formats read (Docker CLI "config.json" and Kubernetes "Pull an Image from a Private Registry"):
- ``{"auths": {"<registry>": {"auth": base64("user:password")}}}``, or ``username`` and
  ``password`` fields instead of ``auth``, or an ``identitytoken`` (an OAuth2 refresh token
  the client trades at the registry's token realm).
- Secrets of type ``kubernetes.io/dockerconfigjson`` carry that JSON, base64-encoded, under
  ``data[".dockerconfigjson"]``; the legacy ``kubernetes.io/dockercfg`` carries the ``auths``
  map itself under ``data[".dockercfg"]``.

Rules:
- Keys are normalised: scheme and ``/v1/``-style paths are dropped, hosts are lowercased, and
  ``index.docker.io`` / ``registry-1.docker.io`` / ``https://index.docker.io/v1/`` all mean
  ``docker.io``. A key may carry a repository path prefix (``host/team``), as kubelet allows;
  the longest prefix matching an image wins.
- Malformed input (not JSON, bad base64, ``auth`` without a colon, wrong types, over the size
  cap) raises CredentialsError naming the source and the entry, never the secret itself.
- Credential values are never part of ``repr`` or of any message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from controller.oci.reference import DOCKER_HUB

__all__ = [
    "MAX_CONFIG_BYTES",
    "CredentialStore",
    "CredentialsError",
    "RegistryCredential",
    "credentials_from_pull_secret",
    "load_docker_config",
    "normalize_registry_key",
    "parse_docker_config",
]

MAX_CONFIG_BYTES = 1024 * 1024
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson"
DOCKERCFG = "kubernetes.io/dockercfg"


class CredentialsError(ValueError):
    """A credentials source that cannot be read; the message names the source and entry."""


@dataclass(frozen=True, slots=True)
class RegistryCredential:
    """Username/password for Basic auth, or an identity token for the OAuth2 refresh flow."""

    username: str = field(repr=False)
    password: str = field(repr=False)
    identity_token: str | None = field(default=None, repr=False)

    @property
    def fingerprint(self) -> str:
        """A stable, non-reversible id, so tokens obtained with it are cached per credential."""
        material = "\0".join((self.username, self.password, self.identity_token or ""))
        return hashlib.sha256(material.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CredentialStore:
    """Credentials keyed by normalised ``host`` or ``host/path-prefix``."""

    entries: Mapping[str, RegistryCredential] = field(default_factory=lambda: MappingProxyType({}))

    def lookup(self, registry: str, repository: str = "") -> RegistryCredential | None:
        """The credential for an image in ``registry``/``repository``: longest prefix wins."""
        host = normalize_registry_key(registry)
        if not self.entries:
            return None
        candidates = [host]
        parts = [p for p in repository.split("/") if p]
        for i in range(1, len(parts) + 1):
            candidates.append(f"{host}/{'/'.join(parts[:i])}")
        for key in reversed(candidates):
            cred = self.entries.get(key)
            if cred is not None:
                return cred
        return None

    def merged(self, other: CredentialStore) -> CredentialStore:
        """A store where ``other``'s entries override this one's."""
        combined = dict(self.entries)
        combined.update(other.entries)
        return CredentialStore(MappingProxyType(combined))

    def __len__(self) -> int:
        return len(self.entries)


def normalize_registry_key(key: str) -> str:
    """``https://index.docker.io/v1/`` -> ``docker.io``; ``HTTPS://Reg.Example:5000/`` ->
    ``reg.example:5000``; ``reg.example/team/`` -> ``reg.example/team``."""
    text = key.strip()
    lowered = text.lower()
    for scheme in ("https://", "http://"):
        if lowered.startswith(scheme):
            text = text[len(scheme) :]
            break
    host, _, path = text.partition("/")
    host = host.lower()
    if host in _HUB_ALIASES:
        host = DOCKER_HUB
    segments = [s for s in path.split("/") if s]
    # "/v1/" and "/v2/" name the API version (Docker CLI writes them), not a repository.
    if segments and segments[0] in ("v1", "v2"):
        segments = segments[1:]
    return "/".join([host, *segments])


def load_docker_config(path: str | Path) -> CredentialStore:
    """Read and parse a docker ``config.json`` (at most MAX_CONFIG_BYTES)."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise CredentialsError(f"docker config {p}: cannot read: {exc.strerror}") from None
    return parse_docker_config(data, str(p))


def parse_docker_config(data: bytes, source: str) -> CredentialStore:
    """Parse docker ``config.json`` bytes; ``source`` names them in errors."""
    obj = _load_json(data, source)
    if not isinstance(obj, dict):
        raise CredentialsError(f"{source}: must be a JSON object")
    auths = obj.get("auths", {})
    if auths is None:
        auths = {}
    if not isinstance(auths, dict):
        raise CredentialsError(f"{source}: 'auths' must be an object of registry entries")
    return CredentialStore(MappingProxyType(dict(_parse_auths(auths.items(), source))))


def credentials_from_pull_secret(secret: Any) -> CredentialStore:
    """Credentials from a Kubernetes image pull secret.

    ``secret`` is the Secret as a JSON mapping (``{"type": ..., "data": {...}}``) or a
    ``kubernetes.client.V1Secret``. Types ``kubernetes.io/dockerconfigjson`` and the legacy
    ``kubernetes.io/dockercfg`` are read; any other type raises CredentialsError.
    """
    if isinstance(secret, Mapping):
        meta = secret.get("metadata") or {}
        name = meta.get("name") if isinstance(meta, Mapping) else None
        secret_type = secret.get("type")
        data = secret.get("data")
    else:
        meta_obj = getattr(secret, "metadata", None)
        name = getattr(meta_obj, "name", None)
        secret_type = getattr(secret, "type", None)
        data = getattr(secret, "data", None)
    source = f"pull secret {name or '<unnamed>'}"
    if secret_type not in (DOCKERCONFIGJSON, DOCKERCFG):
        raise CredentialsError(
            f"{source}: type {secret_type!r} is not {DOCKERCONFIGJSON} or {DOCKERCFG}"
        )
    if not isinstance(data, Mapping):
        raise CredentialsError(f"{source}: has no data")
    key = ".dockerconfigjson" if secret_type == DOCKERCONFIGJSON else ".dockercfg"
    encoded = data.get(key)
    if not isinstance(encoded, str):
        raise CredentialsError(f"{source}: data[{key!r}] is missing")
    if len(encoded) > MAX_CONFIG_BYTES * 4 // 3 + 4:
        raise CredentialsError(f"{source}: data[{key!r}] is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise CredentialsError(f"{source}: data[{key!r}] is not valid base64") from None
    if secret_type == DOCKERCONFIGJSON:
        return parse_docker_config(raw, source)
    obj = _load_json(raw, source)
    if not isinstance(obj, dict):
        raise CredentialsError(f"{source}: .dockercfg must be a JSON object")
    return CredentialStore(MappingProxyType(dict(_parse_auths(obj.items(), source))))


def _load_json(data: bytes, source: str) -> Any:
    if len(data) > MAX_CONFIG_BYTES:
        raise CredentialsError(f"{source}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CredentialsError(f"{source}: not valid JSON ({exc.__class__.__name__})") from None


def _parse_auths(
    items: Iterable[tuple[Any, Any]], source: str
) -> Iterable[tuple[str, RegistryCredential]]:
    for key, entry in items:
        if not isinstance(key, str) or not key.strip():
            raise CredentialsError(f"{source}: registry keys must be non-empty strings")
        where = f"{source}: auths[{key!r}]"
        if not isinstance(entry, dict):
            raise CredentialsError(f"{where} must be an object")
        cred = _parse_entry(entry, where)
        if cred is not None:
            yield normalize_registry_key(key), cred


def _parse_entry(entry: dict[str, Any], where: str) -> RegistryCredential | None:
    def text(name: str) -> str | None:
        value = entry.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise CredentialsError(f"{where}: {name!r} must be a string")
        return value

    auth = text("auth")
    username = text("username")
    password = text("password")
    identity_token = text("identitytoken")
    if auth is not None:
        try:
            decoded = base64.b64decode(auth, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise CredentialsError(f"{where}: 'auth' is not base64 of 'user:password'") from None
        user, sep, secret = decoded.partition(":")
        if not sep:
            raise CredentialsError(f"{where}: 'auth' decodes to a value without ':'")
        username, password = user, secret
    if identity_token is not None:
        return RegistryCredential(username or "", password or "", identity_token)
    if username is None and password is None:
        # An entry with only credHelper-style metadata carries nothing we can use.
        return None
    if username is None or password is None:
        raise CredentialsError(f"{where}: needs both username and password")
    return RegistryCredential(username, password)

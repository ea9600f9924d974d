"""One settings object, from a YAML file, then ``REPROGATE_*`` environment, then flags.

Later sources win. Unknown keys in the file are refused (a typo must not silently disable
anything), and every value is checked here, once, so the rest of the program can trust it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from controller.oci.client import RegistrySettings

__all__ = ["ConfigError", "Settings", "load_settings"]

_MAX_CONFIG_BYTES = 1024 * 1024


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the source and key."""


@dataclass(frozen=True)
class Settings:
    """Everything the server and the CLI need to run."""

    policies: str = "policies"
    host: str = "0.0.0.0"
    port: int = 8443
    tls_cert: str | None = None
    tls_key: str | None = None
    decision_log: str = "-"
    deadline_seconds: float = 8.0  # answer before the API server's webhook timeout (10s)
    no_match: Literal["allow", "deny"] = "allow"
    evidence_ttl: float = 300.0  # seconds a verified evidence set stays cached
    empty_evidence_ttl: float = 30.0  # "nothing found" is re-checked sooner: signing may follow
    negative_ttl: float = 10.0  # registry failures
    digest_ttl: float = 60.0  # tag -> digest
    # seconds between checks of the policy directory for changes (0: never reload)
    policy_reload_seconds: float = 10.0
    # Opt-in, needs network: refresh the Sigstore production root over TUF at start-up into
    # this directory. Unset (the default), the root shipped with ``sigstore`` is used offline.
    tuf_cache: str | None = None
    # In-cluster only: post a core/v1 Event on the workload for each denial and warning.
    events: bool = False
    # In-cluster only: read the pod's imagePullSecrets (and its namespace's default service
    # account's) to fetch evidence from private registries. Needs RBAC to get secrets.
    pull_secrets: bool = False
    registry: RegistrySettings = field(default_factory=RegistrySettings)

    def with_overrides(self, values: Mapping[str, Any], source: str) -> Settings:
        """A copy with ``values`` applied (keys in snake_case), each checked."""
        known = {f.name: f for f in fields(self)}
        reg_known = {f.name for f in fields(RegistrySettings)}
        top: dict[str, Any] = {}
        reg: dict[str, Any] = {}
        for key, value in values.items():
            if value is None:
                continue
            if key in reg_known:
                reg[key] = value
            elif key in known and key != "registry":
                top[key] = value
            else:
                raise ConfigError(f"{source}: unknown setting {key!r}")
        out = replace(self, **{k: _coerce(k, v, known[k].type, source) for k, v in top.items()})
        if reg:
            out = replace(out, registry=_registry(out.registry, reg, source))
        out._check(source)
        return out

    def _check(self, source: str) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"{source}: port must be 1-65535, got {self.port}")
        if self.deadline_seconds <= 0 or self.deadline_seconds > 30:
            raise ConfigError(f"{source}: deadline_seconds must be in (0, 30]")
        for name in (
            "evidence_ttl",
            "empty_evidence_ttl",
            "negative_ttl",
            "digest_ttl",
            "policy_reload_seconds",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{source}: {name} must be >= 0 seconds")
        if self.registry.request_timeout <= 0:
            # aiohttp reads a timeout of 0 as "no timeout": one hung socket would then hold
            # an image's single in-flight load, and every review of it would wait on it
            raise ConfigError(f"{source}: request_timeout must be > 0 seconds")
        if self.registry.max_manifest_bytes <= 0 or self.registry.max_blob_bytes <= 0:
            raise ConfigError(f"{source}: max_manifest_bytes and max_blob_bytes must be > 0")
        if self.no_match not in ("allow", "deny"):
            raise ConfigError(f"{source}: no_match must be allow or deny, got {self.no_match!r}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError(f"{source}: tls_cert and tls_key go together")


def _coerce(key: str, value: Any, typ: Any, source: str) -> Any:
    text = str(typ)
    if text.startswith("bool"):
        return _boolean(key, value, source)
    try:
        if text.startswith("int"):
            return int(value)
        if text.startswith("float"):
            return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {key} must be a number, got {value!r}") from None
    if not isinstance(value, str):
        raise ConfigError(f"{source}: {key} must be a string, got {value!r}")
    return value


def _boolean(key: str, value: Any, source: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
    raise ConfigError(f"{source}: {key} must be true or false, got {value!r}")


def _registry(base: RegistrySettings, values: Mapping[str, Any], source: str) -> RegistrySettings:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "insecure_registries":
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, list | tuple | frozenset | set):
                raise ConfigError(f"{source}: insecure_registries must be a list")
            out[key] = frozenset(str(i).strip() for i in items if str(i).strip())
        elif key == "mirrors":
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: mirrors must map registry to mirror host")
            out[key] = {str(k): str(v) for k, v in value.items()}
        elif key in ("request_timeout",):
            out[key] = _coerce(key, value, "float", source)
        elif key in ("max_manifest_bytes", "max_blob_bytes"):
            out[key] = _coerce(key, value, "int", source)
        else:
            out[key] = _coerce(key, value, "str", source)
    return replace(base, **out)


def _from_file(path: str) -> dict[str, Any]:
    p = Path(path)
    try:
        if p.stat().st_size > _MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {_MAX_CONFIG_BYTES} bytes")
        data = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of settings")
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name == "registry" and isinstance(value, dict):
            flat.update({str(k).replace("-", "_"): v for k, v in value.items()})
        else:
            flat[name] = value
    return flat


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    known = {f.name for f in fields(Settings)} | {f.name for f in fields(RegistrySettings)}
    out: dict[str, Any] = {}
    for key, value in env.items():
        if key.startswith("REPROGATE_") and key != "REPROGATE_CONFIG":
            name = key[len("REPROGATE_") :].lower()
            if name in known and name != "registry":
                out[name] = value
    return out


def load_settings(
    config_file: str | None,
    flags: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Defaults, then the config file, then ``REPROGATE_*`` variables, then ``flags``."""
    env = os.environ if env is None else env
    settings = Settings()
    config_file = config_file or env.get("REPROGATE_CONFIG")
    if config_file:
        settings = settings.with_overrides(_from_file(config_file), config_file)
    settings = settings.with_overrides(_from_env(env), "environment")
    return settings.with_overrides(flags, "command line")

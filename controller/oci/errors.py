"""Registry failures, classified so a denial can tell a timeout from a bad signature."""

from __future__ import annotations

from typing import Literal

__all__ = ["RegistryError", "RegistryErrorKind"]

RegistryErrorKind = Literal[
    "unreachable",  # connection refused, DNS, TLS handshake
    "timeout",  # deadline passed
    "unauthorized",  # 401/403 after the auth flow
    "not_found",  # 404 for something that must exist
    "invalid",  # malformed answer, digest mismatch
    "too_large",  # over the configured size cap
    "unsupported",  # e.g. referrers API not offered
    "server",  # 5xx and other unexpected statuses
]


class RegistryError(Exception):
    """A registry could not give us what we asked for; ``kind`` says which way it failed."""

    def __init__(self, kind: RegistryErrorKind, message: str, registry: str | None = None) -> None:
        super().__init__(message)
        self.kind: RegistryErrorKind = kind
        self.registry = registry
        self.message = message

    def diagnostics(self) -> str:
        """A sentence a person can act on."""
        where = f" {self.registry}" if self.registry else ""
        hints = {
            "unreachable": f"registry{where} could not be reached; check network, DNS and TLS",
            "timeout": f"registry{where} did not answer before the deadline",
            "unauthorized": f"registry{where} refused our credentials; check pull secrets",
            "not_found": f"registry{where} does not have it",
            "invalid": f"registry{where} sent a malformed or tampered answer",
            "too_large": f"registry{where} sent more than the size limit allows",
            "unsupported": f"registry{where} does not support this API",
            "server": f"registry{where} failed with a server error",
        }
        return f"{hints[self.kind]}: {self.message}"

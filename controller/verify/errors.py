"""Verification refusals. Each carries a short message plus ``diagnostics()`` for people."""

from __future__ import annotations

__all__ = ["EvidenceFormatError", "VerificationError"]


class VerificationError(Exception):
    """Evidence did not verify. ``str(exc)`` is one sentence naming what failed and why."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def diagnostics(self) -> str:
        """The message plus what to do about it, when known."""
        msg = str(self)
        return f"{msg}. {self.hint}" if self.hint else msg


class EvidenceFormatError(VerificationError):
    """Evidence is malformed (bad JSON, base64, PEM, missing fields, over a size limit)."""

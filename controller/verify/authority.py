"""Who may sign: the authorities a policy names, as the verifier consumes them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Authority", "KeyAuthority", "KeylessAuthority", "TlogMode"]

TlogMode = Literal["required", "optional", "ignore"]


@dataclass(frozen=True)
class KeyAuthority:
    """A long-lived public key (PEM SubjectPublicKeyInfo: ECDSA P-256/P-384, RSA, Ed25519).

    ``transparency_log``: "required" demands a valid Rekor SET/inclusion proof from
    ``trust_root``; "optional" checks one when present; "ignore" never looks.
    """

    name: str
    public_key_pem: bytes
    transparency_log: TlogMode = "optional"
    trust_root: str = "production"


@dataclass(frozen=True)
class KeylessAuthority:
    """A Fulcio-certified OIDC identity. ``subject`` and ``subject_regexp`` are exclusive; with
    neither, any subject from ``issuer`` matches (used for trusted builders, where the caller
    compares the subject with the builder id)."""

    name: str
    issuer: str
    subject: str | None = None
    subject_regexp: str | None = None  # fully anchored: must match the whole subject
    trust_root: str = "production"
    transparency_log: TlogMode = "required"
    _compiled: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.subject is not None and self.subject_regexp is not None:
            raise ValueError("subject and subjectRegExp are mutually exclusive")
        if self.subject_regexp is not None:
            object.__setattr__(self, "_compiled", re.compile(self.subject_regexp))

    def subject_matches(self, subject: str) -> bool:
        """Exact subject, fully-anchored regular expression, or anything when neither is set."""
        if self.subject is not None:
            return subject == self.subject
        if self._compiled is not None:
            return self._compiled.fullmatch(subject) is not None
        return True

    def describe(self) -> str:
        """``subject ... from issuer ...`` for messages."""
        if self.subject is not None:
            who = f"subject {self.subject!r}"
        elif self.subject_regexp is not None:
            who = f"subject matching /{self.subject_regexp}/"
        else:
            who = "any subject"
        return f"{who} from issuer {self.issuer!r}"


Authority = KeyAuthority | KeylessAuthority

"""Registry authentication pieces: challenges, bearer tokens and their cache.

Implements the parsing side of the distribution "Token Authentication Specification" and
RFC 7235 challenges; the HTTP exchanges themselves live in ``controller.oci.client``.

Rules:
- ``WWW-Authenticate`` may hold several challenges; parameters may be quoted strings with
  escaped characters and commas. A challenge we cannot parse is treated as absent.
- A token response must be JSON with ``token`` or ``access_token``; ``expires_in`` defaults
  to 60 seconds (the spec's minimum) and is clamped to at most one day.
- Tokens are cached per (registry host, scope, credential fingerprint): a token obtained with
  one pull secret is never reused for a request made with another (or with none).
- Tokens are dropped a little before they expire, so a request never carries a stale one.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from controller.oci.errors import RegistryError

__all__ = [
    "BearerToken",
    "Challenge",
    "TokenCache",
    "parse_challenges",
    "parse_token_response",
    "pull_scope",
]

MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024
_DEFAULT_EXPIRES_IN = 60
_MAX_EXPIRES_IN = 24 * 3600
_EXPIRY_MARGIN = 5.0  # seconds a token is dropped before its stated expiry
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


@dataclass(frozen=True, slots=True)
class Challenge:
    """One RFC 7235 challenge: ``scheme`` lowercased, parameter names lowercased."""

    scheme: str
    params: Mapping[str, str]

    @property
    def realm(self) -> str | None:
        """The ``realm`` parameter, if any."""
        return self.params.get("realm")


@dataclass(frozen=True, slots=True)
class BearerToken:
    """A bearer token and the monotonic time after which it must not be used."""

    token: str
    expires_at: float

    def __repr__(self) -> str:
        return f"BearerToken(<redacted>, expires_at={self.expires_at:.0f})"


def pull_scope(repository: str) -> str:
    """The token scope for reading ``repository``."""
    return f"repository:{repository}:pull"


def parse_challenges(header: str) -> tuple[Challenge, ...]:
    """Parse a ``WWW-Authenticate`` header value into its challenges (possibly none)."""
    parser = _ChallengeParser(header)
    try:
        return parser.parse()
    except ValueError:
        return ()


class _ChallengeParser:
    """A small RFC 7235 tokenizer: ``scheme param=value, param="quoted", scheme2 ...``.

    The token68 form (``Negotiate abc==``) is not needed by any registry and makes the
    header unparseable here, which callers treat as "no usable challenge".
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> tuple[Challenge, ...]:
        out: list[Challenge] = []
        scheme: str | None = None
        params: dict[str, str] = {}
        while True:
            self._skip(" \t,")
            if self.pos >= len(self.text):
                break
            word = self._token()
            self._skip(" \t")
            if self._peek() == "=" and scheme is not None:
                self.pos += 1
                self._skip(" \t")
                value = self._quoted() if self._peek() == '"' else self._bare()
                params[word.lower()] = value
            elif self._peek() == "=":
                raise ValueError("parameter before any scheme")
            else:
                if scheme is not None:
                    out.append(Challenge(scheme, MappingProxyType(params)))
                scheme, params = word.lower(), {}
        if scheme is not None:
            out.append(Challenge(scheme, MappingProxyType(params)))
        return tuple(out)

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _skip(self, chars: str) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1

    def _token(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _TOKEN_CHARS:
            self.pos += 1
        if self.pos == start:
            raise ValueError(f"expected a token at {self.pos}")
        return self.text[start : self.pos]

    def _bare(self) -> str:
        # Lenient: some registries leave URLs unquoted although ':' and '/' are not tchars.
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ", \t":
            self.pos += 1
        return self.text[start : self.pos]

    def _quoted(self) -> str:
        self.pos += 1  # opening quote
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if ch == '"':
                self.pos += 1
                return "".join(out)
            out.append(ch)
            self.pos += 1
        raise ValueError("unterminated quoted string")


def parse_token_response(body: bytes, now: float, realm: str) -> BearerToken:
    """Parse a token endpoint's JSON answer; ``now`` is ``time.monotonic()`` at request time."""
    if len(body) > MAX_TOKEN_RESPONSE_BYTES:
        raise RegistryError("too_large", f"token response from {realm} is over the size cap")
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RegistryError("invalid", f"token response from {realm} is not JSON") from None
    if not isinstance(obj, dict):
        raise RegistryError("invalid", f"token response from {realm} is not a JSON object")
    token = obj.get("token") or obj.get("access_token")
    if not isinstance(token, str) or not token:
        raise RegistryError("invalid", f"token response from {realm} carries no token")
    expires_in = obj.get("expires_in", _DEFAULT_EXPIRES_IN)
    if not isinstance(expires_in, int | float) or isinstance(expires_in, bool):
        raise RegistryError("invalid", f"token response from {realm}: expires_in is not a number")
    lifetime = min(max(float(expires_in), _DEFAULT_EXPIRES_IN), _MAX_EXPIRES_IN)
    return BearerToken(token=token, expires_at=now + lifetime)


class TokenCache:
    """Bearer tokens by (registry host, scope, credential fingerprint), bounded in size."""

    def __init__(self, max_entries: int = 1024) -> None:
        self._tokens: OrderedDict[tuple[str, str, str], BearerToken] = OrderedDict()
        self._max = max_entries

    def get(self, host: str, scope: str, fingerprint: str) -> BearerToken | None:
        """A token still valid for at least the safety margin, or None."""
        key = (host, scope, fingerprint)
        token = self._tokens.get(key)
        if token is None:
            return None
        if token.expires_at - _EXPIRY_MARGIN <= time.monotonic():
            del self._tokens[key]
            return None
        self._tokens.move_to_end(key)
        return token

    def put(self, host: str, scope: str, fingerprint: str, token: BearerToken) -> None:
        """Remember ``token``; the least recently used entry goes when the cache is full."""
        key = (host, scope, fingerprint)
        self._tokens[key] = token
        self._tokens.move_to_end(key)
        while len(self._tokens) > self._max:
            self._tokens.popitem(last=False)

    def discard(self, host: str, scope: str, fingerprint: str) -> None:
        """Forget a token the registry refused."""
        self._tokens.pop((host, scope, fingerprint), None)

    def __len__(self) -> int:
        return len(self._tokens)

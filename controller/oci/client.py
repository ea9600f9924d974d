"""Async client for the OCI Distribution API v2 (OCI distribution-spec 1.1, "Pull" and
"Listing Referrers"; distribution "Token Authentication Specification").

Rules it enforces:
- One pooled aiohttp session for every registry, created on first use, closed by ``close()``.
- HTTPS with the system CAs plus ``ca_file``; plain HTTP only for hosts listed in
  ``insecure_registries`` (and only those: a redirect or token realm on another plain-HTTP
  host is refused).
- Every request has a deadline (``request_timeout``) and every failure is a RegistryError
  whose ``kind`` says how it failed and whose message names the registry and what was asked.
- Everything read is capped while streaming (``max_manifest_bytes``, ``max_blob_bytes``), and
  every manifest and blob is checked against the digest it was asked for (and the
  ``Docker-Content-Digest`` the registry claims), so a registry or mirror cannot substitute
  content. (A mirror can still answer a *tag* with another digest; policies pin by digest.)
- Credentials go only to the registry they belong to: the Authorization header is dropped on
  redirects to another origin, tokens are cached per credential, and no credential, token or
  signed redirect URL appears in a message or a log line.
- Mirrors (``mirrors[registry] = host``) are tried first; any failure there falls back to the
  origin.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from controller.oci.auth import (
    MAX_TOKEN_RESPONSE_BYTES,
    BearerToken,
    Challenge,
    TokenCache,
    parse_challenges,
    parse_token_response,
    pull_scope,
)
from controller.oci.credentials import (
    CredentialStore,
    RegistryCredential,
    load_docker_config,
    normalize_registry_key,
)
from controller.oci.errors import RegistryError, RegistryErrorKind
from controller.oci.manifest import (
    ACCEPT_ALL,
    OCI_INDEX,
    Descriptor,
    Manifest,
    parse_manifest,
)
from controller.oci.reference import DOCKER_HUB, ImageRef, is_digest

__all__ = ["RegistryClient", "RegistrySettings"]

log = logging.getLogger(__name__)

DOCKER_HUB_API = "registry-1.docker.io"
_USER_AGENT = "reprogate/0.1"
_CLIENT_ID = "reprogate"
_MAX_REDIRECTS = 5
_MAX_ERROR_BODY = 64 * 1024
_MAX_REFERRER_PAGES = 16
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_TAG = re.compile(r"^[\w][\w.-]{0,127}$", re.ASCII)  # distribution's tag grammar
_T = TypeVar("_T")


@dataclass(frozen=True)
class RegistrySettings:
    """How to reach registries; built once from config/flags."""

    ca_file: str | None = None  # extra CA bundle (PEM) trusted in addition to the system's
    insecure_registries: frozenset[str] = frozenset()  # host[:port] reached over plain HTTP
    docker_config: str | None = None  # path of a docker config.json with credentials
    request_timeout: float = 5.0  # seconds for one HTTP request
    max_manifest_bytes: int = 4 * 1024 * 1024
    max_blob_bytes: int = 16 * 1024 * 1024
    mirrors: dict[str, str] = field(default_factory=dict)  # registry -> mirror host


@dataclass(frozen=True, slots=True)
class _Target:
    """One host to ask: ``registry`` names the image's registry, ``host`` where we connect."""

    registry: str
    host: str
    base: URL
    cred_key: str


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: URL


@dataclass
class _Shared:
    """State shared by a client and its ``with_credentials`` views."""

    session: aiohttp.ClientSession | None = None
    tokens: TokenCache = field(default_factory=TokenCache)
    basic_hosts: set[str] = field(default_factory=set)  # hosts that asked for Basic auth
    # One token fetch in flight per (host, scope, credential): concurrent requests share it.
    token_fetches: dict[tuple[str, str, str], asyncio.Future[BearerToken]] = field(
        default_factory=dict
    )


def _ssl_context(ca_file: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if ca_file:
        try:
            ctx.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"registry CA bundle {ca_file}: cannot load: {exc}") from None
    return ctx


def _hash(data: bytes, algorithm: str) -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def _label(ref: ImageRef, reference: str) -> str:
    return f"{ref.name}@{reference}" if is_digest(reference) else f"{ref.name}:{reference}"


def _registry_error_codes(body: bytes) -> str:
    """``MANIFEST_UNKNOWN: manifest unknown`` from a distribution error body, else ''."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    errors = obj.get("errors") if isinstance(obj, dict) else None
    if not isinstance(errors, list):
        return ""
    parts = []
    for err in errors[:3]:
        if isinstance(err, dict):
            code, msg = str(err.get("code", "")), str(err.get("message", ""))
            parts.append(f"{code}: {msg}"[:200] if msg else code[:200])
    return "; ".join(parts)


class RegistryClient:
    """One pooled aiohttp session for every registry; verifies every digest it receives."""

    def __init__(
        self, settings: RegistrySettings, credentials: CredentialStore | None = None
    ) -> None:
        """``credentials`` are merged over those of ``settings.docker_config``.

        Raises ValueError when ``ca_file`` cannot be loaded and CredentialsError when the
        docker config is unreadable or malformed.
        """
        self.settings = settings
        self._ssl = _ssl_context(settings.ca_file)
        store = (
            load_docker_config(settings.docker_config)
            if settings.docker_config
            else CredentialStore()
        )
        self._credentials = store.merged(credentials) if credentials else store
        self._shared = _Shared()
        self._insecure = frozenset(normalize_registry_key(h) for h in settings.insecure_registries)
        self._mirrors = {normalize_registry_key(k): v for k, v in settings.mirrors.items()}

    def with_credentials(self, credentials: CredentialStore) -> RegistryClient:
        """A view using ``credentials`` (e.g. a pod's pull secrets) over this client's own.

        It shares the session and token cache (tokens stay keyed per credential); close the
        original client, not the view.
        """
        view = object.__new__(RegistryClient)
        view.settings = self.settings
        view._ssl = self._ssl
        view._credentials = self._credentials.merged(credentials)
        view._shared = self._shared
        view._insecure = self._insecure
        view._mirrors = self._mirrors
        return view

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the pooled session."""
        session, self._shared.session = self._shared.session, None
        if session is not None and not session.closed:
            await session.close()

    # ----------------------------------------------------------------- public operations

    async def resolve(self, ref: ImageRef) -> str:
        """Tag -> digest (HEAD, GET fallback). A pinned ref returns its digest unchanged.

        Raises RegistryError (kind ``not_found`` when the tag does not exist).
        """
        if ref.digest:
            return ref.digest
        tag = ref.reference
        path = f"manifests/{tag}"
        what = f"resolve {_label(ref, tag)}"

        async def on(target: _Target) -> str:
            try:
                head = await self._fetch("HEAD", target, ref, path, what=what, accept=ACCEPT_ALL)
                claimed = head.headers.get("Docker-Content-Digest", "")
                if is_digest(claimed):
                    return claimed
                log.debug("%s: HEAD without a usable digest header; falling back to GET", what)
            except RegistryError as exc:
                if exc.kind in ("unreachable", "timeout", "unauthorized"):
                    raise
                log.debug("%s: HEAD failed (%s); falling back to GET", what, exc.kind)
            resp = await self._fetch(
                "GET",
                target,
                ref,
                path,
                what=what,
                accept=ACCEPT_ALL,
                limit=self.settings.max_manifest_bytes,
            )
            return self._check_manifest_digest(resp, target, tag, what)

        return await self._on_hosts(ref, on)

    async def get_manifest(self, ref: ImageRef, reference: str) -> Manifest | None:
        """Fetch a manifest by tag or digest in ``ref``'s repository; None when 404.

        The bytes are hashed while read: a digest ``reference`` must match them, and so must
        a ``Docker-Content-Digest`` header when the registry sends one.
        """
        what = f"manifest {_label(ref, reference)}"
        if not (is_digest(reference) or _TAG.match(reference)):
            raise RegistryError("invalid", f"{what}: not a tag or digest", ref.registry)
        path = f"manifests/{reference}"

        async def on(target: _Target) -> Manifest | None:
            try:
                resp = await self._fetch(
                    "GET",
                    target,
                    ref,
                    path,
                    what=what,
                    accept=ACCEPT_ALL,
                    limit=self.settings.max_manifest_bytes,
                )
            except RegistryError as exc:
                if exc.kind == "not_found":
                    return None
                raise
            digest = self._check_manifest_digest(resp, target, reference, what)
            return parse_manifest(resp.body, digest, resp.headers.get("Content-Type"))

        return await self._on_hosts(ref, on, retry_on_none=True)

    async def get_blob(
        self, ref: ImageRef, descriptor: Descriptor, max_bytes: int | None = None
    ) -> bytes:
        """Fetch a blob, check size and digest against ``descriptor``.

        ``max_bytes`` (default ``max_blob_bytes``) caps what we accept; a descriptor that
        declares more fails with kind ``too_large`` before anything is fetched.
        """
        cap = self.settings.max_blob_bytes if max_bytes is None else max_bytes
        what = f"blob {ref.name}@{descriptor.digest}"
        if not is_digest(descriptor.digest):
            raise RegistryError("invalid", f"{what}: malformed digest", ref.registry)
        if descriptor.size > cap:
            raise RegistryError(
                "too_large",
                f"{what}: descriptor declares {descriptor.size} bytes, over the {cap}-byte cap",
                ref.registry,
            )

        async def on(target: _Target) -> bytes:
            # Reading one byte past the declared size is enough to know the size is wrong.
            resp = await self._fetch(
                "GET",
                target,
                ref,
                f"blobs/{descriptor.digest}",
                what=what,
                accept="*/*",
                limit=descriptor.size,
                oversize="invalid",
            )
            if len(resp.body) != descriptor.size:
                raise RegistryError(
                    "invalid",
                    f"{what} from {target.host}: got {len(resp.body)} bytes, "
                    f"descriptor says {descriptor.size}",
                    target.registry,
                )
            algorithm = descriptor.digest.split(":", 1)[0]
            actual = _hash(resp.body, algorithm)
            if actual != descriptor.digest:
                raise RegistryError(
                    "invalid",
                    f"{what} from {target.host}: content hashes to {actual}",
                    target.registry,
                )
            return resp.body

        return await self._on_hosts(ref, on)

    async def get_referrers(
        self, ref: ImageRef, digest: str, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        """OCI 1.1 referrers of ``digest``; None when the registry lacks the API.

        Follows ``Link: <...>; rel="next"`` pages (same origin, bounded) and filters by
        ``artifact_type`` itself, whether or not the registry applied the filter.
        """
        what = f"referrers of {ref.name}@{digest}"
        if not is_digest(digest):
            raise RegistryError("invalid", f"{what}: malformed digest", ref.registry)
        query: dict[str, str] = {"artifactType": artifact_type} if artifact_type else {}

        async def on(target: _Target) -> list[Descriptor] | None:
            found: list[Descriptor] = []
            path, page_query = f"referrers/{digest}", query
            for page in range(_MAX_REFERRER_PAGES):
                resp = await self._fetch(
                    "GET",
                    target,
                    ref,
                    path,
                    what=what,
                    accept=OCI_INDEX,
                    limit=self.settings.max_manifest_bytes,
                    pass_statuses=frozenset({404, 405}),
                    query=page_query,
                )
                entries = self._referrer_entries(resp, target, what)
                if entries is None:
                    return None if page == 0 else found
                found.extend(entries)
                nxt = self._next_page(resp, target, ref)
                if nxt is None:
                    break
                path, page_query = nxt
            else:
                log.warning("%s: more than %d pages; reading stopped", what, _MAX_REFERRER_PAGES)
            if artifact_type:
                found = [d for d in found if d.artifact_type == artifact_type]
            return found

        return await self._on_hosts(ref, on, retry_on_none=True)

    # ----------------------------------------------------------------- digest and parsing

    @staticmethod
    def _check_manifest_digest(resp: _Response, target: _Target, reference: str, what: str) -> str:
        """The manifest's digest after checking the requested and the claimed digest."""
        if is_digest(reference):
            actual = _hash(resp.body, reference.split(":", 1)[0])
            if actual != reference:
                raise RegistryError(
                    "invalid",
                    f"{what} from {target.host}: content hashes to {actual}",
                    target.registry,
                )
            digest = reference
        else:
            digest = _hash(resp.body, "sha256")
        claimed = resp.headers.get("Docker-Content-Digest")
        if claimed is not None:
            if not is_digest(claimed):
                raise RegistryError(
                    "invalid",
                    f"{what} from {target.host}: malformed Docker-Content-Digest",
                    target.registry,
                )
            actual = _hash(resp.body, claimed.split(":", 1)[0])
            if actual != claimed:
                raise RegistryError(
                    "invalid",
                    f"{what} from {target.host}: registry claims {claimed}, content hashes "
                    f"to {actual}",
                    target.registry,
                )
        return digest

    @staticmethod
    def _referrer_entries(resp: _Response, target: _Target, what: str) -> list[Descriptor] | None:
        """Descriptors of a referrers answer; None when it says the API is absent."""
        try:
            obj = json.loads(resp.body)
        except (ValueError, UnicodeDecodeError):
            obj = None
        is_index = isinstance(obj, dict) and isinstance(obj.get("manifests"), list)
        # A registry with the API answers an unknown subject with an (empty) index, so a
        # 404 that is not an index (or a 405) means the API is absent.
        if resp.status == 405 or (resp.status == 404 and not is_index):
            return None
        if not isinstance(obj, dict) or not is_index:
            raise RegistryError(
                "invalid",
                f"{what} from {target.host}: answer is not an image index",
                target.registry,
            )
        return [
            Descriptor.from_json(d, f"{what} entry {i}") for i, d in enumerate(obj["manifests"])
        ]

    @staticmethod
    def _next_page(
        resp: _Response, target: _Target, ref: ImageRef
    ) -> tuple[str, dict[str, str]] | None:
        """The next page's (path under the repository, query), from an RFC 8288 Link."""
        link = resp.headers.get("Link")
        if not link:
            return None
        for part in link.split(","):
            url_part, _, params = part.partition(";")
            if 'rel="next"' not in params.replace(" ", "") and "rel=next" not in params:
                continue
            raw = url_part.strip().lstrip("<").rstrip(">")
            nxt = resp.url.join(URL(raw))
            prefix = f"/v2/{ref.repository}/"
            if nxt.origin() != target.base.origin() or not nxt.path.startswith(prefix):
                log.warning("ignoring referrers next page on another origin or repository")
                return None
            rest = nxt.path[len(prefix) :]
            return rest, {k: v for k, v in nxt.query.items()}
        return None

    # ----------------------------------------------------------------- hosts and mirrors

    def _targets(self, ref: ImageRef) -> list[_Target]:
        out: list[_Target] = []
        mirror = self._mirrors.get(normalize_registry_key(ref.registry))
        if mirror:
            out.append(self._target(ref.registry, mirror))
        api_host = DOCKER_HUB_API if ref.registry == DOCKER_HUB else ref.registry
        out.append(self._target(ref.registry, api_host, cred_key=ref.registry))
        return out

    def _target(self, registry: str, host: str, cred_key: str | None = None) -> _Target:
        scheme = "http" if self._is_insecure(host) else "https"
        return _Target(registry, host, URL(f"{scheme}://{host}"), cred_key or host)

    def _is_insecure(self, host: str) -> bool:
        return normalize_registry_key(host) in self._insecure

    async def _on_hosts(
        self,
        ref: ImageRef,
        op: Callable[[_Target], Awaitable[_T]],
        retry_on_none: bool = False,
    ) -> _T:
        targets = self._targets(ref)
        for i, target in enumerate(targets):
            last = i == len(targets) - 1
            try:
                result = await op(target)
            except RegistryError as exc:
                if last:
                    raise
                log.warning(
                    "mirror %s failed (%s); trying %s", target.host, exc.kind, targets[-1].host
                )
                continue
            if result is None and retry_on_none and not last:
                log.info(
                    "mirror %s has nothing for %s; trying %s",
                    target.host,
                    ref.name,
                    targets[-1].host,
                )
                continue
            return result
        raise AssertionError("unreachable: the origin is always the last target")

    # ----------------------------------------------------------------- HTTP with auth

    async def _fetch(
        self,
        method: str,
        target: _Target,
        ref: ImageRef,
        path: str,
        *,
        what: str,
        accept: str,
        limit: int = 0,
        oversize: RegistryErrorKind = "too_large",
        pass_statuses: frozenset[int] = frozenset(),
        query: Mapping[str, str] | None = None,
    ) -> _Response:
        """One registry API call with the auth dance; non-2xx statuses raise RegistryError
        unless listed in ``pass_statuses``."""
        url = target.base.with_path(f"/v2/{ref.repository}/{path}").with_query(query or None)
        scope = pull_scope(ref.repository)
        cred = self._credentials.lookup(target.cred_key, ref.repository)
        fingerprint = cred.fingerprint if cred else "anonymous"
        headers = {"Accept": accept}
        authorization = self._known_authorization(target.host, scope, cred, fingerprint)

        async def send(authorization: str | None) -> _Response:
            return await self._send(
                method,
                url,
                headers,
                authorization,
                target=target,
                what=what,
                limit=limit,
                oversize=oversize,
            )

        resp = await send(authorization)
        if resp.status == 401:
            # the challenge flow: the registry names the realm and scope to fetch a token for
            self._forget_refused(target.host, scope, fingerprint, authorization)
            challenges = tuple(
                c for h in resp.headers.getall("WWW-Authenticate", []) for c in parse_challenges(h)
            )
            authorization = await self._authorize(
                target, challenges, scope, cred, fingerprint, what
            )
            resp = await send(authorization)
            if resp.status == 401:
                self._forget_refused(target.host, scope, fingerprint, authorization)
        if 200 <= resp.status < 300 or resp.status in pass_statuses:
            return resp
        raise self._status_error(resp, target, what, cred is not None)

    def _forget_refused(
        self, host: str, scope: str, fingerprint: str, authorization: str | None
    ) -> None:
        """Drop a cached token the registry just refused (not one fetched meanwhile)."""
        cached = self._shared.tokens.get(host, scope, fingerprint)
        if cached is not None and authorization == f"Bearer {cached.token}":
            self._shared.tokens.discard(host, scope, fingerprint)

    @staticmethod
    def _status_error(
        resp: _Response, target: _Target, what: str, had_credentials: bool
    ) -> RegistryError:
        detail = _registry_error_codes(resp.body)
        suffix = f" ({detail})" if detail else ""
        where = f"{what} from {target.host}"
        kind: RegistryErrorKind
        if resp.status in (401, 403):
            kind = "unauthorized"
            why = "credentials refused" if had_credentials else "no credentials configured"
            msg = f"{where}: HTTP {resp.status}, {why}{suffix}"
        elif resp.status == 404:
            kind, msg = "not_found", f"{where}: not found{suffix}"
        elif resp.status == 429:
            kind, msg = "server", f"{where}: rate limited (HTTP 429){suffix}"
        else:
            kind, msg = "server", f"{where}: HTTP {resp.status}{suffix}"
        return RegistryError(kind, msg, target.registry)

    def _known_authorization(
        self, host: str, scope: str, cred: RegistryCredential | None, fingerprint: str
    ) -> str | None:
        token = self._shared.tokens.get(host, scope, fingerprint)
        if token is not None:
            return f"Bearer {token.token}"
        if cred is not None and host in self._shared.basic_hosts and cred.username:
            return _basic(cred)
        return None

    async def _authorize(
        self,
        target: _Target,
        challenges: tuple[Challenge, ...],
        scope: str,
        cred: RegistryCredential | None,
        fingerprint: str,
        what: str,
    ) -> str:
        """The Authorization value answering one of ``challenges`` (Bearer preferred)."""
        by_scheme = {c.scheme: c for c in challenges}
        bearer = by_scheme.get("bearer")
        if bearer is not None:
            token = await self._shared_token(target, bearer, scope, cred, fingerprint, what)
            return f"Bearer {token.token}"
        if "basic" in by_scheme:
            if cred is None or not cred.username:
                raise RegistryError(
                    "unauthorized",
                    f"{what} from {target.host}: registry requires a login and no credentials "
                    f"are configured for it",
                    target.registry,
                )
            self._shared.basic_hosts.add(target.host)
            return _basic(cred)
        raise RegistryError(
            "unauthorized",
            f"{what} from {target.host}: HTTP 401 without a Basic or Bearer challenge",
            target.registry,
        )

    async def _shared_token(
        self,
        target: _Target,
        challenge: Challenge,
        scope: str,
        cred: RegistryCredential | None,
        fingerprint: str,
        what: str,
    ) -> BearerToken:
        """A cached token, or the result of the one fetch in flight for this key."""
        cached = self._shared.tokens.get(target.host, scope, fingerprint)
        if cached is not None:
            return cached
        key = (target.host, scope, fingerprint)
        pending = self._shared.token_fetches.get(key)
        if pending is None:

            async def fetch() -> BearerToken:
                token = await self._fetch_token(target, challenge, scope, cred, what)
                self._shared.tokens.put(target.host, scope, fingerprint, token)
                return token

            pending = asyncio.ensure_future(fetch())
            self._shared.token_fetches[key] = pending

            def done(fut: asyncio.Future[BearerToken]) -> None:
                self._shared.token_fetches.pop(key, None)
                if not fut.cancelled():
                    fut.exception()  # retrieved here so an abandoned failure is not logged

            pending.add_done_callback(done)
        # Shielded: one waiter giving up must not cancel the fetch the others wait on.
        return await asyncio.shield(pending)

    async def _fetch_token(
        self,
        target: _Target,
        challenge: Challenge,
        scope: str,
        cred: RegistryCredential | None,
        what: str,
    ) -> BearerToken:
        """Trade our credential (or nothing, anonymously) for a bearer token at the realm."""
        realm = challenge.realm
        if not realm:
            raise RegistryError(
                "unauthorized",
                f"{what} from {target.host}: Bearer challenge without a realm",
                target.registry,
            )
        try:
            realm_url = URL(realm)
        except ValueError:
            realm_url = URL()
        if not realm_url.is_absolute() or realm_url.scheme not in ("https", "http"):
            raise RegistryError(
                "invalid",
                f"{what} from {target.host}: token realm is not an http(s) URL",
                target.registry,
            )
        realm_host = _host_port(realm_url)
        if realm_url.scheme == "http" and not self._is_insecure(realm_host):
            raise RegistryError(
                "unauthorized",
                f"{what} from {target.host}: refusing plain-HTTP token realm {realm_host} "
                f"(not an insecure registry)",
                target.registry,
            )
        params = {"scope": challenge.params.get("scope") or scope}
        if challenge.params.get("service"):
            params["service"] = challenge.params["service"]
        token_what = f"token for {what} at {realm_host}"
        started = time.monotonic()
        if cred is not None and cred.identity_token:
            # OAuth2 refresh-token grant, as the Docker CLI does with an identity token.
            form = {
                **params,
                "grant_type": "refresh_token",
                "refresh_token": cred.identity_token,
                "client_id": _CLIENT_ID,
            }
            resp = await self._send(
                "POST",
                realm_url,
                {"Accept": "application/json"},
                None,
                target=target,
                what=token_what,
                limit=MAX_TOKEN_RESPONSE_BYTES,
                form=form,
            )
        else:
            if cred is not None and cred.username:
                params["account"] = cred.username
            authorization = _basic(cred) if cred is not None and cred.username else None
            resp = await self._send(
                "GET",
                realm_url.update_query(params),
                {"Accept": "application/json"},
                authorization,
                target=target,
                what=token_what,
                limit=MAX_TOKEN_RESPONSE_BYTES,
            )
        if resp.status in (401, 403):
            why = "refused our credentials" if cred is not None else "requires credentials"
            raise RegistryError(
                "unauthorized",
                f"{token_what}: token service {why} (HTTP {resp.status})",
                target.registry,
            )
        if resp.status != 200:
            raise RegistryError(
                "server",
                f"{token_what}: token service answered HTTP {resp.status}",
                target.registry,
            )
        return parse_token_response(resp.body, started, realm_host)

    def _session(self) -> aiohttp.ClientSession:
        session = self._shared.session
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                ssl=self._ssl, limit=64, limit_per_host=8, ttl_dns_cache=60
            )
            # No cookies (nothing leaks between registries) and no transparent
            # decompression (digests are over the bytes as sent).
            session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                headers={"User-Agent": _USER_AGENT},
            )
            self._shared.session = session
        return session

    async def _send(
        self,
        method: str,
        url: URL,
        headers: Mapping[str, str],
        authorization: str | None,
        *,
        target: _Target,
        what: str,
        limit: int,
        oversize: RegistryErrorKind = "too_large",
        form: Mapping[str, str] | None = None,
    ) -> _Response:
        """One HTTP exchange, following redirects by hand so credentials stay on their origin."""
        session = self._session()
        hdrs = {"Accept-Encoding": "identity", **headers}
        if authorization:
            hdrs["Authorization"] = authorization
        origin = url.origin()
        current = url
        data: Mapping[str, str] | None = form
        timeout = aiohttp.ClientTimeout(total=self.settings.request_timeout)
        for _hop in range(_MAX_REDIRECTS + 1):
            where = f"{what} from {_host_port(current)}"
            try:
                async with session.request(
                    method,
                    current,
                    headers=hdrs,
                    data=data,
                    allow_redirects=False,
                    timeout=timeout,
                ) as resp:
                    log.debug("%s %s -> %d", method, current.with_query(None), resp.status)
                    if resp.status not in _REDIRECTS:
                        body = await _read_body(resp, method, limit, oversize, where, target)
                        return _Response(resp.status, resp.headers, body, current)
                    location = resp.headers.get("Location")
                    status = resp.status
            except RegistryError:
                raise
            except TimeoutError:
                raise RegistryError(
                    "timeout",
                    f"{where}: no answer within {self.settings.request_timeout:g}s",
                    target.registry,
                ) from None
            except aiohttp.ClientSSLError as exc:
                raise RegistryError(
                    "unreachable", f"{where}: TLS failed ({_reason(exc)})", target.registry
                ) from None
            except aiohttp.ClientConnectorError as exc:
                raise RegistryError(
                    "unreachable", f"{where}: cannot connect ({_reason(exc)})", target.registry
                ) from None
            except aiohttp.ClientError as exc:
                raise RegistryError(
                    "unreachable",
                    f"{where}: connection failed ({_reason(exc)})",
                    target.registry,
                ) from None
            current = self._redirect_target(current, location, where, target)
            if current.origin() != origin:
                hdrs.pop("Authorization", None)
            if status == 303 or (status in (301, 302) and method == "POST"):
                method, data = "GET", None
        raise RegistryError(
            "invalid", f"{what}: more than {_MAX_REDIRECTS} redirects", target.registry
        )

    def _redirect_target(
        self, current: URL, location: str | None, where: str, target: _Target
    ) -> URL:
        if not location:
            raise RegistryError("invalid", f"{where}: redirect without Location", target.registry)
        try:
            nxt = current.join(URL(location))
        except ValueError:
            raise RegistryError(
                "invalid", f"{where}: malformed redirect", target.registry
            ) from None
        if nxt.scheme == "https":
            return nxt
        if nxt.scheme == "http" and self._is_insecure(_host_port(nxt)):
            return nxt
        raise RegistryError(
            "invalid",
            f"{where}: refusing redirect to {nxt.scheme}://{_host_port(nxt)} "
            f"(plain HTTP only for insecure registries)",
            target.registry,
        )


async def _read_body(
    resp: aiohttp.ClientResponse,
    method: str,
    limit: int,
    oversize: RegistryErrorKind,
    where: str,
    target: _Target,
) -> bytes:
    """The body, capped while streaming: over ``limit`` raises ``oversize`` for 2xx answers;
    error bodies are only kept (truncated) for their messages."""
    if method == "HEAD":
        return b""
    ok = 200 <= resp.status < 300
    cap = limit if ok else _MAX_ERROR_BODY

    def too_much(seen: str) -> RegistryError:
        if oversize == "too_large":
            msg = f"{where}: {seen} bytes, over the {limit}-byte limit"
        else:
            msg = f"{where}: {seen} bytes, more than the {limit} expected"
        return RegistryError(oversize, msg, target.registry)

    announced = resp.content_length
    if ok and announced is not None and announced > cap:
        raise too_much(str(announced))
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(64 * 1024):
        buf += chunk[: cap + 1 - len(buf)]
        if len(buf) > cap:
            if ok:
                raise too_much("more than " + str(cap))
            del buf[cap:]
            break
    return bytes(buf)


def _host_port(url: URL) -> str:
    host = url.raw_host or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{url.explicit_port}" if url.explicit_port else host


def _reason(exc: BaseException) -> str:
    """A short cause without URLs or headers (which may carry signed query strings)."""
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror
    if isinstance(os_error, ssl.SSLError) and os_error.reason:
        return str(os_error.reason)
    return type(exc).__name__


def _basic(cred: RegistryCredential) -> str:
    raw = f"{cred.username}:{cred.password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")

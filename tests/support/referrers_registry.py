"""A stand-in OCI registry that speaks the OCI distribution spec 1.1 read API, referrers included.

Why a stand-in: Debian's ``docker-registry`` (distribution 2.8) predates OCI 1.1 and answers
``GET /v2/<name>/referrers/<digest>`` with 404, so the referrers-API path of evidence discovery
cannot be exercised against it. This aiohttp app implements, over TLS on 127.0.0.1, exactly the
endpoints that path uses, with the status codes, headers and bodies the spec prescribes
(``opencontainers/distribution-spec`` v1.1 ``spec.md``):

- ``GET /v2/`` (end-1): 200 with ``Docker-Distribution-API-Version: registry/2.0``.
- ``GET``/``HEAD /v2/<name>/manifests/<reference>`` (end-3), by tag or digest: 200 with the
  exact stored bytes, ``Content-Type`` = the manifest's media type, ``Docker-Content-Digest``
  and ``Content-Length``; 404 ``MANIFEST_UNKNOWN`` otherwise.
- ``GET``/``HEAD /v2/<name>/blobs/<digest>`` (end-2): 200 with the bytes; 404 ``BLOB_UNKNOWN``.
- ``GET /v2/<name>/referrers/<digest>[?artifactType=T]`` (end-12a/b): always 200 for a known
  repository (an unknown subject gives an empty index, never 404), body an image index whose
  ``manifests`` are descriptors of every manifest whose ``subject`` is ``<digest>``, each with
  ``artifactType`` (the manifest's, else its config media type) and the manifest's
  ``annotations``. With ``artifactType`` the list is filtered and the response carries
  ``OCI-Filters-Applied: artifactType``. A malformed digest is 400 ``DIGEST_INVALID``; an unknown
  repository 404 ``NAME_UNKNOWN``.
- Errors use the spec's JSON error body ``{"errors": [{"code", "message", "detail"}]}``.

Content is put in by the test through :meth:`ReferrersRegistry.put_blob` and
:meth:`ReferrersRegistry.put_manifest`; every request is recorded in ``requests`` so tests can
show which endpoints reprogate used.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from controller.oci.manifest import OCI_INDEX, OCI_MANIFEST, Descriptor
from tests.support.tls import TlsFiles, server_ssl_context

__all__ = [
    "EMPTY_CONFIG",
    "OCI_EMPTY",
    "RecordedRequest",
    "ReferrersRegistry",
    "referrer_manifest",
    "referrers_index",
    "running_referrers_registry",
]

OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _canon(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _descriptor_json(desc: Descriptor) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size}
    if desc.artifact_type:
        out["artifactType"] = desc.artifact_type
    if desc.annotations:
        out["annotations"] = dict(desc.annotations)
    return out


def referrer_manifest(
    subject: Descriptor,
    layer: Descriptor,
    artifact_type: str,
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    """An OCI 1.1 artifact manifest (image manifest with ``artifactType`` and ``subject``,
    empty config) as ``cosign`` v3 attaches a Sigstore bundle: one layer, the bundle."""
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {
            "mediaType": OCI_EMPTY,
            "digest": _digest(EMPTY_CONFIG),
            "size": len(EMPTY_CONFIG),
        },
        "layers": [_descriptor_json(layer)],
        "subject": _descriptor_json(subject),
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    return _canon(doc)


def referrers_index(referrers: list[Descriptor]) -> bytes:
    """An OCI image index listing ``referrers`` (the referrers API answer, and what the
    referrers tag schema stores at ``sha256-<hex>``)."""
    return _canon(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [_descriptor_json(d) for d in referrers],
        }
    )


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stand-in answered."""

    method: str
    path: str
    query: Mapping[str, str]
    status: int


@dataclass
class _Stored:
    raw: bytes
    media_type: str


@dataclass
class ReferrersRegistry:
    """In-memory content for the stand-in registry, and the aiohttp app serving it."""

    blobs: dict[tuple[str, str], bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], _Stored] = field(default_factory=dict)
    tags: dict[tuple[str, str], str] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- content ----------------------------------------------------------------------------

    def put_blob(self, repo: str, data: bytes, media_type: str) -> Descriptor:
        """Store a blob in ``repo``; its descriptor."""
        digest = _digest(data)
        with self._lock:
            self.blobs[(repo, digest)] = data
        return Descriptor(media_type=media_type, digest=digest, size=len(data))

    def put_manifest(
        self, repo: str, raw: bytes, media_type: str, tag: str | None = None
    ) -> Descriptor:
        """Store a manifest (exact bytes) in ``repo``, optionally tagged; its descriptor."""
        digest = _digest(raw)
        with self._lock:
            self.manifests[(repo, digest)] = _Stored(raw, media_type)
            if tag is not None:
                self.tags[(repo, tag)] = digest
        return Descriptor(media_type=media_type, digest=digest, size=len(raw))

    def put_image(self, repo: str, content: bytes) -> Descriptor:
        """A minimal OCI image (one layer of ``content``); its manifest descriptor."""
        config = self.put_blob(
            repo,
            _canon(
                {
                    "architecture": "amd64",
                    "os": "linux",
                    "rootfs": {"type": "layers", "diff_ids": [_digest(content)]},
                }
            ),
            "application/vnd.oci.image.config.v1+json",
        )
        layer = self.put_blob(repo, content, "application/vnd.oci.image.layer.v1.tar")
        manifest = _canon(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": _descriptor_json(config),
                "layers": [_descriptor_json(layer)],
            }
        )
        return self.put_manifest(repo, manifest, OCI_MANIFEST)

    def attach(
        self,
        repo: str,
        subject: Descriptor,
        payload: bytes,
        media_type: str,
        annotations: Mapping[str, str] | None = None,
    ) -> Descriptor:
        """Attach ``payload`` to ``subject`` as an OCI 1.1 referrer of ``artifactType``
        ``media_type`` (cosign v3's layout for a Sigstore bundle); the referrer's descriptor."""
        self.put_blob(repo, EMPTY_CONFIG, OCI_EMPTY)
        layer = self.put_blob(repo, payload, media_type)
        raw = referrer_manifest(subject, layer, media_type, annotations)
        return self.put_manifest(repo, raw, OCI_MANIFEST)

    def requests_to(self, fragment: str) -> list[RecordedRequest]:
        """Recorded requests whose path contains ``fragment``."""
        with self._lock:
            return [r for r in self.requests if fragment in r.path]

    # -- protocol ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application answering the OCI distribution read endpoints."""
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/v2/", self._base)
        app.router.add_get("/v2/{name:.+}/manifests/{reference}", self._manifest)
        app.router.add_get("/v2/{name:.+}/blobs/{digest}", self._blob)
        app.router.add_get("/v2/{name:.+}/referrers/{digest}", self._referrers, allow_head=False)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as exc:
            response = exc
        response.headers["Docker-Distribution-API-Version"] = "registry/2.0"
        with self._lock:
            self.requests.append(
                RecordedRequest(request.method, request.path, dict(request.query), response.status)
            )
        return response

    def _known_repo(self, name: str) -> bool:
        with self._lock:
            return any(repo == name for repo, _ in self.manifests)

    async def _base(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def _manifest(self, request: web.Request) -> web.Response:
        name, reference = request.match_info["name"], request.match_info["reference"]
        if not (_DIGEST.fullmatch(reference) or _TAG.fullmatch(reference)):
            return _error(400, "MANIFEST_INVALID", "reference is not a tag or digest")
        with self._lock:
            digest = (
                reference if reference.startswith("sha256:") else self.tags.get((name, reference))
            )
            stored = self.manifests.get((name, digest)) if digest else None
        if stored is None or digest is None:
            return _error(404, "MANIFEST_UNKNOWN", "manifest unknown", {"reference": reference})
        return web.Response(
            body=stored.raw,
            headers={
                "Content-Type": stored.media_type,
                "Docker-Content-Digest": digest,
            },
        )

    async def _blob(self, request: web.Request) -> web.Response:
        name, digest = request.match_info["name"], request.match_info["digest"]
        if not _DIGEST.fullmatch(digest):
            return _error(400, "DIGEST_INVALID", "provided digest is malformed")
        with self._lock:
            data = self.blobs.get((name, digest))
        if data is None:
            return _error(404, "BLOB_UNKNOWN", "blob unknown to registry", {"digest": digest})
        return web.Response(
            body=data,
            headers={"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest},
        )

    async def _referrers(self, request: web.Request) -> web.Response:
        name, digest = request.match_info["name"], request.match_info["digest"]
        if not _DIGEST.fullmatch(digest):
            return _error(400, "DIGEST_INVALID", "provided digest is malformed")
        if not self._known_repo(name):
            return _error(404, "NAME_UNKNOWN", "repository name not known to registry")
        wanted = request.query.get("artifactType")
        found: list[Descriptor] = []
        with self._lock:
            items = [(d, s) for (repo, d), s in self.manifests.items() if repo == name]
        for manifest_digest, stored in items:
            doc = json.loads(stored.raw)
            subject = doc.get("subject")
            if not isinstance(subject, dict) or subject.get("digest") != digest:
                continue
            artifact_type = doc.get("artifactType") or doc.get("config", {}).get("mediaType")
            if wanted is not None and artifact_type != wanted:
                continue
            found.append(
                Descriptor(
                    media_type=stored.media_type,
                    digest=manifest_digest,
                    size=len(stored.raw),
                    annotations=doc.get("annotations") or {},
                    artifact_type=artifact_type,
                )
            )
        headers = {"Content-Type": OCI_INDEX}
        if wanted is not None:
            headers["OCI-Filters-Applied"] = "artifactType"
        return web.Response(body=referrers_index(found), headers=headers)


def _error(
    status: int, code: str, message: str, detail: Mapping[str, str] | None = None
) -> web.Response:
    body = {"errors": [{"code": code, "message": message, "detail": dict(detail or {})}]}
    return web.json_response(body, status=status)


@dataclass(frozen=True)
class RunningStandIn:
    """A started stand-in: ``host`` is ``127.0.0.1:PORT``."""

    host: str
    content: ReferrersRegistry

    def ref(self, repository: str, digest: str) -> str:
        """``host/repository@digest``."""
        return f"{self.host}/{repository}@{digest}"


@contextlib.contextmanager
def running_referrers_registry(
    tls: TlsFiles, content: ReferrersRegistry | None = None
) -> Iterator[RunningStandIn]:
    """Serve ``content`` over TLS (certificate from ``tls``) on 127.0.0.1 from a background
    thread with its own event loop, so synchronous tests and ``asyncio.run`` callers (the
    ``reprogate`` CLI) can both reach it."""
    registry = content or ReferrersRegistry()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    address: list[str] = []
    runner = web.AppRunner(registry.app(), access_log=None)

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(tls))
        loop.run_until_complete(site.start())
        address.append(f"127.0.0.1:{runner.addresses[0][1]}")
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name="referrers-registry", daemon=True)
    thread.start()
    if not ready.wait(timeout=20):
        raise RuntimeError("the referrers stand-in registry did not start")
    try:
        yield RunningStandIn(address[0], registry)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=20)

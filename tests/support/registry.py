"""Real registries for tests, and synchronous helpers that push content into them.

- ``launch_registry`` runs Debian's ``/usr/bin/docker-registry`` (distribution 2.8) on
  127.0.0.1 with TLS from the test CA and filesystem storage; ``RunningRegistry`` stops and
  restarts it on the same port and storage.
- ``TokenServer`` is a small token service (distribution "Token Authentication
  Specification") issuing ES256 JWTs that the registry verifies against its rootcertbundle.
- ``push_*`` helpers speak the OCI distribution push API with urllib, authenticating the way
  a client would (Basic, or Bearer with a ``pull,push`` token), so they work on every fixture.
- ``serve_app`` / ``silent_server`` run stand-in servers inside a test's event loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import http.server
import io
import json
import os
import secrets
import socket
import ssl
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from controller.oci.manifest import OCI_INDEX, OCI_MANIFEST, Descriptor
from tests.support.tls import SigningIdentity, TlsFiles, client_ssl_context, server_ssl_context

__all__ = [
    "OCI_CONFIG",
    "OCI_LAYER_GZIP",
    "REGISTRY_BINARY",
    "PushedLayout",
    "RunningRegistry",
    "TokenRequest",
    "TokenServer",
    "free_port",
    "launch_registry",
    "push_blob",
    "push_cosign_manifest",
    "push_index",
    "push_manifest",
    "push_oci_layout",
    "push_random_image",
    "serve_app",
    "silent_server",
    "write_htpasswd",
]

REGISTRY_BINARY = Path(os.environ.get("REPROGATE_TEST_REGISTRY", "/usr/bin/docker-registry"))
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
_START_TIMEOUT = 20.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _opener(ca_file: Path) -> urllib.request.OpenerDirector:
    # No proxies: tests only ever talk to 127.0.0.1.
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPSHandler(context=client_ssl_context(ca_file)),
    )


# --------------------------------------------------------------------------- token server


@dataclass(frozen=True)
class TokenRequest:
    """One request the token server answered (for counting and asserting on)."""

    method: str
    scope: str
    account: str | None  # the authenticated user, None when anonymous
    granted: bool


class TokenServer:
    """A TLS token service on 127.0.0.1 issuing registry JWTs (ES256, x5c header).

    Users authenticate with Basic (``users``) on GET, or with an OAuth2 refresh-token POST
    (``refresh_tokens`` maps token -> user). Authenticated users get the actions they ask
    for; anonymous requests get a token with no access, so the registry still says 401.
    """

    def __init__(
        self,
        tls: TlsFiles,
        signer: SigningIdentity,
        *,
        service: str,
        issuer: str,
        users: Mapping[str, str],
        refresh_tokens: Mapping[str, str] | None = None,
        lifetime: int = 300,
    ) -> None:
        self.service = service
        self.issuer = issuer
        self.users = dict(users)
        self.refresh_tokens = dict(refresh_tokens or {})
        self.lifetime = lifetime
        self.requests: list[TokenRequest] = []
        self._lock = threading.Lock()
        self._signer = signer
        self._x5c = base64.b64encode(signer.cert.public_bytes(serialization.Encoding.DER)).decode()
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_token_handler(self))
        server.socket = server_ssl_context(tls).wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True
        self._server = server
        self.port: int = server.server_address[1]
        self.realm = f"https://127.0.0.1:{self.port}/token"
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def count(self, scope: str | None = None) -> int:
        """How many token requests arrived (for ``scope`` only, when given)."""
        with self._lock:
            return sum(1 for r in self.requests if scope is None or r.scope == scope)

    def stop(self) -> None:
        """Shut the server down."""
        self._server.shutdown()
        self._server.server_close()

    def issue(self, account: str | None, scopes: Sequence[str]) -> str:
        """A signed JWT granting ``scopes`` to ``account`` (no access when anonymous)."""
        access: list[dict[str, Any]] = []
        if account is not None:
            for scope in scopes:
                parts = scope.split(":")
                if len(parts) >= 3:
                    access.append(
                        {
                            "type": parts[0],
                            "name": ":".join(parts[1:-1]),
                            "actions": parts[-1].split(","),
                        }
                    )
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": account or "",
            "aud": self.service,
            "exp": now + self.lifetime,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        header = {"typ": "JWT", "alg": "ES256", "x5c": [self._x5c]}
        signing_input = f"{_b64url(_canon(header))}.{_b64url(_canon(claims))}".encode()
        der = self._signer.key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input.decode()}.{_b64url(signature)}"

    def _record(self, request: TokenRequest) -> None:
        with self._lock:
            self.requests.append(request)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _canon(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _make_token_handler(server: TokenServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _answer(self, status: int, body: Mapping[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _grant(self, method: str, account: str | None, scopes: list[str]) -> None:
            server._record(TokenRequest(method, " ".join(scopes), account, account is not None))
            token = server.issue(account, scopes)
            self._answer(
                200, {"token": token, "access_token": token, "expires_in": server.lifetime}
            )

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            scopes = query.get("scope", [])
            account: str | None = None
            header = self.headers.get("Authorization", "")
            if header.startswith("Basic "):
                try:
                    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                except ValueError:
                    user, password = "", ""
                if server.users.get(user) != password or not user:
                    server._record(TokenRequest("GET", " ".join(scopes), None, False))
                    self._answer(401, {"details": "bad credentials"})
                    return
                account = user
            self._grant("GET", account, scopes)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            scopes = form.get("scope", [])
            refresh = form.get("refresh_token", [""])[0]
            if form.get("grant_type", [""])[0] != "refresh_token" or refresh not in (
                server.refresh_tokens
            ):
                server._record(TokenRequest("POST", " ".join(scopes), None, False))
                self._answer(401, {"details": "bad refresh token"})
                return
            self._grant("POST", server.refresh_tokens[refresh], scopes)

    return Handler


# --------------------------------------------------------------------------- registry process


@dataclass
class RunningRegistry:
    """A docker-registry process on 127.0.0.1 with TLS; restartable on the same port."""

    host: str  # "127.0.0.1:PORT"
    url: str  # "https://127.0.0.1:PORT"
    ca_file: Path
    config_file: Path
    storage_dir: Path
    log_file: Path
    username: str | None = None
    password: str | None = None
    token_server: TokenServer | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def ref(self, repository: str, tag: str | None = None, digest: str | None = None) -> str:
        """``host/repository[:tag][@digest]`` for this registry."""
        out = f"{self.host}/{repository}"
        if tag:
            out += f":{tag}"
        if digest:
            out += f"@{digest}"
        return out

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start (or restart) the registry and wait until ``/v2/`` answers."""
        if self.running:
            return
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                [str(REGISTRY_BINARY), "serve", str(self.config_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        self._wait_ready()

    def stop(self) -> None:
        """Stop the registry process (storage is kept)."""
        proc, self._process = self._process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def _wait_ready(self) -> None:
        opener = _opener(self.ca_file)
        deadline = time.monotonic() + _START_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"docker-registry exited early:\n{self._log_tail()}")
            try:
                with opener.open(f"{self.url}/v2/", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code == 401:  # auth-enabled registries answer 401: it is up
                    return
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry not ready ({last}):\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"


def launch_registry(
    workdir: Path,
    tls: TlsFiles,
    *,
    auth: Mapping[str, Any] | None = None,
    username: str | None = None,
    password: str | None = None,
    token_server: TokenServer | None = None,
) -> RunningRegistry:
    """Write a config into ``workdir`` and start a registry on a free 127.0.0.1 port.

    ``auth`` is the registry's ``auth:`` config section (``htpasswd`` or ``token``);
    ``username``/``password`` are what push helpers use against it.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": True},
        },
        "http": {
            "addr": f"127.0.0.1:{port}",
            "secret": secrets.token_hex(16),
            "tls": {"certificate": str(tls.server_cert), "key": str(tls.server_key)},
        },
    }
    if auth is not None:
        config["auth"] = dict(auth)
    config_file = workdir / "config.yml"
    config_file.write_text(yaml.safe_dump(config))
    reg = RunningRegistry(
        host=f"127.0.0.1:{port}",
        url=f"https://127.0.0.1:{port}",
        ca_file=tls.ca_cert,
        config_file=config_file,
        storage_dir=storage,
        log_file=workdir / "registry.log",
        username=username,
        password=password,
        token_server=token_server,
    )
    reg.start()
    return reg


def write_htpasswd(path: Path, username: str, password: str) -> bool:
    """Write a bcrypt htpasswd line; False when this Python cannot make bcrypt hashes.

    Uses the system crypt(3) through the stdlib ``crypt`` module (deprecated, present in
    3.11/3.12); docker-registry accepts only bcrypt entries.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return False
    salt = crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 5)
    hashed = crypt.crypt(password, salt)
    if not isinstance(hashed, str) or not hashed.startswith("$2"):
        return False
    path.write_text(f"{username}:{hashed}\n")
    return True


# --------------------------------------------------------------------------- push helpers


_TOKENS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


def _call(
    reg: RunningRegistry,
    method: str,
    url: str,
    repo: str,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> _Answer:
    """One request to ``reg`` with Basic or Bearer (pull,push) auth as it demands."""
    opener = _opener(reg.ca_file)

    def once(authorization: str | None) -> _Answer:
        req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
        if authorization:
            req.add_header("Authorization", authorization)
        try:
            with opener.open(req, timeout=30) as resp:
                return _Answer(resp.status, dict(resp.headers.items()), resp.read())
        except urllib.error.HTTPError as exc:
            return _Answer(exc.code, dict(exc.headers.items()), exc.read())

    key = (reg.host, repo)
    answer = once(_TOKENS.get(key))
    if answer.status != 401:
        return answer
    challenge = answer.headers.get("WWW-Authenticate") or answer.headers.get("Www-Authenticate", "")
    basic = "Basic " + base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
    if challenge.lower().startswith("basic"):
        _TOKENS[key] = basic
    elif challenge.lower().startswith("bearer"):
        params = dict(
            (k.strip(), v.strip().strip('"'))
            for k, _, v in (p.partition("=") for p in challenge[7:].split(","))
        )
        query = urllib.parse.urlencode(
            {"service": params.get("service", ""), "scope": f"repository:{repo}:pull,push"}
        )
        token_req = urllib.request.Request(f"{params['realm']}?{query}")
        token_req.add_header("Authorization", basic)
        with opener.open(token_req, timeout=30) as resp:
            _TOKENS[key] = "Bearer " + json.loads(resp.read())["token"]
    else:
        return answer
    return once(_TOKENS[key])


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(
    reg: RunningRegistry, repo: str, data: bytes, media_type: str = "application/octet-stream"
) -> Descriptor:
    """Upload ``data`` (monolithic POST+PUT) unless present; its descriptor."""
    digest = _sha256(data)
    base = f"{reg.url}/v2/{repo}/blobs"
    if _call(reg, "HEAD", f"{base}/{digest}", repo).status == 200:
        return Descriptor(media_type=media_type, digest=digest, size=len(data))
    started = _call(reg, "POST", f"{base}/uploads/", repo, data=b"")
    if started.status != 202:
        raise RuntimeError(f"blob upload start: HTTP {started.status}: {started.body[:300]!r}")
    location = urllib.parse.urljoin(reg.url, started.headers["Location"])
    sep = "&" if "?" in location else "?"
    done = _call(
        reg,
        "PUT",
        f"{location}{sep}digest={urllib.parse.quote(digest)}",
        repo,
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    if done.status != 201:
        raise RuntimeError(f"blob upload: HTTP {done.status}: {done.body[:300]!r}")
    return Descriptor(media_type=media_type, digest=digest, size=len(data))


def push_manifest(
    reg: RunningRegistry, repo: str, ref: str, manifest_bytes: bytes, media_type: str
) -> str:
    """PUT a manifest under ``ref`` (tag or digest); returns its digest."""
    answer = _call(
        reg,
        "PUT",
        f"{reg.url}/v2/{repo}/manifests/{ref}",
        repo,
        data=manifest_bytes,
        headers={"Content-Type": media_type},
    )
    if answer.status != 201:
        raise RuntimeError(f"manifest push {repo}:{ref}: HTTP {answer.status}: {answer.body!r}")
    digest = _sha256(manifest_bytes)
    claimed = answer.headers.get("Docker-Content-Digest")
    if claimed and claimed != digest:
        raise RuntimeError(f"registry stored {claimed}, expected {digest}")
    return digest


def _descriptor_json(desc: Descriptor) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size}
    if desc.annotations:
        out["annotations"] = dict(desc.annotations)
    return out


def _random_layer() -> tuple[bytes, str]:
    """A gzip tar holding one random file; returns (compressed bytes, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        payload = secrets.token_bytes(1024 + secrets.randbelow(4096))
        info = tarfile.TarInfo(f"data/{secrets.token_hex(4)}.bin")
        info.size = len(payload)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(payload))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), _sha256(tar_bytes)


def _push_image(
    reg: RunningRegistry, repo: str, ref: str | None, layers: int, platform: str
) -> tuple[str, int]:
    os_name, _, arch = platform.partition("/")
    layer_descs: list[Descriptor] = []
    diff_ids: list[str] = []
    for _ in range(layers):
        blob, diff_id = _random_layer()
        layer_descs.append(push_blob(reg, repo, blob, OCI_LAYER_GZIP))
        diff_ids.append(diff_id)
    config = _canon(
        {
            "architecture": arch or "amd64",
            "os": os_name or "linux",
            "config": {"Env": ["PATH=/usr/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": "reprogate test"}],
        }
    )
    config_desc = push_blob(reg, repo, config, OCI_CONFIG)
    manifest = _canon(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor_json(config_desc),
            "layers": [_descriptor_json(d) for d in layer_descs],
        }
    )
    digest = push_manifest(reg, repo, ref or _sha256(manifest), manifest, OCI_MANIFEST)
    return digest, len(manifest)


def push_random_image(
    reg: RunningRegistry,
    repo: str,
    tag: str | None,
    *,
    layers: int = 2,
    platform: str = "linux/amd64",
) -> str:
    """Push an OCI image (real config JSON, ``layers`` random gzip tar layers) tagged ``tag``
    (or by digest only when ``tag`` is None); returns the manifest digest."""
    return _push_image(reg, repo, tag, layers, platform)[0]


def push_index(
    reg: RunningRegistry,
    repo: str,
    tag: str | None,
    platforms: Sequence[str] = ("linux/amd64", "linux/arm64"),
) -> str:
    """Push one random image per platform and an OCI image index over them; its digest."""
    entries: list[dict[str, Any]] = []
    for platform in platforms:
        digest, size = _push_image(reg, repo, None, 1, platform)
        os_name, _, arch = platform.partition("/")
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": size,
                "platform": {"os": os_name, "architecture": arch},
            }
        )
    index = _canon({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    return push_manifest(reg, repo, tag or _sha256(index), index, OCI_INDEX)


def push_cosign_manifest(
    reg: RunningRegistry,
    repo: str,
    image_digest: str,
    suffix: str,
    layers: Sequence[tuple[bytes, str, Mapping[str, str]]],
) -> str:
    """Push a cosign signature/attestation manifest at tag ``sha256-<hex>.<suffix>``.

    ``suffix`` is ``sig`` or ``att`` (a leading dot is allowed); each layer is
    (payload bytes, media type, annotations). Returns the manifest digest.
    """
    algorithm, _, hexpart = image_digest.partition(":")
    tag = f"{algorithm}-{hexpart}.{suffix.lstrip('.')}"
    descs = [
        Descriptor(
            media_type=mt,
            digest=push_blob(reg, repo, payload, mt).digest,
            size=len(payload),
            annotations=dict(ann),
        )
        for payload, mt, ann in layers
    ]
    config = _canon(
        {
            "architecture": "",
            "os": "",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [_sha256(p) for p, _, _ in layers]},
        }
    )
    config_desc = push_blob(reg, repo, config, OCI_CONFIG)
    manifest = _canon(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor_json(config_desc),
            "layers": [_descriptor_json(d) for d in descs],
        }
    )
    return push_manifest(reg, repo, tag, manifest, OCI_MANIFEST)


@dataclass(frozen=True)
class PushedLayout:
    """What ``push_oci_layout`` stored: the image digest and every tag it set."""

    image_digest: str | None
    tags: Mapping[str, str]  # tag -> manifest digest
    manifests: tuple[str, ...]  # every manifest digest pushed


_COSIGN_KIND = "kind"
_COSIGN_SUFFIX = {
    "dev.cosignproject.cosign/sigs": "sig",
    "dev.cosignproject.cosign/atts": "att",
    "dev.cosignproject.cosign/sboms": "sbom",
}
_COSIGN_IMAGE_KINDS = ("dev.cosignproject.cosign/image", "dev.cosignproject.cosign/imageIndex")


def push_oci_layout(
    reg: RunningRegistry, repo: str, layout_dir: Path, tag: str | None = None
) -> PushedLayout:
    """Push an OCI image layout (``index.json`` + ``blobs/``), e.g. one written by
    ``cosign save``, so the registry looks like the original: the image (index) at its
    digest (and at ``tag``, if given) and cosign's ``.sig``/``.att``/``.sbom`` manifests at
    ``sha256-<image hex>.<suffix>``. Entries without a cosign ``kind`` are pushed by digest,
    and tagged with their ``org.opencontainers.image.ref.name`` annotation when present."""
    index = json.loads((layout_dir / "index.json").read_text())
    blob_dir = layout_dir / "blobs"

    def blob_path(digest: str) -> Path:
        algorithm, _, hexpart = digest.partition(":")
        return blob_dir / algorithm / hexpart

    pushed: list[str] = []

    def push_tree(desc: Mapping[str, Any], ref: str | None) -> str:
        digest = desc["digest"]
        raw = blob_path(digest).read_bytes()
        body = json.loads(raw)
        media_type = desc.get("mediaType") or body.get("mediaType") or OCI_MANIFEST
        if "manifests" in body:
            for child in body["manifests"]:
                if blob_path(child["digest"]).exists():
                    push_tree(child, None)
        else:
            for layer in [body.get("config"), *body.get("layers", [])]:
                if layer and blob_path(layer["digest"]).exists():
                    push_blob(reg, repo, blob_path(layer["digest"]).read_bytes())
        if digest not in pushed:
            push_manifest(reg, repo, digest, raw, media_type)
            pushed.append(digest)
        if ref is not None:
            push_manifest(reg, repo, ref, raw, media_type)
        return str(digest)

    entries = index.get("manifests", [])
    image_digest: str | None = None
    for entry in entries:
        if entry.get("annotations", {}).get(_COSIGN_KIND) in _COSIGN_IMAGE_KINDS:
            image_digest = push_tree(entry, tag)
    tags: dict[str, str] = {}
    if tag and image_digest:
        tags[tag] = image_digest
    for entry in entries:
        annotations = entry.get("annotations", {})
        kind = annotations.get(_COSIGN_KIND)
        if kind in _COSIGN_IMAGE_KINDS:
            continue
        suffix = _COSIGN_SUFFIX.get(kind or "")
        if suffix is not None and image_digest is not None:
            algorithm, _, hexpart = image_digest.partition(":")
            cosign_tag = f"{algorithm}-{hexpart}.{suffix}"
            tags[cosign_tag] = push_tree(entry, cosign_tag)
        else:
            ref_name = annotations.get("org.opencontainers.image.ref.name")
            digest = push_tree(entry, ref_name)
            if ref_name:
                tags[ref_name] = digest
    return PushedLayout(image_digest=image_digest, tags=tags, manifests=tuple(pushed))


# --------------------------------------------------------------------------- stand-ins


@contextlib.asynccontextmanager
async def serve_app(
    app: web.Application, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    """Run ``app`` on 127.0.0.1 (random port) in the current loop; yields ``127.0.0.1:PORT``."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port: int = runner.addresses[0][1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers; yields
    ``127.0.0.1:PORT``. Stands in for a hung registry."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()

"""RegistryClient against a real docker-registry 2.8 (anonymous, Basic and token auth), plus
small aiohttp stand-ins for behaviour a well-behaved registry cannot show (lying content,
hanging, redirects, the OCI 1.1 referrers API, plain HTTP). Also credentials and auth parsing.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import logging
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from controller.oci.auth import (
    BearerToken,
    TokenCache,
    parse_challenges,
    parse_token_response,
    pull_scope,
)
from controller.oci.client import RegistryClient, RegistrySettings
from controller.oci.credentials import (
    CredentialsError,
    CredentialStore,
    RegistryCredential,
    credentials_from_pull_secret,
    load_docker_config,
    parse_docker_config,
)
from controller.oci.errors import RegistryError
from controller.oci.manifest import OCI_INDEX, OCI_MANIFEST, Descriptor
from controller.oci.reference import ImageRef, parse_image_ref
from tests.support.registry import (
    RunningRegistry,
    free_port,
    push_blob,
    push_index,
    push_oci_layout,
    push_random_image,
    serve_app,
    silent_server,
)
from tests.support.tls import TlsFiles, server_ssl_context

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def settings_for(reg_or_ca: RunningRegistry | TlsFiles, **kw: Any) -> RegistrySettings:
    ca = reg_or_ca.ca_file if isinstance(reg_or_ca, RunningRegistry) else reg_or_ca.ca_cert
    return RegistrySettings(ca_file=str(ca), **kw)


def docker_config(tmp_path: Path, entries: dict[str, Any]) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": entries}))
    return str(path)


def basic_entry(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


async def expect_error(kind: str, call: Awaitable[Any]) -> RegistryError:
    with pytest.raises(RegistryError) as info:
        await call
    assert info.value.kind == kind, info.value.message
    return info.value


# ----------------------------------------------------------------------------- real registry


def test_resolve_tag_and_pinned(registry: RunningRegistry) -> None:
    digest = push_random_image(registry, "client/resolve", "v1")
    other = push_random_image(registry, "client/resolve", "v2")
    assert digest != other

    async def go() -> None:
        async with RegistryClient(settings_for(registry)) as client:
            assert await client.resolve(parse_image_ref(registry.ref("client/resolve", "v1"))) == (
                digest
            )
            assert await client.resolve(parse_image_ref(registry.ref("client/resolve", "v2"))) == (
                other
            )
            # A pinned ref is answered without asking anyone (this host does not exist).
            pinned = parse_image_ref(f"127.0.0.1:1/nowhere@{digest}")
            assert await client.resolve(pinned) == digest
            await expect_error(
                "not_found", client.resolve(parse_image_ref(registry.ref("client/resolve", "nope")))
            )

    run(go())


def test_manifest_by_tag_and_digest(registry: RunningRegistry) -> None:
    digest = push_random_image(registry, "client/manifest", "v1", layers=2)

    async def go() -> None:
        async with RegistryClient(settings_for(registry)) as client:
            ref = parse_image_ref(registry.ref("client/manifest", "v1"))
            by_tag = await client.get_manifest(ref, "v1")
            by_digest = await client.get_manifest(ref, digest)
            assert by_tag is not None and by_digest is not None
            assert by_tag.digest == by_digest.digest == digest == sha256(by_tag.raw)
            assert by_tag.media_type == OCI_MANIFEST and not by_tag.is_index
            assert len(by_tag.layers) == 2 and by_tag.config is not None
            config = await client.get_blob(ref, by_tag.config)
            assert json.loads(config)["os"] == "linux"
            layer = await client.get_blob(ref, by_tag.layers[0])
            assert gzip.decompress(layer)  # the real gzip tar, byte-exact

    run(go())


def test_index(registry: RunningRegistry) -> None:
    digest = push_index(registry, "client/index", "multi", ("linux/amd64", "linux/arm64"))

    async def go() -> None:
        async with RegistryClient(settings_for(registry)) as client:
            ref = parse_image_ref(registry.ref("client/index", "multi"))
            assert await client.resolve(ref) == digest
            index = await client.get_manifest(ref, "multi")
            assert index is not None and index.is_index and index.media_type == OCI_INDEX
            assert [d.platform for d in index.manifests] == ["linux/amd64", "linux/arm64"]
            child = await client.get_manifest(ref, index.manifests[1].digest)
            assert child is not None and child.digest == index.manifests[1].digest

    run(go())


def test_not_found_is_none(registry: RunningRegistry) -> None:
    push_random_image(registry, "client/exists", "v1")

    async def go() -> None:
        async with RegistryClient(settings_for(registry)) as client:
            ref = parse_image_ref(registry.ref("client/exists"))
            assert await client.get_manifest(ref, "missing-tag") is None
            assert await client.get_manifest(ref, "sha256:" + "0" * 64) is None
            unknown_repo = parse_image_ref(registry.ref("client/never-pushed"))
            assert await client.get_manifest(unknown_repo, "v1") is None
            for bad in ("../../v2/_catalog", "sha256:short", "tag?x=1", "ünïcode"):
                await expect_error("invalid", client.get_manifest(ref, bad))

    run(go())


def test_size_caps(registry: RunningRegistry) -> None:
    digest = push_random_image(registry, "client/caps", "v1")
    big = push_blob(registry, "client/caps", b"x" * 5000)

    async def go() -> None:
        ref = parse_image_ref(registry.ref("client/caps", "v1"))
        async with RegistryClient(settings_for(registry, max_manifest_bytes=64)) as client:
            err = await expect_error("too_large", client.get_manifest(ref, digest))
            assert registry.host in err.message
            # resolve() reads no manifest body: the HEAD path answers despite the cap.
            assert await client.resolve(ref) == digest
        async with RegistryClient(settings_for(registry, max_blob_bytes=4096)) as client:
            await expect_error("too_large", client.get_blob(ref, big))
            assert await client.get_blob(ref, big, max_bytes=5000) == b"x" * 5000
            # A descriptor that understates the size: the body runs past it.
            short = Descriptor(big.media_type, big.digest, 100)
            await expect_error("invalid", client.get_blob(ref, short))
            # A descriptor that overstates the size: the body ends early.
            long = Descriptor(big.media_type, big.digest, 5001)
            await expect_error("invalid", client.get_blob(ref, long, max_bytes=10_000))

    run(go())


def test_referrers_absent_on_distribution_2_8(registry: RunningRegistry) -> None:
    digest = push_random_image(registry, "client/referrers", "v1")

    async def go() -> None:
        async with RegistryClient(settings_for(registry)) as client:
            ref = parse_image_ref(registry.ref("client/referrers", "v1"))
            assert await client.get_referrers(ref, digest) is None

    run(go())


def test_stopped_registry_is_unreachable_then_recovers(fresh_registry: RunningRegistry) -> None:
    digest = push_random_image(fresh_registry, "client/restart", "v1")
    ref = parse_image_ref(fresh_registry.ref("client/restart", "v1"))
    fresh_registry.stop()

    async def failing() -> None:
        async with RegistryClient(settings_for(fresh_registry, request_timeout=30)) as client:
            err = await expect_error("unreachable", client.resolve(ref))
            assert fresh_registry.host in err.message and "client/restart" in err.message
            assert "could not be reached" in err.diagnostics()

    run(failing())
    fresh_registry.start()

    async def working() -> None:
        async with RegistryClient(settings_for(fresh_registry)) as client:
            assert await client.resolve(ref) == digest

    run(working())


def test_untrusted_ca_is_unreachable(registry: RunningRegistry) -> None:
    push_random_image(registry, "client/tls", "v1")

    async def go() -> None:
        async with RegistryClient(RegistrySettings()) as client:  # system CAs only
            err = await expect_error(
                "unreachable", client.resolve(parse_image_ref(registry.ref("client/tls", "v1")))
            )
            assert "TLS" in err.message

    run(go())


VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
LAYOUT = VECTORS / "slsa-verifier" / "container" / "container_workflow_dispatch"


@pytest.mark.vectors
def test_cosign_saved_layout_round_trips(registry: RunningRegistry) -> None:
    if not (LAYOUT / "index.json").is_file():
        pytest.skip(f"vectors not found at {LAYOUT}")
    expected = (LAYOUT.parent / "container_workflow_dispatch.digest").read_text().strip()
    pushed = push_oci_layout(registry, "vectors/slsa", LAYOUT, tag="v1")
    att_tag = "sha256-" + expected.split(":", 1)[1] + ".att"
    assert pushed.image_digest == expected and att_tag in pushed.tags

    async def go() -> None:
        async with RegistryClient(settings_for(registry)) as client:
            ref = parse_image_ref(registry.ref("vectors/slsa", "v1"))
            assert await client.resolve(ref) == expected
            index = await client.get_manifest(ref, expected)
            assert index is not None and index.is_index
            att = await client.get_manifest(ref, att_tag)
            assert att is not None and att.digest == pushed.tags[att_tag]
            (layer,) = att.layers
            envelope = json.loads(await client.get_blob(ref, layer))
            assert envelope["payloadType"] == "application/vnd.in-toto+json"
            assert layer.annotations["predicateType"] == "https://slsa.dev/provenance/v0.2"

    run(go())


# ----------------------------------------------------------------------------- auth


def test_bearer_token_flow_and_cache(token_registry: RunningRegistry, tmp_path: Path) -> None:
    assert token_registry.token_server is not None and token_registry.username
    server = token_registry.token_server
    digest = push_random_image(token_registry, "tok/app", "v1")
    push_random_image(token_registry, "tok/other", "v1")
    user, password = token_registry.username, token_registry.password or ""
    config = docker_config(tmp_path, {token_registry.host: basic_entry(user, password)})

    async def go() -> None:
        settings = settings_for(token_registry, docker_config=config)
        async with RegistryClient(settings) as client:
            ref = parse_image_ref(token_registry.ref("tok/app", "v1"))
            scope = pull_scope("tok/app")
            before = server.count(scope)
            assert await client.resolve(ref) == digest
            manifest = await client.get_manifest(ref, "v1")
            assert manifest is not None and manifest.config is not None
            await client.get_blob(ref, manifest.config)
            await client.get_manifest(ref, digest)
            assert server.count(scope) == before + 1  # one token, reused four times
            granted = [r for r in server.requests if r.scope == scope][-1]
            assert granted.account == user and granted.method == "GET"
            # Another repository is another scope: one more token.
            other = parse_image_ref(token_registry.ref("tok/other", "v1"))
            await client.resolve(other)
            await client.resolve(other)
            assert server.count(pull_scope("tok/other")) == 1

    run(go())


def test_concurrent_requests_share_one_token_fetch(
    token_registry: RunningRegistry, tmp_path: Path
) -> None:
    server = token_registry.token_server
    assert server is not None
    digest = push_random_image(token_registry, "tok/concurrent", "v1")
    user, password = token_registry.username or "", token_registry.password or ""
    config = docker_config(tmp_path, {token_registry.host: basic_entry(user, password)})

    async def go() -> None:
        async with RegistryClient(settings_for(token_registry, docker_config=config)) as client:
            ref = parse_image_ref(token_registry.ref("tok/concurrent", "v1"))
            results = await asyncio.gather(*(client.get_manifest(ref, digest) for _ in range(6)))
            assert all(m is not None and m.digest == digest for m in results)
        assert server.count(pull_scope("tok/concurrent")) == 1

    run(go())


def test_refused_token_is_refetched(token_registry: RunningRegistry, tmp_path: Path) -> None:
    server = token_registry.token_server
    assert server is not None
    digest = push_random_image(token_registry, "tok/refused", "v1")
    user, password = token_registry.username or "", token_registry.password or ""
    config = docker_config(tmp_path, {token_registry.host: basic_entry(user, password)})
    scope = pull_scope("tok/refused")

    async def go() -> None:
        async with RegistryClient(settings_for(token_registry, docker_config=config)) as client:
            ref = parse_image_ref(token_registry.ref("tok/refused", "v1"))
            assert await client.resolve(ref) == digest
            # Poison the cached token: the registry refuses it, the client fetches a new one.
            forged = BearerToken("not-a-jwt", time.monotonic() + 300)
            fp = RegistryCredential(user, password).fingerprint
            client._shared.tokens.put(token_registry.host, scope, fp, forged)
            assert await client.resolve(ref) == digest
        assert server.count(scope) == 2

    run(go())


def test_bearer_anonymous_and_wrong_password_are_unauthorized(
    token_registry: RunningRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    push_random_image(token_registry, "tok/private", "v1")
    ref = parse_image_ref(token_registry.ref("tok/private", "v1"))
    wrong = "wrong-" + (token_registry.password or "")
    config = docker_config(tmp_path, {token_registry.host: basic_entry("alice", wrong)})

    async def go() -> None:
        async with RegistryClient(settings_for(token_registry)) as client:
            err = await expect_error("unauthorized", client.resolve(ref))
            assert token_registry.host in err.message
        caplog.set_level(logging.DEBUG)
        settings = settings_for(token_registry, docker_config=config)
        async with RegistryClient(settings) as client:
            err = await expect_error("unauthorized", client.get_manifest(ref, "v1"))
            assert "refused" in err.message
            for text in (err.message, err.diagnostics(), repr(err), caplog.text):
                assert wrong not in text

    run(go())


def test_bearer_identity_token(token_registry: RunningRegistry, tmp_path: Path) -> None:
    server = token_registry.token_server
    assert server is not None
    refresh = next(iter(server.refresh_tokens))
    digest = push_random_image(token_registry, "tok/idtoken", "v1")
    config = docker_config(tmp_path, {token_registry.host: {"identitytoken": refresh}})

    async def go() -> None:
        async with RegistryClient(settings_for(token_registry, docker_config=config)) as client:
            ref = parse_image_ref(token_registry.ref("tok/idtoken", "v1"))
            assert await client.resolve(ref) == digest
        assert [r.method for r in server.requests if r.scope == pull_scope("tok/idtoken")] == [
            "POST"
        ]

    run(go())


def test_tokens_are_not_shared_between_credentials(
    token_registry: RunningRegistry, tmp_path: Path
) -> None:
    push_random_image(token_registry, "tok/shared", "v1")
    user, password = token_registry.username or "", token_registry.password or ""
    ref = parse_image_ref(token_registry.ref("tok/shared", "v1"))

    async def go() -> None:
        async with RegistryClient(settings_for(token_registry)) as anonymous:
            pod = anonymous.with_credentials(
                CredentialStore({token_registry.host: RegistryCredential(user, password)})
            )
            await pod.resolve(ref)  # caches a token for alice
            # The anonymous client must not ride on alice's token.
            await expect_error("unauthorized", anonymous.resolve(ref))

    run(go())


def test_basic_auth(auth_registry: RunningRegistry, tmp_path: Path) -> None:
    digest = push_random_image(auth_registry, "basic/app", "v1")
    ref = parse_image_ref(auth_registry.ref("basic/app", "v1"))
    user, password = auth_registry.username or "", auth_registry.password or ""
    good = docker_config(tmp_path, {f"https://{auth_registry.host}": basic_entry(user, password)})

    async def go() -> None:
        async with RegistryClient(settings_for(auth_registry, docker_config=good)) as client:
            assert await client.resolve(ref) == digest
            manifest = await client.get_manifest(ref, digest)
            assert manifest is not None and manifest.config is not None
            assert json.loads(await client.get_blob(ref, manifest.config))["os"] == "linux"
        async with RegistryClient(settings_for(auth_registry)) as client:
            err = await expect_error("unauthorized", client.resolve(ref))
            assert "no credentials" in err.message
        bad = CredentialStore({auth_registry.host: RegistryCredential(user, "not-it")})
        async with RegistryClient(settings_for(auth_registry), credentials=bad) as client:
            err = await expect_error("unauthorized", client.get_manifest(ref, "v1"))
            assert "not-it" not in err.message

    run(go())


# ----------------------------------------------------------------------------- stand-ins


MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "sha256:" + "1" * 64,
            "size": 2,
        },
        "layers": [],
    }
).encode()
BLOB = b"the real blob content"


def lying_registry() -> web.Application:
    """A stand-in registry that LIES about content: whatever digest is asked for, it serves
    the same manifest; tag ``lying`` claims a Docker-Content-Digest the bytes do not have;
    every blob request gets ``BLOB`` with one byte flipped."""

    async def manifest(request: web.Request) -> web.Response:
        ref = request.match_info["ref"]
        claimed = sha256(b"other bytes") if ref == "lying" else sha256(MANIFEST)
        headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": claimed}
        return web.Response(body=MANIFEST, headers=headers)

    async def blob(request: web.Request) -> web.Response:
        return web.Response(body=b"T" + BLOB[1:])

    app = web.Application()
    app.router.add_route("*", "/v2/lie/manifests/{ref}", manifest)
    app.router.add_get("/v2/lie/blobs/{digest}", blob)
    return app


def test_digest_mismatch_is_invalid(tls_files: TlsFiles) -> None:
    async def go() -> None:
        async with serve_app(lying_registry(), server_ssl_context(tls_files)) as host:
            ref = ImageRef(host, "lie", tag="honest")
            async with RegistryClient(settings_for(tls_files)) as client:
                honest = await client.get_manifest(ref, "honest")
                assert honest is not None and honest.digest == sha256(MANIFEST)
                wanted = "sha256:" + "9" * 64
                err = await expect_error("invalid", client.get_manifest(ref, wanted))
                assert wanted in err.message and host in err.message
                await expect_error("invalid", client.get_manifest(ref, "lying"))
                desc = Descriptor("application/octet-stream", sha256(BLOB), len(BLOB))
                err = await expect_error("invalid", client.get_blob(ref, desc))
                assert "hashes to" in err.message

    run(go())


def test_resolve_falls_back_to_get(tls_files: TlsFiles) -> None:
    seen: list[str] = []

    async def manifest(request: web.Request) -> web.Response:
        seen.append(request.method)
        if request.method == "HEAD":
            return web.Response(status=405)
        return web.Response(body=MANIFEST, headers={"Content-Type": OCI_MANIFEST})

    app = web.Application()
    app.router.add_route("*", "/v2/app/manifests/{ref}", manifest)

    async def go() -> None:
        async with (
            serve_app(app, server_ssl_context(tls_files)) as host,
            RegistryClient(settings_for(tls_files)) as client,
        ):
            assert await client.resolve(ImageRef(host, "app", tag="v1")) == sha256(MANIFEST)
        assert seen == ["HEAD", "GET"]

    run(go())


def test_hanging_registry_times_out() -> None:
    async def go() -> None:
        async with silent_server() as host:
            for insecure in (frozenset({host}), frozenset()):  # plain HTTP, then TLS handshake
                settings = RegistrySettings(request_timeout=0.3, insecure_registries=insecure)
                async with RegistryClient(settings) as client:
                    err = await expect_error(
                        "timeout", client.resolve(ImageRef(host, "app", tag="v1"))
                    )
                    assert host in err.message

    run(go())


def test_plain_http_only_for_listed_hosts() -> None:
    requests: list[str] = []

    async def manifest(request: web.Request) -> web.Response:
        requests.append(request.path)
        return web.Response(body=MANIFEST, headers={"Content-Type": OCI_MANIFEST})

    app = web.Application()
    app.router.add_route("*", "/v2/app/manifests/{ref}", manifest)

    async def go() -> None:
        async with serve_app(app) as host:
            ref = ImageRef(host, "app", tag="v1")
            async with RegistryClient(RegistrySettings()) as client:
                # Not listed: we speak TLS to it, which a plain-HTTP server cannot answer.
                await expect_error("unreachable", client.get_manifest(ref, "v1"))
            assert requests == []
            async with RegistryClient(RegistrySettings(insecure_registries=frozenset({host}))) as c:
                manifest_obj = await c.get_manifest(ref, "v1")
                assert manifest_obj is not None and manifest_obj.digest == sha256(MANIFEST)
            assert requests == ["/v2/app/manifests/v1"]

    run(go())


def test_blob_redirect_to_other_host_drops_authorization(tls_files: TlsFiles) -> None:
    seen_auth: list[str | None] = []

    async def storage(request: web.Request) -> web.Response:
        seen_auth.append(request.headers.get("Authorization"))
        return web.Response(body=BLOB)

    storage_app = web.Application()
    storage_app.router.add_get("/bucket/blob", storage)

    async def go() -> None:
        async with serve_app(storage_app, server_ssl_context(tls_files)) as storage_host:
            # Same port space, other host name: localhost is another origin than 127.0.0.1.
            port = storage_host.rsplit(":", 1)[1]

            async def blob(request: web.Request) -> web.Response:
                if (
                    request.headers.get("Authorization")
                    != "Basic " + base64.b64encode(b"u:p").decode()
                ):
                    return web.Response(
                        status=401, headers={"WWW-Authenticate": 'Basic realm="test"'}
                    )
                target = f"https://localhost:{port}/bucket/blob?X-Signature=secret-sig"
                raise web.HTTPTemporaryRedirect(target)

            registry_app = web.Application()
            registry_app.router.add_get("/v2/app/blobs/{digest}", blob)
            async with serve_app(registry_app, server_ssl_context(tls_files)) as host:
                creds = CredentialStore({host: RegistryCredential("u", "p")})
                desc = Descriptor("application/octet-stream", sha256(BLOB), len(BLOB))
                async with RegistryClient(settings_for(tls_files), credentials=creds) as client:
                    assert await client.get_blob(ImageRef(host, "app", tag="x"), desc) == BLOB
        assert seen_auth == [None]

    run(go())


def test_redirect_to_plain_http_is_refused(tls_files: TlsFiles) -> None:
    async def blob(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://127.0.0.1:9/blob")

    app = web.Application()
    app.router.add_get("/v2/app/blobs/{digest}", blob)

    async def go() -> None:
        async with serve_app(app, server_ssl_context(tls_files)) as host:
            desc = Descriptor("application/octet-stream", sha256(BLOB), len(BLOB))
            async with RegistryClient(settings_for(tls_files)) as client:
                err = await expect_error("invalid", client.get_blob(ImageRef(host, "app"), desc))
                assert "plain HTTP" in err.message

    run(go())


def test_plain_http_token_realm_is_refused(tls_files: TlsFiles) -> None:
    async def manifest(request: web.Request) -> web.Response:
        challenge = 'Bearer realm="http://127.0.0.1:9/token",service="x"'
        return web.Response(status=401, headers={"WWW-Authenticate": challenge})

    app = web.Application()
    app.router.add_route("*", "/v2/app/manifests/{ref}", manifest)

    async def go() -> None:
        async with serve_app(app, server_ssl_context(tls_files)) as host:
            creds = CredentialStore({host: RegistryCredential("u", "secret-pw")})
            async with RegistryClient(settings_for(tls_files), credentials=creds) as client:
                err = await expect_error(
                    "unauthorized", client.get_manifest(ImageRef(host, "app"), "v1")
                )
                assert "plain-HTTP token realm" in err.message

    run(go())


def referrers_registry(
    subject: str, entries: list[dict[str, Any]], calls: list[str], filters: list[str | None]
) -> web.Application:
    """A stand-in that REPLAYS the OCI 1.1 referrers protocol (distribution-spec "Listing
    Referrers"): an image index of descriptors, served in two pages linked by a
    ``Link: <...>; rel="next"`` header, WITHOUT applying the artifactType filter (no
    ``OCI-Filters-Applied``); unknown subjects get an empty index."""

    async def referrers(request: web.Request) -> web.Response:
        calls.append(str(request.rel_url))
        filters.append(request.query.get("artifactType"))
        headers = {"Content-Type": OCI_INDEX}
        if request.match_info["digest"] != subject:
            body: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
            return web.Response(body=json.dumps(body).encode(), headers=headers)
        page = int(request.query.get("page", "0"))
        half = len(entries) // 2
        chunk = entries[:half] if page == 0 else entries[half:]
        if page == 0:
            headers["Link"] = f'</v2/app/referrers/{subject}?page=1>; rel="next"'
        body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": chunk}
        return web.Response(body=json.dumps(body).encode(), headers=headers)

    app = web.Application()
    app.router.add_get("/v2/app/referrers/{digest}", referrers)
    return app


def test_referrers_protocol(tls_files: TlsFiles) -> None:
    subject = sha256(b"image")
    bundle = "application/vnd.dev.sigstore.bundle.v0.3+json"
    entries = [
        {
            "mediaType": OCI_MANIFEST,
            "digest": sha256(b"a"),
            "size": 10,
            "artifactType": bundle,
            "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        },
        {
            "mediaType": OCI_MANIFEST,
            "digest": sha256(b"b"),
            "size": 11,
            "artifactType": "application/spdx+json",
        },
        {"mediaType": OCI_MANIFEST, "digest": sha256(b"c"), "size": 12, "artifactType": bundle},
    ]
    calls: list[str] = []
    filters: list[str | None] = []

    async def go() -> None:
        app = referrers_registry(subject, entries, calls, filters)
        async with serve_app(app, server_ssl_context(tls_files)) as host:
            ref = ImageRef(host, "app", digest=subject)
            async with RegistryClient(settings_for(tls_files)) as client:
                everything = await client.get_referrers(ref, subject)
                assert everything is not None
                assert [d.digest for d in everything] == [e["digest"] for e in entries]
                assert everything[0].annotations["org.opencontainers.image.created"]
                bundles = await client.get_referrers(ref, subject, artifact_type=bundle)
                assert bundles is not None
                assert [d.digest for d in bundles] == [sha256(b"a"), sha256(b"c")]
                assert await client.get_referrers(ref, sha256(b"other")) == []
        assert bundle in filters  # sent, percent-encoded, and decoded intact by the server
        assert any("page=1" in c for c in calls)

    run(go())


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, b"404 page not found\n", None),
        (405, b"", None),
        (404, json.dumps({"schemaVersion": 2, "manifests": []}).encode(), []),
    ],
)
def test_referrers_absent_statuses(
    tls_files: TlsFiles, status: int, body: bytes, expected: list[Descriptor] | None
) -> None:
    async def referrers(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body)

    app = web.Application()
    app.router.add_get("/v2/app/referrers/{digest}", referrers)

    async def go() -> None:
        async with (
            serve_app(app, server_ssl_context(tls_files)) as host,
            RegistryClient(settings_for(tls_files)) as client,
        ):
            got = await client.get_referrers(ImageRef(host, "app"), sha256(b"x"))
            assert got == expected

    run(go())


def test_server_errors_and_malformed_referrers(tls_files: TlsFiles) -> None:
    async def manifest(request: web.Request) -> web.Response:
        body = {"errors": [{"code": "UNAVAILABLE", "message": "storage down"}]}
        return web.json_response(body, status=503)

    async def referrers(request: web.Request) -> web.Response:
        return web.Response(body=b"[1, 2]", content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/v2/app/manifests/{ref}", manifest)
    app.router.add_get("/v2/app/referrers/{digest}", referrers)

    async def go() -> None:
        async with serve_app(app, server_ssl_context(tls_files)) as host:
            ref = ImageRef(host, "app", tag="v1")
            async with RegistryClient(settings_for(tls_files)) as client:
                err = await expect_error("server", client.get_manifest(ref, "v1"))
                assert "503" in err.message and "UNAVAILABLE" in err.message
                await expect_error("invalid", client.get_referrers(ref, sha256(b"x")))

    run(go())


def test_mirror_first_then_origin(registry: RunningRegistry, tls_files: TlsFiles) -> None:
    digest = push_random_image(registry, "client/mirrored", "v1")
    mirror_calls: list[str] = []

    async def empty_mirror(request: web.Request) -> web.Response:
        mirror_calls.append(request.path)
        return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN"}]}, status=404)

    app = web.Application()
    app.router.add_route("*", "/v2/{tail:.*}", empty_mirror)

    async def go() -> None:
        ref = parse_image_ref(registry.ref("client/mirrored", "v1"))
        async with serve_app(app, server_ssl_context(tls_files)) as mirror:
            settings = settings_for(registry, mirrors={registry.host: mirror})
            async with RegistryClient(settings) as client:
                assert await client.resolve(ref) == digest
                manifest = await client.get_manifest(ref, "v1")
                assert manifest is not None and manifest.digest == digest
        assert "/v2/client/mirrored/manifests/v1" in mirror_calls
        # A mirror nobody listens on: the origin still answers.
        dead = f"127.0.0.1:{free_port()}"
        async with RegistryClient(settings_for(registry, mirrors={registry.host: dead})) as c:
            assert await c.resolve(ref) == digest

    run(go())


def test_mirror_content_is_used_and_checked(registry: RunningRegistry, tls_files: TlsFiles) -> None:
    async def mirror_manifest(request: web.Request) -> web.Response:
        return web.Response(body=MANIFEST, headers={"Content-Type": OCI_MANIFEST})

    app = web.Application()
    app.router.add_route("*", "/v2/client/only-on-mirror/manifests/{ref}", mirror_manifest)

    async def go() -> None:
        ref = parse_image_ref(registry.ref("client/only-on-mirror", "v1"))
        async with serve_app(app, server_ssl_context(tls_files)) as mirror:
            settings = settings_for(registry, mirrors={registry.host: mirror})
            async with RegistryClient(settings) as client:
                got = await client.get_manifest(ref, sha256(MANIFEST))
                assert got is not None and got.raw == MANIFEST
                # The mirror's bytes do not match this digest, and neither has the origin it.
                assert await client.get_manifest(ref, "sha256:" + "5" * 64) is None

    run(go())


def test_docker_hub_goes_to_registry_1() -> None:
    client = RegistryClient(RegistrySettings())
    targets = client._targets(parse_image_ref("nginx"))
    assert [t.host for t in targets] == ["registry-1.docker.io"]
    assert str(targets[0].base) == "https://registry-1.docker.io"


def test_close_is_idempotent(registry: RunningRegistry) -> None:
    push_random_image(registry, "client/close", "v1")

    async def go() -> None:
        client = RegistryClient(settings_for(registry))
        await client.resolve(parse_image_ref(registry.ref("client/close", "v1")))
        session = client._shared.session
        assert session is not None and not session.closed
        await client.close()
        assert session.closed
        await client.close()

    run(go())


def test_bad_ca_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ValueError, match="CA bundle"):
        RegistryClient(RegistrySettings(ca_file=str(bad)))


# ----------------------------------------------------------------------------- credentials


def test_docker_config_forms(tmp_path: Path) -> None:
    data = {
        "auths": {
            "https://index.docker.io/v1/": basic_entry("hubuser", "hubpass"),
            "Registry.Example.com:5000": {"username": "u2", "password": "p:with:colons"},
            "registry.example.com:5000/team": basic_entry("teamuser", "teampass"),
            "https://ghcr.io": {"identitytoken": "refresh-me"},
            "helper.example.com": {},
        },
        "credHelpers": {"gcr.io": "gcloud"},
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    store = load_docker_config(path)
    hub = store.lookup("docker.io", "library/nginx")
    assert hub is not None and (hub.username, hub.password) == ("hubuser", "hubpass")
    plain = store.lookup("registry.example.com:5000", "other/app")
    assert plain is not None and plain.password == "p:with:colons"
    team = store.lookup("registry.example.com:5000", "team/app")
    assert team is not None and team.username == "teamuser"  # longest prefix wins
    assert store.lookup("registry.example.com:5000", "teamwork/app") == plain
    ghcr = store.lookup("ghcr.io", "x/y")
    assert ghcr is not None and ghcr.identity_token == "refresh-me"
    assert store.lookup("helper.example.com") is None
    assert store.lookup("unknown.example.com") is None
    assert "hubpass" not in repr(store) and "refresh-me" not in repr(ghcr)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "JSON object"),
        (json.dumps({"auths": []}).encode(), "'auths' must be an object"),
        (json.dumps({"auths": {"r.io": "x"}}).encode(), "must be an object"),
        (json.dumps({"auths": {"r.io": {"auth": "%%%"}}}).encode(), "not base64"),
        (
            json.dumps(
                {"auths": {"r.io": {"auth": base64.b64encode(b"nocolon").decode()}}}
            ).encode(),
            "without ':'",
        ),
        (json.dumps({"auths": {"r.io": {"username": "u"}}}).encode(), "both username"),
        (json.dumps({"auths": {"r.io": {"password": 5}}}).encode(), "must be a string"),
        (json.dumps({"auths": {"": {"auth": "eDp5"}}}).encode(), "non-empty"),
        (b" " * (1024 * 1024 + 1), "larger than"),
    ],
)
def test_malformed_docker_config(content: bytes, fragment: str) -> None:
    with pytest.raises(CredentialsError) as info:
        parse_docker_config(content, "test-config")
    assert fragment in str(info.value) and "test-config" in str(info.value)


def test_unreadable_docker_config(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="cannot read"):
        load_docker_config(tmp_path / "missing.json")
    with pytest.raises(CredentialsError):
        RegistryClient(RegistrySettings(docker_config=str(tmp_path / "missing.json")))


def _secret(secret_type: str, key: str, payload: bytes) -> dict[str, Any]:
    return {
        "metadata": {"name": "pull"},
        "type": secret_type,
        "data": {key: base64.b64encode(payload).decode()},
    }


def test_pull_secrets() -> None:
    config = json.dumps({"auths": {"reg.example": basic_entry("u", "p")}}).encode()
    store = credentials_from_pull_secret(
        _secret("kubernetes.io/dockerconfigjson", ".dockerconfigjson", config)
    )
    cred = store.lookup("reg.example")
    assert cred is not None and (cred.username, cred.password) == ("u", "p")
    legacy = json.dumps({"https://reg.example": basic_entry("old", "pw")}).encode()
    store = credentials_from_pull_secret(_secret("kubernetes.io/dockercfg", ".dockercfg", legacy))
    assert (store.lookup("reg.example") or RegistryCredential("", "")).username == "old"

    from kubernetes.client import V1ObjectMeta, V1Secret

    obj = V1Secret(
        metadata=V1ObjectMeta(name="pull"),
        type="kubernetes.io/dockerconfigjson",
        data={".dockerconfigjson": base64.b64encode(config).decode()},
    )
    assert credentials_from_pull_secret(obj).lookup("reg.example") == cred


@pytest.mark.parametrize(
    ("secret", "fragment"),
    [
        ({"type": "Opaque", "data": {}}, "is not kubernetes.io/dockerconfigjson"),
        ({"type": "kubernetes.io/dockerconfigjson"}, "has no data"),
        ({"type": "kubernetes.io/dockerconfigjson", "data": {}}, "missing"),
        (
            {"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "!!"}},
            "not valid base64",
        ),
        (
            _secret("kubernetes.io/dockerconfigjson", ".dockerconfigjson", b"{oops"),
            "not valid JSON",
        ),
    ],
)
def test_malformed_pull_secrets(secret: dict[str, Any], fragment: str) -> None:
    with pytest.raises(CredentialsError, match=fragment):
        credentials_from_pull_secret(secret)


# ----------------------------------------------------------------------------- auth parsing


def test_parse_challenges() -> None:
    (bearer,) = parse_challenges(
        'Bearer realm="https://auth.example/token?x=1,2",service="reg",'
        'scope="repository:a/b:pull",error="insufficient_scope"'
    )
    assert bearer.scheme == "bearer" and bearer.realm == "https://auth.example/token?x=1,2"
    assert bearer.params["scope"] == "repository:a/b:pull"
    basic, bearer2 = parse_challenges(
        'Basic realm="a \\"quoted\\" realm", Bearer realm=https://t/x'
    )
    assert basic.scheme == "basic" and basic.realm == 'a "quoted" realm'
    assert bearer2.realm == "https://t/x"
    assert parse_challenges("") == ()
    assert parse_challenges('Bearer realm="unterminated') == ()
    assert parse_challenges("=oops") == ()


def test_parse_token_response() -> None:
    now = time.monotonic()
    token = parse_token_response(json.dumps({"token": "t1", "expires_in": 300}).encode(), now, "r")
    assert token.token == "t1" and token.expires_at == pytest.approx(now + 300)
    short = parse_token_response(
        json.dumps({"access_token": "t2", "expires_in": 1}).encode(), now, "r"
    )
    assert short.token == "t2" and short.expires_at == pytest.approx(now + 60)
    assert "t2" not in repr(short)
    for bad in (b"nope", b"[]", b"{}", json.dumps({"token": "x", "expires_in": "soon"}).encode()):
        with pytest.raises(RegistryError) as info:
            parse_token_response(bad, now, "realm.example")
        assert info.value.kind == "invalid" and "realm.example" in info.value.message


def test_token_cache_expiry_and_keys() -> None:
    cache = TokenCache(max_entries=2)
    now = time.monotonic()
    cache.put("h", "s", "anon", BearerToken("fresh", now + 100))
    cache.put("h", "s2", "anon", BearerToken("stale", now + 1))  # inside the safety margin
    assert (cache.get("h", "s", "anon") or BearerToken("", 0)).token == "fresh"
    assert cache.get("h", "s", "alice") is None
    assert cache.get("h", "s2", "anon") is None
    cache.put("h", "s3", "anon", BearerToken("a", now + 100))
    cache.put("h", "s4", "anon", BearerToken("b", now + 100))
    assert len(cache) == 2 and cache.get("h", "s", "anon") is None  # evicted, bounded

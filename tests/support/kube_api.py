"""A stand-in Kubernetes API server: exactly the endpoints reprogate calls, over HTTPS.

There is no kube-apiserver in the test environment. This aiohttp app answers the three calls
``controller.kube.KubeClient`` makes, with the JSON shapes kube-apiserver returns (objects
with ``kind``/``apiVersion``/``metadata``, errors as ``kind: Status`` with ``code``, ``reason``
and ``message``):

- ``POST /api/v1/namespaces/{ns}/events``: validates what the real server validates for a
  core/v1 Event that matters here (namespace agreement, ``involvedObject.namespace``, name or
  ``generateName``, ``type`` Normal|Warning, RFC 3339 timestamps, ``reason`` present), fills in
  ``name`` from ``generateName``, ``uid``, ``resourceVersion``, ``creationTimestamp``; 201.
- ``GET /api/v1/namespaces/{ns}/secrets/{name}``: the stored Secret, 404 NotFound, or
  403 Forbidden for names listed in ``forbidden`` (RBAC refusing ``get``).
- ``GET /api/v1/namespaces/{ns}/serviceaccounts/{name}``: the stored ServiceAccount; the
  ``default`` account exists in every namespace (the service-account controller creates it).

Every request needs ``Authorization: Bearer <token>``; anything else is 401 Unauthorized.
``configuration`` builds the ``kubernetes.client.Configuration`` pointing at it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.support.registry import serve_app
from tests.support.tls import TlsFiles, server_ssl_context

__all__ = [
    "KubeApiStandIn",
    "RecordedCall",
    "configuration",
    "dockerconfigjson_secret",
    "running_kube_api",
]

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class RecordedCall:
    """One request the stand-in answered."""

    method: str
    path: str
    status: int


def dockerconfigjson_secret(
    namespace: str, name: str, registry: str, username: str, password: str
) -> dict[str, Any]:
    """A ``kubernetes.io/dockerconfigjson`` Secret as the API server returns it."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    config = json.dumps({"auths": {registry: {"auth": auth}}}).encode()
    return {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "resourceVersion": "1000",
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "data": {".dockerconfigjson": base64.b64encode(config).decode()},
        "type": "kubernetes.io/dockerconfigjson",
    }


def _status(
    code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
) -> web.Response:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = dict(details)
    return web.json_response(body, status=code)


@dataclass
class KubeApiStandIn:
    """The stand-in's state: stored objects, what it received, and switches for tests."""

    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # namespace -> imagePullSecrets names of its "default" service account
    service_accounts: dict[str, list[str]] = field(default_factory=dict)
    forbidden: set[tuple[str, str]] = field(default_factory=set)  # (namespace, secret name)
    events: list[dict[str, Any]] = field(default_factory=list)
    calls: list[RecordedCall] = field(default_factory=list)
    # when given, POST events waits until it is set (an API server that stopped answering)
    hold: asyncio.Event | None = None
    event_posts_started: int = 0  # POSTs to events received, answered or not
    _changed: asyncio.Condition | None = field(default=None, repr=False)
    _version: int = 2000

    def add_secret(self, secret: Mapping[str, Any]) -> None:
        """Store a Secret (as the API server returns it)."""
        meta = secret["metadata"]
        self.secrets[(meta["namespace"], meta["name"])] = dict(secret)

    def reads_of(self, kind: str, namespace: str, name: str) -> int:
        """How many GETs of ``kind`` (secrets, serviceaccounts) ``namespace/name`` arrived."""
        path = f"/api/v1/namespaces/{namespace}/{kind}/{name}"
        return sum(1 for c in self.calls if c.method == "GET" and c.path == path)

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 15.0) -> None:
        """Wait until ``condition()`` holds after some request (bounded; not a timing check)."""
        assert self._changed is not None, "the stand-in is not running"
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(condition), timeout)

    def app(self) -> web.Application:
        """The aiohttp application serving this state."""
        self._changed = asyncio.Condition()

        @web.middleware
        async def record(
            request: web.Request, handler: Callable[[web.Request], Any]
        ) -> web.StreamResponse:
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                response: web.StreamResponse = _status(401, "Unauthorized", "Unauthorized")
            else:
                response = await handler(request)
            self.calls.append(RecordedCall(request.method, request.path, response.status))
            assert self._changed is not None
            async with self._changed:
                self._changed.notify_all()
            return response

        app = web.Application(middlewares=[record])
        app.add_routes(
            [
                web.post("/api/v1/namespaces/{ns}/events", self._create_event),
                web.get("/api/v1/namespaces/{ns}/secrets/{name}", self._get_secret),
                web.get("/api/v1/namespaces/{ns}/serviceaccounts/{name}", self._get_account),
            ]
        )
        return app

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    async def _create_event(self, request: web.Request) -> web.StreamResponse:
        self.event_posts_started += 1
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()
        if self.hold is not None:
            await self.hold.wait()
        ns = request.match_info["ns"]
        try:
            body = await request.json()
        except ValueError:
            return _status(400, "BadRequest", "the body of the request was in an unknown format")
        if not isinstance(body, dict):
            return _status(400, "BadRequest", "the body of the request was in an unknown format")
        problems = _event_problems(ns, body)
        if problems:
            name = (body.get("metadata") or {}).get("name", "")
            return _status(
                422,
                "Invalid",
                f'Event "{name}" is invalid: ' + ", ".join(problems),
                {"name": name, "kind": "Event"},
            )
        meta = dict(body["metadata"])
        if not meta.get("name"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        meta.update(
            namespace=ns,
            uid=str(uuid.uuid4()),
            resourceVersion=self._next_version(),
            creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        stored = {**body, "kind": "Event", "apiVersion": "v1", "metadata": meta}
        self.events.append(stored)
        return web.json_response(stored, status=201)

    async def _get_secret(self, request: web.Request) -> web.StreamResponse:
        ns, name = request.match_info["ns"], request.match_info["name"]
        if (ns, name) in self.forbidden:
            return _status(
                403,
                "Forbidden",
                f'secrets "{name}" is forbidden: User "system:serviceaccount:reprogate:reprogate"'
                f' cannot get resource "secrets" in API group "" in the namespace "{ns}"',
                {"name": name, "kind": "secrets"},
            )
        secret = self.secrets.get((ns, name))
        if secret is None:
            return _status(
                404, "NotFound", f'secrets "{name}" not found', {"name": name, "kind": "secrets"}
            )
        return web.json_response(secret)

    async def _get_account(self, request: web.Request) -> web.StreamResponse:
        ns, name = request.match_info["ns"], request.match_info["name"]
        # service_accounts keys: "ns" for the default account, "ns/name" for any other
        if name != "default" and f"{ns}/{name}" not in self.service_accounts:
            return _status(
                404,
                "NotFound",
                f'serviceaccounts "{name}" not found',
                {"name": name, "kind": "serviceaccounts"},
            )
        account: dict[str, Any] = {
            "kind": "ServiceAccount",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "namespace": ns,
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, ns)),
                "resourceVersion": "500",
                "creationTimestamp": "2026-01-01T00:00:00Z",
            },
        }
        names = self.service_accounts.get(f"{ns}/{name}") or (
            self.service_accounts.get(ns) if name == "default" else None
        )
        if names:
            account["imagePullSecrets"] = [{"name": n} for n in names]
        return web.json_response(account)


def _event_problems(ns: str, body: Mapping[str, Any]) -> list[str]:
    """The validation errors kube-apiserver would report for this core/v1 Event."""
    out: list[str] = []
    if body.get("kind", "Event") != "Event" or body.get("apiVersion", "v1") != "v1":
        out.append("kind/apiVersion: must be Event v1")
    meta = body.get("metadata")
    if not isinstance(meta, dict):
        return [*out, "metadata: Required value"]
    if meta.get("namespace", ns) != ns:
        out.append(
            "metadata.namespace: Invalid value: the namespace of the provided object does not "
            "match the namespace sent on the request"
        )
    name = meta.get("name") or meta.get("generateName")
    if not isinstance(name, str) or not name:
        out.append("metadata.name: Required value: name or generateName is required")
    elif not _DNS_SUBDOMAIN.match(name.rstrip(".") if not meta.get("name") else name):
        out.append(f"metadata.name: Invalid value: {name!r}: a DNS-1123 subdomain")
    involved = body.get("involvedObject")
    if not isinstance(involved, dict):
        out.append("involvedObject: Required value")
    elif involved.get("namespace") != ns:
        out.append("involvedObject.namespace: Invalid value: does not match event.namespace")
    if body.get("type") not in ("Normal", "Warning"):
        out.append("type: Unsupported value: supported values: Normal, Warning")
    if not body.get("reason"):
        out.append("reason: Required value")
    for key in ("firstTimestamp", "lastTimestamp"):
        value = body.get(key)
        if value is not None and not (isinstance(value, str) and _RFC3339.match(value)):
            out.append(f"{key}: Invalid value: {value!r}: not RFC 3339")
    if len(str(body.get("message", "")).encode()) > 4096:
        out.append("message: Too long")
    return out


def configuration(address: str, ca_file: Path | str, token: str) -> Any:
    """A ``kubernetes.client.Configuration`` for the stand-in at ``address`` (host:port)."""
    from kubernetes import client

    cfg = client.Configuration(
        host=f"https://{address}",
        ssl_ca_cert=str(ca_file),
        api_key={"BearerToken": token},
        api_key_prefix={"BearerToken": "Bearer"},
    )
    cfg.retries = 0
    return cfg


@contextlib.asynccontextmanager
async def running_kube_api(
    tls: TlsFiles, state: KubeApiStandIn | None = None
) -> AsyncIterator[tuple[KubeApiStandIn, Any]]:
    """Serve the stand-in in the running loop; yields (state, Configuration pointing at it)."""
    api = state or KubeApiStandIn()
    async with serve_app(api.app(), server_ssl_context(tls)) as address:
        try:
            yield api, configuration(address, tls.ca_cert, api.token)
        finally:
            if api.hold is not None:
                api.hold.set()

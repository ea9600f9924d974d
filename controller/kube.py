"""The Kubernetes API client the webhook uses for Events and pull secrets.

Implements the "Accessing the API from a Pod" recipe (in-cluster service account token and CA)
with the synchronous ``kubernetes`` client, and keeps it off the event loop.

Rules:
- Every API call runs in this client's own small thread pool, never on the event loop, and
  carries a connect/read timeout, so a slow or dead API server costs threads, not latency.
- Only the calls reprogate needs exist here: create an Event, read a Secret, read a
  ServiceAccount. RBAC grants exactly those (helm/reprogate/templates/rbac.yaml).
- ``kubernetes`` is imported only when a client is built (it costs a third of a second), so
  ``reprogate check`` and ``test`` do not pay for it.
- Every failure becomes :class:`KubeApiError` with the HTTP status (or None when no answer
  came) and the API server's own ``Status.message``, capped; a Secret's body is never part of
  a message.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = [
    "KubeApiError",
    "KubeClient",
    "KubeConfigError",
    "in_cluster_configuration",
]

T = TypeVar("T")

_MAX_MESSAGE_CHARS = 300


class KubeConfigError(RuntimeError):
    """No usable in-cluster configuration (not running in a pod, or no token mounted)."""


class KubeApiError(Exception):
    """An API call failed; ``status`` is the HTTP status, None when the server never answered."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    @property
    def short(self) -> str:
        """``403``, ``404``... or the transport failure, for one-line messages."""
        return str(self.status) if self.status is not None else self.message


def in_cluster_configuration() -> Any:
    """The pod's service-account configuration (``kubernetes.client.Configuration``).

    The token is re-read from its file as it rotates (bound tokens live about an hour).
    Raises KubeConfigError outside a cluster.
    """
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    configuration = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except (k8s_config.ConfigException, OSError) as exc:
        why = str(exc).rstrip(".")
        raise KubeConfigError(f"no in-cluster Kubernetes configuration ({why})") from None
    # One retry for a dropped keep-alive connection; never a retry storm against the API server.
    configuration.retries = 1
    return configuration


class KubeClient:
    """CoreV1Api calls run in a bounded thread pool and awaited from the event loop."""

    def __init__(
        self,
        configuration: Any,
        *,
        workers: int = 2,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        name: str = "kube",
    ) -> None:
        """``configuration`` is a ``kubernetes.client.Configuration`` (host, CA, token)."""
        if workers < 1:
            raise ValueError("workers must be at least 1")
        from kubernetes import client as k8s

        self._api_client = k8s.ApiClient(configuration)
        self._core = k8s.CoreV1Api(self._api_client)
        self._timeout = (connect_timeout, read_timeout)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"reprogate-{name}")
        weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)

    async def create_event(self, namespace: str, event: Any) -> None:
        """POST a core/v1 Event (a ``kubernetes.client.CoreV1Event``) into ``namespace``."""
        await self._call(self._core.create_namespaced_event, namespace, event)

    async def read_secret(self, namespace: str, name: str) -> Any:
        """GET a Secret (``kubernetes.client.V1Secret``)."""
        return await self._call(self._core.read_namespaced_secret, name, namespace)

    async def read_service_account(self, namespace: str, name: str) -> Any:
        """GET a ServiceAccount (``kubernetes.client.V1ServiceAccount``)."""
        return await self._call(self._core.read_namespaced_service_account, name, namespace)

    def close(self) -> None:
        """Stop the pool (running calls finish in their threads) and close connections."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._api_client.close()  # type: ignore[no-untyped-call]

    async def _call(self, method: Callable[..., T], *args: Any) -> T:
        call = functools.partial(_translated, method, *args, _request_timeout=self._timeout)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, call)


def _translated(method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one API call in a worker thread; any failure becomes KubeApiError."""
    from kubernetes.client import ApiException

    try:
        return method(*args, **kwargs)
    except ApiException as exc:
        raise KubeApiError(exc.status, _status_message(exc)) from None
    except Exception as exc:
        # urllib3 transport errors, TLS failures, an answer the client cannot parse
        raise KubeApiError(None, _cap(f"{type(exc).__name__}: {exc}")) from None


def _status_message(exc: Any) -> str:
    """The API server's ``Status.message`` when the body is a Status, else the HTTP reason."""
    status = exc.status
    reason = exc.reason or ""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and len(body) < 64 * 1024:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and parsed.get("kind") == "Status":
            message = parsed.get("message")
            if isinstance(message, str) and message:
                return _cap(f"HTTP {status}: {message}")
    return _cap(f"HTTP {status} {reason}".strip())


def _cap(text: str) -> str:
    text = text.replace(os.linesep, " ").replace("\n", " ")
    if len(text) <= _MAX_MESSAGE_CHARS:
        return text
    return text[: _MAX_MESSAGE_CHARS - 1] + "…"

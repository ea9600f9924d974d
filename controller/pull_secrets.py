"""Registry credentials for one admission request, from the pod's image pull secrets.

Implements what kubelet does before pulling ("Specifying imagePullSecrets on a Pod", "Add
ImagePullSecrets to a service account"): the pod spec's ``imagePullSecrets`` plus those of the
namespace's ``default`` service account, read from the API server, so reprogate can read
signatures wherever kubelet can read the image.

Rules:
- Secrets are read only on demand (an image a policy covers needs the registry), once per
  request, and cached per (namespace, name) for 60 s (failures for 10 s): a rollout of many
  pods costs one read per secret.
- Pod secrets take precedence over the service account's for the same registry key.
- A secret that is missing, forbidden, slow or malformed is skipped: the request proceeds
  with the credentials it has (possibly none), and the problem is kept as a sentence
  ("pull secret regcred in namespace team-a could not be read: 403") for the denial that a
  refusing registry then causes. Secret values never appear in a message.
- ``RequestCredentials.fingerprint_for`` names the credential used for an image, so caches of
  private evidence are keyed per credential, never shared with a namespace that lacks it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from controller.evidence.cache import AsyncTTLCache
from controller.kube import KubeApiError
from controller.oci.credentials import (
    CredentialsError,
    CredentialStore,
    credentials_from_pull_secret,
)
from controller.oci.reference import ImageRef

__all__ = [
    "NO_CREDENTIALS",
    "PendingCredentials",
    "PullSecretResolver",
    "RequestCredentials",
    "SecretReader",
]

MAX_SECRETS = 64
DEFAULT_SERVICE_ACCOUNT = "default"


class SecretReader(Protocol):
    """The API calls pull secrets need (``controller.kube.KubeClient`` has them)."""

    async def read_secret(self, namespace: str, name: str) -> Any:
        """A Secret (``kubernetes.client.V1Secret``); raises KubeApiError."""
        ...

    async def read_service_account(self, namespace: str, name: str) -> Any:
        """A ServiceAccount (``kubernetes.client.V1ServiceAccount``); raises KubeApiError."""
        ...


@dataclass(frozen=True)
class RequestCredentials:
    """Credentials a request's pull secrets gave, and what went wrong reading them."""

    store: CredentialStore = field(default_factory=CredentialStore)
    problems: tuple[str, ...] = ()

    def fingerprint_for(self, image: ImageRef, mirror: str | None = None) -> str | None:
        """The fingerprint of this request's credentials for ``image`` (and for the mirror
        that is tried first, when one is configured); None when it has none (the
        process-wide credentials, the same for every namespace, then apply)."""
        hosts = [image.registry] + ([mirror] if mirror else [])
        found = [self.store.lookup(host, image.repository) for host in hosts]
        prints = [c.fingerprint if c is not None else "-" for c in found]
        return "+".join(prints) if any(c is not None for c in found) else None


NO_CREDENTIALS = RequestCredentials()


class PendingCredentials:
    """One request's credentials, read on first use and shared by its images."""

    def __init__(
        self,
        resolver: PullSecretResolver,
        namespace: str,
        names: Sequence[str],
        service_account: str = DEFAULT_SERVICE_ACCOUNT,
    ) -> None:
        self._resolver = resolver
        self._namespace = namespace
        self._names = tuple(names)
        self._service_account = service_account
        self._task: asyncio.Future[RequestCredentials] | None = None

    @property
    def namespace(self) -> str:
        """The request's namespace."""
        return self._namespace

    async def get(self) -> RequestCredentials:
        """The credentials (reading the secrets the first time); never raises."""
        if self._task is None:
            self._task = asyncio.ensure_future(
                self._resolver.credentials(self._namespace, self._names, self._service_account)
            )
        # shielded: one image hitting its deadline must not cancel the read for the others
        return await asyncio.shield(self._task)

    def problems(self) -> tuple[str, ...]:
        """What could not be read, once the read finished; () before."""
        task = self._task
        if task is None or not task.done() or task.cancelled() or task.exception():
            return ()
        return task.result().problems


class PullSecretResolver:
    """Reads and caches pull secrets and the default service account's secret list."""

    def __init__(
        self,
        reader: SecretReader,
        *,
        ttl: float = 60.0,
        negative_ttl: float = 10.0,
        timeout: float = 2.0,
        service_account: str = DEFAULT_SERVICE_ACCOUNT,
    ) -> None:
        self._reader = reader
        self._timeout = timeout
        self._service_account = service_account
        self._secrets: AsyncTTLCache[CredentialStore] = AsyncTTLCache(
            ttl=ttl, negative_ttl=negative_ttl, max_entries=4096
        )
        self._accounts: AsyncTTLCache[tuple[str, ...]] = AsyncTTLCache(
            ttl=ttl, negative_ttl=negative_ttl, max_entries=4096
        )

    def for_request(
        self, namespace: str, names: Sequence[str], service_account: str | None = None
    ) -> PendingCredentials:
        """Credentials for a request in ``namespace`` naming pull secrets ``names``, run as
        ``service_account`` (default: the resolver's, normally ``default``)."""
        return PendingCredentials(self, namespace, names, service_account or self._service_account)

    async def credentials(
        self, namespace: str, names: Sequence[str], service_account: str | None = None
    ) -> RequestCredentials:
        """The pod's service account's secrets, then the pod's own (which win), merged; never
        raises."""
        problems: list[str] = []
        pod_names = tuple(dict.fromkeys(names))[:MAX_SECRETS]

        async def account_stores() -> list[CredentialStore | None]:
            account_names = await self._account_secrets(
                namespace, service_account or self._service_account, problems
            )
            extra = [n for n in account_names if n not in pod_names][:MAX_SECRETS]
            return list(
                await asyncio.gather(*(self._secret(namespace, n, problems) for n in extra))
            )

        # the pod's secrets are read while the service account is, not after it
        from_account, from_pod = await asyncio.gather(
            account_stores(),
            asyncio.gather(*(self._secret(namespace, n, problems) for n in pod_names)),
        )
        # Pod secrets come last so their entries override the service account's.
        merged = CredentialStore()
        for store in (*from_account, *from_pod):
            if store is not None:
                merged = merged.merged(store)
        return RequestCredentials(merged, tuple(problems))

    async def _account_secrets(
        self, namespace: str, name: str, problems: list[str]
    ) -> tuple[str, ...]:
        async def load() -> tuple[str, ...]:
            async with asyncio.timeout(self._timeout):
                account = await self._reader.read_service_account(namespace, name)
            refs = getattr(account, "image_pull_secrets", None) or ()
            found = (getattr(r, "name", None) for r in refs)
            return tuple(dict.fromkeys(n for n in found if isinstance(n, str) and n))

        try:
            return await self._accounts.get((namespace, name), load)
        except Exception as exc:
            problems.append(
                f"service account {name} in namespace {namespace} could not be read: "
                f"{_why(exc, self._timeout)}"
            )
            return ()

    async def _secret(
        self, namespace: str, name: str, problems: list[str]
    ) -> CredentialStore | None:
        async def load() -> CredentialStore:
            async with asyncio.timeout(self._timeout):
                secret = await self._reader.read_secret(namespace, name)
            return credentials_from_pull_secret(secret)

        try:
            return await self._secrets.get((namespace, name), load)
        except CredentialsError as exc:
            problems.append(f"pull secret {name} in namespace {namespace} could not be used: {exc}")
        except Exception as exc:
            problems.append(
                f"pull secret {name} in namespace {namespace} could not be read: "
                f"{_why(exc, self._timeout)}"
            )
        return None


def _why(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, KubeApiError):
        return exc.short
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s"
    return type(exc).__name__

"""Evidence from a private registry with the pod's image pull secrets (controller/pull_secrets.py).

Real parts: Debian's docker-registry with htpasswd Basic auth (the ``auth_registry`` fixture),
a cosign signature made with a real ECDSA key, the real Evaluator and RegistryClient. The
Kubernetes API server is the recorded-protocol stand-in of tests/support/kube_api.py (HTTPS on
127.0.0.1, bearer token, the JSON shapes kube-apiserver returns), read through the real
``kubernetes`` client.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from controller.admission.model import AdmissionRequest, ReviewDecision
from controller.admission.review import (
    MAX_PULL_SECRETS,
    AdmissionReviewError,
    parse_admission_review,
    pull_secret_names,
    requests_from_manifest,
)
from controller.config import Settings
from controller.evaluator import Evaluator
from controller.evidence.source import RegistryEvidence
from controller.kube import KubeClient
from controller.oci.client import RegistryClient, RegistrySettings
from controller.oci.credentials import CredentialStore, RegistryCredential, parse_docker_config
from controller.oci.reference import parse_image_ref
from controller.policy.loader import load_policy_documents
from controller.pull_secrets import PullSecretResolver, RequestCredentials
from controller.verify.trustroot import TrustRoots
from tests.support.cosign_sign import public_pem
from tests.support.kube_api import KubeApiStandIn, dockerconfigjson_secret, running_kube_api
from tests.support.registry import RunningRegistry
from tests.support.tls import TlsFiles
from tests.support.webhook import admission_review, deployment, pod
from tests.test_e2e_webhook import push_signed

KEY = ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class Private:
    """A signed image in the Basic-auth registry and a policy requiring its signature."""

    reg: RunningRegistry
    image: str  # by tag, so tag resolution needs the credentials too
    policies: str


@pytest.fixture(scope="module")
def private(auth_registry: RunningRegistry) -> Private:
    push_signed(auth_registry, "private/app", "v1", KEY)
    pem = "\n".join("          " + line for line in public_pem(KEY).decode().splitlines())
    policies = f"""apiVersion: reprogate.dev/v1alpha1
kind: ImagePolicy
metadata: {{name: private-signed}}
spec:
  match: {{images: ["{auth_registry.host}/private/**"]}}
  authorities:
    - name: release
      key:
        pem: |
{pem}
"""
    return Private(auth_registry, auth_registry.ref("private/app", "v1"), policies)


def _with_secrets(obj: dict[str, Any], *names: str) -> dict[str, Any]:
    spec = obj["spec"]["template"]["spec"] if obj["kind"] == "Deployment" else obj["spec"]
    spec["imagePullSecrets"] = [{"name": n} for n in names]
    return obj


def _request(obj: dict[str, Any], namespace: str) -> AdmissionRequest:
    """Through the real AdmissionReview parser, so pull secret names come from the pod spec."""
    return parse_admission_review(json.dumps(admission_review(obj, namespace)).encode())


def _regcred(p: Private, namespace: str, name: str = "regcred") -> dict[str, Any]:
    assert p.reg.username and p.reg.password
    return dockerconfigjson_secret(namespace, name, p.reg.host, p.reg.username, p.reg.password)


def _run(
    p: Private,
    tls: TlsFiles,
    state: KubeApiStandIn,
    scenario: Callable[[Evaluator, KubeApiStandIn], Any],
) -> None:
    async def main() -> None:
        async with running_kube_api(tls, state) as (api, cfg):
            kube = KubeClient(cfg)
            async with RegistryClient(RegistrySettings(ca_file=str(p.reg.ca_file))) as client:
                evaluator = Evaluator(
                    Settings(),
                    load_policy_documents(p.policies, "private.yaml"),
                    RegistryEvidence(client),
                    TrustRoots(),
                    pull_secrets=PullSecretResolver(kube),
                )
                await scenario(evaluator, api)
            kube.close()

    asyncio.run(main())


async def _decide(evaluator: Evaluator, obj: dict[str, Any], namespace: str) -> ReviewDecision:
    return await evaluator.evaluate(_request(obj, namespace), mutate=False)


def test_admitted_only_with_the_pull_secret_and_never_from_another_namespaces_cache(
    private: Private, tls_files: TlsFiles
) -> None:
    """Kubernetes API: the stand-in of tests/support/kube_api.py (no API server here)."""
    state = KubeApiStandIn()
    state.add_secret(_regcred(private, "team-a"))

    async def scenario(evaluator: Evaluator, api: KubeApiStandIn) -> None:
        with_secret = await _decide(
            evaluator, _with_secrets(pod("web", private.image), "regcred"), "team-a"
        )
        assert with_secret.allowed, with_secret.message
        assert with_secret.images[0].digest is not None
        # team-b has no such secret: the evidence team-a fetched with it is not served
        other = await _decide(
            evaluator, _with_secrets(pod("web", private.image), "regcred"), "team-b"
        )
        assert not other.allowed
        assert "credentials" in other.message
        assert "pull secret regcred in namespace team-b could not be read: 404" in other.message
        # and a pod in team-a that names no secret is refused too
        bare = await _decide(evaluator, pod("bare", private.image), "team-a")
        assert not bare.allowed and "no credentials" in bare.message
        # pinned by digest (no tag lookup): the evidence cache itself must not leak either
        pinned = f"{private.reg.host}/private/app@{with_secret.images[0].digest}"
        first = await _decide(evaluator, _with_secrets(pod("p", pinned), "regcred"), "team-a")
        assert first.allowed, first.message
        leak = await _decide(evaluator, pod("p", pinned), "team-b")
        assert not leak.allowed and "no credentials" in leak.message
        # team-a again: cached evidence, the secret read once within its TTL
        again = await _decide(
            evaluator, _with_secrets(deployment("web", private.image), "regcred"), "team-a"
        )
        assert again.allowed, again.message
        assert api.reads_of("secrets", "team-a", "regcred") == 1

    _run(private, tls_files, state, scenario)


def test_default_service_account_pull_secrets_apply_below_the_pods(
    private: Private, tls_files: TlsFiles
) -> None:
    """Kubernetes API: the stand-in of tests/support/kube_api.py (no API server here)."""
    state = KubeApiStandIn(service_accounts={"team-c": ["sa-regcred"], "team-d": ["stale"]})
    state.add_secret(_regcred(private, "team-c", "sa-regcred"))
    assert private.reg.username
    state.add_secret(
        dockerconfigjson_secret("team-d", "stale", private.reg.host, private.reg.username, "x")
    )
    state.add_secret(_regcred(private, "team-d"))

    async def scenario(evaluator: Evaluator, api: KubeApiStandIn) -> None:
        decision = await _decide(evaluator, pod("web", private.image), "team-c")
        assert decision.allowed, decision.message
        assert api.reads_of("serviceaccounts", "team-c", "default") == 1
        # the service account's stale password alone is refused...
        stale = await _decide(evaluator, pod("web", private.image), "team-d")
        assert not stale.allowed and "credentials refused" in stale.message
        # ...and the pod's own secret for the same registry takes precedence over it
        own = await _decide(
            evaluator, _with_secrets(pod("web", private.image), "regcred"), "team-d"
        )
        assert own.allowed, own.message

    _run(private, tls_files, state, scenario)


def test_the_pods_own_service_account_secrets_apply(private: Private, tls_files: TlsFiles) -> None:
    """Kubernetes API: the stand-in of tests/support/kube_api.py. kubelet pulls with the
    secrets of the pod's serviceAccountName, not the namespace's default account."""
    state = KubeApiStandIn(service_accounts={"team-e/builder": ["builder-regcred"]})
    state.add_secret(_regcred(private, "team-e", "builder-regcred"))

    async def scenario(evaluator: Evaluator, api: KubeApiStandIn) -> None:
        obj = pod("web", private.image)
        obj["spec"]["serviceAccountName"] = "builder"
        decision = await _decide(evaluator, obj, "team-e")
        assert decision.allowed, decision.message
        assert api.reads_of("serviceaccounts", "team-e", "builder") == 1
        assert api.reads_of("serviceaccounts", "team-e", "default") == 0
        # the default account has no such secret: a pod running as it is refused
        plain = await _decide(evaluator, pod("web", private.image), "team-e")
        assert not plain.allowed

    _run(private, tls_files, state, scenario)


def test_forbidden_secret_proceeds_anonymously_and_says_why(
    private: Private, tls_files: TlsFiles
) -> None:
    """Kubernetes API: the stand-in of tests/support/kube_api.py, refusing ``get`` on the
    secret with 403 Forbidden as RBAC would."""
    state = KubeApiStandIn(forbidden={("team-a", "regcred")})
    state.add_secret(_regcred(private, "team-a"))

    async def scenario(evaluator: Evaluator, api: KubeApiStandIn) -> None:
        decision = await _decide(
            evaluator, _with_secrets(pod("web", private.image), "regcred"), "team-a"
        )
        assert not decision.allowed
        assert "pull secret regcred in namespace team-a could not be read: 403" in decision.message
        assert "registry" in decision.message and "credentials" in decision.message

    _run(private, tls_files, state, scenario)


def test_wrong_password_is_refused_not_admitted(private: Private, tls_files: TlsFiles) -> None:
    """Kubernetes API: the stand-in of tests/support/kube_api.py (no API server here)."""
    state = KubeApiStandIn()
    assert private.reg.username
    state.add_secret(
        dockerconfigjson_secret("team-a", "stale", private.reg.host, private.reg.username, "nope")
    )

    async def scenario(evaluator: Evaluator, api: KubeApiStandIn) -> None:
        decision = await _decide(
            evaluator, _with_secrets(pod("web", private.image), "stale"), "team-a"
        )
        assert not decision.allowed
        assert "credentials refused" in decision.message or "refused" in decision.message

    _run(private, tls_files, state, scenario)


def test_malformed_secret_is_named_without_its_contents(tls_files: TlsFiles) -> None:
    """Kubernetes API: the stand-in of tests/support/kube_api.py (no API server here)."""
    state = KubeApiStandIn()
    secret = dockerconfigjson_secret("ns", "broken", "reg.example", "u", "hunter2")
    secret["data"][".dockerconfigjson"] = "not base64!"
    state.add_secret(secret)
    opaque = dockerconfigjson_secret("ns", "opaque", "reg.example", "u", "hunter2")
    opaque["type"] = "Opaque"
    state.add_secret(opaque)

    async def main() -> RequestCredentials:
        async with running_kube_api(tls_files, state) as (_, cfg):
            kube = KubeClient(cfg)
            try:
                return await PullSecretResolver(kube).credentials("ns", ["broken", "opaque"])
            finally:
                kube.close()

    creds = asyncio.run(main())
    assert len(creds.store) == 0
    text = " | ".join(creds.problems)
    assert "pull secret broken in namespace ns could not be used" in text
    assert "not valid base64" in text
    assert "pull secret opaque in namespace ns could not be used" in text
    assert "hunter2" not in text


def test_unreachable_api_server_means_anonymous(tls_files: TlsFiles) -> None:
    """Kubernetes API: a Configuration pointing at a closed 127.0.0.1 port (no server)."""
    from tests.support.kube_api import configuration
    from tests.support.registry import free_port

    async def main() -> RequestCredentials:
        kube = KubeClient(configuration(f"127.0.0.1:{free_port()}", tls_files.ca_cert, "t"))
        try:
            return await PullSecretResolver(kube).credentials("ns", ["regcred"])
        finally:
            kube.close()

    creds = asyncio.run(main())
    assert len(creds.store) == 0
    assert any(
        p.startswith("pull secret regcred in namespace ns could not be read:")
        for p in creds.problems
    )
    assert any(p.startswith("service account default in namespace ns") for p in creds.problems)


def test_fingerprint_is_per_image_credential() -> None:
    cred = RegistryCredential("u", "p")
    creds = RequestCredentials(CredentialStore({"reg.example": cred}))
    assert creds.fingerprint_for(parse_image_ref("reg.example/a/b:1")) == cred.fingerprint
    assert creds.fingerprint_for(parse_image_ref("other.example/a/b:1")) is None
    changed = RequestCredentials(CredentialStore({"reg.example": RegistryCredential("u", "q")}))
    assert changed.fingerprint_for(parse_image_ref("reg.example/a/b:1")) != cred.fingerprint


# ---------------------------------------------------------------- pull_secret_names (review.py)


def test_pull_secret_names_from_every_pod_spec_location() -> None:
    p = _with_secrets(pod("p", "img"), "a", "b", "a")
    assert pull_secret_names(p, "", "Pod") == ("a", "b")
    d = _with_secrets(deployment("d", "img"), "regcred")
    assert pull_secret_names(d, "apps", "Deployment") == ("regcred",)
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "spec": {
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [{"name": "c", "image": "img"}],
                            "imagePullSecrets": [{"name": "cron-secret"}, {"name": ""}],
                        }
                    }
                }
            }
        },
    }
    assert pull_secret_names(cron, "batch", "CronJob") == ("cron-secret",)
    assert pull_secret_names({"kind": "ConfigMap"}, "", "ConfigMap") == ()
    assert pull_secret_names(pod("p", "img"), "", "Pod") == ()


def test_parsed_requests_carry_pull_secrets() -> None:
    req = _request(_with_secrets(deployment("d", "img"), "regcred"), "team-a")
    assert req.pull_secrets == ("regcred",)
    [from_manifest] = requests_from_manifest(
        json.dumps(_with_secrets(pod("p", "img"), "x")), "default"
    )
    assert from_manifest.pull_secrets == ("x",)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("regcred", "imagePullSecrets must be a list"),
        (["regcred"], "imagePullSecrets/0 must be an object"),
        ([{"name": 7}], "imagePullSecrets/0/name must be a string"),
        ([{"name": f"s{i}"} for i in range(MAX_PULL_SECRETS + 1)], "at most 64"),
    ],
)
def test_malformed_pull_secrets_are_bad_requests(value: Any, message: str) -> None:
    obj = pod("p", "img")
    obj["spec"]["imagePullSecrets"] = value
    with pytest.raises(AdmissionReviewError, match=message):
        _request(obj, "ns")


def test_fingerprint_covers_the_mirror_credential() -> None:
    """Evidence read through a mirror with one namespace's mirror credential must not be
    cached for a namespace without it."""
    mirror_cred = parse_docker_config(
        json.dumps({"auths": {"mirror.example": {"username": "a", "password": "b"}}}).encode(),
        "test",
    )
    creds = RequestCredentials(mirror_cred)
    image = parse_image_ref("reg.example/a/b:1")
    assert creds.fingerprint_for(image) is None
    with_mirror = creds.fingerprint_for(image, "mirror.example")
    assert with_mirror is not None
    assert RequestCredentials(CredentialStore()).fingerprint_for(image, "mirror.example") is None

"""Run ``reprogate serve`` as a real process and talk AdmissionReview to it over HTTPS."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.registry import free_port
from tests.support.tls import TlsFiles

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Webhook:
    """A running ``reprogate serve`` process."""

    process: subprocess.Popen[bytes]
    port: int
    ca_file: Path
    decision_log: Path
    stderr_file: Path
    _ctx: ssl.SSLContext = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._ctx = ssl.create_default_context(cafile=str(self.ca_file))

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def post(self, path: str, body: bytes, timeout: float = 30) -> tuple[int, bytes]:
        """POST ``body``; (status, response body)."""
        req = urllib.request.Request(
            self.url + path, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, context=self._ctx, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def get(self, path: str) -> tuple[int, bytes]:
        """GET ``path``; (status, body)."""
        try:
            with urllib.request.urlopen(self.url + path, context=self._ctx, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def review(
        self,
        obj: dict[str, Any],
        *,
        namespace: str = "default",
        path: str = "/validate",
        timeout: float = 30,
    ) -> dict[str, Any]:
        """Send an AdmissionReview for ``obj``; the parsed ``response`` object. ``timeout``
        plays the API server's webhook timeout: no answer by then is an error."""
        status, body = self.post(
            path, json.dumps(admission_review(obj, namespace)).encode(), timeout=timeout
        )
        if status != 200:
            raise AssertionError(f"HTTP {status}: {body[:500]!r}")
        response: dict[str, Any] = json.loads(body)["response"]
        return response

    def records(self) -> list[dict[str, Any]]:
        """Decision records written so far."""
        if not self.decision_log.exists():
            return []
        return [json.loads(line) for line in self.decision_log.read_text().splitlines() if line]

    def stop(self) -> None:
        """SIGTERM and wait."""
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def stderr(self) -> str:
        return self.stderr_file.read_text(errors="replace")


def start_webhook(
    workdir: Path,
    tls: TlsFiles,
    policies: Path,
    *,
    registry_ca: Path | None = None,
    extra: Sequence[str] = (),
) -> Webhook:
    """Start ``reprogate serve`` on a free port with the test CA's server certificate."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "decisions.jsonl"
    err = workdir / "serve.stderr"
    args = [
        sys.executable,
        "-m",
        "controller.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--policies",
        str(policies),
        "--tls-cert",
        str(tls.server_cert),
        "--tls-key",
        str(tls.server_key),
        "--decision-log",
        str(log),
        *(["--registry-ca", str(registry_ca)] if registry_ca else []),
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with err.open("wb") as err_out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err_out)
    hook = Webhook(proc, port, tls.ca_cert, log, err)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"reprogate serve exited {proc.returncode}: {hook.stderr()}")
        try:
            if hook.get("/readyz")[0] == 200:
                return hook
        except OSError:
            pass
        time.sleep(0.1)
    hook.stop()
    raise RuntimeError(f"reprogate serve did not become ready: {hook.stderr()}")


def admission_review(obj: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
    """An ``admission.k8s.io/v1`` AdmissionReview as kube-apiserver sends for a CREATE."""
    kind = obj["kind"]
    group, _, version = obj["apiVersion"].rpartition("/")
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "namespace": namespace,
            "name": obj["metadata"]["name"],
            "operation": "CREATE",
            "userInfo": {"username": "alice@example.com", "groups": ["system:authenticated"]},
            "object": obj,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def pod(name: str, *images: str) -> dict[str, Any]:
    """A Pod running ``images``."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": f"c{i}", "image": img} for i, img in enumerate(images)]},
    }


def deployment(name: str, *images: str) -> dict[str, Any]:
    """A Deployment whose pod template runs ``images``."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": f"c{i}", "image": img} for i, img in enumerate(images)]
                },
            },
        },
    }

"""The webhook server over real TLS, with a fake evaluator implementing ReviewEvaluator.

This is the unit test of the server (routing, limits, deadlines, records, metrics, TLS); the
end-to-end test with the real engine lives elsewhere. Review bodies are the hand-written
fixtures of tests/fixtures/admission/ (no API server here).
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from controller.admission.metrics import AdmissionMetrics
from controller.admission.model import AdmissionRequest, ImageUse, ReviewDecision
from controller.admission.response import (
    MAX_MESSAGE_CHARS,
    MAX_WARNING_CHARS,
    MAX_WARNINGS,
    cap_lines,
    denial_message,
    digest_pin_patch,
    review_response,
    sanitize_warnings,
)
from controller.admission.server import build_app, run_server, start_server
from controller.admission.tls import (
    SelfSignedCertificate,
    TLSConfigError,
    self_signed_certificate,
    server_ssl_context,
)
from controller.decisions.record import DecisionLog, DecisionRecord
from controller.policy.verdict import CheckResult, ImageVerdict, PolicyResult

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "admission"
DIGEST = "sha256:" + "cd" * 32
MiB = 1024 * 1024


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


class FakeEvaluator:
    """Implements the ReviewEvaluator protocol with a scripted behaviour."""

    def __init__(self) -> None:
        self.behaviour = "allow"
        self.is_ready = True
        self.calls: list[tuple[str, bool]] = []
        self.release = asyncio.Event()

    def ready(self) -> bool:
        return self.is_ready

    async def evaluate(self, request: AdmissionRequest, *, mutate: bool) -> ReviewDecision:
        self.calls.append((request.uid, mutate))
        if self.behaviour == "hang":
            await asyncio.sleep(3600)
        if self.behaviour == "stubborn":
            # Swallows the first cancellation: the server must still answer on time.
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                await self.release.wait()
        if self.behaviour == "raise":
            raise RuntimeError("secret-token-in-message")
        verdicts = tuple(
            ImageVerdict(
                ref=u.image,
                digest=DIGEST if "@" not in u.image else u.image.split("@", 1)[1],
                verdict="deny" if self.behaviour == "deny" else "allow",
                policies=(
                    PolicyResult(
                        name="release-images",
                        mode="enforce",
                        passed=self.behaviour != "deny",
                        checks=(
                            CheckResult(
                                "signatures",
                                self.behaviour != "deny",
                                "no signature from release-key",
                            ),
                        ),
                    ),
                ),
            )
            for u in request.images
        )
        allowed = self.behaviour != "deny"
        return ReviewDecision(
            allowed=allowed,
            message="",
            images=verdicts,
            patch=({"op": "add", "path": "/x", "value": object()},)
            if self.behaviour == "badpatch"
            else (),
            decision="allow" if allowed else "deny",
            warnings=("image uses a mutable tag",) if allowed else (),
            cache={"hits": 1, "misses": 2},
        )


class Harness:
    def __init__(self, base: str, session: aiohttp.ClientSession, log_path: Path) -> None:
        self.base = base
        self.session = session
        self.log_path = log_path

    async def post(self, path: str, data: Any) -> tuple[int, Any]:
        async with self.session.post(
            self.base + path, data=data, headers={"Content-Type": "application/json"}
        ) as resp:
            text = await resp.text()
            if resp.content_type == "application/json":
                return resp.status, json.loads(text)
            return resp.status, text

    async def get(self, path: str) -> tuple[int, str]:
        async with self.session.get(self.base + path) as resp:
            return resp.status, await resp.text()

    def records(self) -> list[DecisionRecord]:
        lines = self.log_path.read_text().splitlines()
        return [DecisionRecord.from_json(line) for line in lines]


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> SelfSignedCertificate:
    return self_signed_certificate(("localhost",), directory=tmp_path_factory.mktemp("tls"))


@asynccontextmanager
async def serving(
    cert: SelfSignedCertificate,
    evaluator: FakeEvaluator,
    tmp_path: Path,
    *,
    deadline: float = 5.0,
    max_body: int = 3 * MiB,
) -> AsyncIterator[Harness]:
    log_path = tmp_path / "decisions.jsonl"
    decision_log = DecisionLog(str(log_path))
    app = build_app(
        evaluator, decision_log=decision_log, deadline_seconds=deadline, max_body=max_body
    )
    runner, port = await start_server(app, "127.0.0.1", 0, cert.context)
    client_ctx = ssl.create_default_context(cafile=str(cert.cert_file))
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=client_ctx),
            timeout=aiohttp.ClientTimeout(total=60),
        ) as session:
            yield Harness(f"https://localhost:{port}", session, log_path)
    finally:
        evaluator.release.set()
        await runner.cleanup()
        decision_log.close()


def run(coro_fn: Callable[[], Any]) -> None:
    asyncio.run(coro_fn())


def test_allow_over_tls_with_warnings_and_record(
    cert: SelfSignedCertificate, tmp_path: Path
) -> None:
    async def scenario() -> None:
        ev = FakeEvaluator()
        async with serving(cert, ev, tmp_path) as h:
            status, review = await h.post("/validate", fixture("deployment-create.json"))
            assert status == 200
            assert review["apiVersion"] == "admission.k8s.io/v1"
            assert review["kind"] == "AdmissionReview"
            resp = review["response"]
            assert resp["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002"
            assert resp["allowed"] is True
            assert resp["warnings"] == ["image uses a mutable tag"]
            assert "patch" not in resp
            assert ev.calls == [("705ab4f5-6393-11e8-b7cc-42010a800002", False)]
            [rec] = h.records()
            assert (rec.decision, rec.kind, rec.name, rec.namespace) == (
                "allow",
                "Deployment",
                "web",
                "shop",
            )
            assert len(rec.images) == 3
            assert rec.cache == {"hits": 1, "misses": 2}

    run(scenario)


def test_v1beta1_response_echoes_version(cert: SelfSignedCertificate, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(cert, FakeEvaluator(), tmp_path) as h:
            status, review = await h.post("/validate", fixture("pod-create-v1beta1.json"))
            assert status == 200
            assert review["apiVersion"] == "admission.k8s.io/v1beta1"

    run(scenario)


def test_deny_lists_reasons(cert: SelfSignedCertificate, tmp_path: Path) -> None:
    async def scenario() -> None:
        ev = FakeEvaluator()
        ev.behaviour = "deny"
        async with serving(cert, ev, tmp_path) as h:
            status, review = await h.post("/validate", fixture("pod-create.json"))
            assert status == 200
            resp = review["response"]
            assert resp["allowed"] is False
            assert resp["status"]["code"] == 403
            assert resp["status"]["reason"] == "Forbidden"
            msg = resp["status"]["message"]
            assert (
                "image registry.example.com/acme/app:2.3.1: policy release-images: "
                "signatures: no signature from release-key" in msg
            )
            assert msg.count("\n") == 2  # three images, one line each
            assert h.records()[0].decision == "deny"

    run(scenario)


def test_malformed_gets_400_and_server_keeps_serving(
    cert: SelfSignedCertificate, tmp_path: Path
) -> None:
    async def scenario() -> None:
        ev = FakeEvaluator()
        async with serving(cert, ev, tmp_path) as h:
            status, text = await h.post("/validate", b"{not json")
            assert status == 400
            assert "not JSON" in text
            status, text = await h.post("/validate", b'{"apiVersion":"v1"}')
            assert status == 400 and "apiVersion" in text
            status, review = await h.post("/validate", fixture("pod-create.json"))
            assert status == 200 and review["response"]["allowed"] is True
            assert ev.calls and len(ev.calls) == 1
            assert len(h.records()) == 1  # malformed bodies are not reviews
            _, metrics = await h.get("/metrics")
            assert (
                'reprogate_admission_errors_total{path="/validate",reason="bad_request"} 2'
                in metrics
            )

    run(scenario)


def test_body_over_cap_gets_413(cert: SelfSignedCertificate, tmp_path: Path) -> None:
    async def scenario() -> None:
        ev = FakeEvaluator()
        async with serving(cert, ev, tmp_path) as h:
            big = b" " * (3 * MiB + 1)
            status, text = await h.post("/validate", big)
            assert status == 413
            assert "3145728 byte limit" in text

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(4):
                    yield b" " * MiB

            status, text = await h.post("/validate", chunks())  # chunked: no Content-Length
            assert status == 413
            # A body exactly at the cap is read and parsed (and is malformed: spaces only).
            status, text = await h.post("/validate", b" " * (3 * MiB))
            assert status == 400
            status, _ = await h.post("/validate", fixture("pod-create.json"))
            assert status == 200
            assert len(ev.calls) == 1

    run(scenario)


@pytest.mark.parametrize("behaviour", ["hang", "stubborn"])
def test_evaluator_timeout_fails_closed(
    cert: SelfSignedCertificate, tmp_path: Path, behaviour: str
) -> None:
    async def scenario() -> None:
        ev = FakeEvaluator()
        ev.behaviour = behaviour
        async with serving(cert, ev, tmp_path, deadline=0.2) as h:
            status, review = await h.post("/validate", fixture("pod-create.json"))
            assert status == 200
            resp = review["response"]
            assert resp["allowed"] is False
            assert resp["status"]["message"].startswith(
                "reprogate could not reach a decision within 0.2s: evaluation timed out "
                "(evaluating registry.example.com/acme/migrate:1.4.0, "
            )
            [rec] = h.records()
            assert rec.decision == "deny"
            assert [i.error for i in rec.images] == [resp["status"]["message"]] * 3
            _, metrics = await h.get("/metrics")
            assert 'reprogate_admission_errors_total{path="/validate",reason="timeout"} 1' in (
                metrics
            )

    run(scenario)


def test_evaluator_exception_fails_closed(cert: SelfSignedCertificate, tmp_path: Path) -> None:
    async def scenario() -> None:
        ev = FakeEvaluator()
        ev.behaviour = "raise"
        async with serving(cert, ev, tmp_path) as h:
            status, review = await h.post("/mutate", fixture("pod-create.json"))
            assert status == 200
            resp = review["response"]
            assert resp["allowed"] is False
            msg = resp["status"]["message"]
            assert msg.startswith(
                "reprogate could not reach a decision within 5s: internal error (RuntimeError) "
                "(evaluating "
            )
            assert "secret-token" not in json.dumps(review)
            assert "patch" not in resp
            assert [r.decision for r in h.records()] == ["deny"]

    run(scenario)


def test_one_record_per_review(cert: SelfSignedCertificate, tmp_path: Path) -> None:
    async def scenario() -> None:
        ev = FakeEvaluator()
        async with serving(cert, ev, tmp_path) as h:
            names = ["pod-create.json", "cronjob-create.json", "pod-delete.json"]
            for name in names:
                status, _ = await h.post("/validate", fixture(name))
                assert status == 200
            await h.post("/validate", b"[]")
            ev.behaviour = "raise"
            await h.post("/validate", fixture("job-create.json"))
            records = h.records()
            assert [r.kind for r in records] == ["Pod", "CronJob", "Pod", "Job"]
            assert [r.operation for r in records] == ["CREATE", "CREATE", "DELETE", "CREATE"]
            assert [r.decision for r in records] == ["allow", "allow", "allow", "deny"]
            raw = h.log_path.read_text()
            assert "regcred" not in raw  # pull secret names never reach the log
            assert "argocd" in raw  # the user does

    run(scenario)


def test_health_ready_and_metrics(cert: SelfSignedCertificate, tmp_path: Path) -> None:
    async def scenario() -> None:
        ev = FakeEvaluator()
        ev.is_ready = False
        async with serving(cert, ev, tmp_path) as h:
            assert (await h.get("/healthz"))[0] == 200
            assert (await h.get("/readyz"))[0] == 503
            ev.is_ready = True
            assert (await h.get("/readyz"))[0] == 200
            await h.post("/validate", fixture("pod-create.json"))
            ev.behaviour = "deny"
            await h.post("/validate", fixture("pod-create.json"))
            await h.post("/mutate", fixture("pod-create.json"))
            status, text = await h.get("/metrics")
            assert status == 200
            assert 'reprogate_admission_requests_total{path="/validate",decision="allow"} 1' in text
            assert 'reprogate_admission_requests_total{path="/validate",decision="deny"} 1' in text
            assert 'reprogate_admission_requests_total{path="/mutate",decision="deny"} 1' in text
            assert 'reprogate_admission_duration_seconds_count{path="/validate"} 2' in text
            assert 'reprogate_admission_duration_seconds_bucket{path="/validate",le="+Inf"} 2' in (
                text
            )
            assert "# TYPE reprogate_admission_duration_seconds histogram" in text
            assert "reprogate_admission_in_flight 0" in text
            assert (await h.get("/validate"))[0] == 405

    run(scenario)


def _apply(obj: Any, ops: list[dict[str, Any]]) -> None:
    for op in ops:
        assert op["op"] == "replace"
        parts = op["path"].lstrip("/").split("/")
        node = obj
        for p in parts[:-1]:
            node = node[int(p)] if isinstance(node, list) else node[p]
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = op["value"]
        else:
            assert last in node
            node[last] = op["value"]


def test_mutate_pins_tags_to_digests(cert: SelfSignedCertificate, tmp_path: Path) -> None:
    async def scenario() -> None:
        ev = FakeEvaluator()
        async with serving(cert, ev, tmp_path) as h:
            raw = json.loads(fixture("deployment-create.json"))
            status, review = await h.post("/mutate", json.dumps(raw).encode())
            assert status == 200
            resp = review["response"]
            assert resp["allowed"] is True
            assert resp["patchType"] == "JSONPatch"
            ops = json.loads(base64.b64decode(resp["patch"]))
            assert ev.calls[-1][1] is True
            obj = raw["request"]["object"]
            _apply(obj, ops)
            spec = obj["spec"]["template"]["spec"]
            assert spec["containers"][0]["image"] == (
                f"registry.example.com/acme/app:2.3.1@{DIGEST}"
            )
            assert spec["initContainers"][0]["image"].endswith(f"@{DIGEST}")
            assert spec["containers"][1]["image"] == "ghcr.io/acme/proxy@sha256:" + "ab" * 32
            assert len(ops) == 2
            # /validate never patches.
            status, review = await h.post("/validate", json.dumps(raw).encode())
            assert "patch" not in review["response"]

    run(scenario)


def test_build_app_rejects_nonpositive_deadline(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        build_app(FakeEvaluator(), decision_log=DecisionLog("-"), deadline_seconds=0)


# --- TLS -----------------------------------------------------------------------------------


async def _peer_cert(port: int, cadata: str) -> bytes:
    ctx = ssl.create_default_context(cadata=cadata)
    _reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="localhost"
    )
    sslobj = writer.get_extra_info("ssl_object")
    der = sslobj.getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    assert der is not None
    return bytes(der)


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def test_certificate_files_are_reloaded_on_rotation(tmp_path: Path) -> None:
    a = self_signed_certificate(("localhost",), directory=tmp_path)
    b = self_signed_certificate(("localhost",), directory=tmp_path)
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(a.cert_file, live / "tls.crt")
    shutil.copy(a.key_file, live / "tls.key")
    cadata = (a.cert_pem + b.cert_pem).decode()

    async def scenario() -> None:
        ctx = server_ssl_context(live / "tls.crt", live / "tls.key", check_interval=0)
        app = build_app(FakeEvaluator(), decision_log=DecisionLog("-"), deadline_seconds=1)
        runner, port = await start_server(app, "127.0.0.1", 0, ctx)
        try:
            assert await _peer_cert(port, cadata) == _der(a.cert_pem)
            # Mid-rotation: new certificate, old key. The old pair must keep serving.
            shutil.copy(b.cert_file, live / "tls.crt.new")
            (live / "tls.crt.new").replace(live / "tls.crt")
            assert await _peer_cert(port, cadata) == _der(a.cert_pem)
            shutil.copy(b.key_file, live / "tls.key.new")
            (live / "tls.key.new").replace(live / "tls.key")
            assert await _peer_cert(port, cadata) == _der(b.cert_pem)
        finally:
            await runner.cleanup()

    run(scenario)


def test_self_signed_files_are_private(tmp_path: Path) -> None:
    c = self_signed_certificate(("reprogate.reprogate.svc", "localhost"), directory=tmp_path)
    assert c.directory.stat().st_mode & 0o777 == 0o700
    assert c.key_file.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(c.cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["reprogate.reprogate.svc", "localhost"]
    c.cleanup()
    assert not c.directory.exists()


def test_bad_certificate_files(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("not a certificate")
    (tmp_path / "k.pem").write_text("not a key")
    with pytest.raises(TLSConfigError, match="cannot load certificate"):
        server_ssl_context(tmp_path / "c.pem", tmp_path / "k.pem")
    with pytest.raises(TLSConfigError, match="cannot read"):
        server_ssl_context(tmp_path / "missing.pem", tmp_path / "k.pem")


def test_run_server_stops_gracefully(cert: SelfSignedCertificate) -> None:
    async def scenario() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        stop = asyncio.Event()
        app = build_app(FakeEvaluator(), decision_log=DecisionLog("-"), deadline_seconds=1)
        task = asyncio.create_task(
            run_server(app, "127.0.0.1", port, cert.context, stop=stop, shutdown_timeout=1)
        )
        client_ctx = ssl.create_default_context(cafile=str(cert.cert_file))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ctx)) as s:
            for _ in range(200):
                try:
                    async with s.get(f"https://localhost:{port}/healthz") as resp:
                        assert resp.status == 200
                        break
                except aiohttp.ClientConnectorError:
                    await asyncio.sleep(0.02)
            else:
                pytest.fail("server did not start")
        stop.set()
        await asyncio.wait_for(task, 30)
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)

    run(scenario)


# --- responses and metrics (pure functions the handlers compose) ----------------------------


def _verdict(ref: str, verdict: str = "deny", digest: str | None = DIGEST) -> ImageVerdict:
    return ImageVerdict(
        ref=ref,
        digest=digest,
        verdict=verdict,  # type: ignore[arg-type]
        policies=(
            PolicyResult(
                name="p",
                mode="enforce",
                passed=verdict != "deny",
                checks=(CheckResult("signatures", verdict != "deny", "x" * 100),),
            ),
        ),
    )


def test_denial_message_is_capped_with_a_count() -> None:
    verdicts = [_verdict(f"registry.example.com/img{i}:1") for i in range(200)]
    msg = denial_message(verdicts)
    assert len(msg) <= MAX_MESSAGE_CHARS
    lines = msg.split("\n")
    shown = len(lines) - 1
    assert lines[-1] == f"... and {200 - shown} more"
    assert lines[0].startswith("image registry.example.com/img0:1: policy p: signatures: x")
    # A single enormous reason is cut, not dropped.
    one = cap_lines(["y" * 10_000])
    assert len(one) == MAX_MESSAGE_CHARS and one.endswith("...")
    two = cap_lines(["y" * 10_000, "short"])
    assert len(two) <= MAX_MESSAGE_CHARS and two.endswith("\n... and 1 more")
    assert cap_lines(["a", "b"]) == "a\nb"


def test_review_response_shapes() -> None:
    denied = ReviewDecision(allowed=False, message="", images=(_verdict("nginx:1"),))
    resp = review_response("u", denied)["response"]
    assert resp["status"]["message"].startswith("image nginx:1: policy p: signatures: ")
    explicit = ReviewDecision(allowed=False, message="custom\x1b[31m reason", patch=({"op": "x"},))
    resp = review_response("u", explicit)["response"]
    assert resp["status"]["message"] == "custom [31m reason"
    assert "patch" not in resp  # never patch a denial
    warnings = tuple(f"w{i}\n" + "z" * 300 for i in range(20))
    resp = review_response("u", ReviewDecision(allowed=True, message="", warnings=warnings))
    got = resp["response"]["warnings"]
    assert len(got) == MAX_WARNINGS
    assert all(len(w) <= MAX_WARNING_CHARS and "\n" not in w for w in got)
    assert got[-1] == "... and 5 more warnings"
    assert sanitize_warnings(["", "ok"]) == ["ok"]


def test_digest_pin_patch_only_pins_admitted_tag_only_images() -> None:
    pinned = "ghcr.io/a/b@sha256:" + "ab" * 32
    req = AdmissionRequest(
        uid="u",
        kind="Pod",
        namespace="n",
        name="p",
        operation="CREATE",
        user="",
        groups=(),
        object={},
        images=tuple(
            ImageUse(image=i, container=f"c{n}", path=f"/spec/containers/{n}/image")
            for n, i in enumerate(
                ["nginx:1", pinned, "denied:1", "warned:1", "nodigest:1", "bad:1", "unknown:1"]
            )
        ),
    )
    verdicts = [
        _verdict("nginx:1", "allow"),
        _verdict(pinned, "allow"),
        _verdict("denied:1", "deny"),
        _verdict("warned:1", "warn"),
        _verdict("nodigest:1", "allow", digest=None),
        _verdict("bad:1", "allow", digest="sha256:short"),
    ]
    assert digest_pin_patch(req, verdicts) == (
        {"op": "replace", "path": "/spec/containers/0/image", "value": f"nginx:1@{DIGEST}"},
        {"op": "replace", "path": "/spec/containers/3/image", "value": f"warned:1@{DIGEST}"},
    )


def test_metrics_escape_label_values() -> None:
    metrics = AdmissionMetrics()
    metrics.requests.inc('/a"b\\c\n', "allow")
    text = metrics.render()
    assert 'reprogate_admission_requests_total{path="/a\\"b\\\\c\\n",decision="allow"} 1' in text
    with pytest.raises(ValueError):
        metrics.requests.inc("only-one-label")
    with pytest.raises(ValueError):
        metrics.requests.inc("a", "b", amount=-1)


def test_unencodable_decision_fails_closed(cert: SelfSignedCertificate, tmp_path: Path) -> None:
    async def scenario() -> None:
        ev = FakeEvaluator()
        ev.behaviour = "badpatch"
        async with serving(cert, ev, tmp_path) as h:
            status, review = await h.post("/mutate", fixture("pod-create.json"))
            assert status == 200
            resp = review["response"]
            assert resp["allowed"] is False
            assert "internal error (TypeError)" in resp["status"]["message"]
            assert [r.decision for r in h.records()] == ["deny"]
            # /validate drops an evaluator patch instead of sending it.
            status, review = await h.post("/validate", fixture("pod-create.json"))
            assert review["response"]["allowed"] is True
            assert "patch" not in review["response"]

    run(scenario)


def test_multi_line_denial_keeps_one_reason_per_line_and_caps_whole_reasons() -> None:
    lines = [f"image r{i}: policy p: signatures: " + "x" * 300 for i in range(40)]
    decision = ReviewDecision(allowed=False, message="\n".join(["denied:", *lines]))
    message = review_response("u", decision)["response"]["status"]["message"]
    out = message.split("\n")
    assert out[0] == "denied:" and out[1] == lines[0]
    assert out[-1].startswith("... and ") and out[-1].endswith(" more")
    assert len(message) <= 4096
    assert all(line in lines for line in out[1:-1])

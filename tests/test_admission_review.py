"""AdmissionReview parsing and image extraction.

The fixtures in tests/fixtures/admission/ are hand-written AdmissionReview bodies mirroring
what kube-apiserver sends (there is no API server in this environment); see the README there.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from controller.admission.review import (
    MAX_IMAGES,
    AdmissionReviewError,
    ManifestError,
    parse_admission_review,
    requests_from_manifest,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "admission"
APP = "registry.example.com/acme/app:2.3.1"
INIT = "registry.example.com/acme/migrate:1.4.0"
SIDECAR = "ghcr.io/acme/proxy@sha256:" + "ab" * 32


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def body(data: Any) -> bytes:
    return json.dumps(data).encode()


def resolve(obj: Any, pointer: str) -> Any:
    """Follow an RFC 6901 pointer, to prove each ImageUse.path addresses its image."""
    node = obj
    for raw in pointer.lstrip("/").split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


WORKLOADS = [
    ("pod-create.json", "Pod", "/spec"),
    ("deployment-create.json", "Deployment", "/spec/template/spec"),
    ("replicaset-create.json", "ReplicaSet", "/spec/template/spec"),
    ("statefulset-create.json", "StatefulSet", "/spec/template/spec"),
    ("daemonset-create.json", "DaemonSet", "/spec/template/spec"),
    ("job-create.json", "Job", "/spec/template/spec"),
    ("replicationcontroller-create.json", "ReplicationController", "/spec/template/spec"),
    ("cronjob-create.json", "CronJob", "/spec/jobTemplate/spec/template/spec"),
    ("podtemplate-create.json", "PodTemplate", "/template/spec"),
    ("deployment-update.json", "Deployment", "/spec/template/spec"),
    ("pod-create-v1beta1.json", "Pod", "/spec"),
]


@pytest.mark.parametrize(("fixture", "kind", "spec_path"), WORKLOADS)
def test_every_workload_kind_yields_all_images_with_pointers(
    fixture: str, kind: str, spec_path: str
) -> None:
    raw = load(fixture)
    req = parse_admission_review(body(raw))
    assert req.kind == kind
    assert req.uid == raw["request"]["uid"]
    assert req.api_version == raw["apiVersion"]
    assert [(u.image, u.container) for u in req.images] == [
        (INIT, "init-schema"),
        (APP, "app"),
        (SIDECAR, "sidecar"),
    ]
    assert [u.path for u in req.images] == [
        f"{spec_path}/initContainers/0/image",
        f"{spec_path}/containers/0/image",
        f"{spec_path}/containers/1/image",
    ]
    for use in req.images:
        assert resolve(raw["request"]["object"], use.path) == use.image


def test_request_fields() -> None:
    req = parse_admission_review(body(load("deployment-update.json")))
    assert req.operation == "UPDATE"
    assert (req.namespace, req.name) == ("shop", "web")
    assert req.user == "system:serviceaccount:argocd:argocd-application-controller"
    assert "system:authenticated" in req.groups
    assert req.dry_run is False
    assert req.object["kind"] == "Deployment"


def test_name_falls_back_to_generate_name() -> None:
    req = parse_admission_review(body(load("pod-generatename.json")))
    assert req.name == "web-5f8d7c6b9-"
    assert len(req.images) == 3


def test_image_volumes() -> None:
    raw = load("pod-image-volume.json")
    req = parse_admission_review(body(raw))
    assert [(u.image, u.container, u.path) for u in req.images] == [
        ("registry.example.com/acme/server:1.0", "server", "/spec/containers/0/image"),
        (
            "registry.example.com/acme/model-weights:v3",
            "model",
            "/spec/volumes/1/image/reference",
        ),
    ]
    assert resolve(raw["request"]["object"], req.images[1].path) == req.images[1].image


def test_ephemeral_containers_in_a_pod_spec() -> None:
    raw = load("pod-create.json")
    raw["request"]["object"]["spec"]["ephemeralContainers"] = [
        {"name": "dbg", "image": "busybox:1.36"}
    ]
    req = parse_admission_review(body(raw))
    assert req.images[-1].image == "busybox:1.36"
    assert req.images[-1].path == "/spec/ephemeralContainers/0/image"


def test_ephemeralcontainers_subresource_yields_only_ephemeral_images() -> None:
    req = parse_admission_review(body(load("pod-ephemeralcontainers.json")))
    assert req.sub_resource == "ephemeralcontainers"
    assert [(u.image, u.container, u.path) for u in req.images] == [
        ("busybox:1.36", "debugger-8xq2k", "/spec/ephemeralContainers/0/image")
    ]


def test_legacy_ephemeralcontainers_kind() -> None:
    raw = load("pod-ephemeralcontainers.json")
    raw["request"]["kind"]["kind"] = "EphemeralContainers"
    raw["request"]["object"] = {
        "kind": "EphemeralContainers",
        "apiVersion": "v1",
        "metadata": {"name": "web-7d4b9c", "namespace": "shop"},
        "ephemeralContainers": [{"name": "dbg", "image": "busybox:1.36"}],
    }
    req = parse_admission_review(body(raw))
    assert [u.path for u in req.images] == ["/ephemeralContainers/0/image"]


@pytest.mark.parametrize(
    "fixture", ["pod-delete.json", "pod-connect-exec.json", "configmap-create.json"]
)
def test_delete_connect_and_unknown_kinds_have_no_images(fixture: str) -> None:
    req = parse_admission_review(body(load(fixture)))
    assert req.images == ()
    assert req.uid


def test_status_subresource_and_other_groups_have_no_images() -> None:
    raw = load("pod-create.json")
    raw["request"]["subResource"] = "status"
    assert parse_admission_review(body(raw)).images == ()
    raw = load("deployment-create.json")
    raw["request"]["kind"]["group"] = "example.com"  # a CRD that happens to be named Deployment
    assert parse_admission_review(body(raw)).images == ()


def test_object_being_deleted_has_no_images() -> None:
    raw = load("pod-create.json")
    raw["request"]["operation"] = "UPDATE"
    raw["request"]["object"]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert parse_admission_review(body(raw)).images == ()


def test_empty_image_is_skipped() -> None:
    raw = load("deployment-create.json")
    raw["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["image"] = ""
    images = [u.image for u in parse_admission_review(body(raw)).images]
    assert images == [INIT, SIDECAR]


def _mutated(fixture: str, change: Any) -> bytes:
    raw = load(fixture)
    change(raw)
    return body(raw)


def _set(path: list[str | int], value: Any) -> Any:
    def apply(raw: Any) -> None:
        node = raw
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value

    return apply


def _delete(path: list[str | int]) -> Any:
    def apply(raw: Any) -> None:
        node = raw
        for p in path[:-1]:
            node = node[p]
        del node[path[-1]]

    return apply


POD = ["request", "object", "spec"]
MALFORMED: list[tuple[str, bytes, str]] = [
    ("not json", b"{not json", "not JSON"),
    ("not utf-8", b'{"a": "\xff"}', "not UTF-8"),
    ("empty body", b"", "not JSON"),
    ("array", b"[]", "must be a JSON object"),
    ("string", b'"AdmissionReview"', "must be a JSON object"),
    ("too deep", b"[" * 100_000 + b"]" * 100_000, "JSON"),
    ("wrong apiVersion", _mutated("pod-create.json", _set(["apiVersion"], "v1")), "apiVersion"),
    ("wrong kind", _mutated("pod-create.json", _set(["kind"], "Pod")), "not AdmissionReview"),
    ("no request", _mutated("pod-create.json", _delete(["request"])), "no request"),
    ("request not object", _mutated("pod-create.json", _set(["request"], [1])), "no request"),
    ("no uid", _mutated("pod-create.json", _delete(["request", "uid"])), "uid"),
    ("uid not string", _mutated("pod-create.json", _set(["request", "uid"], 7)), "uid"),
    ("empty uid", _mutated("pod-create.json", _set(["request", "uid"], "")), "uid"),
    ("no kind", _mutated("pod-create.json", _delete(["request", "kind"])), "request.kind"),
    (
        "no operation",
        _mutated("pod-create.json", _delete(["request", "operation"])),
        "operation",
    ),
    (
        "object missing",
        _mutated("pod-create.json", _delete(["request", "object"])),
        "object is missing",
    ),
    (
        "object not object",
        _mutated("pod-create.json", _set(["request", "object"], "pod")),
        "must be an object",
    ),
    (
        "containers not list",
        _mutated("pod-create.json", _set([*POD, "containers"], {"name": "a"})),
        "/spec/containers must be a list",
    ),
    (
        "container not object",
        _mutated("pod-create.json", _set([*POD, "containers", 0], "nginx")),
        "/spec/containers/0 must be a container object",
    ),
    (
        "image not string",
        _mutated("pod-create.json", _set([*POD, "containers", 0, "image"], ["nginx"])),
        "/spec/containers/0/image must be a string",
    ),
    (
        "init image not string",
        _mutated("pod-create.json", _set([*POD, "initContainers", 0, "image"], 5)),
        "/spec/initContainers/0/image must be a string",
    ),
    (
        "volume image reference not string",
        _mutated(
            "pod-image-volume.json", _set([*POD, "volumes", 1, "image", "reference"], {"x": 1})
        ),
        "/spec/volumes/1/image/reference must be a string",
    ),
    (
        "deployment without template",
        _mutated("deployment-create.json", _delete([*POD, "template"])),
        "no /spec/template",
    ),
    (
        "cronjob template spec not object",
        _mutated(
            "cronjob-create.json",
            _set([*POD, "jobTemplate", "spec", "template", "spec"], "x"),
        ),
        "must be an object",
    ),
    (
        "groups not strings",
        _mutated("pod-create.json", _set(["request", "userInfo", "groups"], [1])),
        "groups",
    ),
]


@pytest.mark.parametrize(("case", "data", "needle"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_reviews_raise_a_clear_error(case: str, data: bytes, needle: str) -> None:
    with pytest.raises(AdmissionReviewError) as info:
        parse_admission_review(data)
    assert needle in str(info.value), str(info.value)


def test_too_many_images() -> None:
    raw = load("pod-create.json")
    raw["request"]["object"]["spec"]["containers"] = [
        {"name": f"c{i}", "image": f"nginx:{i}"} for i in range(MAX_IMAGES + 1)
    ]
    with pytest.raises(AdmissionReviewError, match="at most"):
        parse_admission_review(body(raw))


# --- manifests ---------------------------------------------------------------------------


MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - {name: app, image: "registry.example.com/acme/app:1.0"}
      volumes:
        - name: data
          image: {reference: "registry.example.com/acme/data:7"}
---
# an empty document follows
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: other}
data: {a: b}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          initContainers: [{name: i, image: busybox}]
          containers: [{name: c, image: alpine:3.20}]
"""


def test_manifest_with_many_documents() -> None:
    reqs = requests_from_manifest(MANIFEST, "shop")
    assert [(r.kind, r.name, r.namespace) for r in reqs] == [
        ("Deployment", "web", "shop"),
        ("ConfigMap", "settings", "other"),
        ("CronJob", "nightly", "shop"),
    ]
    assert [u.image for u in reqs[0].images] == [
        "registry.example.com/acme/app:1.0",
        "registry.example.com/acme/data:7",
    ]
    assert reqs[1].images == ()
    assert [u.path for u in reqs[2].images] == [
        "/spec/jobTemplate/spec/template/spec/initContainers/0/image",
        "/spec/jobTemplate/spec/template/spec/containers/0/image",
    ]
    assert all(r.operation == "CREATE" for r in reqs)
    assert len({r.uid for r in reqs}) == 3


def test_manifest_list_kinds() -> None:
    text = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "a"},
                    "spec": {"containers": [{"name": "c", "image": "nginx:1"}]},
                }
            ],
        }
    )
    assert [u.image for u in requests_from_manifest(text, "ns")[0].images] == ["nginx:1"]
    typed = """
apiVersion: v1
kind: PodList
items:
  - metadata: {name: b}
    spec: {containers: [{name: c, image: "nginx:2"}]}
"""
    reqs = requests_from_manifest(typed, "ns")
    assert reqs[0].kind == "Pod"
    assert [u.image for u in reqs[0].images] == ["nginx:2"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("kind: Pod\nspec: [unclosed", "not valid YAML at line"),
        ("a: b: c", "not valid YAML"),
        ("- just\n- a list", "document 1 must be a mapping"),
        ("apiVersion: v1\nmetadata: {name: x}", "has no kind"),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{image: 3}]",
            "document 1 (Pod): /spec/containers/0/image must be a string",
        ),
        (
            "kind: ConfigMap\n---\nkind: Deployment\napiVersion: apps/v1\nspec: {}",
            "document 2 (Deployment)",
        ),
    ],
)
def test_bad_manifests(text: str, needle: str) -> None:
    with pytest.raises(ManifestError) as info:
        requests_from_manifest(text, "ns")
    assert needle in str(info.value), str(info.value)


def test_fixture_untouched_by_parse() -> None:
    raw = load("pod-create.json")
    before = copy.deepcopy(raw)
    parse_admission_review(body(raw))
    assert raw == before


def test_deletion_timestamp_on_create_does_not_hide_images() -> None:
    """/mutate sees a CREATE before the API server clears deletionTimestamp: still checked."""
    raw = load("pod-create.json")
    raw["request"]["object"]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert parse_admission_review(body(raw)).images != ()


def test_object_kind_disagreeing_with_request_kind_is_refused() -> None:
    raw = load("pod-create.json")
    raw["request"]["kind"]["kind"] = "ConfigMap"
    with pytest.raises(AdmissionReviewError, match=r"request.object.kind is 'Pod'"):
        parse_admission_review(body(raw))


def test_integer_beyond_python_digit_limit_is_a_clear_error() -> None:
    text = (
        body(load("pod-create.json"))
        .decode()
        .replace('"uid"', '"big": ' + "9" * 5000 + ', "uid"', 1)
    )
    with pytest.raises(AdmissionReviewError, match="not usable JSON"):
        parse_admission_review(text.encode())

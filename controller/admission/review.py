"""Parse ``admission.k8s.io/v1`` (and ``v1beta1``) AdmissionReview requests and find every image.

Implements the request half of the Kubernetes dynamic admission control contract
("Webhook request and response") and the pod-template layout of the core workload APIs.

Rules enforced:
- The body must be UTF-8 JSON: an object with ``apiVersion`` ``admission.k8s.io/v1`` or
  ``admission.k8s.io/v1beta1``, ``kind: AdmissionReview`` and a ``request`` object with a non-empty
  string ``uid``. Anything else is an :class:`AdmissionReviewError` (HTTP 400), never a pass.
- CREATE and UPDATE need ``request.object`` to be an object. DELETE and CONNECT carry no new
  pod spec and yield no images; so do kinds we do not know (the engine admits those).
- Pod specs are found at fixed places per (API group, kind): Pod ``/spec``; Deployment,
  ReplicaSet, StatefulSet, DaemonSet, Job, ReplicationController ``/spec/template/spec``;
  CronJob ``/spec/jobTemplate/spec/template/spec``; PodTemplate ``/template/spec``. A known
  workload without its pod spec is malformed, not imageless.
- Images come from ``containers``, ``initContainers``, ``ephemeralContainers`` and image volumes
  (``volumes[].image.reference``, Kubernetes 1.31+). Each is recorded with the JSON pointer
  (RFC 6901) of its field, so a patch can replace exactly that field.
- The ``ephemeralcontainers`` subresource of a Pod can only change ephemeral containers, so only
  those are extracted; other subresources (status, binding, scale...) cannot change images.
- An object already being deleted (``metadata.deletionTimestamp``) yields no images, so removing
  finalizers is never blocked by a policy.
- A missing or empty ``image`` is skipped (workload templates may leave it for higher-level
  tooling to fill in); an image that is not a string is malformed.
- At most :data:`MAX_IMAGES` images per object.
- ``imagePullSecrets`` names come from the same pod spec (``pull_secret_names``): a list of
  ``{name}`` objects, at most :data:`MAX_PULL_SECRETS`, duplicates and empty names dropped.

``requests_from_manifest`` applies the same extraction to plain YAML manifests for
``reprogate check -f``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from controller.admission.model import AdmissionRequest, ImageUse

__all__ = [
    "MAX_IMAGES",
    "MAX_MANIFEST_CHARS",
    "MAX_PULL_SECRETS",
    "SUPPORTED_API_VERSIONS",
    "AdmissionReviewError",
    "ManifestError",
    "images_in",
    "parse_admission_review",
    "pull_secret_names",
    "requests_from_manifest",
    "service_account_name",
]

SUPPORTED_API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
MAX_IMAGES = 512
MAX_PULL_SECRETS = 64
MAX_MANIFEST_CHARS = 16 * 1024 * 1024
_MAX_DOCUMENTS = 10_000

# (API group, kind) -> path of the pod spec inside the object.
_POD_SPEC_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "Pod"): ("spec",),
    ("", "ReplicationController"): ("spec", "template", "spec"),
    ("", "PodTemplate"): ("template", "spec"),
    ("apps", "Deployment"): ("spec", "template", "spec"),
    ("apps", "ReplicaSet"): ("spec", "template", "spec"),
    ("apps", "StatefulSet"): ("spec", "template", "spec"),
    ("apps", "DaemonSet"): ("spec", "template", "spec"),
    ("batch", "Job"): ("spec", "template", "spec"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
}
_CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")
_NO_IMAGE_OPERATIONS = frozenset({"DELETE", "CONNECT"})


class AdmissionReviewError(ValueError):
    """The AdmissionReview (or workload object) is malformed; the server answers HTTP 400."""


class ManifestError(AdmissionReviewError):
    """A manifest given to ``reprogate check -f`` is not valid YAML or not a workload."""


def _pointer(parts: tuple[str | int, ...]) -> str:
    """RFC 6901 JSON pointer for ``parts``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _where(parts: tuple[str | int, ...]) -> str:
    return _pointer(parts) or "/"


def _uses_in_container_list(value: Any, parts: tuple[str | int, ...], out: list[ImageUse]) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        raise AdmissionReviewError(
            f"{_where(parts)} must be a list of containers, got {type(value).__name__}"
        )
    for i, container in enumerate(value):
        here = (*parts, i)
        if not isinstance(container, Mapping):
            raise AdmissionReviewError(
                f"{_where(here)} must be a container object, got {type(container).__name__}"
            )
        name = container.get("name", "")
        if not isinstance(name, str):
            raise AdmissionReviewError(f"{_where((*here, 'name'))} must be a string")
        image = container.get("image")
        if image is None or image == "":
            continue
        if not isinstance(image, str):
            raise AdmissionReviewError(
                f"{_where((*here, 'image'))} must be a string, got {type(image).__name__}"
            )
        out.append(ImageUse(image=image, container=name, path=_pointer((*here, "image"))))


def _uses_in_volumes(value: Any, parts: tuple[str | int, ...], out: list[ImageUse]) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        raise AdmissionReviewError(
            f"{_where(parts)} must be a list of volumes, got {type(value).__name__}"
        )
    for i, volume in enumerate(value):
        here = (*parts, i)
        if not isinstance(volume, Mapping):
            raise AdmissionReviewError(f"{_where(here)} must be a volume object")
        source = volume.get("image")
        if source is None:
            continue
        if not isinstance(source, Mapping):
            raise AdmissionReviewError(f"{_where((*here, 'image'))} must be an object")
        name = volume.get("name", "")
        if not isinstance(name, str):
            raise AdmissionReviewError(f"{_where((*here, 'name'))} must be a string")
        ref = source.get("reference")
        if ref is None or ref == "":
            continue
        if not isinstance(ref, str):
            raise AdmissionReviewError(
                f"{_where((*here, 'image', 'reference'))} must be a string, "
                f"got {type(ref).__name__}"
            )
        out.append(
            ImageUse(image=ref, container=name, path=_pointer((*here, "image", "reference")))
        )


def _uses_in_pod_spec(
    spec: Mapping[str, Any], parts: tuple[str | int, ...], *, ephemeral_only: bool
) -> list[ImageUse]:
    out: list[ImageUse] = []
    fields = ("ephemeralContainers",) if ephemeral_only else _CONTAINER_FIELDS
    for field_name in fields:
        _uses_in_container_list(spec.get(field_name), (*parts, field_name), out)
    if not ephemeral_only:
        _uses_in_volumes(spec.get("volumes"), (*parts, "volumes"), out)
    return out


def _being_deleted(obj: Mapping[str, Any]) -> bool:
    meta = obj.get("metadata")
    return isinstance(meta, Mapping) and bool(meta.get("deletionTimestamp"))


def images_in(
    obj: Mapping[str, Any],
    group: str,
    kind: str,
    *,
    sub_resource: str = "",
    operation: str = "CREATE",
) -> tuple[ImageUse, ...]:
    """Every image in ``obj`` of (API ``group``, ``kind``), with the JSON pointer of its field.

    Unknown kinds, objects being deleted (on UPDATE only: a CREATE cannot be a deletion, and
    /mutate sees the object before the API server clears the field) and subresources other
    than a Pod's ``ephemeralcontainers`` yield ``()``. Raises AdmissionReviewError on a
    malformed pod spec or an object whose kind disagrees with the request's.
    """
    declared = obj.get("kind")
    if isinstance(declared, str) and declared and declared != kind:
        raise AdmissionReviewError(
            f"request.kind is {kind!r} but request.object.kind is {declared!r}"
        )
    if operation == "UPDATE" and _being_deleted(obj):
        return ()
    ephemeral_only = False
    if (group, kind) == ("", "EphemeralContainers"):
        # Kubernetes < 1.22 sent the subresource body as its own kind with a top-level list.
        out: list[ImageUse] = []
        _uses_in_container_list(obj.get("ephemeralContainers"), ("ephemeralContainers",), out)
        return _capped(out)
    if sub_resource:
        if (group, kind, sub_resource) != ("", "Pod", "ephemeralcontainers"):
            return ()
        ephemeral_only = True
    found = _pod_spec(obj, group, kind)
    if found is None:
        return ()
    node, path = found
    return _capped(_uses_in_pod_spec(node, path, ephemeral_only=ephemeral_only))


def _pod_spec(
    obj: Mapping[str, Any], group: str, kind: str
) -> tuple[Mapping[str, Any], tuple[str, ...]] | None:
    """The pod spec of a known workload kind and its path; None for other kinds."""
    path = _POD_SPEC_PATHS.get((group, kind))
    if path is None:
        return None
    node: Any = obj
    for i, key in enumerate(path):
        if not isinstance(node, Mapping) or key not in node or node[key] is None:
            raise AdmissionReviewError(f"{kind} object has no {_pointer(path[: i + 1])}")
        node = node[key]
    if not isinstance(node, Mapping):
        raise AdmissionReviewError(f"{kind} {_pointer(path)} must be an object")
    return node, path


def service_account_name(obj: Mapping[str, Any], group: str, kind: str) -> str:
    """The pod spec's ``serviceAccountName`` (or deprecated ``serviceAccount``); ``default``.

    kubelet also pulls with that service account's ``imagePullSecrets``.
    """
    found = _pod_spec(obj, group, kind)
    if found is None:
        return "default"
    spec, path = found
    for key in ("serviceAccountName", "serviceAccount"):
        value = spec.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise AdmissionReviewError(f"{_where((*path, key))} must be a string")
        return value
    return "default"


def pull_secret_names(obj: Mapping[str, Any], group: str, kind: str) -> tuple[str, ...]:
    """The ``imagePullSecrets`` names of ``obj``'s pod spec, in order, without duplicates.

    Unknown kinds yield ``()``. Raises AdmissionReviewError on a malformed list.
    """
    found = _pod_spec(obj, group, kind)
    if found is None:
        return ()
    spec, path = found
    where = (*path, "imagePullSecrets")
    value = spec.get("imagePullSecrets")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise AdmissionReviewError(f"{_where(where)} must be a list, got {type(value).__name__}")
    names: dict[str, None] = {}
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise AdmissionReviewError(f"{_where((*where, i))} must be an object {{name}}")
        name = item.get("name")
        if name is None or name == "":
            continue  # kubelet ignores an empty reference too
        if not isinstance(name, str):
            raise AdmissionReviewError(f"{_where((*where, i, 'name'))} must be a string")
        names[name] = None
    if len(names) > MAX_PULL_SECRETS:
        raise AdmissionReviewError(
            f"object names {len(names)} image pull secrets; at most {MAX_PULL_SECRETS} are accepted"
        )
    return tuple(names)


def _capped(uses: list[ImageUse]) -> tuple[ImageUse, ...]:
    if len(uses) > MAX_IMAGES:
        raise AdmissionReviewError(
            f"object names {len(uses)} images; at most {MAX_IMAGES} are accepted"
        )
    return tuple(uses)


def _optional_str(container: Mapping[str, Any], key: str, where: str) -> str:
    value = container.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise AdmissionReviewError(f"{where}.{key} must be a string, got {type(value).__name__}")
    return value


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise AdmissionReviewError("object.metadata must be an object")
    return meta


def parse_admission_review(body: bytes) -> AdmissionRequest:
    """Parse an AdmissionReview request body (unverified bytes from the API server).

    Raises AdmissionReviewError with a message naming the offending field.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AdmissionReviewError(f"body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        review = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AdmissionReviewError(
            f"body is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise AdmissionReviewError("body is not usable JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer beyond Python's digit limit
        raise AdmissionReviewError(f"body is not usable JSON: {exc}") from None
    if not isinstance(review, dict):
        raise AdmissionReviewError(
            f"AdmissionReview must be a JSON object, got {type(review).__name__}"
        )
    api_version = review.get("apiVersion")
    if api_version not in SUPPORTED_API_VERSIONS:
        raise AdmissionReviewError(
            f"apiVersion {api_version!r} is not supported; "
            f"expected one of {', '.join(SUPPORTED_API_VERSIONS)}"
        )
    if review.get("kind") != "AdmissionReview":
        raise AdmissionReviewError(f"kind {review.get('kind')!r} is not AdmissionReview")
    req = review.get("request")
    if not isinstance(req, dict):
        raise AdmissionReviewError("AdmissionReview has no request object")
    uid = req.get("uid")
    if not isinstance(uid, str) or not uid:
        raise AdmissionReviewError("request.uid is missing or not a non-empty string")

    kind_field = req.get("kind")
    if not isinstance(kind_field, dict):
        raise AdmissionReviewError("request.kind must be an object {group, version, kind}")
    group = _optional_str(kind_field, "group", "request.kind")
    kind = _optional_str(kind_field, "kind", "request.kind")
    if not kind:
        raise AdmissionReviewError("request.kind.kind is missing")
    operation = _optional_str(req, "operation", "request")
    if not operation:
        raise AdmissionReviewError("request.operation is missing")
    sub_resource = _optional_str(req, "subResource", "request")

    user_info = req.get("userInfo") or {}
    if not isinstance(user_info, dict):
        raise AdmissionReviewError("request.userInfo must be an object")
    user = _optional_str(user_info, "username", "request.userInfo")
    groups_raw = user_info.get("groups") or []
    if not isinstance(groups_raw, list) or not all(isinstance(g, str) for g in groups_raw):
        raise AdmissionReviewError("request.userInfo.groups must be a list of strings")
    dry_run = req.get("dryRun", False)
    if dry_run is None:
        dry_run = False
    if not isinstance(dry_run, bool):
        raise AdmissionReviewError("request.dryRun must be a boolean")

    obj = req.get("object")
    images: tuple[ImageUse, ...] = ()
    pull_secrets: tuple[str, ...] = ()
    service_account = "default"
    if operation in _NO_IMAGE_OPERATIONS:
        # DELETE sends object: null (oldObject holds the victim); CONNECT sends options.
        obj = obj if isinstance(obj, dict) else {}
    else:
        if obj is None:
            raise AdmissionReviewError(f"request.object is missing for operation {operation}")
        if not isinstance(obj, dict):
            raise AdmissionReviewError(
                f"request.object must be an object, got {type(obj).__name__}"
            )
        images = images_in(obj, group, kind, sub_resource=sub_resource, operation=operation)
        if images:
            pull_secrets = pull_secret_names(obj, group, kind)
            service_account = service_account_name(obj, group, kind)

    meta = _metadata(obj)
    namespace = _optional_str(req, "namespace", "request") or _meta_str(meta, "namespace")
    name = (
        _optional_str(req, "name", "request")
        or _meta_str(meta, "name")
        or _meta_str(meta, "generateName")
    )
    return AdmissionRequest(
        uid=uid,
        kind=kind,
        namespace=namespace,
        name=name,
        operation=operation,
        user=user,
        groups=tuple(groups_raw),
        object=obj,
        images=images,
        dry_run=dry_run,
        api_version=api_version,
        sub_resource=sub_resource,
        pull_secrets=pull_secrets,
        service_account=service_account,
    )


def _meta_str(meta: Mapping[str, Any], key: str) -> str:
    value = meta.get(key)
    return value if isinstance(value, str) else ""


def _group_of(api_version: str) -> str:
    # "apps/v1" -> "apps"; "v1" (the core group) -> "".
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def _manifest_objects(docs: Iterator[Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Yield (where, object) for each workload document, flattening ``List`` kinds."""
    count = 0
    for index, doc in enumerate(docs, start=1):
        if doc is None:
            continue  # empty document between '---' separators
        count += 1
        if count > _MAX_DOCUMENTS:
            raise ManifestError(f"more than {_MAX_DOCUMENTS} documents in the manifest")
        where = f"document {index}"
        if not isinstance(doc, dict):
            raise ManifestError(f"{where} must be a mapping, got {type(doc).__name__}")
        kind = doc.get("kind")
        if not isinstance(kind, str) or not kind:
            raise ManifestError(f"{where} has no kind")
        if kind == "List" or (kind.endswith("List") and "items" in doc):
            items = doc.get("items") or []
            if not isinstance(items, list):
                raise ManifestError(f"{where}: items must be a list")
            item_kind = kind[: -len("List")] if kind != "List" else ""
            for j, item in enumerate(items):
                item_where = f"{where} item {j}"
                if not isinstance(item, dict):
                    raise ManifestError(f"{item_where} must be a mapping")
                if item_kind and "kind" not in item:
                    # Typed lists (PodList...) may omit kind and apiVersion on items.
                    item = {"apiVersion": doc.get("apiVersion", "v1"), "kind": item_kind, **item}
                yield item_where, item
        else:
            yield where, doc


def requests_from_manifest(text: str, namespace: str) -> list[AdmissionRequest]:
    """Turn a YAML manifest (one or many documents, or a List) into CREATE requests.

    Each object gets ``metadata.namespace`` when set, else ``namespace``. Objects of kinds we do
    not know are returned with no images. Raises ManifestError for bad YAML or bad workloads.
    """
    if len(text) > MAX_MANIFEST_CHARS:
        raise ManifestError(f"manifest is larger than {MAX_MANIFEST_CHARS} characters")
    out: list[AdmissionRequest] = []
    try:
        for where, obj in _manifest_objects(yaml.safe_load_all(text)):
            api_version = obj.get("apiVersion", "")
            if not isinstance(api_version, str):
                raise ManifestError(f"{where}: apiVersion must be a string")
            kind = obj.get("kind")
            if not isinstance(kind, str) or not kind:
                raise ManifestError(f"{where} has no kind")
            try:
                meta = _metadata(obj)
                images = images_in(obj, _group_of(api_version), kind)
                secrets = pull_secret_names(obj, _group_of(api_version), kind) if images else ()
                account = (
                    service_account_name(obj, _group_of(api_version), kind) if images else "default"
                )
            except ManifestError:
                raise
            except AdmissionReviewError as exc:
                raise ManifestError(f"{where} ({kind}): {exc}") from None
            name = _meta_str(meta, "name") or _meta_str(meta, "generateName")
            out.append(
                AdmissionRequest(
                    uid=f"manifest-{len(out) + 1}",
                    kind=kind,
                    namespace=_meta_str(meta, "namespace") or namespace,
                    name=name,
                    operation="CREATE",
                    user="",
                    groups=(),
                    object=obj,
                    images=images,
                    dry_run=True,
                    pull_secrets=secrets,
                    service_account=account,
                )
            )
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(f"manifest is not valid YAML{at}: {problem}") from None
    except RecursionError:
        raise ManifestError("manifest is nested too deeply") from None
    return out

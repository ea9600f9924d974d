"""Build AdmissionReview responses (Kubernetes "Webhook request and response", response half).

Rules enforced:
- The response echoes the request's ``apiVersion`` and ``uid``.
- A denial carries ``status {status: Failure, code: 403, reason: Forbidden, message}``; the API
  server prefixes the message with ``admission webhook "<name>" denied the request:``.
- An internal failure is a denial too (fail closed): ``code 500, reason InternalError`` and a
  short message with no stack trace.
- Messages list one line per failed enforce-mode check (from ``ImageVerdict.denial_reasons``)
  and are capped at :data:`MAX_MESSAGE_CHARS`, ending in ``... and N more``.
- Warnings: the API documents "Limit warnings to 120 characters if possible. Warnings over 256
  characters and large numbers of warnings may be truncated", and they travel as HTTP
  ``Warning`` headers, so each is stripped of control characters and cut to
  :data:`MAX_WARNING_CHARS`; at most :data:`MAX_WARNINGS` are sent.
- A JSONPatch is attached only to an allowed response with a non-empty patch.
- ``digest_pin_patch`` rewrites admitted tag-only images to ``<image as written>@<digest>``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from controller.admission.model import AdmissionRequest, ReviewDecision
from controller.oci.reference import ReferenceError, is_digest, parse_image_ref
from controller.policy.verdict import ImageVerdict

__all__ = [
    "MAX_MESSAGE_CHARS",
    "MAX_WARNINGS",
    "MAX_WARNING_CHARS",
    "cap_lines",
    "denial_message",
    "digest_pin_patch",
    "review_response",
    "sanitize_warnings",
]

MAX_MESSAGE_CHARS = 4096
MAX_WARNING_CHARS = 256
MAX_WARNINGS = 16
_ELLIPSIS = "..."


def _clean(text: str) -> str:
    # Control characters would break HTTP Warning headers and terminals alike.
    return "".join(c if c.isprintable() else " " for c in text)


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(_ELLIPSIS))] + _ELLIPSIS


def cap_lines(lines: Sequence[str], limit: int = MAX_MESSAGE_CHARS) -> str:
    """Join ``lines`` with newlines, keeping the total within ``limit`` characters.

    Lines that do not fit are summarised as ``... and N more``; a first line that alone is too
    long is cut, so at least one reason always shows.
    """
    joined = "\n".join(lines)
    if len(joined) <= limit:
        return joined
    out: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        cost = len(line) + (1 if out else 0)
        rest = len(lines) - i - 1
        tail = 1 + len(f"... and {rest} more") if rest else 0
        if used + cost + tail > limit:
            break
        out.append(line)
        used += cost
    if not out:
        rest = len(lines) - 1
        tail = 1 + len(f"... and {rest} more") if rest else 0
        out.append(_truncate(lines[0], max(len(_ELLIPSIS), limit - tail)))
    if len(out) < len(lines):
        out.append(f"... and {len(lines) - len(out)} more")
    return "\n".join(out)


def denial_message(verdicts: Iterable[ImageVerdict], limit: int = MAX_MESSAGE_CHARS) -> str:
    """One line per denied image check ("image X: policy P: check: reason"), capped."""
    lines = [_clean(line) for v in verdicts for line in v.denial_reasons()]
    return cap_lines(lines, limit) if lines else ""


def sanitize_warnings(warnings: Iterable[str]) -> list[str]:
    """Warnings as the API server can pass them on: printable, at most 256 chars, at most 16."""
    cleaned = [_truncate(_clean(w), MAX_WARNING_CHARS) for w in warnings if w]
    if len(cleaned) > MAX_WARNINGS:
        extra = len(cleaned) - (MAX_WARNINGS - 1)
        cleaned = [*cleaned[: MAX_WARNINGS - 1], f"... and {extra} more warnings"]
    return cleaned


def _envelope(api_version: str, response: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": "AdmissionReview", "response": response}


def review_response(
    uid: str, decision: ReviewDecision, *, api_version: str = "admission.k8s.io/v1"
) -> dict[str, Any]:
    """The AdmissionReview JSON answering request ``uid`` with ``decision``.

    A denial's message is ``decision.message`` when set, else assembled from the image
    verdicts' denial reasons; either way capped at 4 KiB.
    """
    response: dict[str, Any] = {"uid": uid, "allowed": decision.allowed}
    if not decision.allowed:
        # one line per reason: clean each line on its own, so the newlines survive and the
        # cap can drop whole reasons ("... and N more") instead of cutting one mid-sentence
        lines = [_clean(line) for line in decision.message.split("\n") if line.strip()]
        message = cap_lines(lines) if lines else ""
        if not message:
            message = denial_message(decision.images) or "denied by reprogate"
        response["status"] = {
            "status": "Failure",
            "code": 403,
            "reason": "Forbidden",
            "message": message,
        }
    warnings = sanitize_warnings(decision.warnings)
    if warnings:
        response["warnings"] = warnings
    if decision.allowed and decision.patch:
        raw = json.dumps([dict(op) for op in decision.patch], separators=(",", ":"))
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(raw.encode()).decode("ascii")
    return _envelope(api_version, response)


def digest_pin_patch(
    request: AdmissionRequest, verdicts: Sequence[ImageVerdict]
) -> tuple[Mapping[str, Any], ...]:
    """JSONPatch ``replace`` ops pinning each admitted tag-only image to its resolved digest.

    An image is pinned when its verdict is not ``deny``, it has a well-formed digest and the
    reference as written carries no digest yet. The tag is kept (``nginx:1.27@sha256:...``);
    the kubelet pulls by digest.
    """
    by_ref: dict[str, ImageVerdict] = {}
    for v in verdicts:
        by_ref.setdefault(v.ref, v)
    ops: list[Mapping[str, Any]] = []
    for use in request.images:
        verdict = by_ref.get(use.image)
        if verdict is None or verdict.verdict == "deny" or verdict.error:
            continue
        if verdict.digest is None or not is_digest(verdict.digest):
            continue
        try:
            ref = parse_image_ref(use.image)
        except ReferenceError:
            continue
        if ref.digest is not None:
            continue
        ops.append({"op": "replace", "path": use.path, "value": f"{use.image}@{verdict.digest}"})
    return tuple(ops)

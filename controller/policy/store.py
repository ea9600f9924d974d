"""A policy directory loaded as admission uses it: policies plus usable trust roots.

One function for the webhook, ``check``, ``test`` and hot reload, so a TrustRoot that does
not parse is refused the same way everywhere, naming file, document and field.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from controller.policy.loader import PolicyLoadError, load_policies, policy_files
from controller.policy.model import PolicySet
from controller.verify.errors import VerificationError
from controller.verify.trustroot import TrustMaterial, TrustRoots, trust_from_json

__all__ = ["PolicyStoreError", "load_policy_store", "policy_fingerprint"]

log = logging.getLogger(__name__)


class PolicyStoreError(ValueError):
    """The policy directory cannot be used; the message lists every problem."""


def load_policy_store(
    path: str | Path, *, production: Callable[[], TrustMaterial] | None = None
) -> tuple[PolicySet, TrustRoots]:
    """Policies and trust roots from ``path``; ``production`` replaces the shipped root."""
    if not Path(path).exists():
        raise PolicyStoreError(f"policy path {path} does not exist")
    try:
        policy_set = load_policies(path)
    except PolicyLoadError as exc:
        raise PolicyStoreError(str(exc)) from None
    roots = TrustRoots()
    if production is not None:
        roots.add("production", production())
    for doc in policy_set.trust_roots:
        try:
            roots.add(doc.name, trust_from_json(doc.trusted_root_json, doc.name))
        except VerificationError as exc:
            file, _, index = doc.source.rpartition("#")
            raise PolicyStoreError(
                f"{file} document {index}: spec.trustedRootJSON: TrustRoot {doc.name}: {exc}"
            ) from None
    return policy_set, roots


def policy_fingerprint(path: str | Path) -> tuple[tuple[str, int, int], ...]:
    """What changes when any policy file changes (name, size, mtime): cheap to poll.

    ConfigMap volumes update by swapping a symlink, which changes every file's mtime.
    """
    root = Path(path)
    files = policy_files(root) if root.is_dir() else [root]
    out: list[tuple[str, int, int]] = []
    for f in files:
        try:
            st = os.stat(f)
        except OSError:
            continue
        out.append((str(f), st.st_size, st.st_mtime_ns))
    return tuple(out)

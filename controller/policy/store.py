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

__all__ = [
    "PolicyStoreError",
    "load_policy_store",
    "policy_fingerprint",
    "production_root_loader",
]

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


def production_root_loader(tuf_cache: str | None) -> Callable[[], TrustMaterial] | None:
    """With ``tuf_cache`` (opt-in, needs network), a loader of the production root refreshed
    over TUF, falling back to the root shipped with ``sigstore`` so that a network hiccup
    cannot crash-loop the webhook; None (the shipped root) without it."""
    if not tuf_cache:
        return None
    from controller.verify import trustroot

    def refreshed() -> TrustMaterial:
        try:
            return trustroot.refresh_production_via_tuf(Path(tuf_cache))
        except (VerificationError, OSError) as exc:
            log.warning(
                "TUF refresh of the Sigstore production root failed (%s); using the root "
                "shipped with the sigstore package",
                exc,
            )
            return trustroot.production_trust()

    return refreshed

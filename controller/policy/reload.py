"""Hot reload of the policy directory while the webhook serves.

Rules:
- The directory is polled (cheap: names, sizes, mtimes); a change triggers a full load.
- A load that fails keeps the policies in force and logs every problem: a typo in a
  ConfigMap must never turn the webhook off (or into allow-everything).
- A load that succeeds is swapped in between reviews; caches stay valid (they are keyed by
  evidence and authorities, not by policy names).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.policy.model import PolicySet
from controller.policy.store import PolicyStoreError, load_policy_store, policy_fingerprint
from controller.verify.trustroot import TrustRoots

__all__ = ["PolicyReloader"]

log = logging.getLogger("reprogate.policy")


class PolicyReloader:
    """Polls ``path`` every ``interval`` seconds and hands new policy sets to ``apply``."""

    def __init__(
        self,
        path: str | Path,
        interval: float,
        apply: Callable[[PolicySet, TrustRoots], None],
        *,
        production: Callable[[], Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.interval = interval
        self._apply = apply
        self._production = production
        self._seen = policy_fingerprint(self.path)
        self.reloads = 0
        self.failures = 0
        self.last_error: str | None = None

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            await self.check()

    async def check(self) -> bool:
        """Reload when the files changed; True when new policies were applied."""
        current = await asyncio.to_thread(policy_fingerprint, self.path)
        if current == self._seen:
            return False
        self._seen = current
        try:
            policy_set, roots = await asyncio.to_thread(
                load_policy_store, self.path, production=self._production
            )
        except PolicyStoreError as exc:
            self.failures += 1
            self.last_error = str(exc)
            log.error("policy reload refused, the previous policies stay in force: %s", exc)
            return False
        self._apply(policy_set, roots)
        self.reloads += 1
        self.last_error = None
        log.info(
            "policies reloaded: %d policies, %d trust roots",
            len(policy_set.policies),
            len(policy_set.trust_roots),
        )
        return True

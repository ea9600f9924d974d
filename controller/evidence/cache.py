"""An async TTL cache with single-flight loading, for digests, evidence and verification.

Rules:
- One load in flight per key: a 500-pod rollout of one image makes one registry round trip.
- Successes live ``ttl`` seconds; failures live ``negative_ttl`` seconds (short), so a registry
  outage is not hammered but recovers quickly. A failure is re-raised to every waiter.
- Bounded: least recently used entries are dropped past ``max_entries``.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["AsyncTTLCache", "CacheStats", "count_cache_use"]

V = TypeVar("V")


@dataclass
class CacheStats:
    """Counters for metrics and decision records."""

    hits: int = 0
    misses: int = 0
    coalesced: int = 0  # waits on a load another request started
    failures: int = 0


# Per-review counters: set by the caller around one review so its decision record reports
# its own hits and misses, not those of concurrent reviews.
_REVIEW_STATS: contextvars.ContextVar[CacheStats | None] = contextvars.ContextVar(
    "reprogate_review_cache_stats", default=None
)


def count_cache_use() -> CacheStats:
    """Start counting cache use for the current task (and the tasks it spawns)."""
    stats = CacheStats()
    _REVIEW_STATS.set(stats)
    return stats


def _count(field: str) -> None:
    stats = _REVIEW_STATS.get()
    if stats is not None:
        setattr(stats, field, getattr(stats, field) + 1)


@dataclass
class _Entry(Generic[V]):
    expires: float
    value: V | None
    error: BaseException | None


class AsyncTTLCache(Generic[V]):
    """Maps keys to values loaded by an async function, caching outcomes for a while."""

    def __init__(
        self,
        *,
        ttl: float,
        negative_ttl: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, _Entry[V]] = OrderedDict()
        self._inflight: dict[Hashable, asyncio.Future[V]] = {}
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every cached outcome (in-flight loads finish normally)."""
        self._entries.clear()

    @property
    def loading(self) -> int:
        """How many loads are in flight (a caller joining one gets its result)."""
        return len(self._inflight)

    async def get(
        self,
        key: Hashable,
        load: Callable[[], Awaitable[V]],
        *,
        ttl_for: Callable[[V], float] | None = None,
    ) -> V:
        """The cached value for ``key``, loading it (once) when absent or expired.

        ``ttl_for`` may shorten the lifetime of particular values (e.g. "no evidence found").
        """
        entry = self._entries.get(key)
        now = self._clock()
        if entry is not None:
            if entry.expires > now:
                self._entries.move_to_end(key)
                self.stats.hits += 1
                _count("hits")
                if entry.error is not None:
                    # the same exception object is raised to every hit: drop the traceback of
                    # earlier raises, or it grows (and pins their frames) with every hit
                    raise entry.error.with_traceback(None)
                return entry.value  # type: ignore[return-value]
            del self._entries[key]
        task = self._inflight.get(key)
        if task is not None:
            self.stats.coalesced += 1
            _count("coalesced")
        else:
            self.stats.misses += 1
            _count("misses")
            # The load is its own task: a caller that hits its deadline stops waiting, but the
            # load goes on and the next request for the same key finds the result.
            task = asyncio.ensure_future(load())
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._settle(key, t, ttl_for))
        return await asyncio.shield(task)

    def _settle(
        self, key: Hashable, task: asyncio.Future[V], ttl_for: Callable[[V], float] | None
    ) -> None:
        self._inflight.pop(key, None)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.stats.failures += 1
            self._store(key, _Entry(self._clock() + self.negative_ttl, None, exc))
            return
        value = task.result()
        lifetime = self.ttl if ttl_for is None else min(self.ttl, ttl_for(value))
        if lifetime > 0:
            self._store(key, _Entry(self._clock() + lifetime, value, None))

    def _store(self, key: Hashable, entry: _Entry[V]) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

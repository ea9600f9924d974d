"""AsyncTTLCache: single flight, TTLs, failures, bounds, and per-review counters."""

from __future__ import annotations

import asyncio

import pytest

from controller.evidence.cache import AsyncTTLCache, count_cache_use


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_one_load_in_flight_for_concurrent_callers() -> None:
    async def main() -> None:
        cache: AsyncTTLCache[int] = AsyncTTLCache(ttl=10, negative_ttl=1)
        loads = 0

        async def load() -> int:
            nonlocal loads
            loads += 1
            await asyncio.sleep(0.01)
            return 7

        results = await asyncio.gather(*(cache.get("k", load) for _ in range(50)))
        assert results == [7] * 50 and loads == 1
        assert cache.stats.misses == 1 and cache.stats.coalesced == 49

    asyncio.run(main())


def test_values_expire_and_failures_expire_sooner() -> None:
    async def main() -> None:
        clock = Clock()
        cache: AsyncTTLCache[int] = AsyncTTLCache(ttl=10, negative_ttl=1, clock=clock)
        calls = 0

        async def flaky() -> int:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("registry down")
            return calls

        with pytest.raises(RuntimeError):
            await cache.get("k", flaky)
        with pytest.raises(RuntimeError):  # cached failure, no second load
            await cache.get("k", flaky)
        assert calls == 1
        clock.now = 1.5  # negative TTL over
        assert await cache.get("k", flaky) == 2
        clock.now = 11.0
        assert await cache.get("k", flaky) == 2  # still cached (stored at 1.5)
        clock.now = 12.0
        assert await cache.get("k", flaky) == 3

    asyncio.run(main())


def test_cached_failure_does_not_grow_its_traceback() -> None:
    async def main() -> None:
        cache: AsyncTTLCache[int] = AsyncTTLCache(ttl=10, negative_ttl=60)

        async def boom() -> int:
            raise RuntimeError("down")

        depths = []
        for _ in range(50):
            try:
                await cache.get("k", boom)
            except RuntimeError as exc:
                tb, depth = exc.__traceback__, 0
                while tb is not None:
                    depth, tb = depth + 1, tb.tb_next
                depths.append(depth)
        assert depths[-1] <= depths[1] + 1, depths

    asyncio.run(main())


def test_ttl_for_shortens_lifetime_and_zero_means_not_cached() -> None:
    async def main() -> None:
        clock = Clock()
        cache: AsyncTTLCache[str] = AsyncTTLCache(ttl=100, negative_ttl=1, clock=clock)
        loads = 0

        async def load() -> str:
            nonlocal loads
            loads += 1
            return "empty"

        await cache.get("k", load, ttl_for=lambda v: 5)
        clock.now = 4
        await cache.get("k", load, ttl_for=lambda v: 5)
        assert loads == 1
        clock.now = 6
        await cache.get("k", load, ttl_for=lambda v: 0)
        await cache.get("k", load, ttl_for=lambda v: 0)
        assert loads == 3

    asyncio.run(main())


def test_bounded_by_least_recent_use() -> None:
    async def main() -> None:
        cache: AsyncTTLCache[int] = AsyncTTLCache(ttl=100, negative_ttl=1, max_entries=2)

        async def value(v: int) -> int:
            return v

        await cache.get("a", lambda: value(1))
        await cache.get("b", lambda: value(2))
        await cache.get("a", lambda: value(1))  # a is now most recent
        await cache.get("c", lambda: value(3))  # evicts b
        assert len(cache) == 2
        assert await cache.get("b", lambda: value(20)) == 20

    asyncio.run(main())


def test_a_caller_that_gives_up_does_not_cancel_the_load() -> None:
    async def main() -> None:
        cache: AsyncTTLCache[int] = AsyncTTLCache(ttl=100, negative_ttl=1)
        done = asyncio.Event()

        async def slow() -> int:
            await done.wait()
            return 5

        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await cache.get("k", slow)
        done.set()
        assert await cache.get("k", slow) == 5
        assert cache.stats.misses == 1

    asyncio.run(main())


def test_per_review_counters_see_only_their_own_lookups() -> None:
    async def main() -> None:
        cache: AsyncTTLCache[int] = AsyncTTLCache(ttl=100, negative_ttl=1)

        async def one() -> int:
            return 1

        async def review(keys: list[str]) -> tuple[int, int]:
            stats = count_cache_use()
            for k in keys:
                await cache.get(k, one)
            return stats.hits, stats.misses

        await cache.get("warm", one)
        a, b = await asyncio.gather(review(["warm", "x"]), review(["y", "z", "warm"]))
        assert a == (1, 1) and b == (1, 2)

    asyncio.run(main())

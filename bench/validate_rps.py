"""Requests per second of ``/validate`` for an image that is already verified (warm cache).

Starts a real registry and a real ``reprogate serve`` (HTTPS), warms the cache with one
review, then sends a bounded number of AdmissionReviews from concurrent keep-alive clients on
127.0.0.1 and prints throughput and latency percentiles. It stops by itself.

Run: .venv/bin/python bench/validate_rps.py [--requests N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import time

import aiohttp
from _setup import make_scene

from tests.support.webhook import admission_review, deployment, pod, start_webhook


async def _load(url: str, ca: str, bodies: list[bytes], concurrency: int) -> list[float]:
    ctx = ssl.create_default_context(cafile=ca)
    latencies: list[float] = []
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    connector = aiohttp.TCPConnector(ssl=ctx, limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                start = time.perf_counter()
                async with session.post(
                    url, data=body, headers={"Content-Type": "application/json"}
                ) as resp:
                    answer = await resp.json()
                    if resp.status != 200 or not answer["response"]["allowed"]:
                        raise SystemExit(f"unexpected answer: {answer}")
                latencies.append((time.perf_counter() - start) * 1000)

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), timeout=300)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    scene = make_scene()
    hook = start_webhook(
        scene.work / "hook",
        scene.tls,
        scene.policies,
        registry_ca=scene.reg.ca_file,
        extra=["--decision-log", str(scene.work / "decisions.jsonl")],
    )
    try:
        hook.review(pod("warm", scene.image))
        for label, obj in (
            ("Pod, 1 image", pod("p", scene.image)),
            ("Deployment, 3 containers", deployment("d", scene.image, scene.image, scene.image)),
        ):
            bodies = [json.dumps(admission_review(obj)).encode() for _ in range(args.requests)]
            start = time.perf_counter()
            lat = asyncio.run(
                _load(hook.url + "/validate", str(scene.tls.ca_cert), bodies, args.concurrency)
            )
            elapsed = time.perf_counter() - start
            lat.sort()
            print(
                f"/validate {label:26}: {len(lat) / elapsed:7.0f} req/s over {len(lat)} requests, "
                f"concurrency {args.concurrency}; latency p50 {statistics.median(lat):.1f} ms, "
                f"p99 {lat[int(len(lat) * 0.99) - 1]:.1f} ms"
            )
        with open(scene.work / "decisions.jsonl") as log:
            records = [json.loads(line) for line in log if line.strip()]
        missed = sum(1 for r in records if r["cache"]["misses"])
        print(f"reviews recorded: {len(records)}, of which missed the cache: {missed}")
    finally:
        hook.stop()
        scene.reg.stop()


if __name__ == "__main__":
    main()

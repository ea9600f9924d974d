"""Cold and warm ``reprogate check`` time for one signed image on the local registry.

cold process: a new ``reprogate check`` process each run (interpreter start, imports, TLS
handshake, tag resolution, evidence fetch, verification).
in-process: one Evaluator; the first evaluation fetches and verifies (cold cache), later ones
are answered from the digest/evidence/verification caches (warm).

Run: .venv/bin/python bench/check_latency.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time

from _setup import ROOT, make_scene

from controller.admission.model import AdmissionRequest, ImageUse
from controller.config import Settings
from controller.evaluator import Evaluator
from controller.evidence.source import RegistryEvidence
from controller.oci.client import RegistryClient, RegistrySettings
from controller.policy.loader import load_policies
from controller.verify.trustroot import TrustRoots


def _ms(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):7.1f} ms  min {min(values):7.1f} ms  "
        f"max {max(values):7.1f} ms  (n={len(values)})"
    )


async def _in_process(
    scene_image: str, policies: str, ca: str, runs: int
) -> tuple[float, list[float]]:
    settings = Settings(policies=policies, registry=RegistrySettings(ca_file=ca))
    client = RegistryClient(settings.registry)
    evaluator = Evaluator(settings, load_policies(policies), RegistryEvidence(client), TrustRoots())
    request = AdmissionRequest(
        uid="bench",
        kind="Pod",
        namespace="default",
        name="bench",
        operation="CREATE",
        user="bench",
        groups=(),
        object={},
        images=(ImageUse(scene_image, "c", "/x"),),
    )
    try:
        start = time.perf_counter()
        first = await evaluator.evaluate(request, mutate=False)
        cold = (time.perf_counter() - start) * 1000
        assert first.allowed, first.message
        warm: list[float] = []
        for _ in range(runs):
            start = time.perf_counter()
            await evaluator.evaluate(request, mutate=False)
            warm.append((time.perf_counter() - start) * 1000)
        return cold, warm
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    scene = make_scene()
    try:
        procs: list[float] = []
        for _ in range(args.runs):
            start = time.perf_counter()
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "controller.cli",
                    "check",
                    scene.image,
                    "--policies",
                    str(scene.policies),
                    "--registry-ca",
                    str(scene.reg.ca_file),
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            procs.append((time.perf_counter() - start) * 1000)
            if out.returncode != 0:
                raise SystemExit(f"check failed: {out.stdout}{out.stderr}")
        cold, warm = asyncio.run(
            _in_process(scene.image, str(scene.policies), str(scene.reg.ca_file), args.runs * 20)
        )
        print(f"reprogate check, new process each run : {_ms(procs)}")
        print(f"in-process, first evaluation (cold)   : {cold:7.1f} ms")
        print(f"in-process, cached evaluation (warm)  : {_ms(warm)}")
    finally:
        scene.reg.stop()


if __name__ == "__main__":
    main()

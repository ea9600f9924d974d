"""CEL condition cost: compile time per condition, evaluation time per call (figures only).

Run: python bench/cel_bench.py [--iterations N]
Each condition is compiled once, then evaluated N times (default 10000) against one activation
whose CEL conversion is cached, plus once with a fresh activation to show conversion cost.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

# runnable as a plain script from a checkout, without installing the package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.oci.reference import parse_image_ref
from controller.policy.cel import (
    ATTESTATION_VARIABLES,
    CelActivation,
    compile_condition,
    evaluate,
    image_variable,
)

CONDITIONS = {
    "no-latest": 'image.pinned || image.tag != "latest"',
    "allowed-registry": 'image.registry in ["registry.example.com", "ghcr.io"]',
    "slsa-level": "provenance != null && provenance.level >= 3",
    "signer-exists": 'signatures.exists(s, s.authority == "ci" && s.issuer.startsWith("https://"))',
    "deps-all": 'provenance.dependencies.all(d, d.uri.lowerAscii().startsWith("git+https://"))',
    "scan-age": 'now - timestamp(statement.predicate.metadata.scanFinishedOn) < duration("168h")',
    "split-join": 'image.repository.split("/").join("-") == "acme-app"',
}


def _activation() -> CelActivation:
    return CelActivation(
        image=image_variable(parse_image_ref("ghcr.io/acme/app:v1"), "sha256:" + "a" * 64),
        signatures=[
            {
                "authority": "ci",
                "kind": "keyless",
                "subject": "x",
                "issuer": "https://token.actions.githubusercontent.com",
                "keyId": None,
            }
        ],
        provenance={
            "level": 3,
            "dependencies": [
                {"uri": f"git+https://github.com/acme/dep{i}", "digest": {"sha1": "0" * 40}}
                for i in range(20)
            ],
        },
        now=datetime(2026, 6, 1, tzinfo=UTC),
        statement={"predicate": {"metadata": {"scanFinishedOn": "2026-05-30T00:00:00Z"}}},
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=10_000)
    n = parser.parse_args().iterations
    act = _activation()
    t0 = time.perf_counter()
    _ = act.cel_values
    convert_us = (time.perf_counter() - t0) * 1e6
    print(f"activation conversion to CEL types: {convert_us:.0f} us (once per image)")
    print(f"{'condition':<18} {'compile ms':>10} {'eval us/call':>13}  result")
    for name, expression in CONDITIONS.items():
        t0 = time.perf_counter()
        cond = compile_condition(expression, variables=ATTESTATION_VARIABLES)
        compile_ms = (time.perf_counter() - t0) * 1e3
        result = evaluate(cond, act)
        t0 = time.perf_counter()
        for _ in range(n):
            evaluate(cond, act)
        per_call = (time.perf_counter() - t0) / n * 1e6
        print(f"{name:<18} {compile_ms:>10.2f} {per_call:>13.1f}  {result}")


if __name__ == "__main__":
    main()

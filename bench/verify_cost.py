"""Worst-case verification cost of one digest: many large attestation layers x authorities.

32 ``.att`` layers (default 1 MiB each: together the 32 MiB per-digest discovery budget)
against 4 key authorities, none of which signed them, so every (layer, authority) pair runs
the full check and fails. Prints wall and CPU time; asserts nothing about time.

Run: python bench/verify_cost.py [--layers N] [--authorities N] [--layer-kib N]
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

# runnable as a plain script from a checkout, without installing the package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from controller.evidence.model import CosignLayer, EvidenceSet
from controller.verify.authority import KeyAuthority
from controller.verify.evidence import verify_evidence
from controller.verify.trustroot import TrustRoots

DIGEST = "sha256:" + "ab" * 32


def _envelope(size: int) -> bytes:
    # A statement naming the image among many subjects, padded to ``size``: the parse and the
    # subject scan (picking the verification target) both have work to do.
    subjects = [{"name": "n", "digest": {"sha256": "cd" * 32}}] * 200
    subjects.append({"name": "img", "digest": {"sha256": "ab" * 32}})
    statement = json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "predicateType": "https://slsa.dev/provenance/v1",
            "subject": subjects,
            "predicate": {"pad": "A" * size},
        }
    ).encode()
    return json.dumps(
        {
            "payloadType": "application/vnd.in-toto+json",
            "payload": base64.b64encode(statement).decode(),
            "signatures": [{"sig": base64.b64encode(b"x" * 70).decode()}],
        }
    ).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--authorities", type=int, default=4)
    parser.add_argument("--layer-kib", type=int, default=1024)
    args = parser.parse_args()
    # base64 grows the statement by 4/3; size the pad so the envelope is about --layer-kib
    overhead = len(_envelope(0))
    envelope = _envelope(max(0, (args.layer_kib * 1024 - overhead) * 3 // 4))
    layers = tuple(
        CosignLayer("attestation", envelope, None, None, None, None, None, f"layer {i}")
        for i in range(args.layers)
    )
    authorities = [
        KeyAuthority(
            f"k{i}",
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            "ignore",
        )
        for i in range(args.authorities)
    ]
    evidence = EvidenceSet(DIGEST, attestations=layers)
    wall, cpu = time.perf_counter(), time.process_time()
    outcome = verify_evidence(evidence, authorities, TrustRoots(), datetime.now(UTC))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    total_mib = len(envelope) * args.layers / 2**20
    print(
        f"{args.layers} layers x {args.authorities} authorities "
        f"({len(envelope) / 2**20:.2f} MiB each, {total_mib:.1f} MiB total): "
        f"wall {wall:.2f}s, cpu {cpu:.2f}s, {len(outcome.failures)} failures"
    )


if __name__ == "__main__":
    main()

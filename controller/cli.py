"""The ``reprogate`` command: serve, check, verify, test, audit.

Exit codes are a contract (DESIGN.md): check 0 admitted / 1 denied / 2 bad input or config;
verify 0 verified / 1 not (2 bad input); test 1 on any failing case; audit 2 on bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from controller.config import ConfigError, Settings, load_settings

__all__ = ["main"]

EXIT_OK = 0
EXIT_DENIED = 1
EXIT_BAD_INPUT = 2
_CLI_UID = "reprogate-check"


class UsageError(Exception):
    """Bad input or configuration: exit 2 with the message."""


def _registry_access_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--registry-ca", help="extra CA bundle (PEM) for registries")
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="registry reached over plain HTTP (repeatable)",
    )
    p.add_argument("--docker-config", help="docker config.json with registry credentials")


def _registry_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="settings file (YAML)")
    p.add_argument("--policies", help="policy directory or file")
    _registry_access_flags(p)
    p.add_argument("--no-match", choices=["allow", "deny"], help="verdict for unmatched images")
    p.add_argument("--deadline", type=float, help="seconds allowed for one decision")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reprogate",
        description="Admit container images only with verified supply-chain evidence.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the admission webhook (HTTPS)")
    _registry_flags(serve)
    serve.add_argument("--host", help="listen address (default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="listen port (default 8443)")
    serve.add_argument("--tls-cert", help="server certificate (PEM); default: self-signed")
    serve.add_argument("--tls-key", help="server key (PEM)")
    serve.add_argument("--decision-log", metavar="PATH|-", help="decision records (default -)")

    check = sub.add_parser("check", help="evaluate images or a manifest as admission would")
    _registry_flags(check)
    check.add_argument("images", nargs="*", help="image references")
    check.add_argument("-f", "--filename", help="manifest YAML (one or more documents, - = stdin)")
    check.add_argument("-n", "--namespace", default="default", help="namespace (default default)")
    check.add_argument("-o", "--output", choices=["text", "json"], default="text")

    verify = sub.add_parser("verify", help="verify one bundle offline")
    verify.add_argument("--bundle", required=True, help="Sigstore bundle JSON")
    verify.add_argument("--identity", help="expected certificate subject")
    verify.add_argument("--issuer", help="expected OIDC issuer")
    verify.add_argument("--key", help="public key PEM (instead of identity/issuer)")
    verify.add_argument("--trusted-root", help="trusted_root.json (default: Sigstore production)")
    verify.add_argument("artifact", help="artifact file or sha256:HEX")

    test = sub.add_parser("test", help="run policy test cases offline")
    test.add_argument("dir", nargs="?", default="policies", help="policy directory")

    audit = sub.add_parser("audit", help="review decision logs")
    audit.add_argument("logs", nargs="*", help="decision log files (default stdin)")
    audit.add_argument("--since", help="RFC 3339 time or age like 24h, 7d")
    audit.add_argument("--namespace")
    audit.add_argument("--policy")
    audit.add_argument("--decision", choices=["allow", "deny", "warn"])
    audit.add_argument("-o", "--output", choices=["table", "json", "csv", "html"], default="table")
    audit.add_argument(
        "--replay",
        metavar="POLICIES",
        help="decide the recorded images again under these policies and show what changes",
    )
    _registry_access_flags(audit)  # used by --replay
    return parser


def _settings(args: argparse.Namespace, *, policies: str | None = None) -> Settings:
    """Settings from ``--config``, the environment and the flags this subcommand has."""
    flags: dict[str, Any] = {
        "policies": policies or getattr(args, "policies", None),
        "ca_file": args.registry_ca,
        "docker_config": args.docker_config,
        "no_match": getattr(args, "no_match", None),
        "deadline_seconds": getattr(args, "deadline", None),
    }
    if args.insecure_registry:
        flags["insecure_registries"] = list(args.insecure_registry)
    for name in ("host", "port", "tls_cert", "tls_key", "decision_log"):
        if hasattr(args, name):
            flags[name] = getattr(args, name)
    try:
        return load_settings(getattr(args, "config", None), flags)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _load(settings: Settings) -> tuple[Any, Any]:
    """Policies and trust roots, or UsageError naming every problem."""
    from controller.policy.store import (
        PolicyStoreError,
        load_policy_store,
        production_root_loader,
    )

    try:
        return load_policy_store(
            settings.policies, production=production_root_loader(settings.tuf_cache)
        )
    except PolicyStoreError as exc:
        raise UsageError(str(exc)) from None


def _serve(args: argparse.Namespace) -> int:
    from controller.server_main import serve

    settings = _settings(args)
    policy_set, roots = _load(settings)
    if not policy_set.policies:
        # Still serve: a crash-looping webhook with failurePolicy Fail would block the cluster.
        logging.getLogger("reprogate").warning(
            "no ImagePolicy found in %s: every image will be %s",
            settings.policies,
            "denied (--no-match deny)" if settings.no_match == "deny" else "admitted",
        )
    asyncio.run(serve(settings, policy_set, roots))
    return EXIT_OK


def _check(args: argparse.Namespace, out: TextIO) -> int:
    from controller.admission.model import AdmissionRequest, ImageUse
    from controller.admission.review import AdmissionReviewError, requests_from_manifest
    from controller.decisions.record import record_from

    settings = _settings(args)
    if not args.images and not args.filename:
        raise UsageError("give image references or -f MANIFEST")
    requests: list[AdmissionRequest] = []
    if args.images:
        from controller.oci.reference import ReferenceError, parse_image_ref

        for image in args.images:
            try:
                parse_image_ref(image)
            except ReferenceError as exc:
                raise UsageError(str(exc)) from None
        uses = tuple(
            ImageUse(image=img, container=f"image-{i}", path=f"/spec/containers/{i}/image")
            for i, img in enumerate(args.images)
        )
        requests.append(
            AdmissionRequest(
                uid=_CLI_UID,
                kind="Pod",
                namespace=args.namespace,
                name="reprogate-check",
                operation="CREATE",
                user="reprogate-check",
                groups=(),
                object={},
                images=uses,
            )
        )
    if args.filename:
        try:
            text = sys.stdin.read() if args.filename == "-" else Path(args.filename).read_text()
        except OSError as exc:
            raise UsageError(f"{args.filename}: {exc.strerror}") from None
        try:
            requests.extend(requests_from_manifest(text, args.namespace))
        except AdmissionReviewError as exc:
            raise UsageError(f"{args.filename}: {exc}") from None
    policy_set, roots = _load(settings)
    if not policy_set.policies:
        raise UsageError(
            f"no ImagePolicy found in {settings.policies}: nothing to check against "
            "(give --policies DIR)"
        )

    async def run() -> list[tuple[Any, Any, float]]:
        from controller.evaluator import Evaluator
        from controller.evidence.source import RegistryEvidence
        from controller.oci.client import RegistryClient

        client = RegistryClient(settings.registry)
        try:
            evaluator = Evaluator(settings, policy_set, RegistryEvidence(client), roots)
            results = []
            for req in requests:
                start = time.perf_counter()
                decision = await evaluator.evaluate(req, mutate=False)
                results.append((req, decision, (time.perf_counter() - start) * 1000))
            return results
        finally:
            await client.close()

    results = asyncio.run(run())
    denied = any(not d.allowed for _, d, _ in results)
    code = EXIT_DENIED if denied else EXIT_OK
    try:
        if args.output == "json":
            records = [json.loads(record_from(r, d, ms).to_json_line()) for r, d, ms in results]
            json.dump(records, out, indent=2)
            out.write("\n")
        else:
            for req, decision, _ in results:
                _print_text(req, decision, out)
    except BrokenPipeError:
        # `reprogate check ... | head`: the verdict still decides the exit code
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
    return code


def _print_text(req: Any, decision: Any, out: TextIO) -> None:
    # images named on the command line have no workload to show
    label = "" if req.uid == _CLI_UID else f"  [{req.kind}/{req.name}]"
    for v in decision.images:
        word = {"allow": "ADMIT", "warn": "ADMIT (warnings)", "deny": "DENY"}[v.verdict]
        out.write(f"{word:8} {v.ref}" + (f"  {v.digest}" if v.digest else "") + f"{label}\n")
        out.writelines(f"    {line}\n" for line in v.explain())
    for w in decision.warnings:
        out.write(f"warning: {w}\n")


def _verify(args: argparse.Namespace, out: TextIO) -> int:
    from controller.verify.errors import VerificationError
    from controller.verify.offline import parse_artifact_digest, verify_offline

    if args.key and (args.identity or args.issuer):
        raise UsageError("use either --key or --identity/--issuer, not both")
    if not args.key and not (args.identity and args.issuer):
        raise UsageError("give --identity and --issuer, or --key")
    try:
        key_pem = Path(args.key).read_bytes() if args.key else None
        root = Path(args.trusted_root).read_bytes() if args.trusted_root else None
        artifact: bytes | None = None
        digest: str | None = None
        if args.artifact.startswith("sha256:"):
            digest = args.artifact
            parse_artifact_digest(digest)  # a malformed digest is bad input, not "not verified"
        else:
            artifact = Path(args.artifact).read_bytes()
    except OSError as exc:
        raise UsageError(f"{exc.filename}: {exc.strerror}") from None
    except VerificationError as exc:
        raise UsageError(str(exc)) from None
    try:
        result = verify_offline(
            args.bundle,
            identity=args.identity,
            issuer=args.issuer,
            key_pem=key_pem,
            trusted_root_json=root,
            artifact=artifact,
            artifact_digest=digest,
        )
    except VerificationError as exc:
        out.write(f"FAIL: {exc.diagnostics()}\n")
        return EXIT_DENIED
    except ValueError as exc:  # verify_offline's usage errors, e.g. an unreadable bundle
        raise UsageError(str(exc)) from None
    out.write(f"OK: verified, signed by {result.signer}\n")
    return EXIT_OK


def _test(args: argparse.Namespace, out: TextIO) -> int:
    from controller.policy.testing import run_policy_tests

    return run_policy_tests(args.dir, out)


def _audit(args: argparse.Namespace, out: TextIO) -> int:
    from controller.decisions.audit import run_audit

    if args.replay:
        return _replay(args, out)
    return run_audit(
        args.logs,
        since=args.since,
        namespace=args.namespace,
        policy=args.policy,
        decision=args.decision,
        output=args.output,
        out_stream=out,
    )


def _replay(args: argparse.Namespace, out: TextIO) -> int:
    """``reprogate audit --replay POLICIES``: recorded decisions decided again."""
    from controller.decisions.audit import AuditFilter, parse_since, read_records
    from controller.decisions.replay import replay_records, write_replay

    if args.output not in ("table", "json"):
        raise UsageError("--replay writes -o table or -o json")
    settings = _settings(args, policies=args.replay)
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    policy_set, roots = _load(settings)
    try:
        records, _ = read_records(args.logs, sys.stderr)
    except OSError as exc:
        raise UsageError(f"cannot read {exc.filename or 'input'}: {exc.strerror}") from None
    keep = AuditFilter(
        since=since, namespace=args.namespace, policy=args.policy, decision=args.decision
    )
    kept = [r for r in records if keep.keeps(r)]

    async def run() -> Any:
        from controller.evaluator import Evaluator
        from controller.evidence.source import RegistryEvidence
        from controller.oci.client import RegistryClient

        client = RegistryClient(settings.registry)
        try:
            evaluator = Evaluator(settings, policy_set, RegistryEvidence(client), roots)
            return await replay_records(kept, evaluator)
        finally:
            await client.close()

    write_replay(asyncio.run(run()), args.output, out)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``reprogate`` console script."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    out = sys.stdout
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "check":
            return _check(args, out)
        if args.command == "verify":
            return _verify(args, out)
        if args.command == "test":
            return _test(args, out)
        return _audit(args, out)
    except UsageError as exc:
        print(f"reprogate {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # `reprogate audit | head`: the reader has what it wanted
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return EXIT_OK
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

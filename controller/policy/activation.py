"""Verified facts -> the JSON-like variables CEL conditions see (docs/policies.md, CEL)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controller.oci.reference import ImageRef
from controller.policy.cel import CelActivation, image_variable, to_cel
from controller.provenance.level import ProvenanceAssessment
from controller.provenance.reproducibility import ReproducibilityAssessment
from controller.provenance.slsa import Provenance
from controller.provenance.vsa import VsaFacts
from controller.verify.facts import SignerIdentity, VerificationOutcome, VerifiedStatement

__all__ = ["CelObject", "build_activation", "provenance_value", "statement_value"]


class CelObject:
    """The admitted object, converted for CEL at most once per review and shared by all of
    its images and policies (a 2 MB Deployment must not be converted per container)."""

    def __init__(self, obj: Mapping[str, Any]) -> None:
        self._obj = obj
        self._value: Any = None
        self._error: TypeError | None = None
        self._done = False

    def get(self) -> Any:
        """The converted object; TypeError when it cannot be given to CEL."""
        if not self._done:
            try:
                self._value = to_cel(self._obj)
            except TypeError as exc:
                self._error = exc
            self._done = True
        if self._error is not None:
            raise TypeError(str(self._error))
        return self._value


def _signer(s: SignerIdentity) -> dict[str, Any]:
    return {
        "authority": s.authority,
        "kind": s.kind,
        "subject": s.subject,
        "issuer": s.issuer,
        "keyId": s.key_id,
    }


def statement_value(s: VerifiedStatement) -> dict[str, Any]:
    """One verified statement as CEL sees it."""
    return {
        "predicateType": s.predicate_type,
        "predicate": s.predicate,
        "subjects": [{"name": x.name, "digest": dict(x.digest)} for x in s.subjects],
        "signer": _signer(s.signer),
        "time": s.integrated_time,
    }


def provenance_value(p: Provenance, level: int) -> dict[str, Any]:
    """The normalised provenance as CEL sees it."""
    src = p.source
    return {
        "builderId": p.builder_id,
        "buildType": p.build_type,
        "level": level,
        "source": {
            "uri": src.uri if src else None,
            "repository": src.repository if src else None,
            "ref": src.ref if src else None,
            "commit": src.commit if src else None,
        },
        "externalParameters": p.external_parameters,
        "dependencies": [{"uri": d.uri, "digest": dict(d.digest)} for d in p.resolved_dependencies],
        "startedOn": p.started_on,
        "finishedOn": p.finished_on,
        "completeness": {
            "parameters": p.completeness.parameters,
            "environment": p.completeness.environment,
            "materials": p.completeness.materials,
        },
        "reproducible": p.reproducible,
        "signer": _signer(p.signer),
    }


def build_activation(
    *,
    image: ImageRef,
    written: str,
    outcome: VerificationOutcome,
    provenance: ProvenanceAssessment | None,
    reproducibility: ReproducibilityAssessment | None,
    vsas: VsaFacts | None,
    obj: Mapping[str, Any],
    namespace: str,
    user: str,
    groups: tuple[str, ...],
    operation: str,
    now: datetime,
) -> CelActivation:
    """The variables for one image under one policy."""
    attestations: dict[str, list[dict[str, Any]]] = {}
    for s in outcome.statements:
        attestations.setdefault(s.predicate_type, []).append(statement_value(s))
    prov = None
    if provenance is not None and provenance.provenance is not None:
        prov = provenance_value(provenance.provenance, provenance.level)
    repro: dict[str, Any] = {
        "independentBuilds": len(reproducibility.independent_builds) if reproducibility else 0,
        "builders": list(reproducibility.builder_ids) if reproducibility else [],
        "builds": list(reproducibility.independent_builds) if reproducibility else [],
        "reproduced": bool(reproducibility and reproducibility.passed)
        or bool(vsas and vsas.reproduced),
        "mismatches": list(reproducibility.mismatches) if reproducibility else [],
    }
    return CelActivation(
        image=image_variable(image, image.digest, written),
        signatures=[_signer(s.signer) for s in outcome.signatures],
        provenance=prov,
        attestations=attestations,
        reproducibility=repro,
        vsa={
            "verifiers": [v.verifier_id for v in vsas.accepted] if vsas else [],
            "levels": list(vsas.levels) if vsas else [],
            "buildLevel": vsas.build_level if vsas else 0,
            "reproduced": bool(vsas and vsas.reproduced),
            "properties": list(vsas.custom_properties) if vsas else [],
        },
        object=obj,
        namespace=namespace,
        request={"user": user, "groups": list(groups), "operation": operation},
        now=now,
    )

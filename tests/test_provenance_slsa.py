"""SLSA provenance parsing: the real slsa-github-generator container provenance, and v1 / v0.1 /
malformed predicates built here.

The statement is built directly from the real DSSE payload: signature verification of that
envelope is tested with the verify package, not here.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from controller.provenance.slsa import (
    PROVENANCE_V01,
    PROVENANCE_V02,
    PROVENANCE_V1,
    ProvenanceError,
    parse_provenance,
    parse_source_uri,
)
from controller.verify.facts import SignerIdentity, Subject, VerifiedStatement

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
CONTAINER = VECTORS / "slsa-verifier" / "container"
GENERATOR = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_container_slsa3.yml@refs/tags/v1.10.0"
)
DIGEST = "sha256:" + "ab" * 32


def container_payload() -> bytes:
    """The in-toto payload of the cosign attestation in the container OCI layout."""
    layout = CONTAINER / "container_workflow_dispatch"
    if not layout.is_dir():
        pytest.skip(f"slsa-verifier vectors not present at {layout}")
    blobs = layout / "blobs" / "sha256"
    index = json.loads((layout / "index.json").read_text())
    atts = next(
        m for m in index["manifests"] if m["annotations"]["kind"] == "dev.cosignproject.cosign/atts"
    )
    manifest = json.loads((blobs / atts["digest"].split(":")[1]).read_text())
    layer = manifest["layers"][0]
    assert layer["mediaType"] == "application/vnd.dsse.envelope.v1+json"
    envelope = json.loads((blobs / layer["digest"].split(":")[1]).read_bytes())
    return base64.b64decode(envelope["payload"])


def statement_from(
    payload: bytes, signer: SignerIdentity, source: str = "test"
) -> VerifiedStatement:
    doc = json.loads(payload)
    return VerifiedStatement(
        signer=signer,
        statement_type=doc["_type"],
        predicate_type=doc["predicateType"],
        subjects=tuple(Subject(s["name"], s["digest"]) for s in doc["subject"]),
        predicate=doc["predicate"],
        payload=payload,
        integrated_time=None,
        source=source,
    )


def make_statement(predicate_type: str, predicate: Any) -> VerifiedStatement:
    return VerifiedStatement(
        signer=SignerIdentity(authority="k", kind="key", key_id="00" * 32),
        statement_type="https://in-toto.io/Statement/v1",
        predicate_type=predicate_type,
        subjects=(Subject("img", {"sha256": DIGEST.split(":")[1]}),),
        predicate=predicate,
        payload=b"{}",
        integrated_time=None,
        source="unit",
    )


GITHUB_SIGNER = SignerIdentity(
    authority="gha",
    kind="keyless",
    subject=GENERATOR,
    issuer="https://token.actions.githubusercontent.com",
)


def test_real_container_provenance_v02() -> None:
    prov = parse_provenance(statement_from(container_payload(), GITHUB_SIGNER))
    assert prov.predicate_type == PROVENANCE_V02
    assert prov.builder_id == GENERATOR
    assert prov.build_type == "https://github.com/slsa-framework/slsa-github-generator/container@v1"
    assert prov.source is not None
    assert prov.source.repository == "github.com/slsa-framework/example-package"
    assert prov.source.ref == "refs/tags/v13.0.30"
    assert prov.source.commit == "d37a7f740ee7404914456f24dcd90e865a0509e8"
    assert prov.completeness.parameters is True
    assert prov.completeness.environment is False
    assert prov.reproducible is False
    assert [d.uri for d in prov.resolved_dependencies] == [
        "git+https://github.com/slsa-framework/example-package@refs/tags/v13.0.30"
    ]
    digest = (CONTAINER / "container_workflow_dispatch.digest").read_text().strip()
    assert prov.names_digest(digest)
    assert not prov.names_digest(DIGEST)


V1_PREDICATE: dict[str, Any] = {
    "buildDefinition": {
        "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
        "externalParameters": {
            "workflow": {
                "ref": "refs/heads/main",
                "repository": "https://github.com/octocat/hello-world",
                "path": ".github/workflows/build.yml",
            }
        },
        "internalParameters": {"github": {"event_name": "push"}},
        "resolvedDependencies": [
            {
                "uri": "git+https://github.com/octocat/hello-world@refs/heads/main",
                "digest": {"gitCommit": "c27d339ee6075c1f744c5d4b200f7901aad2c369"},
            }
        ],
    },
    "runDetails": {
        "builder": {"id": "https://github.com/actions/runner/github-hosted"},
        "metadata": {
            "invocationId": "https://github.com/octocat/hello-world/actions/runs/1/attempts/1",
            "startedOn": "2023-01-01T12:34:56Z",
            "finishedOn": "2023-01-01T12:40:00.123456789Z",
        },
    },
}


def test_v1_github_workflow_source() -> None:
    prov = parse_provenance(make_statement(PROVENANCE_V1, V1_PREDICATE))
    assert prov.builder_id == "https://github.com/actions/runner/github-hosted"
    assert prov.source is not None
    assert prov.source.repository == "github.com/octocat/hello-world"
    assert prov.source.ref == "refs/heads/main"
    assert prov.source.commit == "c27d339ee6075c1f744c5d4b200f7901aad2c369"
    assert prov.started_on == datetime(2023, 1, 1, 12, 34, 56, tzinfo=UTC)
    assert prov.finished_on is not None and prov.finished_on.minute == 40
    assert prov.external_parameters["workflow"]["path"] == ".github/workflows/build.yml"
    assert prov.reproducible is False


def test_v1_source_from_resolved_dependency_only() -> None:
    predicate = json.loads(json.dumps(V1_PREDICATE))
    predicate["buildDefinition"]["externalParameters"] = {"target": "//x"}
    prov = parse_provenance(make_statement(PROVENANCE_V1, predicate))
    assert prov.source is not None
    assert prov.source.repository == "github.com/octocat/hello-world"
    assert prov.source.ref == "refs/heads/main"
    assert prov.source.commit == "c27d339ee6075c1f744c5d4b200f7901aad2c369"


def test_v01_source_from_defined_in_material() -> None:
    predicate = {
        "builder": {"id": "https://example.com/builder"},
        "recipe": {"type": "https://example.com/make", "definedInMaterial": 1},
        "metadata": {"reproducible": True, "completeness": {"arguments": True}},
        "materials": [
            {"uri": "pkg:deb/debian/gcc", "digest": {"sha256": "11" * 32}},
            {"uri": "git+https://gitlab.com/grp/proj.git", "digest": {"sha1": "ab" * 20}},
        ],
    }
    prov = parse_provenance(make_statement(PROVENANCE_V01, predicate))
    assert prov.source is not None
    assert prov.source.repository == "gitlab.com/grp/proj"
    assert prov.source.commit == "ab" * 20
    assert prov.reproducible is True
    assert prov.completeness.parameters is True


@pytest.mark.parametrize(
    ("uri", "repository", "ref", "commit"),
    [
        ("git+https://github.com/o/n@refs/tags/v1", "github.com/o/n", "refs/tags/v1", None),
        ("https://GitHub.com/o/n.git#" + "a" * 40, "github.com/o/n", None, "a" * 40),
        ("https://github.com/o/n.git#refs/heads/main", "github.com/o/n", "refs/heads/main", None),
        ("git@github.com:o/n.git", "github.com/o/n", None, None),
        ("ssh://git@host.example:2222/o/n", "host.example:2222/o/n", None, None),
        ("pkg:docker/golang@1.21", None, None, None),
        ("https://github.com", None, None, None),
    ],
)
def test_parse_source_uri(
    uri: str, repository: str | None, ref: str | None, commit: str | None
) -> None:
    parsed = parse_source_uri(uri)
    assert (parsed.repository, parsed.ref, parsed.commit) == (repository, ref, commit)


@pytest.mark.parametrize(
    ("predicate_type", "predicate", "fragment"),
    [
        (PROVENANCE_V02, [], "predicate must be a JSON object"),
        (PROVENANCE_V02, {"buildType": "x"}, "builder must be a JSON object"),
        (PROVENANCE_V02, {"builder": {"id": ""}, "buildType": "x"}, "builder.id is required"),
        (PROVENANCE_V02, {"builder": {"id": "b"}}, "buildType is required"),
        (
            PROVENANCE_V02,
            {"builder": {"id": "b"}, "buildType": "x", "materials": {"uri": "y"}},
            "materials must be a list",
        ),
        (
            PROVENANCE_V02,
            {"builder": {"id": "b"}, "buildType": "x", "metadata": {"buildStartedOn": "yesterday"}},
            "metadata.buildStartedOn 'yesterday' is not an RFC 3339 timestamp",
        ),
        (
            PROVENANCE_V02,
            {"builder": {"id": "b"}, "buildType": "x", "metadata": {"reproducible": "yes"}},
            "metadata.reproducible must be true or false",
        ),
        (
            PROVENANCE_V1,
            {"buildDefinition": {"buildType": "x"}, "runDetails": {"builder": {"id": "b"}}},
            "buildDefinition.externalParameters must be a JSON object",
        ),
        ("https://example.com/other", {}, "is not SLSA provenance"),
    ],
)
def test_malformed_predicates_raise_provenance_error(
    predicate_type: str, predicate: Any, fragment: str
) -> None:
    with pytest.raises(ProvenanceError) as info:
        parse_provenance(make_statement(predicate_type, predicate))
    assert fragment in str(info.value)
    assert "unit" in str(info.value)

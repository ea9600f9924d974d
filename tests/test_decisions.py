"""Decision records (round trip, strict parsing, the log) and `reprogate audit`."""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from controller.admission.model import AdmissionRequest, ImageUse, ReviewDecision
from controller.decisions.audit import parse_since, run_audit
from controller.decisions.record import (
    DecisionLog,
    DecisionLogError,
    DecisionRecord,
    DecisionRecordError,
    format_time,
    record_from,
)
from controller.policy.verdict import CheckResult, Evidence, ImageVerdict, PolicyResult

NOW = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
DIGEST = "sha256:" + "ef" * 32


def make_request(
    uid: str = "u-1", namespace: str = "shop", images: tuple[str, ...] = ("nginx:1.27",)
) -> AdmissionRequest:
    return AdmissionRequest(
        uid=uid,
        kind="Deployment",
        namespace=namespace,
        name="web",
        operation="CREATE",
        user="alice@example.com",
        groups=("system:authenticated",),
        object={"spec": {"imagePullSecrets": [{"name": "regcred"}], "password": "hunter2"}},
        images=tuple(
            ImageUse(image=i, container=f"c{n}", path=f"/spec/containers/{n}/image")
            for n, i in enumerate(images)
        ),
    )


def make_decision(decision: str = "deny", policy: str = "release-images") -> ReviewDecision:
    passed = decision != "deny"
    verdict = ImageVerdict(
        ref="nginx:1.27",
        digest=DIGEST,
        verdict="deny" if not passed else "allow",
        policies=(
            PolicyResult(
                name=policy,
                mode="enforce",
                passed=passed,
                checks=(
                    CheckResult("signatures", True, "signed by release-key"),
                    CheckResult("provenance.minLevel", passed, "SLSA level 1 < required 3"),
                ),
            ),
            PolicyResult(
                name="waived",
                mode="enforce",
                passed=False,
                checks=(CheckResult("reproducibility", False, "1 of 2 builds"),),
                exception="vendor image, ticket SEC-1",
            ),
        ),
        evidence=Evidence(
            signers=("release-key",),
            slsa_level=1,
            builder="https://github.com/actions/runner",
            source={"repository": "github.com/acme/web", "ref": "refs/tags/v1", "commit": "abc"},
            dependencies=({"uri": "git+https://github.com/acme/lib", "digest": "sha1:123"},),
            independent_builds=("builder-a",),
        ),
    )
    unreachable = ImageVerdict(
        ref="ghcr.io/x/y:1", digest=None, verdict="deny", policies=(), error="registry unreachable"
    )
    return ReviewDecision(
        allowed=passed,
        message="",
        images=(verdict, unreachable) if not passed else (verdict,),
        decision=decision,
        mode="enforce",
        cache={"hits": 3, "misses": 1},
    )


def test_time_format() -> None:
    assert format_time(NOW) == "2026-03-01T12:00:00.123Z"
    with pytest.raises(ValueError):
        format_time(datetime(2026, 1, 1))


def test_record_round_trip_and_shape() -> None:
    rec = record_from(make_request(), make_decision(), 12.34567, now=NOW)
    line = rec.to_json_line()
    assert "\n" not in line
    assert DecisionRecord.from_json(line) == rec
    data = json.loads(line)
    assert list(data) == [
        "time",
        "uid",
        "decision",
        "mode",
        "operation",
        "kind",
        "namespace",
        "name",
        "user",
        "images",
        "latencyMs",
        "cache",
    ]
    image = data["images"][0]
    assert list(image) == ["ref", "digest", "verdict", "policies", "evidence"]
    assert image["policies"][0] == {
        "name": "release-images",
        "result": "fail",
        "checks": [
            {"check": "signatures", "result": "pass", "reason": "signed by release-key"},
            {
                "check": "provenance.minLevel",
                "result": "fail",
                "reason": "SLSA level 1 < required 3",
            },
        ],
    }
    assert image["policies"][1]["result"] == "excepted"
    assert image["evidence"] == {
        "signers": ["release-key"],
        "slsaLevel": 1,
        "builder": "https://github.com/actions/runner",
        "source": {"repository": "github.com/acme/web", "ref": "refs/tags/v1", "commit": "abc"},
        "dependencies": [{"uri": "git+https://github.com/acme/lib", "digest": "sha1:123"}],
        "independentBuilds": ["builder-a"],
    }
    assert data["images"][1]["error"] == "registry unreachable"
    assert data["latencyMs"] == 12.346
    assert data["cache"] == {"hits": 3, "misses": 1}
    # Never the object, its secrets, or the user's groups.
    for secret in ("regcred", "hunter2", "system:authenticated", "imagePullSecrets"):
        assert secret not in line


def test_from_json_tolerates_unknown_fields() -> None:
    data = json.loads(record_from(make_request(), make_decision(), 1, now=NOW).to_json_line())
    data["futureField"] = {"x": 1}
    data["images"][0]["evidence"]["vsa"] = "yes"
    rec = DecisionRecord.from_json(json.dumps(data))
    assert rec.uid == "u-1"


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d.update(uid=5), "record.uid must be a string"),
        (lambda d: d.pop("uid"), "record.uid is missing"),
        (lambda d: d.update(time="yesterday"), "record.time"),
        (lambda d: d.update(time="2026-01-01T00:00:00"), "no timezone"),
        (lambda d: d.update(images={}), "record.images must be a list"),
        (lambda d: d.update(latencyMs="1"), "latencyMs must be a number"),
        (lambda d: d.update(cache={"hits": "1"}), "cache.hits must be an integer"),
        (lambda d: d["images"][0].update(digest=7), "images[0].digest"),
        (lambda d: d["images"][0]["evidence"].update(slsaLevel="3"), "slsaLevel"),
        (lambda d: d["images"][0]["evidence"].update(signers="k"), "signers must be a list"),
        (
            lambda d: d["images"][0]["policies"][0]["checks"][0].update(result=None),
            "checks[0].result must be a string",
        ),
    ],
)
def test_from_json_is_strict_on_types(mutate: Any, needle: str) -> None:
    data = json.loads(record_from(make_request(), make_decision(), 1, now=NOW).to_json_line())
    mutate(data)
    with pytest.raises(DecisionRecordError) as info:
        DecisionRecord.from_json(json.dumps(data))
    assert needle in str(info.value), str(info.value)


@pytest.mark.parametrize("line", ["", "{", "[]", '"x"', "null"])
def test_from_json_rejects_non_records(line: str) -> None:
    with pytest.raises(DecisionRecordError):
        DecisionRecord.from_json(line)


def test_decision_log_file_appends_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"existing": true}\n')
    with DecisionLog(str(path)) as log:
        assert log.write(record_from(make_request("a"), make_decision(), 1, now=NOW))
        assert log.write(record_from(make_request("b"), make_decision("allow"), 2, now=NOW))
        # Flushed: visible before close.
        assert len(path.read_text().splitlines()) == 3
    lines = path.read_text().splitlines()
    assert [DecisionRecord.from_json(line).uid for line in lines[1:]] == ["a", "b"]


def test_decision_log_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    log = DecisionLog("-")
    assert log.write(record_from(make_request(), make_decision(), 1, now=NOW))
    out = capsys.readouterr().out
    assert DecisionRecord.from_json(out.strip()).uid == "u-1"


def test_decision_log_write_failure_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = DecisionLog(str(tmp_path / "d.jsonl"))
    log.close()
    with caplog.at_level(logging.ERROR, logger="reprogate.decisions"):
        assert log.write(record_from(make_request(), make_decision(), 1, now=NOW)) is False
    assert "could not write decision record uid=u-1" in caplog.text


def test_decision_log_unopenable(tmp_path: Path) -> None:
    with pytest.raises(DecisionLogError, match="cannot open decision log"):
        DecisionLog(str(tmp_path / "missing-dir" / "d.jsonl"))


# --- audit --------------------------------------------------------------------------------


def write_log(tmp_path: Path) -> Path:
    path = tmp_path / "decisions.jsonl"
    recs = [
        record_from(
            make_request("old", "shop"),
            make_decision("deny"),
            5,
            now=datetime(2026, 2, 1, tzinfo=UTC),
        ),
        record_from(
            make_request("new-deny", "shop"),
            make_decision("deny", policy="<script>alert(1)</script>"),
            5,
            now=datetime(2026, 3, 1, 11, tzinfo=UTC),
        ),
        record_from(
            make_request("new-allow", "payments"),
            make_decision("allow"),
            5,
            now=datetime(2026, 3, 1, 10, tzinfo=UTC),
        ),
        record_from(
            make_request("formula", "=cmd|' /C calc'!A0"),
            make_decision("warn"),
            5,
            now=datetime(2026, 2, 28, tzinfo=UTC),
        ),
    ]
    lines = [r.to_json_line() for r in recs]
    lines.insert(2, "this is not json")
    lines.insert(3, '{"time": "2026-01-01T00:00:00Z", "uid": 5}')
    path.write_text("\n".join(lines) + "\n\n")
    return path


def audit(tmp_path: Path, output: str = "json", **kw: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args: dict[str, Any] = {"since": None, "namespace": None, "policy": None, "decision": None}
    args.update(kw)
    code = run_audit(
        [str(write_log(tmp_path))],
        args["since"],
        args["namespace"],
        args["policy"],
        args["decision"],
        output,
        out,
        err_stream=err,
        now=NOW,
    )
    return code, out.getvalue(), err.getvalue()


def uids(text: str) -> list[str]:
    return [r["uid"] for r in json.loads(text)]


def test_audit_json_sorted_and_bad_lines_reported(tmp_path: Path) -> None:
    code, out, err = audit(tmp_path)
    assert code == 0
    assert uids(out) == ["old", "formula", "new-allow", "new-deny"]
    assert "decisions.jsonl:3: skipped: not JSON" in err
    assert "decisions.jsonl:4: skipped: record.uid must be a string" in err


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"since": "24h"}, ["new-allow", "new-deny"]),
        ({"since": "2d"}, ["formula", "new-allow", "new-deny"]),
        ({"since": "2026-03-01T10:30:00Z"}, ["new-deny"]),
        ({"since": "2026-03-01T11:30:00+01:00"}, ["new-deny"]),
        ({"namespace": "payments"}, ["new-allow"]),
        ({"policy": "release-images"}, ["old", "formula", "new-allow"]),
        ({"policy": "waived"}, ["old", "formula", "new-allow", "new-deny"]),
        ({"policy": "nope"}, []),
        ({"decision": "deny"}, ["old", "new-deny"]),
        ({"decision": "deny", "namespace": "shop", "since": "7d"}, ["new-deny"]),
    ],
)
def test_audit_filters(tmp_path: Path, kw: dict[str, str], expected: list[str]) -> None:
    code, out, _ = audit(tmp_path, **kw)
    assert code == 0
    assert uids(out) == expected


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"since": "yesterday"}, "--since 'yesterday'"),
        ({"decision": "maybe"}, "--decision 'maybe'"),
        ({"output": "xml"}, "output 'xml'"),
    ],
)
def test_audit_bad_options(tmp_path: Path, kw: dict[str, str], needle: str) -> None:
    code, out, err = audit(tmp_path, **kw)
    assert code == 2
    assert needle in err
    assert out == ""


def test_audit_unreadable_log(tmp_path: Path) -> None:
    err = io.StringIO()
    code = run_audit(
        [str(tmp_path / "nope")], None, None, None, None, "table", io.StringIO(), err_stream=err
    )
    assert code == 2
    assert "cannot read" in err.getvalue()


def test_parse_since_relative() -> None:
    assert parse_since("90s", now=NOW) == datetime(2026, 3, 1, 11, 58, 30, 123456, tzinfo=UTC)


def test_audit_table(tmp_path: Path) -> None:
    code, out, _ = audit(tmp_path, "table", decision="deny")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "TIME",
        "DECISION",
        "NAMESPACE",
        "KIND",
        "NAME",
        "USER",
        "IMAGES",
        "REASON",
    ]
    assert len(lines) == 4
    # Columns are aligned: DECISION starts at the same offset on every row.
    offsets = {line.index("deny") for line in lines[1:3]}
    assert offsets == {lines[0].index("DECISION")}
    assert "release-images: provenance.minLevel: SLSA level 1 < required 3" in lines[1]
    assert lines[-1] == "2 records (0 allow, 2 deny, 0 warn); 2 bad lines skipped"


def test_audit_csv(tmp_path: Path) -> None:
    code, out, _ = audit(tmp_path, "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    # One row per image: "old" and "new-deny" have two images each.
    assert [r["uid"] for r in rows] == [
        "old",
        "old",
        "formula",
        "new-allow",
        "new-deny",
        "new-deny",
    ]
    assert rows[1]["failures"] == "ghcr.io/x/y:1: registry unreachable"
    assert rows[0]["failures"] == "release-images: provenance.minLevel: SLSA level 1 < required 3"
    assert rows[0]["policies"] == "release-images=fail; waived=excepted"
    # A namespace that a spreadsheet would run as a formula is neutralised.
    assert rows[2]["namespace"] == "'=cmd|' /C calc'!A0"


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_audit_html_is_self_contained_and_escaped(tmp_path: Path) -> None:
    code, out, _ = audit(tmp_path, "html")
    assert code == 0
    assert out.startswith("<!DOCTYPE html>")
    assert "<script>" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    parser = _Collector()
    parser.feed(out)
    assert "script" not in parser.tags
    assert not any(t in parser.tags for t in ("link", "img", "iframe"))
    assert parser.tags.count("tr") == 5  # header + 4 records
    assert "<script>alert(1)</script>: fail (provenance.minLevel: SLSA level 1 < required 3)" in (
        "".join(parser.text)
    )
    assert "4 records (1 allow, 2 deny, 1 warn); 2 bad lines skipped" in out


def test_audit_reads_stdin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write_log(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO(path.read_text()))
    out, err = io.StringIO(), io.StringIO()
    assert run_audit([], None, None, None, "allow", "json", out, err_stream=err) == 0
    assert uids(out.getvalue()) == ["new-allow"]
    assert "<stdin>:3: skipped" in err.getvalue()

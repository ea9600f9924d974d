"""Tests for controller.policy.cel: compile-time checks, evaluation, extension functions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controller.oci.reference import parse_image_ref
from controller.policy.cel import (
    ATTESTATION_VARIABLES,
    CelActivation,
    ConditionError,
    Where,
    compile_condition,
    evaluate,
    image_variable,
    to_cel,
)
from controller.policy.model import PolicyError

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "b" * 64


def _activation(**kw: Any) -> CelActivation:
    base: dict[str, Any] = {
        "image": image_variable(parse_image_ref("ghcr.io/acme/app:v1.2"), DIGEST),
        "signatures": [
            {
                "authority": "ci",
                "kind": "keyless",
                "subject": "https://github.com/acme/app",
                "issuer": "https://token.actions.githubusercontent.com",
                "keyId": None,
            }
        ],
        "provenance": {
            "builderId": "https://github.com/slsa-framework/slsa-github-generator",
            "level": 3,
            "source": {
                "repository": "github.com/acme/app",
                "ref": "refs/tags/v1.2",
                "commit": "c" * 40,
            },
            "dependencies": [
                {"uri": "git+https://github.com/acme/lib", "digest": {"sha1": "d" * 40}}
            ],
            "finishedOn": "2026-05-30T00:00:00Z",
        },
        "attestations": {"https://spdx.dev/Document": [{"predicate": {"packages": [1, 2]}}]},
        "reproducibility": {"independentBuilds": 2, "builders": ["a", "b"], "reproduced": True},
        "object": {"kind": "Pod", "metadata": {"labels": {"team": "payments"}}},
        "namespace": "prod",
        "request": {"user": "alice", "groups": ["dev"], "operation": "CREATE"},
        "now": NOW,
    }
    base.update(kw)
    return CelActivation(**base)


def _eval(expression: str, act: CelActivation | None = None, **kw: Any) -> bool:
    return evaluate(compile_condition(expression, **kw), act or _activation())


@pytest.mark.parametrize(
    "expression",
    [
        'image.registry == "ghcr.io" && image.repository == "acme/app"',
        'image.tag == "v1.2" && !image.pinned && image.digest.startsWith("sha256:")',
        'signatures.exists(s, s.authority == "ci" && s.kind == "keyless")',
        "provenance != null && provenance.level >= 3",
        'provenance.source.ref.startsWith("refs/tags/")',
        'provenance.dependencies.all(d, d.uri.startsWith("git+https://github.com/acme/"))',
        'size(attestations["https://spdx.dev/Document"][0].predicate.packages) == 2',
        "reproducibility.independentBuilds >= 2 && reproducibility.reproduced",
        'object.metadata.labels.team == "payments" && namespace == "prod"',
        'request.user == "alice" && "dev" in request.groups',
        'now - timestamp(provenance.finishedOn) < duration("72h")',
        'now > timestamp("2026-01-01T00:00:00Z")',
        "has(object.metadata.labels) && !has(object.metadata.annotations)",
    ],
)
def test_activation_variables_are_visible(expression: str) -> None:
    assert _eval(expression) is True


def test_age_condition_fails_when_too_old() -> None:
    act = _activation(now=NOW + timedelta(days=10))
    assert _eval('now - timestamp(provenance.finishedOn) < duration("168h")', act) is False


def test_provenance_null_is_guardable() -> None:
    act = _activation(provenance=None)
    assert _eval("provenance == null || provenance.level >= 3", act) is True
    assert _eval("provenance != null", act) is False
    assert _eval("provenance != null") is True
    assert _eval("provenance == null") is False
    assert _eval('image.tag != null && image.tag == "v1.2"') is True
    with pytest.raises(ConditionError):
        _eval("provenance.level >= 3", act)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('"a,b,c".split(",") == ["a", "b", "c"]', True),
        ('"a,b,c".split(",", 2) == ["a", "b,c"]', True),
        ('"a,b".split(",", 0) == []', True),
        ('"abc".split("") == ["a", "b", "c"]', True),
        ('"AbC-Ä".lowerAscii() == "abc-Ä"', True),
        ('"aBc-ä".upperAscii() == "ABC-ä"', True),
        ('["a", "b"].join() == "ab"', True),
        ('["a", "b"].join("/") == "a/b"', True),
        ('"aaa".replace("a", "b") == "bbb"', True),
        ('"aaa".replace("a", "b", 2) == "bba"', True),
        ('"aaa".replace("a", "b", -1) == "bbb"', True),
        ('"  x y \\t".trim() == "x y"', True),
        ('"hello".indexOf("l") == 2', True),
        ('"hello".indexOf("l", 3) == 3', True),
        ('"hello".indexOf("z") == -1', True),
        ('"hello".lastIndexOf("l") == 3', True),
        ('"hello".lastIndexOf("l", 2) == 2', True),
        ('"hello".lastIndexOf("h", 0) == 0', True),
        ('"hello".substring(1) == "ello"', True),
        ('"hello".substring(1, 3) == "el"', True),
        ('image.ref.split(":")[1] == "v1.2"', True),
    ],
)
def test_extension_functions(expression: str, expected: bool) -> None:
    assert _eval(expression) is expected


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ('"hello".substring(3, 9) == ""', "out of bounds"),
        ('"hello".substring(-1) == ""', "out of bounds"),
        ('"hello".indexOf("l", 99) == 0', "out of range"),
        ('"a".split(1) == []', "separator must be a string"),
        ('[1, 2].join(",") == ""', "every list element must be a string"),
        ('"a".trim(1) == ""', "wrong number of arguments"),
        ("image.nosuchfield", "no such member"),
        ('image.tag + 1 == ""', "operator + cannot be applied to string and int"),
        ("1 / 0 == 1", "divide by zero"),
    ],
)
def test_evaluation_errors_raise_condition_error(expression: str, fragment: str) -> None:
    with pytest.raises(ConditionError) as info:
        _eval(expression)
    assert fragment in str(info.value)
    assert "activation" not in str(info.value)  # cel-python's internal dump is stripped


@pytest.mark.parametrize(
    ("expression", "kind"), [("image.tag", "string"), ("1 + 1", "int"), ("[true]", "list")]
)
def test_non_bool_result_is_an_error(expression: str, kind: str) -> None:
    with pytest.raises(ConditionError, match=f"returned an? {kind}, not a bool"):
        _eval(expression)


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("image.tag ==", "CEL syntax error at line 1, column"),
        ("image.tag == 'a' &&& true", "CEL syntax error at line 1, column 20"),
        ("imgae.tag == 'x'", "unknown variable 'imgae' at line 1, column 1"),
        ("true &&\n  nope", "unknown variable 'nope' at line 2, column 3"),
        ("signatures.exists(s, t.kind == 'key')", "unknown variable 't'"),
        ("lower(image.tag) == 'x'", "unknown function 'lower'"),
        ("image.tag.toLower() == 'x'", "unknown function 'toLower'"),
        ("[1].map(1, 2) == [2]", "needs a variable name"),
        ("statement.predicateType == 'x'", "unknown variable 'statement'"),
        ("   ", "must not be empty"),
        ("true || " * 2000 + "true", "longer than"),
    ],
)
def test_compile_errors_are_policy_errors_with_position(expression: str, fragment: str) -> None:
    where = Where("p.yaml", 3, "spec.conditions[1].expression")
    with pytest.raises(PolicyError) as info:
        compile_condition(expression, where)
    err = info.value
    assert (err.file, err.document, err.field) == ("p.yaml", 3, "spec.conditions[1].expression")
    assert fragment in err.message


def test_macro_variables_are_scoped_and_type_names_allowed() -> None:
    c = compile_condition(
        "signatures.all(s, type(s.authority) == string) && [1, 2].map(x, x * 2) == [2, 4]"
    )
    assert c.variables == frozenset({"signatures"})
    assert evaluate(c, _activation()) is True


def test_statement_variable_for_attestation_conditions() -> None:
    c = compile_condition("size(statement.predicate.packages) > 1", variables=ATTESTATION_VARIABLES)
    act = _activation().with_statement({"predicate": {"packages": [1, 2]}})
    assert evaluate(c, act) is True
    assert evaluate(c, _activation().with_statement({"predicate": {"packages": []}})) is False


def test_with_statement_converts_only_the_statement() -> None:
    base = _activation()
    first = base.with_statement({"predicate": {"packages": [1, 2]}})
    second = first.with_statement({"predicate": {"packages": []}})
    for derived in (first, second):
        assert derived == replace(base, statement=derived.statement)
        for name, value in base.cel_values.items():
            if name != "statement":
                assert derived.cel_values[name] is value  # reused, not converted again
    assert first.cel_values["statement"] != second.cel_values["statement"]
    assert base.cel_values["statement"] is None
    c = compile_condition(
        'size(statement.predicate.packages) > 1 && image.tag == "v1.2"',
        variables=ATTESTATION_VARIABLES,
    )
    assert [evaluate(c, a) for a in (first, second)] == [True, False]
    # a value CEL cannot take still fails the evaluation, not the derivation
    bad = _activation(object={"x": object()}).with_statement({"predicate": {}})
    with pytest.raises(ConditionError, match="bad input"):
        evaluate(compile_condition("true"), bad)
    with pytest.raises(ConditionError, match="bad input"):
        evaluate(compile_condition("true"), base.with_statement({"x": b"bytes"}))


def test_compiled_once_evaluated_many_times() -> None:
    c = compile_condition('image.tag != "latest"')
    latest = _activation(image=image_variable(parse_image_ref("nginx")))
    assert [evaluate(c, a) for a in (_activation(), latest, _activation())] == [True, False, True]


def test_to_cel_refuses_non_json_values() -> None:
    with pytest.raises(TypeError):
        to_cel({"x": b"bytes"})
    with pytest.raises(TypeError):
        to_cel(datetime(2026, 1, 1))  # naive
    with pytest.raises(TypeError):
        to_cel({1: "non-string key"})
    with pytest.raises(ConditionError, match="bad input"):
        evaluate(compile_condition("true"), _activation(object={"x": object()}))


def test_image_variable() -> None:
    pinned = image_variable(parse_image_ref(f"nginx@{DIGEST}"), written=f"nginx@{DIGEST}")
    assert pinned == {
        "ref": f"nginx@{DIGEST}",
        "name": "docker.io/library/nginx",
        "registry": "docker.io",
        "repository": "library/nginx",
        "tag": "",
        "digest": DIGEST,
        "pinned": True,
    }


def test_join_accepts_strings_built_inside_the_list() -> None:
    cond = compile_condition('["a" + "b", "c"].join(",") == "ab,c"', Where("t.yaml", 1, "c"))
    assert evaluate(cond, _activation()) is True


@pytest.mark.parametrize(
    "expression, message",
    [
        ('1 + "a" == 2', "operator + cannot be applied to int and string"),
        ("provenance.level >= 3", "null does not support field selection"),
        ('int("x") == 1', "invalid literal for int() with base 10: 'x'"),
        ('signatures[0].authority == "x"', "list index out of range"),
        ("size(1) == 1", "object of type 'int' has no len()"),
    ],
)
def test_evaluation_errors_speak_cel_not_python(expression: str, message: str) -> None:
    cond = compile_condition(expression, Where("t.yaml", 1, "c"))
    activation = CelActivation(image={"tag": "x"}, provenance=None)
    with pytest.raises(ConditionError) as info:
        evaluate(cond, activation)
    assert message in str(info.value)
    assert "celpy" not in str(info.value) and "Token(" not in str(info.value)


def test_a_tag_resolved_by_reprogate_is_not_pinned() -> None:
    resolved = parse_image_ref("ghcr.io/acme/app:v1").with_digest(DIGEST)
    value = image_variable(resolved, DIGEST, written="ghcr.io/acme/app:v1")
    assert value["pinned"] is False and value["digest"] == DIGEST and value["tag"] == "v1"

"""CEL conditions (Common Expression Language, github.com/google/cel-spec) on cel-python.

Rules this module keeps:
- an expression is parsed and checked once, at policy load; evaluation reuses the program;
- at load, every top-level variable must be one of the documented activation variables and
  every function or method one that exists (built-in, macro or extension below): a typo is a
  load error with its line and column, not a silent ``false`` at admission time;
- a condition passes only when it evaluates to ``true``; an evaluation error or a result that is
  not a bool raises ConditionError (the engine turns it into a failed check, never a pass);
- input values reach CEL as CEL types (maps, lists, strings, ints, timestamps), converted here.

Extension functions added because cel-python 0.5 lacks them (Kubernetes CEL string/list
library semantics): ``s.split(sep[, n])``, ``s.lowerAscii()``, ``s.upperAscii()``,
``list.join([sep])``, ``s.replace(old, new[, n])``, ``s.trim()``, ``s.indexOf(sub[, from])``,
``s.lastIndexOf(sub[, from])``, ``s.substring(start[, end])``. ``timestamp()``, ``duration()``,
their arithmetic and comparisons are native to cel-python. ``==``/``!=`` are wrapped so that
any value compares with ``null`` (cel-python 0.5 refuses ``map != null``).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Final

import celpy
import celpy.celtypes as ct
import lark
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError, base_functions

from controller.oci.reference import ImageRef
from controller.policy.model import PolicyError

__all__ = [
    "ATTESTATION_VARIABLES",
    "POLICY_VARIABLES",
    "CelActivation",
    "CompiledCondition",
    "ConditionError",
    "Where",
    "compile_condition",
    "evaluate",
    "image_variable",
    "to_cel",
]

MAX_EXPRESSION_LEN: Final = 8192
_MAX_DEPTH: Final = 64

POLICY_VARIABLES: Final = frozenset(
    {
        "image",
        "signatures",
        "provenance",
        "attestations",
        "reproducibility",
        "vsa",
        "object",
        "namespace",
        "request",
        "now",
    }
)
# attestation conditions also see the one statement being checked
ATTESTATION_VARIABLES: Final = POLICY_VARIABLES | {"statement"}

# type names usable as identifiers, e.g. ``type(x) == string``
_TYPE_IDENTS: Final = frozenset(
    {"bool", "bytes", "double", "duration", "int", "list", "map", "null_type", "string"}
    | {"timestamp", "type", "uint"}
)
# macros bind their first argument(s) as local variables (``reduce`` binds two)
_MACROS: Final = {"all": 1, "exists": 1, "exists_one": 1, "map": 1, "filter": 1, "reduce": 2}


class ConditionError(Exception):
    """A condition could not be evaluated to a bool; ``str()`` says why, for the denial."""


@dataclass(frozen=True)
class Where:
    """Where an expression came from, so load errors name the file, document and field."""

    file: str = "<expression>"
    document: int | None = None
    field: str = "expression"

    def error(self, message: str) -> PolicyError:
        """A PolicyError at this place."""
        return PolicyError(self.file, self.document, self.field, message)


# --- extension functions ------------------------------------------------------------------


def _need(value: Any, kind: type, fn: str, what: str) -> None:
    if not isinstance(value, kind):
        name = "string" if kind is str else kind.__name__.removesuffix("Type").lower()
        raise TypeError(f"{fn}: {what} must be a {name}")


def _ext_split(s: Any, sep: Any, limit: Any = None) -> ct.ListType:
    _need(s, ct.StringType, "split", "receiver")
    _need(sep, ct.StringType, "split", "separator")
    if limit is not None:
        _need(limit, ct.IntType, "split", "limit")
    n = -1 if limit is None else int(limit)
    if n == 0:
        return ct.ListType([])
    if sep == "":
        chars = list(str(s))
        if n > 0 and len(chars) > n:
            chars = [*chars[: n - 1], "".join(chars[n - 1 :])]
        return ct.ListType([ct.StringType(c) for c in chars])
    parts = str(s).split(str(sep), n - 1 if n > 0 else -1)
    return ct.ListType([ct.StringType(p) for p in parts])


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _ext_lower_ascii(s: Any) -> ct.StringType:
    _need(s, ct.StringType, "lowerAscii", "receiver")
    return ct.StringType(str(s).translate(_ASCII_LOWER))


def _ext_upper_ascii(s: Any) -> ct.StringType:
    _need(s, ct.StringType, "upperAscii", "receiver")
    return ct.StringType(str(s).translate(_ASCII_UPPER))


def _ext_join(items: Any, sep: Any = None) -> ct.StringType:
    _need(items, ct.ListType, "join", "receiver")
    if sep is not None:
        _need(sep, ct.StringType, "join", "separator")
    for item in items:
        # str, not only StringType: a string built with "+" inside the list is a plain str
        _need(item, str, "join", "every list element")
    return ct.StringType(("" if sep is None else str(sep)).join(str(i) for i in items))


def _ext_replace(s: Any, old: Any, new: Any, limit: Any = None) -> ct.StringType:
    _need(s, ct.StringType, "replace", "receiver")
    _need(old, ct.StringType, "replace", "old")
    _need(new, ct.StringType, "replace", "new")
    if limit is not None:
        _need(limit, ct.IntType, "replace", "limit")
    n = -1 if limit is None or int(limit) < 0 else int(limit)
    return ct.StringType(str(s).replace(str(old), str(new), n))


def _ext_trim(s: Any) -> ct.StringType:
    _need(s, ct.StringType, "trim", "receiver")
    return ct.StringType(str(s).strip())


def _ext_index_of(s: Any, sub: Any, start: Any = None) -> ct.IntType:
    _need(s, ct.StringType, "indexOf", "receiver")
    _need(sub, ct.StringType, "indexOf", "substring")
    text = str(s)
    begin = 0
    if start is not None:
        _need(start, ct.IntType, "indexOf", "offset")
        begin = int(start)
        if begin < 0 or begin > len(text):
            raise IndexError(f"indexOf: offset {begin} out of range for length {len(text)}")
    return ct.IntType(text.find(str(sub), begin))


def _ext_last_index_of(s: Any, sub: Any, start: Any = None) -> ct.IntType:
    _need(s, ct.StringType, "lastIndexOf", "receiver")
    _need(sub, ct.StringType, "lastIndexOf", "substring")
    text = str(s)
    if start is None:
        return ct.IntType(text.rfind(str(sub)))
    _need(start, ct.IntType, "lastIndexOf", "offset")
    last = int(start)
    if last < 0 or last > len(text):
        raise IndexError(f"lastIndexOf: offset {last} out of range for length {len(text)}")
    # the match may start at ``last`` at the latest
    return ct.IntType(text.rfind(str(sub), 0, last + len(str(sub))))


def _ext_substring(s: Any, start: Any, end: Any = None) -> ct.StringType:
    _need(s, ct.StringType, "substring", "receiver")
    _need(start, ct.IntType, "substring", "start")
    text = str(s)
    b = int(start)
    if end is not None:
        _need(end, ct.IntType, "substring", "end")
    e = len(text) if end is None else int(end)
    if not 0 <= b <= e <= len(text):
        raise IndexError(f"substring: range [{b}, {e}) out of bounds for length {len(text)}")
    return ct.StringType(text[b:e])


_Ext = Callable[..., Any]


def _guard(name: str, fn: _Ext) -> _Ext:
    """Turn Python errors from an extension into a CEL error value with a readable message."""

    def call(*args: Any) -> Any:
        for a in args:
            if isinstance(a, CELEvalError):
                return a
        try:
            return fn(*args)
        except (TypeError, ValueError, IndexError) as exc:
            msg = str(exc)
            if "positional argument" in msg:
                msg = f"{name}: wrong number of arguments ({len(args) - 1})"
            return CELEvalError(msg, type(exc), exc.args)

    return call


_RAW_EXTENSIONS: Final[dict[str, _Ext]] = {
    "split": _ext_split,
    "lowerAscii": _ext_lower_ascii,
    "upperAscii": _ext_upper_ascii,
    "join": _ext_join,
    "replace": _ext_replace,
    "trim": _ext_trim,
    "indexOf": _ext_index_of,
    "lastIndexOf": _ext_last_index_of,
    "substring": _ext_substring,
}


def _null_eq(a: Any, b: Any) -> Any:
    # CEL compares anything with null; cel-python 0.5 raises "no overload" for map == null
    if a is None or b is None:
        return ct.BoolType(a is None and b is None)
    return base_functions["_==_"](a, b)


def _null_ne(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return ct.BoolType(not (a is None and b is None))
    return base_functions["_!=_"](a, b)


EXTENSIONS: Final[Mapping[str, _Ext]] = {
    **{n: _guard(n, f) for n, f in _RAW_EXTENSIONS.items()},
    "_==_": _null_eq,
    "_!=_": _null_ne,
}

_KNOWN_FUNCTIONS: Final = frozenset(base_functions) | frozenset(EXTENSIONS) | {"has"} | set(_MACROS)

# --- compiling -----------------------------------------------------------------------------


@functools.cache
def _env() -> celpy.Environment:
    # building cel-python's parser costs ~0.2 s: only policies with conditions pay it
    return celpy.Environment()


@dataclass(frozen=True)
class CompiledCondition:
    """A parsed and checked CEL expression, ready to evaluate any number of times."""

    expression: str
    variables: frozenset[str]  # top-level activation variables it reads
    program: Any = field(compare=False, repr=False)


def _position(token: lark.Token) -> str:
    return f"line {token.line}, column {token.column}"


def _check_names(tree: lark.Tree[Any], allowed: frozenset[str], where: Where) -> frozenset[str]:
    """Walk the AST: unknown variables and functions become load errors with their position."""
    used: set[str] = set()

    def ident_token(node: Any) -> lark.Token | None:
        # an expr that is just an identifier: expr > conditionalor > ... > primary > ident
        while isinstance(node, lark.Tree) and node.data != "ident":
            if len(node.children) != 1:
                return None
            node = node.children[0]
        if isinstance(node, lark.Tree) and node.data == "ident":
            tok = node.children[0]
            return tok if isinstance(tok, lark.Token) else None
        return None

    def walk(node: Any, local: frozenset[str]) -> None:
        if not isinstance(node, lark.Tree):
            return
        kind = node.data
        if kind == "ident":
            tok = node.children[0]
            assert isinstance(tok, lark.Token)
            name = str(tok)
            if name in local or name in _TYPE_IDENTS:
                return
            if name not in allowed:
                known = ", ".join(sorted(allowed))
                raise where.error(
                    f"unknown variable {name!r} at {_position(tok)} (known variables: {known})"
                )
            used.add(name)
            return
        if kind in ("ident_arg", "dot_ident_arg"):
            tok = node.children[0]
            assert isinstance(tok, lark.Token)
            if str(tok) not in _KNOWN_FUNCTIONS:
                raise where.error(f"unknown function {str(tok)!r} at {_position(tok)}")
            for child in node.children[1:]:
                walk(child, local)
            return
        if kind == "member_dot_arg":
            target, tok = node.children[0], node.children[1]
            assert isinstance(tok, lark.Token)
            name = str(tok)
            walk(target, local)
            args = node.children[2] if len(node.children) > 2 else None
            exprs = list(args.children) if isinstance(args, lark.Tree) else []
            binds = _MACROS.get(name, 0)
            if binds:
                bound: set[str] = set()
                for e in exprs[:binds]:
                    var = ident_token(e)
                    if var is None:
                        raise where.error(
                            f"{name}() needs a variable name as its first argument "
                            f"at {_position(tok)}"
                        )
                    bound.add(str(var))
                inner = local | bound
                for e in exprs[binds:]:
                    walk(e, inner)
                return
            if name not in _KNOWN_FUNCTIONS:
                raise where.error(f"unknown function {name!r} at {_position(tok)}")
            for e in exprs:
                walk(e, local)
            return
        for child in node.children:
            walk(child, local)

    walk(tree, frozenset())
    return frozenset(used)


def _syntax_message(expression: str, exc: CELParseError) -> str:
    line, column = exc.line, exc.column
    if line is None or column is None:
        return "CEL syntax error"
    lines = expression.splitlines() or [""]
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    near = text[column - 1 : column + 9] if 0 < column <= len(text) else ""
    what = f"unexpected {near!r}" if near else "unexpected end of expression"
    return f"CEL syntax error at line {line}, column {column}: {what}"


def compile_condition(
    expression: str,
    where: Where | None = None,
    *,
    variables: frozenset[str] = POLICY_VARIABLES,
) -> CompiledCondition:
    """Parse and check ``expression`` once.

    Raises PolicyError (located by ``where``) for an empty or oversized expression, a syntax
    error (with line and column), an unknown variable or an unknown function.
    """
    where = where or Where()
    if not expression.strip():
        raise where.error("expression must not be empty")
    if len(expression) > MAX_EXPRESSION_LEN:
        raise where.error(f"expression longer than {MAX_EXPRESSION_LEN} characters")
    try:
        tree = _env().compile(expression)
    except CELParseError as exc:
        raise where.error(_syntax_message(expression, exc)) from None
    except RecursionError:
        raise where.error("expression is nested too deeply") from None
    used = _check_names(tree, variables, where)
    program = _env().program(tree, functions=dict(EXTENSIONS))
    return CompiledCondition(expression=expression, variables=used, program=program)


# --- activation ----------------------------------------------------------------------------


def to_cel(value: Any, _depth: int = 0) -> Any:
    """Convert JSON-like Python data (plus datetime/timedelta) to CEL values.

    Mappings become maps with string keys, sequences lists, aware datetimes timestamps and
    timedeltas durations. Raises TypeError for anything else (bytes, objects, NaN).
    """
    if isinstance(value, (ct.MapType, ct.ListType)):
        return value  # already converted (the admitted object is converted once per request)
    if _depth > _MAX_DEPTH:
        raise TypeError(f"value nested deeper than {_MAX_DEPTH} levels")
    if value is None:
        return None
    if isinstance(value, bool):
        return ct.BoolType(value)
    if isinstance(value, int):
        return ct.IntType(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise TypeError("NaN and infinity are not allowed")
        return ct.DoubleType(value)
    if isinstance(value, str):
        return ct.StringType(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError("timestamps must be timezone-aware")
        return ct.TimestampType(value)
    if isinstance(value, timedelta):
        return ct.DurationType(value)
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"map keys must be strings, got {type(k).__name__}")
            out[ct.StringType(k)] = to_cel(v, _depth + 1)
        return ct.MapType(out)
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return ct.ListType([to_cel(v, _depth + 1) for v in value])
    raise TypeError(f"cannot give a {type(value).__name__} to CEL")


@dataclass(frozen=True)
class CelActivation:
    """The variables a condition sees (documented in docs/policies.md, "CEL reference").

    All values are JSON-like (mappings, sequences, str, int, float, bool, None) plus aware
    datetimes. ``statement`` is set only while evaluating an attestation's conditions.
    """

    image: Mapping[str, Any]  # see image_variable()
    signatures: Sequence[Mapping[str, Any]] = ()  # {authority, kind, subject, issuer, keyId}
    provenance: Mapping[str, Any] | None = None
    attestations: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    reproducibility: Mapping[str, Any] = field(
        default_factory=lambda: {
            "independentBuilds": 0,
            "builders": [],
            "builds": [],
            "reproduced": False,
            "mismatches": [],
        }
    )
    vsa: Mapping[str, Any] = field(
        default_factory=lambda: {
            "verifiers": [],
            "levels": [],
            "buildLevel": 0,
            "reproduced": False,
            "properties": [],
        }
    )
    object: Mapping[str, Any] = field(default_factory=dict)
    namespace: str = ""
    request: Mapping[str, Any] = field(
        default_factory=lambda: {"user": "", "groups": [], "operation": ""}
    )
    now: datetime = field(default_factory=lambda: datetime.now().astimezone())
    statement: Mapping[str, Any] | None = None
    # The activation this one was made from by with_statement: everything but ``statement``
    # is taken from its (once) converted values.
    _base: CelActivation | None = field(default=None, init=False, repr=False, compare=False)

    @cached_property
    def cel_values(self) -> dict[str, Any]:
        """The variables converted to CEL types, once per activation (and only ``statement``
        for one made by :meth:`with_statement`)."""
        if self._base is not None:
            return {**self._base.cel_values, "statement": to_cel(self.statement)}
        values = {
            "image": self.image,
            "signatures": self.signatures,
            "provenance": self.provenance,
            "attestations": self.attestations,
            "reproducibility": self.reproducibility,
            "vsa": self.vsa,
            "object": self.object,
            "namespace": self.namespace,
            "request": self.request,
            "now": self.now,
            "statement": self.statement,
        }
        return {k: to_cel(v) for k, v in values.items()}

    def with_statement(self, statement: Mapping[str, Any]) -> CelActivation:
        """The same activation with ``statement`` set (for attestation conditions); the other
        variables are not converted again."""
        derived = replace(self, statement=statement)
        object.__setattr__(derived, "_base", self._base or self)
        return derived


def image_variable(
    ref: ImageRef, digest: str | None = None, written: str | None = None
) -> dict[str, Any]:
    """The ``image`` variable for ``ref`` (resolved to ``digest``; ``written`` as in the pod).

    Keys: ref, name, registry, repository, tag ("" when none), digest ("" when unknown) and
    pinned (true when the reference as written carried a digest).
    """
    return {
        "ref": written or str(ref),
        "name": ref.name,
        "registry": ref.registry,
        "repository": ref.repository,
        "tag": ref.tag or "",
        "digest": digest or ref.digest or "",
        # as written: a tag reference we resolved to ``digest`` is not pinned
        "pinned": "@" in written if written is not None else ref.digest is not None,
    }


_ACTIVATION_NOISE = re.compile(r"\s*\(in activation .*\Z", re.DOTALL)


_CEL_TYPE = re.compile(r"<class 'celpy\.celtypes\.(\w+?)Type'>")
_OPERATORS = {
    "addition_add": "+", "addition_sub": "-", "multiplication_mul": "*",
    "multiplication_div": "/", "multiplication_mod": "%", "relation_lt": "<",
    "relation_le": "<=", "relation_gt": ">", "relation_ge": ">=", "relation_in": "in",
}  # fmt: skip


def _error_text(exc: BaseException) -> str:
    """cel-python's error, in CEL's words rather than Python's."""
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    text = _ACTIVATION_NOISE.sub("", text)
    cause = exc.args[2] if len(exc.args) > 2 else None
    if text in ("return error for overflow", "no such overload", "invalid_argument") and cause:
        text = f"{', '.join(str(c) for c in cause)}"
    op = re.search(r"Token\('RULE', '(\w+)'\)", text)
    if op:
        types = _CEL_TYPE.findall(text)
        symbol = _OPERATORS.get(op.group(1), op.group(1))
        text = f"operator {symbol} cannot be applied to {' and '.join(t.lower() for t in types)}"
    text = text.replace("None with type: '<class 'NoneType'>'", "null")
    text = _CEL_TYPE.sub(lambda m: m.group(1).lower(), text)
    text = re.sub(r"StringType\(('.*?')\)", r"\1", text)
    text = re.sub(r"'(\w+?)Type'", lambda m: repr(m.group(1).lower()), text)
    return text[:500]


def evaluate(cond: CompiledCondition, activation: CelActivation) -> bool:
    """Evaluate ``cond``; True only when it yields the bool ``true``.

    Raises ConditionError when evaluation fails (missing field, wrong types, bad argument) or
    the result is not a bool; the message is fit for a denial reason.
    """
    try:
        result = cond.program.evaluate(activation.cel_values)
    except CELEvalError as exc:
        raise ConditionError(f"evaluation error: {_error_text(exc)}") from None
    except TypeError as exc:
        raise ConditionError(f"bad input to CEL: {exc}") from None
    except RecursionError:
        raise ConditionError("evaluation error: nested too deeply") from None
    except Exception as exc:  # a cel-python defect must fail the check, not the admission
        raise ConditionError(f"evaluation error: {type(exc).__name__}: {exc}") from None
    if isinstance(result, (ct.BoolType, bool)):
        return bool(result)
    kind = type(result).__name__.removesuffix("Type").lower() if result is not None else "null"
    article = "an" if kind[:1] in "aeiou" else "a"
    raise ConditionError(f"expression returned {article} {kind}, not a bool")

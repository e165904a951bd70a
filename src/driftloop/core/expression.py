"""A small, safe expression language over a row's features: what a model's rules
fallback (``[models.<name>.fallback] rules``) is written in.

It is a subset of Python expressions, parsed with :mod:`ast` and checked against a
whitelist before it is compiled (once) and evaluated with no builtins: numbers, text and
``True``/``False``; feature names; ``+ - * / // % **`` and unary ``-``/``+``;
comparisons, chained ones too, and ``in``/``not in`` a list or tuple of constants;
``and``/``or``/``not``; ``a if c else b``; and the functions ``min``, ``max``, ``abs``,
``isnull(x)`` and ``coalesce(x, default, ...)``. Anything else (attributes, indexing,
lambdas, comprehensions, other calls, names with double underscores) is refused with
what it is and where.

A missing value (``None`` or NaN) compares false with anything (``!=`` and ``in`` too),
spreads through arithmetic, ``min``, ``max`` and ``abs`` as NaN, and cannot be a
condition (the evaluation fails): test it with ``isnull`` or replace it with
``coalesce``. ``and``/``or``/``not`` give booleans.

>>> rule = Expression.parse("0.9 if amount > 2000 or tx_count_1h > 5 else 0.05")
>>> rule.names
('amount', 'tx_count_1h')
>>> rule.evaluate({"amount": 2500.0, "tx_count_1h": float("nan")})
0.9
>>> rule.evaluate({"amount": float("nan"), "tx_count_1h": 1.0})
0.05
>>> Expression.parse("amount.real")
Traceback (most recent call last):
...
driftloop.core.errors.InvalidParameterError: attribute access is not allowed: `amount.real`...
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from types import CodeType
from typing import Any

from driftloop.core.errors import InvalidParameterError

__all__ = ["FUNCTIONS", "Expression", "MissingConditionError", "is_missing"]

FUNCTIONS = ("min", "max", "abs", "isnull", "coalesce")
"""The functions an expression may call."""
_ARITY = {
    "min": (2, None),
    "max": (2, None),
    "abs": (1, 1),
    "isnull": (1, 1),
    "coalesce": (2, None),
}
_MAX_LENGTH = 10_000

_BINARY = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
_UNARY = (ast.USub, ast.UAdd, ast.Not)
_COMPARE = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
_DESCRIBED = {
    ast.Attribute: "attribute access",
    ast.Subscript: "indexing",
    ast.Slice: "slicing",
    ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.NamedExpr: "assignment (:=)",
    ast.JoinedStr: "an f-string",
    ast.Starred: "unpacking (*)",
    ast.Dict: "a dict",
    ast.Set: "a set",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}
ALLOWED = (
    "numbers, text, True/False, feature names, + - * / // % **, comparisons (also "
    "in/not in a list of constants), and/or/not, `a if c else b`, and the functions "
    + ", ".join(FUNCTIONS)
)


class MissingConditionError(ValueError):
    """A missing value was used as a condition (``if``, ``and``, ``or``, ``not``)."""


def is_missing(value: Any) -> bool:
    """``None`` or a float NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class Expression:
    """A checked, compiled expression; build with :meth:`parse`."""

    source: str
    names: tuple[str, ...]
    """The feature names it reads, in first-use order."""
    _code: CodeType = field(repr=False, compare=False)

    @classmethod
    def parse(
        cls, source: str, *, names: Collection[str] | None = None, filename: str = "<rules>"
    ) -> Expression:
        """Check ``source`` (against the feature ``names`` too, when given) and compile it.

        Raises :class:`~driftloop.core.errors.InvalidParameterError` naming the construct
        or name refused and what is allowed (its message ends without a full stop, so a
        caller can put it after a key).
        """
        if len(source) > _MAX_LENGTH:
            raise InvalidParameterError(
                f"the expression is {len(source)} characters long; at most {_MAX_LENGTH}"
            )
        try:
            tree = ast.parse(source.strip(), mode="eval")
        except SyntaxError as exc:
            where = f" at column {exc.offset}" if exc.offset else ""
            raise InvalidParameterError(
                f"the expression is not valid: {exc.msg}{where} in `{source.strip()}`"
            ) from None
        except (RecursionError, MemoryError, ValueError) as exc:
            raise InvalidParameterError(f"the expression cannot be read: {exc}") from None
        used = _Checker(source.strip(), names).check(tree)
        code = compile(ast.fix_missing_locations(_Rewriter().visit(tree)), filename, "eval")
        return cls(source, used, code)

    def evaluate(self, row: Mapping[str, Any]) -> Any:
        """The value for one row (``row`` maps at least :attr:`names` to values).

        Raises whatever the expression raises (``ZeroDivisionError``, ``TypeError``,
        :class:`MissingConditionError`, ...): the caller decides what a failed row gets.
        """
        scope = {name: row[name] for name in self.names}
        return eval(self._code, _GLOBALS, scope)  # checked above; no builtins


class _Checker:
    """Walks a parsed expression; refuses any node outside the whitelist."""

    def __init__(self, source: str, names: Collection[str] | None) -> None:
        self.source = source
        self.known = None if names is None else frozenset(names)
        self.features = "" if names is None else ", ".join(names)
        self.used: dict[str, None] = {}

    def check(self, tree: ast.Expression) -> tuple[str, ...]:
        self._visit(tree.body)
        return tuple(self.used)

    def _refuse(self, what: str, node: ast.AST) -> InvalidParameterError:
        segment = ast.get_source_segment(self.source, node) or self.source
        features = f". Features: {self.features}" if self.known is not None else ""
        return InvalidParameterError(
            f"{what} is not allowed: `{segment}`. Expressions may use {ALLOWED}{features}"
        )

    def _unknown(self, name: str) -> InvalidParameterError:
        hint = ""
        if name.lower() in ("true", "false"):
            hint = f" (write {name.capitalize()})"
        elif name.lower() in ("none", "null", "nan"):
            hint = " (test a missing value with isnull(x))"
        return InvalidParameterError(
            f"'{name}' is not a feature of the model{hint}. Features: {self.features}"
        )

    def _visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool | int | float | str):
                return
            raise self._refuse(
                f"the constant {node.value!r}"
                + (" (test a missing value with isnull(x))" if node.value is None else ""),
                node,
            )
        if isinstance(node, ast.Name):
            self._name(node)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, _BINARY):
            self._visit(node.left)
            self._visit(node.right)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, _UNARY):
            self._visit(node.operand)
        elif isinstance(node, ast.BoolOp):
            for value in node.values:
                self._visit(value)
        elif isinstance(node, ast.IfExp):
            for part in (node.test, node.body, node.orelse):
                self._visit(part)
        elif isinstance(node, ast.Compare):
            self._compare(node)
        elif isinstance(node, ast.Call):
            self._call(node)
        elif isinstance(node, ast.BinOp | ast.UnaryOp):
            raise self._refuse("the operator " + type(node.op).__name__, node)
        elif isinstance(node, ast.List | ast.Tuple):
            raise self._refuse("a list or tuple (except after in / not in)", node)
        else:
            raise self._refuse(_DESCRIBED.get(type(node), type(node).__name__), node)

    def _name(self, node: ast.Name) -> None:
        name = node.id
        if name.startswith("__"):
            raise self._refuse(f"the name '{name}' (double underscore)", node)
        if name in FUNCTIONS:
            raise self._refuse(f"'{name}' as a value (call it: {name}(...))", node)
        if self.known is not None and name not in self.known:
            raise self._unknown(name)
        self.used[name] = None

    def _compare(self, node: ast.Compare) -> None:
        self._visit(node.left)
        for op, right in zip(node.ops, node.comparators, strict=True):
            if type(op) not in _COMPARE:
                hint = " (test a missing value with isnull(x))" if "Is" in type(op).__name__ else ""
                raise self._refuse(f"the comparison {type(op).__name__}{hint}", node)
            if isinstance(op, ast.In | ast.NotIn):
                if not isinstance(right, ast.List | ast.Tuple) or not all(
                    _is_constant(item) for item in right.elts
                ):
                    raise self._refuse("in / not in other than a list of constants", right)
            else:
                self._visit(right)

    def _call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else None
        if name not in _ARITY:
            called = name or ast.get_source_segment(self.source, func) or "?"
            raise self._refuse(
                f"a call of '{called}' (only {', '.join(FUNCTIONS)} can be called)", node
            )
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise self._refuse(f"keyword or * arguments to {name}", node)
        low, high = _ARITY[name]
        if len(node.args) < low or (high is not None and len(node.args) > high):
            takes = f"{low}" if low == high else f"at least {low}"
            raise self._refuse(f"{name} with {len(node.args)} argument(s) (it takes {takes})", node)
        for arg in node.args:
            self._visit(arg)


def _is_constant(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        node = node.operand
        return isinstance(node, ast.Constant) and isinstance(node.value, int | float)
    return isinstance(node, ast.Constant) and isinstance(node.value, bool | int | float | str)


class _Rewriter(ast.NodeTransformer):
    """Gives checked expressions driftloop's semantics: numbers are floats (no huge
    integers), comparisons and functions know missing values, conditions refuse them."""

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, int) and not isinstance(node.value, bool):
            return ast.copy_location(ast.Constant(float(node.value)), node)
        return node

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        ops = ast.Constant(",".join(_COMPARE[type(op)] for op in node.ops))
        operands = [node.left, *(_as_tuple(c) for c in node.comparators)]
        return ast.copy_location(_call("compare", ops, *operands), node)

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        node.values = [_call("truth", value) for value in node.values]
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            node.operand = _call("truth", node.operand)
        return node

    def visit_IfExp(self, node: ast.IfExp) -> ast.AST:
        self.generic_visit(node)
        node.test = _call("truth", node.test)
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        assert isinstance(node.func, ast.Name)  # the checker allows no other calls
        return ast.copy_location(_call(node.func.id, *node.args), node)


def _call(helper: str, *args: ast.expr) -> ast.Call:
    return ast.Call(ast.Name(f"__dl_{helper}__", ast.Load()), list(args), [])


def _as_tuple(node: ast.expr) -> ast.expr:
    return ast.Tuple(node.elts, ast.Load()) if isinstance(node, ast.List) else node


def _compare(ops: str, *operands: Any) -> bool:
    for op, left, right in zip(ops.split(","), operands, operands[1:], strict=False):
        if is_missing(left) or is_missing(right) or not _OPS[op](left, right):
            return False
    return True


def _truth(value: Any) -> bool:
    if is_missing(value):
        raise MissingConditionError(
            "a missing value was used as a condition (test it with isnull(x))"
        )
    return bool(value)


def _spread_missing(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any) -> Any:
        return math.nan if any(is_missing(a) for a in args) else fn(*args)

    return wrapped


def _coalesce(*args: Any) -> Any:
    return next((a for a in args if not is_missing(a)), math.nan)


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: bool(a == b),
    "!=": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}
_GLOBALS: dict[str, Any] = {
    "__builtins__": {},
    "__dl_compare__": _compare,
    "__dl_truth__": _truth,
    "__dl_min__": _spread_missing(min),
    "__dl_max__": _spread_missing(max),
    "__dl_abs__": _spread_missing(abs),
    "__dl_isnull__": is_missing,
    "__dl_coalesce__": _coalesce,
}

"""Conditional routing queries, compiled once per config into plain predicates.

A query is a Mongo-like object over the request's routing document
``{"metadata": {...}, "params": {...}, "url": {"pathname": "..."}}``. Keys are dotted paths of
any depth (``metadata.user.plan``, ``params.response_format.type``); values are a literal
(equality) or an object of operators: ``$eq $ne $gt $gte $lt $lte $in $nin $regex $exists``;
``$and`` / ``$or`` take lists of queries.

Two fixes over Portkey's ``conditionalRouter.ts``: every key of a query must hold (Portkey lets a
``$and``/``$or`` key decide alone and ignores its siblings, and stops at ``$regex``), and paths
resolve to any depth (Portkey resolves only ``<root>.<field>``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from fastgate.errors import bad_request

Predicate = Callable[[Mapping[str, Any]], bool]
ROOTS = frozenset({"metadata", "params", "url"})
_MISSING = object()


def resolve(doc: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at ``path`` (list items by index), or ``_MISSING``."""
    value: Any = doc
    for part in path:
        if isinstance(value, Mapping):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def _number(value: Any) -> float | None:
    # Portkey compares with parseFloat on both sides, so "5" and 5 compare as numbers.
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return None if math.isnan(number) else number
    return None


def _compare(op: str, operand: Any, where: str) -> Callable[[Any], bool]:
    bound = _number(operand)
    if bound is None:
        raise bad_request(f"Invalid config passed: {where}: {op} needs a number", param=where)
    tests: dict[str, Callable[[float], bool]] = {
        "$gt": lambda n: n > bound,
        "$gte": lambda n: n >= bound,
        "$lt": lambda n: n < bound,
        "$lte": lambda n: n <= bound,
    }
    test = tests[op]

    def check(value: Any) -> bool:
        number = _number(value)
        return number is not None and test(number)

    return check


def _operator(op: str, operand: Any, where: str) -> Callable[[Any], bool]:
    """A test of one resolved value (``_MISSING`` when the path is absent)."""
    if op == "$eq":
        return lambda v: v is not _MISSING and v == operand
    if op == "$ne":
        return lambda v: v is _MISSING or v != operand
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return _compare(op, operand, where)
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise bad_request(f"Invalid config passed: {where}: {op} needs a list", param=where)
        hashable = all(isinstance(x, str | int | float | bool) or x is None for x in operand)
        members: Any = frozenset(operand) if hashable else operand
        if op == "$in":
            return lambda v: v is not _MISSING and _member(v, members)
        return lambda v: v is _MISSING or not _member(v, members)
    if op == "$regex":
        if not isinstance(operand, str):
            raise bad_request(f"Invalid config passed: {where}: $regex needs a string", param=where)
        try:
            pattern = re.compile(operand)
        except re.error as exc:
            raise bad_request(f"Invalid config passed: {where}: bad $regex ({exc})", param=where) from None
        return lambda v: isinstance(v, str) and pattern.search(v) is not None
    if op == "$exists":
        if not isinstance(operand, bool):
            raise bad_request(f"Invalid config passed: {where}: $exists needs true or false", param=where)
        return (lambda v: v is not _MISSING) if operand else (lambda v: v is _MISSING)
    raise bad_request(f"Invalid config passed: {where}: unsupported operator {op}", param=where)


def _member(value: Any, members: Any) -> bool:
    try:
        return value in members
    except TypeError:  # an unhashable value (a list or object) against a set of scalars
        return False


def _field(key: str, spec: Any, where: str) -> Predicate:
    path = tuple(key.split("."))
    if path[0] not in ROOTS or len(path) < 2 or not all(path):
        raise bad_request(
            f"Invalid config passed: {where}: query keys are metadata.*, params.* or url.pathname",
            param=where,
        )
    if isinstance(spec, dict) and spec and all(isinstance(k, str) and k.startswith("$") for k in spec):
        tests = [_operator(op, operand, f"{where}.{op}") for op, operand in spec.items()]
    elif isinstance(spec, dict) and any(isinstance(k, str) and k.startswith("$") for k in spec):
        raise bad_request(f"Invalid config passed: {where}: operators and plain keys mixed", param=where)
    else:
        tests = [_operator("$eq", spec, where)]
    if len(tests) == 1:
        test = tests[0]
        return lambda doc: test(resolve(doc, path))
    return lambda doc: all(t(v) for v in (resolve(doc, path),) for t in tests)


def _all_of(predicates: list[Predicate]) -> Predicate:
    return lambda doc: all(p(doc) for p in predicates)


def _any_of(predicates: list[Predicate]) -> Predicate:
    return lambda doc: any(p(doc) for p in predicates)


def compile_query(query: Any, where: str) -> Predicate:
    """A predicate over the routing document; a bad query is a 400 naming ``where``."""
    if not isinstance(query, dict):
        raise bad_request(f"Invalid config passed: {where} must be an object", param=where)
    parts: list[Predicate] = []
    for key, spec in query.items():
        here = f"{where}.{key}"
        if key in ("$and", "$or"):
            if not isinstance(spec, list) or not spec:
                raise bad_request(f"Invalid config passed: {here} needs a non-empty list", param=here)
            subs = [compile_query(q, f"{here}[{i}]") for i, q in enumerate(spec)]
            parts.append(_all_of(subs) if key == "$and" else _any_of(subs))
        elif key.startswith("$"):
            raise bad_request(f"Invalid config passed: {here}: unsupported operator {key}", param=here)
        else:
            parts.append(_field(key, spec, here))
    return parts[0] if len(parts) == 1 else _all_of(parts)


def query_roots(query: Any) -> set[str]:
    """Which roots (``metadata``, ``params``, ``url``) a compiled-valid query reads."""
    roots: set[str] = set()
    if isinstance(query, dict):
        for key, spec in query.items():
            if key in ("$and", "$or") and isinstance(spec, list):
                for sub in spec:
                    roots |= query_roots(sub)
            elif isinstance(key, str):
                roots.add(key.split(".", 1)[0])
    return roots

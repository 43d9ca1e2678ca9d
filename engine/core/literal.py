"""Read the printed form of a Python call such as `NAME = Genotype(normal=[...], ...)` as data, never as code.

People paste genotypes from the reference's logs and genotypes.py; `eval` on pasted text would run
anything (`__import__('os').system(...)`). This walks the `ast` instead and accepts only literal nodes:
strings, integers, lists and tuples of them, and `range(a, b)` (the reference writes concat that way).
"""

from __future__ import annotations

import ast
from typing import Any

__all__ = ["read_call"]

_MAX_CHARS = 100_000  # a genotype is a few hundred characters; this keeps ast.parse cheap on pasted junk
_MAX_RANGE = 64       # range() only ever lists node indices here, never builds a huge list


def read_call(text: str, func: str) -> dict[str, Any]:
    """The keyword arguments of `[NAME =] func(key=literal, ...)` as a dict; a ValueError for anything else."""
    if len(text) > _MAX_CHARS:
        raise ValueError(f"text is {len(text)} characters; a {func}(...) is a few hundred")
    try:
        body = ast.parse(text, mode="exec").body
    except (SyntaxError, RecursionError, MemoryError, ValueError) as e:
        raise ValueError(f"text is neither JSON nor {func}(...) text ({type(e).__name__}: {e})") from None
    stmt = body[0] if len(body) == 1 else None
    named = isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
    value = stmt.value if isinstance(stmt, ast.Expr) or named else None
    if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == func):
        raise ValueError(f"expected `{func}(key=value, ...)` (optionally `NAME = ` before it), got {_snippet(text)}")
    if value.args or any(k.arg is None for k in value.keywords):
        raise ValueError(f"{func}(...) takes named fields only, as it is printed (key=value, ...)")
    data: dict[str, Any] = {}
    for kw in value.keywords:
        if kw.arg in data:
            raise ValueError(f"{func}(...) gives {kw.arg} twice")
        try:
            data[kw.arg] = _literal(kw.value)
        except RecursionError:
            raise ValueError(f"{kw.arg} is nested too deeply to be a plain literal") from None
    return data


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (str, int):  # not bool, float, bytes, None
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range" \
            and not node.keywords and 1 <= len(node.args) <= 2:
        bounds = [_literal(a) for a in node.args]
        if all(type(b) is int for b in bounds) and 0 <= bounds[-1] <= _MAX_RANGE:
            return list(range(*bounds))
    raise ValueError(f"not a plain literal: {_snippet(ast.unparse(node))} (only strings, integers, lists, "
                     f"tuples and range(a, b) are read; nothing is evaluated)")


def _snippet(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")

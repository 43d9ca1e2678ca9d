"""A small mutation check: change one token of one module at a time and see whether the chosen tests notice.

    python bench/mutation.py MODULE [--lines A-B] [--max N] [--timeout-factor F] [--json OUT] -- PYTEST_ARGS...

    python bench/mutation.py engine/runs/control.py -- tests/test_control.py tests/test_hostile_files.py -k step

Each mutant is the module with one token replaced (a comparison flipped: < <=, > >=, == !=; an arithmetic
operator swapped: + -, * /, // /; and <-> or; True <-> False; `not` dropped; an integer n -> n + 1, a float
x -> 2x); a mutant that does not compile is not counted. The repository (without .venv, .git and runs/) is
copied once to a temporary folder and every mutant is written and tested there, so the working tree is never
touched and other work on it can go on. The tests run with `python -m pytest -x -q` in that copy, one mutant
at a time; a mutant is

    killed    the tests failed (or errored),
    survived  they passed: no test notices that change (a missing test, or a change that does not matter),
    timeout   they ran past --timeout-factor times the unmutated run (a mutant that loops forever).

The unmutated module must pass first. Lines are numbered as in the module; the report lists every survivor
with its line, so a contributor can decide whether it needs a test. docs/testing.md lists what was checked.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tokenize
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_SKIP_TOP = {".venv", ".git", "runs", "test-artifacts", "mutants"}  # at the root only: engine/runs is code
_SKIP_ANY = {"__pycache__", ".pytest_cache", ".ruff_cache"}

_OPS = {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "==", "+": "-", "-": "+", "*": "/",
        "/": "*", "//": "/", "+=": "-=", "-=": "+="}
_NAMES = {"and": "or", "or": "and", "True": "False", "False": "True"}


@dataclass(frozen=True)
class Mutant:
    line: int
    col: int
    old: str
    new: str
    outcome: str = ""
    seconds: float = 0.0


def _number(text: str) -> str | None:
    try:
        value = int(text, 0)
        return str(value + 1)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None  # complex literals and the like: left alone
    return repr(2 * value) if value else "1.0"


def mutants(source: str, lines: range | None = None) -> list[Mutant]:
    """Every one-token mutant of `source` (on `lines` if given) that still compiles."""
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        line, col = tok.start
        if lines is not None and line not in lines:
            continue
        new = None
        if tok.type == tokenize.OP and tok.string in _OPS:
            new = _OPS[tok.string]
        elif tok.type == tokenize.NAME and tok.string in _NAMES:
            new = _NAMES[tok.string]
        elif tok.type == tokenize.NAME and tok.string == "not":
            new = ""
        elif tok.type == tokenize.NUMBER:
            new = _number(tok.string)
        if new is None:
            continue
        m = Mutant(line, col, tok.string, new)
        try:
            compile(apply(source, m), "<mutant>", "exec")
        except SyntaxError:
            continue  # e.g. `*` of a signature turned into `/`
        found.append(m)
    return found


def apply(source: str, m: Mutant) -> str:
    rows = source.splitlines(keepends=True)
    row = rows[m.line - 1]
    assert row[m.col:m.col + len(m.old)] == m.old, (m, row)
    end = m.col + len(m.old)
    if m.new == "" and row[end:end + 1] == " ":  # `not x` -> `x`
        end += 1
    rows[m.line - 1] = row[:m.col] + m.new + row[end:]
    return "".join(rows)


def _copy_repo() -> Path:
    dst = Path(tempfile.mkdtemp(prefix="dartboard-mutation-")) / "repo"
    def skip(folder: str, names: list[str]) -> list[str]:
        top = Path(folder) == ROOT
        return [n for n in names if n in _SKIP_ANY or (top and n in _SKIP_TOP)]

    shutil.copytree(ROOT, dst, ignore=skip)
    return dst


def _run_tests(repo: Path, tests: list[str], timeout: float) -> tuple[str, float, str]:
    """(outcome, seconds, the last lines pytest printed)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests], cwd=repo,
                           env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - t0, ""
    tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-15:])
    return ("survived" if p.returncode == 0 else "killed"), time.perf_counter() - t0, tail


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("module", help="the module to mutate, relative to the repository root")
    ap.add_argument("tests", nargs="+", help="pytest arguments: test files, ::names, -k EXPR")
    ap.add_argument("--lines", help="only lines A-B of the module")
    ap.add_argument("--max", type=int, default=0, help="at most N mutants, spread evenly over the module (0: all)")
    ap.add_argument("--timeout-factor", type=float, default=4.0)
    ap.add_argument("--json", help="also write the outcomes as JSON to this file")
    args = ap.parse_args(argv)

    module = Path(args.module)
    source = (ROOT / module).read_text(encoding="utf-8")
    lines = None
    if args.lines:
        a, _, b = args.lines.partition("-")
        lines = range(int(a), int(b or a) + 1)
    todo = mutants(source, lines)
    if args.max and len(todo) > args.max:
        todo = [todo[round(i * (len(todo) - 1) / (args.max - 1))] for i in range(args.max)] if args.max > 1 \
            else todo[:1]
    repo = _copy_repo()
    try:
        outcome, base, tail = _run_tests(repo, args.tests, timeout=600)
        if outcome != "survived":
            print(f"{tail}\nthe unmutated module does not pass {' '.join(args.tests)} ({outcome}); nothing to measure",
                  file=sys.stderr)
            return 2
        print(f"{module}: {len(todo)} mutants; the tests take {base:.1f} s unmutated", flush=True)
        target = repo / module
        done = []
        for i, m in enumerate(todo, 1):
            target.write_text(apply(source, m), encoding="utf-8")
            try:
                outcome, secs, _ = _run_tests(repo, args.tests, timeout=max(args.timeout_factor * base, 10.0))
            finally:
                target.write_text(source, encoding="utf-8")
            done.append(Mutant(m.line, m.col, m.old, m.new, outcome, round(secs, 2)))
            print(f"[{i}/{len(todo)}] line {m.line}:{m.col} {m.old!r} -> {m.new!r}: {outcome}", flush=True)
    finally:
        shutil.rmtree(repo.parent, ignore_errors=True)
    counts = {k: sum(m.outcome == k for m in done) for k in ("killed", "survived", "timeout")}
    print(f"\n{module}: {counts['killed']} killed, {counts['survived']} survived, {counts['timeout']} timed out "
          f"of {len(done)}")
    rows = source.splitlines()
    for m in done:
        if m.outcome == "survived":
            print(f"  survived  line {m.line}: {m.old!r} -> {m.new!r}   {rows[m.line - 1].strip()[:90]}")
    if args.json:
        Path(args.json).write_text(json.dumps({"module": str(module), "tests": args.tests, "counts": counts,
                                               "mutants": [asdict(m) for m in done]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

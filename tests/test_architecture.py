"""The package map holds: no import circles, dependencies run one way, torch-free packages stay torch-free.

Every `import` and `from ... import` in engine/ and app/ counts, also one inside a function: a lazy import
keeps torch off a path, but it is still a dependency, and a circle of them is still a circle.
docs/architecture.md draws the same map.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What each package of the engine may import (besides itself). Read from the bottom up: a package sees only
# the ones it is built on. `engine` (the lazy public names, python -m engine) and the command line see all.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "space": {"core"},
    "variants": {"core", "space"},
    "runtime": {"core"},
    "datasets": {"core"},
    "nn": {"core", "space", "variants", "runtime"},
    "runs": {"core", "space", "variants", "runtime", "nn"},
    "search": {"core", "space", "variants", "runtime", "nn", "datasets", "runs"},
    "train": {"core", "space", "variants", "runtime", "nn", "datasets", "runs"},
    "derive": {"core", "space", "variants", "runtime", "nn", "datasets", "runs", "search", "train"},
    "sweep": {"core", "space", "variants", "runtime", "runs", "search", "train"},
    "jobs": {"core", "space", "variants", "runtime", "runs", "search", "train", "derive"},
    "cli": {"core", "space", "variants", "runtime", "nn", "datasets", "runs", "search", "train", "derive", "sweep",
            "jobs"},
}
# The dashboard reads runs, configs and figures' data; it builds no networks and runs no step itself.
APP_FORBIDDEN = {"nn", "search.loop", "search.step", "search.architect", "train.loop", "train.step", "cli"}
# Importable with torch blocked: what reading configs, genotypes and run directories needs, and every page of the
# dashboard (torch loads with the first job or the first figure that needs it, not with the first page).
TORCH_FREE = ["engine.core", "engine.space", "engine.search.config", "engine.search.rnn_config", "engine.train.config",
              "engine.jobs", "app.state", "app.nav", "app.screens", "app.panels", "app.figures"]


def _modules() -> dict[str, Path]:
    out = {}
    for top in ("engine", "app"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module of ours that `import name` loads last: the longest prefix of `name` that is one."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """Every module of engine/ or app/ that `module` imports, at its top or inside a function."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            target = _resolve(name)
            if target and target != module and target.split(".")[0] in ("engine", "app"):
                found.add(target)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "engine" and len(parts) > 1 and parts[1] in ALLOWED else None


def test_the_walk_sees_the_imports_it_judges():
    assert "engine.search.config" in GRAPH["engine.search.loop"]
    assert "engine.runs.rundir" in GRAPH["engine.search.loop"]  # `from engine.runs import rundir`
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles():
    assert _cycles(GRAPH) == []


def test_engine_dependencies_run_one_way():
    wrong = []
    for module, targets in GRAPH.items():
        mine = _package(module)
        if mine is None:
            continue
        for target in targets:
            theirs = _package(target)
            if theirs is not None and theirs != mine and theirs not in ALLOWED[mine]:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_the_engine_never_imports_the_app_or_streamlit():
    for module, path in MODULES.items():
        if module.startswith("engine"):
            assert not any(t.startswith("app") for t in GRAPH[module]), module
            assert "streamlit" not in path.read_text(), module


def test_the_app_builds_no_networks():
    wrong = [f"{m} -> {t}" for m, targets in GRAPH.items() if m.startswith("app") for t in targets
             if any(t == f"engine.{f}" or t.startswith(f"engine.{f}.") for f in APP_FORBIDDEN)]
    assert wrong == []


@pytest.mark.parametrize("package", TORCH_FREE)
def test_torch_free_packages_import_with_torch_blocked(package):
    names = sorted(m for m in MODULES if m == package or m.startswith(package + "."))
    code = ("import sys\nsys.modules['torch'] = None  # any `import torch` now raises ImportError\n"
            + "".join(f"import {name}\n" for name in names) + "print(len(sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


# A softmax (torch's, a tensor's, or one written out with exp) computed where op weights are read would be a second
# definition of what a variant says its weights are; outside the variants, code calls a variant's weights or the
# space's numpy `softmax` (engine.space.weights), imported by that name. `log_softmax` is a classifier's output.
_SOFTMAX = re.compile(r"\.softmax\(|\bdef softmax\(|\bexp\(\s*\w+\s*-\s*\w+\.max\(")
_WEIGHTS_LIVE_IN = ("engine.variants", "engine.space")


def test_op_weights_are_computed_only_by_the_variants_and_the_space():
    found = [f"{m}:{i}" for m, path in MODULES.items() if not m.startswith(_WEIGHTS_LIVE_IN)
             for i, line in enumerate(path.read_text().splitlines(), 1)
             if _SOFTMAX.search(line.split("#", 1)[0]) and not line.lstrip().startswith(("\"", "'"))]
    assert found == []


def test_the_softmax_rule_sees_the_forms_it_forbids():
    for line in ("w = torch.softmax(a, -1)", "p = F.softmax(x, dim=-1)", "p = a.softmax(-1)",
                 "e = np.exp(a - a.max(-1))", "def softmax(a):"):
        assert _SOFTMAX.search(line), line
    for line in ("return F.log_softmax(out, -1)", "w = softmax(alphas)"):   # the space's softmax, by its name
        assert not _SOFTMAX.search(line), line

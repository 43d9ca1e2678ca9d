"""Recorded runs shipped with the project (assets/runs/): Replay and Learn open on one at once, on a fresh
machine, before any search has run.

Each is an ordinary run directory, trimmed to what the pages read (config.json, status.json, metrics.jsonl,
alphas.jsonl, genotypes.jsonl; no checkpoint, so it cannot be resumed) and recorded by
`python scripts/record_example.py`. They are read-only: they live outside the runs root, so the Runs page
cannot delete them and nothing writes into them.
"""

from __future__ import annotations

from pathlib import Path

from engine.runs import catalog, rundir

__all__ = ["EXAMPLES_ROOT", "DEFAULT_EXAMPLE", "example_runs", "example", "is_example", "check_writable",
           "COMPARISONS_ROOT", "COMPARISON_FILE", "shipped_comparison", "SWEEPS_ROOT", "COLLAPSE_SWEEP",
           "shipped_sweeps", "shipped_sweep"]

EXAMPLES_ROOT = Path(__file__).resolve().parents[2] / "assets" / "runs"
# A comparison shipped with the project (scripts/record_comparison.py): the trained cells of the Train page's
# "Compare cells", each an ordinary (trimmed) training run directory, beside comparison.json, its table.
COMPARISONS_ROOT = Path(__file__).resolve().parents[2] / "assets" / "compare"
COMPARISON_FILE = "comparison.json"
# Sweeps shipped with the project (scripts/record_sweep.py): a sweep directory whose members are trimmed
# recordings. The Learn page's collapse lesson reads COLLAPSE_SWEEP (how often each variant collapses over seeds).
SWEEPS_ROOT = Path(__file__).resolve().parents[2] / "assets" / "sweeps"
COLLAPSE_SWEEP = "collapse"
_SWEEP_FILE = "sweep.json"  # engine.sweep.spec.SWEEP_FILE (this module imports nothing that loads torch)
# The recording Replay and Learn open on: the 10-epoch demo search. The others (the Learn page's collapse lesson,
# assets/runs/*-example-collapse-*) are newer but longer and made for one lesson, so they come after it.
DEFAULT_EXAMPLE = "demo"


def _name(info: catalog.RunInfo) -> str:
    """A recording's name: what follows `-example-` in its directory name (scripts/record_example.py --name)."""
    return info.run_id.split("-example-", 1)[-1]


def example_runs() -> list[catalog.RunInfo]:
    """The recorded runs, listed like the runs of a runs root: DEFAULT_EXAMPLE first, then the rest newest first."""
    runs = catalog.list_runs(EXAMPLES_ROOT) if EXAMPLES_ROOT.is_dir() else []
    return sorted(runs, key=lambda r: _name(r) != DEFAULT_EXAMPLE)  # stable: the rest stay newest first


def example(name: str) -> catalog.RunInfo | None:
    """The recording recorded with `--name name` (the newest, if several), or None when it is not shipped."""
    return next((r for r in example_runs() if _name(r) == name), None)


def is_example(run_dir: str | Path) -> bool:
    """True for a shipped recording, alone or a member of a shipped sweep (read-only: no resume, no delete, no
    control requests)."""
    try:
        path = Path(run_dir).resolve()
    except OSError:
        return False
    return path.parent == EXAMPLES_ROOT or path.is_relative_to(SWEEPS_ROOT)


def check_writable(run_dir: str | Path) -> None:
    """A RunDirError for a shipped recording, which nothing may write into."""
    if is_example(run_dir):
        raise rundir.RunDirError(f"{Path(run_dir).name} is a recording shipped with dartboard; it can be "
                                 "replayed and studied, not resumed, changed or deleted")


def _plain_name(name: str) -> bool:
    """A folder name inside the comparison's folder, never a path that leads out of it."""
    return name not in ("", ".", "..") and Path(name).name == name and "\\" not in name


def shipped_comparison(name: str = DEFAULT_EXAMPLE, root: Path | None = None) -> dict | None:
    """The comparison recorded as `name` (its comparison.json, each row with `run_dir`, the path of its trimmed
    training run), or None when none is shipped or it cannot be read. A row whose run is missing is left out."""
    from engine.core.atomic import read_json

    folder = (root or COMPARISONS_ROOT) / name
    try:
        record = read_json(folder / COMPARISON_FILE)
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("rows"), list):
        return None
    rows = [dict(r, run_dir=str(folder / r["run_id"])) for r in record["rows"]
            if isinstance(r, dict) and isinstance(r.get("run_id"), str) and _plain_name(r["run_id"])
            and (folder / r["run_id"] / rundir.CONFIG).is_file()]
    return {**record, "rows": rows} if rows else None


def shipped_sweeps(root: Path | None = None) -> list[Path]:
    """The sweep directories shipped with the project, by name."""
    base = root or SWEEPS_ROOT
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if (p / _SWEEP_FILE).is_file())


def shipped_sweep(name: str = COLLAPSE_SWEEP, root: Path | None = None) -> Path | None:
    """The shipped sweep directory called `name`, or None when this copy of dartboard does not have it."""
    return next((p for p in shipped_sweeps(root) if p.name == name), None) if _plain_name(name) else None

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

__all__ = ["EXAMPLES_ROOT", "DEFAULT_EXAMPLE", "example_runs", "example", "is_example", "check_writable"]

EXAMPLES_ROOT = Path(__file__).resolve().parents[2] / "assets" / "runs"
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
    """True for a shipped recording (read-only: no resume, no delete, no control requests)."""
    try:
        return Path(run_dir).resolve().parent == EXAMPLES_ROOT
    except OSError:
        return False


def check_writable(run_dir: str | Path) -> None:
    """A RunDirError for a shipped recording, which nothing may write into."""
    if is_example(run_dir):
        raise rundir.RunDirError(f"{Path(run_dir).name} is a recording shipped with dartboard; it can be "
                                 "replayed and studied, not resumed, changed or deleted")

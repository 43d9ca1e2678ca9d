"""A name a person gives a run ("lecture demo", "DARTS- rehearsal"), kept in the run directory as label.json and
written atomically, so it travels with the run and another process (or the command line) sees it.

The label is for people only: nothing in the engine reads it to decide anything, and a run without one is named by
its run id. Shipped recordings (engine.runs.examples) are read-only and cannot be labelled.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.core.atomic import read_json, write_json_atomic
from engine.runs.rundir import RunDirError

__all__ = ["LABEL_FILE", "MAX_LABEL", "LabelError", "read_label", "write_label", "clean_label"]

LABEL_FILE = "label.json"
MAX_LABEL = 80


class LabelError(ValueError):
    """A label that cannot be kept (empty after trimming, too long, a line break, a read-only run)."""


def clean_label(text: str) -> str:
    """The label as kept: trimmed, inner runs of spaces made one; a LabelError in one line when it cannot be."""
    label = " ".join(str(text).split())
    if "\n" in str(text).strip() or "\r" in str(text).strip():
        raise LabelError("A run label is one line.")
    if len(label) > MAX_LABEL:
        raise LabelError(f"A run label has at most {MAX_LABEL} characters ({len(label)} given).")
    return label


def read_label(run_dir: str | os.PathLike) -> str | None:
    """The run's label, or None (no label, or a label.json that does not read as one)."""
    data = read_json(Path(run_dir) / LABEL_FILE, default=None)
    label = data.get("label") if isinstance(data, dict) else None
    return label if isinstance(label, str) and label.strip() else None


def write_label(run_dir: str | os.PathLike, text: str) -> str | None:
    """Give the run the label `text` (an empty one removes it); returns the label kept, or None when removed."""
    from engine.runs.examples import check_writable

    path = Path(run_dir)
    if not path.is_dir():
        raise LabelError(f"{path.name}: no such run directory")
    try:
        check_writable(path)
    except RunDirError as err:
        raise LabelError(str(err)) from None
    label = clean_label(text)
    if not label:
        (path / LABEL_FILE).unlink(missing_ok=True)
        return None
    write_json_atomic(path / LABEL_FILE, {"label": label})
    return label

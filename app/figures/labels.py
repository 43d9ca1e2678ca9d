"""How the pages write a cell's states and a run's progress, and the sizes of the normal and the lecture view."""

from __future__ import annotations

import math

from engine.space.cnn.cell import edge_endpoints, source_name

__all__ = ["plain", "OUTPUT_NAME", "input_name", "edge_names", "NORMAL", "LECTURE", "sizes",
           "format_duration", "progress_text", "source_text"]


# How the pages name a cell's states: plain text. The paper writes them c_{k-2}, c_{k-1}, c_{k} in LaTeX
# (engine.space.cnn.cell.source_name), which a chart, a graph or a table would print raw. (The DOT keeps source_name
# as node ids, so an edge's SVG title stays "c_{k-2}->0"; what a reader sees is these labels.)
def plain(name: str) -> str:
    """A state's LaTeX name in plain text: "c_{k-2}" -> "c(k-2)"; a node number stays as it is."""
    return name.replace("_{", "(").replace("}", ")")


OUTPUT_NAME = plain("c_{k}")


def input_name(index: int) -> str:
    """Input index as the pages print it: 0 -> "c(k-2)", 1 -> "c(k-1)", j >= 2 -> the node number j-2."""
    return plain(source_name(index))


def edge_names(nodes: int) -> list[str]:
    """A label per alpha row, in row order: ["c(k-2) -> 0", "c(k-1) -> 0", "c(k-2) -> 1", ..., "2 -> 3"]."""
    return [f"{input_name(j)} -> {i}" for j, i in edge_endpoints(nodes)]


# Sizes in pixels (Vega-Lite) and points (DOT) of the dashboard's normal view and of lecture (projector) mode,
# where numbers and labels must be readable from the back of a room: numbers >= 18 px, labels >= 16 px on screen.
NORMAL = {"cell_text": 11, "axis_label": 11, "title": 14, "row_px": 26, "dag_label": 14, "dag_node": 14}
LECTURE = {"cell_text": 20, "axis_label": 18, "title": 24, "row_px": 40, "dag_label": 16, "dag_node": 18}


def sizes(lecture: bool) -> dict[str, int]:
    return LECTURE if lecture else NORMAL


def format_duration(seconds: float | None) -> str:
    """12 s, 4 min 05 s, 2 h 07 min; an em dash when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "—"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def progress_text(epoch: int, epochs: int, step: int, total_steps: int) -> str:
    """'epoch 2/8 · step 120/400' with epochs counted from 1 for people."""
    shown_epoch = min(epoch + 1, epochs) if epochs else epoch + 1
    return f"epoch {shown_epoch}/{epochs or '?'} · step {step}/{total_steps or '?'}"


def source_text(source: dict | None) -> str:
    """Where a training's genotype came from (its config's `source`, engine/train/source.py), in words:
    "the cell of search <run> at step 51", "the published cell DARTS_V2", "a random cell (seed 3)"."""
    if not source:
        return "genotype source not recorded"
    kind = source.get("kind")
    if kind in ("search", "train") and source.get("run_dir"):
        name = str(source["run_dir"]).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
        what = "search" if kind == "search" else "training"
        return f"the cell of {what} {name} at step {source.get('step', '?')}"
    if kind == "known":
        return f"the published cell {source.get('name') or source.get('label', '?')}"
    if kind == "random":
        return f"a random cell (seed {source.get('seed', '?')})"
    if kind == "file":
        path = str(source.get("path") or source.get("label") or "?")
        return f"the genotype in the file {path.rsplit('/', 1)[-1]}"
    return str(source.get("label") or kind or "unknown source")

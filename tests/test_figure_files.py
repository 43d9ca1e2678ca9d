"""Figures as files (PNG, SVG), the settings columns of the Runs table, and the text alternative of every chart.

Files are drawn from the recording shipped with the app, with the exporters the dashboard uses (vl-convert for
charts, Graphviz's `dot` for cells); the AppTest checks render the real pages.
"""

from __future__ import annotations

import math
import shutil
import struct
from pathlib import Path

import pandas as pd
import pytest

from app.figures import alt, curves, heatmaps, saved, tables
from app.panels import exports
from engine.runs import examples
from engine.runs.catalog import RunInfo
from engine.runs.handle import RunHandle
from engine.space.cnn.genotype import KNOWN_GENOTYPES

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG, "not a PNG file"
    return struct.unpack(">II", data[16:24])   # the IHDR chunk: width, height


@pytest.fixture(scope="module")
def demo():
    run = examples.example(examples.DEFAULT_EXAMPLE)
    assert run is not None
    return run


def test_standalone_inlines_the_data_and_fixes_the_width():
    spec = {"width": "container", "mark": "line", "encoding": {}}
    whole = saved.standalone(spec, pd.DataFrame({"x": [1.0, 2.0], "y": [0.5, math.nan]}))
    assert whole["width"] == 520 and spec["width"] == "container"           # the page's own spec is untouched
    assert whole["data"] == {"values": [{"x": 1.0, "y": 0.5}, {"x": 2.0, "y": None}]}   # NaN is JSON's null


def test_the_heatmaps_file_holds_both_cells_with_their_numbers(demo):
    run = RunHandle(demo.path)
    last = run.weights(run.alphas()[-1])
    charts = [heatmaps.heatmap_vega(last[c], title=t) for c, t in (("normal", "Normal cell"),
                                                                    ("reduce", "Reduction cell"))]
    svg = saved.vega_file(charts, "svg").decode()
    assert svg.lstrip().startswith("<svg") and "Normal cell" in svg and "Reduction cell" in svg
    # the numbers drawn in the cells are the run's last op weights
    assert f"{last['normal'].max():.2f}" in svg and f"{last['reduce'].max():.2f}" in svg
    width, height = png_size(saved.vega_file(charts, "png"))
    assert width > height > 100      # two heatmaps side by side


def test_the_curves_file_draws_the_three_curves(demo):
    metrics = RunHandle(demo.path).metrics()
    shown = curves.SPACE_CURVES["cnn"]
    svg = saved.vega_file([curves.curve_vega(metrics, c) for c in shown], "svg").decode()
    for curve in shown:
        assert curves.CURVES[curve][0] in svg


def test_a_cell_file_is_the_graph_with_its_ops_and_the_png_at_twice_the_resolution(demo):
    if shutil.which("dot") is None:
        pytest.skip("needs Graphviz's dot (apt-get install graphviz)")
    from app.figures import cells_dot

    dot = cells_dot.cell_dot(demo.genotype, cell="normal")
    svg = saved.dot_file(dot, "svg").decode()
    for op, _ in demo.genotype.normal:
        assert op in svg
    points = float(svg.split('width="', 1)[1].split("pt", 1)[0])
    width, _ = png_size(saved.dot_file(dot, "png"))
    assert width == pytest.approx(2 * points, rel=0.02)


def test_an_unknown_format_or_an_empty_figure_is_refused_by_name():
    with pytest.raises(saved.FigureError, match="unknown figure format 'gif'"):
        saved.vega_file([({"mark": "line"}, [])], "gif")
    with pytest.raises(saved.FigureError, match="nothing to draw"):
        saved.vega_file([], "png")


def test_the_exports_panel_draws_every_figure_of_a_run(demo):
    for figure in exports.FIGURES:
        if figure.endswith("_cell") and shutil.which("dot") is None:
            continue
        for fmt in saved.FORMATS:
            data = exports._figure_data(figure, fmt, lambda: demo.genotype, str(demo.path), "softmax", False)()
            assert data[:8] == PNG if fmt == "png" else b"<svg" in data[:400], (figure, fmt)


# ---------------------------------------------------------------- the Runs table's settings
def _info(run_id: str, **cfg) -> RunInfo:
    return RunInfo(run_id=run_id, path=Path("/tmp") / run_id, state="finished", epoch=1, epochs=2, step=8,
                   total_steps=8, genotype=None, valid_acc=0.5, created="2026", config=cfg)


def test_the_runs_table_shows_the_settings_and_can_keep_only_those_that_differ():
    runs = [_info("a", dataset="embedded", variant="darts", order="first", w_lr=0.025, a_lr=3e-4, batch_size=32,
                  seed=0, epochs=2),
            _info("b", dataset="embedded", variant="beta_darts", order="first", w_lr=0.025, a_lr=3e-4,
                  batch_size=32, seed=1, epochs=2),
            _info("t", dataset="embedded", lr=0.025, batch_size=32, seed=0, epochs=2)]   # a training: lr, no variant
    frame = tables.runs_frame(runs)
    assert list(frame["variant"].iloc[:2]) == ["darts", "beta_darts"] and frame["lr"].tolist() == [0.025] * 3
    assert frame["batch"].tolist() == [32] * 3 and frame["seed"].tolist() == [0, 1, 0]
    differ = tables.differing_settings(frame)
    kept = [c for c in tables.SETTINGS if c in differ.columns]
    assert kept == ["variant", "order", "a_lr", "seed"]    # the training has no order, a_lr nor variant
    assert {"run", "state", "valid acc", "genotype"} <= set(differ.columns)


# ---------------------------------------------------------------- text alternatives
def test_a_cells_text_lists_every_kept_edge_and_the_output():
    genotype = KNOWN_GENOTYPES["DARTS_V2"]
    text = alt.cell_alt(genotype, "normal")
    assert text.startswith("Normal cell graph. Node 0: sep_conv_3x3 from c(k-2), sep_conv_3x3 from c(k-1).")
    assert text.count(" from ") == len(genotype.normal)
    assert text.endswith("Output c(k): concatenation of 0, 1, 2, 3.")


def test_a_charts_text_says_what_kind_of_chart_it_is_and_its_title(demo):
    spec, _ = curves.curve_vega(RunHandle(demo.path).metrics(), "loss")
    assert alt.vega_alt(spec) == "Line chart: Loss, cross-entropy (mean over the epoch so far)"
    spec, _ = heatmaps.heatmap_vega(RunHandle(demo.path).weights(RunHandle(demo.path).alphas()[-1])["normal"],
                                    title="Normal cell")
    assert alt.vega_alt(spec) == "Heatmap: Normal cell"


def _charts(at) -> list[tuple[str, str]]:
    """Every chart element of an AppTest run, as (its type, its alt text)."""
    found = []
    for kind in ("vega_lite_chart", "plotly_chart", "graphviz_chart"):
        found += [(kind, element.proto.alt) for element in at.get(kind)]
    return found


def test_every_chart_of_the_runs_and_replay_pages_has_a_text_alternative(app_runs, page, demo):
    for name in ("20260101T000000Z-a", "20260101T000001Z-b"):   # two searches: the side-by-side view too
        shutil.copytree(demo.path, app_runs / name)
    for screen, least in (("runs", 9), ("replay", 7)):
        at = page(screen, timeout=120).run()
        assert not at.exception, at.exception
        charts = _charts(at)
        # Runs: a cell pair and, side by side, two heatmaps and cells each and the accuracy overlay; Replay: two
        # heatmaps, two cells, three curves
        assert len(charts) >= least, charts
        assert all(text.strip() for _, text in charts), [kind for kind, text in charts if not text.strip()]


_CHARTS = {"vega_lite_chart", "plotly_chart", "graphviz_chart", "line_chart", "area_chart", "bar_chart",
           "scatter_chart", "altair_chart", "pyplot", "map"}


def test_every_chart_call_in_the_app_passes_an_alt_text():
    """The pages the AppTest above does not open (Search, Train, Learn, Stage, Sweeps) too: every call of a
    Streamlit chart anywhere under app/ names its `alt`."""
    import ast

    root = Path(__file__).resolve().parents[1] / "app"
    calls, missing = 0, []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _CHARTS:
                calls += 1
                if not any(k.arg == "alt" for k in node.keywords):
                    missing.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    assert calls >= 30 and missing == []

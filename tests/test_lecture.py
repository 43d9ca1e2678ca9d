"""Figures a student reads right: lecture (projector) mode, fixed colour scales, a cell layout that does not
jump, plain names instead of raw LaTeX, "op weights" vs "network weights", the untrained cell at step 0, and
what the Learn page says (xi, epsilon, retraining, `none`, collapse).

The on-screen sizes are checked on the figure specs: Vega-Lite sizes are pixels; a graph's labels are Graphviz
points scaled to the width it is drawn at, so the graph is laid out by Graphviz's `dot` (skipped without it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.figures import cells_dot, curves, heatmaps, labels, tables
from app.figures import replay as replay_fig
from app.panels import cells
from app.screens import learn
from engine.space.cnn.cell import PRIMITIVES
from engine.space.cnn.genotype import KNOWN_GENOTYPES, Genotype, genotype_from_weights

TIMEOUT = 60
DEMO = next((Path(__file__).resolve().parents[1] / "assets" / "runs").glob("*-example-demo"))


def _weights(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(8) * 0.7, size=14)


# ---------------------------------------------------------------- fixed colour scales
@pytest.mark.parametrize("mode, domain", [("softmax", (0.0, 1.0)), ("uniform", (-0.875, 0.875)),
                                          ("change", (-1.0, 1.0))])
def test_colour_domain_is_fixed_symmetric_and_the_same_for_both_cells_and_every_step(mode, domain):
    specs = []
    for seed, scale in ((0, 1.0), (1, 0.02), (2, 30.0)):   # near uniform, far from it, two cells' worth
        w = _weights(seed) ** scale
        w /= w.sum(axis=1, keepdims=True)
        for title in cells.CELLS.values():
            spec, data = heatmaps.heatmap_vega(w, title=title, mode=mode, initial=_weights(seed + 10))
            colour = spec["layer"][0]["encoding"]["color"]["scale"]
            assert tuple(colour["domain"]) == heatmaps.colour_domain(mode) == pytest.approx(domain)
            lo, hi = colour["domain"]
            assert lo <= data["value"].min() and data["value"].max() <= hi   # what the value can be fits
            specs.append(json.dumps({k: v for k, v in spec.items() if k != "title"}, sort_keys=True))
    assert len(set(specs)) == 1      # one colour scale for both cells and every step
    if mode != "softmax":
        assert colour["domainMid"] == 0.0 and lo == -hi and colour["type"] == "symlog"


def test_extreme_values_stay_inside_the_fixed_domain():
    one_hot = np.zeros((14, 8))
    one_hot[:, 3] = 1.0
    start = np.zeros((14, 8))
    start[:, 4] = 1.0
    for mode in ("uniform", "change"):
        _, data = heatmaps.heatmap_vega(one_hot, mode=mode, initial=start)
        lo, hi = heatmaps.colour_domain(mode)
        assert data["value"].min() >= lo - 1e-12 and data["value"].max() <= hi + 1e-12
    assert heatmaps.heatmap_vega(one_hot, mode="change", initial=start)[1]["value"].min() == -1.0


# ---------------------------------------------------------------- lecture sizes
def test_lecture_heatmap_numbers_and_labels_are_readable_from_the_back():
    normal, _ = heatmaps.heatmap_vega(_weights(), title="Normal cell")
    big, _ = heatmaps.heatmap_vega(_weights(), title="Normal cell", lecture=True)
    text = big["layer"][1]["mark"]["fontSize"]
    assert text >= 18 and normal["layer"][1]["mark"]["fontSize"] < 18
    for axis in ("x", "y"):
        assert big["encoding"][axis]["axis"]["labelFontSize"] >= 16
    assert big["title"]["fontSize"] >= 18
    assert big["height"] >= 14 * 36      # a row per edge tall enough for its 18+ px number
    curve, _ = curves.curve_vega([{"step": 1, "epoch": 0, "train_loss": 1.0}], "loss", lecture=True)
    assert curve["layer"][0]["encoding"]["x"]["axis"]["labelFontSize"] >= 16


def _svg(dot: str) -> str:
    return subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, check=True).stdout.decode()


def _label_px(svg: str, screen_px: float) -> float:
    """The smallest edge label's size in pixels once drawn `screen_px` wide: st.graphviz_chart stretches the SVG to
    its column, and graph_css draws the text at the DOT's size in the graph's units; or at the graph's natural
    size (points -> px) if that is smaller."""
    width_pt = float(re.search(r'viewBox="[-\d.]+ [-\d.]+ ([\d.]+) ', svg).group(1))
    sizes = [float(s) for g in re.findall(r'<g id="edge\d+" class="edge">(.*?)</g>\n(?=<!--|</g>)', svg, re.S)
             for s in re.findall(r'font-size="([\d.]+)"', g)]
    assert sizes, "no edge labels in the SVG"
    return min(sizes) * min(4 / 3, screen_px / width_pt)


def test_the_page_draws_graph_text_at_the_dot_sizes():
    """Streamlit's graphviz chart forces 9.6 px on all its text; graph_css puts back the sizes the DOT laid out."""
    g = KNOWN_GENOTYPES["DARTS_V2"]
    for lecture, size in ((False, labels.NORMAL), (True, labels.LECTURE)):
        css = cells.graph_css(lecture)
        dot = cells_dot.cell_dot(g, lecture=lecture)
        edge = int(re.search(r"edge \[[^]]*fontsize=(\d+)", dot).group(1))
        node = int(re.search(r"node \[[^]]*fontsize=(\d+)", dot).group(1))
        assert (edge, node) == (size["dag_label"], size["dag_node"])
        assert re.search(rf"g\.edge text {{ font-size: {edge}px !important; }}", css)
        assert re.search(rf"g\.node text {{ font-size: {node}px !important; }}", css)
    assert labels.LECTURE["dag_label"] >= 16


needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


@needs_dot
@pytest.mark.parametrize("which", ["kept", "kept with weights", "every edge"])
def test_lecture_graph_labels_are_at_least_16px_on_a_projector(which):
    g, w = KNOWN_GENOTYPES["DARTS_V2"], _weights(3)

    def dot(lecture):
        if which == "every edge":
            return cells_dot.weighted_cell_dot(w, lecture=lecture)
        return cells_dot.cell_dot(g, "reduce", weights=w if which == "kept with weights" else None, lecture=lecture)

    assert _label_px(_svg(dot(True)), cells.LECTURE_SCREEN_PX) >= 16
    # the normal view at the same width (a projector showing the usual two columns: half of it) is not
    assert _label_px(_svg(dot(False)), cells.LECTURE_SCREEN_PX / 2) < 16


def _layout(dot: str) -> tuple[dict[str, float], dict[str, float]]:
    """Node id -> (its coordinate along the ranks, first rank smallest; across them), from dot's layout."""
    plain = subprocess.run(["dot", "-Tplain"], input=dot.encode(), capture_output=True, check=True).stdout.decode()
    top_down = "rankdir=TB" in dot or "rankdir" not in dot
    nodes = {m[0].strip('"'): (float(m[1]), float(m[2]))
             for m in re.findall(r'^node ("[^"]*"|\S+) (\S+) (\S+)', plain, re.M)}   # y grows upwards
    along = {n: -y if top_down else x for n, (x, y) in nodes.items()}
    across = {n: x if top_down else -y for n, (x, y) in nodes.items()}
    return along, across


@needs_dot
@pytest.mark.parametrize("lecture", [False, True])
def test_the_states_keep_their_ranks_whatever_the_genotype(lecture):
    """Node i is always in rank i + 1, inputs c(k-2) then c(k-1) in the first, the output last: a new genotype
    moves edges, not nodes. Node 1 fed by the inputs only would sit beside node 0 without the fixed ranks."""
    shallow = Genotype.parse(json.dumps({
        "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 1],
                   ["max_pool_3x3", 0], ["avg_pool_3x3", 1], ["dil_conv_3x3", 1], ["sep_conv_5x5", 0]],
        "normal_concat": [2, 3, 4, 5],
        "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1],
                   ["skip_connect", 2], ["skip_connect", 3], ["max_pool_3x3", 0], ["skip_connect", 4]],
        "reduce_concat": [2, 3, 4, 5]}))
    order = ["c_{k-1}", "0", "1", "2", "3", "c_{k}"]
    for g in (KNOWN_GENOTYPES["DARTS_V1"], KNOWN_GENOTYPES["DARTS_V2"], shallow):
        for cell in ("normal", "reduce"):
            for dot in (cells_dot.cell_dot(g, cell, lecture=lecture), cells_dot.weighted_cell_dot(_weights(), cell,
                                                                                              lecture=lecture)):
                ranks, across = _layout(dot)
                assert ranks["c_{k-2}"] == pytest.approx(ranks["c_{k-1}"])
                assert [ranks[n] for n in order] == sorted(ranks[n] for n in order)
                assert len({round(ranks[n], 3) for n in order}) == len(order)
                assert across["c_{k-2}"] < across["c_{k-1}"]            # c(k-2) first in the first rank
    # both cells declare their states in the same order
    decl = [[ln for ln in cells_dot.cell_dot(shallow, c).splitlines() if "fillcolor" in ln]
            for c in ("normal", "reduce")]
    assert decl[0] == decl[1]


# ---------------------------------------------------------------- plain names, not raw LaTeX
def test_figures_name_the_inputs_in_plain_text():
    g = KNOWN_GENOTYPES["DARTS_V2"]
    shown = [*heatmaps.weights_frame(_weights()).index, *tables.genotype_frame(g)["input"],
             *tables.genotype_changes(KNOWN_GENOTYPES["DARTS_V1"], g),
             *tables.compare_genotypes_frame(KNOWN_GENOTYPES["DARTS_V1"], g).iloc[:, 2:4].to_numpy().ravel()]
    assert "c(k-2) -> 0" in shown and not any("{" in str(s) for s in shown)
    for dot in (cells_dot.cell_dot(g), cells_dot.weighted_cell_dot(_weights())):
        labels = re.findall(r'(?:label|tooltip)="([^"]*)"', dot)
        assert "c(k-2)" in labels and "c(k)" in labels and not any("{" in lab for lab in labels)


# ---------------------------------------------------------------- the raw-alpha figure the Learn page states
def test_the_raw_alpha_ranking_figure_is_measured_on_the_demo_recording():
    records = [json.loads(line) for line in (DEMO / "alphas.jsonl").read_text().splitlines() if line.strip()]
    differ = 0
    for r in records:
        w = replay_fig.record_weights(r)
        raw = genotype_from_weights(np.asarray(r["normal"]), np.asarray(r["reduce"]))
        differ += raw != genotype_from_weights(w["normal"], w["reduce"])
    assert 0 < differ <= len(records)
    assert learn.raw_alpha_steps() == (differ, len(records))  # what the page states


# ---------------------------------------------------------------- the pages under AppTest
def _panel_script(step):
    """The live panel, with the lecture toggle, on a snapshot at `step` (0: nothing trained yet)."""
    import numpy as np

    from app.panels import cells, live
    from engine.runs.snapshot import Snapshot
    from engine.space.cnn.genotype import KNOWN_GENOTYPES

    rng = np.random.default_rng(7)
    weights = {c: rng.dirichlet(np.ones(8) * a, size=14) for c, a in (("normal", 0.5), ("reduce", 2.0))}
    snap = Snapshot(run_id="lecture", state="paused", epoch=0, epochs=4, step=step, total_steps=20, device="cpu",
                    weights=weights, initial_weights={c: np.full((14, 8), 1 / 8) for c in weights},
                    genotype=KNOWN_GENOTYPES["DARTS_V2"], metrics=({"step": 1, "train_loss": 2.3},),
                    config={"dataset": "cifar10"})

    class Job:
        run_id = "lecture"

        def snapshot(self):
            return snap

    cells.lecture_toggle()
    live.panel(Job(), snap)


def _blocks(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _blocks(child)


def _in_columns(at: AppTest, key: str) -> bool:
    """Whether the container of key `key` sits in a column (side by side) rather than full width."""
    def walk(node, in_col):
        if str(getattr(getattr(node, "proto", None), "id", "")).endswith(f"-{key}"):
            return in_col
        for child in getattr(node, "children", {}).values():
            found = walk(child, in_col or getattr(node, "type", None) == "column")
            if found is not None:
                return found
        return None
    found = walk(at.main, False)
    assert found is not None, f"no container {key!r}"
    return found


def _chart(at: AppTest, key: str) -> dict:
    box = next(b for b in _blocks(at.main) if str(getattr(getattr(b, "proto", None), "id", "")).endswith(f"-{key}"))
    return json.loads(next(c for c in _blocks(box) if getattr(c, "type", None) == "vega_lite_chart").proto.spec)


def _app(step=5, **query) -> AppTest:
    at = AppTest.from_function(_panel_script, args=(step,), default_timeout=TIMEOUT)
    at.query_params.update(query)
    return at


def test_lecture_toggle_enlarges_stacks_the_cells_and_survives_a_reload(runs_dir):
    at = _app().run()
    assert not at.exception and at.toggle(key=cells.LECTURE_KEY).value is False
    assert _in_columns(at, "live.heatmap.normal") and _in_columns(at, "live.heatmap.reduce")
    assert _chart(at, "live.heatmap.normal")["layer"][1]["mark"]["fontSize"] < 18

    at.toggle(key=cells.LECTURE_KEY).set_value(True).run()
    assert not at.exception
    assert at.query_params.get("lecture") == "1"                       # in the URL
    for cell in ("normal", "reduce"):                                  # one above the other, full width
        assert not _in_columns(at, f"live.heatmap.{cell}")
        assert _chart(at, f"live.heatmap.{cell}")["layer"][1]["mark"]["fontSize"] >= 18
    for graph in at.get("graphviz_chart"):
        assert int(re.search(r"edge \[[^]]*fontsize=(\d+)", graph.proto.spec).group(1)) >= 16
    assert not _in_columns(at, "live.curve.loss")

    reloaded = _app(**at.query_params).run()                           # a reload: a new session, the same URL
    assert reloaded.toggle(key=cells.LECTURE_KEY).value is True
    assert not _in_columns(reloaded, "live.heatmap.normal")

    at.toggle(key=cells.LECTURE_KEY).set_value(False).run()
    assert "lecture" not in at.query_params and _in_columns(at, "live.heatmap.normal")


def test_colour_scale_choice_survives_a_reload(runs_dir):
    at = _app().run()
    assert at.radio(key="live.mode").value == "softmax"
    at.radio(key="live.mode").set_value("change").run()
    assert at.query_params.get(cells.SCALE_PARAM) == "change"
    reloaded = _app(**at.query_params).run()
    assert reloaded.radio(key="live.mode").value == "change"
    scale = _chart(reloaded, "live.heatmap.reduce")["layer"][0]["encoding"]["color"]["scale"]
    assert scale["domain"] == [-1.0, 1.0]
    assert _app(scale="bogus").run().radio(key="live.mode").value == "softmax"   # a bad URL value: the default


def test_step_zero_genotype_is_labelled_untrained(runs_dir):
    at = _app(step=0).run()
    assert not at.exception
    assert any("initial, untrained alphas: not a result yet" in w.value for w in at.warning)
    assert any("not a result yet" in c.value for c in at.caption)
    later = _app(step=5).run()
    assert not any("untrained" in w.value for w in later.warning)
    assert not any("not a result yet" in c.value for c in later.caption)


def _texts(at: AppTest) -> list[str]:
    """Every text a reader sees: markdown, headers, captions, alerts, widget labels and options, table cells,
    chart axes and graph labels."""
    out = [e.value for kind in ("markdown", "title", "header", "subheader", "caption", "info", "warning", "code")
           for e in at.get(kind)]
    out += [w.label for kind in ("toggle", "radio", "selectbox") for w in at.get(kind)]
    out += [str(o) for w in at.get("radio") for o in w.options]
    out += [str(v) for d in at.get("arrow_data_frame") for v in d.value.to_numpy().ravel()]
    out += [lab for g in at.get("graphviz_chart") for lab in re.findall(r'label="([^"]*)"', g.proto.spec)]
    for chart in at.get("vega_lite_chart"):
        spec = json.loads(chart.proto.spec)
        out += [json.dumps(spec["encoding"]["y"].get("sort", []))] if "encoding" in spec else []
    return out


def _outside_math(text: str) -> str:
    return re.sub(r"\$\$.*?\$\$|\$[^$]*\$", "", text, flags=re.S)


_BARE_WEIGHTS = re.compile(r"(?<!op )(?<!network )(?<!network-)(?<!edge )(?<!sigmoid )\bweights?\b(?! decay)", re.I)


@pytest.fixture
def learn_page(runs_dir):
    def script():
        from app.screens import learn
        learn.page()
    at = AppTest.from_function(script, default_timeout=TIMEOUT).run()
    assert not at.exception
    return at


def test_no_raw_latex_and_no_bare_weights_on_the_learn_page_and_the_live_panel(learn_page):
    panel = _app(step=0).run()
    for at in (learn_page, panel):
        texts = _texts(at)
        assert any("c(k-2)" in t for t in texts)
        raw = [t for t in texts if "c_{k" in _outside_math(t)]
        assert not raw, raw
        bare = [m.string[max(0, m.start() - 40):m.end() + 20] for t in texts
                for m in [_BARE_WEIGHTS.search(_outside_math(t).replace("**", ""))] if m]
        assert not bare, bare


def test_learn_page_defines_xi_and_epsilon_and_says_what_is_not_a_result(learn_page):
    text = " ".join(m.value for m in learn_page.markdown)
    assert "learning rate of that virtual step" in text and "$\\xi = 0$" in text and "first-order" in text.lower()
    assert "finite-difference radius" in text and "\\epsilon" in text
    assert "trained again from scratch" in text and "not yet a result" in text
    assert "never appear in the cell" in text and "zero op" in text
    differ, steps = learn.raw_alpha_steps()
    assert f"ranking by raw alphas gives another cell at {differ} of its {steps} recorded steps" in text
    assert "different cell most of the time" not in text
    collapse = next(m.value for m in learn_page.markdown if "A weakness of DARTS" in m.value)
    assert "**`skip_connect`**" in collapse and "red **skip_connect** line" in collapse
    charts = [c for c in learn_page.get("plotly_chart") if "Share of each op" in c.proto.spec]
    assert len(charts) == 2
    for c in charts:
        names = [t["name"] for t in json.loads(c.proto.spec)["data"]]
        assert "none" not in names and "skip_connect" in names
    assert [op for op in PRIMITIVES if op != "none"] == names


def _replay_script():
    import numpy as np

    from app.screens import replay

    rng = np.random.default_rng(0)
    records = [{"step": s, "epoch": 0, "normal": (rng.normal(size=(14, 8)) * 1e-3).tolist(),
                "reduce": (rng.normal(size=(14, 8)) * 1e-3).tolist()} for s in (0, 1)]
    replay.render(records, key="replay.r")


def test_replay_at_step_zero_says_the_cell_is_untrained(runs_dir):
    at = AppTest.from_function(_replay_script, default_timeout=TIMEOUT).run()
    assert not at.exception and at.slider(key="replay.r.step").value == 1
    assert not any("not a result yet" in c.value for c in at.caption)
    at.slider(key="replay.r.step").set_value(0).run()
    assert any("initial, untrained alphas: not a result yet" in c.value for c in at.caption)

"""A variant is declared in one module: a toy variant written here, in a file of its own, is validated, searched,
shown in the sidebar with its option and on the Learn page with its lesson, and its state figure is drawn, with
no other file of the engine or the dashboard knowing of it."""

from __future__ import annotations

import importlib
import json
import sys

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from engine import variants
from engine.core.config import ConfigError, parse_overrides
from engine.runs import rundir
from engine.search.config import SearchConfig, from_preset
from engine.search.loop import run_search

TOY = '''"""Toy: DARTS with each edge's alphas multiplied by a scale before the softmax (tests only)."""

from engine.space.cnn.cell import CELL_KINDS, PRIMITIVES
from engine.variants import Option, StateFigure, Variant, register
from engine.variants.state import edge_rows


@register
class ToyScaled(Variant):
    name = "toy_scaled"
    summary = "softmax of the alphas times a scale (a test's toy)"
    paper = "no paper: tests/test_toy_variant.py"
    lesson_title = "Toy: scaled alphas"
    lesson = "The toy lesson: each edge's op weights are softmax(scale x alpha)."
    options = (Option("toy_scale", 1.0, label="Toy scale", help="multiplies the alphas before the softmax",
                      allowed="a number above 0, at most 100", above=0, maximum=100, step=0.5),)

    def weights(self, arch):
        import torch

        return {kind: torch.softmax(self.config["toy_scale"] * arch[kind], dim=-1) for kind in CELL_KINDS}

    def state_figures(self, arch):
        w = self.op_weights(arch)["normal"]
        return [StateFigure("heatmap", "toy: scaled op weights", "The toy's op weights.", w, edge_rows(len(w)),
                            PRIMITIVES)]
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    (tmp_path / "toy_variant.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("toy_variant")  # the one registration line: importing the module registers it
    yield "toy_scaled"
    variants.unregister("toy_scaled")
    sys.modules.pop("toy_variant", None)


def test_the_toy_variants_option_is_validated_like_a_field(toy, smoke):
    cfg = from_preset("smoke", parse_overrides([f"variant={toy}", "toy_scale=2.5"], SearchConfig))
    assert cfg.toy_scale == 2.5 and cfg.to_dict()["toy_scale"] == 2.5
    assert SearchConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError) as err:
        smoke.replace(variant=toy, toy_scale=-1.0)
    assert err.value.field == "toy_scale" and "toy_scale=-1.0" in str(err.value) and "above 0" in str(err.value)
    with pytest.raises(ConfigError, match="an option of variant=toy_scaled"):
        smoke.replace(toy_scale=2.0)  # darts does not read it
    with pytest.raises(ConfigError, match="a value of type float"):
        parse_overrides(["toy_scale=big"], SearchConfig)


def test_the_toy_variant_searches_with_its_own_weights(toy, tmp_path, smoke):
    cfg = smoke.replace(variant=toy, toy_scale=3.0, epochs=1, a_lr=0.05)
    run = tmp_path / "run"
    run.mkdir()
    assert run_search(cfg, run) == "finished"
    rows = rundir.read_alphas(run)
    assert rows[-1]["step"] == 2
    written = json.loads((run / "config.json").read_text())["config"]
    assert written["variant"] == toy and written["toy_scale"] == 3.0
    weights = variants.record_weights(rows[-1], written)
    a = np.asarray(rows[-1]["normal"]) * 3.0
    e = np.exp(a - a.max(axis=1, keepdims=True))
    np.testing.assert_allclose(weights["normal"], e / e.sum(axis=1, keepdims=True), rtol=1e-6)


def _sidebar():
    import streamlit as st

    from app.panels import setup

    with st.sidebar:
        setup.render(lambda config: None, busy=False)


def test_the_sidebar_shows_the_toy_option_when_the_toy_is_chosen(toy):
    at = AppTest.from_function(_sidebar, default_timeout=60).run()
    assert not any(w.label == "Toy scale" for w in at.number_input)
    at.selectbox(key="setup.demo.variant").set_value(toy).run()
    box = at.number_input(key=f"setup.demo.{toy}.toy_scale")
    assert box.label == "Toy scale" and box.value == 1.0 and not at.sidebar.error
    box.set_value(-1.0).run()
    assert any("Toy scale: -1 is not valid: a number above 0" in e.value for e in at.sidebar.error)


def _learn(variant: str):
    from app.screens import learn

    learn.render([], variant=variant)


def test_the_learn_page_teaches_the_toy_lesson(toy):
    at = AppTest.from_function(_learn, args=(toy,), default_timeout=60).run()
    assert not at.exception
    assert any(e.label.startswith("Toy: scaled alphas (this run)") for e in at.expander)
    assert any("The toy lesson" in m.value for m in at.markdown)


def _state(variant: str):
    from app.panels import variant_state
    from engine.nn.supernet import SearchNetwork
    from engine.runs.snapshot import Snapshot

    net = SearchNetwork(4, 3, 3, variant=variant, nodes=4, variant_options={"toy_scale": 2.0})
    snap = Snapshot(run_id="r", run_dir="", state="running", config={"variant": variant, "toy_scale": 2.0},
                    alphas=net.arch_numpy(), weights=net.op_weights())
    variant_state.render(snap, key="t")


def test_the_toy_state_figure_is_drawn(toy):
    from app.figures import variant_state

    a = np.random.default_rng(0).normal(size=(14, 8))
    config = {"variant": toy, "toy_scale": 2.0}
    [(caption, fig)] = variant_state.variant_state_figures(config, {"normal": a, "reduce": a})
    e = np.exp(2 * a - (2 * a).max(axis=1, keepdims=True))
    np.testing.assert_allclose(np.asarray(fig.data[0].z), e / e.sum(axis=1, keepdims=True))
    assert caption == "The toy's op weights." and fig.layout.title.text == "toy: scaled op weights"
    at = AppTest.from_function(_state, args=(toy,), default_timeout=60).run()
    assert not at.exception and len(at.get("plotly_chart")) == 1
    assert any("softmax of the alphas times a scale" in m.value for m in at.markdown)


def test_a_plugins_option_is_recorded_only_in_its_own_runs(toy, smoke):
    """A darts run's config.json does not carry the plugin's option, so it reads back after the plugin is gone;
    the plugin's own run records it."""
    plain, own = smoke.to_dict(), smoke.replace(variant=toy, toy_scale=2.0).to_dict()
    assert "toy_scale" not in plain and own["toy_scale"] == 2.0
    assert "pc_k" in plain and "pc_k" in own  # built-in variants' options are always recorded
    variants.unregister(toy)
    assert SearchConfig.from_dict(plain) == smoke


def test_a_whole_number_is_a_float_options_default_on_another_variants_config(smoke):
    """darts_minus_beta=1 (JSON's 1 for 1.0) on a darts config is the default, not another variant's option."""
    assert SearchConfig.from_dict({**smoke.to_dict(), "darts_minus_beta": 1}) == smoke
    with pytest.raises(ConfigError, match="pc_k"):
        smoke.replace(pc_k=4.0)  # a float is not an integer option's default


def test_a_variants_rules_are_checked_when_the_options_own_rules_fail(smoke):
    """beta_darts with pc_k=3 breaks pc_k's own rule (a divisor of init_channels) and beta_darts's (pc_k stays 4
    unless beta_base=pc_darts): both are reported, so fixing one does not reveal the other."""
    values = {**smoke.replace(variant="beta_darts").to_dict(), "pc_k": 3}
    errors = [allowed for name, allowed in variants.variant_class("beta_darts").option_errors(values)]
    assert len(errors) == 2 and "divisor" in errors[0] and "beta_base=pc_darts" in errors[1], errors

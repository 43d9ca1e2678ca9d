"""The Train page under streamlit.testing's AppTest: pick a genotype and a preset, start, watch, stop."""

from __future__ import annotations

from app import state
from app.screens.train import curves_frame, genotype_choices
from engine.runs import catalog
from tests.waiting import wait_for


def test_choices_and_curves_frame():
    assert genotype_choices([])["known: DARTS_V2"] == "DARTS_V2"
    frame = curves_frame([{"step": 1, "train_acc": 0.5}, {"step": 2, "train_acc": 0.6, "test_acc": 0.55}],
                         ("train_acc", "test_acc"))
    assert list(frame.index) == [1, 2] and frame.loc[2, "test_acc"] == 0.55


def test_start_a_training_watch_it_and_stop_it(app_runs, page):
    at = page("train").run()
    assert not at.exception and any("Start training" in i.value for i in at.info)
    at.selectbox(key="train.genotype").set_value("random cell (seed below)").run()
    at.number_input(key="train.seed").set_value(5).run()
    at.selectbox(key="train.preset").set_value("train-smoke").run()
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, at.exception
    job = state.registry().running() or state.registry().jobs()[-1]
    assert job.kind == "train" and job.source["label"] == "random:5"
    assert wait_for(lambda: job.snapshot().step >= 2, timeout=120)
    next(b for b in at.button if b.key == "train.stop").click().run()
    assert job.join(60)
    at.run()
    assert not at.exception
    info = catalog.list_runs(app_runs)[0]
    assert info.kind == "train" and info.state in ("stopped", "finished")


def test_train_a_recurrent_cell_from_the_page(app_runs, page):
    """A recurrent preset offers the recurrent cells; the training runs as a recurrent one and shows perplexity."""
    from engine.space.rnn.genotype import KNOWN_GENOTYPES
    from engine.space.rnn.train_config import RNNTrainConfig

    assert genotype_choices([], "rnn")["known: DARTS_RNN"] == "DARTS_RNN"
    assert "known: DARTS_V2" not in genotype_choices([], "rnn")
    at = page("train").run()
    at.selectbox(key="train.preset").set_value("rnn-train-smoke").run()
    assert not at.exception
    genotype = at.selectbox(key="train.genotype.rnn")
    assert "known: DARTS_RNN" in genotype.options and "known: DARTS_V2" not in genotype.options
    genotype.set_value("known: DARTS_RNN").run()
    assert not any(b.key == "train.compare.start" for b in at.button)  # the comparison job is convolutional
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, at.exception
    job = state.registry().jobs()[-1]
    assert isinstance(job.config, RNNTrainConfig) and job.genotype == KNOWN_GENOTYPES["DARTS_RNN"]
    assert job.join(120) and job.snapshot().state == "finished"
    at.run()
    assert not at.exception
    metric = next(m for m in at.metric if m.label == "Test perplexity")
    info = catalog.list_runs(app_runs)[0]
    assert (info.kind, info.space) == ("train", "rnn") and metric.value == f"{info.test_ppl:.2f}"


def test_score_a_cell_in_seconds_on_the_train_page(app_runs, page):
    """The chosen cell's proxies at the preset's size, each ranked in the reference set, as `score` computes them."""
    from app.panels import cell_scores
    from engine.derive import proxies
    from engine.space.cnn.genotype import KNOWN_GENOTYPES

    at = page("train").run()
    at.selectbox(key="train.genotype").set_value("known: DARTS_V2").run()
    assert not [d for d in at.dataframe if "percentile" in d.value.columns]  # scored only when asked
    next(b for b in at.button if b.label == cell_scores.SCORE_LABEL).click().run()
    assert not at.exception, at.exception
    frame = next(d.value for d in at.dataframe if "percentile" in d.value.columns)
    want = proxies.score_genotype(KNOWN_GENOTYPES["DARTS_V2"], "train-demo")
    pct = proxies.reference_percentiles(want, proxies.load_reference())
    assert list(frame["score"]) == list(cell_scores.COLUMNS.values())
    assert list(frame["value"]) == [want[k] for k in cell_scores.COLUMNS]
    assert list(frame["percentile"]) == [pct[k] for k in cell_scores.COLUMNS]
    assert any("0 finished train-demo trainings here" in c.value for c in at.caption)

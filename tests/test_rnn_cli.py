"""The recurrent space on the command line beyond search and train: `inspect` of a recurrent genotype (the paper's
23M), refusals when a recurrent and a convolutional option meet, and the search's TensorBoard events."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from engine.runs import rundir
from engine.runs.control import Control
from engine.runs.hooks import Callback
from engine.search.rnn_config import from_rnn_preset
from engine.space.rnn.genotype import KNOWN_GENOTYPES


def test_inspect_counts_the_papers_recurrent_network(cli):
    out = json.loads(cli("inspect", "DARTS_RNN").stdout)
    assert out["space"] == "rnn" and out["parameters"] == 22_960_000  # the paper's 23M (Table 2)
    assert (out["vocab"], out["nhid"]) == (10_000, 850)
    small = json.loads(cli("inspect", "DARTS_RNN", "--vocab", "2000", "--nhid", "32").stdout)
    # embedding (tied decoder) 2000*32, decoder bias 2000, W_0 64x64, eight W_n 32x64
    assert small["parameters"] == 2000 * 32 + 2000 + 64 * 64 + 8 * 32 * 64


def test_inspect_reads_a_recurrent_genotype_file(cli, tmp_path):
    path = tmp_path / "cell.txt"
    path.write_text(KNOWN_GENOTYPES["DARTS_RNN_V1"].to_darts())
    out = json.loads(cli("inspect", str(path)).stdout)
    assert out["genotype"] == KNOWN_GENOTYPES["DARTS_RNN_V1"].to_dict()
    broken = tmp_path / "broken.txt"
    broken.write_text("Genotype(recurrent=[('tanh', 0), ('relu', 9)], concat=range(1, 3))")
    p = cli("inspect", str(broken), check=False)
    assert p.returncode == 2 and p.stderr.startswith("error: ") and len(p.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, says", [
    (("DARTS_RNN", "--layers", "8"), "a recurrent genotype builds a language model"),
    (("DARTS_RNN", "--dataset", "imagenet"), "a recurrent genotype builds a language model"),
    (("DARTS_V2", "--vocab", "5000"), "--vocab and --nhid are for recurrent genotypes"),
    (("DARTS_RNN", "--vocab", "0"), "vocab must be an integer"),
])
def test_inspect_refuses_options_of_the_other_space(cli, args, says):
    p = cli("inspect", *args, check=False)
    assert p.returncode == 2 and says in p.stderr and "Traceback" not in p.stderr


class _StopAt(Callback):
    def __init__(self, control: Control, step: int):
        self.control, self.at = control, step

    def on_step_end(self, event) -> None:
        if event.step >= self.at:
            self.control.stop()


def test_a_recurrent_search_writes_tensorboard_events(tmp_path):
    from engine.runtime.threads import apply_threads
    from engine.search.rnn_loop import run_rnn_search

    apply_threads(1)
    control = Control()
    assert run_rnn_search(from_rnn_preset("rnn-smoke"), tmp_path, control=control,
                          callbacks=[_StopAt(control, 4)]) == "stopped"
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    acc.Reload()
    metrics = rundir.read_metrics(tmp_path)
    for key, tag in (("train_loss", "loss/train"), ("train_ppl", "perplexity/train"),
                     ("valid_ppl", "perplexity/valid")):
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [m["step"] for m in metrics] == [1, 2, 3, 4]
        assert [e.value for e in events] == pytest.approx([m[key] for m in metrics], rel=1e-6)


def test_a_recurrent_epoch_end_gives_tensorboard_its_heatmap_and_cell(tmp_path):
    """The epoch end of a recurrent run, fed to the TensorBoard observer as the loop feeds it (an epoch of the
    embedded corpus is thousands of steps): the 36 x 5 op weights as an image and the cell as the reference's text."""
    import numpy as np

    from engine.runs.hooks import StepEvent
    from engine.runs.tensorboard import TensorBoardLog

    (tmp_path / rundir.CONFIG).write_text(json.dumps({"kind": "rnn_search", "config": {}}))
    log = TensorBoardLog(tmp_path)
    log.on_run_start({})
    alphas = np.random.default_rng(0).normal(size=(36, 5)).round(6).tolist()
    genotype = KNOWN_GENOTYPES["DARTS_RNN"]
    log.on_epoch_end(StepEvent(step=7, epoch=0, status={}, alphas={"step": 7, "epoch": 0, "recurrent": alphas}),
                     {"genotype": genotype.to_dict()})
    log.on_run_end({"state": "stopped"})
    acc = EventAccumulator(str(tmp_path), size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    shot = acc.Images("op_weights/recurrent")
    assert len(shot) == 1 and (shot[0].width, shot[0].height) == (5 * 12, 36 * 12)
    text = acc.Tensors("genotype/text_summary")[0].tensor_proto.string_val[0].decode()
    assert genotype.to_darts() in text


def test_config_prints_the_recurrent_presets(cli):
    search = json.loads(cli("config", "--preset", "rnn-demo", "--set", "bptt=7").stdout)
    assert search["bptt"] == 7 and search["nhid"] == 32 and search["corpus"] == "embedded"
    train = json.loads(cli("config", "--preset", "rnn-train-demo").stdout)
    assert train["nhid"] == 64 and "corpus" in train
    p = cli("config", "--preset", "rnn-demo", "--set", "bptt=0", check=False)
    assert p.returncode == 2 and p.stderr.strip() == "error: bptt=0 is not valid: an integer from 1 to 4096"


def test_a_recurrent_training_writes_tensorboard_events_with_its_perplexities(tmp_path):
    from engine.runtime.threads import apply_threads
    from engine.space.rnn.train_config import from_rnn_train_preset
    from engine.train.rnn_loop import run_rnn_training

    apply_threads(1)
    config = from_rnn_train_preset("rnn-train-smoke", {"epochs": 1})
    assert run_rnn_training(config, KNOWN_GENOTYPES["DARTS_RNN"], tmp_path,
                            source={"kind": "known", "label": "DARTS_RNN"}) == "finished"
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    acc.Reload()
    metrics = rundir.read_metrics(tmp_path)
    tested = [m for m in metrics if "test_ppl" in m]
    assert [e.value for e in acc.Scalars("perplexity/test")] == pytest.approx([m["test_ppl"] for m in tested])
    assert [e.step for e in acc.Scalars("loss/train")] == [m["step"] for m in metrics if "train_loss" in m]


def test_derive_reads_a_recurrent_run_and_an_alphas_file(cli, tmp_path):
    from engine.runs import examples
    from engine.space import get_space
    from engine.space.weights import softmax

    shipped = examples.example("rnn-demo")
    out = cli("derive", str(shipped.path)).stdout.strip()
    assert out == rundir.latest_genotype(shipped.path).to_darts()  # the run's final cell, derived again
    last = rundir.read_alphas(shipped.path)[-1]
    path = tmp_path / "alphas.json"
    path.write_text(json.dumps({"recurrent": last["recurrent"]}))
    want = get_space("rnn").derive({"recurrent": softmax(np.asarray(last["recurrent"]))})
    assert cli("derive", str(path)).stdout.strip() == want.to_darts()
    p = cli("derive", str(shipped.path), "--max-skip", "2", check=False)
    assert p.returncode == 2 and "a recurrent cell has none" in p.stderr


def test_score_refuses_a_recurrent_cell_in_one_line(cli):
    p = cli("score", "DARTS_RNN", check=False)
    assert p.returncode == 2 and p.stderr.strip().startswith("error: DARTS_RNN is a recurrent cell")
    assert "Traceback" not in p.stderr

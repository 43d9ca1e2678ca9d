"""Training a recurrent genotype's network (engine/train/rnn_loop.py) and `python -m engine train` for recurrent cells:
its config and presets, that it learns, the switch to ASGD, exact resume, the genotype sources and the command line."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.__main__ import main
from engine.core.config import ConfigError
from engine.runs import rundir
from engine.space.rnn.genotype import KNOWN_GENOTYPES, Genotype
from engine.space.rnn.train_config import RNN_TRAIN_PRESETS, RNNTrainConfig, from_rnn_train_preset
from tests.waiting import StopAt

ROOT = Path(__file__).resolve().parents[1]
DARTS_RNN = KNOWN_GENOTYPES["DARTS_RNN"]
_PACE = ("steps_per_s", "wall_s", "time")  # how fast, not what: differs between two runs of the same training


# ---------------------------------------------------------------- the config

def test_the_paper_preset_is_appendix_a22_and_needs_the_users_corpus(tmp_path):
    with pytest.raises(ConfigError, match="^corpus='embedded' is not valid: a directory with Penn Treebank"):
        from_rnn_train_preset("darts-ptb-eval")
    cfg = from_rnn_train_preset("darts-ptb-eval", {"corpus": str(tmp_path)})
    assert (cfg.emsize, cfg.nhid, cfg.bptt, cfg.batch_size, cfg.lr, cfg.clip, cfg.weight_decay) == (
        850, 850, 35, 64, 20.0, 0.25, 8e-7)
    assert (cfg.dropout, cfg.dropouth, cfg.dropoutx, cfg.dropouti, cfg.dropoute) == (0.75, 0.25, 0.75, 0.2, 0.1)
    assert (cfg.asgd, cfg.nonmono, cfg.eval_batch_size, cfg.test_batch_size) == (True, 5, 10, 1)
    demo = RNN_TRAIN_PRESETS["rnn-train-demo"]
    assert demo.corpus == "embedded" and demo.emsize == demo.nhid <= 64 and demo.max_vocab == 2000
    with pytest.raises(ConfigError, match="^preset='rnn-huge'"):
        from_rnn_train_preset("rnn-huge")
    with pytest.raises(ConfigError, match="^nhidd=.*unknown field"):
        from_rnn_train_preset("rnn-train-smoke", {"nhidd": 3})


@pytest.mark.parametrize("changes,field", [
    ({"nhid": 0, "emsize": 0}, "emsize"), ({"emsize": 16}, "emsize"), ({"bptt": 0}, "bptt"),
    ({"batch_size": 0}, "batch_size"), ({"test_batch_size": 1.5}, "test_batch_size"), ({"epochs": 0}, "epochs"),
    ({"lr": 0}, "lr"), ({"clip": -1}, "clip"), ({"weight_decay": -1e-7}, "weight_decay"),
    ({"tar_beta": float("nan")}, "tar_beta"), ({"asgd": 1}, "asgd"), ({"nonmono": -1}, "nonmono"),
    ({"dropoute": 1.0}, "dropoute"), ({"max_vocab": 2}, "max_vocab"), ({"corpus": " "}, "corpus"),
    ({"seed": -1}, "seed"),
])
def test_a_bad_field_is_named(changes, field):
    with pytest.raises(ConfigError) as err:
        RNNTrainConfig(**changes)
    assert err.value.field == field


def test_the_switch_to_asgd_is_the_references_non_monotone_rule():
    from engine.train.rnn_loop import switches_to_asgd

    # worse than the best of the epochs before the last `nonmono`, after more than `nonmono` epochs
    assert switches_to_asgd([5.0, 4.0, 3.9, 3.8], 4.5, 2)        # 4.5 > min(5.0, 4.0)
    assert not switches_to_asgd([5.0, 4.0, 3.9, 3.8], 3.95, 2)   # still better than 4.0: improving
    assert not switches_to_asgd([5.0, 4.0], 6.0, 2)              # too few epochs yet
    assert switches_to_asgd([5.0], 5.1, 0) and not switches_to_asgd([], 9.0, 0)


# ---------------------------------------------------------------- the job

def _corpus(tmp_path: Path) -> Path:
    rng = np.random.default_rng(5)
    words = [f"w{k}" for k in range(20)]
    corpus = tmp_path / "corpus"
    corpus.mkdir(exist_ok=True)
    for split, lines in (("train", 60), ("valid", 12), ("test", 12)):
        # a learnable text: each word mostly followed by its successor
        text = []
        for _ in range(lines):
            k = int(rng.integers(20))
            text.append(" ".join(words[(k + i + int(rng.random() < 0.2)) % 20] for i in range(8)))
        (corpus / f"{split}.txt").write_text("\n".join(text) + "\n")
    return corpus


def _config(tmp_path: Path, **changes) -> RNNTrainConfig:
    base = {"corpus": str(_corpus(tmp_path)), "max_vocab": 30, "device": "cpu", "batch_size": 4, "bptt": 8,
            "eval_batch_size": 4, "test_batch_size": 2, "epochs": 3}
    return from_rnn_train_preset("rnn-train-smoke", base | changes)


def _rows(run: Path) -> list[dict]:
    return [{k: v for k, v in m.items() if k not in _PACE} for m in rundir.read_metrics(run)]


def test_training_learns_and_ends_with_the_test_perplexity_of_the_best_weights(tmp_path):
    from engine.train.rnn_loop import run_rnn_training

    # the embedded corpus (a capped vocabulary): real text, where a few steps already learn the frequent words
    cfg = from_rnn_train_preset("rnn-train-smoke", {"epochs": 3, "nonmono": 5, "device": "cpu"})
    run = tmp_path / "run"
    run.mkdir()
    assert run_rnn_training(cfg, DARTS_RNN, run, source={"kind": "known", "label": "DARTS_RNN"}) == "finished"
    record = rundir.read_config(run)
    assert record["kind"] == "rnn_train" and Genotype.from_dict(record["genotype"]) == DARTS_RNN
    assert record["source"]["label"] == "DARTS_RNN" and record["dataset"]["num_test"] > 0
    ends = [m for m in rundir.read_metrics(run) if "valid_ppl" in m]
    assert [m["step"] for m in ends] == [record["steps_per_epoch"] * k for k in (1, 2, 3)]
    vocab = record["dataset"]["num_classes"]
    # a uniform guess scores ln(vocab): the first epoch already does much better; the training loss falls
    assert ends[0]["valid_loss"] < math.log(vocab) - 0.5
    first = rundir.read_metrics(run)[0]
    assert first["step"] == 1 and ends[-1]["train_loss"] < first["train_loss"] - 0.3
    assert ends[-1]["best_valid_ppl"] == min(m["valid_ppl"] for m in ends)
    last = ends[-1]
    assert math.isfinite(last["test_ppl"]) and last["test_ppl"] == pytest.approx(math.exp(last["test_loss"]))
    assert [m for m in rundir.read_metrics(run) if "test_ppl" in m] == [last]  # measured once, at the end
    assert last["test_ppl"] < vocab / 2


def test_a_stopped_and_resumed_training_writes_what_an_unstopped_one_does(tmp_path):
    """Stopped mid-epoch under SGD, resumed, stopped again mid-epoch after the switch to ASGD, resumed to the end:
    the hidden state, the dropout masks, ASGD's averages and the best weights all come back from checkpoints."""
    from engine.runs.control import Control
    from engine.train.rnn_loop import run_rnn_training

    # the smoke preset switches (nonmono=0) when its second epoch's validation is worse than its first
    cfg = from_rnn_train_preset("rnn-train-smoke", {"epochs": 3, "device": "cpu"})
    full = tmp_path / "full"
    full.mkdir()
    assert run_rnn_training(cfg, DARTS_RNN, full) == "finished"
    rows = _rows(full)
    spe = rundir.read_config(full)["steps_per_epoch"]
    switched = [m["step"] for m in rows if m.get("switched_to") == "asgd"]
    assert switched and switched[0] < 3 * spe and any(m["optimizer"] == "asgd" for m in rows)

    part = tmp_path / "part"
    part.mkdir()
    control = Control()
    assert run_rnn_training(cfg, DARTS_RNN, part, control=control, callbacks=[StopAt(spe // 2, control)]) == "stopped"
    control = Control()
    second_stop = switched[0] + 2  # a few steps into ASGD, mid-epoch
    assert run_rnn_training(cfg, DARTS_RNN, part, control=control, callbacks=[StopAt(second_stop, control)],
                            resume=True) == "stopped"
    assert rundir.read_status(part)["step"] == second_stop
    assert run_rnn_training(cfg, DARTS_RNN, part, resume=True) == "finished"
    assert _rows(part) == rows  # every loss, perplexity and the switch, step for step


def test_a_resume_that_would_train_something_else_is_refused(tmp_path):
    from engine.runs.control import Control
    from engine.runs.snapshot import SnapshotBox
    from engine.train.rnn_loop import run_rnn_training

    cfg = _config(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    control = Control()
    run_rnn_training(cfg, DARTS_RNN, run, control=control, callbacks=[StopAt(2, control)])
    box = SnapshotBox()
    assert run_rnn_training(cfg.replace(nhid=16, emsize=16), DARTS_RNN, run, resume=True, box=box) == "failed"
    assert box.get().error.startswith("emsize=16 is not valid: 8, as the run was trained with")
    other = KNOWN_GENOTYPES["DARTS_RNN_V1"]
    assert run_rnn_training(cfg, other, run, resume=True, box=box) == "failed"
    assert "another genotype" in box.get().error
    assert rundir.read_status(run)["state"] == "stopped"  # a refused resume leaves the run as it was


def test_a_convolutional_cell_or_a_bad_corpus_fails_before_anything_is_written(tmp_path):
    from engine.runs.snapshot import SnapshotBox
    from engine.space.cnn.genotype import KNOWN_GENOTYPES as CNN
    from engine.train.rnn_loop import run_rnn_training

    box = SnapshotBox()
    run = tmp_path / "run"
    run.mkdir()
    assert run_rnn_training(_config(tmp_path), CNN["DARTS_V2"], run, box=box) == "failed"
    assert "a recurrent cell" in box.get().error and not run.exists()
    run.mkdir()
    assert run_rnn_training(_config(tmp_path, corpus=str(tmp_path / "nowhere")), DARTS_RNN, run, box=box) == "failed"
    assert box.get().error.startswith("corpus=") and "does not exist" in box.get().error
    run.mkdir()
    assert run_rnn_training(_config(tmp_path, batch_size=10_000), DARTS_RNN, run, box=box) == "failed"
    assert box.get().error.startswith("batch_size=10000")


# ---------------------------------------------------------------- what `train` accepts as a recurrent cell

def test_recurrent_cells_come_from_names_files_search_runs_and_random(tmp_path):
    from engine.train.source import GenotypeSourceError, random_rnn_genotype, resolve_genotype, space_of

    genotype, source = resolve_genotype("DARTS_RNN")
    assert genotype == DARTS_RNN and space_of(genotype) == "rnn" and source["kind"] == "known"
    cell = tmp_path / "cell.txt"
    cell.write_text(f"DARTS_X = {DARTS_RNN.to_darts()}\n")
    assert resolve_genotype(str(cell))[0] == DARTS_RNN
    cell.write_text("Genotype(recurrent=[('softmax', 0)], concat=range(1, 2))")
    with pytest.raises(GenotypeSourceError, match="unknown op|softmax"):
        resolve_genotype(str(cell))

    search = tmp_path / "search"
    search.mkdir()
    (search / rundir.CONFIG).write_text(json.dumps({"kind": "rnn_search", "config": {"epochs": 1}}))
    v1 = KNOWN_GENOTYPES["DARTS_RNN_V1"]
    rows = [{"step": 5, "epoch": 0, "kind": "epoch_end", "genotype": v1.to_dict()},
            {"step": 10, "epoch": 1, "kind": "final", "genotype": DARTS_RNN.to_dict()}]
    (search / rundir.GENOTYPES).write_text("".join(json.dumps(r) + "\n" for r in rows))
    genotype, source = resolve_genotype(str(search))
    assert genotype == DARTS_RNN and source["kind"] == "search" and source["step"] == 10
    assert resolve_genotype(f"{search}@5")[0] == v1

    drawn, source = resolve_genotype("random:7", "rnn")
    assert drawn == random_rnn_genotype(7) and source["space"] == "rnn" and drawn.nodes == 8
    assert all(op != "none" and 0 <= j <= i for i, (op, j) in enumerate(drawn.recurrent))
    assert space_of(resolve_genotype("random:7")[0]) == "cnn"  # the convolutional space unless asked


# ---------------------------------------------------------------- the command line

def test_train_runs_a_recurrent_cell_end_to_end_and_resumes(runs_dir, capsys):
    assert main(["train", "DARTS_RNN", "--preset", "rnn-train-smoke", "-q", "--set", "epochs=1"]) == 0
    err = capsys.readouterr().err
    (run,) = runs_dir.iterdir()
    assert err.strip().splitlines()[-1].startswith(f"finished: {run} test_ppl ")
    record = rundir.read_config(run)
    assert record["kind"] == "rnn_train" and record["source"] == {"kind": "known", "name": "DARTS_RNN",
                                                                  "label": "DARTS_RNN"}
    assert record["config"]["epochs"] == 1 and Genotype.from_dict(record["genotype"]) == DARTS_RNN
    assert main(["train", "--resume", str(run), "-q"]) == 0  # through the recurrent path: nothing left to do
    assert rundir.read_status(run)["state"] == "finished"


@pytest.mark.parametrize("args,needle", [
    (["DARTS_RNN", "--preset", "train-smoke"], "DARTS_RNN is a recurrent cell and train-smoke a convolutional preset"),
    (["DARTS_V2", "--preset", "rnn-train-smoke"], "DARTS_V2 is a convolutional cell and rnn-train-smoke a recurrent"),
    (["DARTS_RNN", "--preset", "darts-ptb-eval"], "corpus='embedded' is not valid"),
    (["DARTS_RNN", "--preset", "rnn-train-smoke", "--set", "nhid=9"], "emsize=8 is not valid: equal to nhid (9)"),
    (["DARTS_RNN", "--preset", "rnn-train-smoke", "--set", "asgd=maybe"], "asgd"),
    (["DARTS_RNN", "--preset", "rnn-train-smoke", "--set", "corpus=/nowhere/at/all"], "does not exist"),
    (["DARTS_RNN", "--set", "init_channels=8"], "init_channels"),  # a convolutional field for a recurrent cell
])
def test_bad_input_exits_2_with_one_line_and_no_run(args, needle, runs_dir, capsys):
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not list(runs_dir.iterdir())


def test_ctrl_c_stops_a_recurrent_training_with_a_checkpoint_and_it_resumes(runs_dir):
    from engine.train.rnn_loop import RNN_TRAIN_FORMAT
    from tests.waiting import wait_for

    proc = subprocess.Popen([sys.executable, "-m", "engine", "train", "DARTS_RNN", "--preset", "rnn-train-smoke",
                             "--runs-dir", str(runs_dir), "--set", "epochs=50"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(rundir.read_status(p).get("step", 0) >= 2 for p in runs_dir.iterdir()), timeout=60)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    (run,) = runs_dir.iterdir()
    status = rundir.read_status(run)
    assert status["state"] == "stopped"
    from engine.runs.checkpoint import load_checkpoint

    assert load_checkpoint(run / rundir.CHECKPOINT, RNN_TRAIN_FORMAT, ("step", "hidden"))["step"] == status["step"]
    assert main(["train", "--resume", str(run), "-q", "--set", "epochs=1"]) == 2  # a resume keeps what it learns


def _rnn_search_dir(tmp_path: Path) -> Path:
    search = tmp_path / "search"
    search.mkdir()
    (search / rundir.CONFIG).write_text(json.dumps({"kind": "rnn_search", "config": {"epochs": 1}}))
    row = {"step": 10, "epoch": 0, "kind": "final", "genotype": KNOWN_GENOTYPES["DARTS_RNN_V1"].to_dict()}
    (search / rundir.GENOTYPES).write_text(json.dumps(row) + "\n")
    return search


def test_compare_trains_a_recurrent_searchs_cell_beside_darts_rnn_and_random_cells(tmp_path, runs_dir, capsys):
    search = _rnn_search_dir(tmp_path)
    # no preset: the search is recurrent, so the cells are compared as recurrent cells (rnn-train-demo's settings)
    assert main(["compare", str(search), "--random", "1", "-q", "--set", "epochs=1", "--set", "max_vocab=50",
                 "--set", "emsize=8", "--set", "nhid=8", "--set", "batch_size=512", "--set", "test_batch_size=64",
                 "--set", "eval_batch_size=64"]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert table[0].split()[:2] == ["cell", "test_ppl"] and [line.split()[0] for line in table[1:]] == [
        "found", "DARTS_RNN", "random:0"]
    assert all(float(line.split()[1]) > 1 for line in table[1:])
    trained = sorted(rundir.read_config(p)["genotype"]["recurrent"] == [list(x) for x in KNOWN_GENOTYPES[
        "DARTS_RNN_V1"].recurrent] for p in runs_dir.iterdir())
    assert trained == [False, False, True]  # the found cell is the search's final one
    assert all(rundir.read_config(p)["kind"] == "rnn_train" for p in runs_dir.iterdir())


def test_compare_refuses_a_recurrent_search_with_a_convolutional_preset(tmp_path, runs_dir, capsys):
    assert main(["compare", str(_rnn_search_dir(tmp_path)), "--preset", "train-smoke", "--random", "0"]) == 2
    err = capsys.readouterr().err
    assert "holds a recurrent cell; compare it with a recurrent preset" in err and len(err.strip().splitlines()) == 1
    assert not list(runs_dir.iterdir())

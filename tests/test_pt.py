"""Perturbation-based derivation (engine/derive/pt.py) on smoke searches: a planted op, weights-only
fine-tuning, resuming a killed PT, and the inputs it refuses."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.core.atomic import read_jsonl
from engine.derive import pt
from engine.runs import rundir
from engine.runs.checkpoint import load_checkpoint, save_checkpoint
from engine.space.cnn.cell import PRIMITIVES, edge_endpoints
from engine.space.cnn.genotype import derive_genotype

ROOT = Path(__file__).resolve().parents[1]
PLANTED, DECOY = "sep_conv_3x3", "dil_conv_5x5"
NODES = 2  # the smallest cell with a node decision (node 1 picks 2 of its 3 inputs): fewer rounds, same algorithm


def _files(run_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run_dir.iterdir()) if p.is_file()}


def _without_timing(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, smoke):
    """A finished smoke search of NODES nodes and 4 cells (the last one a normal cell, which PT decides first:
    see _plant); copied per test by `fresh_run`."""
    from engine.search.loop import run_search

    run_dir = tmp_path_factory.mktemp("pt") / "search"
    run_dir.mkdir()
    assert run_search(smoke.replace(nodes=NODES, layers=4), run_dir) == "finished"
    return run_dir


@pytest.fixture
def fresh_run(smoke_run, tmp_path):
    def copy(name="run"):
        return Path(shutil.copytree(smoke_run, tmp_path / name))
    return copy


def test_fine_tuning_changes_the_weights_and_never_the_alphas(fresh_run):
    ckpt = load_checkpoint(fresh_run() / rundir.CHECKPOINT)
    config, data, net = pt._data_and_net(ckpt)
    alphas = [p.detach().clone() for p in net.arch_parameters()]
    weights = [p.detach().clone() for p in net.weight_parameters()]
    # an optimiser that holds the alphas too, with weight decay: fine_tune itself must keep them where they are
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    proj = pt._Projection(net.op_weights(), config.nodes)
    loss = pt.fine_tune(net, optimizer, pt._tune_batches(data, config.batch_size, 0, 2), proj.weights(), 2, 5.0)
    assert np.isfinite(loss)
    assert all(torch.equal(a, p) for a, p in zip(alphas, net.arch_parameters(), strict=True))
    assert all(p.requires_grad for p in net.arch_parameters())  # handed back as they were
    changed = [not torch.equal(w, p) for w, p in zip(weights, net.weight_parameters(), strict=True)]
    assert sum(changed) > len(changed) // 2


def _plant(run_dir: Path, nodes: int) -> tuple[int, int]:
    """Rewrite the run's checkpoint so that one op of one normal edge carries all the signal the classifier
    reads, while another op of that edge has the larger alpha. Returns (seed, edge): a PT seed whose first
    decision (the normal cell's first edge, before any projection or fine-tuning has changed the network) is
    the planted edge, an edge into node 0, which keeps both its inputs."""
    seed = next(s for s in range(100) if pt.edge_order(nodes, s)["normal"][0] in (0, 1))
    edge = pt.edge_order(nodes, seed)["normal"][0]
    other = 1 - edge
    path = run_dir / rundir.CHECKPOINT
    ckpt = load_checkpoint(path)
    config, data, net = pt._data_and_net(ckpt)
    col = {name: k for k, name in enumerate(PRIMITIVES)}
    last = net.cells[-1]
    assert not last.reduction
    with torch.no_grad():
        a = net.alphas_normal
        # The planted edge: the decoy's alpha is the largest, the planted op's second; the parameter-free ops get
        # a weight of about e^-30 (nothing to zero in them).
        a[edge] = -30.0
        a[edge, col[DECOY]], a[edge, col[PLANTED]], a[edge, col["none"]] = 3.0, 1.0, 0.0
        a[other] = -30.0
        a[other, col["none"]] = 0.0  # node 0's other input carries nothing
        # every parameterised op of the planted edge but the planted one outputs zero (BatchNorm of 0 is 0), in
        # every normal cell (they share the alphas, so masking an op masks it in all of them)
        for cell in net.cells:
            for k, op in enumerate(cell.edges[edge].ops):
                if not cell.reduction and PRIMITIVES[k] != PLANTED:
                    for p in op.parameters():
                        p.zero_()
    weights = {k: torch.tensor(v) for k, v in net.op_weights().items()}
    batches = list(data.batches("valid", 0, config.batch_size))[:1]  # what PT reads with eval_batches=1
    # The classifier reads node 0 of the last cell only (its first C channels), fitted so that the network as it
    # stands labels every validation image right. BatchNorm makes each batch's pooled features sum to zero,
    # so the targets are centred per batch (which keeps each row's largest entry where it was).
    last_C = last.preprocess1.op[1].out_channels
    feats = []
    hook = net.global_pooling.register_forward_hook(lambda m, i, o: feats.append(o.flatten(1)[:, :last_C]))
    pt.evaluate(net, batches, weights)
    hook.remove()
    Phi = torch.cat(feats).double()
    targets = []
    for _, y in batches:
        t = 10.0 * torch.nn.functional.one_hot(y, data.num_classes).double()
        targets.append(t - t.mean(0))
    W = torch.linalg.lstsq(Phi, torch.cat(targets)).solution  # (C, classes)
    with torch.no_grad():
        net.classifier.weight.zero_()
        net.classifier.weight[:, :last_C] = W.T.float()
        net.classifier.bias.zero_()
        net.classifier.bias[0] = 1e-3  # without node 0's signal every image is called class 0
    ckpt["model"] = net.state_dict()
    save_checkpoint(path, {k: v for k, v in ckpt.items() if k != "format"})
    # the plant holds: full accuracy with the op, the share of class 0 (chance) without it
    assert pt.evaluate(net, batches, weights)[0] == 1.0
    masked = {k: v.clone() for k, v in weights.items()}
    masked["normal"][edge, col[PLANTED]] = 0.0
    labels = torch.cat([y for _, y in batches])
    assert pt.evaluate(net, batches, masked)[0] == pytest.approx(float((labels == 0).float().mean()))
    return seed, edge


def test_pt_keeps_the_planted_op_where_its_alpha_is_not_the_largest(fresh_run):
    run_dir = fresh_run()
    nodes = NODES
    seed, edge = _plant(run_dir, nodes)
    before = _files(run_dir)
    seen = []
    options = pt.PTOptions.of(tune_steps=1, eval_batches=1, seed=seed)
    result = pt.run_pt(run_dir, options, progress=lambda done, total, row: seen.append((done, total)))
    row = next(r for r in result.rows if r["kind"] == "op" and r["cell"] == "normal" and r["edge"] == edge)
    assert row["argmax"] == DECOY and row["chosen"] == PLANTED
    assert row["masked"][PLANTED]["acc"] < min(v["acc"] for k, v in row["masked"].items() if k != PLANTED)
    src = edge_endpoints(nodes)[edge][0]
    assert (PLANTED, src) in result.genotype.cell_nodes("normal")[0]
    # the alpha-argmax rule, on the same (planted) alphas, keeps the decoy
    ckpt = load_checkpoint(run_dir / rundir.CHECKPOINT)
    argmax = derive_genotype(ckpt["model"]["alphas_normal"], ckpt["model"]["alphas_reduce"])
    assert (DECOY, src) in argmax.cell_nodes("normal")[0]
    # every decision reported, in order; the search's own files untouched, PT's two files added
    total = sum(len(r) for r in pt.plan(nodes, seed))
    assert seen == [(k + 1, total) for k in range(total)]
    after = _files(run_dir)
    assert {k: v for k, v in after.items() if k not in (pt.ROWS, pt.STATE)} == before
    assert set(after) - set(before) == {pt.ROWS, pt.STATE}
    assert [json.loads(line) for line in (run_dir / pt.ROWS).read_text().splitlines()] == result.rows


class _Killed(Exception):
    pass


def test_a_killed_pt_resumes_to_the_same_cell(fresh_run):
    options = pt.PTOptions.of(tune_steps=2, eval_batches=1, seed=3)
    whole = pt.run_pt(fresh_run("whole"), options)
    run_dir = fresh_run("killed")

    def kill(done, total, row):
        if done == 5:
            raise _Killed

    with pytest.raises(_Killed):
        pt.run_pt(run_dir, options, progress=kill)
    # killed after its state was saved but before all of the round's rows reached pt.jsonl
    lines = (run_dir / pt.ROWS).read_text().splitlines(keepends=True)
    (run_dir / pt.ROWS).write_text("".join(lines[:-1]))
    resumed = pt.run_pt(run_dir, options)
    assert resumed.resumed_from > 0
    assert resumed.genotype == whole.genotype
    assert _without_timing(resumed.rows) == _without_timing(whole.rows)
    assert _without_timing(read_jsonl(run_dir / pt.ROWS)) == _without_timing(whole.rows)
    # the alphas PT leaves in its state are the search's
    state = torch.load(run_dir / pt.STATE, weights_only=True)
    ckpt = load_checkpoint(run_dir / rundir.CHECKPOINT)
    for key in ("alphas_normal", "alphas_reduce"):
        assert torch.equal(state["model"][key], ckpt["model"][key])
    # a finished PT asked again returns its cell without a new decision
    again = pt.run_pt(run_dir, options)
    assert again.genotype == whole.genotype and again.resumed_from == len(pt.plan(NODES, 3))
    # other options on the same run: refused, nothing lost
    with pytest.raises(pt.PTError, match="other options"):
        pt.run_pt(run_dir, pt.PTOptions.of(tune_steps=3, eval_batches=1, seed=3))
    assert _without_timing(read_jsonl(run_dir / pt.ROWS)) == _without_timing(whole.rows)


def test_pt_refuses_what_it_cannot_use_in_one_line(fresh_run, tmp_path):
    recording = Path(shutil.copytree(ROOT / "assets" / "runs" / "20261201T072309Z-example-demo", tmp_path / "rec"))
    with pytest.raises(pt.PTError, match="no checkpoint.pt"):
        pt.run_pt(recording)
    running = fresh_run("running")
    status = rundir.read_status(running)
    status |= {"state": "running", "host": socket.gethostname(), "pid": os.getpid(), "updated": time.time()}
    (running / rundir.STATUS).write_text(json.dumps(status))
    with pytest.raises(pt.PTError, match="still running"):
        pt.run_pt(running)
    for bad in (dict(tune_steps=0), dict(eval_batches=0), dict(seed=-1)):
        with pytest.raises(pt.PTError) as e:
            pt.PTOptions.of(**bad)
        assert "\n" not in str(e.value)
    assert not any((d / f).exists() for d in (recording, running) for f in (pt.ROWS, pt.STATE))


def test_derive_pt_command_prints_the_cell(fresh_run, capsys):
    import argparse

    from engine.cli.common import BadInput
    from engine.cli.score import cmd_derive_pt

    run_dir = fresh_run()
    args = argparse.Namespace(source=str(run_dir), format="json", tune_steps=1, eval_batches=1, seed=0)
    assert cmd_derive_pt(args) == 0
    captured = capsys.readouterr()
    rows = read_jsonl(run_dir / pt.ROWS)
    assert json.loads(captured.out) == pt.genotype_of_rows(rows, NODES).to_dict()
    assert captured.err.count("pt ") == len(rows)
    with pytest.raises(BadInput, match="search run directory"):
        cmd_derive_pt(argparse.Namespace(source=str(run_dir / "nope.json"), format="darts", tune_steps=None,
                                         eval_batches=None, seed=0))


def test_the_runs_page_shows_both_rules_side_by_side(fresh_run, tmp_path, monkeypatch, page):
    """A planted PT in a runs root: the Runs page draws the weights beside the measured accuracies, names the
    planted edge as a disagreement, and draws both cells; the rows read without torch give PT's cell."""
    from app import state
    from app.figures import alt
    from app.figures import pt as pt_figures
    from app.figures.labels import input_name
    from engine.derive import rows as pt_rows
    from tests.conftest import reset_streamlit_caches

    root = tmp_path / "root"
    root.mkdir()
    run_dir = Path(shutil.copytree(fresh_run(), root / "20260101T000000Z-planted"))
    seed, edge = _plant(run_dir, NODES)
    src = edge_endpoints(NODES)[edge][0]
    result = pt.run_pt(run_dir, pt.PTOptions.of(tune_steps=1, eval_batches=1, seed=seed))
    rows = pt_rows.read_rows(run_dir)
    assert len(rows) == pt_rows.decisions(NODES) == sum(len(r) for r in pt.plan(NODES, seed))
    assert pt_rows.genotype_of_rows(rows, NODES) == result.genotype
    assert pt_rows.genotype_of_rows(rows[:-1], NODES) is None   # a PT stopped part way has no cell yet

    lines = pt_figures.disagreements(rows)
    where = f"normal cell, edge {input_name(src)} -> {edge_endpoints(NODES)[edge][1]}:"
    planted = [line for line in lines if line.startswith(where)]
    assert len(planted) == 1 and f"largest op weight is {DECOY}" in planted[0] and f"PT keeps {PLANTED}" in planted[0]
    assert len(lines) == sum(r["kind"] == "op" and r["chosen"] != r["argmax"] for r in rows)
    acc = pt_figures.masked_accuracy(rows, "normal", NODES)
    assert acc[edge, PRIMITIVES.index(PLANTED)] == next(
        r for r in rows if r["kind"] == "op" and r["cell"] == "normal" and r["edge"] == edge)["masked"][PLANTED]["acc"]
    assert np.isnan(acc[:, PRIMITIVES.index("none")]).all()

    # lines that parse but are no rows of this cell (an edge past the cell, an op that is no primitive, a list)
    # are skipped, not drawn
    with open(run_dir / pt_rows.ROWS, "a") as f:
        f.write(json.dumps({**rows[0], "edge": 999}) + "\n" + json.dumps({**rows[0], "chosen": "bogus"}) + "\n"
                + json.dumps([1, 2]) + "\n" + json.dumps({**rows[0], "masked": {}}) + "\n")
    assert pt_rows.read_rows(run_dir, NODES) == rows

    monkeypatch.setenv("DARTBOARD_RUNS", str(root))
    reset_streamlit_caches()
    try:
        at = page("runs", timeout=120).run()
        assert not at.exception, at.exception
        text = " ".join(m.value for m in at.markdown)
        assert "Where the two rules disagree" in text and planted[0] in text
        alts = [c.proto.alt for c in at.get("vega_lite_chart")]   # a chart's alt names its title
        assert sum("accuracy with the op removed" in a for a in alts) == 2
        assert sum(": op weights" in a for a in alts) == 2
        [both] = [d.value for d in at.dataframe if {"alpha argmax", "PT"} <= set(d.value.columns)]
        assert ((both["cell"] == "normal") & (both["PT"] == f"{PLANTED} <- {input_name(src)}")).any()
        cells_drawn = [c.proto.alt for c in at.get("graphviz_chart")]
        assert alt.cell_alt(result.genotype, "normal") in cells_drawn
    finally:
        state.registry().shutdown(timeout=30)
        reset_streamlit_caches()


def test_pt_runs_from_the_runs_page_and_a_stop_keeps_what_it_decided(fresh_run, tmp_path, monkeypatch, page):
    """The Runs page's Run DARTS-PT: a PTJob in a daemon thread; Stop ends it between decisions with its state saved,
    and the same options continue it to the cell an uninterrupted PT finds."""
    from app.panels import pt_run
    from engine.derive import rows as pt_rows
    from engine.jobs.pt_job import PTJob
    from tests.conftest import reset_streamlit_caches

    options = pt.PTOptions.of(tune_steps=1, eval_batches=1, seed=0)
    whole = pt.run_pt(fresh_run("whole"), options)

    # a job stopped after its first decision: fewer rows than the plan, none lost, the run's files untouched
    stopped_dir = fresh_run("stopped")
    before = _files(stopped_dir)
    job = PTJob(stopped_dir, options, NODES)
    job.stop()  # asked before it starts: it ends at its first report
    job.start()
    assert job.join(120) and job.state == "stopped"
    made = pt_rows.read_rows(stopped_dir, NODES)
    assert 0 < len(made) < job.total
    assert {k: v for k, v in _files(stopped_dir).items() if k in before} == before
    again = PTJob(stopped_dir, options, NODES).start()
    assert again.join(300) and again.state == "finished" and again.genotype == whole.genotype

    # from the page: the button starts it, the view appears once it has finished
    root = tmp_path / "root"
    root.mkdir()
    run_dir = Path(shutil.copytree(fresh_run("page"), root / "20260101T000000Z-pt-page"))
    monkeypatch.setenv("DARTBOARD_RUNS", str(root))
    reset_streamlit_caches()
    at = page("runs").run()
    assert not at.exception
    start = next(b for b in at.button if b.label == pt_run.RUN_LABEL)
    assert not start.disabled
    at.number_input(key="runs.pt_run.tune").set_value(1).run()
    at.number_input(key="runs.pt_run.eval").set_value(1).run()
    next(b for b in at.button if b.label == pt_run.RUN_LABEL).click().run()
    assert not at.exception
    job = pt_run._jobs()[run_dir.name]
    assert job.join(300) and job.state == "finished", job.error
    at.run()
    assert not at.exception
    assert any(m.value.startswith("**Two ways to read this supernet") for m in at.markdown)
    assert not [b for b in at.button if b.label in (pt_run.RUN_LABEL, "Continue DARTS-PT")]
    assert pt_rows.genotype_of_rows(pt_rows.read_rows(run_dir, NODES), NODES) == whole.genotype
    reset_streamlit_caches()


def test_pt_is_not_offered_where_it_cannot_run(fresh_run, tmp_path):
    from app.panels import pt_run
    from engine.runs import examples
    from engine.runs.catalog import run_info

    run_dir = fresh_run("no-ckpt")
    (run_dir / rundir.CHECKPOINT).unlink()
    assert pt_run.can_run(run_info(run_dir)) == "the run has no checkpoint.pt"
    demo = examples.example("demo")
    assert pt_run.can_run(demo) == "a shipped recording has no checkpoint to measure"
    rnn = examples.example("rnn-demo")
    assert pt_run.can_run(rnn) == "DARTS-PT reads a convolutional search's supernet"


def test_learn_reads_the_shipped_demo_search_both_ways(app_runs, page):
    """The Learn page's derivation section asks the question of a shipped recording: a demo search and DARTS-PT's
    34 decisions on it, its disagreements listed as the Runs page lists them."""
    from app.figures import pt as pt_figures
    from app.screens import learn_pt
    from engine.derive import rows as pt_rows
    from engine.runs import examples

    recording = examples.example(learn_pt.RECORDING)
    assert recording is not None and recording.state == "finished"
    rows = pt_rows.read_rows(recording.path, 4)
    assert len(rows) == pt_rows.decisions(4) == 34
    at = page("learn").run()
    assert not at.exception
    assert "The largest op weight, or what the supernet needs? DARTS-PT" in [s.value for s in at.subheader]
    assert any("34 of 34 decisions made" in c.value for c in at.caption)
    lines = pt_figures.disagreements(rows)
    assert len(lines) == sum(r["kind"] == "op" and r["chosen"] != r["argmax"] for r in rows) > 0
    shown = "\n".join(m.value for m in at.markdown)
    assert all(line in shown for line in lines)


def test_derive_method_pt_runs_pt_when_the_search_finishes(runs_dir, smoke, cli):
    """`--set derive_method=pt`: the dashboard's job runs DARTS-PT on the search's final checkpoint once it has
    finished (its rows in pt.jsonl, the search's own files as the search left them); a bad value is refused."""
    from engine.derive import rows as pt_rows
    from engine.jobs.controller import Registry

    reg = Registry(runs_dir)
    job = reg.start(smoke.replace(nodes=2, epochs=1, derive_method="pt"))
    assert job.join(600) and job.snapshot().state == "finished"
    measured = reg.pt_jobs[job.run_id]
    assert measured.state == "finished", measured.error
    rows = pt_rows.read_rows(job.run_dir, 2)
    assert len(rows) == pt_rows.decisions(2) and pt_rows.genotype_of_rows(rows, 2) == measured.genotype
    assert [g["kind"] for g in rundir.read_genotypes(job.run_dir)] == ["final"]  # PT writes only its own files
    p = cli("search", "--preset", "smoke", "--set", "derive_method=best", "--runs-dir", str(runs_dir), check=False)
    assert p.returncode == 2 and "derive_method='best' is not valid: one of argmax, pt" in p.stderr

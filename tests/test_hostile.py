"""Hostile input to the command line: every case ends with exit 2 and a one-line reason, never a traceback.

Each case runs `engine.__main__.main` in this process (an escaping exception fails the test with its
traceback) and checks the exit status, that stderr is one line naming the problem, and that nothing
was written where it should not be.
"""

from __future__ import annotations

import json
import os
import shutil
import stat

import numpy as np
import pytest
import torch

from engine.__main__ import main
from engine.runs import rundir
from engine.search.loop import run_search

NESTED = "[" * 100_000
V2_TEXT = "Genotype(normal=[('sep_conv_3x3', 0)] * 8)"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, smoke):
    """One finished smoke run, copied by each test that spoils it."""
    run_dir = tmp_path_factory.mktemp("hostile") / "run"
    run_dir.mkdir()
    assert run_search(smoke.replace(epochs=1), run_dir) == "finished"
    return run_dir


@pytest.fixture
def run_copy(finished_run, tmp_path):
    dst = tmp_path / "runs" / finished_run.name
    shutil.copytree(finished_run, dst)
    return dst


def _bad(capsys, argv, needle):
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert needle in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def _alphas(rows=14):
    return np.zeros((rows, 8)).tolist()


@pytest.mark.parametrize("content,needle", [
    (NESTED, "nested too deeply"),
    ('{"normal": ' + NESTED, "nested too deeply"),
    (json.dumps({"normal": [[10**400] * 8] * 14, "reduce": _alphas()}), "not a number"),
    (json.dumps({"normal": [[1e400] * 8] * 14, "reduce": _alphas()}), "finite"),
    (json.dumps({"normal": _alphas(13), "reduce": _alphas(13)}), "13 edges"),
    (json.dumps({"normal": _alphas(14), "reduce": _alphas(9)}), "must agree"),
    (json.dumps({"normal": "abc", "reduce": _alphas()}), "not a number"),
    (json.dumps([1, 2]), "must hold"),
    ("\udcff".encode("utf-8", "surrogatepass").decode("latin-1"), "not valid JSON"),
])
def test_derive_refuses_bad_alphas_files(tmp_path, capsys, content, needle):
    path = tmp_path / "alphas.json"
    path.write_text(content)
    _bad(capsys, ["derive", str(path)], needle)


def test_derive_reads_at_most_16_mib(tmp_path, capsys):
    link = tmp_path / "zero.json"
    link.symlink_to("/dev/zero")
    _bad(capsys, ["derive", str(link)], "larger than 16 MiB")
    _bad(capsys, ["inspect", str(link)], "larger than 16 MiB")


@pytest.mark.parametrize("content,needle", [
    (NESTED, "too many nested"),
    ('{"normal": ' + NESTED + "}", "nested too deeply"),
    ("Genotype(normal=" + "[" * 1000 + "])", "too many nested"),
    (V2_TEXT, "plain literal"),
    ('{"normal": [], "reduce": []}', "missing"),
    (b"\xff\xfe\x00garbage".decode("latin-1"), "UTF-8"),
])
def test_inspect_refuses_bad_genotype_files(tmp_path, capsys, content, needle):
    path = tmp_path / "genotype.txt"
    path.write_bytes(content.encode("latin-1") if needle == "UTF-8" else content.encode())
    _bad(capsys, ["inspect", str(path)], needle)


@pytest.mark.parametrize("flags,needle", [
    (["--init-channels", "0"], "--init-channels"),
    (["--init-channels", "-4"], "--init-channels"),
    (["--init-channels", "7"], "even"),
    (["--init-channels", "100000"], "--init-channels"),
    (["--layers", "-3"], "--layers"),
    (["--layers", "0"], "--layers"),
    (["--layers", "100000"], "--layers"),
    (["--dataset", "imagenet", "--init-channels", "1"], "--init-channels"),
])
def test_inspect_validates_its_sizes(capsys, flags, needle):
    _bad(capsys, ["inspect", "DARTS_V2", *flags], needle)


def test_inspect_uses_the_size_it_was_given(capsys):
    assert main(["inspect", "DARTS_V2", "--init-channels", "16", "--layers", "8"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["init_channels"], out["layers"]) == (16, 8) and out["parameters"] < 3_349_342


def test_runs_root_that_cannot_hold_runs(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for root in (afile, afile / "below", "/dev/null"):
        _bad(capsys, ["search", "--preset", "smoke", "--runs-dir", str(root)], "cannot create a run directory")
    if os.geteuid() != 0:  # root writes anywhere: a read-only folder only stops other users
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
        _bad(capsys, ["search", "--preset", "smoke", "--runs-dir", str(ro)], "cannot create a run directory")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_that_is_not_there_is_bad_input(tmp_path, capsys):
    _bad(capsys, ["search", "--preset", "smoke", "--set", "device=cuda", "--runs-dir", str(tmp_path)],
         "CUDA is not available")
    assert list(tmp_path.iterdir()) == []  # nothing was left behind


def test_genotype_and_alphas_rows_without_their_keys(run_copy, capsys):
    (run_copy / rundir.GENOTYPES).write_text('{"step": 1}\n{"genotype": 5}\n')
    (run_copy / rundir.ALPHAS).write_text('{"step": 1}\n{"normal": [[0]]}\n')
    _bad(capsys, ["derive", str(run_copy)], "no alphas yet")
    _bad(capsys, ["inspect", str(run_copy)], "no genotype")
    _bad(capsys, ["export", str(run_copy), "--format", "json"], "no genotype")


# ---------------------------------------------------------------- faults while a search runs, and resumes


def _files(run_dir):
    """Every file of a run directory with its bytes (the lock files excepted: they are empty markers)."""
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir()) if p.is_file() and not p.name.endswith(".lock")}


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, smoke):
    """A smoke run (3 epochs) stopped after step 2, with a checkpoint: what people resume."""
    from engine.runs.control import Control
    from engine.runs.hooks import Callback

    class StopAt(Callback):
        def on_step_end(self, event):
            if event.step == 2:
                control.stop()

    control = Control()
    run_dir = tmp_path_factory.mktemp("stopped") / "run"
    run_dir.mkdir()
    assert run_search(smoke.replace(epochs=3), run_dir, control=control, callbacks=[StopAt()]) == "stopped"
    return run_dir


@pytest.fixture
def stopped_copy(stopped_run, tmp_path):
    dst = tmp_path / "runs" / stopped_run.name
    shutil.copytree(stopped_run, dst)
    return dst


def test_a_second_process_on_the_same_run_is_refused_and_changes_nothing(stopped_copy, capsys):
    from filelock import FileLock

    before = _files(stopped_copy)
    with FileLock(stopped_copy / rundir.RUN_LOCK):  # another process runs this search
        _bad(capsys, ["search", "--resume", str(stopped_copy)], "being written by another process")
    assert _files(stopped_copy) == before


@pytest.mark.parametrize("how,needle", [
    ("--set seed=3", "seed"),
    ("config.json subset=24", "subset"),
    ("config.json seed=5", "seed"),
    ("config.json epochs=4", "epochs"),
    ("config.json dataset=embedded", "dataset"),
    ("config.json init_channels=8", "init_channels"),
])
def test_a_refused_resume_names_the_field_and_changes_nothing(stopped_copy, capsys, how, needle):
    """The check compares with the checkpoint (what was searched), not with config.json, which anyone can edit."""
    argv = ["search", "--resume", str(stopped_copy)]
    if how.startswith("--set"):
        argv += ["--set", how.split()[1]]
    else:
        key, value = how.split()[1].split("=")
        record = json.loads((stopped_copy / rundir.CONFIG).read_text())
        record["config"][key] = value if key == "dataset" else int(value)
        if key == "dataset":
            record["config"]["image_size"] = None  # the embedded images are 28x28
        (stopped_copy / rundir.CONFIG).write_text(json.dumps(record))
    before = _files(stopped_copy)
    _bad(capsys, argv, needle)
    assert _files(stopped_copy) == before


def test_a_crafted_checkpoint_with_the_right_tag_is_bad_input(stopped_copy, capsys):
    ckpt = torch.load(stopped_copy / rundir.CHECKPOINT, weights_only=True)
    ckpt["model"] = {"bogus.weight": torch.zeros(3)}
    torch.save(ckpt, stopped_copy / rundir.CHECKPOINT)
    before = _files(stopped_copy)
    _bad(capsys, ["search", "--resume", str(stopped_copy)], "does not fit this search network")
    assert _files(stopped_copy) == before


def test_a_metrics_row_with_a_step_that_is_not_a_number_does_not_stop_a_resume(stopped_copy, capsys):
    with open(stopped_copy / rundir.METRICS, "a") as f:
        f.write('{"step": "abc", "train_loss": 1.0}\n')
    assert main(["search", "--resume", str(stopped_copy)]) == 0
    steps = [m["step"] for m in rundir.read_metrics(stopped_copy)]
    assert steps == list(range(1, steps[-1] + 1)) and "abc" not in (stopped_copy / rundir.METRICS).read_text()


def test_one_damaged_run_is_listed_as_unreadable_and_the_others_list_normally(finished_run, tmp_path, capsys):
    root = tmp_path / "runs"
    good, nulled, absurd = (root / f"2026010{i}T000000Z-{name}" for i, name in enumerate(("good", "null", "absurd")))
    for dst in (good, nulled, absurd):
        shutil.copytree(finished_run, dst)
    record = json.loads((nulled / rundir.CONFIG).read_text())
    record["config"] = None
    (nulled / rundir.CONFIG).write_text(json.dumps(record))
    with open(absurd / rundir.METRICS, "a") as f:
        f.write('{"step": "abc"}\n{"step": 99, "valid_acc": 1e999}\n{"step": 100, "valid_acc": "x"}\n{"step": 1')
    status = json.loads((absurd / rundir.STATUS).read_text())
    (absurd / rundir.STATUS).write_text(json.dumps({**status, "epoch": "x", "step": None}))
    assert main(["runs", "--runs-dir", str(root)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "unreadable" in lines[nulled.name] and "damaged" in lines[nulled.name]
    assert "finished" in lines[good.name] and "finished" in lines[absurd.name]
    from engine.runs.follow import snapshot_from_dir

    snap = snapshot_from_dir(absurd)  # what the dashboard's Search, Replay and Runs pages read
    assert snap.weights["normal"].shape == (14, 8) and snap.metrics[-1]["step"] != "abc"


@pytest.mark.parametrize("recover", [True, False], ids=["disk-fixed-then-resumed", "never-fixed-then-stopped"])
def test_a_failed_write_pauses_at_once_and_loses_no_line(tmp_path, recover, smoke):
    """The disk refuses a write (alphas.jsonl becomes a dangling link: a real OS error, no mock): the search pauses
    with the reason as soon as the writer thread meets the error (a busy machine may let it lag a step or two, or
    reach the last step: then it pauses there, see the next test); lines wait in memory in order; fixed and
    resumed, every step is on disk once. Never fixed, a stop ends the run `failed` with the count of lost writes."""
    from engine.jobs.controller import Controller
    from engine.runs.hooks import Callback
    from tests.blocking import block, unblock
    from tests.waiting import wait_for

    alphas, asides = tmp_path / "run" / rundir.ALPHAS, []

    class Sabotage(Callback):
        def on_step_end(self, event):
            if event.step == 2 and not alphas.is_symlink():
                asides.extend(block(alphas))

    (tmp_path / "run").mkdir()
    job = Controller(smoke.replace(epochs=3), tmp_path / "run", callbacks=[Sabotage()]).start()
    try:
        wait_for(lambda: job.snapshot().state == "paused", timeout=120)
        snap = job.snapshot()
        assert "cannot write" in snap.message and 2 <= snap.step <= snap.total_steps, (snap.step, snap.message)
        assert job.snapshot().step == snap.step  # paused means no more steps
        if recover:
            unblock(alphas, asides)
            job.resume()
            wait_for(lambda: not job.alive, timeout=120)
            assert job.snapshot().state == "finished"
            steps = [r["step"] for r in rundir.read_alphas(tmp_path / "run")]
            assert steps == list(range(1, job.snapshot().total_steps + 1))  # each step once, in order
        else:
            job.stop()
            wait_for(lambda: not job.alive, timeout=120)
            end = job.snapshot()
            assert end.state == "failed" and "could not be made" in end.error, end.error
    finally:
        job.stop()
        job.join(60)


def test_a_write_failing_at_the_last_step_pauses_instead_of_ending(tmp_path, smoke):
    """The failure is met only after the last step (the final genotype line: genotypes.jsonl is a dangling link by
    then): the run pauses at its end rather than ending failed, so a fixed disk and Resume still finish it with
    every line; before the fix it is `paused`, not `finished` or `failed`."""
    from engine.jobs.controller import Controller
    from engine.runs.hooks import Callback
    from tests.blocking import block, unblock
    from tests.waiting import wait_for

    run = tmp_path / "run"
    genotypes, asides = run / rundir.GENOTYPES, []

    class Sabotage(Callback):
        def on_step_end(self, event):  # runs before the epoch-end hook that queues the final genotype line
            if event.step == event.status["total_steps"] and not genotypes.is_symlink():
                asides.extend(block(genotypes))

    run.mkdir()
    job = Controller(smoke.replace(epochs=2), run, callbacks=[Sabotage()]).start()
    try:
        wait_for(lambda: job.snapshot().state in ("paused", "finished", "failed"), timeout=120)
        snap = job.snapshot()
        assert snap.state == "paused" and snap.step == snap.total_steps, (snap.state, snap.error)
        assert "cannot write" in snap.message
        unblock(genotypes, asides)
        job.resume()
        wait_for(lambda: not job.alive, timeout=120)
        assert job.snapshot().state == "finished", job.snapshot().error
        rows = rundir.read_genotypes(run)
        assert rows[-1]["kind"] == "final" and rows[-1]["step"] == snap.total_steps
    finally:
        job.stop()
        job.join(60)

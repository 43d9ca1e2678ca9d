"""Sweeps: members expanded and validated before anything starts, run on the local pool and on Ray, resumed
after the driver is killed, a failing member leaving the others alone, the report's statistics, and the script that
records a finished sweep for assets/sweeps/."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.runs import rundir
from engine.search.config import from_preset
from engine.sweep.report import compare_groups, group_summaries, member_results, permutation_test
from engine.sweep.run import OUTCOMES, member_states, run_local
from engine.sweep.spec import SWEEP_FILE, SweepError, create_sweep, load_sweep, parse_grid
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]


def test_the_grid_expands_to_one_member_per_combination_and_seed(tmp_path):
    grid = parse_grid(["variant=darts,beta_darts", "max_skip=0,2"])
    assert grid == {"variant": ["darts", "beta_darts"], "max_skip": [0, 2]}
    sweep = create_sweep(tmp_path, "s", "smoke", {"epochs": 1}, grid, seeds=2, first_seed=5)
    assert len(sweep.members) == 8 and sweep.seeds == [5, 6]
    settings = [m.settings for m in sweep.members]
    assert {(s["variant"], s["max_skip"], s["seed"]) for s in settings} == {
        (v, k, s) for v in ("darts", "beta_darts") for k in (0, 2) for s in (5, 6)}
    assert all(m.overrides["epochs"] == 1 for m in sweep.members)
    again = load_sweep(sweep.path)
    assert [m.name for m in again.members] == [m.name for m in sweep.members]
    assert again.config(again.members[3]) == from_preset("smoke", sweep.members[3].overrides)


@pytest.mark.parametrize("grid, sets, seeds, needle", [
    (["variant=darts,nope"], [], 1, "variant"),                  # the member and combination, before anything
    (["pc_k=4,3"], ["variant=pc_darts"], 1, "member 001-pc_k=3-seed=0"),
    (["no_such_field=1,2"], [], 1, "unknown field"),
    (["variant="], [], 1, "has no values"),
    (["seed=1,2"], [], 1, "--seeds"),
    (["max_skip=1,1"], [], 1, "repeats a value"),
    (["max_skip=1,2"], ["max_skip=3"], 1, "both fixed"),
    ([], [], 0, "at least 1"),
])
def test_a_bad_sweep_is_refused_before_anything_is_written(tmp_path, grid, sets, seeds, needle):
    from engine.core.config import ConfigError, parse_overrides
    from engine.search.config import SearchConfig

    with pytest.raises((SweepError, ConfigError), match=needle):
        create_sweep(tmp_path, "s", "smoke", parse_overrides(sets, SearchConfig), parse_grid(grid), seeds)
    assert not (tmp_path / "s").exists()


def test_an_existing_sweep_directory_is_refused(tmp_path):
    create_sweep(tmp_path, "s", "smoke", {}, {}, 2)
    with pytest.raises(SweepError, match="exists; resume it"):
        create_sweep(tmp_path, "s", "smoke", {}, {}, 2)


def test_a_2x2_smoke_sweep_on_the_local_pool_and_failing_members_leave_the_others(tmp_path):
    """Two datasets x two seeds, two at a time; Fashion-MNIST is not where the sweep points: those members fail
    with the reason, the two others finish, each an ordinary run directory with its own settings."""
    sweep = create_sweep(tmp_path, "s", "smoke", {"data_root": "/nonexistent-data"},
                         {"dataset": ["fake", "fashion_mnist"]}, seeds=2)
    assert len(sweep.members) == 4
    states = run_local(sweep, jobs=2)
    broken = [m.name for m in sweep.members if m.settings["dataset"] == "fashion_mnist"]
    assert {n: s for n, s in states.items() if s != "finished"} == dict.fromkeys(broken, "failed"), states
    outcomes = json.loads((sweep.path / OUTCOMES).read_text())
    assert all("Fashion-MNIST not found" in outcomes[n]["reason"] for n in broken), outcomes
    for m in sweep.members:
        if m.name not in broken:
            cfg = rundir.read_config(sweep.run_dir(m))["config"]
            assert (cfg["dataset"], cfg["seed"]) == ("fake", m.settings["seed"])
            assert rundir.read_metrics(sweep.run_dir(m))[-1]["step"] == 4


def test_a_sweep_resumes_after_its_driver_is_killed_without_redoing_finished_members(tmp_path):
    sweep = create_sweep(tmp_path, "s", "smoke", {"epochs": 3}, {"variant": ["darts", "fair_darts"]}, seeds=1)
    driver = subprocess.Popen(
        [sys.executable, "-c", "import sys; from engine.sweep.spec import load_sweep; "
                               "from engine.sweep.run import run_local; run_local(load_sweep(sys.argv[1]), 1)",
         str(sweep.path)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    first, second = (sweep.run_dir(m) for m in sweep.members)
    try:
        wait_for(lambda: member_states(sweep)[sweep.members[0].name] == "finished", timeout=180)
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
        finished_metrics = (first / rundir.METRICS).read_bytes()
        states = run_local(sweep, jobs=1)  # waits for a member the killed driver left running, runs the rest
        assert set(states.values()) == {"finished"}, states
        assert (first / rundir.METRICS).read_bytes() == finished_metrics
        assert "resumed" not in rundir.read_config(first)
        assert [r["step"] for r in rundir.read_metrics(second)] == list(range(1, 7))
    finally:
        driver.kill()
        for run_dir in (first, second):  # a member the test left behind ends with it
            pid = rundir.read_status(run_dir).get("pid") if (run_dir / rundir.CONFIG).exists() else None
            if isinstance(pid, int) and pid != os.getpid():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


@pytest.mark.slow
def test_the_same_sweep_on_ray_in_local_mode(tmp_path):
    pytest.importorskip("ray")
    from engine.sweep.run import run_on_ray

    sweep = create_sweep(tmp_path, "s", "smoke", {}, {"variant": ["darts", "beta_darts"]}, seeds=2)
    states = run_on_ray(sweep, threads=1, num_cpus=2)
    assert len(states) == 4 and set(states.values()) == {"finished"}, states
    assert {(c["variant"], c["seed"]) for c in (rundir.read_config(sweep.run_dir(m))["config"]
                                                for m in sweep.members)} == {
        ("darts", 0), ("darts", 1), ("beta_darts", 0), ("beta_darts", 1)}


def test_a_ray_address_that_does_not_answer_is_one_line(tmp_path):
    from engine.sweep.run import check_ray_address

    with pytest.raises(SweepError, match="does not answer"):
        check_ray_address("127.0.0.1:9")  # the discard port: nothing listens there
    with pytest.raises(SweepError, match="HOST:PORT"):
        check_ray_address("ray://:10001")


def _hand_made_member(sweep, member, valid_accs, winners_normal):
    """A finished member written by hand: its metrics, and alphas whose normal cell's winners are given."""
    run_dir = sweep.run_dir(member)
    run_dir.mkdir(parents=True)
    config = sweep.config(member)
    (run_dir / rundir.CONFIG).write_text(json.dumps({"kind": "search", "config": config.to_dict()}))
    rundir.write_status(run_dir, state="finished", step=len(valid_accs))
    (run_dir / rundir.METRICS).write_text("".join(json.dumps({"step": i + 1, "valid_acc": a}) + "\n"
                                                  for i, a in enumerate(valid_accs)))
    normal = np.zeros((14, 8))
    normal[np.arange(14), winners_normal] = [5.0 + (w == 4) for w in winners_normal]  # sep_conv_3x3 beats a skip
    (run_dir / rundir.ALPHAS).write_text(json.dumps({"step": len(valid_accs), "normal": normal.tolist(),
                                                     "reduce": np.zeros((14, 8)).tolist()}) + "\n")


def test_the_reports_statistics_equal_values_computed_by_hand(tmp_path):
    sweep = create_sweep(tmp_path, "s", "smoke", {}, {"variant": ["darts", "beta_darts"]}, seeds=2)
    wins = ([3] * 14, [3] * 7 + [4] * 7, [4] * 14, [4] * 14)  # op 3 = skip_connect, 4 = sep_conv_3x3
    finals = (0.5, 0.7, 0.2, 0.3)
    for m, win, final in zip(sweep.members, wins, finals, strict=True):
        _hand_made_member(sweep, m, [0.1, final], win)
    darts, beta = group_summaries(member_results(sweep))
    assert darts.label == "variant=darts" and beta.label == "variant=beta_darts"
    s = darts.stats["valid_acc"]
    assert s["n"] == 2 and s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(0.02 ** 0.5)
    assert (s["min"], s["max"]) == (0.5, 0.7)
    freq = darts.win_freq["normal"]
    assert freq[0, 3] == 1.0 and freq[13, 3] == 0.5 and freq[13, 4] == 0.5 and freq.sum() == 14
    assert beta.win_freq["normal"][:, 4].tolist() == [1.0] * 14
    assert len(darts.cells) == 2 and len(beta.cells) == 1 and beta.cells[0][1] == 2
    # a0 keeps 8 skips; a1's nodes 0 and 1 keep their skip edges, nodes 2 and 3 their stronger sep_conv ones
    assert darts.stats["skips_normal"]["mean"] == pytest.approx((8 + 4) / 2)
    # 2 vs 2 seeds: 6 splits; the observed one and its mirror are the most extreme, so p = 2/6
    assert permutation_test([0.5, 0.7], [0.2, 0.3]) == pytest.approx(2 / 6)
    assert permutation_test([1, 2, 3, 4], [5, 6, 7, 8]) == pytest.approx(2 / 70)
    assert "p = 0.333" in compare_groups(darts, beta) and "not distinguishable" in compare_groups(darts, beta)


def test_sweep_json_is_written_once_and_read_back_strictly(tmp_path):
    sweep = create_sweep(tmp_path, "s", "smoke", {}, {}, 2)
    (sweep.path / SWEEP_FILE).write_text("[" * 100000)
    with pytest.raises(SweepError, match="not readable"):
        load_sweep(sweep.path)
    with pytest.raises(SweepError, match="not a sweep directory"):
        load_sweep(tmp_path)


def test_the_sweeps_page_shows_members_groups_and_the_comparison(app_runs, page):
    """The page on a hand-made sweep: the members table, one row per group, the comparison sentence, the bands
    and the op-win heatmaps; a filter bound to the URL narrows the members."""
    sweep = create_sweep(app_runs / "sweeps", "s", "smoke", {}, {"variant": ["darts", "beta_darts"]}, seeds=2)
    for m, final in zip(sweep.members, (0.5, 0.7, 0.2, 0.3), strict=True):
        _hand_made_member(sweep, m, [0.1, final], [3] * 14)
    at = page("sweeps")
    at.run()
    assert not at.exception, at.exception
    members, groups = (d.value for d in at.dataframe)
    assert len(members) == 4 and set(members["state"]) == {"finished"}
    assert list(groups["group"]) == ["variant=darts", "variant=beta_darts"]
    assert groups["valid_acc"][0].startswith("0.600 ± 0.141 (n=2)")
    assert any("p = 0.333" in m.value for m in at.markdown)
    assert len(at.get("plotly_chart")) == 3  # the bands, the op-win shares, the mean op weights
    at.multiselect(key="sweep_variant").set_value(["beta_darts"]).run()
    assert len(at.dataframe[0].value) == 2 and set(at.dataframe[0].value["variant"]) == {"beta_darts"}
    linked = page("sweeps")  # a link with the filter in its query opens the filtered view
    linked.query_params["sweep_variant"] = "beta_darts"
    linked.run()
    assert set(linked.dataframe[0].value["variant"]) == {"beta_darts"}


def test_the_sweeps_page_without_a_sweep_says_how_to_start_one(app_runs, page):
    at = page("sweeps")
    at.run()
    assert not at.exception and "python -m engine sweep" in at.code[0].value


def test_the_second_stage_trains_each_found_cell_and_the_baselines(tmp_path):
    """--train: every finished search's cell is trained, with DARTS_V2 and a random cell beside them; each is an
    ordinary training run whose genotype is the cell its search recorded; the report groups test accuracies."""
    sweep = create_sweep(tmp_path, "s", "smoke", {}, {}, seeds=2, train="train-smoke", baseline=True,
                         random_cells=1)
    assert [m.name for m in sweep.trainings][-2:] == ["train-DARTS_V2", "train-random-0"]
    states = run_local(sweep, jobs=2)
    assert set(states.values()) == {"finished"} and len(states) == 2 + 4, states
    found = sweep.trainings[0]
    source_run = sweep.run_dir(found.source)
    trained = rundir.read_config(sweep.run_dir(found))
    assert trained["kind"] == "train" and trained["source"]["run_dir"] == str(source_run.resolve())
    assert trained["genotype"] == rundir.read_genotypes(source_run)[-1]["genotype"]
    results = member_results(load_sweep(sweep.path), "train")
    assert all(r.figures["test_acc"] is not None for r in results)
    labels = [g.label for g in group_summaries(results)]
    assert labels == ["cell=found", "cell=DARTS_V2", "cell=random"]


def test_a_training_stage_needs_a_valid_preset_and_baselines_need_it(tmp_path):
    with pytest.raises(SweepError, match="--train nope"):
        create_sweep(tmp_path, "s", "smoke", {}, {}, seeds=2, train="nope")
    with pytest.raises(SweepError, match="needs --train"):
        create_sweep(tmp_path, "s", "smoke", {}, {}, seeds=2, baseline=True)
    with pytest.raises(SweepError, match="--random must be 0 or more"):
        create_sweep(tmp_path, "s", "smoke", {}, {}, seeds=2, train="train-smoke", baseline=True, random_cells=-2)
    assert not (tmp_path / "s").exists()


def _driver(tmp_path, seeds: int, jobs: int) -> tuple[subprocess.Popen, Path]:
    """`sweep` of 50-step smoke searches in its own process: (the driver, its sweep directory)."""
    cmd = [sys.executable, "-m", "engine", "sweep", "--preset", "smoke", "--set", "epochs=25", "--seeds", str(seeds),
           "--jobs", str(jobs), "--runs-dir", str(tmp_path), "--name", "s"]
    return subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True), tmp_path / "sweeps" / "s"


def _stepping(path: Path) -> int:
    """How many members of the sweep at `path` have logged a step."""
    members = path / "members"
    return sum(bool(rundir.read_metrics(d)) for d in members.iterdir()) if (path / SWEEP_FILE).exists() else 0


def test_the_command_line_stops_a_sweep_with_ctrl_c_and_resumes_it(tmp_path, cli):
    """Ctrl-C on `sweep` stops the running members after their step, each with a checkpoint, and exits 130;
    `sweep --resume` finishes them from there, each step logged once."""
    assert cli("sweep", "--preset", "smoke", check=False).returncode == 2  # one seed, no grid: nothing to sweep
    driver, path = _driver(tmp_path, seeds=2, jobs=2)
    try:
        wait_for(lambda: _stepping(path) == 2, timeout=120)
        driver.send_signal(signal.SIGINT)
        assert driver.wait(120) == 130, driver.stderr.read()
    finally:
        driver.kill()
    sweep = load_sweep(path)
    assert set(member_states(sweep).values()) == {"stopped"}
    done = cli("sweep", "--resume", str(path), "--jobs", "2", "--set", "epochs=3", check=False)
    assert done.returncode == 2 and "no --grid or --set" in done.stderr
    assert cli("sweep", "--resume", str(path), "--jobs", "2").returncode == 0
    for m in sweep.members:
        assert [r["step"] for r in rundir.read_metrics(sweep.run_dir(m))] == list(range(1, 51))


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_sweeps_progress_is_a_bar_on_a_terminal_and_a_line_per_change_in_a_log(monkeypatch):
    from engine.cli.progress import NORMAL, QUIET, SweepProgress

    states = [{"a": "pending", "b": "pending"}, {"a": "running", "b": "pending"}, {"a": "running", "b": "pending"},
              {"a": "finished", "b": "running"}, {"a": "finished", "b": "failed"}]
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    progress = SweepProgress(states[0], NORMAL)
    for s in states:
        progress(s)
    progress.close()
    assert log.getvalue().splitlines() == ["members: 2 pending", "members: 1 pending, 1 running",
                                           "members: 1 finished, 1 running", "members: 1 failed, 1 finished"]
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    progress = SweepProgress(states[0], NORMAL)
    progress(states[3])
    assert "1/2" in terminal.getvalue().split("\r")[-1] and "1 running" in terminal.getvalue()
    progress(states[4])
    progress.close()
    assert "2/2" in terminal.getvalue().split("\r")[-1]
    # a resumed sweep starts at the members already ended; --member counts only the members asked for
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    progress = SweepProgress({"a": "finished", "b": "pending", "c": "pending"}, NORMAL, only=["b"])
    assert "0/1" in terminal.getvalue().split("\r")[-1]
    progress({"a": "finished", "b": "finished", "c": "pending"})
    progress.close()
    assert "1/1" in terminal.getvalue().split("\r")[-1]
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    SweepProgress({"a": "finished", "b": "pending"}, NORMAL).close()
    assert "1/2" in terminal.getvalue().split("\r")[-1]
    quiet = io.StringIO()
    monkeypatch.setattr(sys, "stderr", quiet)
    progress = SweepProgress(states[0], QUIET)
    for s in states:
        progress(s)
    progress.close()
    assert quiet.getvalue() == ""


def _finished_member(sweep, member, steps):
    run_dir = sweep.run_dir(member)
    run_dir.mkdir(parents=True)
    (run_dir / rundir.CONFIG).write_text(json.dumps({"kind": "search", "config": sweep.config(member).to_dict()}))
    rundir.write_status(run_dir, state="finished", step=steps)
    (run_dir / rundir.METRICS).write_text("".join(json.dumps({"step": s, "valid_acc": s / 100}) + "\n"
                                                  for s in range(1, steps + 1)))
    (run_dir / rundir.ALPHAS).write_text("".join(
        json.dumps({"step": s, "normal": np.full((14, 8), s).tolist(), "reduce": np.zeros((14, 8)).tolist()}) + "\n"
        for s in range(1, steps + 1)))
    (run_dir / "checkpoint.pt").write_bytes(b"weights")
    return run_dir


def _record(*args):
    return subprocess.run([sys.executable, "scripts/record_sweep.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_record_sweep_keeps_what_the_pages_read_and_refuses_an_unfinished_sweep(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import record_sweep

    sweep = create_sweep(tmp_path, "s", "smoke", {}, {"variant": ["darts", "beta_darts"]}, seeds=2)
    for m in sweep.members:
        _finished_member(sweep, m, 45)
    out = record_sweep.record(sweep.path, "rec", alphas_every=20, root=tmp_path / "shipped")
    recorded = load_sweep(out)
    assert [m.name for m in recorded.members] == [m.name for m in sweep.members]
    for m in recorded.members:
        run_dir = recorded.run_dir(m)
        assert not (run_dir / "checkpoint.pt").exists()
        assert [r["step"] for r in rundir.read_alphas(run_dir)] == [1, 20, 40, 45]
        assert rundir.read_metrics(run_dir) == rundir.read_metrics(sweep.run_dir(m))
        assert "pid" not in rundir.read_status(run_dir)
    assert [r.figures for r in member_results(recorded)] == [r.figures for r in member_results(sweep)]

    rundir.write_status(sweep.run_dir(sweep.members[1]), state="stopped", step=10)
    into = ("--into", str(tmp_path / "shipped"))
    p = _record("--from", str(sweep.path), "--name", "rec", *into)
    assert p.returncode != 0 and "not finished: 001-variant=darts-seed=1 (stopped)" in p.stderr
    assert (tmp_path / "shipped" / "rec" / "sweep.json").exists()   # the earlier recording is left whole
    p = _record("--from", str(tmp_path), "--name", "rec", *into)
    assert p.returncode != 0 and "is not a sweep directory" in p.stderr
    p = _record("--from", str(sweep.path), "--name", "../escape", *into)
    assert p.returncode == 2 and "plain folder name" in p.stderr


@pytest.mark.parametrize("name", ["../../outside", "a/b", "", 7])
def test_a_sweep_json_whose_member_name_leads_out_of_the_sweep_is_refused(tmp_path, name):
    sweep = create_sweep(tmp_path, "s", "smoke", {}, {}, 2)
    record = json.loads((sweep.path / "sweep.json").read_text())
    record["members"][0]["name"] = name
    (sweep.path / "sweep.json").write_text(json.dumps(record))
    with pytest.raises(SweepError, match="damaged .*not a plain folder name"):
        load_sweep(sweep.path)


def test_a_member_opens_in_replay_from_the_sweeps_page(app_runs, page):
    """'Open in Replay' hands the member's run directory to the Replay page (the two share the session), which
    then offers it beside this runs root's searches and the recordings, although it lives in its sweep's folder."""
    sweep = create_sweep(app_runs / "sweeps", "s", "smoke", {}, {"variant": ["darts", "beta_darts"]}, seeds=2)
    for m in sweep.members:
        _finished_member(sweep, m, 45)
    at = page("sweeps")
    at.run()
    at.selectbox(key="sweep_member").set_value(sweep.members[2].name).run()
    at.button(key="sweep_replay").click().run()   # the page switch itself needs the app's navigation
    assert at.session_state["replay.run"] == sweep.members[2].name
    replayed = page("replay")
    for key in ("replay.run", "replay.extra"):
        replayed.session_state[key] = at.session_state[key]
    replayed.run()
    assert not replayed.exception, replayed.exception
    assert replayed.selectbox(key="replay.selected").value == sweep.members[2].name
    assert replayed.query_params["run"] in (sweep.members[2].name, [sweep.members[2].name])


def test_sweep_control_stops_the_whole_sweep_and_the_pending_members_stay_pending(tmp_path, cli):
    """`sweep-control SWEEP stop` stops the running member after its step and starts no pending one (before, the
    driver started them as soon as the running ones stopped); `sweep --resume` then runs the sweep to its end."""
    from engine.sweep.gate import SWEEP_CONTROL, sweep_gate

    driver, path = _driver(tmp_path, seeds=3, jobs=1)
    try:
        wait_for(lambda: _stepping(path) == 1, timeout=120)
        told = cli("sweep-control", str(path), "stop")
        assert "asked 1 running member(s); no member starts again" in told.stderr
        assert driver.wait(120) == 1, driver.stderr.read()   # a member did not finish: exit 1, not 130
    finally:
        driver.kill()
    sweep = load_sweep(path)
    assert list(member_states(sweep).values()) == ["stopped", "pending", "pending"]
    assert sweep_gate(path) == "stopped" and (path / SWEEP_CONTROL).exists()
    assert cli("sweep", "--resume", str(path), "--jobs", "2").returncode == 0
    assert sweep_gate(path) == "running" and set(member_states(sweep).values()) == {"finished"}
    for m in sweep.members:
        assert [r["step"] for r in rundir.read_metrics(sweep.run_dir(m))] == list(range(1, 51))


def test_a_member_keeps_to_the_sweeps_gate_before_it_begins(tmp_path):
    """A member process that begins while its sweep is paused waits, untouched, and runs once resumed; one that
    begins after the sweep was stopped ends at once (exit 4), and the member stays pending, not failed. This is
    what holds Ray's tasks, which the driver hands over all at once."""
    from engine.sweep.gate import HELD, set_sweep_gate

    sweep = create_sweep(tmp_path, "s", "smoke", {}, {}, seeds=2)
    member = [sys.executable, "-m", "engine.sweep.member", str(sweep.path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    set_sweep_gate(sweep.path, "stopped")
    held = subprocess.run([*member, sweep.members[0].name], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert held.returncode == HELD and "the sweep is stopped" in held.stderr
    assert not sweep.run_dir(sweep.members[0]).exists()
    assert run_local(sweep, jobs=2) == dict.fromkeys((m.name for m in sweep.members), "pending")  # starts none

    set_sweep_gate(sweep.path, "paused")
    proc = subprocess.Popen([*member, sweep.members[1].name], cwd=ROOT, env=env)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(3)                                         # waits at the gate ...
        assert not sweep.run_dir(sweep.members[1]).exists()     # ... without beginning its run
        set_sweep_gate(sweep.path, "running")
        assert proc.wait(120) == 0
    finally:
        proc.kill()
    assert member_states(sweep)[sweep.members[1].name] == "finished"


def test_the_sweeps_page_pauses_resumes_and_stops_the_whole_sweep(app_runs, page):
    from engine.sweep.gate import sweep_gate

    sweep = create_sweep(app_runs / "sweeps", "s", "smoke", {}, {}, seeds=3)
    _finished_member(sweep, sweep.members[0], 45)    # the two others have not begun
    at = page("sweeps")
    at.run()
    buttons = {k: at.button(key=f"sweep_{k}") for k in ("pause", "resume", "stop")}
    assert [b.disabled for b in buttons.values()] == [False, True, False]
    buttons["pause"].click().run()
    assert not at.exception and sweep_gate(sweep.path) == "paused"
    assert any("no member starts until it is resumed" in c.value for c in at.caption)
    assert [at.button(key=f"sweep_{k}").disabled for k in ("pause", "resume", "stop")] == [True, False, False]
    at.button(key="sweep_resume").click().run()
    assert sweep_gate(sweep.path) == "running"
    at.button(key="sweep_stop").click().run()
    assert sweep_gate(sweep.path) == "stopped"
    assert any(f"python -m engine sweep --resume {sweep.path}" in c.value for c in at.caption)
    assert run_local(sweep, jobs=2)[sweep.members[1].name] == "pending"   # the driver starts none


def test_a_shipped_or_finished_sweep_has_nothing_to_steer(app_runs, page):
    sweep = create_sweep(app_runs / "sweeps", "s", "smoke", {}, {}, seeds=2)
    for m in sweep.members:
        _finished_member(sweep, m, 45)
    at = page("sweeps")
    at.run()
    assert not at.exception and not [b for b in at.button if (b.key or "") in ("sweep_pause", "sweep_stop")]


@pytest.mark.parametrize("text", ["", "{", "[1, 2]", '{"state": "sleeping"}', '{"state": 7}'])
def test_a_damaged_gate_file_reads_as_running_and_steering_rewrites_it(tmp_path, text):
    """A sweep nobody steered has no gate file; a damaged one must not wedge it paused or stopped either."""
    from engine.sweep.control import steer
    from engine.sweep.gate import SWEEP_CONTROL, sweep_gate

    sweep = create_sweep(tmp_path, "s", "smoke", {}, {}, seeds=2)
    (sweep.path / SWEEP_CONTROL).write_text(text)
    assert sweep_gate(sweep.path) == "running"
    assert steer(sweep, "stop") == 0 and sweep_gate(sweep.path) == "stopped"
    with pytest.raises(ValueError, match="unknown sweep command"):
        steer(sweep, "step")

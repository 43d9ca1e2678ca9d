"""One read handle for a run: config, variant, records and the genotype at a step, as the run derived them."""

from __future__ import annotations

import json
import shutil

import pytest

from engine.runs import rundir
from engine.runs.examples import EXAMPLES_ROOT
from engine.runs.handle import RunHandle

DEMO = next(p for p in sorted(EXAMPLES_ROOT.iterdir()) if p.name.endswith("example-demo"))


def test_a_recording_reads_back_its_own_cells():
    run = RunHandle(DEMO)
    assert (run.kind, run.variant) == ("search", "darts")
    rows = run.alphas()
    assert len(rows) == len(run.metrics()) > 0
    assert run.genotype_of(rows[-1]) == run.latest_genotype()
    epoch_rows = [r for r in run.genotypes() if r.get("kind") == "epoch_end"]
    first = epoch_rows[0]
    assert run.genotype_of(run.alphas_at(first["step"])).to_dict() == first["genotype"]
    assert run.alphas_at(-1) is None
    weights = run.weights(rows[-1])
    assert weights["normal"].shape == (14, 8) and abs(weights["normal"].sum(axis=1) - 1).max() < 1e-9


def test_the_runs_own_skip_cap_applies_unless_another_is_asked(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(DEMO, run_dir)
    record = json.loads((run_dir / rundir.CONFIG).read_text())
    record["config"]["max_skip"] = 0
    (run_dir / rundir.CONFIG).write_text(json.dumps(record))
    run = RunHandle(run_dir)
    last = run.alphas()[-1]
    assert all(op != "skip_connect" for op, _ in run.genotype_of(last).normal)
    uncapped = RunHandle(DEMO).genotype_of(last)
    assert run.genotype_of(last, max_skip=8) == uncapped


def test_derive_run_applies_and_records_the_runs_own_cap(tmp_path, cli):
    """`derive RUN --format json` caps as the run did and says so; an explicit --max-skip wins and is recorded."""
    run_dir = tmp_path / "run"
    shutil.copytree(DEMO, run_dir)
    record = json.loads((run_dir / rundir.CONFIG).read_text())
    record["config"]["max_skip"] = 0
    (run_dir / rundir.CONFIG).write_text(json.dumps(record))
    own = json.loads(cli("derive", str(run_dir), "--format", "json").stdout)
    assert own["max_skip"] == 0 and all(op != "skip_connect" for op, _ in own["genotype"]["normal"])
    asked = json.loads(cli("derive", str(run_dir), "--format", "json", "--max-skip", "8").stdout)
    assert asked["max_skip"] == 8
    assert asked["genotype"] == RunHandle(DEMO).genotype_of(RunHandle(DEMO).alphas()[-1]).to_dict()


def test_a_folder_without_a_config_is_refused_by_name(tmp_path):
    with pytest.raises(rundir.RunDirError, match="not a dartboard run directory"):
        RunHandle(tmp_path)

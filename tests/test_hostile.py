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

from engine import rundir
from engine.__main__ import main
from engine.config import from_preset
from engine.loop import run_search

NESTED = "[" * 100_000
V2_TEXT = "Genotype(normal=[('sep_conv_3x3', 0)] * 8)"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One finished smoke run, copied by each test that spoils it."""
    run_dir = tmp_path_factory.mktemp("hostile") / "run"
    run_dir.mkdir()
    assert run_search(from_preset("smoke", {"epochs": 1}), run_dir) == "finished"
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

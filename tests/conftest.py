"""Shared fixtures: every test writes runs under its own tmp dir, never ./runs.

Also the helpers many test files use: `cli` (python -m engine in a subprocess), `smoke` / `train_smoke` (the tiny
search and training presets), `page` (one dashboard page as an AppTest) and `search_run` (a search into the
test's tmp dir).

Tests use one torch thread (and so do the processes they start, through OMP_NUM_THREADS): the configs
are tiny, and on a loaded 2-core machine two spinning intra-op threads made a `smoke` step 40x slower.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("DARTBOARD_RUNS", str(root))
    return root


def reset_streamlit_caches() -> None:
    """st.cache_resource is shared by every AppTest in a process (the registry lives there): clear it."""
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def app_runs(tmp_path, monkeypatch):
    """A fresh dashboard registry on a tmp runs dir; afterwards every job it started is stopped."""
    from app import state

    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("DARTBOARD_RUNS", str(root))
    reset_streamlit_caches()
    yield root
    state.registry().shutdown(timeout=30)
    reset_streamlit_caches()


@pytest.fixture(scope="session")
def cli():
    """`cli(*args, check=True, **kw)`: `python -m engine *args` from the repository root, text captured, at most
    300 s; an AssertionError with its stderr when it exits non-zero, unless check=False. `kw` (env=...) goes to
    subprocess.run."""
    def run(*args, check=True, **kw):
        p = subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, capture_output=True, text=True,
                           timeout=300, **kw)
        if check and p.returncode != 0:
            raise AssertionError(f"exit {p.returncode}: {p.stderr}")
        return p
    return run


@pytest.fixture(scope="session")
def smoke():
    """The `smoke` SearchConfig (fake 8x8 data, C=4, 3 cells, batch 8, 2 epochs of 2 steps); frozen, so shared:
    change it with `smoke.replace(...)`."""
    from engine.search.config import from_preset

    return from_preset("smoke")


@pytest.fixture(scope="session")
def train_smoke():
    """The `train-smoke` TrainConfig; frozen, change it with `train_smoke.replace(...)`."""
    from engine.train.config import from_train_preset

    return from_train_preset("train-smoke")


@pytest.fixture(scope="session")
def page():
    """`page(name, timeout=60)`: the page function of app/screens/<name>.py as its own AppTest script
    (navigation's callables cannot be switched to in AppTest); not run yet."""
    from streamlit.testing.v1 import AppTest

    def script(name):
        import importlib

        importlib.import_module(f"app.screens.{name}").page()

    def make(name: str, timeout: float = 60) -> AppTest:
        return AppTest.from_function(script, args=(name,), default_timeout=timeout)
    return make


@pytest.fixture
def search_run(tmp_path):
    """`search_run(name, config, **kw)`: run_search(config, tmp_path/name, **kw) into a new directory;
    returns (run_dir, final state)."""
    from engine.search.loop import run_search

    def run(name, config, **kw):
        run_dir = tmp_path / name
        run_dir.mkdir()
        return run_dir, run_search(config, run_dir, **kw)
    return run

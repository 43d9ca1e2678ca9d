"""Shared fixtures: every test writes runs under its own tmp dir, never ./runs.

Tests use one torch thread (and so do the processes they start, through OMP_NUM_THREADS): the configs
are tiny, and on a loaded 2-core machine two spinning intra-op threads made a `smoke` step 40x slower.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch

torch.set_num_threads(1)


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

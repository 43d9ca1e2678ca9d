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

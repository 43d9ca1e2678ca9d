"""The figures bench/search_step.py prints: ATen calls per step, counted with torch.profiler."""

from __future__ import annotations

import torch

from engine.search.benchmark import SearchStep, count_aten_calls
from engine.search.config import PRESETS


def test_aten_calls_of_a_step_are_counted_and_repeatable():
    """A step's ATen calls: many (a supernet step is thousands of small ops) and the same count for the same
    step again (the figure bench/search_step.py prints beside each path's time)."""
    torch.manual_seed(0)
    cfg = PRESETS["smoke"].replace(device="cpu", fast=False, order="first")
    first = SearchStep(cfg)
    first()  # warm-up: lazy initialisation is not part of a step
    n = count_aten_calls(first)
    assert n > 1000 and count_aten_calls(first) == n

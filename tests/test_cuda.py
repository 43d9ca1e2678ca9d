"""The engine on a CUDA device: device moves, autocast, checkpoints that cross devices.

Skipped where there is no CUDA device (CI has none); run on a GPU machine with
`python -m pytest tests/test_cuda.py`. Configs are the tiny `smoke` preset.
"""

import numpy as np
import pytest
import torch

from engine.runs import rundir
from engine.runs.checkpoint import load_checkpoint
from engine.runs.control import Control
from engine.runs.hooks import Callback
from engine.runtime.device import amp_dtype, autocast, select_device
from engine.search.benchmark import SearchStep
from engine.search.loop import run_search

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


class StopAt(Callback):
    def __init__(self, step, control):
        self.step, self.control = step, control

    def on_step_end(self, event):
        if event.step == self.step:
            self.control.stop()


def test_auto_selects_cuda_and_amp_uses_bf16_there():
    device = select_device("auto")
    assert device.type == "cuda"
    if not torch.cuda.is_bf16_supported(including_emulation=False):   # before Ampere: refused, with the reason
        with pytest.raises(RuntimeError, match="amp=false"):
            amp_dtype(device)
        return
    assert amp_dtype(device) == torch.bfloat16
    x = torch.randn(4, 8, device=device)
    with autocast(device, True):
        y = torch.nn.functional.linear(x, torch.randn(3, 8, device=device))
    assert y.dtype == torch.bfloat16


@pytest.mark.parametrize("order", ["first", "second"])
@pytest.mark.parametrize("amp", [False, True])
def test_search_step_on_cuda_keeps_everything_on_the_device(order, amp, smoke):
    step = SearchStep(smoke.replace(order=order, amp=amp, dataset="fake", device="cuda"))
    before = [a.detach().clone() for a in step.model.arch_parameters()]
    for _ in range(2):
        assert step() > 0
    for name, p in step.model.named_parameters():
        assert p.device.type == "cuda", name
        assert torch.isfinite(p).all(), name
    after = step.model.arch_parameters()
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))   # the alphas moved


@pytest.mark.parametrize("amp", [False, True])
def test_cuda_run_finishes_and_resumes_on_the_cpu(tmp_path, amp, smoke):
    cfg = smoke.replace(epochs=2, device="cuda", amp=amp)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    control = Control()
    assert run_search(cfg, run_dir, control=control, callbacks=[StopAt(2, control)]) == "stopped"
    ckpt = load_checkpoint(run_dir / rundir.CHECKPOINT)     # saved from CUDA, loaded onto the CPU
    assert ckpt["step"] == 2
    assert run_search(cfg.replace(device="cpu", amp=False), run_dir, resume=True) == "finished"
    metrics = rundir.read_metrics(run_dir)
    assert [m["step"] for m in metrics] == list(range(1, 5))
    assert all(np.isfinite(m["train_loss"]) and np.isfinite(m["valid_loss"]) for m in metrics)
    assert rundir.read_config(run_dir)["device"] == "cuda"   # where it was created; the resume is recorded
    assert rundir.read_config(run_dir)["resumed"][0]["step"] == 2

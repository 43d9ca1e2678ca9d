"""How long one search step takes on this machine for a given config, and how much memory it needs.

A search step is what the search loop does per batch: the architecture step (first or second order, as
the config says) on a validation batch, then the weight step (forward, backward, grad-norm clip, SGD) on
a training batch. The data are random tensors of the config's shape, made once on the device, so data
loading is not part of the figure.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from typing import Any

import torch

from engine.runtime.device import autocast, select_device
from engine.search.architect import Architect
from engine.search.build import build_network
from engine.search.config import SearchConfig

__all__ = ["SearchStep", "measure_search_step", "count_aten_calls", "machine_info", "current_memory_mb",
           "peak_memory_mb", "reset_peak_memory"]

DEFAULT_IMAGE_SIZE = 32  # when the config leaves the size to the data (CIFAR's size)


class SearchStep:
    """A search network, its two optimisers and one fixed set of random batches; calling it runs one step."""

    def __init__(self, config: SearchConfig, device: torch.device | None = None):
        self.config = config
        self.device = device if device is not None else select_device(config.device)
        self.model = build_network(config, config.in_channels, config.num_classes).to(self.device)
        self.w_optimizer = torch.optim.SGD(self.model.weight_parameters(), lr=config.w_lr, momentum=config.w_momentum,
                                           weight_decay=config.w_weight_decay)
        self.architect = Architect(self.model, config.a_lr, config.a_betas, config.a_weight_decay, order=config.order)
        size = config.image_size or DEFAULT_IMAGE_SIZE
        shape = (config.batch_size, config.in_channels, size, size)
        self.x_train, self.x_val = (torch.randn(shape, device=self.device) for _ in range(2))
        self.y_train, self.y_val = (torch.randint(0, config.num_classes, (config.batch_size,), device=self.device)
                                    for _ in range(2))

    def __call__(self) -> float:
        """Run one step; return its wall-clock seconds (the device is synchronised before the clock stops)."""
        c = self.config
        start = time.perf_counter()
        self.architect.step(self.x_train, self.y_train, self.x_val, self.y_val, eta=c.w_lr,
                            w_optimizer=self.w_optimizer, amp=c.amp, device=self.device)
        self.w_optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, c.amp):
            loss = self.model.loss(self.x_train, self.y_train)
        loss.backward(inputs=self.model.weight_parameters() if self.model.fast else None)  # fast: no alpha grads
        torch.nn.utils.clip_grad_norm_(self.model.weight_parameters(), c.w_grad_clip)
        self.w_optimizer.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start


def count_aten_calls(step: SearchStep) -> int:
    """ATen operator calls of one search step (forward, backward, optimiser; nested calls included), counted
    with torch.profiler: the dispatch work a step costs, whatever the device's speed."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))


def _proc_status_mb(field: str) -> float | None:
    """A memory figure of this process from /proc/self/status (Linux), in MB; None where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    return None


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: CUDA's allocator statistics, or Linux's high-water mark of the resident set."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident set
    except OSError:
        pass  # not Linux: the peak is the process's peak since it started


def current_memory_mb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    return _proc_status_mb("VmRSS")


def peak_memory_mb(device: torch.device) -> tuple[float | None, str]:
    """(peak MB, what was measured): CUDA's max allocated on CUDA, else this process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    # ru_maxrss is not used on Linux: it survives fork+exec, so a child would report its parent's peak.
    hwm = _proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm, "process_peak_rss"
    try:
        import resource
    except ImportError:  # Windows has no getrusage
        return None, "unavailable"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10, "process_peak_rss"  # bytes on macOS


def machine_info() -> dict[str, Any]:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def measure_search_step(config: SearchConfig, steps: int = 5, warmup: int = 1,
                        device: torch.device | None = None) -> dict[str, Any]:
    """Warm up, then time `steps` full search steps; the median is the figure to quote."""
    if steps < 1 or warmup < 0:
        raise ValueError(f"need steps >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    step = SearchStep(config, device)
    baseline_mb = current_memory_mb(step.device)
    reset_peak_memory(step.device)
    for _ in range(warmup):
        step()
    seconds = [step() for _ in range(steps)]
    peak_mb, memory_kind = peak_memory_mb(step.device)
    model = step.model
    return {
        "seconds_per_step": statistics.median(seconds),
        "seconds_min": min(seconds),
        "seconds_max": max(seconds),
        "steps": steps,
        "warmup": warmup,
        "peak_memory_mb": peak_mb,
        "baseline_memory_mb": baseline_mb,  # in use before the first step (model, data, libraries)
        "memory_kind": memory_kind,
        "device": str(step.device),
        **machine_info(),
        "order": config.order, "variant": config.variant, "fast": config.fast, "amp": config.amp,
        "batch_size": config.batch_size, "image_size": config.image_size or DEFAULT_IMAGE_SIZE,
        "in_channels": config.in_channels, "num_classes": config.num_classes,
        "init_channels": config.init_channels, "layers": config.layers, "nodes": config.nodes,
        "weight_parameters": sum(p.numel() for p in model.weight_parameters()),
        "arch_parameters": sum(p.numel() for p in model.arch_parameters()),
    }

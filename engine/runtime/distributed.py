"""One search across several processes: `torchrun --nproc_per_node N -m engine search ...`.

Data parallel, with the gradients averaged by hand rather than by a DistributedDataParallel wrapper: the
architecture step asks autograd for gradients (`torch.autograd.grad`, several times in the unrolled second
order step), which DDP's backward hooks never see. So every gradient the search uses is all-reduced and
divided by the world size at the one place it is computed (`average_`): the weight gradients before
clipping, the architecture gradient, and in second order the training gradient of the unrolled step, the
validation gradients at w' and both sides of the finite difference. Each rank takes its own slice of
every global batch (`batch_size` is the global batch), all ranks start from one seed, and rank 0 alone
writes the run directory and reads control.json; its decision to step or stop reaches the other ranks
through `agree` before every step, so the ranks never diverge.

What differs from one process with the same global batch: BatchNorm normalises each rank's slice with
that slice's statistics (as DDP without SyncBatchNorm does), so the losses and gradients are those of
N half-batches, averaged, not of the whole batch. tests/test_distributed.py checks the part that must be
equal: two ranks give the mean of the gradients one process computes on the two slices, to 1e-5.

NCCL on GPUs: torchrun sets LOCAL_RANK; each rank then runs on cuda:LOCAL_RANK, with NCCL for CUDA tensors and
gloo for the CPU-side flags and objects in the same group (docs/distributed.md).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["World", "SINGLE", "PeerLost", "from_environment", "average_", "agree", "broadcast_object", "shutdown",
           "gather_rows"]

_TIMEOUT = _dt.timedelta(days=7)  # a paused search waits in a collective for as long as it stays paused


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes the run directory and listens to control.json."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


SINGLE = World()


class PeerLost(RuntimeError):
    """A collective failed because another rank of the search is gone (killed, crashed, out of memory).

    Every rank then ends at once (torchrun tears the group down too) and the run reads as interrupted, not
    failed: nothing is wrong with it, and it resumes from its last checkpoint with the same number of
    processes."""


_PEER_GONE = ("connection closed", "connection reset", "broken pipe", "timed out", "timeout", "remote worker",
              "peer", "socket", "nccl communicator was aborted")


def _peer_gone(e: RuntimeError) -> bool:
    """Whether a failed collective says another process went away (the backend's own error types, or the
    connection-lost words gloo uses in a plain RuntimeError)."""
    kinds = tuple(k for k in (getattr(dist, "DistNetworkError", None), getattr(dist, "DistBackendError", None)) if k)
    return isinstance(e, kinds) or any(word in str(e).lower() for word in _PEER_GONE)


def _collective(world: World, call: Any) -> Any:
    try:
        return call()
    except torch.OutOfMemoryError:
        raise  # this rank's own failure, with its own hint
    except RuntimeError as e:  # gloo: "Connection closed by peer"; NCCL: DistBackendError / DistNetworkError
        if not _peer_gone(e):
            raise  # a real error in the collective (a shape or size mismatch is a bug): the run fails
        text = (str(e).strip().splitlines() or [type(e).__name__])[0]
        reason = re.sub(r"^\[[^\]]*\]\s*", "", text).split(". ")[0][:160]  # gloo prefixes its source path
        raise PeerLost(f"rank {world.rank} lost another process of this {world.size}-process search ({reason})"
                       ) from e


def from_environment(device: str = "auto") -> World:
    """The world torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK, with the process group started;
    SINGLE outside torchrun. NCCL where each rank has a CUDA device, gloo otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SINGLE
    world = World(rank=int(os.environ["RANK"]), size=size, local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
        if use_cuda:
            torch.cuda.set_device(world.local_rank)
        dist.init_process_group(group_backend(use_cuda), timeout=_TIMEOUT)
    return world


def group_backend(use_cuda: bool) -> str:
    """The process group's backend: gloo on the CPU; with CUDA, NCCL for the gradients (CUDA tensors) and gloo
    for what lives in CPU memory (`agree`'s flag, `broadcast_object`), which NCCL refuses."""
    return "cpu:gloo,cuda:nccl" if use_cuda else "gloo"


def average_(tensors: Sequence[torch.Tensor], world: World) -> None:
    """Replace each tensor (in place) by its mean over the ranks; one all-reduce for all of them."""
    if not world.active or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    _collective(world, lambda: dist.all_reduce(flat))
    flat /= world.size
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


def gather_rows(t: torch.Tensor, world: World) -> torch.Tensor:
    """Every rank's `t` stacked along the first dimension in rank order (each rank holds rows of one batch)."""
    if not world.active:
        return t
    parts = [torch.empty_like(t) for _ in range(world.size)]
    _collective(world, lambda: dist.all_gather(parts, t.contiguous()))
    return torch.cat(parts)


def agree(go: bool, world: World) -> bool:
    """Rank 0's decision (step, or stop) for every rank, taken at the same point of the loop."""
    if not world.active:
        return go
    flag = torch.tensor([1 if go else 0], dtype=torch.int64)
    _collective(world, lambda: dist.broadcast(flag, src=0))
    return bool(flag.item())


def broadcast_object(obj: Any, world: World) -> Any:
    """Rank 0's value of a small picklable object (e.g. the run directory it created), on every rank."""
    if not world.active:
        return obj
    box = [obj]
    _collective(world, lambda: dist.broadcast_object_list(box, src=0))
    return box[0]


def shutdown(world: World) -> None:
    if world.active and dist.is_initialized():
        dist.destroy_process_group()

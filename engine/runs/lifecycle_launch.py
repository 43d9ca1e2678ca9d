"""Starting a run: the run directory's lock, the observers, and the one funnel every error of a run goes through.

`launch` is what `run_search` (engine/search/loop.py) and `run_training` (engine/train/loop.py) are made of: it
takes `.run.lock` (so a second process cannot write the same run: a second `--resume` is refused and writes
nothing), puts the run directory's writer first among the hooks, runs the job's `RunLoop` and turns any error
into a failed run rather than an exception.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from engine.runs import rundir
from engine.runs.control import Control
from engine.runs.hooks import Callback, CallbackList, RunDirWriter
from engine.runs.lifecycle import RunLoop
from engine.runs.snapshot import Snapshot, SnapshotBox
from engine.runtime.distributed import SINGLE, World

__all__ = ["launch"]


def launch(loop_class: type[RunLoop], config: Any, run_dir: str | Path, *, control: Control | None,
           callbacks: list[Callback] | None, box: SnapshotBox | None, resume: bool, world: World = SINGLE,
           observers: list[Callback] | None = None, **job: Any) -> str:
    """Run (or resume) a `loop_class` job writing `run_dir`; returns the final state. Never raises for a failed
    run: the error ends up in status.json, the snapshot and `on_exception`. `observers` come after the run
    directory's writer and before `callbacks`; `job` goes to the loop's constructor.

    Until setup has checked everything a failure writes nothing, and a run that failed before it began (no
    config.json) is removed. Under torchrun only rank 0 holds the lock and writes."""
    run_dir = Path(run_dir)
    control = control or Control()
    box = box or SnapshotBox()
    lock = FileLock(run_dir / rundir.RUN_LOCK, blocking=False)
    try:
        if world.main:
            lock.acquire()
    except (Timeout, OSError) as e:
        err = rundir.RunDirError(f"{run_dir} is being written by another process; stop that one first"
                                 if isinstance(e, Timeout) else f"cannot lock {run_dir}: {e}")
        box.put(Snapshot(run_id=run_dir.name, run_dir=str(run_dir), state="failed", config=config.to_dict(),
                         error=str(err), updated_at=time.time()))
        others = CallbackList(list(callbacks or []))  # nothing is written: the run belongs to the other process
        others.on_exception(err, "")
        others.on_run_end({"state": "failed", "step": 0, "error": str(err)})
        return "failed"
    writer = RunDirWriter(run_dir, dry=not world.main)
    hooks = CallbackList([writer, *(observers or []), *(callbacks or [])])
    loop = loop_class(config, run_dir, control, hooks, writer, box, world, **job)
    try:
        loop.setup(resume)
        loop.run()
    except BaseException as e:  # the one funnel for every error of a run
        loop.fail(e)
        if not isinstance(e, Exception):
            raise
    finally:
        writer.close()
        if lock.is_locked:
            lock.release()
    if loop.state == "failed" and world.main and not resume and not (run_dir / rundir.CONFIG).exists():
        shutil.rmtree(run_dir, ignore_errors=True)  # failed before it began (bad data, bad device): no run to keep
    return loop.state

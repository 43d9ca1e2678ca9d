"""One member of a sweep, in a process of its own: `python -m engine.sweep.member SWEEP_DIR NAME [--threads N]`.

Every backend starts members this way (the local pool as a child process, Ray inside a task), so a member that
crashes, runs out of memory or is killed takes nothing else with it. A member whose run directory holds a
checkpoint continues from it; a finished member exits at once; otherwise it starts from step 0. SIGTERM and
SIGINT stop it after the step in flight with a checkpoint, as for any search.

Before it begins, a member keeps to the sweep's gate (engine/sweep/gate.py): it waits while the sweep is
paused, and ends at once, untouched, when the sweep was stopped.

Exit status: 0 finished (or already finished), 3 stopped (resumable), 1 failed, 2 the member cannot start, 4 held
back by a stopped sweep (still pending).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
from pathlib import Path

from engine.runs import rundir

__all__ = ["main", "member_state"]

EXIT = {"finished": 0, "stopped": 3, "paused": 3}


def member_state(run_dir: Path) -> str:
    """What a member's run directory says: pending (nothing yet), its status.json state, or interrupted when
    that state is active but its process is gone (killed, or its machine lost)."""
    from engine.runs.liveness import is_interrupted

    if not (run_dir / rundir.CONFIG).exists():
        return "pending"
    status = rundir.read_status(run_dir)
    if is_interrupted(status):
        return "interrupted"
    return str(status.get("state") or "pending")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.sweep.member")
    p.add_argument("sweep_dir")
    p.add_argument("name")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the member's config)")
    args = p.parse_args(argv)

    from engine.runs.control import Control
    from engine.runs.snapshot import SnapshotBox
    from engine.runtime.threads import apply_threads
    from engine.search.loop import run_search
    from engine.sweep.spec import SweepError, load_sweep

    try:
        sweep = load_sweep(args.sweep_dir)
        member = sweep.member(args.name)
    except SweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    run_dir = sweep.run_dir(member)
    config = sweep.config(member)
    if args.threads is not None and member.kind == "search":
        config = config.replace(threads=args.threads)
    state = member_state(run_dir)
    if state == "finished":
        return 0
    from engine.sweep.gate import HELD, wait_at_gate

    if wait_at_gate(sweep.path) == "stopped":  # a stopped sweep starts nothing more, whatever started this process
        print(f"held: the sweep is stopped; `python -m engine sweep --resume {sweep.path}` continues it",
              file=sys.stderr)
        return HELD
    genotype = source = None
    if member.kind == "train":  # the second stage: the cell its search found, or a baseline
        from engine.train.source import GenotypeSourceError, resolve_genotype

        spec = member.source
        if not spec.startswith("random") and spec != "DARTS_V2":
            spec = str(sweep.run_dir(spec))
        try:
            genotype, source = resolve_genotype(spec)
        except (GenotypeSourceError, rundir.RunDirError) as e:
            print(f"error: {member.name}: no cell to train ({e})", file=sys.stderr)
            return 2
    resume = (run_dir / rundir.CHECKPOINT).exists() and (run_dir / rundir.CONFIG).exists()
    if not resume and run_dir.exists():  # began but wrote no checkpoint: nothing to keep, start it again
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    apply_threads(args.threads if args.threads is not None else getattr(config, "threads", 0))
    control = Control()

    def on_signal(signum, frame):  # the driver stops a member as a user stops a search: after this step
        control.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    box = SnapshotBox()
    if member.kind == "train":
        from engine.train.loop import run_training

        final = run_training(config, genotype, run_dir, source=source, control=control, box=box, resume=resume)
    else:
        final = run_search(config, run_dir, control=control, resume=resume, box=box)
    if final not in EXIT:  # the reason, for the member's log and the driver's record
        print(f"{final}: {box.get().error or box.get().message}", file=sys.stderr)
    return EXIT.get(final, 1)


if __name__ == "__main__":
    raise SystemExit(main())

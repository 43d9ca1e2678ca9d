"""One training in the foreground: what `python -m engine train` and `compare` run, and how a training run
directory is read back for a resume (also by the dashboard's controller).

Ctrl-C, SIGTERM and SIGHUP stop it after the current step with a checkpoint; a failure becomes `TrainFailed`,
which says whether the user's input was at fault (the command line then exits 2 with one line).

Both spaces' trainings run through here: the config's class picks the job (`_JOBS`, the one place that tells a
convolutional training from a recurrent one); everything around it (signals, errors, progress) is the same.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

from engine.runs import rundir
from engine.space.rnn.train_config import RNNTrainConfig
from engine.train.config import TrainConfig

__all__ = ["TrainFailed", "train_one", "resume_train_config", "TRAIN_KINDS", "score_of"]

_BAD_INPUT = ("ConfigError", "DataError", "CheckpointError", "RunDirError", "GenotypeSourceError", "CorpusError")
# config.json's kind of a training -> its config class (what a resume rebuilds)
TRAIN_KINDS: dict[str, type] = {"train": TrainConfig, "rnn_train": RNNTrainConfig}


def score_of(metrics: dict[str, Any]) -> str | None:
    """The final score a metrics row carries, as text: a convolutional training's test accuracy or a recurrent
    one's test perplexity (lower is better)."""
    if "test_acc" in metrics:
        return f"test_acc {metrics['test_acc']:.4f}"
    if "test_ppl" in metrics:
        return f"test_ppl {metrics['test_ppl']:.2f}"
    return None


class TrainFailed(Exception):
    """A training that could not start or ended failed; `bad_input` says whether the user can fix the input."""

    def __init__(self, message: str, bad_input: bool):
        super().__init__(message)
        self.bad_input = bad_input


def resume_train_config(run_dir: str | Path, overrides: dict[str, Any] | None = None):
    """(config, genotype, source) of a training run directory (either space's), with the (resumable) overrides
    applied."""
    from engine.space.cnn.genotype import Genotype
    from engine.space.rnn.genotype import Genotype as RNNGenotype

    record = rundir.read_config(run_dir)
    kind = record.get("kind")
    if kind not in TRAIN_KINDS:
        raise rundir.RunDirError(f"{run_dir} is a search, not a training; resume it with `python -m engine search "
                                 "--resume`")
    config = TRAIN_KINDS[kind].from_dict({**record["config"], **(overrides or {})})
    genotype = (RNNGenotype if kind == "rnn_train" else Genotype).from_dict(record["genotype"])
    return config, genotype, record.get("source") or {}


def _progress():
    from engine.runs.hooks import Callback

    class Progress(Callback):
        def on_run_start(self, info) -> None:
            print(f"run directory: {info['run_dir']}", file=sys.stderr)

        def on_step_end(self, event) -> None:
            m = event.metrics or {}
            if "test_acc" in m or "valid_ppl" in m:  # an epoch's end: a convolutional or a recurrent training's
                keys = ("train_loss", "train_acc", "test_loss", "test_acc", "valid_ppl", "test_ppl", "lr")
                print(f"epoch {m['epoch'] + 1} done at step {event.step}: " + json.dumps(
                    {k: round(m[k], 4) for k in keys if k in m}), file=sys.stderr, flush=True)

        def on_state(self, status) -> None:
            if status.get("message"):
                print(f"{status['state']}: {status['message']}", file=sys.stderr)

    return Progress()


def train_one(config: TrainConfig | RNNTrainConfig, genotype, source: dict[str, Any], run_dir: Path,
              resume: bool = False, quiet: bool = False, progress: Any = None,
              signals: list[int] | None = None) -> str:
    """Run one training in the foreground, stopping cleanly on SIGINT/SIGTERM/SIGHUP; TrainFailed if it failed.
    `progress` replaces the per-epoch lines (a callback); a signal that stopped it is appended to `signals`, so
    the command line can exit 128 + its number."""
    from engine.runs.control import Control
    from engine.runs.hooks import Callback
    from engine.runs.snapshot import SnapshotBox

    if isinstance(config, RNNTrainConfig):
        from engine.train.rnn_loop import run_rnn_training as run_training
    else:
        from engine.train.loop import run_training

    control, box, errors, started = Control(), SnapshotBox(), [], []

    def on_signal(signum, frame):
        if signals is not None:
            signals.append(signum)
        print(f"\n{signal.Signals(signum).name}: stopping after this step with a checkpoint...", file=sys.stderr)
        control.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    handled = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {sig: signal.signal(sig, on_signal) for sig in handled}

    class _Errors(Callback):
        def on_run_start(self, info):
            started.append(True)

        def on_exception(self, exc, traceback_text):
            errors.append(type(exc).__name__)

    callbacks = [_Errors()] + ([] if quiet else [progress or _progress()])
    try:
        state = run_training(config, genotype, run_dir, source=source, control=control, callbacks=callbacks, box=box,
                             resume=resume)
    finally:  # the next entrant of a comparison (or the caller) gets its own handling back
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if state == "failed":
        raise TrainFailed(str(box.get().error), bad_input=bool(errors) and errors[0] in _BAD_INPUT and not started)
    return state

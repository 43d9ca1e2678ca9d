"""TensorBoard event files in every run directory, so `tensorboard --logdir runs` shows each run.

An observer (engine/runs/hooks.py) like the run directory's writer: every logged metrics row becomes scalars
(losses, accuracies, learning rates, steps/s) at its global step, every epoch end adds the op weights of
each cell as an image (rows = edges, columns = ops, white = weight 1, on the same fixed 0..1 scale as
the dashboard) and the genotype as text. A resumed run starts its writer with `purge_step` one past the
checkpoint, so TensorBoard drops the steps that are redone and no curve doubles back.

The run's settings (every config field, and whether it is a search or a training) go in as hparams, so
TensorBoard's HParams view lists runs side by side with their settings and metrics. Only the session's own record
is written, not an experiment summary: TensorBoard then builds the experiment from every run it finds, where the
first experiment summary it met would hide the fields of the other kind of run.

SummaryWriter queues events for its own thread, so the training thread does not wait on the disk.
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Mapping
from typing import Any

import numpy as np

from engine.runs import rundir
from engine.runs.hooks import Callback, StepEvent
from engine.variants import record_weights

__all__ = ["TensorBoardLog", "SCALARS", "hparam_values"]

# metrics.jsonl key -> TensorBoard tag
SCALARS = {
    "train_loss": "loss/train", "valid_loss": "loss/valid", "test_loss": "loss/test",
    "train_acc": "accuracy/train", "valid_acc": "accuracy/valid", "test_acc": "accuracy/test",
    "w_lr": "lr/weights", "a_lr": "lr/alphas", "lr": "lr/weights", "steps_per_s": "speed/steps_per_s",
    "train_ppl": "perplexity/train", "valid_ppl": "perplexity/valid", "epoch_valid_ppl": "perplexity/valid_epoch",
    "test_ppl": "perplexity/test",
}
_PIXELS = 12  # each (edge, op) weight is drawn as a square of this many pixels


def hparam_values(config: Any, kind: str) -> dict[str, Any]:
    """A config as TensorBoard hparams, with the run's kind (search, train): numbers and strings as they are, a
    boolean as true/false (torch's `hparams` would make it the number 1.0), a tuple as its text ("0.5,0.999"); a
    field left at none is left out (HParams gives each field one type across runs)."""
    out: dict[str, Any] = {"kind": kind}
    for key, value in config.to_dict().items():
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            out[key] = ",".join(str(v) for v in value)
        elif isinstance(value, (bool, int, float, str)):
            out[key] = value
    return out


class TensorBoardLog(Callback):
    def __init__(self, run_dir: str | Path, variant: str | Mapping[str, Any] = "darts"):
        """`variant`: a name, or a run's config (its variant with the options it set) as record_weights takes."""
        self.run_dir = Path(run_dir)
        self.variant = variant
        self._writer: Any = None

    def on_run_start(self, info: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        step = int(info.get("status", {}).get("step", 0))
        # A resume (step > 0) redoes every step after the checkpoint: purge what an earlier process logged there.
        self._writer = SummaryWriter(log_dir=str(self.run_dir), purge_step=step + 1 if step > 0 else None,
                                     flush_secs=10)
        config = info.get("config")
        if config is not None and hasattr(config, "to_json"):
            self._writer.add_text("config", "```\n" + config.to_json() + "\n```", step)
            self._add_hparams(config)

    def _add_hparams(self, config: Any) -> None:
        from torch.utils.tensorboard.summary import hparams

        try:  # config.json, written before the run starts, says what kind of run this is
            kind = str(rundir.read_config(self.run_dir).get("kind", "search"))
        except rundir.RunDirError:
            kind = "search"
        _, start, _ = hparams(hparam_values(config, kind), {})
        self._writer._get_file_writer().add_summary(start)

    def on_step_end(self, event: StepEvent) -> None:
        if self._writer is None or event.metrics is None:
            return
        for key, tag in SCALARS.items():
            value = event.metrics.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(tag, float(value), event.step)

    def on_epoch_end(self, event: StepEvent, genotype_row: dict[str, Any]) -> None:
        if self._writer is None:
            return
        if event.alphas is not None:
            weights = record_weights(event.alphas, self.variant)
            for cell, w in weights.items():  # (edges, ops) in 0..1 -> a grey image, one square per weight
                image = np.kron(np.clip(w, 0.0, 1.0), np.ones((_PIXELS, _PIXELS)))
                self._writer.add_image(f"op_weights/{cell}", image, event.step, dataformats="HW")
        genotype = genotype_row.get("genotype")
        if genotype is not None:  # read by the run's own space (a recurrent run's genotype has one cell)
            text = rundir.run_space(self.run_dir).genotype_from_dict(genotype).to_darts()
            self._writer.add_text("genotype", f"epoch {event.epoch + 1}: `{text}`", event.step)

    def on_run_end(self, status: dict[str, Any]) -> None:
        if self._writer is not None and status.get("state") == "finished":
            from torch.utils.tensorboard.summary import hparams

            _, _, end = hparams({}, {})  # a session that ran to its end (HParams shows its status)
            self._writer._get_file_writer().add_summary(end)
        if self._writer is not None:
            self._writer.close()
            self._writer = None

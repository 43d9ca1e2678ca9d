"""Every run writes TensorBoard event files that TensorBoard's own reader opens: the same numbers as
metrics.jsonl, op-weight images per epoch, the genotype as text, and no step twice after a resume."""

from __future__ import annotations

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from engine.runs import rundir
from engine.runs.control import Control
from engine.runs.hooks import Callback
from engine.search.loop import run_search


def _read(run_dir):
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


class _StopAt(Callback):
    def __init__(self, control, step):
        self.control, self.step = control, step

    def on_step_end(self, event):
        if event.step == self.step:
            self.control.stop()


def test_a_search_opens_in_tensorboard_with_the_run_directorys_numbers(tmp_path, smoke):
    cfg = smoke.replace(epochs=2)
    assert run_search(cfg, tmp_path) == "finished"
    acc = _read(tmp_path)
    metrics = rundir.read_metrics(tmp_path)
    for key, tag in (("train_loss", "loss/train"), ("valid_acc", "accuracy/valid"), ("w_lr", "lr/weights"),
                     ("steps_per_s", "speed/steps_per_s")):
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [m["step"] for m in metrics]
        assert [e.value for e in events] == pytest.approx([m[key] for m in metrics], rel=1e-6)
    images = acc.Tags()["images"]
    assert set(images) == {"op_weights/normal", "op_weights/reduce"}
    shot = acc.Images("op_weights/normal")
    assert len(shot) == cfg.epochs and (shot[0].width, shot[0].height) == (8 * 12, 14 * 12)
    texts = acc.Tensors("genotype/text_summary")
    assert len(texts) == cfg.epochs and b"Genotype(normal=" in texts[-1].tensor_proto.string_val[0]


def _hparams(run_dir):
    """The run's session as TensorBoard's HParams plugin reads it (through the accumulator TensorBoard's server
    uses): its hparams, and its end status if it has one."""
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator as PluginAccumulator
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    acc = PluginAccumulator(str(run_dir))
    acc.Reload()
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
    assert metadata.EXPERIMENT_TAG not in content  # TensorBoard builds the experiment from every run's session
    start = plugin_data_pb2.HParamsPluginData.FromString(content[metadata.SESSION_START_INFO_TAG])
    values = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.session_start_info.hparams.items()}
    end = content.get(metadata.SESSION_END_INFO_TAG)
    status = None if end is None else plugin_data_pb2.HParamsPluginData.FromString(end).session_end_info.status
    return values, None if status is None else api_pb2.Status.Name(status)


def test_every_run_gives_tensorboard_its_settings_as_hparams(tmp_path, smoke, train_smoke):
    from engine.space.cnn.genotype import KNOWN_GENOTYPES
    from engine.train.loop import run_training

    search = smoke.replace(epochs=1, w_lr=0.07, variant="pc_darts", pc_k=2)
    assert run_search(search, tmp_path / "search") == "finished"
    values, status = _hparams(tmp_path / "search")
    assert status == "STATUS_SUCCESS"
    assert values["kind"] == "search" and values["variant"] == "pc_darts" and values["pc_k"] == 2
    assert values["w_lr"] == pytest.approx(0.07) and values["fast"] == "true" and values["a_betas"] == "0.5,0.999"
    assert "max_skip" not in values  # none: left out
    assert set(values) == {"kind"} | {k for k, v in search.to_dict().items() if v is not None}

    assert run_training(train_smoke.replace(epochs=1), KNOWN_GENOTYPES["DARTS_V2"], tmp_path / "train") == "finished"
    values, _ = _hparams(tmp_path / "train")
    assert values["kind"] == "train" and values["lr"] == pytest.approx(train_smoke.lr)
    assert values["epochs"] == 1 and values["cutout"] == train_smoke.cutout


def test_a_resume_purges_the_steps_it_redoes(tmp_path, smoke):
    """A process dies after logging steps past its last checkpoint; the resume redoes them. TensorBoard must
    show each step once (SummaryWriter's purge_step), as metrics.jsonl does."""
    from engine.runs.checkpoint import save_checkpoint

    class KeepEpochCheckpoint(_StopAt):
        def on_step_end(self, event):
            if event.step == 2 and event.checkpoint is not None:  # the epoch-end checkpoint (2 steps an epoch)
                save_checkpoint(tmp_path / "epoch.pt", event.checkpoint)
            super().on_step_end(event)

    cfg = smoke.replace(epochs=3, checkpoint_every_s=1e6)
    control = Control()
    assert run_search(cfg, tmp_path, control=control, callbacks=[KeepEpochCheckpoint(control, 3)]) == "stopped"
    (tmp_path / "epoch.pt").replace(tmp_path / rundir.CHECKPOINT)  # as if killed after logging step 3
    assert [e.step for e in _read(tmp_path).Scalars("loss/train")] == [1, 2, 3]
    assert run_search(cfg, tmp_path, resume=True) == "finished"
    steps = [e.step for e in _read(tmp_path).Scalars("loss/train")]
    assert steps == [m["step"] for m in rundir.read_metrics(tmp_path)] == list(range(1, 7))


def test_a_training_opens_in_tensorboard_with_its_test_accuracy(tmp_path, train_smoke):
    from engine.space.cnn.genotype import KNOWN_GENOTYPES
    from engine.train.loop import run_training

    assert run_training(train_smoke, KNOWN_GENOTYPES["DARTS_V2"], tmp_path) == "finished"
    acc = _read(tmp_path)
    ends = [m for m in rundir.read_metrics(tmp_path) if "test_acc" in m]
    events = acc.Scalars("accuracy/test")
    assert [e.step for e in events] == [m["step"] for m in ends] and ends
    assert [e.value for e in events] == pytest.approx([m["test_acc"] for m in ends], rel=1e-6)
    assert "lr/weights" in acc.Tags()["scalars"] and "loss/train" in acc.Tags()["scalars"]

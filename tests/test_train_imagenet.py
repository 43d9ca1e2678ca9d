"""The paper's ImageNet transfer as the preset darts-imagenet-eval, on a synthetic ImageFolder tree in tmp_path:
the recipe, NetworkImageNet, the exponential lr, label smoothing, top-5, exact resume, refusals, old configs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image

from engine.__main__ import main
from engine.core.config import ConfigError
from engine.nn.network import NetworkImageNet
from engine.runs import rundir
from engine.runs.control import Control
from engine.runs.hooks import Callback
from engine.space.cnn.genotype import KNOWN_GENOTYPES
from engine.train.config import TRAIN_PRESETS, TrainConfig, from_train_preset
from engine.train.data import load_train_data
from engine.train.export import load_model
from engine.train.loop import run_training
from engine.train.resume import load_train_checkpoint
from engine.train.run import resume_train_config
from engine.train.step import auxiliary_fits, train_step

V2 = KNOWN_GENOTYPES["DARTS_V2"]
PAPER = TRAIN_PRESETS["darts-imagenet-eval"]
TINY = {"init_channels": 8, "layers": 3, "image_size": 32, "auxiliary_weight": 0.0, "batch_size": 4,
        "log_every": 1}


def _tree(root, per_class=(5, 2), classes=("ant", "bee", "cat")):
    """train/ and val/ with `per_class` images of each class: small, non-square, PNG and JPEG, some greyscale."""
    rng = np.random.default_rng(0)
    for split, n in zip(("train", "val"), per_class, strict=True):
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                h, w = int(rng.integers(36, 60)), int(rng.integers(36, 60))
                pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                pixels[..., c] = 200    # a class signal
                im = Image.fromarray(pixels)
                im = im.convert("L") if i == 1 else im
                im.save(root / split / name / f"{i}.{'jpg' if i % 2 else 'png'}")
    return root


def _config(root, **kw):
    return from_train_preset("darts-imagenet-eval", {"data_root": str(root), **TINY, **kw})


def test_the_preset_is_the_papers_recipe_and_old_configs_keep_todays_behaviour():
    p = PAPER
    assert (p.network, p.init_channels, p.layers, p.image_size, p.batch_size, p.epochs) == ("imagenet", 48, 14, 224,
                                                                                             128, 250)
    assert (p.lr, p.lr_schedule, p.lr_gamma, p.momentum, p.weight_decay, p.grad_clip) == (0.1, "exponential", 0.97,
                                                                                          0.9, 3e-5, 5.0)
    assert (p.label_smoothing, p.auxiliary_weight, p.drop_path_prob, p.top5) == (0.1, 0.4, 0.0, True)
    assert (p.dataset, p.augment, p.color_jitter, p.hue_jitter, p.flip, p.cutout, p.crop_padding) == (
        "imagefolder", "imagenet", 0.4, 0.2, True, 0, 0)
    assert auxiliary_fits(224, "imagenet") and not auxiliary_fits(192, "imagenet") and not auxiliary_fits(64,
                                                                                                          "imagenet")
    # config.json written before these fields existed: the defaults are the CIFAR recipe it trained with
    old = {k: v for k, v in TRAIN_PRESETS["darts-cifar10-eval"].to_dict().items()
           if k not in ("network", "augment", "lr_schedule", "lr_gamma", "color_jitter", "hue_jitter",
                        "label_smoothing", "top5")}
    c = TrainConfig.from_dict(old)
    assert (c.network, c.augment, c.lr_schedule, c.label_smoothing, c.top5) == ("cifar", "cifar", "cosine", 0.0, False)
    assert c == TRAIN_PRESETS["darts-cifar10-eval"]


@pytest.mark.parametrize("overrides,field", [
    ({"network": "resnet"}, "network"), ({"lr_schedule": "step"}, "lr_schedule"), ({"lr_gamma": 1.5}, "lr_gamma"),
    ({"label_smoothing": 1.0}, "label_smoothing"), ({"image_size": 16}, "image_size"),
    ({"image_size": None}, "image_size"), ({"augment": "cifar"}, "dataset"), ({"hue_jitter": 0.7}, "hue_jitter"),
    ({"cutout": 16}, "cutout"), ({"top5": "yes"}, "top5"),
])
def test_bad_values_name_their_field(overrides, field):
    with pytest.raises(ConfigError) as e:
        _config("/nowhere", **overrides)
    assert e.value.field == field and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="augment='imagenet' is not valid"):
        TrainConfig(augment="imagenet", image_size=32)                   # reads the files of an image folder only
    with pytest.raises(ConfigError, match="color_jitter"):
        TrainConfig(color_jitter=0.4)


def test_the_cli_trains_end_to_end_and_records_top1_and_top5(tmp_path, runs_dir, capsys):
    root = _tree(tmp_path / "tree")
    args = ["train", "DARTS_V2", "--preset", "darts-imagenet-eval", "--set", f"data_root={root}", "--set", "epochs=2",
            *sum((["--set", f"{k}={v}"] for k, v in TINY.items()), [])]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "finished" in err and "test_acc" in err
    run = next(runs_dir.iterdir())
    record = rundir.read_config(run)
    assert record["config"]["network"] == "imagenet" and record["dataset"]["num_train"] == 15
    rows = rundir.read_metrics(run)
    ends = [r for r in rows if "test_acc" in r]
    assert [r["step"] for r in ends] == [4, 8] and all(0 <= r["test_acc"] <= r["test_top5"] == 1.0 for r in ends)
    assert [r["lr"] for r in ends] == pytest.approx([0.1, 0.1 * 0.97])   # lr * 0.97**epoch, stepped per epoch
    ckpt = load_train_checkpoint(run / rundir.CHECKPOINT)
    net = NetworkImageNet(8, 3, 3, False, V2)
    net.load_state_dict(ckpt["model"])                                  # the ImageNet network was trained
    assert ckpt["mean"] == pytest.approx([0.485, 0.456, 0.406]) and ckpt["scheduler"]["gamma"] == 0.97
    assert main(["export", str(run), "--format", "checkpoint"]) == 0     # a model export rebuilds the same network
    assert isinstance(load_model(run / "exports" / "model.pt"), NetworkImageNet)


def test_the_lr_follows_097_to_the_epoch(tmp_path):
    cfg = _config(_tree(tmp_path / "tree", per_class=(1, 1)), epochs=4, batch_size=8)
    run = tmp_path / "run"
    run.mkdir()
    assert run_training(cfg, V2, run) == "finished"
    lrs = [r["lr"] for r in rundir.read_metrics(run)]
    assert lrs == pytest.approx([0.1 * 0.97 ** e for e in range(4)], rel=1e-12)


def test_label_smoothing_is_torchs_in_the_loss():
    torch.manual_seed(0)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 1])
    losses = {}
    for eps in (0.0, 0.1):
        torch.manual_seed(1)
        net = NetworkImageNet(8, 3, 3, False, V2)
        with torch.no_grad():
            logits, _ = net.train()(x)
        cfg = TrainConfig(network="imagenet", image_size=32, label_smoothing=eps, auxiliary_weight=0.0)
        out = train_step(net, torch.optim.SGD(net.parameters(), 0.0), (x, y), cfg, torch.device("cpu"))
        assert out.loss == pytest.approx(float(F.cross_entropy(logits, y, label_smoothing=eps)), rel=1e-5)
        # the reference's CrossEntropyLabelSmooth, written out
        logp = logits.log_softmax(1)
        ref = ((1 - eps) * -logp.gather(1, y[:, None]).squeeze(1) - eps * logp.mean(1)).mean()
        assert out.loss == pytest.approx(float(ref), rel=1e-5)
        losses[eps] = out.loss
    assert losses[0.1] != losses[0.0]


class _StopAt(Callback):
    def __init__(self, control, step):
        self.control, self.step = control, step

    def on_step_end(self, event):
        if event.step == self.step:
            self.control.stop()


def test_stop_and_resume_equals_an_uninterrupted_run(tmp_path):
    """RandomResizedCrop, flip and colour jitter are drawn per image from seeded generators, SGD momentum and the
    exponential schedule are checkpointed: stopped mid-epoch and resumed, the weights end the same to 1e-6."""
    cfg = _config(_tree(tmp_path / "tree"), epochs=2)
    a = tmp_path / "a"
    a.mkdir()
    assert run_training(cfg, V2, a) == "finished"
    b = tmp_path / "b"
    b.mkdir()
    control = Control()
    assert run_training(cfg, V2, b, control=control, callbacks=[_StopAt(control, 6)]) == "stopped"
    config, genotype, _ = resume_train_config(b)
    assert config == cfg and run_training(config, genotype, b, resume=True) == "finished"
    wa = load_train_checkpoint(a / rundir.CHECKPOINT)["model"]
    wb = load_train_checkpoint(b / rundir.CHECKPOINT)["model"]
    for k in wa:
        np.testing.assert_allclose(wb[k].double().numpy(), wa[k].double().numpy(), atol=1e-6, rtol=0, err_msg=k)
    ma, mb = rundir.read_metrics(a), rundir.read_metrics(b)
    assert [m["step"] for m in mb] == [m["step"] for m in ma]
    assert [m.get("test_top5") for m in mb] == [m.get("test_top5") for m in ma]


def test_the_augmentation_is_seeded_and_the_eval_transform_is_fixed(tmp_path):
    cfg = _config(_tree(tmp_path / "tree"))
    d1, d2 = load_train_data(cfg), load_train_data(cfg)
    (x1, y1), (x2, y2) = next(d1.batches(0, 4)), next(d2.batches(0, 4))
    assert x1.shape == (4, 3, 32, 32) and torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(next(d1.batches(1, 4))[0], x1)                    # another epoch, other crops
    t1, t2 = next(d1.test_batches(6))[0], next(d2.test_batches(6))[0]
    assert t1.shape == (6, 3, 32, 32) and torch.equal(t1, t2)
    # the evaluation transform is torchvision's Resize(size * 256/224) + CenterCrop(size), ToTensor, Normalize
    path = sorted((tmp_path / "tree" / "val" / "ant").iterdir())[0]
    ref = T.Compose([T.Resize(37), T.CenterCrop(32), T.ToTensor(),
                     T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])(Image.open(path).convert("RGB"))
    torch.testing.assert_close(t1[0], ref, atol=1e-5, rtol=0)


def _without(split):
    def make(root):
        shutil.rmtree(_tree(root) / split)
        return root
    return make


def _empty_train(root):
    (root / "train").mkdir()
    return root


@pytest.mark.parametrize("make,needle", [
    (lambda root: root / "missing", "not found; point --set data_root"),
    (_without("train"), "has no train/ folder"),
    (_without("val"), "has no val/ folder"),
    (_empty_train, "Couldn't find any class folder"),
])
def test_a_missing_folder_or_split_exits_2_with_one_line(make, needle, tmp_path, runs_dir, capsys):
    (tmp_path / "t").mkdir()
    root = make(tmp_path / "t")
    assert main(["train", "DARTS_V2", "--preset", "darts-imagenet-eval", "--set", f"data_root={root}"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not list(runs_dir.iterdir())        # nothing kept, nothing downloaded


def test_sizes_the_imagenet_network_cannot_take_are_refused(tmp_path, runs_dir, capsys):
    root = _tree(tmp_path / "tree", per_class=(1, 1))
    for sets, needle in ((["image_size=16"], "at least 32 for network=imagenet"),
                         (["image_size=64"], "auxiliary head needs about 224x224")):
        args = ["train", "DARTS_V2", "--preset", "darts-imagenet-eval", "--set", f"data_root={root}"]
        assert main(args + sum((["--set", s] for s in sets), [])) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1


def test_an_old_run_directory_without_the_new_fields_resumes(tmp_path):
    cfg = TRAIN_PRESETS["train-smoke"].replace(epochs=2)
    run = tmp_path / "old"
    run.mkdir()
    control = Control()
    assert run_training(cfg, V2, run, control=control, callbacks=[_StopAt(control, 3)]) == "stopped"
    record = json.loads((run / rundir.CONFIG).read_text())
    for key in ("network", "augment", "lr_schedule", "lr_gamma", "color_jitter", "hue_jitter", "label_smoothing",
                "top5"):
        del record["config"][key]
    (run / rundir.CONFIG).write_text(json.dumps(record))       # as a run from before these fields wrote it
    ckpt = torch.load(run / rundir.CHECKPOINT, weights_only=True)
    for key in ("network", "augment", "lr_schedule", "lr_gamma", "color_jitter", "hue_jitter", "label_smoothing",
                "top5"):
        del ckpt["config"][key]
    torch.save(ckpt, run / rundir.CHECKPOINT)
    config, genotype, _ = resume_train_config(run)
    assert config == cfg
    assert run_training(config, genotype, run, resume=True) == "finished"
    assert [r["step"] for r in rundir.read_metrics(run)] == list(range(1, 9))


def test_at_224_the_auxiliary_head_trains_at_04(tmp_path):
    """The preset's own input size and head, on a narrow, shallow network: the head's loss is in the gradient."""
    cfg = _config(_tree(tmp_path / "tree", per_class=(1, 1)), image_size=224, auxiliary_weight=0.4, epochs=1,
                  batch_size=3)
    run = tmp_path / "run"
    run.mkdir()
    assert run_training(cfg, V2, run) == "finished"
    ckpt = load_train_checkpoint(run / rundir.CHECKPOINT)
    assert any(k.startswith("auxiliary_head.") for k in ckpt["model"]) and ckpt["image_size"] == 224
    assert rundir.read_metrics(run)[-1]["test_top5"] == 1.0


def test_compare_counts_the_imagenet_network_it_trained(tmp_path, runs_dir, capsys):
    """compare's parameters and mult-adds are those of the network the preset trains (NetworkImageNet), equal to
    the trained run's own recorded count, not the CIFAR network's."""
    from engine.train.compare import compare

    root = _tree(tmp_path / "tree")
    rows = compare(None, _config(root, epochs=1), random_cells=0, runs_dir=runs_dir, quiet=True)
    assert [r["name"] for r in rows] == ["DARTS_V2"] and rows[0]["state"] == "finished"
    record = rundir.read_config(rows[0]["run_dir"])
    net = NetworkImageNet(8, 3, 3, False, V2)
    assert rows[0]["parameters"] == record["parameters"] == sum(p.numel() for p in net.parameters())
    size = record["dataset"]["image_size"]
    from engine.nn.network import count_multiply_adds

    assert rows[0]["mult_adds"] == count_multiply_adds(net, (1, 3, size, size))


def test_the_train_page_shows_the_top5_accuracy_it_recorded(tmp_path, app_runs, page):
    """A training with top-5 scoring (an ImageNet one) shows its last test top-5 beside its top-1 on the Train page."""
    from app import state
    from engine.space.cnn.genotype import KNOWN_GENOTYPES

    job = state.registry().start(_config(_tree(tmp_path / "tree"), epochs=1), genotype=KNOWN_GENOTYPES["DARTS_V2"],
                                 source={"label": "DARTS_V2"})
    assert job.join(120) and job.snapshot().state == "finished"
    last = [r for r in rundir.read_metrics(job.run_dir) if "test_top5" in r][-1]
    at = page("train")
    at.session_state["train.run_id"] = job.run_id   # as Start training and the Runs page's resume set it
    at.run()
    assert not at.exception, at.exception
    shown = {m.label: m.value for m in at.metric}
    assert shown["Test accuracy (last epoch)"] == f"{last['test_acc']:.4f}"
    assert shown["Test top-5 accuracy (last epoch)"] == f"{last['test_top5']:.4f}"

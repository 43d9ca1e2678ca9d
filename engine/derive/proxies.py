"""Cell scores in seconds: parameters, mult-adds and three zero-cost proxies of a genotype's network.

These are proxies, never accuracies. A network built from the genotype at a training preset's size (freshly
initialised, seeded) sees one batch of that preset's training images, unaugmented, and is scored by:

- synflow (Tanaka et al., NeurIPS 2020; as zero-cost NAS uses it, Abdelfattah et al., ICLR 2021): every weight
  replaced by its absolute value, BatchNorm switched off, a single all-ones input in float64;
  R = sum of the logits; the score is sum |theta * dR/dtheta| over the weights of the convolutions and linear
  layers.
- NASWOT (Mellor et al., ICML 2021): each image's binary code is which units every ReLU lets through;
  K[i, j] = the number of units on which images i and j agree; the score is log|det K|.
- grad-norm (Abdelfattah et al., ICLR 2021): the sum over the convolutions and linear layers of the L2 norm of
  the cross-entropy loss's gradient with respect to their weights.

Each is computed on its own copy of the network, so none changes the weights or statistics another reads.
Reference implementations: github.com/mohsaied/zero-cost-nas (foresight/pruners/measures/), and
github.com/BayesWatch/nas-without-training for NASWOT. docs/derivation.md says what these scores are worth on
the DARTS space (little, per the literature) and how their measured rank correlation is shown.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.core.atomic import loads_json
from engine.space.cnn.genotype import Genotype

__all__ = ["PROXIES", "COLUMNS", "REFERENCE_PATH", "REFERENCE_FORMAT", "ReferenceError", "synflow", "naswot",
           "grad_norm", "count_parameters", "multiply_adds", "score_network", "score_genotype", "proxy_batch",
           "percentile", "spearman", "load_reference", "reference_percentiles", "comparable", "trained_cells",
           "correlations", "score_config", "scoring_config", "add_proxies", "proxy_correlation", "format_proxies"]

PROXIES = ("synflow", "naswot", "grad_norm")
COLUMNS = ("parameters", "mult_adds", *PROXIES)  # every score a cell gets, each ranked against the reference
REFERENCE_PATH = Path(__file__).resolve().parents[2] / "assets" / "proxies" / "reference.json"
REFERENCE_FORMAT = "dartboard-proxy-reference/1"
DEFAULT_PRESET = "train-demo"
SCORE_SEED = 0  # the network's init and the batch's order: one fixed draw, so a cell always gets the same scores


class ReferenceError(RuntimeError):
    """The reference set is missing, damaged or scored another way; the message names the file."""


def _logits(out: Any) -> torch.Tensor:
    # NetworkCIFAR returns (logits, logits_aux); a plain module returns logits
    return out[0] if isinstance(out, tuple) else out


def _weighted_layers(net: nn.Module) -> list[nn.Module]:
    """The layers every proxy sums over, as the reference code does: convolutions and linear layers."""
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def multiply_adds(net: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-adds of one sample, counted as `engine.nn.network.count_multiply_adds` counts the training's
    networks (convolutions and matrix products, the paper's convention)."""
    from engine.nn.network import count_multiply_adds

    return count_multiply_adds(net, (1, *input_shape[1:]))


def synflow(net: nn.Module, input_shape: Sequence[int]) -> float:
    """sum |theta * dR/dtheta| over conv and linear weights, R = sum of the logits of an all-ones input through
    the network with |theta| and no BatchNorm, in float64. Needs no data: it scores the wiring alone."""
    net = copy.deepcopy(net).double().train()
    for name, module in list(net.named_modules()):
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            # Identity in its parent: the reference switches BatchNorm off, which keeps the signal's scale
            # the product of the weights' magnitudes (synflow's "conserved" flow)
            parent, _, attr = name.rpartition(".")
            setattr(net.get_submodule(parent) if parent else net, attr, nn.Identity())
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    x = torch.ones((1, *input_shape[1:]), dtype=torch.float64)
    _logits(net(x)).sum().backward()
    with torch.no_grad():
        return float(sum(float((layer.weight * layer.weight.grad).abs().sum()) for layer in _weighted_layers(net)
                         if layer.weight.grad is not None))


def naswot(net: nn.Module, x: torch.Tensor) -> float:
    """log|det K| with K[i, j] = the units (over every ReLU) on which images i and j are both active or both
    inactive. Higher: the network tells the batch's images apart more."""
    net = copy.deepcopy(net).train()
    n = x.shape[0]
    K = torch.zeros(n, n, dtype=torch.float64)

    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        codes = (output.detach().reshape(n, -1) > 0).double()  # (n, units): relu(v) > 0 exactly when v > 0
        K.add_(codes @ codes.T).add_((1 - codes) @ (1 - codes).T)

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    sign, logdet = torch.linalg.slogdet(K)
    return float(logdet) if float(sign) > 0 else float("-inf")  # K is a Gram matrix: det <= 0 means singular


def grad_norm(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Sum over conv and linear layers of ||d loss / d weight||_2, the loss the mean cross-entropy of the batch
    (BatchNorm in training mode, as the reference)."""
    net = copy.deepcopy(net).train()
    net.zero_grad(set_to_none=True)
    F.cross_entropy(_logits(net(x)), y).backward()
    return float(sum(float(layer.weight.grad.norm()) for layer in _weighted_layers(net)
                     if layer.weight.grad is not None))


def score_network(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Every column of one network on the batch (x: (B, C, H, W) float, y: (B,) class indices)."""
    shape = tuple(x.shape)
    return {"parameters": count_parameters(net), "mult_adds": multiply_adds(net, shape),
            "synflow": synflow(net, shape), "naswot": naswot(net, x), "grad_norm": grad_norm(net, x, y)}


def scoring_config(config: Any) -> Any:
    """The TrainConfig whose network and data the scores use: `config` without augmentation (a proxy reads the
    images as they are; a random crop would make the score a draw) and with the scores' fixed seed."""
    return config.replace(crop_padding=0, flip=False, cutout=0, seed=SCORE_SEED)


def score_config(preset: str = DEFAULT_PRESET) -> Any:
    """scoring_config of a training preset."""
    from engine.train.config import from_train_preset

    return scoring_config(from_train_preset(preset))


@functools.cache
def _batch(config: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
    from engine.train.data import load_train_data

    data = load_train_data(config)
    x, y = next(iter(data.batches(0, config.batch_size)))
    return x, y, data.num_classes


def proxy_batch(preset: str = DEFAULT_PRESET, config: Any = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(images, labels, classes): the first training batch of the preset's (or `config`'s) data, unaugmented,
    seeded; loaded once per process."""
    return _batch(score_config(preset) if config is None else scoring_config(config))


def score_genotype(genotype: Genotype, preset: str = DEFAULT_PRESET, config: Any = None) -> dict[str, float]:
    """The network the preset (or the TrainConfig `config`) trains for `genotype` (no auxiliary head, no drop
    path), initialised from a fixed seed, scored on its first training batch. `python -m engine compare` passes
    its own config."""
    from engine.nn.network import NetworkCIFAR

    config = score_config(preset) if config is None else scoring_config(config)
    x, y, classes = _batch(config)
    with torch.random.fork_rng(devices=[]):  # a fixed init that leaves the caller's RNG where it was
        torch.manual_seed(SCORE_SEED)
        net = NetworkCIFAR(config.init_channels, classes, config.layers, False, genotype, in_channels=x.shape[1])
    return score_network(net, x, y)


def percentile(value: float, reference: Sequence[float]) -> float:
    """Percent of the reference below `value`, ties counted half (so the reference's median scores 50)."""
    ref = np.asarray(reference, dtype=np.float64)
    if ref.size == 0:
        raise ValueError("percentile of an empty reference")
    return float(100.0 * ((ref < value).sum() + 0.5 * (ref == value).sum()) / ref.size)


def _ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties given their mean rank."""
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(v, kind="stable")
    ranks = np.empty(len(v))
    ranks[order] = np.arange(1, len(v) + 1)
    for value in np.unique(v):
        tied = v == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson's of the mid-ranks); None with fewer than 3 pairs or a constant side."""
    if len(a) != len(b):
        raise ValueError(f"spearman of {len(a)} and {len(b)} values")
    if len(a) < 3:
        return None
    ra, rb = _ranks(a) - (len(a) + 1) / 2, _ranks(b) - (len(b) + 1) / 2
    denom = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return None if denom == 0 else float((ra * rb).sum() / denom)


def load_reference(path: str | Path = REFERENCE_PATH) -> dict[str, Any]:
    """The shipped reference set (scripts/build_proxy_reference.py writes it); a ReferenceError naming the file."""
    path = Path(path)
    try:
        data = loads_json(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError) as e:
        raise ReferenceError(f"cannot read the proxy reference set {path} ({type(e).__name__}: {e})"[:300]) from None
    if not isinstance(data, dict) or data.get("format") != REFERENCE_FORMAT or not isinstance(data.get("cells"), list):
        raise ReferenceError(f"{path} is not a proxy reference set (expected format {REFERENCE_FORMAT})")
    if not all(isinstance(c, dict) and all(isinstance(c.get(k), (int, float)) for k in COLUMNS)
               for c in data["cells"]):
        raise ReferenceError(f"{path}: a cell lacks one of the columns {', '.join(COLUMNS)}")
    return data


def reference_percentiles(scores: Mapping[str, float], reference: Mapping[str, Any]) -> dict[str, float]:
    """Each column's percentile against the reference cells."""
    return {k: percentile(scores[k], [c[k] for c in reference["cells"]]) for k in COLUMNS}


def comparable(reference: Mapping[str, Any], config: Any) -> bool:
    """Whether cells scored with the TrainConfig `config` may be ranked against `reference`: the same network
    size and data (the reference stores the scoring config it used). The stored config is read as a config, so a
    field added since it was written counts at its default (what that reference was scored with)."""
    from engine.train.config import TrainConfig

    try:
        stored = TrainConfig.from_dict(dict(reference.get("config") or {})).to_dict()
    except (ValueError, TypeError):  # a reference of a config this code cannot read: not comparable
        return False
    return stored == scoring_config(config).to_dict()


def trained_cells(runs_root: str | Path, preset: str = DEFAULT_PRESET) -> list[dict[str, Any]]:
    """The finished trainings under `runs_root` trained with the preset's recipe (every field but the seed and
    how it ran), each {"run_dir", "genotype", "test_acc"}: the accuracies the proxies are ranked against.
    Trainings of another recipe are left out, since their accuracies are not comparable."""
    from engine.runs import rundir
    from engine.train.config import RESUMABLE_TRAIN_FIELDS, from_train_preset

    ignored = set(RESUMABLE_TRAIN_FIELDS) | {"seed", "amp"}
    recipe = {k: v for k, v in from_train_preset(preset).to_dict().items() if k not in ignored}
    root, out = Path(runs_root), []
    if not root.is_dir():
        return out
    for run_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            record = rundir.read_config(run_dir)
            if record.get("kind") != "train" or rundir.read_status(run_dir).get("state") != "finished":
                continue
            config = record.get("config") or {}
            if any(config.get(k) != v for k, v in recipe.items()):
                continue
            tested = [m["test_acc"] for m in rundir.read_metrics(run_dir) if isinstance(m.get("test_acc"), float)]
            if tested:
                out.append({"run_dir": str(run_dir), "genotype": Genotype.from_dict(record["genotype"]),
                            "test_acc": tested[-1]})
        except (rundir.RunDirError, KeyError, TypeError, ValueError):
            continue  # not a readable training: nothing to rank against
    return out


def correlations(scored: Sequence[Mapping[str, float]], accuracies: Sequence[float]) -> dict[str, float | None]:
    """Each column's Spearman correlation with the accuracies (None where it cannot be computed)."""
    return {k: spearman([s[k] for s in scored], accuracies) for k in COLUMNS}


def add_proxies(rows: list[dict[str, Any]], genotypes: Sequence[Genotype], config: Any) -> None:
    """Rows of a comparison (engine.train.compare) gain `proxies` (synflow, naswot, grad_norm of their genotype's
    network at the TrainConfig `config`'s size) and `proxy_percentiles` (against the shipped reference set, or None
    when that set was scored at another size or is missing)."""
    try:
        reference = load_reference()
        same = comparable(reference, config)
    except ReferenceError:
        reference, same = None, False
    for row, genotype in zip(rows, genotypes, strict=True):
        scores = score_genotype(genotype, config=config)
        row["proxies"] = {k: scores[k] for k in PROXIES}
        row["proxy_percentiles"] = ({k: v for k, v in reference_percentiles(scores, reference).items()
                                     if k in PROXIES} if same else None)


def proxy_correlation(rows: Sequence[Mapping[str, Any]]) -> tuple[int, dict[str, float | None]] | None:
    """(cells, each proxy's Spearman correlation with test accuracy) over the rows that have both `proxies` and a
    `test_acc`; None with fewer than three such cells."""
    usable = [r for r in rows if r.get("proxies") and r.get("test_acc") is not None]
    if len(usable) < 3:
        return None
    return len(usable), {k: spearman([r["proxies"][k] for r in usable], [r["test_acc"] for r in usable])
                         for k in PROXIES}


def format_proxies(rows: Sequence[Mapping[str, Any]]) -> str:
    """The proxies of a comparison's rows as a text table, with their correlation over these cells."""
    lines = ["Zero-cost proxies of each cell's untrained network (not accuracy; (NN%): percentile among the "
             "shipped reference cells):", f"{'cell':<24} {'synflow':>18} {'naswot':>16} {'grad-norm':>16}"]
    for r in rows:
        p, pct = r.get("proxies") or {}, r.get("proxy_percentiles")
        cols = [("-" if k not in p else f"{p[k]:.4g}") + ("" if not pct else f" ({pct[k]:3.0f}%)") for k in PROXIES]
        lines.append(f"{r['name'][:24]:<24} {cols[0]:>18} {cols[1]:>16} {cols[2]:>16}")
    corr = proxy_correlation(rows)
    if corr is not None:
        n, values = corr
        lines.append(f"Rank correlation with test accuracy over these {n} cells: " + ", ".join(
            f"{k} {'-' if v is None else f'{v:+.2f}'}" for k, v in values.items())
            + " (a handful of cells: a hint, not a measurement)")
    return "\n".join(lines)

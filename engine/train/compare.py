"""Was the search worth it? The found cell, DARTS_V2 and N random cells trained on the same data and budget.

Each entrant is an ordinary training run (its own run directory, listed by `python -m engine runs`), trained
one after the other in the foreground with the same TrainConfig; the table reports each one's final test
accuracy, parameters (the paper's count, without the auxiliary head), multiply-adds for one image, and the
training's wall time (data loading, training and test scoring, end to end). The command line adds each
convolutional cell's zero-cost proxies under the table (engine.derive.proxies.add_proxies).

With an RNNTrainConfig the entrants are recurrent cells: the found cell of an `rnn_search`, DARTS_RNN and random
recurrent cells, scored by test perplexity (lower is better); their parameters are config.json's count and no
multiply-adds are given (a language model's cost per word is not the image figure the column means).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from engine.runs import rundir
from engine.space.rnn.train_config import RNNTrainConfig
from engine.train.config import TrainConfig
from engine.train.source import GenotypeSourceError, resolve_genotype, space_of

__all__ = ["compare", "format_table", "entrants", "network_costs", "BASELINES"]

BASELINES = {"cnn": "DARTS_V2", "rnn": "DARTS_RNN"}  # the paper's published cell of each space
_SCORES = {"cnn": "test_acc", "rnn": "test_ppl"}       # what a training of each space ends with


def entrants(search: str | os.PathLike | None, random_cells: int, first_seed: int = 0,
             baseline: str = "DARTS_V2") -> list[str]:
    """GENOTYPE arguments to train: the search's final cell (if given), the baseline, then random:SEED..."""
    specs = [str(search)] if search is not None else []
    return specs + [baseline] + [f"random:{first_seed + i}" for i in range(random_cells)]


def network_costs(genotype: Any, init_channels: int = 36, layers: int = 20, num_classes: int = 10,
                  in_channels: int = 3, image_size: int | None = None) -> tuple[int, int | None]:
    """(parameters, multiply-adds of one image or None without an `image_size`) of the network a genotype builds
    for training: what this table and the dashboard's comparisons show, so the dashboard never builds one."""
    from engine.nn.network import cifar_costs

    return cifar_costs(genotype, init_channels, layers, num_classes, in_channels, image_size)


def _imagenet_costs(genotype: Any, init_channels: int, layers: int, num_classes: int,
                    image_size: int) -> tuple[int, int]:
    """(parameters without the auxiliary head, multiply-adds of one image) of NetworkImageNet for a genotype."""
    from engine.nn.network import NetworkImageNet, count_multiply_adds, count_parameters

    net = NetworkImageNet(init_channels, num_classes, layers, False, genotype)
    return count_parameters(net), count_multiply_adds(net, (1, 3, image_size, image_size))


def _costs(genotype: Any, config: TrainConfig | RNNTrainConfig, record: dict[str, Any]) -> tuple[int, int | None]:
    if isinstance(config, RNNTrainConfig):
        return int(record["parameters"]), None
    d = record.get("dataset", {})
    if config.network == "imagenet":  # the transfer network (darts-imagenet-eval): built and counted as it trains
        return _imagenet_costs(genotype, config.init_channels, config.layers, d["num_classes"], d["image_size"])
    params, madds = network_costs(genotype, config.init_channels, config.layers, d["num_classes"], d["in_channels"],
                                  d["image_size"])
    assert madds is not None  # an image size was given
    return params, madds


def compare(search: str | os.PathLike | None, config: TrainConfig | RNNTrainConfig, random_cells: int = 2,
            runs_dir: str | os.PathLike | None = None, first_seed: int = 0, quiet: bool = False,
            progress: Any = None, signals: list[int] | None = None) -> list[dict[str, Any]]:
    """Train every entrant with `config`; one row each: name, run_dir, state, test_acc (test_ppl for recurrent
    cells), parameters, mult_adds, wall_s. Genotype arguments are all resolved first, so a bad one (or a cell of
    the other space than the config's) fails before any training starts. `progress` makes each entrant's progress
    callback; a signal that stopped an entrant (in `signals`) starts no more."""
    from engine.train.run import TrainFailed, train_one

    space = "rnn" if isinstance(config, RNNTrainConfig) else "cnn"
    score = _SCORES[space]
    resolved = [(spec, *resolve_genotype(spec, space))
                for spec in entrants(search, random_cells, first_seed, BASELINES[space])]
    for spec, genotype, _ in resolved:
        if space_of(genotype) != space:
            raise GenotypeSourceError(f"{spec} holds a {'recurrent' if space == 'cnn' else 'convolutional'} cell; "
                                      f"compare it with a {'recurrent' if space == 'cnn' else 'convolutional'} preset")
    data = config.corpus if space == "rnn" else config.dataset
    root = rundir.runs_root(runs_dir)
    rows = []
    for i, (spec, genotype, source) in enumerate(resolved):
        if signals:  # a Ctrl-C stopped the previous entrant: start no more
            break
        run_dir = rundir.new_run_dir(root, f"compare-{source['label']}-{Path(data).name}")
        t0 = time.monotonic()
        try:
            state, error = train_one(config, genotype, source, run_dir, quiet=quiet,
                                     progress=None if progress is None else progress(), signals=signals), None
        except TrainFailed as e:
            state, error = "failed", str(e)
        wall_s = time.monotonic() - t0
        tested = [m for m in rundir.read_metrics(run_dir) if score in m]
        try:
            params, madds = _costs(genotype, config, rundir.read_config(run_dir))
        except (rundir.RunDirError, KeyError):  # it failed before writing config.json
            params, madds = None, None
        found = search is not None and i == 0  # entrants() puts the search first; the baseline is never "found"
        rows.append({"name": "found" if found else source["label"], "genotype": spec,
                     "run_dir": str(run_dir), "state": state, "error": error,
                     score: tested[-1][score] if tested else None, "parameters": params,
                     "mult_adds": madds, "wall_s": wall_s})
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The comparison as a fixed-width text table: test accuracy, or test perplexity for recurrent cells."""
    score, digits = ("test_ppl", 2) if any("test_ppl" in r for r in rows) else ("test_acc", 4)
    lines = [f"{'cell':<24} {score:>8} {'parameters':>11} {'mult-adds':>12} {'wall_s':>8}  run"]
    for r in rows:
        acc = "-" if r.get(score) is None else f"{r[score]:.{digits}f}"
        params = "-" if r["parameters"] is None else f"{r['parameters']:,}"
        madds = "-" if r["mult_adds"] is None else f"{r['mult_adds']:,}"
        wall = "-" if r["wall_s"] is None else f"{r['wall_s']:.0f}"
        lines.append(f"{r['name'][:24]:<24} {acc:>8} {params:>11} {madds:>12} {wall:>8}  {Path(r['run_dir']).name}"
                     + (f"  ({r['state']}: {r['error']})" if r["state"] != "finished" else ""))
    return "\n".join(lines)

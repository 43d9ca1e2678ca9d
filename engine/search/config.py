"""SearchConfig: every knob of a search, validated, frozen, and named presets.

A config is built once (from a preset plus `key=value` overrides, or from the sidebar) and never
mutated: `dataclasses.replace` makes a changed copy, and the resolved config is written into the run
directory so a search can be reproduced from it alone.

The variants' options are not fields: each variant declares its own (engine/variants/), and a config takes them
flat under their names like fields (`SearchConfig(pc_k=2)`, `config.pc_k`, `--set pc_k=2`, config.json), checked
by their declarations. So a variant registered at run time brings its options with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from engine.core.config import (
    DATASETS,
    DEVICES,
    ConfigError,
    FrozenConfig,
    check_known,
    check_run_fields,
    collect_errors,
)
from engine.core.config import check as _check
from engine.core.config import is_int as _is_int
from engine.core.config import is_num as _is_num
from engine.variants import (
    all_variant_options,
    builtin_variant_options,
    option_spec,
    variant_class,
    variant_names,
    variant_options,
)

__all__ = ["ConfigError", "SearchConfig", "PRESETS", "DATASETS", "ORDERS", "DEVICES", "from_preset", "config_errors"]

ORDERS = ("first", "second")
DERIVE_METHODS = ("argmax", "pt")
COST_KINDS = ("params", "madds")  # what cost-aware search penalises (engine/nn/cost.py)


@dataclass(frozen=True, init=False)
class SearchConfig(FrozenConfig):
    # data
    dataset: str = "embedded"        # see DATASETS; "embedded" = Fashion-MNIST subset in assets/
    data_root: str = "./data"        # where torchvision sets / an ImageFolder tree live
    download: bool = False           # torchvision may download into data_root only if True
    subset: int | None = None        # use at most this many training images (None = all)
    image_size: int | None = None    # resize to this (None = the data's own size; required by "fake")
    in_channels: int = 3             # only read by "fake"; other datasets say their own
    num_classes: int = 10            # only read by "fake"; other datasets say their own
    train_portion: float = 0.5       # weight half / architecture half of the training set
    # search network
    init_channels: int = 16          # C of the first cell; 16 in the paper
    layers: int = 8                  # cells; reductions at layers//3 and 2*layers//3
    nodes: int = 4                   # intermediate nodes per cell (4 -> 14 edges)
    # schedule
    batch_size: int = 64
    epochs: int = 50
    order: str = "first"             # "first" | "second" (unrolled) architecture gradient
    variant: str = "darts"           # a name in engine.variants.variant_names()
    arch_warmup_epochs: int = 0      # epochs with the architecture frozen (weights only) before it is searched
    # weight optimiser: SGD with cosine schedule
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    w_grad_clip: float = 5.0
    # architecture optimiser: Adam
    a_lr: float = 3e-4
    a_betas: tuple[float, float] = (0.5, 0.999)
    a_weight_decay: float = 1e-3
    # run
    seed: int = 2
    device: str = "auto"             # "auto" = CUDA, then MPS, then CPU
    amp: bool = False                # autocast for forward passes: bf16 (CPU, CUDA from Ampere), fp16 on MPS
    fast: bool = True                # channels_last + skip zero ops; False = the reference's plain path
    log_every: int = 1               # steps between metrics/alphas lines
    checkpoint_every_s: float = 120.0  # wall-clock seconds between checkpoints (and one per epoch)
    threads: int = 0                 # torch CPU threads; 0 = auto from the cores and the load (runtime/threads.py)
    # Collapse indicators (engine/search/collapse.py, docs/collapse.md).
    hessian_every: int = 0           # steps between dominant Hessian eigenvalues of the valid loss (0: off)
    early_stop: bool = False         # stop when RobustDARTS's rule fires on those eigenvalues (needs hessian_every)
    max_skip: int | None = None      # at most this many skip connections per normal cell (P-DARTS: 2); None: no cap
    # How the finished search's cell is also derived: "pt" runs DARTS-PT on its final checkpoint (engine/derive/pt.py,
    # docs/derivation.md) once it has finished, beside the argmax rule's cell the search itself records.
    derive_method: str = "argmax"
    # Cost-aware search (engine/nn/cost.py): cost_weight x the cells' expected cost, in millions of cost_kind.
    cost_weight: float = 0.0         # 0: off
    cost_kind: str = "params"        # params or madds (mult-adds of one sample)
    cost_budget: float | None = None  # with a budget, only the expected cost above it is penalised
    # The variant options that differ from their declared defaults, as sorted (name, value) pairs: a config compares
    # equal however it was built, and stays hashable. Read one as `config.pc_k`.
    options: tuple[tuple[str, Any], ...] = ()

    def __init__(self, **values: Any) -> None:
        """Every field and variant option by name; a field or option left out takes its default."""
        options = dict(values.pop("options", ()))
        for f in fields(self):
            if f.name != "options":
                object.__setattr__(self, f.name, values.pop(f.name, f.default))
        check_known(type(self), values)
        options.update(values)
        object.__setattr__(self, "options", tuple(sorted(
            (name, value) for name, value in options.items() if not _is_default(name, value))))
        self.__post_init__()

    def __post_init__(self) -> None:
        if isinstance(self.a_betas, list):
            object.__setattr__(self, "a_betas", tuple(self.a_betas))
        validate(self)

    def __getattr__(self, name: str) -> Any:
        """A variant option read like a field (`config.pc_k`): its value in this config, or its default."""
        spec = None if name.startswith("_") else option_spec(name)
        if spec is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return dict(self.options).get(name, spec.default)

    @classmethod
    def known_keys(cls) -> dict[str, tuple[Any, str]]:
        keys = {k: v for k, v in super().known_keys().items() if k != "options"}
        for name in all_variant_options():
            default = option_spec(name).default  # type: ignore[union-attr]
            keys[name] = (default, type(default).__name__)
        return keys

    def to_dict(self) -> dict[str, Any]:
        """Flat, as config.json holds it: every field, every built-in variant's options and this config's own
        variant's (at their defaults unless set). Options of a variant registered at run time appear only in its
        own runs, so a run of another variant still reads back once that plugin is gone."""
        data = {k: v for k, v in super().to_dict().items() if k != "options"}
        names = dict.fromkeys(builtin_variant_options())
        if self.variant in variant_names():
            names.update(dict.fromkeys(variant_options(self.variant)))
        return {**data, **{name: getattr(self, name) for name in names}}


def _is_default(name: str, value: Any) -> bool:
    """Whether `value` is the declared default of option `name`: equal, and an integer where the default is one
    (4.0 is not pc_k's 4), while a whole number stands for a float default (darts_minus_beta=1 is 1.0)."""
    default = option_spec(name).default  # type: ignore[union-attr]  # check_known let only options through
    if isinstance(value, bool) or isinstance(default, bool):
        return value is default
    if isinstance(default, int) and not isinstance(value, int):
        return False
    return value == default


def validate(c: SearchConfig) -> None:
    """Raise ConfigError for the first field that is out of range."""
    _check(c.dataset in DATASETS, "dataset", c.dataset, f"one of {', '.join(DATASETS)}")
    _check(isinstance(c.data_root, str) and c.data_root != "", "data_root", c.data_root, "a directory path")
    _check(isinstance(c.download, bool), "download", c.download, "true or false")
    _check(c.subset is None or (_is_int(c.subset) and c.subset >= 2), "subset", c.subset,
           "an integer >= 2, or none for the whole training set")
    _check(c.image_size is None or (_is_int(c.image_size) and 8 <= c.image_size <= 1024), "image_size",
           c.image_size, "an integer from 8 to 1024, or none for the data's own size")
    _check(c.dataset != "fake" or c.image_size is not None, "image_size", c.image_size,
           "the fake dataset needs an image size")
    _check(_is_int(c.in_channels) and 1 <= c.in_channels <= 64, "in_channels", c.in_channels, "an integer from 1 to 64")
    _check(_is_int(c.num_classes) and 2 <= c.num_classes <= 100_000, "num_classes", c.num_classes,
           "an integer from 2 to 100000")
    _check(_is_num(c.train_portion) and 0.0 < c.train_portion < 1.0, "train_portion", c.train_portion,
           "a number strictly between 0 and 1")
    _check(_is_int(c.init_channels) and 2 <= c.init_channels <= 512 and c.init_channels % 2 == 0,
           "init_channels", c.init_channels, "an even integer from 2 to 512")
    _check(_is_int(c.layers) and 3 <= c.layers <= 64, "layers", c.layers, "an integer from 3 to 64")
    _check(_is_int(c.nodes) and 1 <= c.nodes <= 8, "nodes", c.nodes, "an integer from 1 to 8")
    _check(_is_int(c.batch_size) and 1 <= c.batch_size <= 4096, "batch_size", c.batch_size,
           "an integer from 1 to 4096")
    _check(_is_int(c.epochs) and 1 <= c.epochs <= 10_000, "epochs", c.epochs, "an integer from 1 to 10000")
    _check(c.order in ORDERS, "order", c.order, f"one of {', '.join(ORDERS)}")
    _check(c.variant in variant_names(), "variant", c.variant, f"one of {', '.join(variant_names())}")
    _check(_is_int(c.arch_warmup_epochs) and 0 <= c.arch_warmup_epochs < c.epochs, "arch_warmup_epochs",
           c.arch_warmup_epochs, f"an integer from 0 to epochs-1={c.epochs - 1} (epochs with the architecture frozen)")
    _validate_variant(c)
    _check(_is_int(c.hessian_every) and 0 <= c.hessian_every <= 1_000_000, "hessian_every", c.hessian_every,
           "an integer >= 0 (steps between Hessian eigenvalues; 0 = off)")
    _check(isinstance(c.early_stop, bool), "early_stop", c.early_stop, "true or false")
    _check(not c.early_stop or c.hessian_every > 0, "early_stop", c.early_stop,
           "false unless hessian_every > 0 (the rule reads the Hessian eigenvalues)")
    _check(c.max_skip is None or (_is_int(c.max_skip) and 0 <= c.max_skip <= 64), "max_skip", c.max_skip,
           "an integer from 0 to 64 (skip connections kept per normal cell), or none")
    _check(c.derive_method in DERIVE_METHODS, "derive_method", c.derive_method,
           f"one of {', '.join(DERIVE_METHODS)} (pt: DARTS-PT on the finished search's checkpoint)")
    _check(_is_num(c.cost_weight) and 0 <= c.cost_weight <= 1e6, "cost_weight", c.cost_weight,
           "a number from 0 (off) to 1e6 (penalty per million of cost_kind)")
    _check(c.cost_kind in COST_KINDS, "cost_kind", c.cost_kind, f"one of {', '.join(COST_KINDS)}")
    _check(c.cost_budget is None or (_is_num(c.cost_budget) and c.cost_budget > 0), "cost_budget", c.cost_budget,
           "a positive number (parameters or mult-adds of the search network's cells), or none")
    _check(c.cost_budget is None or c.cost_weight > 0, "cost_budget", c.cost_budget,
           "none unless cost_weight > 0 (the budget is where the penalty starts)")
    _check(_is_num(c.w_lr) and 0 < c.w_lr <= 10, "w_lr", c.w_lr, "a number in (0, 10]")
    _check(_is_num(c.w_lr_min) and 0 <= c.w_lr_min <= c.w_lr, "w_lr_min", c.w_lr_min, f"a number in [0, w_lr={c.w_lr}]")
    _check(_is_num(c.w_momentum) and 0 <= c.w_momentum < 1, "w_momentum", c.w_momentum, "a number in [0, 1)")
    _check(_is_num(c.w_weight_decay) and 0 <= c.w_weight_decay < 1, "w_weight_decay", c.w_weight_decay,
           "a number in [0, 1)")
    _check(_is_num(c.w_grad_clip) and c.w_grad_clip > 0, "w_grad_clip", c.w_grad_clip, "a positive number")
    _check(_is_num(c.a_lr) and 0 <= c.a_lr <= 10, "a_lr", c.a_lr, "a number in [0, 10]")
    _check(isinstance(c.a_betas, tuple) and len(c.a_betas) == 2 and all(_is_num(b) and 0 <= b < 1 for b in c.a_betas),
           "a_betas", c.a_betas, "two numbers in [0, 1), e.g. 0.5,0.999")
    _check(_is_num(c.a_weight_decay) and 0 <= c.a_weight_decay < 1, "a_weight_decay", c.a_weight_decay,
           "a number in [0, 1)")
    check_run_fields(c)
    _check(isinstance(c.fast, bool), "fast", c.fast, "true or false")
    _check(_is_int(c.threads) and 0 <= c.threads <= 1024, "threads", c.threads,
           "an integer from 0 to 1024 (0 = auto: from the cores and the load of this machine)")


def _validate_variant(c: SearchConfig) -> None:
    """The variant's own options as it declares them, no other variant's, and the second-order step only where it
    applies."""
    if c.variant not in variant_names():
        return  # reported by the `variant` check
    cls = variant_class(c.variant)
    mine, owners = cls.option_names(), all_variant_options()
    for name, value in c.options:
        if name not in mine:
            default = option_spec(name).default  # type: ignore[union-attr]
            raise ConfigError(name, value, f"an option of variant={owners[name]}; this config searches "
                                           f"variant={c.variant} (leave it at {default!r})")
    refusal = cls.no_second_order
    _check(c.order != "second" or not refusal, "order", c.order, f"first with variant={c.variant}: {refusal}")
    values = c.to_dict()
    for name, allowed in cls.option_errors(values):
        _check(False, name, values[name], allowed)


# Presets: each number says why it is what it is.
# The default, for a laptop CPU and a watcher: the embedded Fashion-MNIST subset at 16x16, 1,600 + 1,600
# images (25 steps of 64 per epoch, so an epoch passes while one watches), C=8 and 5 cells (the fewest with
# both reductions and a normal cell between them). The paper's arch lr (3e-4) is tuned for ~20,000
# steps; the demo has 250, so the arch lr is 5e-2 and Adam's weight decay on alphas (which pulls them
# back to uniform) is off, so that the op weights visibly leave uniform within the run (README.md, "Measured",
# has what the demo reaches). Weight lr 0.05 (twice the paper's) for the same reason: few steps.
_DEMO = SearchConfig(dataset="embedded", image_size=16, subset=3200, init_channels=8, layers=5, batch_size=64,
                     epochs=10, w_lr=0.05, w_lr_min=0.005, a_lr=5e-2, a_weight_decay=0.0, seed=2)

PRESETS: dict[str, SearchConfig] = {
    "demo": _DEMO,
    # The Learn page's collapse lesson (docs/collapse.md): the demo searched twice as long (20 epochs, 500 steps,
    # same seed), long enough for plain DARTS's normal cell to drift towards skip connections while
    # `--set variant=darts_minus` and `--set variant=beta_darts` keep their convolutions, short enough to run on a
    # laptop CPU. docs/collapse.md has the recorded runs and how often a fresh one collapses; the three runs ship
    # as recordings (assets/runs/*-example-collapse-*).
    "collapse": _DEMO.replace(epochs=20),
    # The paper's search (DARTS second order): CIFAR-10 25k/25k, C=16, 8 cells, batch 64, 50 epochs.
    "darts-cifar10": SearchConfig(dataset="cifar10", init_channels=16, layers=8, batch_size=64, epochs=50,
                                  order="second"),
    # The paper's cheaper first-order search: same setting, architecture gradient at w (no unrolling).
    "darts-cifar10-first-order": SearchConfig(dataset="cifar10", init_channels=16, layers=8, batch_size=64,
                                              epochs=50, order="first"),
    # PC-DARTS (official train_search.py): batch 256 (partial channels make it fit), w_lr 0.1 cosine to 0,
    # arch lr 6e-4, K=4, the alphas frozen for the first 15 of 50 epochs; first order.
    "pc-darts-cifar10": SearchConfig(dataset="cifar10", variant="pc_darts", init_channels=16, layers=8,
                                     batch_size=256, epochs=50, w_lr=0.1, w_lr_min=0.0, a_lr=6e-4,
                                     arch_warmup_epochs=15, pc_k=4),
    # GDAS (AutoDL-Projects, GDAS-NASNet-CIFAR configs): C=16, N=2 cells per stage (6 cells), batch 256,
    # 250 epochs, w_lr 0.025 cosine to 0.001, weight decay 5e-4 (their SGD is nesterov; ours is not), arch lr
    # 3e-4 with decay 1e-3, tau 10 -> 0.1.
    "gdas-cifar10": SearchConfig(dataset="cifar10", variant="gdas", init_channels=16, layers=6, batch_size=256,
                                 epochs=250, w_lr=0.025, w_lr_min=0.001, w_weight_decay=5e-4, a_lr=3e-4,
                                 a_weight_decay=1e-3, gdas_tau_max=10.0, gdas_tau_min=0.1),
    # FairDARTS (official fairdarts/train_search.py): batch 128, w_lr 0.005 cosine to 0.001, arch lr 3e-3,
    # Adam betas (0.9, 0.999), zero-one loss weight 10, threshold 0.85; first order.
    "fair-darts-cifar10": SearchConfig(dataset="cifar10", variant="fair_darts", init_channels=16, layers=8,
                                       batch_size=128, epochs=50, w_lr=0.005, w_lr_min=0.001, a_lr=3e-3,
                                       a_betas=(0.9, 0.999), a_weight_decay=1e-3, fair_zero_one_weight=10.0,
                                       fair_threshold=0.85),
    # DrNAS (official DARTS-space/train_search.py): batch 64, w_lr 0.1 cosine to 0, arch lr 6e-4, alphas
    # frozen for the first 10 epochs; its default regulariser is L2 (Adam weight decay 1e-3), so the KL term
    # is off. Its progressive partial channels and op pruning are not reproduced (docs/variants.md).
    "drnas-cifar10": SearchConfig(dataset="cifar10", variant="drnas", init_channels=16, layers=8, batch_size=64,
                                  epochs=50, w_lr=0.1, w_lr_min=0.0, a_lr=6e-4, a_weight_decay=1e-3,
                                  arch_warmup_epochs=10, drnas_kl_weight=0.0),
    # DARTS- (official src/search/args.py, scripts/run_darts_minus.sh): DARTS's first-order search (batch 64, w_lr
    # 0.025 cosine to 0.001, arch lr 3e-4, decay 1e-3, 50 epochs) with the auxiliary skip, beta 1 decaying linearly.
    "darts-minus-cifar10": SearchConfig(dataset="cifar10", variant="darts_minus", init_channels=16, layers=8,
                                        batch_size=64, epochs=50, darts_minus_beta=1.0),
    # beta-DARTS (official optimizers/darts/architect.py): DARTS's first-order search plus the Beta-Decay loss with
    # lambda = 50 * epoch / 100, i.e. 0.5 per epoch: over 50 epochs that is beta_decay_weight 25.
    "beta-darts-cifar10": SearchConfig(dataset="cifar10", variant="beta_darts", init_channels=16, layers=8,
                                       batch_size=64, epochs=50, beta_decay_weight=25.0),
    # beta-DARTS on PC-DARTS (the paper's combination): the pc-darts-cifar10 search plus the same Beta-Decay schedule.
    "beta-pc-darts-cifar10": SearchConfig(dataset="cifar10", variant="beta_darts", beta_base="pc_darts", pc_k=4,
                                          init_channels=16, layers=8, batch_size=256, epochs=50, w_lr=0.1,
                                          w_lr_min=0.0, a_lr=6e-4, arch_warmup_epochs=15, beta_decay_weight=25.0),
    # SDARTS-RS (official sota/cnn/train_search.py --perturb_alpha random): DARTS's first-order search with the op
    # weights of each weight step perturbed by U[-eps, eps], eps 0.03 growing linearly towards 0.3.
    "sdarts-rs-cifar10": SearchConfig(dataset="cifar10", variant="sdarts_rs", init_channels=16, layers=8,
                                      batch_size=64, epochs=50, sdarts_epsilon_min=0.03, sdarts_epsilon_max=0.3),
    # For tests: random images, a handful of steps, 4 channels, 3 cells (the fewest with both reductions).
    "smoke": SearchConfig(dataset="fake", image_size=8, in_channels=3, num_classes=4, subset=32,
                          init_channels=4, layers=3, batch_size=8, epochs=2, a_lr=3e-3, seed=0),
}


def from_preset(name: str, overrides: Mapping[str, Any] | None = None) -> SearchConfig:
    if name not in PRESETS:
        raise ConfigError("preset", name, f"one of {', '.join(PRESETS)}")
    base = PRESETS[name]
    if not overrides:
        return base
    check_known(SearchConfig, overrides)
    overrides = dict(overrides)
    variant = overrides.get("variant", base.variant)
    if variant != base.variant and variant in variant_names():
        # Another variant than the paper preset's: that preset's own variant options go back to their defaults
        # (as the dashboard's picker does), unless given too; the rest of the recipe stays.
        for name in variant_options(base.variant):
            if name not in overrides and name not in variant_options(variant):
                overrides[name] = option_spec(name).default  # type: ignore[union-attr]
    return dataclasses.replace(base, **overrides)


def config_errors(name: str, overrides: Mapping[str, Any] | None = None) -> list[ConfigError]:
    """Every error of the preset `name` with `overrides`, not only the first (empty: the config is valid)."""
    return collect_errors(lambda: from_preset(name, overrides))

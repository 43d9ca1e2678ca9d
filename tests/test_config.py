import dataclasses

import pytest

from engine.core.config import ConfigError, parse_overrides
from engine.search.config import PRESETS, SearchConfig, from_preset


def test_presets_are_valid_and_demo_is_default_dataset():
    assert {"demo", "darts-cifar10", "darts-cifar10-first-order", "smoke"} <= set(PRESETS)
    assert PRESETS["demo"].dataset == "embedded"
    assert PRESETS["darts-cifar10"].order == "second"
    assert PRESETS["darts-cifar10-first-order"].order == "first"
    paper = PRESETS["darts-cifar10"]
    assert (paper.init_channels, paper.layers, paper.batch_size, paper.epochs) == (16, 8, 64, 50)
    assert (paper.w_lr, paper.w_lr_min, paper.a_lr, paper.a_betas, paper.a_weight_decay) == (
        0.025, 0.001, 3e-4, (0.5, 0.999), 1e-3)


def test_the_collapse_preset_is_the_demo_searched_twice_as_long():
    """The Learn page's collapse lesson: its three recordings (darts, darts_minus, beta_darts) are this preset."""
    assert PRESETS["collapse"] == dataclasses.replace(PRESETS["demo"], epochs=20)
    minus = from_preset("collapse", {"variant": "darts_minus"})
    assert (minus.variant, minus.epochs, minus.seed) == ("darts_minus", 20, PRESETS["demo"].seed)

def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["demo"].epochs = 3


@pytest.mark.parametrize("field,value,needle", [
    ("epochs", 0, "epochs=0"), ("order", "third", "first, second"), ("w_lr", -1.0, "w_lr=-1.0"),
    ("dataset", "imagenet21k", "embedded"), ("init_channels", 7, "even"), ("train_portion", 1.0, "between"),
    ("device", "tpu", "cuda:N"), ("a_betas", (0.5,), "two numbers"), ("w_lr", float("nan"), "w_lr=nan"),
    ("batch_size", True, "batch_size=True"), ("variant", "snas", "darts"),
])
def test_bad_values_name_field_value_and_allowed(field, value, needle):
    with pytest.raises(ConfigError) as err:
        SearchConfig(**{field: value})
    assert err.value.field == field
    assert needle in str(err.value)


def test_fake_needs_image_size():
    with pytest.raises(ConfigError, match="image_size"):
        SearchConfig(dataset="fake")


def test_overrides_are_typed_and_unknown_keys_rejected():
    o = parse_overrides(["epochs=3", "w_lr=0.1", "a_betas=0.9,0.99", "amp=true", "subset=none", "device=cpu"],
                        SearchConfig)
    assert o == {"epochs": 3, "w_lr": 0.1, "a_betas": (0.9, 0.99), "amp": True, "subset": None, "device": "cpu"}
    cfg = from_preset("smoke", o)
    assert cfg.epochs == 3 and cfg.a_betas == (0.9, 0.99)
    with pytest.raises(ConfigError, match="unknown field"):
        parse_overrides(["epoch=3"], SearchConfig)
    with pytest.raises(ConfigError, match="epochs"):
        parse_overrides(["epochs=three"], SearchConfig)
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["epochs"], SearchConfig)


def test_round_trip_through_dict():
    cfg = PRESETS["demo"]
    assert SearchConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown field"):
        SearchConfig.from_dict({**cfg.to_dict(), "bogus": 1})


def test_another_variant_on_a_paper_preset_resets_that_presets_variant_options():
    """`--preset drnas-cifar10 --set variant=darts` was refused for drnas_kl_weight=0.0 (an option of drnas
    given to darts); like the dashboard's picker, the preset's own variant options go back to their defaults,
    and the rest of its recipe (the warm-up, the network) stays."""
    base, default = PRESETS["drnas-cifar10"], SearchConfig()
    assert base.drnas_kl_weight != default.drnas_kl_weight  # the preset sets an option of its variant
    cfg = from_preset("drnas-cifar10", {"variant": "darts"})
    assert cfg.variant == "darts" and cfg.drnas_kl_weight == default.drnas_kl_weight
    assert cfg.arch_warmup_epochs == base.arch_warmup_epochs and cfg.init_channels == base.init_channels
    assert from_preset("drnas-cifar10", {}).drnas_kl_weight == base.drnas_kl_weight  # its own variant: kept
    with pytest.raises(ConfigError, match="drnas_kl_weight"):  # given explicitly to another variant: refused
        from_preset("drnas-cifar10", {"variant": "darts", "drnas_kl_weight": 0.0})

"""Which variants a search space takes, and the checks of a config's `variant` and options there, torch-free.

A variant declares the spaces it relaxes (`Variant.spaces`) and why it refuses the others (`space_refusals`,
`space_errors`). The recurrent search's config (engine/search/rnn_config.py) checks its variant with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.core.config import ConfigError, check
from engine.variants.registry import (
    all_variant_options,
    builtin_variant_options,
    option_spec,
    space_variants,
    variant_class,
    variant_names,
    variant_options,
)

__all__ = ["SpaceRules"]

_CELLS = {"cnn": "convolutional", "rnn": "recurrent"}  # how a refusal names a space's cell


class SpaceRules:
    """The variant rules of the configs of one space (what engine/search/rnn_config.py asks)."""

    def option_defaults(self) -> dict[str, Any]:
        """Every option of every known variant -> its default: a config accepts any of them by name, so
        another variant's option is refused with its owner named rather than as an unknown field."""
        return {name: option_spec(name).default for name in all_variant_options()}  # type: ignore[union-attr]

    def recorded_options(self, variant: str, space: str = "rnn") -> tuple[str, ...]:
        """What config.json records: the options of the built-in variants that take this space, then the config's
        own variant's (a variant registered at run time records its options in its own runs only)."""
        takes = set(space_variants(space))
        names = dict.fromkeys(o for o in builtin_variant_options()
                              if any(o in variant_options(v) for v in takes if v in variant_names()))
        if variant in variant_names():
            names.update(dict.fromkeys(variant_options(variant)))
        return tuple(names)

    def validate(self, space: str, values: Mapping[str, Any], options: Mapping[str, Any]) -> None:
        """A ConfigError (one line, naming the field) for the first thing wrong with the config's variant: unknown,
        not one this space takes (and why), another variant's option set, the second-order step where it does not
        apply, an option out of its bounds or rules."""
        variant, takes = values["variant"], space_variants(space)
        check(variant in variant_names(), "variant", variant, f"one of {', '.join(takes)}")
        if variant not in variant_names():
            return
        cls = variant_class(variant)
        for field, why in cls.space_errors(space, values):
            if field == "variant":
                check(False, field, values[field], f"one of {', '.join(takes)} on the {_CELLS.get(space, space)} "
                                                   f"cell: {why}")
                return  # its options mean nothing here
            check(False, field, values[field], why)
        mine, owners = cls.option_names(), all_variant_options()
        for name, value in options.items():
            if name not in mine:
                default = option_spec(name).default  # type: ignore[union-attr]
                raise ConfigError(name, value, f"an option of variant={owners[name]}; this config searches "
                                               f"variant={variant} (leave it at {default!r})")
        check(values["order"] != "second" or not cls.no_second_order, "order", values["order"],
              f"first with variant={variant}: {cls.no_second_order}")
        for name, allowed in cls.option_errors(values):
            check(False, name, values[name], allowed)

"""How a variant declares its options: name, default, what is allowed (the check and its words), label and help.

Torch-free: config validation (engine/search/config.py), `--set` parsing and the dashboard's sidebar read these
declarations without loading a network. A config holds each option flat under its name (`pc_k=2`), so an option's
name is unique across the variants; two variants that read the same option (beta-DARTS reads PC-DARTS's `pc_k`)
declare the same `Option` object.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Option", "Rule"]


@dataclass(frozen=True)
class Rule:
    """A condition that ties an option to other values of the config (flat: every field and option by name).

    `allowed` is what ConfigError says when `test` fails (empty: the option's own `allowed`)."""

    test: Callable[[Mapping[str, Any]], bool]
    allowed: str = ""


@dataclass(frozen=True)
class Option:
    """One option of a variant. Its type is its default's: an int or float option takes a number in the bounds
    (`minimum`/`maximum` inclusive, `above`/`below` exclusive), a str option one of `choices`."""

    name: str
    default: int | float | str
    label: str                    # the sidebar box's label
    help: str                     # the sidebar box's tooltip
    # What ConfigError says the value may be; it may name other values of the config in braces
    # ("at most gdas_tau_max={gdas_tau_max}"), filled in from the config.
    allowed: str
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple[str, ...] = ()
    step: float = 1.0             # the sidebar box's step (number options)
    rules: tuple[Rule, ...] = ()  # checked once the value itself is allowed

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"an option needs a name that is an identifier, got {self.name!r}")
        if isinstance(self.default, bool) or not isinstance(self.default, (int, float, str)):
            raise ValueError(f"option {self.name!r}: the default must be an int, a float or a str")
        if isinstance(self.default, str) and self.default not in self.choices:
            raise ValueError(f"option {self.name!r}: a str option needs choices that hold its default")
        if not self.accepts(self.default):
            raise ValueError(f"option {self.name!r}: its default {self.default!r} is not allowed: {self.allowed}")

    @property
    def kind(self) -> str:
        """"int", "float" or "select": what the value is, and the sidebar's box for it."""
        return "select" if self.choices else type(self.default).__name__

    def errors(self, value: Any, values: Mapping[str, Any]) -> list[str]:
        """What ConfigError says of `value` in a config with these `values` (flat): [] when it is allowed; the
        rules are checked only once the value itself is."""
        if not self.accepts(value):
            return [self.allowed.format_map(values)]
        return [(rule.allowed or self.allowed).format_map(values) for rule in self.rules if not rule.test(values)]

    def accepts(self, value: Any) -> bool:
        """Whether `value` has the option's type and lies in its bounds or choices (the rules aside)."""
        if self.choices:
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if isinstance(self.default, int) and not isinstance(value, int):
            return False
        return ((self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum)
                and (self.above is None or value > self.above) and (self.below is None or value < self.below))

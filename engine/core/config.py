"""What every config of the engine shares, torch-free: the error, the field checks, `--set` parsing and the
frozen-dataclass base that gives `to_dict`, `from_dict`, `to_json` and `replace`.

SearchConfig (engine/search/config.py) and TrainConfig (engine/train/config.py) are both `FrozenConfig`s; neither
imports the other, so searching and training share these rules through this module alone.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, Self

__all__ = ["ConfigError", "FrozenConfig", "DATASETS", "DEVICES", "check", "is_int", "is_num", "check_run_fields",
           "collect_errors", "parse_overrides", "check_known"]

# Every data source a config may name (engine/datasets/); "embedded" is the Fashion-MNIST subset in assets/.
DATASETS = ("embedded", "fake", "cifar10", "cifar100", "mnist", "fashion_mnist", "svhn", "imagefolder")
DEVICES = ("auto", "cpu", "cuda", "mps")


class ConfigError(ValueError):
    """A config value is wrong; the message names the field, the value and what is allowed."""

    def __init__(self, field: str, value: Any, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}={value!r} is not valid: {allowed}")


# While collect_errors() runs, check() records each error here instead of raising the first.
_COLLECTED: contextvars.ContextVar[list[ConfigError] | None] = contextvars.ContextVar("_COLLECTED", default=None)


def check(cond: bool, field: str, value: Any, allowed: str) -> None:
    """Raise ConfigError unless `cond`; inside `collect_errors`, record it and go on."""
    if not cond:
        sink = _COLLECTED.get()
        if sink is None:
            raise ConfigError(field, value, allowed)
        sink.append(ConfigError(field, value, allowed))


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_run_fields(c: Any) -> None:
    """The fields of how a job runs, the same for a search and a training: seed, device, amp, log_every and
    checkpoint_every_s."""
    check(is_int(c.seed) and 0 <= c.seed < 2**32, "seed", c.seed, "an integer from 0 to 2**32-1")
    check(c.device in DEVICES or (isinstance(c.device, str) and c.device.startswith("cuda:")
                                  and c.device[5:].isdigit()), "device", c.device,
          f"one of {', '.join(DEVICES)} or cuda:N")
    check(isinstance(c.amp, bool), "amp", c.amp, "true or false")
    check(is_int(c.log_every) and c.log_every >= 1, "log_every", c.log_every, "an integer >= 1")
    check(is_num(c.checkpoint_every_s) and c.checkpoint_every_s > 0, "checkpoint_every_s", c.checkpoint_every_s,
          "a positive number of seconds")


def collect_errors(build: Any) -> list[ConfigError]:
    """Every ConfigError `build()` meets, not only the first (empty: the config is valid).

    A rule that cannot be checked because of a value already reported (e.g. a divisor that is 0) ends the list."""
    sink: list[ConfigError] = []
    token = _COLLECTED.set(sink)
    try:
        build()
    except ConfigError as err:  # raised directly (an unknown field, another variant's option)
        sink.append(err)
    except (TypeError, ValueError, ArithmeticError):
        if not sink:
            raise
    finally:
        _COLLECTED.reset(token)
    return sink


def check_known(config_class: type[FrozenConfig], data: Mapping[str, Any]) -> None:
    """A ConfigError for the first key of `data` that `config_class` does not know (a typo is never ignored)."""
    names = set(config_class.known_keys())
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(unknown[0], data[unknown[0]], f"unknown field; known fields: {', '.join(sorted(names))}")


class FrozenConfig:
    """Base of the engine's frozen config dataclasses: built once, validated, copied with `replace`."""

    @classmethod
    def known_keys(cls) -> dict[str, tuple[Any, str]]:
        """Every key a flat mapping of this config (`from_dict`, `--set`) may hold -> (default, type): its dataclass
        fields; a subclass that takes more keys (SearchConfig's variant options) adds them."""
        return {f.name: (f.default, str(f.type)) for f in fields(cls)}  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        # JSON has no tuples: a tuple field (a_betas) is written as a list and read back by __post_init__.
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from a mapping; unknown keys are an error (a typo must not be silently ignored)."""
        check_known(cls, data)
        return cls(**dict(data))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)


def _coerce(name: str, default: Any, type_text: str, text: str) -> Any:
    """Turn the text of `--set name=text` into the key's type (no eval). A key whose default is None and
    whose type admits an int (`int | None`) takes an integer, or none/null."""
    t = text.strip()
    optional_int = default is None and "int" in type_text
    optional_float = default is None and "float" in type_text  # cost_budget
    if t.lower() in ("none", "null") and (optional_int or optional_float):
        return None
    try:
        if isinstance(default, tuple):  # a_betas: "0.5,0.999" or "(0.5, 0.999)"
            parts = [p for p in t.strip("()[]").split(",") if p.strip()]
            return tuple(float(p) for p in parts)
        if isinstance(default, bool):
            if t.lower() in ("true", "1", "yes", "on"):
                return True
            if t.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int) or optional_int:
            return int(t)
        if isinstance(default, float) or optional_float:
            return float(t)
    except ValueError:
        kind = type(default).__name__ if default is not None else ("float" if optional_float else "int")
        raise ConfigError(name, text, f"a value of type {kind}") from None
    return t


def parse_overrides(pairs: list[str], config_class: type[FrozenConfig]) -> dict[str, Any]:
    """Parse `key=value` strings from the command line into typed overrides of `config_class` (a frozen config
    dataclass: SearchConfig or TrainConfig)."""
    by_name = config_class.known_keys()
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError("--set", pair, "key=value")
        key, text = pair.split("=", 1)
        key = key.strip()
        if key not in by_name:
            raise ConfigError(key, text, f"unknown field; known fields: {', '.join(sorted(by_name))}")
        out[key] = _coerce(key, *by_name[key], text)
    return out

"""The config fields a command's `--set` takes, with what each accepts and its default, generated from the config
class itself so that `--help` cannot drift from the validation: what a field accepts is the message its own check
gives for a value no check accepts; a variant option's is its declaration's."""

from __future__ import annotations

import re
import shutil
import textwrap
from typing import Any

from engine.core.config import ConfigError, FrozenConfig, collect_errors

__all__ = ["field_table", "fields_epilog"]


class _Unacceptable:
    """A value every field check refuses (not a number, a string, a bool or None)."""

    def __repr__(self) -> str:
        return "?"


def _probe(config_class: type[FrozenConfig], name: str) -> list[str]:
    """What the config's validation says `name` may be: every message it gives for that field."""
    errors: list[ConfigError] = []
    try:
        errors = collect_errors(lambda: config_class(**{name: _Unacceptable()}))
    except (TypeError, ValueError, ArithmeticError):  # a rule that could not even compare the value
        pass
    return list(dict.fromkeys(e.allowed for e in errors if e.field == name))


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def field_table(config_class: type[FrozenConfig]) -> list[tuple[str, str, str]]:
    """(name, what it accepts, default) for every key `--set` takes, in the config's own order."""
    from engine.variants.registry import all_variant_options, option_spec

    owners = all_variant_options() if hasattr(config_class, "options") else {}
    defaults = {k: v[0] for k, v in config_class.known_keys().items()}
    rows = []
    for name, default in defaults.items():
        if name in owners:
            spec = option_spec(name)
            allowed = spec.allowed if spec is not None else ""
            # a declaration may name another option's value in braces ("at most gdas_tau_max={gdas_tau_max}"),
            # filled in from the config when it is checked: here the option's name says it
            allowed = re.sub(r"\{(\w+)\}", r"\1", re.sub(r"(\w+)=\{\1\}", r"\1", allowed))
            allowed = f"{allowed} (variant={owners[name]})"
        else:
            allowed = "; ".join(_probe(config_class, name)) or "any text"
        rows.append((name, allowed, _show(default)))
    return rows


def fields_epilog(config_class: type[FrozenConfig], presets: dict[str, Any], command: str) -> str:
    """The `--help` text after the options: every field (--set KEY=VALUE) and the presets."""
    rows = field_table(config_class)
    indent = " " * (max(len(n) for n, _, _ in rows) + 4)
    width = max(shutil.get_terminal_size().columns - 2, 60)  # argparse's own rule for the help's width
    wrap = textwrap.TextWrapper(width=width, subsequent_indent=indent, break_on_hyphens=False)
    lines = textwrap.wrap(f"config fields (--set KEY=VALUE, repeatable; a preset sets some of them and "
                      f"`{command} config --preset NAME` prints them all):", width=width)
    for name, allowed, default in rows:
        lines += wrap.wrap(f"  {name:<{len(indent) - 2}}{allowed} (default {default})")
    return "\n".join([*lines, "", *textwrap.wrap("presets: " + ", ".join(presets), width=width)])

"""The registry of variants: which exist, their declarations (torch-free), and an instance of one.

Built-in variants are modules of this package, imported on the first question about them; a variant registered
at run time (`register`) is known from then on.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from engine.variants.base import Variant
from engine.variants.options import Option

__all__ = ["register", "unregister", "variant_names", "variant_class", "variant_options", "all_variant_options",
           "option_spec", "second_order_refusal", "variant_summary", "make_variant", "as_variant", "space_variants"]

# The built-in variants: modules of this package, each registering the variant of its own name.
_MODULES = ("darts", "pc_darts", "gdas", "fair_darts", "drnas", "darts_minus", "beta_darts", "sdarts_rs")
_REGISTRY: dict[str, type[Variant]] = {}


def _load_builtins() -> None:
    for module in _MODULES:
        if module not in _REGISTRY:
            importlib.import_module(f"engine.variants.{module}")


def register(cls: type[Variant]) -> type[Variant]:
    """Class decorator: make `cls` available as `variant=cls.name`. An option name another variant declares
    must be the same option (a config holds each option once, flat under its name)."""
    if not cls.name or not cls.name.isidentifier():
        raise ValueError(f"a variant needs a name that is an identifier, got {cls.name!r}")
    if _REGISTRY.get(cls.name, cls) is not cls:
        raise ValueError(f"variant {cls.name!r} is already registered by {_REGISTRY[cls.name].__qualname__}")
    for option in cls.options:
        known = option_spec(option.name, load=cls.name not in _MODULES)  # a built-in is loading the built-ins
        if known is not None and known != option:
            raise ValueError(f"variant {cls.name!r} declares option {option.name!r} differently from the variant "
                             f"that already declares it")
    _REGISTRY[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove a variant registered at run time (tests); built-in variants stay."""
    if name in _MODULES:
        raise ValueError(f"{name!r} is a built-in variant")
    _REGISTRY.pop(name, None)


def variant_names() -> tuple[str, ...]:
    """Every variant a config may name: the built-in ones (darts first), then any registered at run time."""
    return _MODULES + tuple(sorted(set(_REGISTRY) - set(_MODULES)))


def variant_class(name: str) -> type[Variant]:
    """The registered class of variant `name` (its declarations; torch-free); a ValueError listing the known
    names otherwise."""
    if name in _MODULES:
        _load_builtins()
    if name not in _REGISTRY:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(variant_names())}")
    return _REGISTRY[name]


def variant_options(name: str) -> tuple[str, ...]:
    """The names of the config options the variant reads (its own options)."""
    return variant_class(name).option_names()


def all_variant_options() -> dict[str, str]:
    """Every variant option of every known variant -> the variant that owns it (the first that reads it: beta_darts
    also reads pc_darts's `pc_k`)."""
    _load_builtins()
    out: dict[str, str] = {}
    for name in variant_names():
        for opt in variant_options(name):
            out.setdefault(opt, name)
    return out


def builtin_variant_options() -> tuple[str, ...]:
    """The options the built-in variants declare, in their order: every config.json records them."""
    _load_builtins()
    return tuple(dict.fromkeys(o for module in _MODULES for o in variant_options(module)))


def option_spec(name: str, load: bool = True) -> Option | None:
    """The declaration of the variant option called `name`; None when no known variant declares one."""
    if load:
        _load_builtins()
    for cls in _REGISTRY.values():
        for option in cls.options:
            if option.name == name:
                return option
    return None


def second_order_refusal(name: str) -> str:
    """Why the variant cannot take the second-order (unrolled) step; empty when it can."""
    return variant_class(name).no_second_order


def space_variants(space: str) -> tuple[str, ...]:
    """The variants that relax search space `space` (their `spaces` name it), in `variant_names` order."""
    _load_builtins()
    return tuple(name for name in variant_names() if space in variant_class(name).spaces)


def variant_summary(name: str) -> str:
    return variant_class(name).summary


def make_variant(name: str, options: Mapping[str, Any] | None = None) -> Variant:
    """A fresh instance of the variant called `name` with these option values (config fields; missing ones take
    the variant's defaults); a ValueError that lists the known names otherwise."""
    cls = variant_class(name)
    names = cls.option_names()
    return cls(**{k: v for k, v in (options or {}).items() if k in names})


def as_variant(variant: str | Variant | Mapping[str, Any]) -> Variant:
    """A variant by name, as is, or from a run's config dict (its `variant` and that variant's options)."""
    if isinstance(variant, Variant):
        return variant
    if isinstance(variant, Mapping):
        return make_variant(str(variant.get("variant", "darts")), variant)
    return make_variant(variant)

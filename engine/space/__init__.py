"""Search spaces, torch-free: what a space is (base.py) and the ones the engine knows, by name.

Each space is a package of its own (cnn/: the convolutional DARTS cell; rnn/: the recurrent one) that defines
`SPACE`, a `SearchSpace`; `get_space(name)` imports it on first use. docs/extending.md says how to add one.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from engine.space.base import SearchSpace

__all__ = ["SearchSpace", "get_space", "space_names", "space_of_kinds", "space_of_genotype", "DEFAULT_SPACE"]

DEFAULT_SPACE = "cnn"
# name -> package of engine.space that defines SPACE
_PACKAGES = {"cnn": "cnn", "rnn": "rnn"}


def space_names() -> tuple[str, ...]:
    return tuple(_PACKAGES)


def get_space(name: str = DEFAULT_SPACE) -> SearchSpace:
    """The space called `name`; a ValueError that lists the known ones otherwise."""
    if name not in _PACKAGES:
        raise ValueError(f"unknown search space {name!r}; known: {', '.join(_PACKAGES)}")
    return importlib.import_module(f"{__name__}.{_PACKAGES[name]}").SPACE


def space_of_kinds(kinds: Iterable[str]) -> SearchSpace | None:
    """The space whose cell kinds all appear among `kinds` (the keys of an alphas line or of op weights): the
    convolutional space for "normal" and "reduce", the recurrent one for "recurrent"; None for neither."""
    present = set(kinds)
    return next((space for space in map(get_space, _PACKAGES) if set(space.cell_kinds) <= present), None)


def space_of_genotype(genotype: Any) -> SearchSpace:
    """The space a genotype belongs to (its Genotype class's); a TypeError for anything else."""
    for space in map(get_space, _PACKAGES):
        if isinstance(genotype, space.genotype_type):
            return space
    raise TypeError(f"not a genotype of a known search space: {type(genotype).__name__}")

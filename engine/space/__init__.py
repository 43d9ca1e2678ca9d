"""Search spaces, torch-free: what a space is (base.py) and the ones the engine knows, by name.

Each space is a package of its own (cnn/: the convolutional DARTS cell; rnn/: the recurrent one) that defines
`SPACE`, a `SearchSpace`; `get_space(name)` imports it on first use. docs/extending.md says how to add one.
"""

from __future__ import annotations

import importlib

from engine.space.base import SearchSpace

__all__ = ["SearchSpace", "get_space", "space_names", "DEFAULT_SPACE"]

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

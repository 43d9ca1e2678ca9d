"""dartboard's search engine: the DARTS search space, bilevel search, genotypes, networks, run directories.

No Streamlit anywhere in this package: the dashboard (app/) reads what the engine publishes. The names
below load on first use, so importing `engine` (or its torch-free parts: engine.core, engine.space.cnn.genotype,
engine.search.config, engine.runs.rundir and the exports) does not import torch; `engine.NetworkCIFAR` does.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module of this package that defines it
_EXPORTS = {
    "PRIMITIVES": "space.cnn.cell",
    "Genotype": "space.cnn.genotype", "derive_genotype": "space.cnn.genotype", "KNOWN_GENOTYPES": "space.cnn.genotype",
    "SearchConfig": "search.config", "PRESETS": "search.config", "ConfigError": "core.config",
    "NetworkCIFAR": "nn.network", "NetworkImageNet": "nn.network", "count_parameters": "nn.network",
    "Registry": "jobs.controller", "Controller": "jobs.controller", "JobError": "jobs.controller",
    "Follower": "runs.follow",
    "Snapshot": "runs.snapshot",
    "variant_names": "variants", "make_variant": "variants",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

"""The search network of a SearchConfig: the one place a config's fields become SearchNetwork's arguments.

The network knows nothing of the search's config (engine/nn/supernet.py takes plain arguments); the loop, the
benchmark and the tests build it from a config here.
"""

from __future__ import annotations

from typing import Any

from engine.nn.supernet import SearchNetwork
from engine.search.config import SearchConfig
from engine.variants import variant_options

__all__ = ["build_network", "variant_options_of"]


def variant_options_of(config: SearchConfig) -> dict[str, Any]:
    """The values of the options the config's variant reads (its declared defaults where the config sets none)."""
    return {name: getattr(config, name) for name in variant_options(config.variant)}


def build_network(config: SearchConfig, in_channels: int, num_classes: int) -> SearchNetwork:
    """The search network `config` describes; channels and classes come from the data, not the config."""
    return SearchNetwork(config.init_channels, num_classes, config.layers, in_channels=in_channels,
                         nodes=config.nodes, variant=config.variant, fast=config.fast,
                         variant_options=variant_options_of(config))

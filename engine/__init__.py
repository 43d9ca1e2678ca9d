"""dartboard's search engine: the DARTS search space, bilevel search, genotypes, networks, run directories.

No Streamlit anywhere in this package: the dashboard (app/) reads what the engine publishes.
"""

from .config import PRESETS, ConfigError, SearchConfig
from .genotype import KNOWN_GENOTYPES, Genotype, derive_genotype
from .job import Controller, Follower, JobError, Registry
from .network import NetworkCIFAR, NetworkImageNet, count_parameters
from .ops import PRIMITIVES
from .snapshot import Snapshot

__all__ = [
    "PRIMITIVES", "Genotype", "derive_genotype", "KNOWN_GENOTYPES", "SearchConfig", "PRESETS", "ConfigError",
    "NetworkCIFAR", "NetworkImageNet", "count_parameters", "Registry", "Controller", "Follower", "JobError",
    "Snapshot",
]

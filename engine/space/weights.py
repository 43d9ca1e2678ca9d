"""Op weights from raw architecture parameters, torch-free: the one numpy softmax of the engine.

The variants (engine/variants/) compute what their search multiplies with in torch; readers that hold only a
record and must not load torch (the torch-free derivation of plain DARTS alphas) use this.
"""

from __future__ import annotations

import numpy as np

__all__ = ["softmax"]


def softmax(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(a) normalised along `axis`, shifted by the maximum so large alphas do not overflow; float64."""
    a = np.asarray(a, dtype=np.float64)
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)

"""Parameter counts of every registered fusion on the same inputs."""

from __future__ import annotations

from typing import Any

from wsfusion import fusion
from wsfusion.nn import MaskedLinear

NOTEBOOK_DIMS = {"visual": 256, "text": 256, "audio": 256}


def run(modality_dims: dict[str, int] = NOTEBOOK_DIMS, out_dim: int = 256) -> list[dict[str, Any]]:
    """One row per fusion with default options: all parameters, and the ones that can be non-zero.

    The dense masked layer stores :math:`N^2` weights but only the graph's
    edges are used; ``used`` counts those instead.
    """
    rows = []
    for name in fusion.available():
        module = fusion.build(name, modality_dims, out_dim)
        stored = sum(p.numel() for p in module.parameters())
        unused = sum(
            m.weight.numel() - int(m.mask.count_nonzero()) for m in module.modules() if isinstance(m, MaskedLinear)
        )
        rows.append({"fusion": name, "class": type(module).__name__, "parameters": stored, "used": stored - unused})
    return rows

"""Parameter counts of every registered fusion on the same inputs."""

from __future__ import annotations

from typing import Any

from wsfusion import fusion
from wsfusion.nn import MaskedLinear

NOTEBOOK_DIMS = {"visual": 256, "text": 256, "audio": 256}
#: Token counts of the notebook's encoders (4x4 image grid, 20 words, 100 / 4 audio frames).
NOTEBOOK_TOKENS = {"visual": 16, "text": 20, "audio": 25}


def run(modality_dims: dict[str, int] = NOTEBOOK_DIMS, out_dim: int = 256) -> list[dict[str, Any]]:
    """One row per fusion with default options: all parameters, and the ones that can be non-zero.

    The dense masked layer stores :math:`N^2` weights but only the graph's
    edges are used; ``used`` counts those instead.
    """
    rows = []
    for name in fusion.available():
        cls = fusion.fusion_class(name)
        if cls.family == "unimodal":
            continue  # no fusion to count
        options = {"tokens": {m: NOTEBOOK_TOKENS.get(m, 16) for m in modality_dims}} if cls.needs_token_counts else {}
        module = fusion.build(name, modality_dims, out_dim, **options)
        stored = sum(p.numel() for p in module.parameters())
        unused = sum(
            m.weight.numel() - int(m.mask.count_nonzero()) for m in module.modules() if isinstance(m, MaskedLinear)
        )
        rows.append({"fusion": name, "class": type(module).__name__, "parameters": stored, "used": stored - unused})
    return rows

"""``CrossModalAttentionConv`` over N tokens (WS neighbours only) against dense multi-head attention."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from wsfusion.bench._measure import interleaved_medians, peak_memory_bytes
from wsfusion.bench.ws_linear import three_modalities
from wsfusion.graphs import ws_cross_modal_graph
from wsfusion.nn import CrossModalAttentionConv

DEFAULT_TOKENS = (256, 1024, 4096)


def run(
    tokens: tuple[int, ...] = DEFAULT_TOKENS,
    k: int = 8,
    batch: int = 4,
    channels: int = 64,
    heads: int = 4,
    reps: int = 7,
    device: str | torch.device = "cpu",
    memory: bool = True,
) -> list[dict[str, Any]]:
    """Forward + backward median ms (and peak extra memory) at each token count."""
    device = torch.device(device)
    rows = []
    for n in tokens:
        graph = ws_cross_modal_graph(three_modalities(n), k=k, beta=0.3, seed=0)
        edge_index, edge_type = graph.edge_index.to(device), graph.edge_type.to(device)
        conv = CrossModalAttentionConv(channels, channels, heads=heads).to(device)
        dense = nn.MultiheadAttention(channels, heads, batch_first=True).to(device)
        x = torch.randn(batch, n, channels, device=device, requires_grad=True)
        upstream = torch.randn(batch, n, channels, device=device)

        def sparse_step():
            x.grad = None
            conv.zero_grad(set_to_none=True)
            conv(x, edge_index, edge_type).backward(upstream)

        def dense_step():
            x.grad = None
            dense.zero_grad(set_to_none=True)
            dense(x, x, x, need_weights=False)[0].backward(upstream)

        cases = {"CrossModalAttentionConv": sparse_step, "dense MultiheadAttention": dense_step}
        times = interleaved_medians(cases, reps, device, warmup=1)
        row: dict[str, Any] = {"N": n, "B": batch, "E": edge_index.shape[1], "ms": times,
                               "speedup": times["dense MultiheadAttention"] / times["CrossModalAttentionConv"]}
        if memory:
            row["peak_mb"] = {
                name: (None if (b := peak_memory_bytes(fn, device)) is None else round(b / 2**20, 1))
                for name, fn in cases.items()
            }
        rows.append(row)
    return rows

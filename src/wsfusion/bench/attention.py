"""``CrossModalAttentionConv`` over N tokens (WS neighbours only) against dense multi-head attention.

Cases, all forward + backward over the same tokens in one process:

* ``fused``: the default CSR-kernel path;
* ``reference``: the generic PyG gather / scatter path (``fuse=False``);
* ``dense MultiheadAttention``: :class:`torch.nn.MultiheadAttention` (all pairs);
* ``dense SDPA``: the conv's own projections around
  :func:`torch.nn.functional.scaled_dot_product_attention` (flash-style kernel
  that never stores the N x N scores): dense attention at its fastest.

On CUDA two more, both under bf16 autocast (FlashAttention needs half precision):
``fused bf16`` and ``dense SDPA flash bf16`` (SDPA restricted to the FlashAttention
backend).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from wsfusion._measure import interleaved_medians, peak_memory_mb
from wsfusion.bench.ws_linear import three_modalities
from wsfusion.graphs import ws_cross_modal_graph
from wsfusion.nn import CrossModalAttentionConv

DEFAULT_TOKENS = (256, 1024, 4096, 16384)
#: The reference path's [B, E, H, d] copies are slow and large: measured up to this many tokens.
REFERENCE_MAX_TOKENS = 4096


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
        fused = CrossModalAttentionConv(channels, channels, heads=heads).to(device)
        reference = CrossModalAttentionConv(channels, channels, heads=heads, fuse=False).to(device)
        reference.load_state_dict(fused.state_dict())
        mha = nn.MultiheadAttention(channels, heads, batch_first=True).to(device)
        x = torch.randn(batch, n, channels, device=device, requires_grad=True)
        upstream = torch.randn(batch, n, channels, device=device)

        def conv_step(conv: CrossModalAttentionConv):
            def step():
                x.grad = None
                conv.zero_grad(set_to_none=True)
                conv(x, edge_index, edge_type).backward(upstream)
            return step

        def mha_step():
            x.grad = None
            mha.zero_grad(set_to_none=True)
            mha(x, x, x, need_weights=False)[0].backward(upstream)

        def sdpa_step():
            x.grad = None
            fused.zero_grad(set_to_none=True)
            split = (batch, n, heads, channels // heads)
            q, kk, v = (lin(x).view(split).transpose(1, 2) for lin in (fused.query, fused.key, fused.value))
            out = F.scaled_dot_product_attention(q, kk, v).transpose(1, 2).reshape(batch, n, channels)
            fused.out(out).backward(upstream)

        cases = {"fused": conv_step(fused)}
        if n <= REFERENCE_MAX_TOKENS:
            cases["reference"] = conv_step(reference)
        cases["dense MultiheadAttention"] = mha_step
        cases["dense SDPA"] = sdpa_step
        if device.type == "cuda":
            from torch.nn.attention import SDPBackend, sdpa_kernel

            def bf16(step, flash=False):
                def run_once():
                    with torch.autocast("cuda", dtype=torch.bfloat16):
                        if flash:
                            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                                step()
                        else:
                            step()
                return run_once

            cases["fused bf16"] = bf16(conv_step(fused))
            cases["dense SDPA flash bf16"] = bf16(sdpa_step, flash=True)
        times = interleaved_medians(cases, reps if n <= 4096 else max(2, reps // 3), device, warmup=1)
        row: dict[str, Any] = {
            "N": n, "B": batch, "E": edge_index.shape[1], "ms": times,
            "speedup": {
                "fused vs dense MultiheadAttention": times["dense MultiheadAttention"] / times["fused"],
                "fused vs dense SDPA": times["dense SDPA"] / times["fused"],
                **({"fused vs reference": times["reference"] / times["fused"]} if "reference" in times else {}),
                **({"fused bf16 vs dense SDPA flash bf16": times["dense SDPA flash bf16"] / times["fused bf16"]}
                   if "fused bf16" in times else {}),
            },
        }
        if memory:
            row["peak_mb"] = peak_memory_mb(cases, device)
        rows.append(row)
    return rows

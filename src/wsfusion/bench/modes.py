"""Training modes side by side: eager float32, ``torch.compile`` (inductor), and bf16 autocast.

One training step (forward + backward) of each layer at a moderate size, the WS-sparse and the
dense token fusion, medians of interleaved repetitions in one process, plus the one-off compile
time (the first compiled call). On CPU, bf16 buys nothing for the sparse kernels (they
accumulate in float32 and convert around the kernel) and is measured so that this is seen,
not assumed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from wsfusion._measure import interleaved_medians, sync
from wsfusion.bench.ws_linear import three_modalities
from wsfusion.graphs import token_graph, ws_cross_modal_graph
from wsfusion.nn import CrossModalAttentionConv, CrossModalConv, WSLinear

MODES = ("eager", "compiled", "autocast bf16")


def _cases(device: torch.device, tokens: int, batch: int) -> dict[str, tuple[nn.Module, Callable[[nn.Module], torch.Tensor]]]:
    from wsfusion.fusion import build

    graph = ws_cross_modal_graph(three_modalities(3072), k=6, beta=0.3, seed=0)
    per_modality = {m: tokens // 3 for m in ("visual", "text", "audio")}
    token_ws = token_graph(per_modality, k=8, beta=0.3, seed=0)
    n = token_ws.num_nodes
    x_lin = torch.randn(256, 3072, device=device)
    x_tok = torch.randn(batch, n, 64, device=device)
    feats = {m: torch.randn(batch, t, 64, device=device) for m, t in per_modality.items()}
    options = dict(embed_dim=64, num_heads=4, num_layers=2)
    return {
        "WSLinear N=3,072 B=256": (WSLinear(graph), lambda m: m(x_lin)),
        f"CrossModalConv {n:,} nodes": (CrossModalConv(64, 64, token_ws.num_relations), lambda m: m(x_tok, token_ws)),
        f"CrossModalAttentionConv {n:,} tokens": (CrossModalAttentionConv(64, 64, heads=4), lambda m: m(x_tok, token_ws)),
        f"ws-transformer {n:,} tokens": (build("ws-transformer", {m: 64 for m in per_modality}, 10, k=8, tokens=per_modality,
                                               node_dim=64, heads=4, num_layers=2),
                                         lambda m: m(feats)),
        f"transformer (dense) {n:,} tokens": (build("transformer", {m: 64 for m in per_modality}, 10, **options),
                                              lambda m: m(feats)),
    }


def run(tokens: int = 1024, batch: int = 4, reps: int = 7, device: str | torch.device = "cpu") -> list[dict[str, Any]]:
    """Median ms of one training step per case and mode, and the first compiled call's seconds."""
    device = torch.device(device)
    rows = []
    for name, (module, call) in _cases(device, tokens, batch).items():
        module = module.to(device)
        torch._dynamo.reset()
        compiled = torch.compile(module)

        def step(m: nn.Module, autocast: bool = False) -> Callable[[], None]:
            def run_once() -> None:
                module.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                    out = call(m)
                out.float().square().mean().backward()
            return run_once

        sync(device)
        start = time.perf_counter()
        step(compiled)()
        sync(device)
        compile_s = time.perf_counter() - start
        cases = {"eager": step(module), "compiled": step(compiled), "autocast bf16": step(module, autocast=True)}
        ms = interleaved_medians(cases, reps, device, warmup=1)
        rows.append({"case": name, "ms": ms, "compile_s": compile_s,
                     "speedup": {"compiled vs eager": ms["eager"] / ms["compiled"],
                                 "bf16 vs eager": ms["eager"] / ms["autocast bf16"]}})
    torch._dynamo.reset()
    return rows

"""``CrossModalConv`` against PyG's ``RGCNConv`` and ``FastRGCNConv`` on the same WS graph and relations.

Forward + backward over ``[N, F]`` node features (PyG's relational convs take one
unbatched graph), 9 relations (3 modalities), ``aggr="add"`` for all (where
the three compute the same function; PyG's ``"mean"`` averages within each
relation). ``CrossModalConv`` runs its fused path and its reference path.
"""

from __future__ import annotations

from typing import Any

import torch
from torch_geometric.nn import FastRGCNConv, RGCNConv

from wsfusion._measure import interleaved_medians, peak_memory_mb
from wsfusion.bench.ws_linear import three_modalities
from wsfusion.graphs import ws_cross_modal_graph
from wsfusion.nn import CrossModalConv

DEFAULT_NODES = (1024, 4096, 16384)
#: FastRGCNConv gathers one [F, F] weight per edge (E·F² floats): measured up to this many nodes.
FAST_RGCN_MAX_NODES = 4096


def run(
    nodes: tuple[int, ...] = DEFAULT_NODES,
    k: int = 8,
    channels: int = 64,
    reps: int = 7,
    device: str | torch.device = "cpu",
    memory: bool = True,
) -> list[dict[str, Any]]:
    """Forward + backward median ms (and peak extra memory) at each node count."""
    device = torch.device(device)
    rows = []
    for n in nodes:
        graph = ws_cross_modal_graph(three_modalities(n), k=k, beta=0.3, seed=0)
        edge_index, edge_type = graph.edge_index.to(device), graph.edge_type.to(device)
        r = graph.num_relations
        fused = CrossModalConv(channels, channels, num_relations=r, aggr="add").to(device)
        reference = CrossModalConv(channels, channels, num_relations=r, aggr="add", fuse=False).to(device)
        reference.load_state_dict(fused.state_dict())
        layers: dict[str, torch.nn.Module] = {"fused": fused, "reference": reference,
                                              "PyG RGCNConv": RGCNConv(channels, channels, r, aggr="add").to(device)}
        if n <= FAST_RGCN_MAX_NODES:
            layers["PyG FastRGCNConv"] = FastRGCNConv(channels, channels, r, aggr="add").to(device)
        x = torch.randn(n, channels, device=device, requires_grad=True)
        upstream = torch.randn(n, channels, device=device)

        def step(layer: torch.nn.Module):
            def run_once():
                x.grad = None
                layer.zero_grad(set_to_none=True)
                layer(x, edge_index, edge_type).backward(upstream)
            return run_once

        cases = {name: step(layer) for name, layer in layers.items()}
        times = interleaved_medians(cases, reps, device, warmup=1)
        row: dict[str, Any] = {
            "N": n, "E": edge_index.shape[1], "relations": r, "ms": times,
            "speedup": {f"fused vs {name}": times[name] / times["fused"] for name in times if name != "fused"},
        }
        if memory:
            row["peak_mb"] = peak_memory_mb(cases, device)
        rows.append(row)
    return rows

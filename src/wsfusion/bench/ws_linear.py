"""``WSLinear`` forward+backward against the dense masked layer, PyG's paths and the raw kernels.

All cases learn the edge weights and get the input gradient, at ``k=6``,
measured side by side in one process with interleaved repetitions.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch_geometric import EdgeIndex

from wsfusion._measure import interleaved_medians, peak_memory_mb
from wsfusion.graphs import ws_cross_modal_graph
from wsfusion.nn import WSLinear
from wsfusion.nn._sparse import csr_tensor

DEFAULT_SIZES = ((192, 256), (3072, 256), (12288, 64), (65536, 64))
#: The dense N x N weight (plus its mask and gradient) is skipped above this N.
DENSE_MAX_NODES = 12288


def three_modalities(n: int) -> dict[str, int]:
    base, extra = divmod(n, 3)
    return {m: base + (i < extra) for i, m in enumerate(("visual", "text", "audio"))}


def make_cases(n: int, batch: int, k: int, device: torch.device) -> dict[str, Any]:
    graph = ws_cross_modal_graph(three_modalities(n), k=k, beta=0.3, seed=0)
    fused = WSLinear(graph).to(device)
    generic = WSLinear(graph, fuse=False).to(device)
    generic.load_state_dict(fused.state_dict())
    x = torch.randn(batch, n, device=device, requires_grad=True)
    upstream = torch.randn(batch, n, device=device)
    src, dst = graph.edge_index.to(device)

    def run_layer(layer):
        def step():
            x.grad = None
            layer.weight.grad = None
            layer(x).backward(upstream)
        return step

    # The same layer inside a stack: input and upstream gradient already in node-major memory
    # (what WSLinear returns), so no layout copies at all.
    x_nodes_leaf = x.detach().t().contiguous().requires_grad_()
    upstream_nodes = upstream.t().contiguous()

    def run_layer_node_major():
        x_nodes_leaf.grad = None
        fused.weight.grad = None
        fused(x_nodes_leaf.t()).backward(upstream_nodes.t())

    edge_index = EdgeIndex(torch.stack([dst, src]), sparse_size=(n, n), sort_order="row")
    weight = fused.weight.detach().clone().requires_grad_()

    def run_edge_index_matmul():
        x.grad = None
        weight.grad = None
        out = edge_index.matmul(x.t(), input_value=weight)
        out.t().backward(upstream)

    s = fused.structure
    x_nodes = x.detach().t().contiguous()
    up_nodes = upstream.t().contiguous()
    w = fused.weight.detach()
    t_w = w[s.t_perm]

    def run_raw_kernels():
        csr_tensor(s.crow, s.col, w, (n, n)) @ x_nodes
        csr_tensor(s.t_crow, s.t_col, t_w, (n, n)) @ up_nodes
        torch.sparse.sampled_addmm(csr_tensor(s.crow, s.col, w, (n, n)), up_nodes, x_nodes.t(), beta=0.0)

    cases = {
        "WSLinear": run_layer(fused),
        "WSLinear node-major": run_layer_node_major,
        "PyG MessagePassing": run_layer(generic),
        "PyG EdgeIndex.matmul": run_edge_index_matmul,
        "raw kernels": run_raw_kernels,
    }
    if n <= DENSE_MAX_NODES:
        dense_weight = fused.to_dense().requires_grad_()
        mask = graph.to_dense_mask().to(device)

        def run_dense():
            x.grad = None
            dense_weight.grad = None
            F.linear(x, dense_weight * mask).backward(upstream)

        cases["dense masked"] = run_dense
    return {"cases": cases, "num_edges": graph.edge_index.shape[1]}


def run(
    sizes: tuple[tuple[int, int], ...] = DEFAULT_SIZES,
    k: int = 6,
    reps: int = 15,
    device: str | torch.device = "cpu",
    memory: bool = True,
) -> list[dict[str, Any]]:
    """One row per (N, B) with median ms and peak extra memory per case."""
    device = torch.device(device)
    rows = []
    for n, batch in sizes:
        made = make_cases(n, batch, k, device)
        cases = made["cases"]
        scale = max(1, 3072 // n) if n < 3072 else 1
        times = interleaved_medians(cases, reps * scale, device)
        row: dict[str, Any] = {"N": n, "B": batch, "E": made["num_edges"], "ms": times}
        if "dense masked" not in cases:
            row["ms"]["dense masked"] = None
        if memory:
            row["peak_mb"] = peak_memory_mb(cases, device)
        ms = row["ms"]
        row["speedup"] = {
            "WSLinear vs dense": None if ms["dense masked"] is None else ms["dense masked"] / ms["WSLinear"],
            "WSLinear vs PyG MessagePassing": ms["PyG MessagePassing"] / ms["WSLinear"],
            "WSLinear vs EdgeIndex.matmul": ms["PyG EdgeIndex.matmul"] / ms["WSLinear"],
            "WSLinear / raw kernels": ms["WSLinear"] / ms["raw kernels"],
            "WSLinear node-major / raw kernels": ms["WSLinear node-major"] / ms["raw kernels"],
        }
        rows.append(row)
        del made, cases
    return rows

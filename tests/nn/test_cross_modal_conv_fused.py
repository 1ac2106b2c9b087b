"""The fused (typed CSR SpMM) CrossModalConv equals the generic PyG path and PyG's RGCNConv."""

import copy

import pytest
import torch
from torch_geometric.nn import FastRGCNConv, RGCNConv

from wsfusion.graphs import ws_cross_modal_graph
from wsfusion.nn import CrossModalConv

GRAPH = ws_cross_modal_graph({"visual": 6, "text": 5, "audio": 4}, k=4, beta=0.4, seed=3)
N, R = GRAPH.num_nodes, GRAPH.num_relations


def pair(**options):
    torch.manual_seed(0)
    fused = CrossModalConv(8, 6, num_relations=R, **options).double()
    reference = copy.deepcopy(fused)
    reference.fuse = False
    return fused, reference


def shuffled_edges():
    perm = torch.randperm(GRAPH.edge_index.shape[1], generator=torch.Generator().manual_seed(1))
    return GRAPH.edge_index[:, perm], GRAPH.edge_type[perm]


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("aggr", ["mean", "add"])
@pytest.mark.parametrize("num_bases", [None, 3])
@pytest.mark.parametrize("extra", ["none", "node_mask", "edge_weight", "both"])
def test_fused_equals_reference_outputs_and_gradients(batched, aggr, num_bases, extra):
    fused, reference = pair(aggr=aggr, num_bases=num_bases)
    edge_index, edge_type = shuffled_edges()
    gen = torch.Generator().manual_seed(2)
    shape = (3, N, 8) if batched else (N, 8)
    x0 = torch.randn(*shape, dtype=torch.float64, generator=gen)
    kwargs = {}
    if extra in ("node_mask", "both"):
        kwargs["node_mask"] = torch.rand(shape[:-1], generator=gen) > 0.3
    w0 = None
    if extra in ("edge_weight", "both"):
        w0 = torch.rand(edge_index.shape[1], dtype=torch.float64, generator=gen)
        w0[::4] = 0.0
    upstream = torch.randn(*shape[:-1], 6, dtype=torch.float64, generator=gen)
    results = []
    for conv in (fused, reference):
        x = x0.clone().requires_grad_()
        w = None if w0 is None else w0.clone().requires_grad_()
        out = conv(x, edge_index, edge_type, edge_weight=w, **kwargs)
        (out * upstream).sum().backward()
        results.append([out] + [p.grad for p in conv.parameters()] + [x.grad] + ([w.grad] if w is not None else []))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("pyg_class", [RGCNConv, FastRGCNConv])
def test_equals_pyg_rgcn_on_the_same_graph_and_relations(pyg_class):
    # Sums agree exactly; PyG's "mean" averages within each relation, ours over all incoming edges.
    torch.manual_seed(0)
    ours = CrossModalConv(8, 6, num_relations=R, aggr="add").double()
    pyg = pyg_class(8, 6, num_relations=R, aggr="add").double()
    with torch.no_grad():
        pyg.weight.copy_(ours.weight)
        pyg.root.copy_(ours.root.weight.t())
        pyg.bias.copy_(ours.bias)
    x = torch.randn(N, 8, dtype=torch.float64)
    torch.testing.assert_close(ours(x, GRAPH), pyg(x, GRAPH.edge_index, GRAPH.edge_type), rtol=1e-10, atol=1e-12)


def test_gradcheck_with_edge_weight_including_zeros():
    small = ws_cross_modal_graph({"a": 3, "b": 3}, k=2, beta=0.0, seed=0)
    torch.manual_seed(0)
    conv = CrossModalConv(3, 2, num_relations=small.num_relations, aggr="add").double()
    x = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    w = torch.rand(small.edge_index.shape[1], dtype=torch.float64)
    w[:3] = 0.0
    w.requires_grad_()
    assert torch.autograd.gradcheck(lambda x, w: conv(x, small, edge_weight=w), (x, w))


def test_the_structure_is_rebuilt_when_the_relations_change():
    fused, reference = pair()
    x = torch.randn(N, 8, dtype=torch.float64)
    edge_index, edge_type = GRAPH.edge_index, GRAPH.edge_type
    fused(x, edge_index, edge_type)
    edge_type[:5] = (edge_type[:5] + 1) % R  # in place
    torch.testing.assert_close(fused(x, edge_index, edge_type), reference(x, edge_index, edge_type),
                               rtol=1e-10, atol=1e-12)

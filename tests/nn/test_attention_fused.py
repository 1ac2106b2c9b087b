"""The fused (CSR-kernel) CrossModalAttentionConv equals the generic PyG path, outputs and all gradients."""

import copy

import pytest
import torch
import torch.nn.functional as F

from wsfusion.graphs import ws_cross_modal_graph
from wsfusion.nn import CrossModalAttentionConv

GRAPH = ws_cross_modal_graph({"visual": 6, "text": 5, "audio": 4}, k=4, beta=0.4, seed=3)
N = GRAPH.num_nodes


def pair(relations: bool, heads: int = 2, dropout: float = 0.0):
    """A fused conv and a reference conv with the same weights, in float64."""
    torch.manual_seed(0)
    fused = CrossModalAttentionConv(8, 8, heads=heads, num_relations=GRAPH.num_relations if relations else None,
                                    dropout=dropout).double()
    if relations:
        with torch.no_grad():
            fused.relation.weight.normal_()  # well away from the near-zero init, so the term matters
    reference = copy.deepcopy(fused)
    reference.fuse = False
    return fused, reference


def shuffled_edges(seed: int = 1):
    """The graph's edges in a random column order (the conv must not assume CSR order)."""
    perm = torch.randperm(GRAPH.edge_index.shape[1], generator=torch.Generator().manual_seed(seed))
    return GRAPH.edge_index[:, perm], GRAPH.edge_type[perm]


def run(conv, x, edge_index, edge_type, **kwargs):
    out, (_, alpha) = conv(x, edge_index, edge_type, return_attention_weights=True, **kwargs)
    return out, alpha


def grads(module, *tensors):
    return [p.grad.clone() for p in module.parameters()] + [t.grad.clone() for t in tensors]


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("relations", [False, True])
@pytest.mark.parametrize("extra", ["none", "node_mask", "edge_weight", "both"])
def test_fused_equals_reference_outputs_and_gradients(batched, relations, extra):
    fused, reference = pair(relations)
    edge_index, edge_type = shuffled_edges()
    shape = (3, N, 8) if batched else (N, 8)
    gen = torch.Generator().manual_seed(2)
    x0 = torch.randn(*shape, dtype=torch.float64, generator=gen)
    kwargs = {}
    if extra in ("node_mask", "both"):
        mask = torch.rand(shape[:-1], generator=gen) > 0.3
        kwargs["node_mask"] = mask
    w0 = None
    if extra in ("edge_weight", "both"):
        w0 = torch.rand(edge_index.shape[1], dtype=torch.float64, generator=gen)
        w0[::5] = 0.0  # some closed gates, fractional elsewhere
    upstream = torch.randn(shape, dtype=torch.float64, generator=gen)
    results = []
    for conv in (fused, reference):
        x = x0.clone().requires_grad_()
        w = None if w0 is None else w0.clone().requires_grad_()
        out, alpha = run(conv, x, edge_index, edge_type, **({**kwargs, "edge_weight": w} if w is not None else kwargs))
        (out * upstream).sum().backward()
        results.append((out, alpha, grads(conv, x, *([w] if w is not None else []))))
    (out_f, alpha_f, grad_f), (out_r, alpha_r, grad_r) = results
    torch.testing.assert_close(out_f, out_r, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(alpha_f, alpha_r, rtol=1e-10, atol=1e-12)
    for gf, gr in zip(grad_f, grad_r):
        torch.testing.assert_close(gf, gr, rtol=1e-9, atol=1e-11)


def test_nodes_without_incoming_edges_get_only_the_bias():
    fused, reference = pair(relations=False)
    keep = GRAPH.edge_index[1] != 0  # node 0 receives nothing
    edge_index = GRAPH.edge_index[:, keep]
    x = torch.randn(2, N, 8, dtype=torch.float64)
    out = fused(x, edge_index)
    torch.testing.assert_close(out, reference(x, edge_index), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out[:, 0], fused.out.bias.expand(2, -1))


def test_edge_weight_semantics_is_softmax_of_score_plus_log_weight():
    """Written out for one target: alpha = w exp(s) / sum(w exp(s)) over its incoming edges."""
    fused, _ = pair(relations=False, heads=1)
    edge_index = GRAPH.edge_index
    x = torch.randn(N, 8, dtype=torch.float64)
    w = torch.rand(edge_index.shape[1], dtype=torch.float64) + 0.1
    _, alpha = run(fused, x, edge_index, None, edge_weight=w)
    q, k = fused.query(x), fused.key(x)
    for target in range(N):
        incoming = (edge_index[1] == target).nonzero().flatten()
        score = (q[target] * k[edge_index[0, incoming]]).sum(-1) / 8**0.5
        expected = torch.softmax(score + w[incoming].log(), dim=0)
        torch.testing.assert_close(alpha[incoming, 0], expected)


@pytest.mark.parametrize("fused_path", [True, False])
def test_gradcheck_including_edge_weight_with_zeros(fused_path):
    small = ws_cross_modal_graph({"a": 3, "b": 3}, k=2, beta=0.0, seed=0)
    torch.manual_seed(0)
    conv = CrossModalAttentionConv(4, 4, heads=2, num_relations=small.num_relations, fuse=fused_path).double()
    x = torch.randn(2, 6, 4, dtype=torch.float64, requires_grad=True)
    w = torch.rand(small.edge_index.shape[1], dtype=torch.float64)
    w[0] = 0.0  # a closed gate; every target keeps another open one
    w.requires_grad_()
    assert torch.autograd.gradcheck(lambda x, w: conv(x, small, edge_weight=w), (x, w))


@pytest.mark.parametrize("fused_path", [True, False])
def test_closed_gates_give_finite_gradients(fused_path):
    fused, reference = pair(relations=True)
    conv = fused if fused_path else reference
    edge_index, edge_type = GRAPH.edge_index, GRAPH.edge_type
    w = torch.rand(edge_index.shape[1], dtype=torch.float64)
    w[edge_index[1] == 4] = 0.0  # every gate into node 4 closed
    w.requires_grad_()
    x = torch.randn(2, N, 8, dtype=torch.float64, requires_grad=True)
    out = conv(x, edge_index, edge_type, edge_weight=w)
    upstream = torch.ones_like(out)  # non-zero at node 4 too
    (out * upstream).sum().backward()
    for g in [w.grad, x.grad, *(p.grad for p in conv.parameters())]:
        assert torch.isfinite(g).all()
    # node 4 aggregates nothing: its gates get no gradient, its output is the bias
    assert torch.equal(w.grad[edge_index[1] == 4], torch.zeros_like(w.grad[edge_index[1] == 4]))
    torch.testing.assert_close(out[:, 4], conv.out.bias.expand(2, -1))


def test_float32_closed_gates_stay_finite():
    conv = CrossModalAttentionConv(8, 8, heads=2)
    w = torch.zeros(GRAPH.edge_index.shape[1], requires_grad=True)
    x = torch.randn(N, 8, requires_grad=True)
    conv(x, GRAPH, edge_weight=w).sum().backward()
    assert torch.isfinite(w.grad).all() and w.grad.abs().max() < 1e3


def test_attention_dropout_drops_coefficients():
    fused, _ = pair(relations=False, dropout=0.5)
    x = torch.randn(2, N, 8, dtype=torch.float64)
    fused.eval()
    out, alpha = run(fused, x, GRAPH.edge_index, None)
    fused.train()
    torch.manual_seed(7)
    dropped = fused(x, GRAPH)
    # The same draw, by hand: F.dropout on the coefficients in the fused path's value order,
    # sample by sample, target by target, head by head, sources ascending.
    torch.manual_seed(7)
    src_list, dst_list = GRAPH.edge_index.tolist()
    value_order = [(b, e, hh) for b in range(2) for i in range(N) for hh in range(2)
                   for e in sorted((e for e, t in enumerate(dst_list) if t == i), key=lambda e: src_list[e])]
    draw = F.dropout(torch.ones(len(value_order), dtype=torch.float64), p=0.5)
    keep = torch.empty(2, len(dst_list), 2, dtype=torch.float64)  # [B, E, H]
    for (b, e, hh), kept in zip(value_order, draw.tolist()):
        keep[b, e, hh] = kept
    value = fused.value(x).view(2, N, 2, 4)
    src, dst = GRAPH.edge_index
    messages = (alpha * keep).unsqueeze(-1) * value[:, src]  # [B, E, H, d]
    aggregated = torch.zeros(2, N, 2, 4, dtype=torch.float64).index_add_(1, dst, messages)
    torch.testing.assert_close(dropped, fused.out(aggregated.reshape(2, N, 8)))
    assert not torch.allclose(dropped, out)


def test_the_structure_is_rebuilt_when_the_edges_change():
    fused, reference = pair(relations=False)
    x = torch.randn(N, 8, dtype=torch.float64)
    edge_index = GRAPH.edge_index.clone()
    fused(x, edge_index)
    edge_index[0, :4] = torch.tensor([1, 2, 3, 4])  # in place: same tensor, new version
    torch.testing.assert_close(fused(x, edge_index), reference(x, edge_index), rtol=1e-10, atol=1e-12)

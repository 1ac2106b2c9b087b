import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.utils import subgraph

from testing_helpers import assert_every_parameter_trains
from wsfusion.graphs import ws_cross_modal_graph
from wsfusion.nn import CrossModalAttentionConv


@pytest.fixture
def graph():
    return ws_cross_modal_graph({"visual": 5, "text": 4, "audio": 3}, k=4, beta=0.5, seed=1)


def dense_mha(conv):
    """nn.MultiheadAttention with the conv's weights (it needs in_channels == out_channels)."""
    mha = nn.MultiheadAttention(conv.out_channels, conv.heads, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([conv.query.weight, conv.key.weight, conv.value.weight]))
        mha.in_proj_bias.copy_(torch.cat([conv.query.bias, conv.key.bias, conv.value.bias]))
        mha.out_proj.weight.copy_(conv.out.weight)
        mha.out_proj.bias.copy_(conv.out.bias)
    return mha


def blocked(graph):
    """attn_mask[target, source] = True where there is no edge (PyTorch's 'not allowed')."""
    return graph.to_dense_mask() == 0


def relation_bias(conv, x, graph):
    """Dense ``q_t . r(s, t) / sqrt(d)`` as an additive float mask ``[B * H, target, source]``, -inf off the graph.

    The relation of every (source, target) pair is looked up from the modalities of the two nodes
    and ``graph.relation_names`` (not from ``graph.edge_type``), so the reference is built
    independently of the edge list.
    """
    b, n, _ = x.shape
    h, d = conv.heads, conv.head_dim
    names = graph.relation_names
    modality = [graph.modalities[i] for i in graph.node_modality.tolist()]
    relation = torch.tensor([[names.index((modality[s], modality[t])) for s in range(n)] for t in range(n)])
    r = conv.relation.weight[relation].view(n, n, h, d)  # [target, source, H, d]
    q = conv.query(x).view(b, n, h, d)  # [B, target, H, d]
    bias = torch.einsum("bthd,tshd->bhts", q, r) / math.sqrt(d)
    bias = bias.masked_fill(blocked(graph), float("-inf"))
    return bias.reshape(b * h, n, n)


@pytest.mark.parametrize("relations", [False, True], ids=["no-relations", "relations"])
@pytest.mark.parametrize("heads", [1, 2, 4])
def test_equals_dense_attention_with_a_minus_inf_mask(graph, heads, relations):
    conv = CrossModalAttentionConv(8, 8, heads=heads, num_relations=graph.num_relations if relations else None).eval()
    for lin in (conv.query, conv.key, conv.value, conv.out):
        nn.init.normal_(lin.bias)
    if relations:
        nn.init.normal_(conv.relation.weight)  # well above the 0.02 init, so a missing term shows
    x = torch.randn(3, graph.num_nodes, 8)
    mha = dense_mha(conv).eval()
    # Dense reference: q . (k + r) = q . k + q . r, the second term an additive float mask.
    attn_mask = relation_bias(conv, x, graph).detach() if relations else blocked(graph)
    expected, weights = mha(x, x, x, attn_mask=attn_mask, average_attn_weights=False)
    out, (edge_index, alpha) = conv(x, graph, return_attention_weights=True)
    torch.testing.assert_close(out, expected)
    src, dst = edge_index
    # alpha [B, E, H] equals the dense weights [B, H, target, source] at the edges.
    torch.testing.assert_close(alpha, weights[:, :, dst, src].transpose(1, 2))
    if relations:
        # The relation term matters here: leaving it out of the reference gives other outputs.
        without, _ = mha(x, x, x, attn_mask=blocked(graph))
        assert not torch.allclose(out, without, atol=1e-3)


def test_in_and_out_channels_may_differ(graph):
    conv = CrossModalAttentionConv(6, 8, heads=4)
    x = torch.randn(2, graph.num_nodes, 6)

    def heads(t):  # [B, N, 8] -> [B, H, N, 2]
        return t.view(2, graph.num_nodes, 4, 2).transpose(1, 2)

    attended = F.scaled_dot_product_attention(
        heads(conv.query(x)), heads(conv.key(x)), heads(conv.value(x)), attn_mask=~blocked(graph)
    )
    expected = conv.out(attended.transpose(1, 2).reshape(2, graph.num_nodes, 8))
    torch.testing.assert_close(conv(x, graph), expected)


def test_hand_checkable_uniform_attention():
    # With zero query weights every score is equal: each node averages its neighbours' values.
    graph = ws_cross_modal_graph({"a": 2, "b": 2}, k=2, beta=0.0)
    conv = CrossModalAttentionConv(1, 1, heads=1, bias=False)
    with torch.no_grad():
        conv.query.weight.zero_()
        conv.value.weight.fill_(1.0)
        conv.out.weight.fill_(1.0)
    x = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    # Ring 0-1-2-3-0: node 0 averages nodes 1 and 3, etc.
    expected = torch.tensor([[3.0], [2.0], [3.0], [2.0]])
    out, (_, alpha) = conv(x, graph, return_attention_weights=True)
    torch.testing.assert_close(out, expected)
    assert torch.equal(alpha, torch.full((8, 1), 0.5))


def test_attention_sums_to_one_over_incoming_edges(graph):
    conv = CrossModalAttentionConv(8, 8, heads=4, num_relations=graph.num_relations)
    _, (edge_index, alpha) = conv(torch.randn(2, graph.num_nodes, 8), graph, return_attention_weights=True)
    sums = torch.zeros(2, graph.num_nodes, 4).index_add_(1, edge_index[1], alpha)
    torch.testing.assert_close(sums, torch.ones_like(sums))


def test_relation_embedding_is_added_to_the_keys(graph):
    conv = CrossModalAttentionConv(4, 4, heads=2, num_relations=graph.num_relations)
    nn.init.normal_(conv.relation.weight)
    x = torch.randn(graph.num_nodes, 4)
    q = conv.query(x).view(-1, 2, 2)
    k = conv.key(x).view(-1, 2, 2)
    v = conv.value(x).view(-1, 2, 2)
    src, dst = graph.edge_index
    rel = conv.relation(graph.edge_type).view(-1, 2, 2)
    scores = torch.full((graph.num_nodes, graph.num_nodes, 2), float("-inf"))
    scores[dst, src] = (q[dst] * (k[src] + rel)).sum(-1) / math.sqrt(2)
    attn = torch.softmax(scores, dim=1)  # over sources
    expected = conv.out(torch.einsum("tsh,shd->thd", attn, v).reshape(-1, 4))
    torch.testing.assert_close(conv(x, graph), expected)


def test_node_mask_equals_the_graph_without_those_nodes(graph):
    conv = CrossModalAttentionConv(6, 8, heads=2, num_relations=graph.num_relations)
    x = torch.randn(graph.num_nodes, 6)
    keep = torch.ones(graph.num_nodes, dtype=torch.bool)
    keep[graph.node_slices["visual"]] = False
    sub_index, sub_type = subgraph(keep, graph.edge_index, graph.edge_type, relabel_nodes=True)
    out = conv(x, graph, node_mask=keep)
    torch.testing.assert_close(out[keep], conv(x[keep], sub_index, sub_type))
    assert torch.equal(out[~keep], torch.zeros(5, 8))


def test_node_whose_neighbours_are_all_masked_gets_finite_values_and_gradients():
    graph = ws_cross_modal_graph({"a": 3, "b": 3}, k=2, beta=0.0)  # ring: node 1's neighbours are 0 and 2
    conv = CrossModalAttentionConv(4, 4, heads=2)
    x = torch.randn(6, 4, requires_grad=True)
    keep = torch.tensor([False, True, False, True, True, True])
    out = conv(x, graph, node_mask=keep)
    torch.testing.assert_close(out[1], conv.out.bias)  # no attention term, only the output bias
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in conv.parameters() if p.grad is not None)


def test_dropout_only_in_training(graph):
    conv = CrossModalAttentionConv(8, 8, heads=2, dropout=0.5)
    x = torch.randn(graph.num_nodes, 8)
    conv.eval()
    torch.testing.assert_close(conv(x, graph), conv(x, graph))
    conv.train()
    assert not torch.allclose(conv(x, graph), conv(x, graph))


def test_gradcheck_float64(graph):
    conv = CrossModalAttentionConv(3, 4, heads=2, num_relations=graph.num_relations).double()
    x = torch.randn(2, graph.num_nodes, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: conv(x, graph), (x,))
    params = dict(conv.named_parameters())

    def fn(*values):
        return torch.func.functional_call(conv, dict(zip(params, values)), (x.detach(), graph))

    assert torch.autograd.gradcheck(fn, tuple(p.detach().clone().requires_grad_() for p in params.values()))


def test_every_parameter_trains(graph):
    conv = CrossModalAttentionConv(6, 8, heads=2, num_relations=graph.num_relations)
    conv(torch.randn(2, graph.num_nodes, 6), graph).square().sum().backward()
    assert_every_parameter_trains(conv)


def test_repr(graph):
    assert repr(CrossModalAttentionConv(6, 8, heads=2)) == "CrossModalAttentionConv(6, 8, heads=2, num_relations=None, fuse=True)"


def test_errors(graph):
    conv = CrossModalAttentionConv(6, 8, heads=2, num_relations=graph.num_relations)
    x = torch.randn(graph.num_nodes, 6)
    with pytest.raises(ValueError, match=r"out_channels=8 must be divisible by heads=3"):
        CrossModalAttentionConv(6, 8, heads=3)
    with pytest.raises(ValueError, match=r"CrossModalAttentionConv: edge_type is required with relation embeddings"):
        conv(x, graph.edge_index)
    with pytest.raises(ValueError, match=r"CrossModalAttentionConv: x must have shape \[N, 6\] or \[B, N, 6\], got \[2, 3, 12, 6\]"):
        conv(torch.randn(2, 3, 12, 6), graph)
    with pytest.raises(TypeError, match=r"CrossModalAttentionConv: x must be floating point, got dtype torch.int64"):
        conv(torch.ones(12, 6, dtype=torch.long), graph)
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\), got 1.0"):
        CrossModalAttentionConv(6, 8, dropout=1.0)


def test_zero_one_edge_weights_equal_the_graph_without_those_edges(graph):
    conv = CrossModalAttentionConv(6, 8, heads=2, num_relations=graph.num_relations)
    x = torch.randn(2, graph.num_nodes, 6)
    keep = torch.rand(graph.edge_index.shape[1]) > 0.4
    out, (_, alpha) = conv(x, graph.edge_index, graph.edge_type, edge_weight=keep.float(), return_attention_weights=True)
    torch.testing.assert_close(out, conv(x, graph.edge_index[:, keep], graph.edge_type[keep]))
    assert torch.equal(alpha[:, ~keep], torch.zeros_like(alpha[:, ~keep]))


def test_edge_weight_gets_a_finite_gradient(graph):
    conv = CrossModalAttentionConv(6, 8, heads=2)
    weight = (torch.rand(graph.edge_index.shape[1]) > 0.5).float().requires_grad_()
    conv(torch.randn(graph.num_nodes, 6), graph, edge_weight=weight).square().sum().backward()
    assert torch.isfinite(weight.grad).all() and weight.grad.abs().sum() > 0

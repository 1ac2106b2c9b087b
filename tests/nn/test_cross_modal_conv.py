import pytest
import torch
from torch_geometric import EdgeIndex
from torch_geometric.utils import subgraph

from testing_helpers import assert_every_parameter_trains
from wsfusion.graphs import ws_cross_modal_graph
from wsfusion.nn import CrossModalConv


@pytest.fixture
def graph():
    return ws_cross_modal_graph({"visual": 5, "text": 4, "audio": 3}, k=4, beta=0.5, seed=1)


def reference(conv, x, edge_index, edge_type):
    """Node-by-node loop over incoming edges: the formula as written."""
    weights = conv.relation_weights()
    out = []
    for i in range(x.shape[0]):
        incoming = (edge_index[1] == i).nonzero().flatten()
        msgs = [x[edge_index[0, e]] @ weights[edge_type[e]] for e in incoming]
        agg = torch.stack(msgs).sum(0) if msgs else x.new_zeros(conv.out_channels)
        if conv.mean and msgs:
            agg = agg / len(msgs)
        if conv.root is not None:
            agg = agg + conv.root(x[i])
        if conv.bias is not None:
            agg = agg + conv.bias
        out.append(agg)
    return torch.stack(out)


def test_hand_checkable_ring():
    # Ring 0-1-2-3-0 (k=2, beta=0); nodes 0,1 are "a", nodes 2,3 are "b". Relation = src * 2 + dst.
    graph = ws_cross_modal_graph({"a": 2, "b": 2}, k=2, beta=0.0)
    conv = CrossModalConv(1, 1, num_relations=4, aggr="add", root_weight=False, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, 10.0, 100.0, 1000.0]).view(4, 1, 1))
    x = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    # node 0 (a) <- 1 (a, a->a: 1) and 3 (b, b->a: 100); node 1 (a) <- 0 (a->a) and 2 (b->a);
    # node 2 (b) <- 1 (a->b: 10) and 3 (b->b: 1000); node 3 (b) <- 2 (b->b) and 0 (a->b).
    expected = torch.tensor([[2 + 400.0], [1 + 300.0], [20 + 4000.0], [3000 + 10.0]])
    torch.testing.assert_close(conv(x, graph), expected)


@pytest.mark.parametrize("aggr", ["mean", "add"])
@pytest.mark.parametrize("num_bases", [None, 3])
@pytest.mark.parametrize("root_weight, bias", [(True, True), (False, False)])
def test_matches_the_reference_loop(graph, aggr, num_bases, root_weight, bias):
    conv = CrossModalConv(6, 5, graph.num_relations, num_bases=num_bases, aggr=aggr, root_weight=root_weight, bias=bias)
    if bias:
        torch.nn.init.normal_(conv.bias)
    x = torch.randn(graph.num_nodes, 6)
    torch.testing.assert_close(conv(x, graph), reference(conv, x, graph.edge_index, graph.edge_type))


def test_every_input_form_gives_the_same_output(graph):
    conv = CrossModalConv(6, 5, graph.num_relations)
    x = torch.randn(3, graph.num_nodes, 6)
    per_sample = torch.stack([conv(x[b], graph.edge_index, graph.edge_type) for b in range(3)])
    edge_index = EdgeIndex(graph.edge_index, sparse_size=(graph.num_nodes, graph.num_nodes))
    torch.testing.assert_close(conv(x, graph), per_sample)
    torch.testing.assert_close(conv(x, graph.edge_index, graph.edge_type), per_sample)
    torch.testing.assert_close(conv(x[1], edge_index, graph.edge_type), per_sample[1])


def test_relations_are_distinguished(graph):
    conv = CrossModalConv(4, 4, graph.num_relations, root_weight=False)
    x = torch.randn(graph.num_nodes, 4)
    same_relation = torch.zeros_like(graph.edge_type)
    assert not torch.allclose(conv(x, graph), conv(x, graph.edge_index, same_relation))


@pytest.mark.parametrize("aggr", ["mean", "add"])
def test_node_mask_equals_the_graph_without_those_nodes(graph, aggr):
    conv = CrossModalConv(6, 5, graph.num_relations, aggr=aggr)
    x = torch.randn(graph.num_nodes, 6)
    keep = torch.ones(graph.num_nodes, dtype=torch.bool)
    keep[graph.node_slices["text"]] = False
    sub_index, sub_type = subgraph(keep, graph.edge_index, graph.edge_type, relabel_nodes=True)
    out = conv(x, graph, node_mask=keep)
    torch.testing.assert_close(out[keep], conv(x[keep], sub_index, sub_type))
    assert torch.equal(out[~keep], torch.zeros(4, 5))


def test_per_sample_node_mask(graph):
    conv = CrossModalConv(6, 5, graph.num_relations)
    x = torch.randn(2, graph.num_nodes, 6)
    mask = torch.ones(2, graph.num_nodes, dtype=torch.bool)
    mask[1, graph.node_slices["audio"]] = False
    out = conv(x, graph, node_mask=mask)
    torch.testing.assert_close(out[0], conv(x[0], graph))
    torch.testing.assert_close(out[1], conv(x[1], graph, node_mask=mask[1]))


def test_gradcheck_float64(graph):
    conv = CrossModalConv(3, 2, graph.num_relations, num_bases=2).double()
    x = torch.randn(2, graph.num_nodes, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: conv(x, graph), (x,))
    params = dict(conv.named_parameters())

    def fn(*values):
        return torch.func.functional_call(conv, dict(zip(params, values)), (x.detach(), graph))

    assert torch.autograd.gradcheck(fn, tuple(p.detach().clone().requires_grad_() for p in params.values()))


def test_every_parameter_trains(graph):
    conv = CrossModalConv(6, 5, graph.num_relations, num_bases=2)
    conv(torch.randn(2, graph.num_nodes, 6), graph).square().sum().backward()
    assert_every_parameter_trains(conv)


def test_reset_parameters_and_repr(graph):
    conv = CrossModalConv(6, 5, graph.num_relations, num_bases=2)
    before = conv.weight.detach().clone()
    conv.reset_parameters()
    assert not torch.equal(before, conv.weight)
    assert repr(conv) == "CrossModalConv(6, 5, num_relations=9, num_bases=2, aggr=mean, fuse=True)"


def test_errors(graph):
    conv = CrossModalConv(6, 5, graph.num_relations)
    x = torch.randn(graph.num_nodes, 6)
    with pytest.raises(ValueError, match=r"CrossModalConv: x must have shape \[N, 6\] or \[B, N, 6\], got \[12, 5\]"):
        conv(torch.randn(12, 5), graph)
    with pytest.raises(ValueError, match=r"CrossModalConv: edge_type is required"):
        conv(x, graph.edge_index)
    with pytest.raises(ValueError, match=r"CrossModalConv: edge_type has relation 9 but num_relations=9"):
        conv(x, graph.edge_index, graph.edge_type + 9 - graph.edge_type.max())
    with pytest.raises(ValueError, match=r"CrossModalConv: edge_index must be a LongTensor of shape \[2, E\] or a CrossModalGraph, got \[3, 4\]"):
        conv(x, torch.zeros(3, 4, dtype=torch.long), graph.edge_type)
    with pytest.raises(ValueError, match=r"CrossModalConv: edge_index refers to nodes outside \[0, 11\) \(x has 11 nodes\)"):
        conv(x[:11], graph.edge_index, graph.edge_type)
    with pytest.raises(ValueError, match=r"CrossModalConv: the graph has 12 nodes but x has 11"):
        conv(x[:11], graph)
    with pytest.raises(ValueError, match=r"CrossModalConv: node_mask must be a bool tensor of shape \[12\], got \[11\] torch.bool"):
        conv(x, graph, node_mask=torch.ones(11, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"aggr must be 'mean' or 'add', got 'max'"):
        CrossModalConv(6, 5, 9, aggr="max")


@pytest.mark.parametrize("aggr", ["mean", "add"])
def test_zero_one_edge_weights_equal_the_graph_without_those_edges(graph, aggr):
    conv = CrossModalConv(6, 5, graph.num_relations, aggr=aggr)
    x = torch.randn(2, graph.num_nodes, 6)
    keep = torch.rand(graph.edge_index.shape[1]) > 0.4
    out = conv(x, graph.edge_index, graph.edge_type, edge_weight=keep.float())
    torch.testing.assert_close(out, conv(x, graph.edge_index[:, keep], graph.edge_type[keep]))


def test_edge_weight_gets_a_gradient_and_is_checked(graph):
    conv = CrossModalConv(6, 5, graph.num_relations)
    weight = torch.rand(graph.edge_index.shape[1], requires_grad=True)
    conv(torch.randn(graph.num_nodes, 6), graph, edge_weight=weight).square().sum().backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"CrossModalConv: edge_weight must be a floating-point tensor of shape \[E\] = \[48\], got \[47\]"):
        conv(torch.randn(graph.num_nodes, 6), graph, edge_weight=torch.ones(47))


@pytest.mark.parametrize("aggr", ["mean", "add"])
def test_aggr_reports_what_was_asked_while_pyg_sums_the_messages(aggr):
    conv = CrossModalConv(4, 3, 4, aggr=aggr)
    assert conv.aggr == aggr and conv.mean == (aggr == "mean")
    assert type(conv.aggr_module).__name__ == "SumAggregation"  # the division by the count follows it
    assert f"aggr={aggr}" in repr(conv)


def test_our_mean_is_over_all_incoming_edges_not_rgcnconvs_per_relation_mean():
    # Node 0 receives from 1 (relation 0) and from 2 and 3 (relation 1): ours divides the sum of the three
    # messages by 3, RGCNConv(aggr="mean") adds the mean of relation 0 (one edge) to the mean of relation 1.
    from torch_geometric.nn import RGCNConv

    torch.manual_seed(0)
    edge_index = torch.tensor([[1, 2, 3], [0, 0, 0]])
    edge_type = torch.tensor([0, 1, 1])
    x = torch.randn(4, 2, dtype=torch.float64)
    ours = CrossModalConv(2, 2, 2, aggr="mean", root_weight=False, bias=False).double()
    pyg = RGCNConv(2, 2, 2, aggr="mean", root_weight=False, bias=False).double()
    with torch.no_grad():
        pyg.weight.copy_(ours.weight)
    w = ours.weight
    messages = torch.stack([x[1] @ w[0], x[2] @ w[1], x[3] @ w[1]])
    torch.testing.assert_close(ours(x, edge_index, edge_type)[0], messages.sum(0) / 3)
    torch.testing.assert_close(pyg(x, edge_index, edge_type)[0], messages[0] + messages[1:].mean(0))
    assert not torch.allclose(ours(x, edge_index, edge_type)[0], pyg(x, edge_index, edge_type)[0])
    one_relation = torch.tensor([1, 1, 1])  # every edge of the target has one relation: the means agree
    torch.testing.assert_close(ours(x, edge_index, one_relation), pyg(x, edge_index, one_relation))

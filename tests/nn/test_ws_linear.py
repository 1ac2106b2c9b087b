import pytest
import torch
import torch.nn.functional as F
from torch_geometric.nn import MessagePassing

from testing_helpers import assert_every_parameter_trains
from wsfusion.graphs import ws_cross_modal_graph
from wsfusion.nn import MaskedLinear, WSLinear


@pytest.fixture
def graph():
    return ws_cross_modal_graph({"visual": 6, "text": 5, "audio": 4}, k=4, beta=0.4, seed=3)


def test_is_a_message_passing_layer_with_one_weight_per_edge(graph):
    layer = WSLinear(graph)
    assert isinstance(layer, MessagePassing)
    assert layer.weight.shape == (graph.edge_index.shape[1],)
    assert layer.bias is None
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    assert repr(layer) == f"WSLinear(num_nodes=15, num_edges={graph.edge_index.shape[1]}, bias=False, fuse=True)"


def test_hand_checkable_path_graph():
    # Ring of 5 nodes, k=2, beta=0: edges i <-> i+1. out[t] = w(t-1 -> t) x[t-1] + w(t+1 -> t) x[t+1].
    graph = ws_cross_modal_graph({"a": 3, "b": 2}, k=2, beta=0.0)
    layer = WSLinear(graph)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(1.0, layer.weight.numel() + 1))
    src, dst = graph.edge_index
    x = torch.tensor([1.0, 10.0, 100.0, 1000.0, 10000.0])
    expected = torch.zeros(5)
    for e in range(src.numel()):
        expected[dst[e]] += (e + 1) * x[src[e]]
    torch.testing.assert_close(layer(x), expected)
    # Node 0's neighbours on the ring are 1 and 4.
    assert set(src[dst == 0].tolist()) == {1, 4}


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("shape", [(15,), (7, 15), (2, 3, 15)])
def test_equals_the_masked_dense_layer(graph, fused, shape):
    dense = MaskedLinear(graph, bias=True)
    with torch.no_grad():
        dense.bias.normal_()
    sparse = WSLinear.from_dense(dense.weight.detach(), graph, bias=dense.bias.detach(), fuse=fused)
    x = torch.randn(*shape)
    torch.testing.assert_close(sparse(x), dense(x))
    torch.testing.assert_close(sparse(x), F.linear(x, dense.weight * dense.mask, dense.bias))


@pytest.mark.parametrize("fused", [True, False])
def test_gradients_equal_the_dense_layer(graph, fused):
    dense = MaskedLinear(graph, bias=True).double()
    sparse = WSLinear.from_dense(dense.weight.detach(), graph, bias=dense.bias.detach(), fuse=fused)
    x1 = torch.randn(4, 15, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    upstream = torch.randn(4, 15, dtype=torch.float64)
    (dense(x1) * upstream).sum().backward()
    (sparse(x2) * upstream).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad)
    src, dst = graph.edge_index
    torch.testing.assert_close(sparse.weight.grad, dense.weight.grad[dst, src])
    torch.testing.assert_close(sparse.bias.grad, dense.bias.grad)
    # The dense gradient off the graph is exactly zero: nothing is lost by storing edges only.
    off = dense.weight.grad.clone()
    off[dst, src] = 0
    assert torch.count_nonzero(off) == 0


def test_fused_and_message_passing_paths_agree(graph):
    fused = WSLinear(graph, bias=True)
    with torch.no_grad():
        fused.bias.normal_()
    reference = WSLinear(graph, bias=True, fuse=False)
    reference.load_state_dict(fused.state_dict())
    x = torch.randn(6, 15, requires_grad=True)
    xr = x.detach().clone().requires_grad_()
    torch.testing.assert_close(fused(x), reference(xr))
    fused(x).square().sum().backward()
    reference(xr).square().sum().backward()
    torch.testing.assert_close(x.grad, xr.grad)
    torch.testing.assert_close(fused.weight.grad, reference.weight.grad)


@pytest.mark.parametrize("fused", [True, False])
def test_gradcheck_float64(graph, fused):
    layer = WSLinear(graph, bias=True, fuse=fused).double()
    weight = layer.weight.detach().clone().requires_grad_()
    bias = torch.randn(15, dtype=torch.float64, requires_grad=True)
    x = torch.randn(3, 15, dtype=torch.float64, requires_grad=True)

    def fn(weight, bias, x):
        return torch.func.functional_call(layer, {"weight": weight, "bias": bias}, (x,))

    assert torch.autograd.gradcheck(fn, (weight, bias, x))


def test_self_loops_graph(graph):
    looped = ws_cross_modal_graph({"visual": 6, "text": 5, "audio": 4}, k=4, beta=0.4, seed=3, self_loops=True)
    dense = MaskedLinear(looped)
    sparse = WSLinear.from_dense(dense.weight.detach(), looped, bias=dense.bias.detach())
    x = torch.randn(3, 15)
    torch.testing.assert_close(sparse(x), dense(x))


def test_dense_round_trip(graph):
    layer = WSLinear(graph)
    again = WSLinear.from_dense(layer.to_dense(), graph)
    assert torch.equal(again.weight, layer.weight)
    mask = graph.to_dense_mask()
    assert torch.equal(layer.to_dense() != 0, mask != 0)


def test_from_dense_drops_entries_off_the_graph(graph):
    weight = torch.randn(15, 15)
    layer = WSLinear.from_dense(weight, graph)
    torch.testing.assert_close(layer.to_dense(), weight * graph.to_dense_mask())


def test_init_keeps_unit_scale_for_the_in_degree():
    graph = ws_cross_modal_graph({"a": 2048, "b": 2048}, k=8, beta=0.3)
    x = torch.randn(64, 4096)
    out = WSLinear(graph)(x)
    assert 0.9 < out.var().item() < 1.1
    assert out.abs().mean() > 0.5  # not the sqrt(N / k) shrinkage of nn.Linear's fan-in rule


def test_every_parameter_trains_and_is_deterministic(graph):
    torch.manual_seed(5)
    a = WSLinear(graph, bias=True)
    torch.manual_seed(5)
    b = WSLinear(graph, bias=True)
    assert torch.equal(a.weight, b.weight)
    a(torch.randn(3, 15)).square().sum().backward()
    assert_every_parameter_trains(a)


def test_input_errors(graph):
    layer = WSLinear(graph)
    with pytest.raises(ValueError, match=r"WSLinear input must have shape \[\.\.\., 15\] \(one entry per graph node\), got \[4, 14\]"):
        layer(torch.randn(4, 14))
    with pytest.raises(TypeError, match=r"WSLinear input must be floating point, got dtype torch.int64"):
        layer(torch.ones(4, 15, dtype=torch.long))
    with pytest.raises(ValueError, match=r"from_dense needs a weight of shape \[15, 15\] \(target, source\), got \[15, 14\]"):
        WSLinear.from_dense(torch.randn(15, 14), graph)
    with pytest.raises(ValueError, match=r"from_dense needs a bias of shape \[15\], got \[14\]"):
        WSLinear.from_dense(torch.randn(15, 15), graph, bias=torch.randn(14))
    with pytest.raises(TypeError, match=r"WSLinear needs a CrossModalGraph, got Tensor"):
        WSLinear(graph.edge_index)


def test_state_dict_holds_the_weights_and_the_edge_set(graph):
    layer = WSLinear(graph, bias=True)
    assert set(layer.state_dict()) == {"weight", "bias", "edge_index"}
    other = WSLinear(graph, bias=True)
    other.load_state_dict(layer.state_dict())
    x = torch.randn(2, 15)
    assert torch.equal(other(x), layer(x))


@pytest.mark.parametrize("grow", [0, 4])
def test_a_rewired_layer_saved_and_loaded_into_a_fresh_one_computes_the_same(graph, grow):
    from wsfusion.topology import rewire_

    layer = WSLinear(graph, bias=True)
    ei = layer.edge_index
    # Drop the two edges 0 <-> 1 and grow 3 <-> 10 (plus, with grow=4, 4 <-> 12: the count changes).
    keep = ~(((ei[0] == 0) & (ei[1] == 1)) | ((ei[0] == 1) & (ei[1] == 0)))
    new = [[3, 10], [10, 3]] + ([[4, 12], [12, 4]] if grow else [])
    rewire_(layer, torch.cat([ei[:, keep], torch.tensor(new).t()], dim=1))
    with torch.no_grad():
        layer.weight.normal_()
    fresh = WSLinear(graph, bias=True)
    fresh.load_state_dict(layer.state_dict())
    assert torch.equal(fresh.edge_index, layer.edge_index) and fresh.graph == layer.graph
    assert fresh.structure.crow.tolist() == layer.structure.crow.tolist()
    x = torch.randn(3, 15)
    assert torch.equal(fresh(x), layer(x))
    assert torch.equal(fresh.to_dense(), layer.to_dense())


def test_a_state_dict_without_the_edge_set_loads_onto_the_current_edges(graph):
    layer = WSLinear(graph, bias=True)
    old_style = {k: v for k, v in layer.state_dict().items() if k != "edge_index"}
    fresh = WSLinear(graph, bias=True)
    fresh.load_state_dict(old_style)
    x = torch.randn(2, 15)
    assert torch.equal(fresh(x), layer(x))


def test_set_edge_index_checks_the_edge_count(graph):
    layer = WSLinear(graph)
    with pytest.raises(ValueError, match=r"set_edge_index needs as many edges as the layer has weights \(60\), got 58"):
        layer.set_edge_index(layer.edge_index[:, 2:])


@pytest.mark.parametrize("shape", [(256, 192), (192, 256), (5, 16), (7, 9)])
def test_node_major_copies_into_contiguous_memory_only_when_needed(shape):
    from wsfusion.nn._sparse import node_major

    x = torch.randn(*shape)
    t = node_major(x)
    assert t.is_contiguous() and torch.equal(t, x.t()) and t.data_ptr() != x.data_ptr()
    view = t.t()  # already node-major memory: no copy
    assert node_major(view).data_ptr() == t.data_ptr()


def test_stacked_layers_keep_node_major_memory(graph):
    first, second = WSLinear(graph, bias=True), WSLinear(graph)
    x = torch.randn(4, 15)
    h = torch.relu(first(x))
    assert h.t().is_contiguous()  # a transposed view of node-major memory
    torch.testing.assert_close(second(h), second(h.contiguous()))


@pytest.mark.parametrize("fused", [True, False])
def test_directed_graph_pins_the_orientation_against_the_dense_masked_layer(graph, fused):
    # A CrossModalGraph is undirected, so its mask is symmetric and cannot tell mask[t, s] from
    # mask[s, t]. A directed graph can: keep only the edges s -> t with s < t. The dense masked layer
    # gets that directed mask, built here edge by edge with an edge s -> t at mask[t, s]; WSLinear gets
    # the kept edges' dense weights and zero on the reverse edges.
    n = graph.num_nodes
    src, dst = graph.edge_index
    kept = src < dst
    mask = torch.zeros(n, n, dtype=torch.float64)
    for s, t in graph.edge_index[:, kept].t().tolist():
        mask[t, s] = 1.0
    assert not torch.equal(mask, mask.t()) and mask.triu().count_nonzero() == 0  # directed: only t > s

    dense = MaskedLinear(graph, bias=True).double()
    with torch.no_grad():
        dense.mask.copy_(mask)
        dense.weight.normal_()  # every entry non-zero: only the mask decides what is used
        dense.bias.normal_()
    sparse = WSLinear(graph, bias=True, fuse=fused).double()
    with torch.no_grad():
        sparse.weight.copy_(dense.weight[dst, src] * kept)
        sparse.bias.copy_(dense.bias)

    x1 = torch.randn(5, n, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    expected = dense(x1)
    out = sparse(x2)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(expected, F.linear(x1, dense.weight * mask, dense.bias))
    # The other orientation is a different layer, so the comparison above can tell them apart.
    assert not torch.allclose(out, F.linear(x1, dense.weight * mask.t(), dense.bias))

    # A unit impulse at node s reaches exactly the targets of the kept edges s -> t, with weight W[t, s].
    impulse = sparse(torch.eye(n, dtype=torch.float64)) - sparse.bias
    for s in range(n):
        targets = dst[kept & (src == s)]
        assert set(impulse[s].nonzero().flatten().tolist()) == set(targets.tolist())
        torch.testing.assert_close(impulse[s, targets], dense.weight[targets, s].detach())
    torch.testing.assert_close(sparse.to_dense(), (dense.weight * mask).detach())

    upstream = torch.randn(5, n, dtype=torch.float64)
    (expected * upstream).sum().backward()
    (out * upstream).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad)
    # The kept edges' weight gradients sit at [target, source] of the dense gradient. (The reverse
    # edges' zero weights are still trainable in WSLinear, while the directed mask cuts them off.)
    torch.testing.assert_close(sparse.weight.grad[kept], dense.weight.grad[dst[kept], src[kept]])
    torch.testing.assert_close(sparse.bias.grad, dense.bias.grad)
    assert torch.count_nonzero(dense.weight.grad * (1 - mask)) == 0


# ---------------------------------------------------------------------------------------------
# fuse=True goes through message_and_aggregate (PyG's meaning of MessagePassing.fuse)
# ---------------------------------------------------------------------------------------------
def test_the_default_path_runs_message_and_aggregate(graph, monkeypatch):
    layer = WSLinear(graph, bias=True)
    reference = WSLinear(graph, bias=True, fuse=False)
    reference.load_state_dict(layer.state_dict())
    calls = []
    original = WSLinear.message_and_aggregate
    monkeypatch.setattr(WSLinear, "message_and_aggregate",
                        lambda self, *args: calls.append(args[1].shape) or original(self, *args))
    x = torch.randn(4, 3, 15)
    out = layer(x)
    assert calls == [torch.Size([15, 12])]  # node-major [N, B], as propagate passes it with node_dim=0
    torch.testing.assert_close(out, reference(x))


def test_propagate_over_adj_t_runs_message_and_aggregate_and_equals_the_message_path(graph):
    layer = WSLinear(graph).double()
    x_nodes = torch.randn(15, 6, dtype=torch.float64)  # [N, B]
    seen = []
    layer.register_message_and_aggregate_forward_hook(lambda module, inputs, out: seen.append(out.shape))
    fused = layer.propagate(layer.adj_t(), x=x_nodes, edge_weight=layer.weight)
    assert seen == [torch.Size([15, 6])]
    messages = layer.propagate(layer.edge_index, x=x_nodes, edge_weight=layer.weight, size=(15, 15))
    torch.testing.assert_close(fused, messages)
    torch.testing.assert_close(fused, layer.to_dense() @ x_nodes)


def test_a_message_and_aggregate_hook_fires_on_the_layer_call(graph):
    layer = WSLinear(graph, bias=True)
    x = torch.randn(3, 15)
    plain = layer(x)
    seen = []
    layer.register_message_and_aggregate_forward_hook(lambda module, inputs, out: seen.append(out.shape))
    torch.testing.assert_close(layer(x), plain)
    assert seen == [torch.Size([15, 3])]


def test_pygs_fuse_false_sends_the_layer_down_the_message_path(graph, monkeypatch):
    layer = WSLinear(graph)
    assert layer.fuse is True and WSLinear(graph, fuse=False).fuse is False
    x = torch.randn(3, 15)
    expected = layer(x)
    layer.fuse = False  # what PyG's to_hetero_with_bases does to disable message_and_aggregate
    monkeypatch.setattr(WSLinear, "message_and_aggregate", lambda *a: pytest.fail("fuse=False ran message_and_aggregate"))
    torch.testing.assert_close(layer(x), expected)


def test_message_and_aggregate_refuses_another_edge_set(graph):
    layer = WSLinear(graph)
    other = WSLinear(ws_cross_modal_graph({"visual": 5, "text": 4, "audio": 6}, k=2, beta=0.5, seed=3))
    with pytest.raises(ValueError, match=r"adj_t must hold the layer's own edges"):
        layer.message_and_aggregate(other.adj_t(), torch.randn(15, 2), layer.weight)
    with pytest.raises(ValueError, match=r"needs the layer's adj_t \(a sparse \[15, 15\] tensor"):
        layer.message_and_aggregate(torch.ones(15, 15), torch.randn(15, 2), layer.weight)

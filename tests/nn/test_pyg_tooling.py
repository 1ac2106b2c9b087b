"""The convs with PyG's own tooling on the default (fused) path: ``Explainer`` (GNNExplainer edge
masks), propagate hooks, bipartite ``(x_src, x_dst)`` input inside ``HeteroConv`` over
``CrossModalGraph.to_hetero()``; and whole-model saving at any point in training."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from torch import nn
from torch_geometric.explain import Explainer, GNNExplainer
from torch_geometric.nn import HeteroConv

from wsfusion.fusion import build
from wsfusion.graphs import ws_cross_modal_graph
from wsfusion.nn import CrossModalAttentionConv, CrossModalConv, WSLinear

GRAPH = ws_cross_modal_graph({"visual": 4, "text": 3, "audio": 3}, k=4, beta=0.3, seed=0)
N = GRAPH.num_nodes


class TwoConvs(nn.Module):
    """A node classifier made of both convs, called as PyG models are: ``(x, edge_index, **kwargs)``."""

    def __init__(self, fuse: bool) -> None:
        super().__init__()
        self.rgcn = CrossModalConv(5, 8, GRAPH.num_relations, fuse=fuse)
        self.attention = CrossModalAttentionConv(8, 4, heads=2, num_relations=GRAPH.num_relations, fuse=fuse)

    def forward(self, x, edge_index, edge_type):
        return self.attention(self.rgcn(x, edge_index, edge_type).relu(), edge_index, edge_type)


def explain(model: nn.Module, x, index: int):
    explainer = Explainer(
        model, algorithm=GNNExplainer(epochs=20), explanation_type="model", node_mask_type="attributes",
        edge_mask_type="object",
        model_config=dict(mode="multiclass_classification", task_level="node", return_type="raw"),
    )
    torch.manual_seed(1)  # GNNExplainer's random mask initialisation
    return explainer(x, GRAPH.edge_index, edge_type=GRAPH.edge_type, index=index)


def test_explainer_on_the_default_path_equals_the_reference_path():
    fused = TwoConvs(fuse=True)
    reference = TwoConvs(fuse=False)
    reference.load_state_dict(fused.state_dict())
    x = torch.randn(N, 5)
    explanation = explain(fused, x, index=2)
    expected = explain(reference, x, index=2)
    assert explanation.edge_mask.shape == (GRAPH.edge_index.shape[1],)
    assert explanation.edge_mask.abs().sum() > 0  # gradients reached the edge mask
    torch.testing.assert_close(explanation.edge_mask, expected.edge_mask)
    torch.testing.assert_close(explanation.node_mask, expected.node_mask)
    # Outside explain mode the layers are back on the fused path (and give the same output).
    assert fused.rgcn.explain in (None, False)
    torch.testing.assert_close(fused(x, GRAPH.edge_index, GRAPH.edge_type), reference(x, GRAPH.edge_index, GRAPH.edge_type))


@pytest.mark.parametrize("conv", [CrossModalConv(5, 6, GRAPH.num_relations), CrossModalAttentionConv(5, 6, heads=2)], ids=type)
def test_propagate_hooks_fire_on_the_default_path(conv):
    x = torch.randn(2, N, 5)
    fused_out = conv(x, GRAPH)
    seen = []
    handle = conv.register_propagate_forward_hook(lambda module, inputs, out: seen.append(out.shape))
    hooked_out = conv(x, GRAPH)
    assert len(seen) == 1
    torch.testing.assert_close(hooked_out, fused_out)
    handle.remove()
    conv(x, GRAPH)
    assert len(seen) == 1


def test_ws_linear_message_hooks_fire():
    layer = WSLinear(GRAPH)
    x = torch.randn(3, N)
    fused_out = layer(x)
    seen = []
    layer.register_message_forward_hook(lambda module, inputs, out: seen.append(out.shape))
    torch.testing.assert_close(layer(x), fused_out)
    assert seen == [torch.Size([GRAPH.edge_index.shape[1], 3])]


# ---------------------------------------------------------------------------------------------
# bipartite input and HeteroConv
# ---------------------------------------------------------------------------------------------
def hetero_inputs(batch: int | None = None):
    hetero = GRAPH.to_hetero()
    shape = (lambda n: (n, 5)) if batch is None else (lambda n: (batch, n, 5))
    x = torch.randn(*shape(N))
    x_dict = {m: x[..., GRAPH.node_slices[m], :] for m in GRAPH.modalities}
    return hetero, x, x_dict


@pytest.mark.parametrize("fused", [True, False])
def test_rgcn_inside_hetero_conv_equals_the_homogeneous_layer(fused):
    hetero, x, x_dict = hetero_inputs()
    homogeneous = CrossModalConv(5, 6, GRAPH.num_relations, aggr="add", root_weight=False, bias=False, fuse=fused)
    names = GRAPH.relation_names if hasattr(GRAPH, "relation_names") else None
    convs = {}
    for edge_type in hetero.edge_types:
        src, _, dst = edge_type
        relation = GRAPH.vocabulary.index(src) * len(GRAPH.vocabulary) + GRAPH.vocabulary.index(dst)
        conv = CrossModalConv(5, 6, 1, aggr="add", root_weight=False, bias=False, fuse=fused)
        with torch.no_grad():
            conv.weight.copy_(homogeneous.weight[relation : relation + 1])
        convs[edge_type] = conv
    assert names is None or len(names) == GRAPH.num_relations
    out = HeteroConv(convs, aggr="sum")(x_dict, hetero.edge_index_dict)
    expected = homogeneous(x, GRAPH)
    for m in GRAPH.modalities:
        torch.testing.assert_close(out[m], expected[GRAPH.node_slices[m]])


def restrict(edge_type_name) -> torch.Tensor:
    """The homogeneous edges of one (source, target) modality pair."""
    src_m, _, dst_m = edge_type_name
    ei = GRAPH.edge_index
    keep = (GRAPH.node_modality[ei[0]] == GRAPH.vocabulary.index(src_m)) & (GRAPH.node_modality[ei[1]] == GRAPH.vocabulary.index(dst_m))
    return ei[:, keep]


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("batch", [None, 2])
def test_attention_bipartite_equals_the_homogeneous_layer_on_the_same_edges(fused, batch):
    hetero, x, x_dict = hetero_inputs(batch)
    conv = CrossModalAttentionConv(5, 6, heads=2, fuse=fused)
    for edge_type, edge_index in hetero.edge_index_dict.items():
        src, _, dst = edge_type
        out = conv((x_dict[src], x_dict[dst]), edge_index)
        expected = conv(x, restrict(edge_type))[..., GRAPH.node_slices[dst], :]
        torch.testing.assert_close(out, expected)
    # and inside HeteroConv, where the per-type outputs are summed
    convs = {t: conv for t in hetero.edge_types}
    out = HeteroConv(convs, aggr="sum")(x_dict, hetero.edge_index_dict)
    for m in GRAPH.modalities:
        expected = sum(conv(x, restrict(t))[..., GRAPH.node_slices[m], :] for t in hetero.edge_types if t[2] == m)
        torch.testing.assert_close(out[m], expected)


@pytest.mark.parametrize("conv", [CrossModalConv(5, 6, 1), CrossModalAttentionConv(5, 6, heads=2)], ids=type)
def test_bipartite_fused_equals_reference_with_masks_and_gradients(conv):
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 0, 4], [0, 0, 1, 1, 2, 2, 2]])
    x_src = torch.randn(2, 5, 5, dtype=torch.float64, requires_grad=True)
    x_dst = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    masks = (torch.tensor([[True, False, True, True, True], [True] * 5]), torch.tensor([[True, True, False], [True] * 3]))
    conv = conv.double()
    reference = copy.deepcopy(conv)
    reference.fuse = False
    outs = [c((x_src, x_dst), edge_index, node_mask=masks) for c in (conv, reference)]
    torch.testing.assert_close(outs[0], outs[1])
    assert outs[0].shape == (2, 3, 6)
    assert torch.all(outs[0][0, 2] == 0)  # a masked target outputs zero
    grads = [torch.autograd.grad(o.square().sum(), (x_src, x_dst)) for o in outs]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_bipartite_errors():
    conv = CrossModalAttentionConv(5, 6, heads=2)
    x_src, x_dst = torch.randn(5, 5), torch.randn(3, 5)
    with pytest.raises(ValueError, match=r"edge_index\[0\] \(sources\) refers to nodes outside \[0, 5\)"):
        conv((x_src, x_dst), torch.tensor([[5], [0]]))
    with pytest.raises(ValueError, match=r"edge_index\[1\] \(targets\) refers to nodes outside \[0, 3\)"):
        conv((x_src, x_dst), torch.tensor([[0], [3]]))
    with pytest.raises(ValueError, match=r"x_src and x_dst must have the same batch dimensions"):
        conv((torch.randn(2, 5, 5), x_dst), torch.tensor([[0], [0]]))
    with pytest.raises(ValueError, match=r"bipartite input \(x_src, x_dst\) needs a bipartite edge_index"):
        conv((x_src, x_dst), GRAPH)
    with pytest.raises(ValueError, match=r"x_dst must have shape \[N, 5\] or \[B, N, 5\], got \[3, 4\]"):
        conv((x_src, torch.randn(3, 4)), torch.tensor([[0], [0]]))
    with pytest.raises(ValueError, match=r"edge_type is required"):
        CrossModalConv(5, 6, 2)((x_src, x_dst), torch.tensor([[0], [0]]))


# ---------------------------------------------------------------------------------------------
# edge types, masks
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("make", [lambda f: CrossModalConv(5, 6, GRAPH.num_relations, fuse=f),
                                  lambda f: CrossModalAttentionConv(5, 6, heads=2, num_relations=GRAPH.num_relations, fuse=f)],
                         ids=["rgcn", "attention"])
def test_negative_edge_type_is_refused_on_both_paths(make, fused):
    edge_type = GRAPH.edge_type.clone()
    edge_type[3] = -1
    with pytest.raises(ValueError, match=rf"edge_type has relation -1; relation ids must be in \[0, {GRAPH.num_relations}\)"):
        make(fused)(torch.randn(N, 5), GRAPH.edge_index, edge_type)


def test_key_padding_mask_is_the_negated_node_mask():
    conv = CrossModalAttentionConv(5, 6, heads=2)
    x = torch.randn(2, N, 5)
    padding = torch.rand(2, N) < 0.3
    torch.testing.assert_close(conv(x, GRAPH, key_padding_mask=padding), conv(x, GRAPH, node_mask=~padding))
    with pytest.raises(ValueError, match="not both"):
        conv(x, GRAPH, node_mask=~padding, key_padding_mask=padding)
    with pytest.raises(ValueError, match=r"key_padding_mask must be a bool tensor \(True = padding\)"):
        conv(x, GRAPH, key_padding_mask=padding.float())


# ---------------------------------------------------------------------------------------------
# saving whole models at any point
# ---------------------------------------------------------------------------------------------
def modules_after_a_step():
    fusions = [
        (build("ws-gnn", {"visual": 8, "audio": 8}, 3, segments=2, node_dim=4, k=2),
         {"visual": torch.randn(2, 8), "audio": torch.randn(2, 8)}),
        (build("ws-transformer", {"visual": 8, "audio": 8}, 3, tokens={"visual": 4, "audio": 4}, node_dim=4,
               heads=2, k=2), {"visual": torch.randn(2, 4, 8), "audio": torch.randn(2, 4, 8)}),
    ]
    layers = [
        (CrossModalConv(5, 6, GRAPH.num_relations), (torch.randn(2, N, 5), GRAPH.edge_index, GRAPH.edge_type)),
        (CrossModalConv(5, 6, GRAPH.num_relations), (torch.randn(2, N, 5), GRAPH)),
        (CrossModalAttentionConv(5, 6, heads=2), (torch.randn(2, N, 5), GRAPH.edge_index)),
        (CrossModalAttentionConv(5, 6, heads=2), (torch.randn(2, N, 5), GRAPH)),
        (WSLinear(GRAPH, bias=True), (torch.randn(2, N),)),
    ]
    cases = [(m, (x,)) for m, x in fusions] + layers
    for module, args in cases:
        module.eval()
        module(*args).sum().backward()  # the caches are filled now
        yield module, args


@pytest.mark.parametrize("copy_with", ["pickle", "deepcopy", "torch.save"])
def test_whole_modules_copy_after_forward_and_compute_the_same(copy_with):
    for module, args in modules_after_a_step():
        if copy_with == "pickle":
            clone = pickle.loads(pickle.dumps(module))
        elif copy_with == "deepcopy":
            clone = copy.deepcopy(module)
        else:
            buffer = io.BytesIO()
            torch.save(module, buffer)
            buffer.seek(0)
            clone = torch.load(buffer, weights_only=False)  # a whole-model pickle is the user's own file
        for layer in clone.modules():
            if hasattr(layer, "_structure"):
                assert layer._structure.empty  # caches are not state
        torch.testing.assert_close(clone(*args), module(*args))


class Projected(torch.utils.data.Dataset):
    """A dataset that runs a (used) sparse layer on each sample: workers get it by pickling."""

    def __init__(self, layer: nn.Module) -> None:
        self.layer = layer
        self.x = torch.randn(4, N, 5)

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> torch.Tensor:
        with torch.no_grad():
            return self.layer(self.x[i], GRAPH)


def test_spawn_started_dataloader_workers_get_used_layers():
    layer = CrossModalAttentionConv(5, 6, heads=2)
    dataset = Projected(layer)
    expected = torch.stack([dataset[i] for i in range(4)])  # fills the layer's cache
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=1, multiprocessing_context="spawn")
    torch.testing.assert_close(next(iter(loader)), expected)


class HomogeneousNet(nn.Module):
    """A homogeneous model for PyG's ``to_hetero``: one relation per conv, as each edge type gets its own copy."""

    def __init__(self) -> None:
        super().__init__()
        self.rgcn = CrossModalConv(5, 8, 1)
        self.attention = CrossModalAttentionConv(8, 4, heads=2)

    def forward(self, x, edge_index):
        return self.attention(self.rgcn(x, edge_index).relu(), edge_index)


def test_to_hetero_model_runs_bipartite_convs_per_edge_type():
    from torch_geometric.nn import to_hetero

    hetero = GRAPH.to_hetero()
    model = to_hetero(HomogeneousNet(), hetero.metadata(), aggr="sum")
    x_dict = {m: torch.randn(hetero[m].num_nodes, 5) for m in hetero.node_types}
    out = model(x_dict, hetero.edge_index_dict)
    assert {m: tuple(o.shape) for m, o in out.items()} == {m: (GRAPH.node_counts[m], 4) for m in GRAPH.modalities}
    sum(o.square().sum() for o in out.values()).backward()
    # one copy of each conv per edge type, all reached by the gradient (a target with a single edge of
    # a type has softmax 1 there, so some attention query gradients are exactly zero: not checked)
    assert all(p.grad is not None for p in model.parameters())
    relation_weights = {name: p for name, p in model.named_parameters()
                        if name.startswith("rgcn.") and name.endswith(".weight") and ".root." not in name}
    assert len(relation_weights) == len(hetero.edge_types)
    assert all(p.grad.abs().sum() > 0 for p in relation_weights.values())


@pytest.mark.parametrize("conv", [CrossModalConv(5, 6, GRAPH.num_relations), CrossModalAttentionConv(5, 6, heads=2)], ids=type)
def test_fuse_is_pygs_attribute_and_false_runs_propagate(conv, monkeypatch):
    # The kernel-path flag is MessagePassing.fuse itself: PyG tooling that sets conv.fuse = False
    # (to_hetero_with_bases) gets the message path, as it would from any PyG layer.
    assert conv.fuse is True
    x = torch.randn(2, N, 5)
    expected = conv(x, GRAPH)
    calls = []
    original = type(conv).propagate
    monkeypatch.setattr(type(conv), "propagate", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    conv(x, GRAPH)
    assert calls == []
    conv.fuse = False
    torch.testing.assert_close(conv(x, GRAPH), expected)
    assert calls == [1]
    assert "fuse=False" in repr(conv)

"""The graph fusions: SparseWSFusion against its dense reference, WSGraphFusion and missing modalities."""

import re

import pytest
import torch
from torch_geometric.utils import subgraph

from testing_helpers import assert_every_parameter_trains
from wsfusion import fusion, graphs
from wsfusion.fusion import MaskedWSFusion, SparseWSFusion, WSGraphFusion
from wsfusion.graphs import ws_cross_modal_graph
from wsfusion.models import MultiModalNetwork
from wsfusion.nn import WSLinear

DIMS = {"visual": 12, "text": 8, "audio": 10}
TOKENS = {"visual": 4, "text": 5, "audio": 3}


@pytest.mark.parametrize("num_layers, self_loops", [(1, False), (2, True)])
def test_sparse_equals_dense_reference_in_value_and_gradient(num_layers, self_loops):
    options = dict(nodes_per_modality=6, k=4, beta=0.5, seed=2, num_layers=num_layers, self_loops=self_loops, dropout=0.0)
    dense = MaskedWSFusion(DIMS, 3, **options)
    sparse = SparseWSFusion(DIMS, 3, **options)
    state = {k: v for k, v in dense.state_dict().items() if not k.endswith(".mask")}
    for i, layer in enumerate(dense.layers):
        state[f"layers.{i}.weight"] = WSLinear.from_dense(layer.weight.detach(), dense.graph).weight.detach()
    sparse.load_state_dict(state)
    x = {m: torch.randn(4, d) for m, d in DIMS.items()}
    torch.testing.assert_close(sparse(x), dense(x))
    sparse(x).square().sum().backward()
    dense(x).square().sum().backward()
    src, dst = dense.graph.edge_index
    for d_layer, s_layer in zip(dense.layers, sparse.layers):
        torch.testing.assert_close(s_layer.weight.grad, d_layer.weight.grad[dst, src])
        torch.testing.assert_close(s_layer.bias.grad, d_layer.bias.grad)
    torch.testing.assert_close(sparse.proj["text"].weight.grad, dense.proj["text"].weight.grad)


def test_sparse_fusion_stores_only_the_edges():
    dims = {"visual": 256, "text": 256, "audio": 256}
    dense, sparse = MaskedWSFusion(dims, 10), SparseWSFusion(dims, 10)
    count = lambda m: sum(p.numel() for p in m.layers.parameters())  # noqa: E731
    assert count(dense) == 192 * 192 + 192
    assert count(sparse) == 1152 + 192  # 576 undirected edges, both directions, plus the bias


VARIANTS = [
    dict(conv="rgcn", readout="mean"),
    dict(conv="rgcn", readout="attention", num_bases=2),
    dict(conv="attention", readout="mean", heads=2),
    dict(conv="attention", readout="attention", heads=2),
]


def make_gnn(tokens: bool, **variant) -> WSGraphFusion:
    nodes = dict(tokens=TOKENS) if tokens else dict(segments=4)
    return WSGraphFusion(DIMS, 5, node_dim=8, k=4, beta=0.4, seed=1, dropout=0.0, allow_missing=True, **nodes, **variant)


def features(module, batch=3):
    if module.token_nodes:
        return {m: torch.randn(batch, TOKENS[m], d) for m, d in DIMS.items()}
    return {m: torch.randn(batch, d) for m, d in DIMS.items()}


def reference_without(module, x, missing):
    """Run the same layers on the graph without ``missing``'s nodes (PyG's subgraph), then read out."""
    batch = next(iter(x.values())).shape[0]
    nodes = module.nodes(x, batch)
    keep = module.node_modality != module.graph.modalities.index(missing)
    sub_index, sub_type = subgraph(keep, module.edge_index, module.edge_type, relabel_nodes=True)
    h = module.message_passing(nodes[:, keep], sub_index, sub_type, node_mask=None)
    full = nodes.new_zeros(nodes.shape).masked_scatter(keep[None, :, None].expand_as(nodes), h)
    return module.pool(full, keep.expand(batch, -1))


@pytest.mark.parametrize("tokens", [False, True], ids=["segments", "tokens"])
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"{v['conv']}-{v['readout']}")
def test_missing_modality_equals_the_graph_without_its_nodes(tokens, variant):
    module = make_gnn(tokens, **variant).eval()
    x = features(module)
    for missing in DIMS:
        absent = module({m: v for m, v in x.items() if m != missing})
        torch.testing.assert_close(absent, reference_without(module, x, missing))
        masked = module(x, mask={missing: torch.zeros(3, dtype=torch.bool)})
        torch.testing.assert_close(masked, absent)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"{v['conv']}-{v['readout']}")
def test_missing_modality_is_not_zero_filled(variant):
    module = make_gnn(False, **variant).eval()
    x = features(module)
    zero_filled = module({**x, "text": torch.zeros(3, 8)})
    removed = module(x, mask={"text": torch.zeros(3, dtype=torch.bool)})
    assert not torch.allclose(zero_filled, removed)


def test_per_sample_mask_matches_per_sample_removal():
    module = make_gnn(False, conv="attention", readout="mean", heads=2).eval()
    x = features(module, batch=4)
    present = torch.tensor([True, False, True, False])
    out = module(x, mask={"audio": present})
    torch.testing.assert_close(out[present], module({m: v[present] for m, v in x.items()}))
    without = module({m: v[~present] for m, v in x.items() if m != "audio"})
    torch.testing.assert_close(out[~present], without)


@pytest.mark.parametrize("tokens", [False, True], ids=["segments", "tokens"])
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"{v['conv']}-{v['readout']}")
def test_every_parameter_trains(tokens, variant):
    module = make_gnn(tokens, **variant)
    module(features(module)).square().sum().backward()
    assert_every_parameter_trains(module)


def test_message_passing_matters():
    """Changing one modality changes the other modalities' node states: fusion happens on the graph."""
    module = make_gnn(False, conv="rgcn", readout="mean").eval()
    x = features(module)
    batch = 3
    nodes = module.nodes(x, batch)
    before = module.message_passing(nodes, module.edge_index, module.edge_type, None)
    x2 = {**x, "audio": x["audio"] + 1.0}
    after = module.message_passing(module.nodes(x2, batch), module.edge_index, module.edge_type, None)
    visual = module.graph.node_slices["visual"]
    assert not torch.allclose(before[:, visual], after[:, visual])


def test_token_nodes_through_the_network_with_default_encoders():
    from wsfusion.encoders import default_encoders

    encoders = default_encoders(out_dim=32)
    gnn = fusion.build(
        "ws-gnn", {m: 32 for m in encoders}, 10, tokens={m: e.num_tokens for m, e in encoders.items()},
        conv="attention", node_dim=16, heads=2,
    )
    assert gnn.graph.num_nodes == 16 + 20 + 25
    model = MultiModalNetwork(encoders, gnn)
    x = {"visual": torch.randn(2, 3, 32, 32), "text": torch.randn(2, 20, 128), "audio": torch.randn(2, 1, 64, 100)}
    assert model(x).shape == (2, 10)


def test_given_graph_sets_the_node_counts():
    graph = ws_cross_modal_graph({"visual": 2, "text": 3, "audio": 4}, k=2, beta=0.0)
    module = WSGraphFusion(DIMS, 5, graph=graph, node_dim=4)
    assert module.proj["audio"].out_features == 16
    assert module(features(make_gnn(False))).shape == (3, 5)


def test_errors():
    with pytest.raises(ValueError, match=r"conv must be one of \('rgcn', 'attention'\), got 'gat'"):
        WSGraphFusion(DIMS, 5, conv="gat")
    with pytest.raises(ValueError, match=r"readout must be one of \('mean', 'attention'\), got 'max'"):
        WSGraphFusion(DIMS, 5, readout="max")
    with pytest.raises(ValueError, match=r"node counts are given for \['visual', 'text'\] but the modalities are \['visual', 'text', 'audio'\]"):
        WSGraphFusion(DIMS, 5, tokens={"visual": 4, "text": 5})
    module = make_gnn(True)
    x = features(module)
    with pytest.raises(ValueError, match=r"WSGraphFusion: 'text' must be a token sequence \[B, 5, 8\] \(the graph has 5 text nodes\), got \[3, 6, 8\]"):
        module({**x, "text": torch.randn(3, 6, 8)})
    with pytest.raises(ValueError, match=r"WSGraphFusion: 'text' must be a token sequence \[B, 5, 8\].*got \[3, 8\]"):
        module({**x, "text": torch.randn(3, 8)})


def test_sparse_fusion_with_a_learnable_topology_trains_beta():
    from wsfusion.topology import LearnableWSLinear

    module = fusion.build("ws-sparse", DIMS, 3, nodes_per_modality=8, k=4, topology="learnable",
                          topology_options={"per_pair": True})
    assert all(isinstance(layer, LearnableWSLinear) for layer in module.layers)
    module(features(make_gnn(False))).square().sum().backward()
    beta_grads = [p.grad for n, p in module.named_parameters() if "logit" in n or "beta" in n]
    assert beta_grads and all(g is not None and g.abs().sum() > 0 for g in beta_grads)


def test_topology_option_errors():
    names = re.escape(str(graphs.available()))
    with pytest.raises(ValueError, match=rf"MaskedWSFusion: topology must be one of {names} \(no 'learnable'"):
        MaskedWSFusion(DIMS, 3, topology="learnable")
    with pytest.raises(ValueError, match=rf"SparseWSFusion: topology must be one of {names[:-2]}, 'learnable'\), got 'x'"):
        SparseWSFusion(DIMS, 3, topology="x")
    with pytest.raises(ValueError, match=r"SparseWSFusion: topology='fixed' is now topology='ws'"):
        SparseWSFusion(DIMS, 3, topology="fixed")
    with pytest.raises(ValueError, match=r"WSGraphFusion: beta=0.5 shapes the 'ws' and 'learnable' topologies only"):
        WSGraphFusion(DIMS, 5, segments=4, k=2, topology="lattice", beta=0.5)
    with pytest.raises(ValueError, match=r"WSGraphFusion: give graph= or topology='random', not both"):
        WSGraphFusion(DIMS, 5, graph=graphs.ws_cross_modal_graph(dict.fromkeys(DIMS, 4), k=2), topology="random")
    with pytest.raises(ValueError, match=r"topology_options are the options of a 'learnable' graph or of another "
                                         r"registry topology .* the 'ws' graph takes the fusion's own k, beta"):
        SparseWSFusion(DIMS, 3, topology_options={"per_pair": True})
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'per_pair'"):
        SparseWSFusion(DIMS, 3, topology="random", topology_options={"per_pair": True})


def test_topology_options_reach_the_registry_builder():
    vocabulary = ("audio", "text", "visual", "depth")
    module = WSGraphFusion(DIMS, 5, segments=4, k=2, topology="random", topology_options={"vocabulary": vocabulary})
    assert module.graph.vocabulary == vocabulary
    assert module.graph == graphs.build("random", dict.fromkeys(DIMS, 4), 2, seed=0, vocabulary=vocabulary)


@pytest.mark.parametrize("conv", ["rgcn", "attention"])
def test_graph_fusion_with_a_learnable_topology_trains_beta(conv):
    module = WSGraphFusion(DIMS, 5, segments=6, node_dim=8, k=4, beta=0.3, conv=conv, heads=2, topology="learnable",
                           topology_options={"per_pair": True})
    module(features(make_gnn(False))).square().sum().backward()
    assert module.topology.beta_logit.grad is not None and module.topology.beta_logit.grad.abs().sum() > 0
    module.eval()
    x = features(make_gnn(False))
    torch.testing.assert_close(module(x), module(x))  # the evaluation graph is deterministic
    with pytest.raises(ValueError, match=r"WSGraphFusion: topology must be one of \(.*'learnable'\), got 'x'"):
        WSGraphFusion(DIMS, 5, topology="x")


@pytest.mark.parametrize("name", graphs.available())
@pytest.mark.parametrize("fusion_name", ["ws-sparse", "ws-gnn", "ws-transformer"])
def test_a_fusion_on_a_registry_topology_uses_that_graph(name, fusion_name):
    k = 4 if name != "bigbird" else 6
    nodes = dict.fromkeys(DIMS, 8)
    options = {"ws-sparse": {"nodes_per_modality": 8}, "ws-gnn": {"segments": 8},
               "ws-transformer": {"tokens": nodes}}[fusion_name]
    ws = {"order": "interleaved", "beta": 0.2} if name == "ws" else {}  # the fusions' own WS defaults differ
    module = fusion.build(fusion_name, DIMS, 3, k=k, seed=5, topology=name, **options, **ws)
    expected = graphs.build(name, nodes, k, seed=5, **ws)
    torch.testing.assert_close(module.graph.edge_index, expected.edge_index)
    if fusion_name != "ws-sparse":
        torch.testing.assert_close(module.edge_index, expected.edge_index)

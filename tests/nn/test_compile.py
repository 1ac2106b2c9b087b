"""``torch.compile`` with the default (inductor) backend: the sparse layers, the WS fusions and a
whole :class:`MultiModalNetwork` train for several steps in every calling style, equal to eager.

The CSR kernels are ``torch.library`` custom ops (``wsfusion::csr_spmm``, ``wsfusion::csr_sddmm``)
with fake implementations, so they sit inside the compiled graph. The convs resolve and
range-check their edges (and look up the cached index layout) outside it, which is one graph
break per conv call inside a larger model; :data:`MAX_GRAPH_BREAKS` pins the counts.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from testing_helpers import DEVICES
from wsfusion.encoders import AudioEncoder, TextEncoder, VisualEncoder
from wsfusion.fusion import build
from wsfusion.graphs import ws_cross_modal_graph
from wsfusion.models import MultiModalNetwork
from wsfusion.nn import CrossModalAttentionConv, CrossModalConv, WSLinear

GRAPH = ws_cross_modal_graph({"visual": 6, "audio": 6}, k=4, beta=0.3, seed=0)
N = GRAPH.num_nodes
BIPARTITE = torch.tensor([[0, 1, 2, 3, 4, 0], [0, 0, 1, 1, 2, 2]])  # 5 sources -> 3 targets


def network() -> MultiModalNetwork:
    encoders = {
        "visual": VisualEncoder(in_channels=1, image_size=8, out_dim=8, channels=(4, 4, 4), grid=2),
        "text": TextEncoder(in_dim=6, seq_len=5, out_dim=8, num_heads=2),
        "audio": AudioEncoder(n_freq=8, n_frames=12, out_dim=8, channels=(4, 4, 4)),
    }
    tokens = {m: e.num_tokens for m, e in encoders.items()}
    fusion = build("ws-transformer", {m: 8 for m in encoders}, 5, tokens=tokens, node_dim=8, heads=2, k=2)
    return MultiModalNetwork(encoders, fusion)


#: name -> () -> (module, args, kwargs); modules in training mode, dropout off so eager and compiled agree.
CASES = {
    "WSLinear": lambda: (WSLinear(GRAPH, bias=True), (torch.randn(4, N),), {}),
    "CrossModalConv-graph": lambda: (CrossModalConv(8, 8, GRAPH.num_relations), (torch.randn(3, N, 8), GRAPH), {}),
    "CrossModalConv-tensors": lambda: (CrossModalConv(8, 8, GRAPH.num_relations, num_bases=2),
                                       (torch.randn(N, 8), GRAPH.edge_index, GRAPH.edge_type), {}),
    "CrossModalConv-bipartite": lambda: (CrossModalConv(8, 8, 1), ((torch.randn(2, 5, 8), torch.randn(2, 3, 8)), BIPARTITE), {}),
    "CrossModalAttentionConv-graph": lambda: (CrossModalAttentionConv(8, 8, heads=2, num_relations=GRAPH.num_relations),
                                              (torch.randn(3, N, 8), GRAPH), {}),
    "CrossModalAttentionConv-tensors-mask": lambda: (
        CrossModalAttentionConv(8, 8, heads=2), (torch.randn(3, N, 8), GRAPH.edge_index),
        dict(node_mask=torch.rand(3, N) > 0.3, edge_weight=torch.rand(GRAPH.edge_index.shape[1]))),
    "CrossModalAttentionConv-bipartite": lambda: (CrossModalAttentionConv(8, 8, heads=2),
                                                  ((torch.randn(2, 5, 8), torch.randn(2, 3, 8)), BIPARTITE), {}),
    "ws-gnn": lambda: (build("ws-gnn", {"visual": 16, "audio": 16}, 10, segments=2, node_dim=8, k=2, dropout=0.0),
                       ({"visual": torch.randn(4, 16), "audio": torch.randn(4, 16)},), {}),
    "ws-transformer": lambda: (build("ws-transformer", {"visual": 16, "audio": 16}, 10, tokens={"visual": 6, "audio": 6},
                                     node_dim=8, heads=2, k=2, dropout=0.0),
                               ({"visual": torch.randn(4, 6, 16), "audio": torch.randn(4, 6, 16)},), {}),
    "MultiModalNetwork": lambda: (network(), ({"visual": torch.randn(3, 1, 8, 8), "text": torch.randn(3, 5, 6),
                                               "audio": torch.randn(3, 1, 8, 12)},), {}),
}

#: Graph breaks per call, measured; a test fails if they grow. One per conv call: the edges are
#: resolved and checked eagerly (tensor identities and a cached layout, not tensor math).
MAX_GRAPH_BREAKS = {name: 0 for name in CASES} | {"ws-gnn": 2, "ws-transformer": 2, "MultiModalNetwork": 3}


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def move(value, device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: move(v, device) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(move(v, device) for v in value)
    return value


def no_dropout(module: nn.Module) -> nn.Module:
    for m in module.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        elif isinstance(getattr(m, "dropout", None), float):  # attention dropout (MultiheadAttention, the convs)
            m.dropout = 0.0
    return module


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(CASES))
def test_inductor_trains_like_eager(name, device):
    torch.manual_seed(0)
    module, args, kwargs = CASES[name]()
    eager = no_dropout(module).to(device)
    args, kwargs = move(args, device), move(kwargs, device)
    compiled_module = copy.deepcopy(eager)
    compiled = torch.compile(compiled_module)  # inductor, the default backend
    optimisers = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (eager, compiled_module)]
    for _ in range(3):  # several steps: the second call is where cached state used to break
        outputs = []
        for model, optimiser in zip((eager, compiled), optimisers):
            optimiser.zero_grad()
            out = model(*args, **kwargs)
            out.square().mean().backward()
            optimiser.step()
            outputs.append(out.detach())
        torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-4, atol=1e-5)
        for p, q in zip(compiled_module.parameters(), eager.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(CASES))
def test_graph_breaks_do_not_grow(name):
    module, args, kwargs = CASES[name]()
    explanation = torch._dynamo.explain(no_dropout(module))(*args, **kwargs)
    assert explanation.graph_break_count <= MAX_GRAPH_BREAKS[name], [str(r.reason)[:200] for r in explanation.break_reasons]


@pytest.mark.parametrize("name", ["WSLinear", "CrossModalConv-graph", "CrossModalAttentionConv-graph"])
def test_the_sparse_kernels_are_inside_the_compiled_graph(name):
    module, args, kwargs = CASES[name]()
    explanation = torch._dynamo.explain(module)(*args, **kwargs)
    targets = {str(node.target) for graph in explanation.graphs for node in graph.graph.nodes}
    assert any("wsfusion.csr_" in t for t in targets), sorted(targets)

"""``torch.compile`` smoke test: the sparse layers and a WS fusion trace and run, forward and backward.

Graph breaks are allowed (the CSR kernels are opaque to dynamo); errors are not.
The ``aot_eager`` backend exercises dynamo and AOTAutograd (including the custom
autograd functions) without needing a C++ compiler, and the results must equal
eager mode.
"""

import pytest
import torch

from wsfusion.fusion import build
from wsfusion.graphs import ws_cross_modal_graph
from wsfusion.nn import CrossModalAttentionConv, CrossModalConv, WSLinear

GRAPH = ws_cross_modal_graph({"visual": 6, "audio": 6}, k=4, beta=0.3, seed=0)


def compiled_equals_eager(module: torch.nn.Module, *args, **kwargs) -> None:
    torch.manual_seed(0)
    eager_out = module(*args, **kwargs)
    eager_out.square().sum().backward()
    eager_grads = [p.grad.clone() for p in module.parameters()]
    module.zero_grad()
    compiled = torch.compile(module, backend="aot_eager")
    out = compiled(*args, **kwargs)
    out.square().sum().backward()
    torch.testing.assert_close(out, eager_out)
    for p, g in zip(module.parameters(), eager_grads):
        torch.testing.assert_close(p.grad, g)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_ws_linear_compiles():
    compiled_equals_eager(WSLinear(GRAPH, bias=True), torch.randn(4, 12))


@pytest.mark.parametrize("conv", ["rgcn", "attention"])
def test_convs_compile(conv):
    if conv == "rgcn":
        layer = CrossModalConv(8, 8, num_relations=GRAPH.num_relations)
    else:
        layer = CrossModalAttentionConv(8, 8, heads=2, num_relations=GRAPH.num_relations)
    compiled_equals_eager(layer.eval(), torch.randn(3, 12, 8), GRAPH.edge_index, GRAPH.edge_type)


def test_ws_gnn_compiles():
    fusion = build("ws-gnn", {"visual": 16, "audio": 16}, 10, segments=2, node_dim=8, k=2).eval()
    compiled_equals_eager(fusion, {"visual": torch.randn(4, 16), "audio": torch.randn(4, 16)})

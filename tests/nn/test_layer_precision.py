"""Mixed precision: every layer and fusion runs forward and backward under autocast and as a
half-precision module, within a stated tolerance of float32, with autocast's output dtypes.

The CSR kernels have no half-precision version on CPU, so they accumulate in float32 inside
and round the result back; everything else follows autocast's rules (a matmul's output in the
autocast dtype, as :class:`torch.nn.Linear`'s; softmax in float32).

Tolerances are relative errors of the whole output and of all parameter gradients flattened
into one vector (a parameter whose exact gradient is 0, such as the key bias of attention,
has only rounding noise, so per-parameter relative errors say nothing there).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

from testing_helpers import DEVICES
from wsfusion.graphs import CrossModalGraph, ws_cross_modal_graph
from wsfusion.nn import CrossModalAttentionConv, CrossModalConv, WSLinear

sys.path.insert(0, str(Path(__file__).parents[1] / "fusion"))
from test_fusion_common import NAMES, inputs, make  # noqa: E402

GRAPH = ws_cross_modal_graph({"visual": 6, "text": 5, "audio": 5}, k=4, beta=0.3, seed=0)
N = GRAPH.num_nodes
MASK = torch.rand(3, N) > 0.2

#: name -> () -> (module, args, kwargs)
LAYERS = {
    "WSLinear": lambda: (WSLinear(GRAPH, bias=True), (torch.randn(4, N),), {}),
    "WSLinear-reference": lambda: (WSLinear(GRAPH, bias=True, fuse=False), (torch.randn(4, N),), {}),
    "CrossModalConv": lambda: (CrossModalConv(8, 8, GRAPH.num_relations), (torch.randn(3, N, 8), GRAPH), {}),
    "CrossModalConv-bases-mask-weight": lambda: (
        CrossModalConv(8, 8, GRAPH.num_relations, num_bases=2), (torch.randn(3, N, 8), GRAPH),
        dict(node_mask=MASK, edge_weight=torch.rand(GRAPH.edge_index.shape[1]))),
    "CrossModalConv-reference": lambda: (CrossModalConv(8, 8, GRAPH.num_relations, fuse=False),
                                         (torch.randn(3, N, 8), GRAPH), {}),
    "CrossModalAttentionConv": lambda: (CrossModalAttentionConv(8, 8, heads=2, num_relations=GRAPH.num_relations),
                                        (torch.randn(3, N, 8), GRAPH), {}),
    "CrossModalAttentionConv-mask-weight": lambda: (
        CrossModalAttentionConv(8, 8, heads=2), (torch.randn(3, N, 8), GRAPH),
        dict(node_mask=MASK, edge_weight=torch.rand(GRAPH.edge_index.shape[1]))),
    "CrossModalAttentionConv-reference": lambda: (
        CrossModalAttentionConv(8, 8, heads=2, num_relations=GRAPH.num_relations, fuse=False),
        (torch.randn(3, N, 8), GRAPH), {}),
}

#: mode -> (max relative error of the output, of the gradients)
TOLERANCE = {"autocast-bf16": (0.03, 0.05), "autocast-fp16": (0.005, 0.01), "bf16": (0.03, 0.05), "fp16": (0.005, 0.01)}
HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}


def move(value, device, dtype=None):
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=dtype if dtype is not None and value.is_floating_point() else value.dtype)
    if isinstance(value, dict):
        return {k: move(v, device, dtype) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(move(v, device, dtype) for v in value)
    return value  # a CrossModalGraph: the layers copy its tensors to the features' device


def relative_error(value, reference) -> float:
    return float((value.detach().double() - reference.detach().double()).norm() / reference.detach().double().norm())


def run(module, args, kwargs, mode: str, device: str):
    """(output, flat parameter gradient) of ``sum(out^2)`` in ``mode`` (``"fp32"``, ``"autocast-*"``, ``"bf16"``, ``"fp16"``)."""
    module = copy.deepcopy(module).to(device)
    dtype = HALF.get(mode)
    if dtype is not None:
        module = module.to(dtype)
    args, kwargs = move(args, device, dtype), move(kwargs, device, dtype)
    if mode.startswith("autocast"):
        with torch.autocast(device, dtype=HALF[mode.split("-")[1]]):
            out = module(*args, **kwargs)
    else:
        out = module(*args, **kwargs)
    out.float().square().sum().backward()
    grads = torch.cat([p.grad.float().flatten() for p in module.parameters() if p.grad is not None])
    return out, grads


def expected_dtype(mode: str) -> torch.dtype:
    return HALF[mode.split("-")[-1]]


def check_against_fp32(module, args, kwargs, mode, device, check_dtype=True):
    module.eval()
    reference, reference_grads = run(module, args, kwargs, "fp32", device)
    out, grads = run(module, args, kwargs, mode, device)
    if check_dtype:  # as nn.Linear's under autocast, the module's dtype otherwise
        assert out.dtype == expected_dtype(mode)
    assert torch.isfinite(out).all() and torch.isfinite(grads).all()
    out_tol, grad_tol = TOLERANCE[mode]
    assert relative_error(out, reference) < out_tol
    assert relative_error(grads, reference_grads) < grad_tol
    return out, reference


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", list(TOLERANCE))
@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_in_half_precision_matches_float32(name, mode, device):
    module, args, kwargs = LAYERS[name]()
    check_against_fp32(module, args, kwargs, mode, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["autocast-bf16", "bf16", "fp16"])
@pytest.mark.parametrize("name", NAMES)
def test_fusion_in_half_precision_matches_float32(name, mode, device):
    module = make(name)
    # Under autocast a baseline's output dtype is its last op's (LateFusion averages in float32).
    out, reference = check_against_fp32(module, (inputs(module),), {}, mode, device, check_dtype=mode != "autocast-bf16")
    assert out.shape == reference.shape


def test_half_precision_is_not_silently_a_float32_copy():
    # The planted bug this guards against: a kernel that runs in float32 and returns float32
    # would pass the tolerance checks; the dtypes must follow autocast / the module.
    conv = CrossModalAttentionConv(8, 8, heads=2)
    x = torch.randn(2, N, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, (_, alpha) = conv(x, GRAPH, return_attention_weights=True)
    assert out.dtype == torch.bfloat16
    assert alpha.dtype == torch.float32  # softmax in float32, as autocast's softmax


def test_sparse_kernels_accumulate_in_float32():
    # bf16 sums of many terms drift; float32 accumulation keeps a wide node exact to bf16 rounding.
    degree = 512
    edge_index = torch.stack([torch.arange(1, degree + 1), torch.zeros(degree, dtype=torch.long)])
    graph = CrossModalGraph(edge_index, {"visual": degree + 1}, _validated=True)
    layer = WSLinear(graph).bfloat16()
    with torch.no_grad():
        layer.weight.fill_(1.0)
    x = torch.full((1, degree + 1), 1.0 + 2**-7, dtype=torch.bfloat16)  # exact in bf16
    exact = degree * (1.0 + 2**-7)
    assert float(layer(x)[0, 0]) == pytest.approx(exact, rel=2**-8)

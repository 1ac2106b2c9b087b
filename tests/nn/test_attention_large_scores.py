"""Large attention scores: the fused CrossModalAttentionConv stays finite and equals dense masked attention.

With ``q·k / sqrt(d)`` in the hundreds, ``exp(score)`` overflows float32 (above ~88.7), so a softmax
that does not subtract each target's maximum score first gives ``inf / inf = NaN``. Normal-sized
scores cannot tell the two apart; these can. The reference is written out independently: the conv's
own projections, a dense ``[H, N, N]`` score matrix masked to the graph, softmax in float64.
"""

import math

import pytest
import torch

from wsfusion.graphs import ws_cross_modal_graph
from wsfusion.nn import CrossModalAttentionConv

GRAPH = ws_cross_modal_graph({"visual": 6, "text": 5, "audio": 4}, k=4, beta=0.4, seed=3)
N, F, HEADS = GRAPH.num_nodes, 8, 2


def dense_attention(conv: CrossModalAttentionConv, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(out [B, N, F], scores [B, H, N, N])`` in float64: masked softmax over each target's graph neighbours."""
    d = conv.head_dim
    lin = {name: getattr(conv, name) for name in ("query", "key", "value", "out")}
    w = {name: (m.weight.double(), m.bias.double()) for name, m in lin.items()}
    x = x.double()

    def heads(name):  # [B, H, N, d]
        weight, bias = w[name]
        return (x @ weight.T + bias).view(x.shape[0], N, HEADS, d).transpose(1, 2)

    q, k, v = heads("query"), heads("key"), heads("value")
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)  # [B, H, target, source]
    mask = GRAPH.to_dense_mask().bool()  # mask[target, source]
    alpha = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    merged = (alpha @ v).transpose(1, 2).reshape(x.shape[0], N, HEADS * d)
    weight, bias = w["out"]
    return merged @ weight.T + bias, scores.masked_fill(~mask, 0.0)


@pytest.mark.parametrize("batched", [True, False])
def test_large_scores_stay_finite_and_equal_dense_attention(batched):
    torch.manual_seed(0)
    conv = CrossModalAttentionConv(F, F, heads=HEADS).eval()  # fuse=True: the CSR-kernel path
    assert conv.fuse
    x = torch.randn(3, N, F, generator=torch.Generator().manual_seed(1)) * 12.0
    expected, scores = dense_attention(conv, x)
    assert scores.abs().max() > 150, "premise: float32 exp overflows at these scores"
    assert (scores > 100).any()
    out = conv(x if batched else x[0], GRAPH.edge_index)
    if not batched:
        expected = expected[0]
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), expected, rtol=1e-3, atol=1e-3)


def test_large_scores_attention_weights_equal_the_dense_softmax():
    torch.manual_seed(0)
    conv = CrossModalAttentionConv(F, F, heads=HEADS).eval()
    x = torch.randn(2, N, F, generator=torch.Generator().manual_seed(2)) * 12.0
    _, scores = dense_attention(conv, x)
    assert scores.abs().max() > 100
    out, (edge_index, alpha) = conv(x, GRAPH.edge_index, return_attention_weights=True)
    assert torch.isfinite(out).all() and torch.isfinite(alpha).all()
    mask = GRAPH.to_dense_mask().bool()
    dense_alpha = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)  # [B, H, target, source]
    src, dst = edge_index
    expected = dense_alpha[:, :, dst, src].transpose(1, 2)  # [B, E, H]
    torch.testing.assert_close(alpha.double(), expected, rtol=1e-3, atol=1e-4)
    # each target's coefficients sum to 1, none NaN
    sums = torch.zeros(2, N, HEADS, dtype=alpha.dtype).index_add_(1, dst, alpha)
    torch.testing.assert_close(sums, torch.ones_like(sums))

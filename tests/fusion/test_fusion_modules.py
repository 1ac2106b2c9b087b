"""Each baseline against a reference implementation of its formula."""

import networkx as nx
import pytest
import torch
import torch.nn.functional as F

from wsfusion.nn import MaskedLinear
from wsfusion.fusion import (
    CrossModalAttention,
    EarlyFusion,
    LateFusion,
    LowRankTensorFusion,
    MaskedWSFusion,
    MultiModalTransformer,
    TensorFusion,
)

DIMS = {"visual": 5, "text": 4, "audio": 3}


def pooled(batch=4, dims=DIMS):
    return {m: torch.randn(batch, d) for m, d in dims.items()}


def test_early_fusion_is_an_mlp_of_the_concatenation():
    module = EarlyFusion(DIMS, 2, hidden_dim=7).eval()
    x = pooled()
    torch.testing.assert_close(module(x), module.net(torch.cat([x["visual"], x["text"], x["audio"]], -1)))


def test_concatenation_follows_the_constructor_order_not_the_dict_order():
    module = EarlyFusion(DIMS, 2).eval()
    x = pooled()
    reordered = {m: x[m] for m in ("audio", "visual", "text")}
    torch.testing.assert_close(module(x), module(reordered))


def test_late_fusion_softmax_weights_and_renormalisation():
    module = LateFusion(DIMS, 3).eval()
    with torch.no_grad():
        module.logits.copy_(torch.tensor([0.0, 1.0, 2.0]))
    x = pooled()
    heads = {m: module.heads[m](x[m]) for m in DIMS}
    w = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0)
    torch.testing.assert_close(module(x), w[0] * heads["visual"] + w[1] * heads["text"] + w[2] * heads["audio"])
    # Without text: the weights of visual and audio renormalised, text's head not used at all.
    w2 = torch.softmax(torch.tensor([0.0, 2.0]), 0)
    out = module(x, mask={"text": torch.zeros(4, dtype=torch.bool)})
    torch.testing.assert_close(out, w2[0] * heads["visual"] + w2[1] * heads["audio"])


def test_late_fusion_with_every_modality_missing_is_zero_not_nan():
    module = LateFusion(DIMS, 3)
    none = {m: torch.zeros(4, dtype=torch.bool) for m in DIMS}
    out = module(pooled(), mask=none)
    assert torch.equal(out, torch.zeros(4, 3))


def test_tensor_fusion_matches_the_explicit_outer_product():
    dims = {"a": 2, "b": 3}
    module = TensorFusion(dims, 4, proj_dim=2, hidden_dim=5).eval()
    x = pooled(3, dims)
    ha = torch.cat([torch.relu(module.proj["a"](x["a"])), torch.ones(3, 1)], -1)
    hb = torch.cat([torch.relu(module.proj["b"](x["b"])), torch.ones(3, 1)], -1)
    outer = torch.stack([torch.outer(ha[i], hb[i]).flatten() for i in range(3)])
    torch.testing.assert_close(module(x), module.net(outer))
    assert module.net[0].in_features == 9


def test_tensor_fusion_refuses_an_explosive_size():
    with pytest.raises(ValueError, match=r"\(proj_dim \+ 1\) \*\* num_modalities = 16974593.*LowRankTensorFusion"):
        TensorFusion({"a": 4, "b": 4, "c": 4}, 2, proj_dim=256)


def test_low_rank_fusion_equals_tensor_fusion_with_the_reconstructed_weight():
    module = LowRankTensorFusion(DIMS, 4, rank=3).double()
    x = {m: v.double() for m, v in pooled().items()}
    z = {m: torch.cat([v, torch.ones(4, 1, dtype=torch.float64)], -1) for m, v in x.items()}
    fv, ft, fa = (module.factors[m] for m in ("visual", "text", "audio"))
    # Full TFN weight W[i, j, l, o] = sum_r lambda_r Wv[r, i, o] Wt[r, j, o] Wa[r, l, o]
    full = torch.einsum("r,rio,rjo,rlo->ijlo", module.rank_weights, fv, ft, fa)
    reference = torch.einsum("bi,bj,bl,ijlo->bo", z["visual"], z["text"], z["audio"], full) + module.bias
    torch.testing.assert_close(module(x), reference)


def test_low_rank_factors_are_registered_and_move_with_the_module():
    module = LowRankTensorFusion(DIMS, 4, rank=2)
    names = {n for n, _ in module.named_parameters()}
    assert {"factors.visual", "factors.text", "factors.audio", "rank_weights", "bias"} == names
    module.double()
    assert all(p.dtype == torch.float64 for p in module.parameters())


def test_cross_attention_on_pooled_vectors_is_a_linear_map():
    """Softmax over one key is 1: the query/key projections cannot matter (the notebook's bug, documented)."""
    module = CrossModalAttention(DIMS, 3, embed_dim=8, num_heads=2, dropout=0.0).eval()
    x = pooled()
    before = module(x)
    e = 8
    with torch.no_grad():
        for attn in module.attn.values():
            attn.in_proj_weight[: 2 * e].normal_()  # query and key rows
    torch.testing.assert_close(module(x), before)


def test_cross_attention_on_tokens_really_attends():
    module = CrossModalAttention(DIMS, 3, embed_dim=8, num_heads=2, dropout=0.0).eval()
    x = {m: torch.randn(4, 6, d) for m, d in DIMS.items()}
    before = module(x)
    with torch.no_grad():
        for attn in module.attn.values():
            attn.in_proj_weight[:16].normal_()
    assert not torch.allclose(module(x), before)


def test_cross_attention_matches_a_hand_written_mult_block():
    dims = {"a": 3, "b": 2}
    module = CrossModalAttention(dims, 2, embed_dim=4, num_heads=1, dropout=0.0).eval()
    x = {"a": torch.randn(2, 5, 3), "b": torch.randn(2, 3, 2)}
    pa, pb = module.proj["a"](x["a"]), module.proj["b"](x["b"])

    def attend(attn, q, kv):
        w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
        b_q, b_k, b_v = attn.in_proj_bias.chunk(3)
        scores = (q @ w_q.T + b_q) @ (kv @ w_k.T + b_k).transpose(1, 2) / 2.0
        return attn.out_proj(torch.softmax(scores, -1) @ (kv @ w_v.T + b_v))

    ha = module.norm["a"](pa + attend(module.attn["b->a"], pa, pb)).mean(1)
    hb = module.norm["b"](pb + attend(module.attn["a->b"], pb, pa)).mean(1)
    torch.testing.assert_close(module(x), module.head(torch.cat([ha, hb], -1)))


def test_transformer_attention_is_real_on_pooled_vectors():
    module = MultiModalTransformer(DIMS, 3, embed_dim=8, num_heads=2, dropout=0.0).eval()
    x = pooled()
    before = module(x)
    with torch.no_grad():
        module.transformer.layers[0].self_attn.in_proj_weight[:16].normal_()
    assert not torch.allclose(module(x), before)


def test_transformer_missing_tokens_are_removed_not_zero_filled():
    module = MultiModalTransformer(DIMS, 3, embed_dim=8, num_heads=2, dropout=0.0, allow_missing=True).eval()
    x = {m: torch.randn(4, 2, d) for m, d in DIMS.items()}
    zero_text = module({**x, "text": torch.zeros(4, 2, 4)})
    no_text = module({m: v for m, v in x.items() if m != "text"})
    assert not torch.allclose(zero_text, no_text)


def test_masked_ws_fusion_uses_the_notebook_mask():
    module = MaskedWSFusion({"visual": 256, "text": 256, "audio": 256}, 10)
    assert module.layers[0].weight.shape == (192, 192)
    expected = torch.zeros(192, 192)
    for u, v in nx.watts_strogatz_graph(192, 6, 0.3, seed=42).edges():
        expected[u, v] = expected[v, u] = 1
    assert torch.equal(module.layers[0].mask, expected)


def test_masked_linear_is_f_linear_with_the_masked_weight():
    module = MaskedWSFusion(DIMS, 2, nodes_per_modality=6, k=4, beta=0.5, seed=1)
    layer = module.layers[0]
    x = torch.randn(3, 18)
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight * layer.mask, layer.bias))
    layer(x).sum().backward()
    # Gradient exists only on the graph's edges.
    assert torch.equal(layer.weight.grad != 0, (layer.mask != 0) & (x.abs().sum(0) != 0)[None, :])


def test_masked_linear_init_keeps_unit_scale():
    layer = MaskedWSFusion({"a": 4, "b": 4}, 2, nodes_per_modality=512, k=8).layers[0]
    x = torch.randn(256, 1024)
    out = F.linear(x, layer.weight * layer.mask)
    # U(-sqrt(3/d), sqrt(3/d)) over d unit-variance inputs gives unit variance whatever N is.
    assert 0.85 < out.var().item() < 1.15


def test_masked_linear_input_error():
    layer = MaskedWSFusion(DIMS, 2, nodes_per_modality=6, k=4).layers[0]
    with pytest.raises(ValueError, match=r"MaskedLinear input must have shape \[\.\.\., 18\] \(one entry per graph node\), got \[3, 17\]"):
        layer(torch.randn(3, 17))


def test_masked_ws_fusion_graph_must_match_modalities():
    other = MaskedWSFusion({"x": 3, "y": 3}, 2, nodes_per_modality=6, k=4).graph
    with pytest.raises(ValueError, match=r"graph modalities \['x', 'y'\] do not match the features' \['visual', 'text', 'audio'\]"):
        MaskedWSFusion(DIMS, 2, graph=other)
    with pytest.raises(TypeError, match="graph must be a CrossModalGraph, got Tensor"):
        MaskedWSFusion(DIMS, 2, graph=torch.ones(3, 3))


def test_masked_ws_fusion_with_a_given_graph_uses_its_node_counts():
    graph = MaskedWSFusion({"a": 1, "b": 1}, 2, nodes_per_modality=5, k=4).graph
    module = MaskedWSFusion({"a": 3, "b": 7}, 2, graph=graph)
    assert module.proj["a"].out_features == 5 and module.layers[0].weight.shape == (10, 10)
    assert isinstance(module.layers[0], MaskedLinear)

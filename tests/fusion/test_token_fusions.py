"""Token fusions: padded tokens change nothing, and ws-transformer is exactly the blocks it documents."""

import math

import pytest
import torch

from wsfusion import fusion
from wsfusion.fusion import UnimodalFusion, WSTransformerFusion
from wsfusion.graphs import ws_cross_modal_graph

DIMS = {"visual": 6, "audio": 5}
TOKENS = {"visual": 4, "audio": 6}
B = 3
TOKEN_FUSIONS = {
    "attention": dict(embed_dim=8, num_heads=2),
    "transformer": dict(embed_dim=8, num_heads=2),
    "ws-gnn": dict(tokens=TOKENS, node_dim=8, k=4, conv="attention"),
    "ws-transformer": dict(tokens=TOKENS, node_dim=8, heads=2, k=4),
}


def padded_inputs():
    x = {m: torch.randn(B, t, DIMS[m]) for m, t in TOKENS.items()}
    lengths = torch.tensor([6, 4, 1])
    real = {"audio": torch.arange(6) < lengths[:, None]}
    return x, real, lengths


@pytest.mark.parametrize("name", TOKEN_FUSIONS)
def test_padded_tokens_change_nothing(name):
    torch.manual_seed(0)
    module = fusion.build(name, DIMS, 7, **TOKEN_FUSIONS[name]).eval()
    x, real, _ = padded_inputs()
    garbage = {**x, "audio": torch.where(real["audio"].unsqueeze(-1), x["audio"], torch.randn(B, 6, 5) * 9 + 4)}
    out = module(x, token_mask=real)
    torch.testing.assert_close(module(garbage, token_mask=real), out)
    assert not torch.allclose(module(garbage), module(x))  # unmasked, the padding does matter


@pytest.mark.parametrize("name", ["attention", "transformer"])
def test_padding_equals_a_shorter_sequence(name):
    # Dense token fusions have no positions of their own: masked padding = the padding cut off.
    torch.manual_seed(0)
    module = fusion.build(name, DIMS, 7, **TOKEN_FUSIONS[name]).eval()
    x, real, lengths = padded_inputs()
    out = module(x, token_mask=real)
    for i, n in enumerate(lengths.tolist()):
        alone = module({"visual": x["visual"][i : i + 1], "audio": x["audio"][i : i + 1, :n]})
        torch.testing.assert_close(out[i : i + 1], alone)


def test_ws_graph_padding_equals_removing_those_nodes():
    # Graph fusions: a padded token's node is removed like a missing modality's node.
    torch.manual_seed(0)
    module = fusion.build("ws-transformer", DIMS, 7, **TOKEN_FUSIONS["ws-transformer"]).eval()
    x, real, _ = padded_inputs()
    out = module(x, token_mask=real)
    node_mask = torch.cat([torch.ones(B, 4, dtype=torch.bool), real["audio"]], dim=1)
    h = module.nodes(x, B)
    h = module.message_passing(h, module.edge_index, module.edge_type, node_mask)
    torch.testing.assert_close(out, module.pool(h, node_mask))


def test_token_mask_errors():
    module = fusion.build("transformer", DIMS, 7, embed_dim=8, num_heads=2)
    x, real, _ = padded_inputs()
    with pytest.raises(ValueError, match=r"token_mask\['audio'\] must be a bool tensor of shape \[3, 6\] matching its token sequence, got \[3, 5\]"):
        module(x, token_mask={"audio": real["audio"][:, :5]})
    with pytest.raises(ValueError, match=r"token_mask has modality 'text' but its features are not given"):
        module(x, token_mask={"text": real["audio"]})
    gnn = fusion.build("ws-gnn", DIMS, 7, segments=2, node_dim=8, k=2)
    with pytest.raises(ValueError, match=r"token_mask needs token nodes"):
        gnn({m: torch.randn(B, d) for m, d in DIMS.items()}, token_mask={"audio": torch.ones(B, 1, dtype=torch.bool)})


def test_ws_transformer_is_the_documented_blocks():
    """Every step written out by hand on a tiny graph: projections, pre-norm sparse attention, FFN, readout."""
    torch.manual_seed(0)
    graph = ws_cross_modal_graph({"visual": 3, "audio": 3}, k=2, beta=0.0, seed=0, order="interleaved")
    module = WSTransformerFusion({"visual": 5, "audio": 4}, 3, tokens={"visual": 3, "audio": 3}, node_dim=4,
                                 heads=2, num_layers=2, graph=graph).eval()
    x = {"visual": torch.randn(2, 3, 5), "audio": torch.randn(2, 3, 4)}
    h = torch.cat([module.proj["visual"](x["visual"]), module.proj["audio"](x["audio"])], dim=1)
    h = h + module.modality_embedding[graph.node_modality]
    dense = graph.to_dense_mask().bool()  # [target, source]
    relation = torch.zeros(6, 6, dtype=torch.long)
    relation[graph.edge_index[1], graph.edge_index[0]] = graph.edge_type
    for layer in range(2):
        conv, norm = module.convs[layer], module.norms[layer]
        y = norm(h)
        q, k, v = conv.query(y), conv.key(y), conv.value(y)  # [B, N, 4], heads of 2 channels
        k = k.unsqueeze(1) + conv.relation.weight[relation]  # [B, target, source, 4]
        heads = []
        for head in range(2):
            c = slice(2 * head, 2 * head + 2)
            score = torch.einsum("btc,btsc->bts", q[..., c], k[..., c]) / math.sqrt(2)
            alpha = torch.softmax(score.masked_fill(~dense, float("-inf")), dim=-1)
            heads.append(alpha @ v[..., c])
        h = h + conv.out(torch.cat(heads, dim=-1))
        ffn = module.ffns[layer]
        h = h + ffn(module.ffn_norms[layer](h))
    h = module.final_norm(h)
    weights = torch.softmax(h @ module.pool_query / math.sqrt(4), dim=1)
    expected = module.head((weights.unsqueeze(-1) * h).sum(dim=1))
    torch.testing.assert_close(module(x), expected)
    # Matched to `transformer`: same width, depth, heads and feed-forward size.
    dense_twin = fusion.build("transformer", {"visual": 5, "audio": 4}, 3, embed_dim=4, num_heads=2, num_layers=2)
    layer = dense_twin.transformer.layers[0]
    assert layer.linear1.out_features == module.ffns[0][0].out_features == 8
    assert len(dense_twin.transformer.layers) == len(module.convs) and layer.self_attn.num_heads == module.convs[0].heads


def test_ws_transformer_attends_over_fewer_pairs_than_dense():
    module = WSTransformerFusion({"visual": 64, "audio": 64}, 10, tokens={"visual": 16, "audio": 12})
    assert module.graph.order == "interleaved" and module.graph.k == 8
    assert module.edge_index.shape[1] == 28 * 8 < 29 * 29  # WS edges vs the dense transformer's pairs ([CLS] + 28)


def test_unimodal_fusion():
    same = UnimodalFusion({"audio": 6}, 6)
    x = torch.randn(4, 6)
    torch.testing.assert_close(same({"audio": x}), x)
    assert sum(p.numel() for p in same.parameters()) == 0
    projected = UnimodalFusion({"audio": 6}, 3)
    torch.testing.assert_close(projected({"audio": x}), projected.proj(x))
    missing = torch.tensor([True, False, True, True])
    torch.testing.assert_close(same({"audio": x}, mask={"audio": missing})[1], torch.zeros(6))
    with pytest.raises(ValueError, match=r"UnimodalFusion takes exactly one modality, got \['visual', 'audio'\]"):
        UnimodalFusion({"visual": 3, "audio": 3}, 3)


def test_ws_transformer_spells_its_options_as_its_parent():
    import inspect

    from wsfusion.fusion import WSGraphFusion

    own = set(inspect.signature(WSTransformerFusion).parameters)
    assert own <= set(inspect.signature(WSGraphFusion).parameters), own - set(inspect.signature(WSGraphFusion).parameters)
    module = WSTransformerFusion({"visual": 5, "audio": 4}, 3, tokens={"visual": 3, "audio": 3}, node_dim=8, heads=2, k=2)
    assert module.node_dim == 8 and module.convs[0].heads == 2 and module.ffns[0][0].out_features == 16
    with pytest.raises(TypeError, match=r"fusion 'ws-transformer' has no option 'embed_dim'; options: tokens, node_dim, heads"):
        fusion.build("ws-transformer", {"visual": 5, "audio": 4}, 3, tokens={"visual": 3, "audio": 3}, embed_dim=8)
    with pytest.raises(ValueError, match=r"node_dim=6 must be divisible by heads=4"):
        WSTransformerFusion({"visual": 5, "audio": 4}, 3, tokens={"visual": 3, "audio": 3}, node_dim=6)

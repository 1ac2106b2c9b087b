"""Values, not only invariances, with padding or a missing modality present.

* ``ws-gnn``'s mean readout is the mean over a modality's *real* tokens: checked against a mean
  written out by hand from the final node states (taken with a forward hook), not against the
  module's own readout.
* ``TensorFusion`` keeps the appended 1 of a missing modality (its docstring), so the output still
  depends on the modalities that are there.
"""

import pytest
import torch

from wsfusion import fusion

DIMS = {"visual": 6, "audio": 5}
TOKENS = {"visual": 4, "audio": 6}
B = 3


def _final_nodes_and_readout(module, *args, **kwargs):
    """Run ``module`` and return ``(out, last conv block's node states [B, N, F], the head's input)``."""
    seen = {}
    hooks = [
        module.norms[-1].register_forward_hook(lambda m, i, o: seen.__setitem__("nodes", o)),
        module.head.register_forward_pre_hook(lambda m, i: seen.__setitem__("readout", i[0])),
    ]
    try:
        out = module(*args, **kwargs)
    finally:
        for h in hooks:
            h.remove()
    return out, seen["nodes"], seen["readout"]


@pytest.mark.parametrize("conv", ["rgcn", "attention"])
def test_ws_gnn_mean_readout_averages_the_real_tokens_only(conv):
    torch.manual_seed(0)
    # post-norm, no feed-forward, no final norm: the last LayerNorm's output is what the readout reads
    module = fusion.build("ws-gnn", DIMS, 7, tokens=TOKENS, node_dim=8, k=4, conv=conv, readout="mean").eval()
    x = {m: torch.randn(B, t, DIMS[m]) for m, t in TOKENS.items()}
    lengths = torch.tensor([6, 4, 1])
    real = {"audio": torch.arange(6) < lengths[:, None]}  # sample 0 unpadded, 1 and 2 padded
    out, nodes, readout = _final_nodes_and_readout(module, x, token_mask=real)
    assert nodes.shape == (B, 10, 8)
    visual, audio = nodes[:, :4], nodes[:, 4:]
    expected = []
    for i, n in enumerate(lengths.tolist()):
        expected.append(torch.cat([visual[i].mean(0), audio[i, :n].mean(0)]))  # the n real audio tokens
    expected = torch.stack(expected)
    torch.testing.assert_close(readout, expected)
    torch.testing.assert_close(out, module.head(expected))
    # key_padding_mask is the same padding with PyTorch's polarity
    torch.testing.assert_close(module(x, key_padding_mask={"audio": ~real["audio"]}), out)


def test_ws_gnn_mean_readout_of_a_single_real_token_is_that_token():
    torch.manual_seed(0)
    module = fusion.build("ws-gnn", DIMS, 7, tokens=TOKENS, node_dim=8, k=4, readout="mean").eval()
    x = {m: torch.randn(1, t, DIMS[m]) for m, t in TOKENS.items()}
    real = {"audio": torch.tensor([[False, False, True, False, False, False]])}
    _, nodes, readout = _final_nodes_and_readout(module, x, token_mask=real)
    torch.testing.assert_close(readout[0, 8:], nodes[0, 4 + 2])


TENSOR_DIMS = {"visual": 6, "text": 5, "audio": 4}


def _tensor_inputs(seed):
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(B, d, generator=g) for m, d in TENSOR_DIMS.items()}


def test_tensor_fusion_with_a_missing_modality_still_depends_on_the_others():
    torch.manual_seed(0)
    module = fusion.build("tensor", TENSOR_DIMS, 7, proj_dim=3, allow_missing=True).eval()
    a, b = _tensor_inputs(1), _tensor_inputs(2)
    without_audio = {m: a[m] for m in ("visual", "text")}
    out = module(without_audio)
    assert torch.isfinite(out).all()
    for m in ("visual", "text"):
        changed = {**without_audio, m: b[m]}
        assert (module(changed) - out).abs().amax(dim=1).min() > 1e-4, f"output ignores {m} with audio missing"
    # a per-sample mask is the same as the absent key, and only the masked sample loses audio
    mask = {"visual": torch.ones(B, dtype=torch.bool), "text": torch.ones(B, dtype=torch.bool),
            "audio": torch.tensor([False, True, True])}
    masked = module(a, mask)
    torch.testing.assert_close(masked[0], out[0])
    changed = module({**a, "visual": b["visual"]}, mask)
    assert (changed[0] - masked[0]).abs().max() > 1e-4
    # with every modality but one missing, the output is still that modality's unimodal term
    alone = module({"visual": a["visual"]})
    assert (module({"visual": b["visual"]}) - alone).abs().amax(dim=1).min() > 1e-4


def test_tensor_fusion_keeps_the_appended_one_of_a_missing_modality():
    """The fused vector of the docstring, built by hand: the missing modality is ``[0, ..., 0, 1]``."""
    torch.manual_seed(0)
    module = fusion.build("tensor", TENSOR_DIMS, 7, proj_dim=3, allow_missing=True).eval()
    a = _tensor_inputs(3)
    seen = {}
    handle = module.net.register_forward_pre_hook(lambda m, i: seen.__setitem__("fused", i[0]))
    try:
        module({m: a[m] for m in ("visual", "text")})
    finally:
        handle.remove()
    one = torch.ones(B, 1)
    h = {m: torch.cat([torch.relu(module.proj[m](a[m])), one], dim=1) for m in ("visual", "text")}
    h["audio"] = torch.cat([torch.zeros(B, 3), one], dim=1)
    fused = torch.einsum("bi,bj,bk->bijk", h["visual"], h["text"], h["audio"]).flatten(1)
    torch.testing.assert_close(seen["fused"], fused)

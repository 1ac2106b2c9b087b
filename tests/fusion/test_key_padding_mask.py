"""``key_padding_mask`` (PyTorch's polarity, True = padding) on the token fusions is ``token_mask`` inverted."""

import pytest
import torch

from wsfusion import fusion
from test_token_fusions import B, DIMS, TOKEN_FUSIONS, TOKENS  # the same small token fusions


def inputs():
    x = {m: torch.randn(B, t, DIMS[m]) for m, t in TOKENS.items()}
    padding = {"audio": torch.arange(6) >= torch.tensor([6, 4, 1])[:, None],
               "visual": torch.tensor([[False] * 4, [False, False, False, True], [False] * 4])}
    return x, padding


@pytest.mark.parametrize("name", TOKEN_FUSIONS)
def test_key_padding_mask_equals_the_inverted_token_mask(name):
    torch.manual_seed(0)
    module = fusion.build(name, DIMS, 7, **TOKEN_FUSIONS[name]).eval()
    x, padding = inputs()
    expected = module(x, token_mask={m: ~p for m, p in padding.items()})
    torch.testing.assert_close(module(x, key_padding_mask=padding), expected, rtol=0, atol=0)
    assert not torch.allclose(module(x), expected)  # the premise: the padding matters
    # One modality only, and with a missing-modality mask beside it.
    present = {"visual": torch.tensor([True, False, True])}
    torch.testing.assert_close(module(x, present, key_padding_mask={"audio": padding["audio"]}),
                               module(x, present, token_mask={"audio": ~padding["audio"]}), rtol=0, atol=0)


@pytest.mark.parametrize("name", TOKEN_FUSIONS)
def test_key_padding_mask_gradients_equal_the_token_mask_ones(name):
    torch.manual_seed(0)
    module = fusion.build(name, DIMS, 7, **TOKEN_FUSIONS[name]).eval()
    x, padding = inputs()
    grads = []
    for kwargs in ({"key_padding_mask": padding}, {"token_mask": {m: ~p for m, p in padding.items()}}):
        leaf = {m: v.clone().requires_grad_() for m, v in x.items()}
        module(leaf, **kwargs).square().sum().backward()
        grads.append({m: v.grad for m, v in leaf.items()})
    for m in x:
        torch.testing.assert_close(grads[0][m], grads[1][m], rtol=0, atol=0)


@pytest.mark.parametrize("name", TOKEN_FUSIONS)
def test_key_padding_mask_errors_name_it(name):
    module = fusion.build(name, DIMS, 7, **TOKEN_FUSIONS[name])
    what = type(module).__name__
    x, padding = inputs()
    real = {m: ~p for m, p in padding.items()}
    with pytest.raises(ValueError, match=rf"^{what}: pass token_mask \(True = a real token\) or key_padding_mask "
                                         r"\(True = padding\), not both$"):
        module(x, token_mask=real, key_padding_mask=padding)
    with pytest.raises(TypeError, match=rf"^{what}: key_padding_mask must be a mapping modality -> bool tensor "
                                        r"\[B, T_m\] \(True = padding\), got Tensor"):
        module(x, key_padding_mask=padding["audio"])
    with pytest.raises(ValueError, match=rf"^{what}: key_padding_mask\['audio'\] must be a bool tensor of shape "
                                         r"\[3, 6\] \(True = padding\), got \[3, 6\] torch.float32"):
        module(x, key_padding_mask={"audio": padding["audio"].float()})
    with pytest.raises(ValueError, match=rf"key_padding_mask\['audio'\] must be a bool tensor of shape \[3, 6\] "
                                         r"\(True = padding\), got \[3, 5\] torch.bool"):
        module(x, key_padding_mask={"audio": padding["audio"][:, :5]})
    module.allow_missing = True
    with pytest.raises(ValueError, match=rf"^{what}: key_padding_mask has modality 'audio' but its features are not given"):
        module({"visual": x["visual"]}, key_padding_mask={"audio": padding["audio"]})


@pytest.mark.parametrize("name", TOKEN_FUSIONS)
def test_the_docstrings_state_both_polarities(name):
    doc = " ".join(fusion.fusion_class(name).__doc__.split())
    assert "``key_padding_mask`` (:obj:`True` = padding" in doc
    assert "``token_mask`` (:obj:`True` = a real token" in doc


def test_segment_graph_fusion_refuses_a_key_padding_mask():
    module = fusion.build("ws-gnn", DIMS, 7, segments=2, node_dim=8, k=2)
    x = {m: torch.randn(B, d) for m, d in DIMS.items()}
    with pytest.raises(ValueError, match=r"WSGraphFusion: key_padding_mask needs token nodes"):
        module(x, key_padding_mask={"audio": torch.zeros(B, 1, dtype=torch.bool)})

"""``PositionwiseEncoder``: one shared encoder per position, tokens concatenated in position order."""

from __future__ import annotations

import pytest
import torch

from testing_helpers import assert_every_parameter_trains
from wsfusion.encoders import AudioEncoder, PositionwiseEncoder, VisualEncoder, encoder_for

SMALL = {"out_dim": 8, "channels": (2, 4, 4)}


def visual(length=3, pool="flatten"):
    return PositionwiseEncoder(VisualEncoder(1, 28, pool="mean", **SMALL), length, pool=pool)


def audio(length=3, frames=16, pool="flatten"):
    return PositionwiseEncoder(AudioEncoder(1, 13, frames, pool="mean", **SMALL), length, pool=pool)


@pytest.mark.parametrize("make, item, per_position", [
    (visual, (1, 28, 28), 16), (audio, (1, 13, 16), 4), (lambda **kw: audio(frames=64, **kw), (1, 13, 64), 16),
])
@pytest.mark.parametrize("pool", ["flatten", "attention", "mean"])
def test_shapes_and_token_counts(make, item, per_position, pool):
    encoder = make(pool=pool)
    assert encoder.input_shape == (3, *item) and encoder.num_tokens == 3 * per_position
    pooled, tokens = encoder(torch.randn(2, 3, *item), return_tokens=True)
    assert pooled.shape == (2, 8) and tokens.shape == (2, 3 * per_position, 8)
    encoder.eval()
    x = torch.randn(2, 3, *item)
    torch.testing.assert_close(encoder(x), encoder.pool_tokens(encoder.encode_tokens(x)[0]))


@pytest.mark.parametrize("make, item", [(visual, (1, 28, 28)), (audio, (1, 13, 16))])
def test_tokens_are_the_inner_encoders_position_by_position(make, item):
    encoder = make().eval()
    x = torch.randn(2, 3, *item)
    tokens = encoder(x, return_tokens=True)[1]
    expected = torch.cat([encoder.inner(x[:, s], return_tokens=True)[1] for s in range(3)], dim=1)
    torch.testing.assert_close(tokens, expected)


def test_changing_one_position_changes_only_its_tokens():
    encoder = audio(length=4).eval()
    x = torch.randn(2, 4, 1, 13, 16)
    changed = x.clone()
    changed[:, 2] = torch.randn(2, 1, 13, 16)
    before, after = encoder.encode_tokens(x)[0], encoder.encode_tokens(changed)[0]
    moved = (before - after).abs().amax(dim=(0, 2)) > 0  # per token
    assert moved.tolist() == [False] * 8 + [True] * 4 + [False] * 4


@pytest.mark.parametrize("make, item", [(visual, (1, 28, 28)), (audio, (1, 13, 16))])
def test_gradients_reach_every_parameter_and_every_position(make, item):
    encoder = make(length=2)
    x = torch.randn(3, 2, *item, requires_grad=True)
    encoder(x).square().sum().backward()
    assert_every_parameter_trains(encoder)
    assert (x.grad.abs().sum(dim=(0, 2, 3, 4)) > 0).all()


@pytest.mark.parametrize("length", [4, 16, 64])
def test_encoder_for_routes_positions(length):
    v = encoder_for("visual", (length, 1, 28, 28), out_dim=8, channels=(2, 4, 4))
    a = encoder_for("audio", (length, 1, 13, 64), out_dim=8, channels=(2, 4, 4), pool="mean")
    assert isinstance(v.inner, VisualEncoder) and isinstance(a.inner, AudioEncoder)
    assert (v.pool, a.pool, v.inner.pool, a.inner.pool) == ("flatten", "mean", "mean", "mean")
    assert v.num_tokens == a.num_tokens == 16 * length  # as many per position: the interleaved ring aligns them
    assert encoder_for("audio", (length, 1, 13, 16)).num_tokens == 4 * length


def test_errors():
    with pytest.raises(ValueError, match="inner's pooling is never used, so it must be the parameter-free 'mean'"):
        PositionwiseEncoder(VisualEncoder(1, 28), 2)
    with pytest.raises(TypeError, match="inner must be a ModalityEncoder"):
        PositionwiseEncoder(torch.nn.Linear(2, 2), 2)
    with pytest.raises(ValueError, match="length must be a positive integer, got 0"):
        PositionwiseEncoder(VisualEncoder(1, 28, pool="mean"), 0)
    with pytest.raises(ValueError, match=r"'visual' input must have shape \[B, 2, 1, 28, 28\]"):
        visual(length=2)(torch.randn(3, 3, 1, 28, 28))
    with pytest.raises(TypeError, match="no input_mask"):
        audio()(torch.randn(2, 3, 1, 13, 16), input_mask=torch.ones(2, 48, dtype=torch.bool))

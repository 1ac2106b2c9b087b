import pytest
import torch

from testing_helpers import assert_every_parameter_trains
from wsfusion.encoders import AudioEncoder, TextEncoder, VisualEncoder, default_encoders

CASES = [
    # (encoder factory, input shape per sample, tokens)
    (lambda: VisualEncoder(), (3, 32, 32), 16),
    (lambda: VisualEncoder(in_channels=1, image_size=28), (1, 28, 28), 16),
    (lambda: VisualEncoder(image_size=(24, 40), grid=2), (3, 24, 40), 4),
    (lambda: TextEncoder(), (20, 128), 20),
    (lambda: TextEncoder(in_dim=32, seq_len=7, out_dim=64, num_layers=2), (7, 32), 7),
    (lambda: AudioEncoder(), (1, 64, 100), 25),
    (lambda: AudioEncoder(n_freq=13, n_frames=92), (1, 13, 92), 23),
]


@pytest.mark.parametrize("make, shape, num_tokens", CASES)
def test_shapes_pooled_and_tokens(make, shape, num_tokens):
    encoder = make()
    x = torch.randn(3, *shape)
    pooled, tokens = encoder(x, return_tokens=True)
    assert encoder.num_tokens == num_tokens
    assert pooled.shape == (3, encoder.out_dim)
    assert tokens.shape == (3, num_tokens, encoder.out_dim)
    torch.testing.assert_close(pooled, tokens.mean(dim=1))
    encoder.eval()
    torch.testing.assert_close(encoder(x), encoder(x, return_tokens=True)[0])


def test_notebook_defaults():
    encoders = default_encoders()
    assert {m: e.input_shape for m, e in encoders.items()} == {
        "visual": (3, 32, 32), "text": (20, 128), "audio": (1, 64, 100)
    }
    assert {e.out_dim for e in encoders.values()} == {256}


@pytest.mark.parametrize("make, shape, num_tokens", CASES)
def test_every_parameter_gets_a_gradient(make, shape, num_tokens):
    encoder = make()
    pooled, tokens = encoder(torch.randn(4, *shape), return_tokens=True)
    (pooled.pow(2).sum() + tokens.sum()).backward()
    assert_every_parameter_trains(encoder)


@pytest.mark.parametrize("make, shape, num_tokens", CASES)
def test_deterministic_under_a_seed(make, shape, num_tokens):
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        encoder = make()
        outs.append(encoder(torch.randn(2, *shape)))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_tokens_depend_on_their_position():
    # Audio tokens are time frames: changing only the last frames must leave the first token unchanged.
    encoder = AudioEncoder(n_freq=16, n_frames=32).eval()
    x = torch.randn(1, 1, 16, 32)
    y = x.clone()
    y[..., 24:] += 1.0
    _, tx = encoder(x, return_tokens=True)
    _, ty = encoder(y, return_tokens=True)
    torch.testing.assert_close(tx[:, :4], ty[:, :4])
    assert not torch.allclose(tx[:, -1], ty[:, -1])


@pytest.mark.parametrize(
    "encoder, x, error, match",
    [
        (VisualEncoder(), torch.randn(2, 32, 32), ValueError, r"'visual' input must have shape \[B, 3, 32, 32\], got \[2, 32, 32\]"),
        (VisualEncoder(), torch.randn(2, 1, 28, 28), ValueError, r"'visual' input must have shape \[B, 3, 32, 32\], got \[2, 1, 28, 28\]"),
        (TextEncoder(), torch.randn(2, 20, 64), ValueError, r"'text' input must have shape \[B, 20, 128\], got \[2, 20, 64\]"),
        (TextEncoder(), torch.randint(0, 5, (2, 20, 128)), TypeError, r"'text' input must be a floating-point tensor, got dtype torch.int64"),
        (AudioEncoder(), torch.randn(2, 1, 64, 99), ValueError, r"'audio' input must have shape \[B, 1, 64, 100\], got \[2, 1, 64, 99\]"),
        (AudioEncoder(), [[1.0]], TypeError, r"'audio' input must be a torch.Tensor of shape \[B, 1, 64, 100\], got list"),
        (AudioEncoder(modality="speech"), torch.randn(2, 64, 100), ValueError, r"'speech' input must have shape"),
    ],
)
def test_bad_input_errors(encoder, x, error, match):
    with pytest.raises(error, match=match):
        encoder(x)


@pytest.mark.parametrize("value, count", [(float("nan"), "1 NaN, 0 inf"), (float("inf"), "0 NaN, 1 inf")])
def test_non_finite_input_is_reported(value, count):
    x = torch.randn(2, 3, 32, 32)
    x[1, 0, 5, 5] = value
    with pytest.raises(ValueError, match=rf"'visual' input contains non-finite values \({count}\)"):
        VisualEncoder()(x)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: VisualEncoder(in_channels=0), "in_channels must be a positive integer, got 0"),
        (lambda: VisualEncoder(image_size=2), r"image_size must be at least 4x4"),
        (lambda: VisualEncoder(image_size=(3, 4, 5)), r"image_size must be an int or a pair"),
        (lambda: TextEncoder(out_dim=30, num_heads=4), "out_dim=30 must be divisible by num_heads=4"),
        (lambda: TextEncoder(dropout=1.5), r"dropout must be a number in \[0, 1\), got 1.5"),
        (lambda: AudioEncoder(n_frames=2), r"the spectrogram must be at least 4x4"),
    ],
)
def test_bad_options(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_encoder_for_picks_by_shape_and_name():
    from wsfusion.encoders import encoder_for

    assert isinstance(encoder_for("text", (20, 128)), TextEncoder)
    audio = encoder_for("audio", (1, 13, 48), out_dim=64, channels=(8, 8, 8))
    assert isinstance(audio, AudioEncoder) and audio.num_tokens == 12 and audio.out_dim == 64
    visual = encoder_for("visual", (1, 28, 28))
    assert isinstance(visual, VisualEncoder) and visual.input_shape == (1, 28, 28)
    with pytest.raises(ValueError, match=r"no encoder for modality 'x' with per-sample shape \[5\]"):
        encoder_for("x", (5,))

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
    assert encoder.num_tokens == num_tokens and encoder.pool == "flatten"
    assert pooled.shape == (3, encoder.out_dim)
    assert tokens.shape == (3, num_tokens, encoder.out_dim)
    encoder.eval()
    torch.testing.assert_close(encoder(x), encoder(x, return_tokens=True)[0])


def pooled_by_hand(encoder, tokens, real):
    """The three pooling rules written out over the real tokens only (``real`` a bool [T])."""
    kept = tokens[:, real]
    if encoder.pool == "mean":
        return kept.mean(dim=1)
    if encoder.pool == "attention":
        weights = torch.softmax(kept @ encoder.pool_query / encoder.out_dim**0.5, dim=1)
        return (weights.unsqueeze(-1) * kept).sum(dim=1)
    flat = torch.zeros_like(tokens)
    flat[:, real] = kept
    return flat.flatten(1) @ encoder.pool_proj.weight.T + encoder.pool_proj.bias


@pytest.mark.parametrize("pool", ["flatten", "attention", "mean"])
@pytest.mark.parametrize("make, shape, num_tokens", CASES)
def test_pooling_rules(make, shape, num_tokens, pool):
    torch.manual_seed(0)
    encoder = make().eval()
    encoder.init_pool(pool)
    pooled, tokens = encoder(torch.randn(3, *shape), return_tokens=True)
    torch.testing.assert_close(pooled, pooled_by_hand(encoder, tokens, torch.ones(num_tokens, dtype=torch.bool)))


def test_pooled_vector_keeps_the_layout_unless_mean():
    # Swapping two tokens changes a flatten-pooled vector; the mean cannot tell.
    encoder = VisualEncoder(in_channels=1, image_size=8, out_dim=8, channels=(4, 4, 4), grid=2).eval()
    tokens = torch.randn(2, 4, 8)
    swapped = tokens[:, [1, 0, 2, 3]]
    assert not torch.allclose(encoder.pool_tokens(tokens), encoder.pool_tokens(swapped))
    encoder.init_pool("mean")
    torch.testing.assert_close(encoder.pool_tokens(tokens), encoder.pool_tokens(swapped))


SEQUENCE_CASES = [
    # (encoder factory, per-sample shape, how to write garbage into the padded positions past `length`)
    (lambda pool: AudioEncoder(n_freq=13, n_frames=24, out_dim=16, channels=(4, 8, 8), pool=pool), (1, 13, 24),
     lambda x, length: x[..., length:]),
    (lambda pool: TextEncoder(in_dim=8, seq_len=6, out_dim=16, num_heads=2, pool=pool), (6, 8),
     lambda x, length: x[:, length:]),
]


@pytest.mark.parametrize("pool", ["flatten", "attention", "mean"])
@pytest.mark.parametrize("make, shape, padded", SEQUENCE_CASES)
def test_padding_changes_nothing(make, shape, padded, pool):
    torch.manual_seed(0)
    encoder = make(pool).eval()
    lengths = torch.tensor([shape[-1] if len(shape) == 3 else shape[0], 9, 2])  # full, partly padded, mostly padded
    length_axis = encoder.sequence_length
    lengths = lengths.clamp(max=length_axis)
    input_mask = torch.arange(length_axis) < lengths[:, None]
    x = torch.randn(3, *shape)
    y = x.clone()
    for i, n in enumerate(lengths.tolist()):
        padded(y[i : i + 1], n).normal_(mean=5.0, std=3.0)  # garbage where there is no signal
    pooled_x, tokens_x = encoder(x, return_tokens=True, input_mask=input_mask)
    pooled_y, tokens_y = encoder(y, return_tokens=True, input_mask=input_mask)
    torch.testing.assert_close(pooled_x, pooled_y)
    torch.testing.assert_close(tokens_x, tokens_y)
    # ... and padded tokens are left out of the pooled vector.
    real = encoder.token_mask(input_mask)
    for i in range(3):
        torch.testing.assert_close(pooled_x[i : i + 1], pooled_by_hand(encoder, tokens_x[i : i + 1], real[i]))
    # Without the mask the garbage does get in.
    assert not torch.allclose(encoder(x), encoder(y))


def test_audio_token_mask_covers_each_tokens_frames():
    encoder = AudioEncoder(n_freq=8, n_frames=16)
    input_mask = torch.arange(16) < torch.tensor([16, 5, 4, 0])[:, None]
    assert encoder.token_mask(input_mask).tolist() == [
        [True] * 4, [True, True, False, False], [True, False, False, False], [False] * 4
    ]


def test_text_encoder_does_not_attend_to_padding():
    # Called on the tokens directly (no input zeroing), a padded position's content must not
    # reach the real tokens: the key-padding mask alone has to keep it out.
    torch.manual_seed(0)
    encoder = TextEncoder(in_dim=4, seq_len=5, out_dim=8, num_heads=2, pool="mean").eval()
    x = torch.randn(1, 5, 4)
    real = torch.tensor([[True, True, True, False, False]])
    y = x.clone()
    y[:, 3:] = 100.0
    torch.testing.assert_close(encoder.tokens(y, real)[:, :3], encoder.tokens(x, real)[:, :3])
    assert not torch.allclose(encoder.tokens(y, None)[:, :3], encoder.tokens(x, None)[:, :3])
    # An all-padding sample stays finite.
    assert torch.isfinite(encoder(x, input_mask=torch.zeros(1, 5, dtype=torch.bool))).all()


def test_input_mask_errors():
    audio = AudioEncoder(n_freq=8, n_frames=16)
    x = torch.randn(2, 1, 8, 16)
    with pytest.raises(ValueError, match=r"'audio' input_mask must have shape \[2, 16\], got \[2, 12\]"):
        audio(x, input_mask=torch.ones(2, 12, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"'audio' input_mask must be a bool tensor of shape \[2, 16\], got dtype torch.float32"):
        audio(x, input_mask=torch.ones(2, 16))
    with pytest.raises(TypeError, match=r"the 'visual' encoder has no sequence axis: it takes no input_mask"):
        VisualEncoder()(torch.randn(2, 3, 32, 32), input_mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"'audio' encoder: pool must be one of \('flatten', 'attention', 'mean'\), got 'max'"):
        AudioEncoder(pool="max")


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

"""AV-digit strings: the shown and the spoken digit strings agree, or differ at exactly one position.

Built from the fake source files of tests/conftest.py (the real layout, random content), like
tests/data/test_av_digits.py.
"""

from __future__ import annotations


import numpy as np
import pytest
import torch
from scipy.stats import chi2_contingency
from torch.utils.data import DataLoader

from wsfusion import data
from wsfusion.data import AVDigits, AVDigitStrings, IndexedTensor
from wsfusion.data.av_digit_strings import FRAMES_PER_POSITION, LENGTH, _pools, recognition_bound, resample

SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def strings(fake_av_data):
    """S = 4, 2,000 training strings, 500 val and test: the defaults but the frames (kept small)."""
    with fake_av_data.installed() as root:
        return data.build("av-digit-strings", root=root, download=False, frames_per_position=8)


def build(av_root, split="train", **options):
    return AVDigitStrings(split, root=av_root, download=False, **options)


@pytest.mark.parametrize("length", [4, 16, 64])
def test_shapes_for_each_length(av_root, length):
    train, val, test = data.build("av-digit-strings", root=av_root, download=False, length=length, num_samples=12)
    assert (len(train), len(val), len(test)) == (12, 3, 3)
    shapes = {"visual": (length, 1, 28, 28), "audio": (length, 1, 13, FRAMES_PER_POSITION)}
    assert train.modality_shapes == shapes and train.num_classes == 2
    assert data.layout("av-digit-strings", length=length) == (shapes, 2)
    for m, x in train.inputs.items():
        assert isinstance(x, IndexedTensor) and x.shape == (12, *shapes[m]) and x.is_floating_point()
        assert x[torch.tensor([0, 5])].shape == (2, *shapes[m]) and x[:3].dtype == torch.float32
    for name in ("shown_digits", "spoken_digits", "image_index", "audio_index"):
        assert getattr(train, name).shape == (12, length) and getattr(train, name).dtype == torch.int64
    inputs, label = train[0]
    assert {m: tuple(x.shape) for m, x in inputs.items()} == shapes and label.dim() == 0
    batch, labels = next(iter(DataLoader(train, batch_size=5)))
    assert batch["visual"].shape == (5, length, 1, 28, 28) and labels.shape == (5,)
    assert train.input_masks == {} and f"length={length}" in repr(train)


def test_defaults():
    assert (LENGTH, FRAMES_PER_POSITION) == (4, 64)
    assert data.layout("av-digit-strings") == ({"visual": (4, 1, 28, 28), "audio": (4, 1, 13, 64)}, 2)
    assert data.options("av-digit-strings") == (
        "length", "frames_per_position", "num_samples", "eval_samples", "root", "seed", "download")


def test_split_sizes(strings, av_root):
    assert [len(d) for d in strings] == [2000, 500, 500]
    assert [len(build(av_root, s, num_samples=40, eval_samples=7, length=2)) for s in SPLITS] == [40, 7, 7]
    assert len(build(av_root, "test", num_samples=3)) == 1  # a quarter, at least one


def test_deterministic_for_a_seed(av_root, strings):
    _pools.cache_clear()  # rebuild from the files, not from the in-memory cache
    again = build(av_root, "val", frames_per_position=8)
    ref = strings.val
    for name in ("labels", "shown_digits", "spoken_digits", "image_index", "audio_index", "mismatch_position"):
        assert torch.equal(getattr(again, name), getattr(ref, name)), name
    for m in ("visual", "audio"):
        assert torch.equal(again.inputs[m], ref.inputs[m])  # materialised through __torch_function__
    other = build(av_root, "val", frames_per_position=8, seed=1)
    for name in ("labels", "shown_digits", "image_index", "audio_index"):
        assert not torch.equal(getattr(other, name), getattr(ref, name)), name


def test_splits_are_disjoint_and_are_av_digits_splits(av_root, strings):
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        da, db = getattr(strings, a), getattr(strings, b)
        assert not set(da.image_index.flatten().tolist()) & set(db.image_index.flatten().tolist())
        assert not set(da.audio_index.flatten().tolist()) & set(db.audio_index.flatten().tolist())
    for split, d in zip(SPLITS, strings):  # the same source split as AV-digits with this seed
        pairs = AVDigits(split, root=av_root, download=False)
        assert set(d.image_index.flatten().tolist()) <= set(pairs.image_index.tolist())
        assert set(d.audio_index.flatten().tolist()) <= set(pairs.audio_index.tolist())


@pytest.mark.parametrize("n", [2000, 7])
def test_labels_are_balanced(av_root, n):
    labels = build(av_root, num_samples=n, length=3, frames_per_position=4).labels
    assert int(labels.sum()) == n // 2 and set(labels.tolist()) <= {0, 1}


def test_negatives_differ_at_exactly_one_position(strings):
    for d in strings:
        differ = d.shown_digits != d.spoken_digits
        assert torch.equal(differ.sum(1), 1 - d.labels)
        negative = d.labels == 0
        assert torch.equal(d.mismatch_position[~negative], torch.full_like(d.mismatch_position[~negative], -1))
        rows = torch.nonzero(negative).squeeze(1)
        assert differ[rows, d.mismatch_position[rows]].all()
    # the mismatch position is uniform over the S positions, the spoken digit uniform over the other 9
    train = strings.train
    rows = torch.nonzero(train.labels == 0).squeeze(1)
    position = train.mismatch_position[rows]
    shift = (train.spoken_digits[rows, position] - train.shown_digits[rows, position]) % 10
    assert chi2_contingency([position.bincount(minlength=4).tolist(), [len(rows) // 4] * 4])[1] > 1e-3
    assert shift.min() >= 1 and chi2_contingency([shift.bincount(minlength=10)[1:].tolist(), [111] * 9])[1] > 1e-3


def test_sources_show_and_speak_the_digits(strings, raw):
    for d in strings:
        assert torch.equal(torch.from_numpy(raw["image_labels"])[d.image_index], d.shown_digits)
        assert torch.equal(torch.from_numpy(raw["y"])[d.audio_index], d.spoken_digits)


def independence_p_value(digits, labels):
    """Chi-square p-value of independence between the label and a histogram of ``digits`` (per position, and
    the pair of the first two positions), the smallest over these tables."""
    p = [chi2_contingency([np.bincount(digits[labels == c, s], minlength=10) for c in (0, 1)])[1]
         for s in range(digits.shape[1])]
    pair = digits[:, 0] * 10 + digits[:, 1]
    p.append(chi2_contingency([np.bincount(pair[labels == c], minlength=100) + 1 for c in (0, 1)])[1])
    return min(p)


def probe_accuracy(train, test, features):
    """Test accuracy of a logistic regression on ``features(dataset)``, trained on the train split."""
    x, y = features(train).float(), train.labels.float()
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y) + 1e-3 * w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float((((features(test).float() @ w + b) > 0).long() == test.labels).float().mean())


def one_hot(digits):
    return torch.nn.functional.one_hot(digits, 10).flatten(1)


def test_each_modality_alone_is_at_chance(strings):
    train, _, test = strings
    for name in ("shown_digits", "spoken_digits"):
        digits = getattr(train, name).numpy()
        assert np.bincount(digits.ravel(), minlength=10).min() > 0.08 * digits.size  # uniform marginals
        assert independence_p_value(digits, train.labels.numpy()) > 1e-3, name
        # a probe on the (perfectly recognised) digits of one modality: chance (500 test strings: sd 0.022)
        assert abs(probe_accuracy(train, test, lambda d: one_hot(getattr(d, name))) - 0.5) < 0.07, name
    # both strings together decide the label: a probe on the per-position agreement is perfect
    assert probe_accuracy(train, test, lambda d: (d.shown_digits == d.spoken_digits)) == 1.0


def test_each_position_holds_its_image_and_resampled_utterance(strings, raw, av_root):
    pairs_stats = AVDigits("train", root=av_root, download=False)
    for d in strings:
        for i, s in ((0, 0), (3, 2), (len(d) - 1, 3)):
            pixels = torch.from_numpy(raw["pixels"][int(d.image_index[i, s])]).float().reshape(28, 28) / 255
            expected = (pixels - pairs_stats.visual_mean) / pairs_stats.visual_std  # AV-digits' standardisation
            torch.testing.assert_close(d.visual[i, s, 0], expected, atol=1e-5, rtol=1e-5)
            u = int(d.audio_index[i, s])
            mfcc = raw["X"][raw["offsets"][u]:raw["offsets"][u + 1]]  # [L, 13]
            t = np.linspace(0, len(mfcc) - 1, 8)
            resampled = torch.tensor(np.stack([np.interp(t, np.arange(len(mfcc)), c) for c in mfcc.T]))
            expected = (resampled.float() - pairs_stats.audio_mean[:, None]) / pairs_stats.audio_std[:, None]
            torch.testing.assert_close(d.audio[i, s, 0], expected, atol=1e-4, rtol=1e-4)
    # the same image at the same index of AV-digits: the same tensor
    pairs = AVDigits("val", root=av_root, download=False)
    row = int(strings.val.image_index[0, 0])
    where = int(torch.nonzero(pairs.image_index == row)[0])
    torch.testing.assert_close(strings.val.visual[0, 0], pairs.visual[where])


def test_resample_is_linear_in_time_and_keeps_both_ends():
    frames = np.random.default_rng(0).normal(size=(7, 13)).astype(np.float32)
    out = resample(frames, 13)  # every other output frame is a source frame, the others are midpoints
    assert out.shape == (13, 13)
    np.testing.assert_allclose(out[:, ::2], frames.T, rtol=1e-6)
    np.testing.assert_allclose(out[:, 1::2], (frames[:-1] + frames[1:]).T / 2, rtol=1e-6)
    np.testing.assert_allclose(resample(frames, 7), frames.T)
    np.testing.assert_allclose(resample(frames, 1)[:, 0], frames[0])
    np.testing.assert_allclose(resample(np.ones((1, 13), np.float32), 5), np.ones((13, 5)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split": "dev"}, r"split must be one of \['train', 'val', 'test'\], got 'dev'"),
        ({"length": 0}, "length must be a positive integer, got 0"),
        ({"frames_per_position": 0}, "frames_per_position must be a positive integer, got 0"),
        ({"num_samples": 0}, "num_samples must be a positive integer, got 0"),
        ({"eval_samples": -2}, "eval_samples must be a positive integer, got -2"),
        ({"seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_invalid_arguments(av_root, kwargs, match):
    with pytest.raises(ValueError, match=match):
        AVDigitStrings(**{"split": "train", **kwargs}, root=av_root, download=False)


def test_layout_checks_without_data():
    with pytest.raises(ValueError, match="length must be a positive integer, got 0"):
        data.layout("av-digit-strings", length=0)
    with pytest.raises(ValueError, match="frames_per_position must be a positive integer, got 2.5"):
        AVDigitStrings.layout(frames_per_position=2.5)


def test_recognition_bound_is_the_bayes_rule_on_simulated_recognitions():
    rng = np.random.default_rng(0)
    pv, pa, n = 0.9, 0.8, 200_000
    for length in (1, 4, 16):
        labels = rng.integers(0, 2, n)
        shown = rng.integers(0, 10, (n, length))
        spoken = shown.copy()
        j = rng.integers(0, length, n)
        neg = labels == 0
        spoken[neg, j[neg]] = (shown[neg, j[neg]] + rng.integers(1, 10, neg.sum())) % 10

        def recognise(digits, p):
            wrong = rng.random(digits.shape) > p
            return np.where(wrong, (digits + rng.integers(1, 10, digits.shape)) % 10, digits)

        m = (recognise(shown, pv) != recognise(spoken, pa)).sum(1)
        # the Bayes rule on the sufficient statistic m, fitted on the simulation itself
        table = np.stack([np.bincount(m[labels == c], minlength=length + 1) for c in (0, 1)])
        simulated = table.max(0).sum() / n
        assert abs(recognition_bound(length, pv, pa) - simulated) < 0.005, length
        all_agree = ((m == 0) == (labels == 1)).mean()
        alpha = pv * pa + (1 - pv) * (1 - pa) / 9
        assert all_agree <= 0.5 * (1 + alpha**length) + 0.005
    assert recognition_bound(64, 1.0, 1.0) == 1.0 and recognition_bound(3, 0.1, 0.1) == pytest.approx(0.5, abs=0.01)
    bounds = [recognition_bound(s, 0.97, 0.98) for s in (1, 4, 16, 64)]
    assert bounds == sorted(bounds, reverse=True)  # longer strings are harder
    assert [round(b, 3) for b in bounds[1:]] == [0.906, 0.721, 0.608]  # the docstring's figures


def test_trains_through_the_registry(av_root):
    from wsfusion.train import TrainConfig, train

    options = {"root": str(av_root), "download": False, "length": 2, "frames_per_position": 4, "num_samples": 16}
    config = TrainConfig(data="av-digit-strings", fusion="ws-transformer", data_options=options, epochs=1,
                         batch_size=8, feature_dim=8, fused_dim=8, encoder_channels=(2, 2, 4))
    result, model = train(config, progress=False)
    assert 0.0 <= result["test_acc"] <= 1.0 and model.encoders["visual"].num_tokens == 2 * 16

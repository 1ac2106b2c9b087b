from __future__ import annotations


import pytest
import torch
from torch.utils.data import DataLoader

from wsfusion.data import AVDigits
from wsfusion.data.av_digits import _prepare

SPLITS = ("train", "val", "test")


# Built from the fake source files of tests/conftest.py (the real layout, random content).
# Module-wide fixtures, so SOURCES is pointed at the fakes only while they are built.


@pytest.fixture(scope="module")
def splits(fake_av_data):
    with fake_av_data.installed() as root:
        return {s: AVDigits(s, root=root, download=False) for s in SPLITS}


@pytest.fixture(scope="module")
def hard_splits(fake_av_data):
    with fake_av_data.installed() as root:
        return {s: AVDigits(s, hard=True, root=root, download=False) for s in SPLITS}


def test_split_sizes_and_stratification(splits):
    sizes = {s: len(d) for s, d in splits.items()}
    assert sizes == {"train": 3500, "val": 500, "test": 1000}
    for split, per_class in (("train", 350), ("val", 50), ("test", 100)):
        assert splits[split].labels.bincount(minlength=10).tolist() == [per_class] * 10
        assert len(set(splits[split].audio_index.tolist())) == {"train": 2100, "val": 300, "test": 600}[split]


def test_no_image_or_utterance_crosses_splits(splits):
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not set(splits[a].image_index.tolist()) & set(splits[b].image_index.tolist())
        assert not set(splits[a].audio_index.tolist()) & set(splits[b].audio_index.tolist())
    images = torch.cat([d.image_index for d in splits.values()])
    assert images.unique().numel() == images.numel() == 5000  # every image used exactly once


def test_pairs_have_matching_digits(splits, raw):
    for d in splits.values():
        assert (torch.from_numpy(raw["image_labels"])[d.image_index] == d.labels).all()
        assert (torch.from_numpy(raw["y"])[d.audio_index] == d.labels).all()


def test_utterances_reused_evenly(splits):
    counts = splits["train"].audio_index.bincount()
    used = counts[counts > 0]
    assert used.min() == 1 and used.max() == 2  # 350 images over 210 utterances per digit


def test_items_and_collate(splits):
    d = splits["train"]
    inputs, label = d[0]
    assert set(inputs) == {"visual", "audio"}
    assert inputs["visual"].shape == (1, 28, 28) and inputs["visual"].dtype == torch.float32
    assert inputs["audio"].shape == (1, 13, 48) and inputs["audio"].dtype == torch.float32
    assert label.dtype == torch.int64 and label.dim() == 0
    assert d.modality_shapes == {"visual": (1, 28, 28), "audio": (1, 13, 48)}
    assert d.num_classes == 10 and d.modalities == ("visual", "audio")
    batch, labels = next(iter(DataLoader(d, batch_size=5)))
    assert batch["visual"].shape == (5, 1, 28, 28) and batch["audio"].shape == (5, 1, 13, 48)
    assert labels.shape == (5,)
    assert "split='train'" in repr(d)


def test_standardisation_fitted_on_train_only(splits, raw):
    train = splits["train"]
    assert abs(train.visual.mean().item()) < 1e-4 and abs(train.visual.std().item() - 1) < 1e-3
    frames = train.audio[:, 0].transpose(1, 2)[train.audio_mask]  # real frames [F, 13]
    assert frames.mean(0).abs().max() < 1e-4
    assert (frames.std(0, unbiased=False) - 1).abs().max() < 1e-3
    for split in ("val", "test"):
        d = splits[split]
        assert d.visual_mean == train.visual_mean and d.visual_std == train.visual_std
        assert torch.equal(d.audio_mean, train.audio_mean) and torch.equal(d.audio_std, train.audio_std)
        # recompute from the raw files with train's statistics
        pixels = torch.from_numpy(raw["pixels"][d.image_index[:20].numpy()]).float() / 255
        expected = (pixels - train.visual_mean) / train.visual_std
        torch.testing.assert_close(d.visual[:20].reshape(20, -1), expected, atol=1e-5, rtol=1e-5)
        i = 3
        u = int(d.audio_index[i])
        n = int(d.audio_lengths[i])
        start = raw["offsets"][u]
        mfcc = torch.from_numpy(raw["X"][start:start + n]).T
        expected = (mfcc - train.audio_mean[:, None]) / train.audio_std[:, None]
        torch.testing.assert_close(d.audio[i, 0, :, :n], expected, atol=1e-4, rtol=1e-4)
    # the test split was not used for the fit: its statistics differ from train's
    test_frames = splits["test"].audio[:, 0].transpose(1, 2)[splits["test"].audio_mask]
    assert test_frames.mean(0).abs().max() > 1e-3


def test_padding_and_mask(splits, raw):
    for d in splits.values():
        full = torch.from_numpy(raw["lengths"])[d.audio_index]
        assert torch.equal(d.audio_lengths, full.clamp(max=48))
        assert torch.equal(d.audio_mask, torch.arange(48) < d.audio_lengths[:, None])
        padded = ~d.audio_mask[:, None, None, :].expand_as(d.audio)
        assert (d.audio[padded] == 0).all()


def test_num_frames_truncates(av_root):
    d = AVDigits("val", root=av_root, download=False, num_frames=12)
    assert d.audio.shape == (500, 1, 13, 12) and d.modality_shapes["audio"] == (1, 13, 12)
    assert d.audio_lengths.max() == 12 and d.audio_mask.shape == (500, 12)


def test_deterministic_for_a_seed(av_root, splits):
    _prepare.cache_clear()  # rebuild from scratch, not from the in-memory cache
    again = AVDigits("train", root=av_root, download=False)
    ref = splits["train"]
    for name in ("visual", "audio", "labels", "image_index", "audio_index"):
        assert torch.equal(getattr(again, name), getattr(ref, name))
    other = AVDigits("train", root=av_root, download=False, seed=1)
    assert not torch.equal(other.image_index, ref.image_index)
    assert not torch.equal(other.audio_index, ref.audio_index)


def test_datasets_do_not_share_memory(av_root, splits):
    d = AVDigits("val", root=av_root, download=False)
    d.visual.zero_()
    assert splits["val"].visual.abs().sum() > 0


def test_hard_variant(av_root, splits, hard_splits):
    for split in SPLITS:
        clean, hard = splits[split], hard_splits[split]
        # same sources and pairs, only the inputs change
        assert torch.equal(clean.image_index, hard.image_index)
        assert torch.equal(clean.audio_index, hard.audio_index)
        assert torch.equal(clean.audio_mask, hard.audio_mask)
        assert not torch.allclose(clean.visual, hard.visual)
        assert (hard.audio[~hard.audio_mask[:, None, None, :].expand_as(hard.audio)] == 0).all()
    train = hard_splits["train"]
    frames = train.audio[:, 0].transpose(1, 2)[train.audio_mask]
    assert frames.mean(0).abs().max() < 1e-4 and (frames.std(0, unbiased=False) - 1).abs().max() < 1e-3
    # the noise is fixed: drawn once from the seed, identical on every construction
    _prepare.cache_clear()
    again = AVDigits("test", hard=True, root=av_root, download=False)
    assert torch.equal(again.visual, hard_splits["test"].visual)
    assert torch.equal(again.audio, hard_splits["test"].audio)
    assert torch.equal(hard_splits["test"][7][0]["visual"], hard_splits["test"][7][0]["visual"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split": "training"}, "split must be one of"),
        ({"num_frames": 0}, "num_frames must be a positive integer"),
        ({"seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_invalid_arguments(av_root, kwargs, match):
    with pytest.raises(ValueError, match=match):
        AVDigits(**kwargs, root=av_root, download=False)


def test_missing_data_without_download(tmp_path):
    with pytest.raises(RuntimeError, match="wsfusion data fetch"):
        AVDigits("train", root=tmp_path, download=False)


def test_model_built_from_dataset_attributes(splits):
    from wsfusion.encoders import AudioEncoder, VisualEncoder
    from wsfusion.fusion import build
    from wsfusion.models import MultiModalNetwork

    d = splits["val"]
    c, h, w = d.modality_shapes["visual"]
    _, n_freq, n_frames = d.modality_shapes["audio"]
    encoders = {
        "visual": VisualEncoder(in_channels=c, image_size=(h, w), out_dim=16, channels=(4, 4, 8)),
        "audio": AudioEncoder(n_freq=n_freq, n_frames=n_frames, out_dim=16, channels=(4, 4, 8)),
    }
    model = MultiModalNetwork(encoders, build("late", {m: 16 for m in encoders}, 16), torch.nn.Linear(16, d.num_classes))
    inputs, labels = next(iter(DataLoader(d, batch_size=4)))
    assert model(inputs).shape == (4, 10)

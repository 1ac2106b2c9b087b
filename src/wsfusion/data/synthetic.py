"""Synthetic tri-modal data with controlled redundancy, uniqueness and synergy."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from wsfusion._validation import check_int, check_positive_int, format_shape
from wsfusion.data.base import SPLITS, Layout, check_split

__all__ = ["SyntheticTriModal", "synthetic_split", "KINDS", "NOTEBOOK_SHAPES"]

#: The label structures, in the order used by :attr:`SyntheticTriModal.sample_kind`.
KINDS = ("redundancy", "uniqueness", "synergy")
#: The notebook's per-sample shapes.
NOTEBOOK_SHAPES: dict[str, tuple[int, ...]] = {"visual": (3, 32, 32), "text": (20, 128), "audio": (1, 64, 100)}
_STREAM_PROTOTYPES, _STREAM_SAMPLES = 0, 1


def _check_shapes(shapes: object) -> dict[str, tuple[int, ...]]:
    if not isinstance(shapes, Mapping) or not shapes:
        raise ValueError(f"modality_shapes must be a non-empty mapping modality -> per-sample shape, got {shapes!r}")
    out: dict[str, tuple[int, ...]] = {}
    for name, shape in shapes.items():
        if not isinstance(name, str):
            raise ValueError(f"modality_shapes: modality names must be strings, got {name!r}")
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
            raise ValueError(f"modality_shapes[{name!r}] must be a tuple of positive integers, got {shapes[name]!r}")
        out[name] = shape
    return out


def _check_kind(kind: object) -> np.ndarray:
    """``kind`` -> mixture weights over :data:`KINDS` (summing to 1)."""
    if isinstance(kind, str):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)} or a mapping kind -> weight, got {kind!r}")
        return np.array([float(k == kind) for k in KINDS])
    if not isinstance(kind, Mapping) or not kind:
        raise ValueError(f"kind must be one of {list(KINDS)} or a mapping kind -> weight, got {kind!r}")
    weights = np.zeros(len(KINDS))
    for name, w in kind.items():
        if name not in KINDS:
            raise ValueError(f"kind has unknown label structure {name!r}; expected keys among {list(KINDS)}")
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ValueError(f"kind[{name!r}] must be a non-negative weight, got {w!r}")
        weights[KINDS.index(name)] = float(w)
    if weights.sum() <= 0:
        raise ValueError(f"kind needs at least one positive weight, got {dict(kind)!r}")
    return weights / weights.sum()


def _prototypes(shape: tuple[int, ...], num_classes: int, rng: np.random.Generator) -> Tensor:
    """One fixed pattern per class code, unit std each.

    Image-like shapes ``(C, H, W)`` get smooth patterns (white noise on a
    grid 4x coarser, bilinearly upsampled) that a small CNN picks up easily;
    other shapes get white noise.
    """
    if len(shape) == 3 and min(shape[1:]) >= 8:
        coarse = (math.ceil(shape[1] / 4), math.ceil(shape[2] / 4))
        low = torch.from_numpy(rng.standard_normal((num_classes, shape[0], *coarse), dtype=np.float32))
        protos = F.interpolate(low, size=shape[1:], mode="bilinear", align_corners=False)
    else:
        protos = torch.from_numpy(rng.standard_normal((num_classes, *shape), dtype=np.float32))
    flat = protos.reshape(num_classes, -1)
    flat = (flat - flat.mean(1, keepdim=True)) / flat.std(1, keepdim=True).clamp_min(1e-6)
    return flat.reshape(num_classes, *shape)


class SyntheticTriModal(Dataset):
    r"""Synthetic multi-modal classification with a known information structure.

    Every sample has a label :math:`y` (balanced over ``num_classes``) and
    one latent class code :math:`z_m \in \{0, \dots, C-1\}` per modality.
    A modality's input is the fixed pattern of its code plus noise:

    .. math::
        \mathbf{x}_m = s \, \mathbf{P}_m[z_m] + \sigma \, \boldsymbol{\epsilon},
        \qquad \boldsymbol{\epsilon} \sim \mathcal{N}(0, \mathbf{I})

    with one unit-std pattern :math:`\mathbf{P}_m[k]` per modality and code
    (smooth for image-like ``(C, H, W)`` shapes, white noise otherwise),
    :math:`s` = ``signal`` and :math:`\sigma` = ``noise_std``. How the codes
    relate to the label is the sample's *kind* (the partial information
    decomposition's three parts):

    - ``"redundancy"``: :math:`z_m = y` for every modality, so any single
      modality suffices.
    - ``"uniqueness"``: :math:`z_u = y` for the ``informative`` modality
      :math:`u`; the other codes are uniform and independent of :math:`y`.
      Only that modality carries the label.
    - ``"synergy"``: over the ``synergy`` modalities :math:`S` (default
      visual and audio) the codes are uniform with
      :math:`y = \big(\sum_{m \in S} z_m\big) \bmod C`; the other codes are
      uniform noise. Each code alone is uniform and **independent of the
      label** (for any fixed :math:`z_v`, :math:`y` still takes every value
      with probability :math:`1/C`), yet the pair determines it. So a
      classifier that looks at one modality at a time is at chance, and a
      late fusion that adds per-modality class scores,
      :math:`f_v(z_v)_y + f_a(z_a)_y`, cannot represent the label at all
      (for :math:`C = 2` it is an XOR); only fusion that lets the
      modalities interact before the decision can learn it.

    ``kind`` is one of these names, or a mapping of mixture weights (e.g.
    ``{"redundancy": 0.2, "synergy": 0.8}``) from which each sample draws its
    kind; :attr:`sample_kind` records it. The latents are kept
    (:attr:`latents`) so tests and analyses can check the structure directly.

    The patterns depend only on ``seed``; the samples depend on ``seed`` and
    ``split``, so ``"train"``, ``"val"`` and ``"test"`` built with one seed
    are the same task with independent samples. Data are generated once, in
    memory (the notebook shapes take about 48 kB a sample).

    Args:
        split (str, optional): ``"train"``, ``"val"`` or ``"test"``.
            (default: :obj:`"train"`)
        kind (str or Mapping[str, float], optional): Label structure, see
            above. (default: :obj:`"synergy"`)
        num_samples (int, optional): Samples in this split.
            (default: :obj:`1000`)
        num_classes (int, optional): Classes :math:`C \geq 2`.
            (default: :obj:`10`)
        modality_shapes (Mapping[str, tuple], optional): Per-sample shape of
            each modality; :obj:`None` gives the notebook's visual
            ``(3, 32, 32)``, text ``(20, 128)``, audio ``(1, 64, 100)``.
            Small shapes work for fast tests. (default: :obj:`None`)
        signal (float, optional): Pattern amplitude :math:`s`.
            (default: :obj:`1.0`)
        noise_std (float, optional): Noise std :math:`\sigma`.
            (default: :obj:`1.0`)
        informative (str, optional): The modality carrying the label for
            ``"uniqueness"`` samples; :obj:`None` is the first modality.
            (default: :obj:`None`)
        synergy (Sequence[str], optional): The (at least two) modalities
            whose codes sum to the label for ``"synergy"`` samples;
            :obj:`None` is ``("visual", "audio")`` when both exist, else the
            first two modalities. (default: :obj:`None`)
        seed (int, optional): Seed of the patterns and samples.
            (default: :obj:`0`)

    Shapes:
        - **item:** ``({m: modality_shapes[m]}, label ())``, float32 inputs
          and an int64 label (default collate gives ``{m: (B, *shape)}``, ``(B,)``)
        - **attributes:** :attr:`labels`, :attr:`sample_kind`,
          ``latents[m]`` ``(N,)`` int64; ``prototypes[m]`` ``(C, *shape)``

    Example:
        >>> data = SyntheticTriModal(kind="synergy", num_samples=64, num_classes=4)
        >>> inputs, label = data[0]
        >>> {m: tuple(x.shape) for m, x in inputs.items()}
        {'visual': (3, 32, 32), 'text': (20, 128), 'audio': (1, 64, 100)}
        >>> bool(((data.latents["visual"] + data.latents["audio"]) % 4 == data.labels).all())
        True
    """

    def __init__(
        self,
        split: str = "train",
        *,
        kind: str | Mapping[str, float] = "synergy",
        num_samples: int = 1000,
        num_classes: int = 10,
        modality_shapes: Mapping[str, Sequence[int]] | None = None,
        signal: float = 1.0,
        noise_std: float = 1.0,
        informative: str | None = None,
        synergy: Sequence[str] | None = None,
        seed: int = 0,
    ) -> None:
        self.split = check_split(split)
        self.seed = check_int(seed, "seed", 0)
        self.num_samples = check_positive_int(num_samples, "num_samples")
        self.modality_shapes, self.num_classes = self.layout(modality_shapes, num_classes)
        self.modalities = tuple(self.modality_shapes)
        self.kind_weights = dict(zip(KINDS, _check_kind(kind).tolist()))
        self.kind = kind if isinstance(kind, str) else dict(kind)
        for name, value in (("signal", signal), ("noise_std", noise_std)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        self.signal, self.noise_std = float(signal), float(noise_std)

        self.informative = self.modalities[0] if informative is None else informative
        if self.informative not in self.modalities:
            raise ValueError(f"informative must be one of the modalities {list(self.modalities)}, got {informative!r}")
        if synergy is None:
            synergy = ("visual", "audio") if {"visual", "audio"} <= set(self.modalities) else self.modalities[:2]
        self.synergy = tuple(synergy)
        unknown = [m for m in self.synergy if m not in self.modalities]
        if unknown or len(set(self.synergy)) != len(self.synergy):
            raise ValueError(f"synergy must list distinct modalities among {list(self.modalities)}, got {synergy!r}")
        if len(self.synergy) < 2 and self.kind_weights["synergy"] > 0:
            raise ValueError(f"synergy needs at least two modalities, got {list(self.synergy)}")

        proto_rng = np.random.default_rng([self.seed, _STREAM_PROTOTYPES])
        self.prototypes = {m: _prototypes(s, self.num_classes, proto_rng) for m, s in self.modality_shapes.items()}

        rng = np.random.default_rng([self.seed, _STREAM_SAMPLES, SPLITS.index(self.split)])
        n, c = self.num_samples, self.num_classes
        labels = rng.permutation(np.arange(n) % c)
        sample_kind = rng.choice(len(KINDS), size=n, p=list(self.kind_weights.values()))
        latents = {m: rng.integers(0, c, size=n) for m in self.modalities}  # uniform, independent of y
        red, uni, syn = (sample_kind == k for k in range(len(KINDS)))
        for m in self.modalities:
            latents[m][red] = labels[red]
        latents[self.informative][uni] = labels[uni]
        if syn.any():
            *free, last = self.synergy
            others = sum(latents[m][syn] for m in free)
            latents[last][syn] = (labels[syn] - others) % c

        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.sample_kind = torch.from_numpy(sample_kind.astype(np.int64))
        self.latents = {m: torch.from_numpy(z.astype(np.int64)) for m, z in latents.items()}
        self.data: dict[str, Tensor] = {}
        for m, shape in self.modality_shapes.items():
            noise = torch.from_numpy(rng.standard_normal((n, *shape), dtype=np.float32))
            self.data[m] = self.signal * self.prototypes[m][self.latents[m]] + self.noise_std * noise

    @staticmethod
    def layout(modality_shapes: Mapping[str, Sequence[int]] | None = None, num_classes: int = 10) -> Layout:
        """The checked per-sample shapes (:obj:`None`: :data:`NOTEBOOK_SHAPES`) and number of classes,
        without generating any sample."""
        classes = check_positive_int(num_classes, "num_classes")
        if classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes!r}")
        return Layout(_check_shapes(NOTEBOOK_SHAPES if modality_shapes is None else modality_shapes), classes)

    @property
    def inputs(self) -> dict[str, Tensor]:
        """The whole split as one batch ``{m: (N, *shape)}``."""
        return dict(self.data)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> tuple[dict[str, Tensor], Tensor]:
        return {m: x[index] for m, x in self.data.items()}, self.labels[index]

    def __repr__(self) -> str:
        shapes = ", ".join(f"{m}={format_shape(s)}" for m, s in self.modality_shapes.items())
        return (
            f"{type(self).__name__}(split={self.split!r}, kind={self.kind!r}, num_samples={self.num_samples}, "
            f"num_classes={self.num_classes}, {shapes})"
        )


def synthetic_split(
    split: str = "train",
    *,
    kind: str | Mapping[str, float] = "synergy",
    num_samples: int = 1000,
    num_classes: int = 10,
    modality_shapes: Mapping[str, Sequence[int]] | None = None,
    signal: float = 1.0,
    noise_std: float = 1.0,
    informative: str | None = None,
    synergy: Sequence[str] | None = None,
    seed: int = 0,
) -> SyntheticTriModal:
    """One split of the registered ``"synthetic"`` dataset (:func:`wsfusion.data.build`).

    ``num_samples`` is the size of the ``"train"`` split; ``"val"`` and ``"test"`` get a quarter of it
    each (at least one sample), as :attr:`wsfusion.train.TrainConfig.synthetic_samples` says. Every
    other option is :class:`SyntheticTriModal`'s, with its default.
    """
    split = check_split(split)
    train_size = check_positive_int(num_samples, "num_samples")
    size = train_size if split == "train" else max(train_size // 4, 1)
    return SyntheticTriModal(split, kind=kind, num_samples=size, num_classes=num_classes,
                             modality_shapes=modality_shapes, signal=signal, noise_std=noise_std,
                             informative=informative, synergy=synergy, seed=seed)

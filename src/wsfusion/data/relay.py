"""A long-range cross-modal relay task: the label needs two tokens of two modalities, read at a third."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from wsfusion._validation import check_int, check_positive_int, check_positive_number
from wsfusion.data.base import SPLITS, check_split

__all__ = ["CrossModalRelay", "RELAY_MODALITIES", "RELAY_LABELS", "RELAY_PLACEMENTS"]

#: The key's, the value's and the query's modality, in that order.
RELAY_MODALITIES = ("visual", "text", "audio")
#: ``"sum"``: (key + value) mod C (needs both; each alone is at chance); ``"pair"``: key * C + value (C**2
#: classes, both codes as targets: the training label whose argmax decodes to the sum); ``"key"``: the key alone.
RELAY_LABELS = ("sum", "pair", "key")
#: Where the key and value tokens sit: anywhere, or next to the query's position.
RELAY_PLACEMENTS = ("random", "local")


class CrossModalRelay(Dataset):
    r"""Three token sequences of noise; a key code in one, a value code in another, the label read at a third.

    Every sample has three modalities (``visual``, ``text``, ``audio``),
    each a sequence of ``tokens`` feature vectors of size ``feature_dim``.
    Channel layout of a token:

    * channels :math:`0 \dots C-1`: the *code* channels;
    * channel :math:`C`: the key flag, channel :math:`C + 1`: the value flag;
    * the rest: distractors.

    Every channel of every token is Gaussian noise (std ``noise_std``) except
    the flags, which are 0, and two carrier tokens:

    * one ``visual`` token (the *key* token) has key flag 1 and the one-hot
      code of the key :math:`a \in \{0, \dots, C-1\}` on its code channels;
    * one ``text`` token (the *value* token) has value flag 1 and the one-hot
      code of the value :math:`b`.

    The label is :math:`y = (a + b) \bmod C` (``label="sum"``), with
    :math:`a` and :math:`b` uniform and independent, so each code alone says
    nothing about :math:`y`: for every fixed :math:`a`, :math:`y` takes each
    value with probability :math:`1/C`. ``label="pair"``
    (:math:`y = aC + b`, :attr:`num_labels` :math:`= C^2` classes) names both
    codes; :meth:`pair_to_sum` maps it to the sum. It is the label to *train*
    on: the sum offers a gradient no first-order signal (neither code alone
    changes the expected loss, so attention has no reason to find either
    token until it finds both; dense attention stays at chance on it, see
    ``docs/topology.md``), while a pair classifier is rewarded for each code
    it routes. Scored as a sum, a pair prediction is still right only when
    both codes arrived (one alone leaves it at chance). ``label="key"``
    (:math:`y = a`) is the one-source variant. The prediction is to be read from the **query token**, the
    first ``audio`` token (:attr:`query`), not from a pool over all tokens,
    so that the two codes have to travel along a graph's edges to it.

    Placement: ``"random"`` puts the key and value tokens at independent
    uniform positions in :math:`0 \dots T-1` (long range: in a ring over
    :math:`3T` tokens they are typically :math:`O(T)` steps from the query);
    ``"local"`` puts both at a uniform position in
    :math:`0 \dots \text{local\_window} - 1`, next to the query's position 0,
    so that a ring lattice of a few layers reaches them.

    **Bayes-optimal accuracy is 1.0**: the flags and the carriers' code
    channels are noise-free, so the rule "find the flagged tokens, read their
    codes, add them mod :math:`C`" is always right
    (:meth:`bayes_predict`; tested).

    Items are generated on access from a per-item seed (``seed``, ``split``,
    index), so any ``tokens`` fits in memory and item ``i`` is the same on
    every call; only the codes and positions (:attr:`keys`, :attr:`values`,
    :attr:`key_position`, :attr:`value_position`, :attr:`labels`) are stored.
    Splits built with one seed are independent samples of the same task.

    Args:
        split (str, optional): ``"train"``, ``"val"`` or ``"test"``.
            (default: :obj:`"train"`)
        tokens (int, optional): Tokens :math:`T` per modality.
            (default: :obj:`64`)
        num_samples (int, optional): Samples in this split.
            (default: :obj:`4000`)
        num_classes (int, optional): Codes and classes :math:`C \geq 2`.
            (default: :obj:`4`)
        feature_dim (int, optional): Channels per token, at least
            :math:`C + 2`. (default: :obj:`16`)
        noise_std (float, optional): Std of the noise channels.
            (default: :obj:`1.0`)
        label (str, optional): ``"sum"``, ``"pair"`` or ``"key"``, see
            above.
            (default: :obj:`"sum"`)
        placement (str, optional): ``"random"`` or ``"local"``.
            (default: :obj:`"random"`)
        local_window (int, optional): Positions used by ``"local"``
            placement, at most ``tokens``. (default: :obj:`2`)
        seed (int, optional): Seed of the codes, positions and noise.
            (default: :obj:`0`)

    Shapes:
        - **item:** ``({m: (T, feature_dim)}, label ())``, float32 inputs and
          an int64 label (default collate gives ``{m: (B, T, feature_dim)}``)
        - **attributes:** :attr:`labels`, :attr:`keys`, :attr:`values`,
          :attr:`key_position`, :attr:`value_position` ``(N,)`` int64

    Example:
        >>> data = CrossModalRelay(tokens=32, num_samples=8)
        >>> inputs, label = data[0]
        >>> {m: tuple(x.shape) for m, x in inputs.items()}
        {'visual': (32, 16), 'text': (32, 16), 'audio': (32, 16)}
        >>> bool((data.bayes_predict(data.inputs) == data.labels).all())
        True
    """

    modalities = RELAY_MODALITIES
    #: (modality, position) of the token the prediction is read from.
    query = ("audio", 0)

    def __init__(
        self,
        split: str = "train",
        *,
        tokens: int = 64,
        num_samples: int = 4000,
        num_classes: int = 4,
        feature_dim: int = 16,
        noise_std: float = 1.0,
        label: str = "sum",
        placement: str = "random",
        local_window: int = 2,
        seed: int = 0,
    ) -> None:
        self.split = check_split(split)
        self.tokens = check_positive_int(tokens, "tokens")
        self.num_samples = check_positive_int(num_samples, "num_samples")
        self.num_classes = check_int(num_classes, "num_classes", 2)
        self.feature_dim = check_int(feature_dim, "feature_dim", self.num_classes + 2)
        self.noise_std = check_positive_number(noise_std, "noise_std")
        if label not in RELAY_LABELS:
            raise ValueError(f"label must be one of {list(RELAY_LABELS)}, got {label!r}")
        if placement not in RELAY_PLACEMENTS:
            raise ValueError(f"placement must be one of {list(RELAY_PLACEMENTS)}, got {placement!r}")
        self.label, self.placement = label, placement
        self.local_window = check_positive_int(local_window, "local_window")
        if self.local_window > self.tokens:
            raise ValueError(f"local_window must be at most tokens ({self.tokens}), got {local_window!r}")
        self.seed = check_int(seed, "seed", 0)
        self.modality_shapes = {m: (self.tokens, self.feature_dim) for m in self.modalities}

        rng = np.random.default_rng([self.seed, SPLITS.index(self.split)])
        n, c = self.num_samples, self.num_classes
        keys, values = rng.integers(0, c, size=n), rng.integers(0, c, size=n)
        span = self.tokens if placement == "random" else self.local_window
        key_position, value_position = rng.integers(0, span, size=n), rng.integers(0, span, size=n)
        labels = {"sum": (keys + values) % c, "pair": keys * c + values, "key": keys}[label]
        self.keys, self.values, self.labels = (torch.from_numpy(a.astype(np.int64)) for a in (keys, values, labels))
        self.key_position = torch.from_numpy(key_position.astype(np.int64))
        self.value_position = torch.from_numpy(value_position.astype(np.int64))
        # One independent noise stream per item (entropy = seed, split, index).
        self._item_seeds = rng.integers(0, 2**63 - 1, size=n, dtype=np.int64)

    @property
    def num_labels(self) -> int:
        """Classes of :attr:`label`: :math:`C^2` for ``"pair"``, else :math:`C`."""
        return self.num_classes**2 if self.label == "pair" else self.num_classes

    def pair_to_sum(self, pair: Tensor) -> Tensor:
        r"""Map ``"pair"`` labels (or predictions) :math:`aC + b` to ``"sum"`` labels :math:`(a + b) \bmod C`."""
        c = self.num_classes
        return (pair // c + pair % c) % c

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> tuple[dict[str, Tensor], Tensor]:
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"index {index} is out of range for {self.num_samples} samples")
        index %= self.num_samples
        generator = torch.Generator().manual_seed(int(self._item_seeds[index]))
        c = self.num_classes
        x = torch.randn(len(self.modalities), self.tokens, self.feature_dim, generator=generator) * self.noise_std
        x[:, :, c:c + 2] = 0.0
        for m, (code, position, flag) in enumerate(((self.keys, self.key_position, c),
                                                    (self.values, self.value_position, c + 1))):
            token = x[m, int(position[index])]
            token[:c] = 0.0
            token[int(code[index])] = 1.0
            token[flag] = 1.0
        return dict(zip(self.modalities, x.unbind(0))), self.labels[index]

    @property
    def inputs(self) -> dict[str, Tensor]:
        """The whole split as one batch ``{m: (N, T, feature_dim)}`` (materialised: mind ``N·T``)."""
        items = [self[i][0] for i in range(self.num_samples)]
        return {m: torch.stack([item[m] for item in items]) for m in self.modalities}

    def bayes_predict(self, inputs: dict[str, Tensor]) -> Tensor:
        """The Bayes-optimal rule on a batch ``{m: (B, T, feature_dim)}``: find the flagged tokens, decode, combine."""
        c = self.num_classes
        codes = []
        for modality, flag in ((self.modalities[0], c), (self.modalities[1], c + 1)):
            x = inputs[modality]
            carrier = x[..., flag].argmax(dim=1)  # the one token whose flag is 1
            token = x[torch.arange(x.shape[0]), carrier]
            codes.append(token[:, :c].argmax(dim=1))
        key, value = codes
        return {"sum": (key + value) % c, "pair": key * c + value, "key": key}[self.label]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(split={self.split!r}, tokens={self.tokens}, num_samples={self.num_samples}, "
            f"num_classes={self.num_classes}, label={self.label!r}, placement={self.placement!r})"
        )

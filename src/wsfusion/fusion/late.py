from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from wsfusion._validation import check_positive_int, check_probability
from wsfusion.fusion.base import FusionModule, mlp


class LateFusion(FusionModule):
    r"""Late (decision-level) fusion: one head per modality, softmax-weighted.

    .. math::
        \mathbf{y} = \sum_{m} \alpha_m \, \mathrm{MLP}_m(\mathbf{z}_m),
        \qquad \alpha = \mathrm{softmax}(\mathbf{w})

    with one learned logit :math:`w_m` per modality. A missing modality is
    left out: its weight is removed and the softmax renormalised over the
    modalities present in that sample (the one baseline that does not
    zero-fill, because dropping a head is what late fusion naturally allows).
    A sample with no modality present gets a zero output.

    Args:
        modality_dims (Mapping[str, int]): Feature size of each modality.
        out_dim (int): Output size.
        hidden_dim (int, optional): Hidden size of each head. (default: :obj:`128`)
        dropout (float, optional): Dropout in each head. (default: :obj:`0.1`)
        allow_missing (bool, optional): Accept absent keys. (default: :obj:`False`)

    Shapes:
        - **input:** ``{m: (B, D_m)}``
        - **output:** :math:`(B, out\_dim)`
    """

    def __init__(
        self,
        modality_dims: Mapping[str, int],
        out_dim: int,
        hidden_dim: int = 128,
        dropout: float = 0.1,
        allow_missing: bool = False,
    ) -> None:
        super().__init__(modality_dims, out_dim, allow_missing)
        hidden_dim = check_positive_int(hidden_dim, "hidden_dim")
        dropout = check_probability(dropout, "dropout")
        self.heads = nn.ModuleDict({m: mlp(d, hidden_dim, out_dim, dropout) for m, d in self.modality_dims.items()})
        self.logits = nn.Parameter(torch.zeros(len(self.modality_dims)))

    def reset_parameters(self) -> None:
        super().reset_parameters()
        nn.init.zeros_(self.logits)  # equal modality weights

    def forward(self, features: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None = None) -> Tensor:
        batch, mask = self.check_inputs(features, mask)
        present = torch.stack([mask[m] for m in self.modalities], dim=1)  # [B, M]
        logits = self.logits.expand(batch, -1).masked_fill(~present, float("-inf"))
        # A sample with every modality missing would give softmax(-inf, ...) = NaN.
        weights = torch.softmax(logits, dim=1).nan_to_num(0.0)
        ref = next(iter(features.values()))
        out = ref.new_zeros(batch, self.out_dim)
        for i, name in enumerate(self.modalities):
            if name in features:
                out = out + weights[:, i : i + 1] * self.heads[name](features[name])
        return out

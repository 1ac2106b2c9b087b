from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from wsfusion._validation import check_positive_int, check_probability
from wsfusion.fusion.base import FusionModule, mlp


class EarlyFusion(FusionModule):
    r"""Early (feature-level) fusion: concatenate, then an MLP.

    .. math::
        \mathbf{y} = \mathrm{MLP}\big([\mathbf{z}_1 \,\|\, \cdots \,\|\, \mathbf{z}_M]\big)

    A missing modality is replaced by zeros.

    Args:
        modality_dims (Mapping[str, int]): Feature size of each modality.
        out_dim (int): Output size.
        hidden_dim (int, optional): MLP hidden size. (default: :obj:`256`)
        dropout (float, optional): Dropout after the hidden layer.
            (default: :obj:`0.1`)
        allow_missing (bool, optional): Accept absent keys. (default: :obj:`False`)

    Shapes:
        - **input:** ``{m: (B, D_m)}``
        - **output:** :math:`(B, out\_dim)`
    """

    def __init__(
        self,
        modality_dims: Mapping[str, int],
        out_dim: int,
        hidden_dim: int = 256,
        dropout: float = 0.1,
        allow_missing: bool = False,
    ) -> None:
        super().__init__(modality_dims, out_dim, allow_missing)
        self.net = mlp(
            sum(self.modality_dims.values()), check_positive_int(hidden_dim, "hidden_dim"),
            out_dim, check_probability(dropout, "dropout"),
        )

    def forward(self, features: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None = None) -> Tensor:
        batch, mask = self.check_inputs(features, mask)
        filled = self.filled(features, mask, batch)
        return self.net(torch.cat([filled[m] for m in self.modalities], dim=-1))

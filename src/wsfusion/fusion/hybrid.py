from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from wsfusion._validation import check_positive_int, check_probability
from wsfusion.fusion.base import FusionModule


class HybridFusion(FusionModule):
    r"""Hybrid fusion: an early (joint) branch and a late (per-modality) branch.

    Each modality is projected to ``hidden_dim`` (the late branch, combined by
    softmax weights :math:`\alpha`), the concatenation goes through a joint
    projection (the early branch), and a head reads both:

    .. math::
        \mathbf{h}_m = \mathrm{ReLU}(\mathbf{W}_m \mathbf{z}_m), \quad
        \mathbf{e} = \mathrm{ReLU}(\mathbf{W}_e [\mathbf{z}_1 \| \cdots \| \mathbf{z}_M]), \quad
        \mathbf{y} = \mathbf{W}_o \big[\mathbf{e} \,\|\, \textstyle\sum_m \alpha_m \mathbf{h}_m\big]

    A missing modality is replaced by zeros.

    Args:
        modality_dims (Mapping[str, int]): Feature size of each modality.
        out_dim (int): Output size.
        hidden_dim (int, optional): Size of both branches. (default: :obj:`128`)
        dropout (float, optional): Dropout before the head. (default: :obj:`0.1`)
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
        self.early = nn.Linear(sum(self.modality_dims.values()), hidden_dim)
        self.late = nn.ModuleDict({m: nn.Linear(d, hidden_dim) for m, d in self.modality_dims.items()})
        self.logits = nn.Parameter(torch.zeros(len(self.modality_dims)))
        self.dropout = nn.Dropout(check_probability(dropout, "dropout"))
        self.head = nn.Linear(2 * hidden_dim, out_dim)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        nn.init.zeros_(self.logits)  # equal modality weights

    def forward(self, features: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None = None) -> Tensor:
        batch, mask = self.check_inputs(features, mask)
        filled = self.filled(features, mask, batch)
        early = torch.relu(self.early(torch.cat([filled[m] for m in self.modalities], dim=-1)))
        weights = torch.softmax(self.logits, dim=0)
        late = sum(w * torch.relu(self.late[m](filled[m])) for w, m in zip(weights, self.modalities))
        return self.head(self.dropout(torch.cat([early, late], dim=-1)))

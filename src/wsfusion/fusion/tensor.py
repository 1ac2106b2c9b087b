from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from wsfusion._validation import check_positive_int, check_probability
from wsfusion.fusion.base import FusionModule, mlp


def _append_one(x: Tensor) -> Tensor:
    """``[B, D] -> [B, D + 1]``: the constant 1 keeps the unimodal and bimodal terms."""
    return torch.cat([x, x.new_ones(x.shape[0], 1)], dim=-1)


class TensorFusion(FusionModule):
    r"""Tensor Fusion Network (`Zadeh et al., 2017 <https://arxiv.org/abs/1707.07250>`_).

    Each modality is projected to ``proj_dim`` (the full outer product of
    256-d vectors would have :math:`257^3 \approx 1.7 \cdot 10^7` entries),
    a constant 1 is appended, and the outer product of all modalities feeds an
    MLP:

    .. math::
        \mathbf{y} = \mathrm{MLP}\Big(\mathrm{vec}\big(
        \begin{bmatrix}\mathbf{h}_1 \\ 1\end{bmatrix} \otimes \cdots \otimes
        \begin{bmatrix}\mathbf{h}_M \\ 1\end{bmatrix}\big)\Big),
        \qquad \mathbf{h}_m = \mathrm{ReLU}(\mathbf{W}_m \mathbf{z}_m)

    The fused tensor has :math:`(\mathrm{proj\_dim} + 1)^M` entries, so keep
    ``proj_dim`` small for many modalities. A missing modality is replaced by
    zeros (its appended 1 stays, so the other modalities' terms survive).

    Args:
        modality_dims (Mapping[str, int]): Feature size of each modality.
        out_dim (int): Output size.
        proj_dim (int, optional): Per-modality size before the outer product.
            (default: :obj:`16`)
        hidden_dim (int, optional): MLP hidden size. (default: :obj:`128`)
        dropout (float, optional): MLP dropout. (default: :obj:`0.1`)
        allow_missing (bool, optional): Accept absent keys. (default: :obj:`False`)

    Shapes:
        - **input:** ``{m: (B, D_m)}``
        - **output:** :math:`(B, out\_dim)`
    """

    def __init__(
        self,
        modality_dims: Mapping[str, int],
        out_dim: int,
        proj_dim: int = 16,
        hidden_dim: int = 128,
        dropout: float = 0.1,
        allow_missing: bool = False,
    ) -> None:
        super().__init__(modality_dims, out_dim, allow_missing)
        proj_dim = check_positive_int(proj_dim, "proj_dim")
        fused = (proj_dim + 1) ** len(self.modalities)
        if fused > 2**22:
            raise ValueError(
                f"TensorFusion: (proj_dim + 1) ** num_modalities = {fused} fused features is too many; "
                "lower proj_dim or use LowRankTensorFusion"
            )
        self.proj = nn.ModuleDict({m: nn.Linear(d, proj_dim) for m, d in self.modality_dims.items()})
        self.net = mlp(fused, check_positive_int(hidden_dim, "hidden_dim"), out_dim, check_probability(dropout, "dropout"))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        # He init for the ReLU projections: E[h^2] = 1 for unit-variance inputs, so the products of
        # M modalities keep that scale (nn.Linear's default would shrink them by ~6x per modality).
        for proj in self.proj.values():
            nn.init.kaiming_uniform_(proj.weight, nonlinearity="relu")
            nn.init.zeros_(proj.bias)

    def forward(self, features: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None = None) -> Tensor:
        batch, mask = self.check_inputs(features, mask)
        filled = self.filled(features, mask, batch)
        fused: Tensor | None = None
        for name in self.modalities:
            h = _append_one(torch.relu(self.proj[name](filled[name])) * mask[name].to(filled[name].dtype)[:, None])
            fused = h if fused is None else (fused.unsqueeze(-1) * h.unsqueeze(1)).flatten(1)
        return self.net(fused)


class LowRankTensorFusion(FusionModule):
    r"""Low-rank Multimodal Fusion (`Liu et al., 2018 <https://arxiv.org/abs/1806.00064>`_).

    The TFN weight tensor is factorised into ``rank`` modality-specific
    factors :math:`\mathbf{W}_m^{(r)} \in \mathbb{R}^{(D_m + 1) \times out}`, so
    the outer product is never formed:

    .. math::
        \mathbf{y} = \sum_{r=1}^{R} \lambda_r \prod_{m=1}^{M}
        \Big(\begin{bmatrix}\mathbf{z}_m \\ 1\end{bmatrix}^{\top} \mathbf{W}_m^{(r)}\Big) + \mathbf{b}

    (the product is element-wise over the output dimension). Every factor is
    a registered parameter (MultiBench's ``LowRankTensorFusion`` keeps them
    in a Python list, so they are never trained nor moved to the GPU). A
    missing modality is replaced by zeros (its appended 1 keeps the product
    from vanishing).

    Args:
        modality_dims (Mapping[str, int]): Feature size of each modality.
        out_dim (int): Output size.
        rank (int, optional): Rank :math:`R`. (default: :obj:`4`)
        allow_missing (bool, optional): Accept absent keys. (default: :obj:`False`)

    Shapes:
        - **input:** ``{m: (B, D_m)}``
        - **output:** :math:`(B, out\_dim)`
    """

    def __init__(
        self,
        modality_dims: Mapping[str, int],
        out_dim: int,
        rank: int = 4,
        allow_missing: bool = False,
    ) -> None:
        super().__init__(modality_dims, out_dim, allow_missing)
        self.rank = check_positive_int(rank, "rank")
        self.factors = nn.ParameterDict(
            {m: nn.Parameter(torch.empty(rank, d + 1, out_dim)) for m, d in self.modality_dims.items()}
        )
        self.rank_weights = nn.Parameter(torch.empty(rank))
        self.bias = nn.Parameter(torch.empty(out_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Glorot per rank matrix [D+1, out] (each z·W has unit scale, so the product over
        # modalities does too); xavier_normal_ on the 3-D [R, D+1, out] tensor, as in LMF's code,
        # counts the rank axis into the fans and shrinks the output towards 0 as modalities add up.
        for factor in self.factors.values():
            for matrix in factor.data:
                nn.init.xavier_normal_(matrix)
        nn.init.normal_(self.rank_weights, mean=1.0 / self.rank, std=0.1 / self.rank)
        nn.init.zeros_(self.bias)

    def forward(self, features: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None = None) -> Tensor:
        batch, mask = self.check_inputs(features, mask)
        filled = self.filled(features, mask, batch)
        product: Tensor | None = None
        for name in self.modalities:
            # [B, D+1] x [R, D+1, out] -> [B, R, out]
            term = torch.einsum("bd,rdo->bro", _append_one(filled[name]), self.factors[name])
            product = term if product is None else product * term
        return torch.einsum("bro,r->bo", product, self.rank_weights) + self.bias

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}"

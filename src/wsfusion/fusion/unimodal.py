from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from wsfusion.fusion.base import FusionModule


class UnimodalFusion(FusionModule):
    r"""No fusion: one modality's pooled vector, the reference row that shows what fusion adds.

    .. math::
        \mathbf{y} = \mathbf{z}_m \quad (D_m = out\_dim), \qquad
        \mathbf{y} = \mathbf{W}\mathbf{z}_m + \mathbf{b} \quad \text{otherwise}

    Built over exactly one modality, so a :class:`~wsfusion.models.MultiModalNetwork`
    around it holds only that modality's encoder, and the head is the same as
    every fusion's. ``wsfusion compare`` reports it as ``only-<modality>``
    (train it with ``TrainConfig(fusion="unimodal", modalities=[m])``). A
    missing modality is replaced by zeros.

    Args:
        modality_dims (Mapping[str, int]): One modality and its feature size.
        out_dim (int): Output size.
        allow_missing (bool, optional): Accept an absent key. (default: :obj:`False`)

    Shapes:
        - **input:** ``{m: (B, D_m)}``
        - **output:** :math:`(B, out\_dim)`
    """

    family = "unimodal"

    def __init__(self, modality_dims: Mapping[str, int], out_dim: int, allow_missing: bool = False) -> None:
        super().__init__(modality_dims, out_dim, allow_missing)
        if len(self.modality_dims) != 1:
            raise ValueError(
                f"UnimodalFusion takes exactly one modality, got {list(self.modality_dims)}; "
                "train each modality alone (TrainConfig(modalities=[m]))"
            )
        (self.modality, dim), = self.modality_dims.items()
        self.proj = nn.Identity() if dim == out_dim else nn.Linear(dim, out_dim)

    def forward(self, features: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None = None) -> Tensor:
        batch, mask = self.check_inputs(features, mask)
        return self.proj(self.filled(features, mask, batch)[self.modality])

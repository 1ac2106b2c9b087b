from __future__ import annotations

from torch import Tensor, nn

from wsfusion._validation import check_positive_int
from wsfusion.encoders.base import ModalityEncoder, conv_blocks


def _as_pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a pair (height, width), got {value!r}")
    for v in pair:
        check_positive_int(v, name)
    return pair  # type: ignore[return-value]


class VisualEncoder(ModalityEncoder):
    r"""A small CNN over images.

    Three ``Conv3x3 - BatchNorm - ReLU`` blocks (the first two followed by a
    2×2 max-pool), an adaptive average pool to a ``grid × grid`` map, and a
    linear projection of each grid cell to ``out_dim``: the cells are the
    tokens, and the pooled vector is made from them as
    :class:`ModalityEncoder` describes (``pool``; by default a projection of
    the flattened grid, so the layout is kept).

    .. math::
        \mathbf{t}_{p} = \mathbf{W} \, \mathrm{CNN}(\mathbf{x})_{p} + \mathbf{b}

    Args:
        in_channels (int, optional): Image channels. (default: :obj:`3`)
        image_size (int or (int, int), optional): Image height and width.
            (default: :obj:`32`)
        out_dim (int, optional): Output feature size. (default: :obj:`256`)
        channels (tuple of int, optional): Channels of the three conv blocks.
            (default: :obj:`(32, 64, 128)`)
        grid (int, optional): Side of the pooled token grid, so there are
            ``grid * grid`` tokens. (default: :obj:`4`)
        pool (str, optional): ``"flatten"``, ``"attention"`` or ``"mean"``
            (see :class:`ModalityEncoder`). (default: :obj:`"flatten"`)
        modality (str, optional): Name used in error messages.
            (default: :obj:`"visual"`)

    Shapes:
        - **input:** images :math:`(B, C, H, W)`
        - **output:** pooled :math:`(B, D)`; tokens :math:`(B, grid^2, D)`

    Example:
        >>> enc = VisualEncoder(in_channels=1, image_size=28)   # MNIST
        >>> enc(torch.randn(8, 1, 28, 28)).shape
        torch.Size([8, 256])
    """

    def __init__(
        self,
        in_channels: int = 3,
        image_size: int | tuple[int, int] = 32,
        out_dim: int = 256,
        channels: tuple[int, int, int] = (32, 64, 128),
        grid: int = 4,
        pool: str = "flatten",
        modality: str = "visual",
    ) -> None:
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        height, width = _as_pair(image_size, "image_size")
        self.modality = modality
        self.input_shape = (in_channels, height, width)
        self.out_dim = check_positive_int(out_dim, "out_dim")
        self.num_tokens = check_positive_int(grid, "grid") ** 2
        self.features = nn.Sequential(*conv_blocks(in_channels, channels), nn.AdaptiveAvgPool2d(grid))
        self.proj = nn.Linear(channels[-1], out_dim)
        if min(height, width) < 4:
            raise ValueError(f"image_size must be at least 4x4 (two 2x2 pools), got {height}x{width}")
        self.init_pool(pool)

    def tokens(self, x: Tensor, token_mask: Tensor | None = None) -> Tensor:
        fmap = self.features(x)  # [B, C, grid, grid]
        return self.proj(fmap.flatten(2).transpose(1, 2))

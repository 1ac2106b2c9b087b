from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from wsfusion._validation import check_heads, check_positive_int, check_probability, token_mask_from_key_padding
from wsfusion.fusion.base import FusionModule, as_tokens


class MultiModalTransformer(FusionModule):
    r"""A Transformer over the tokens of every modality plus a ``[CLS]`` token.

    Each modality's tokens are projected to ``embed_dim`` and tagged with a
    learned modality embedding :math:`\mathbf{e}_m`; the sequence
    :math:`[\mathrm{CLS}, \mathbf{X}_1, \ldots, \mathbf{X}_M]` goes through
    ``num_layers`` pre-norm Transformer layers, and the ``[CLS]`` output is
    projected to ``out_dim``:

    .. math::
        \mathbf{y} = \mathbf{W}_o \, \mathrm{LN}\Big(\mathrm{Transformer}
        \big([\mathbf{c}, \mathbf{X}_1\mathbf{W}_1 + \mathbf{e}_1, \ldots]\big)_{0}\Big)

    With pooled vectors the sequence is :math:`M + 1` tokens long, so the
    attention is still a real softmax over the modalities (unlike
    :class:`CrossModalAttention` on pooled vectors). Tokens of a missing
    modality and padded tokens are removed with a key-padding mask (not
    zero-filled). Mark padding with ``token_mask`` (:obj:`True` = a real token)
    or, with PyTorch's polarity, ``key_padding_mask`` (:obj:`True` = padding, as
    in :class:`torch.nn.MultiheadAttention`); ``key_padding_mask=m`` is
    ``token_mask=~m``, and passing both is a ``ValueError``.

    Args:
        modality_dims (Mapping[str, int]): Feature size of each modality.
        out_dim (int): Output size.
        embed_dim (int, optional): Transformer width. (default: :obj:`128`)
        num_heads (int, optional): Attention heads. (default: :obj:`4`)
        num_layers (int, optional): Transformer layers. (default: :obj:`2`)
        dropout (float, optional): Dropout. (default: :obj:`0.1`)
        allow_missing (bool, optional): Accept absent keys. (default: :obj:`False`)

    Shapes:
        - **input:** ``{m: (B, T_m, D_m)}`` or ``{m: (B, D_m)}``; optional
          ``mask {m: (B,)}`` bool (:obj:`True` = present), and
          ``token_mask {m: (B, T_m)}`` bool (:obj:`True` = a real token) or
          ``key_padding_mask {m: (B, T_m)}`` bool (:obj:`True` = padding)
        - **output:** :math:`(B, out\_dim)`
    """

    accepts_tokens = True

    def __init__(
        self,
        modality_dims: Mapping[str, int],
        out_dim: int,
        embed_dim: int = 128,
        num_heads: int = 4,
        num_layers: int = 2,
        dropout: float = 0.1,
        allow_missing: bool = False,
    ) -> None:
        super().__init__(modality_dims, out_dim, allow_missing)
        embed_dim, num_heads = check_heads(embed_dim, "embed_dim", num_heads, "num_heads")
        self.proj = nn.ModuleDict({m: nn.Linear(d, embed_dim) for m, d in self.modality_dims.items()})
        self.modality_embedding = nn.Parameter(torch.empty(len(self.modalities), embed_dim))
        self.cls = nn.Parameter(torch.empty(1, 1, embed_dim))
        layer = nn.TransformerEncoderLayer(
            embed_dim, num_heads, dim_feedforward=2 * embed_dim,
            dropout=check_probability(dropout, "dropout"), batch_first=True, norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(
            layer, check_positive_int(num_layers, "num_layers"), enable_nested_tensor=False
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, out_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        nn.init.normal_(self.modality_embedding, std=0.02)
        nn.init.normal_(self.cls, std=0.02)

    def forward(
        self,
        features: Mapping[str, Tensor],
        mask: Mapping[str, Tensor] | None = None,
        token_mask: Mapping[str, Tensor] | None = None,
        *,
        key_padding_mask: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        batch, mask = self.check_inputs(features, mask)
        token_mask = token_mask_from_key_padding(features, token_mask, key_padding_mask, type(self).__name__)
        real = self.check_token_mask(features, token_mask)
        sequence = [self.cls.expand(batch, -1, -1)]
        padding = [torch.zeros(batch, 1, dtype=torch.bool, device=self.cls.device)]
        for i, name in enumerate(self.modalities):
            if name not in features:
                continue
            tokens = self.proj[name](as_tokens(features[name])) + self.modality_embedding[i]
            sequence.append(tokens)
            padding.append(~mask[name].view(-1, 1) | ~real[name])
        out = self.transformer(torch.cat(sequence, dim=1), src_key_padding_mask=torch.cat(padding, dim=1))
        return self.head(self.norm(out[:, 0]))

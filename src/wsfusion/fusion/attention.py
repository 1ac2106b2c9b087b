from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from wsfusion._validation import check_heads, check_probability, token_mask_from_key_padding
from wsfusion.fusion.base import FusionModule, as_tokens


class CrossModalAttention(FusionModule):
    r"""Pairwise cross-modal attention (MulT-style, Tsai et al. 2019).

    Every modality's tokens are projected to ``embed_dim``; for each ordered
    pair :math:`m \to n` (:math:`m \neq n`) the tokens of :math:`n` attend over
    the tokens of :math:`m`, the results are added residually, normalised and
    mean-pooled per target modality, and a linear head reads the concatenation:

    .. math::
        \mathbf{H}_n = \mathrm{LN}\Big(\mathbf{X}_n + \sum_{m \neq n}
            \mathrm{MHA}_{m \to n}(\mathbf{X}_n, \mathbf{X}_m, \mathbf{X}_m)\Big), \qquad
        \mathbf{y} = \mathbf{W}_o \big[\overline{\mathbf{H}}_1 \| \cdots \| \overline{\mathbf{H}}_M\big]

    **Give it token sequences.** With pooled vectors each modality is a single
    token, the softmax over one key is always 1, and
    :math:`\mathrm{MHA}_{m \to n}` collapses to a learned linear map of
    :math:`\mathbf{z}_m` (its query and key projections receive no gradient).
    That is what the notebook's "cross-modal attention" computed; it is kept
    working for comparison, but it is not attention. Use the encoders' tokens,
    ``encoder.encode_tokens(x, input_mask)`` (``MultiModalNetwork`` does this
    automatically for modules with ``accepts_tokens``).

    A missing modality sends nothing (its attention terms are dropped for the
    samples where it is missing) and its slot in the output is zero. Padded
    tokens are masked out of every attention as keys and left out of the mean
    over a modality's tokens; mark them with ``token_mask`` (:obj:`True` = a
    real token) or, with PyTorch's polarity, ``key_padding_mask``
    (:obj:`True` = padding, as in :class:`torch.nn.MultiheadAttention`):
    ``key_padding_mask=m`` is ``token_mask=~m``, and passing both is a
    ``ValueError``.

    Args:
        modality_dims (Mapping[str, int]): Feature size of each modality.
        out_dim (int): Output size.
        embed_dim (int, optional): Attention width. (default: :obj:`128`)
        num_heads (int, optional): Attention heads. (default: :obj:`4`)
        dropout (float, optional): Attention dropout. (default: :obj:`0.1`)
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
        dropout: float = 0.1,
        allow_missing: bool = False,
    ) -> None:
        super().__init__(modality_dims, out_dim, allow_missing)
        embed_dim, num_heads = check_heads(embed_dim, "embed_dim", num_heads, "num_heads")
        dropout = check_probability(dropout, "dropout")
        self.proj = nn.ModuleDict({m: nn.Linear(d, embed_dim) for m, d in self.modality_dims.items()})
        self.attn = nn.ModuleDict({
            f"{src}->{dst}": nn.MultiheadAttention(embed_dim, num_heads, dropout=dropout, batch_first=True)
            for dst in self.modalities for src in self.modalities if src != dst
        })
        self.norm = nn.ModuleDict({m: nn.LayerNorm(embed_dim) for m in self.modalities})
        self.head = nn.Linear(len(self.modalities) * embed_dim, out_dim)

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
        tokens = {m: self.proj[m](as_tokens(x)) for m, x in features.items()}
        # A sample whose tokens are all padding sends nothing, like a missing modality.
        sends = {m: mask[m] & real[m].any(dim=1) for m in tokens}
        # ... and its keys stay unmasked, so that no softmax row is empty (NaN).
        key_padding = {m: ~real[m] & real[m].any(dim=1, keepdim=True) for m in tokens}
        ref = next(iter(tokens.values()))
        pooled = []
        for dst in self.modalities:
            if dst not in tokens:
                pooled.append(ref.new_zeros(batch, ref.shape[-1]))
                continue
            h = tokens[dst]
            for src, kv in tokens.items():
                if src != dst:
                    attended, _ = self.attn[f"{src}->{dst}"](h, kv, kv, key_padding_mask=key_padding[src],
                                                             need_weights=False)
                    h = h + attended * sends[src].to(h.dtype).view(-1, 1, 1)
            weight = real[dst].to(h.dtype).unsqueeze(-1)
            mean = (self.norm[dst](h) * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1.0)
            pooled.append(mean * mask[dst].to(h.dtype).view(-1, 1))
        return self.head(torch.cat(pooled, dim=-1))

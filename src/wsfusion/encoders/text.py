from __future__ import annotations

import torch
from torch import Tensor, nn

from wsfusion._validation import check_heads, check_positive_int, check_probability
from wsfusion.encoders.base import ModalityEncoder


class TextEncoder(ModalityEncoder):
    r"""Self-attention over a sequence of token embeddings.

    The input embeddings are projected to ``out_dim``, a learned positional
    embedding is added, and ``num_layers`` pre-norm Transformer encoder layers
    mix the tokens; their outputs are the tokens, pooled as
    :class:`ModalityEncoder` describes (``pool``).

    .. math::
        \mathbf{T} = \mathrm{Transformer}(\mathbf{X}\mathbf{W} + \mathbf{P})

    **Padding.** ``input_mask`` ``[B, seq_len]`` marks the real tokens: padded
    ones are zeroed, never attended to (a key-padding mask) and left out of the
    pooled vector.

    Args:
        in_dim (int, optional): Size of each input token embedding.
            (default: :obj:`128`)
        seq_len (int, optional): Number of tokens. (default: :obj:`20`)
        out_dim (int, optional): Output feature size. (default: :obj:`256`)
        num_heads (int, optional): Attention heads. (default: :obj:`4`)
        num_layers (int, optional): Transformer layers. (default: :obj:`1`)
        dropout (float, optional): Dropout in the Transformer layers.
            (default: :obj:`0.1`)
        pool (str, optional): ``"flatten"``, ``"attention"`` or ``"mean"``
            (see :class:`ModalityEncoder`). (default: :obj:`"flatten"`)
        modality (str, optional): Name used in error messages.
            (default: :obj:`"text"`)

    Shapes:
        - **input:** token embeddings :math:`(B, T, F_{in})`; optional ``input_mask`` :math:`(B, T)` bool
        - **output:** pooled :math:`(B, D)`; tokens :math:`(B, T, D)`
    """

    def __init__(
        self,
        in_dim: int = 128,
        seq_len: int = 20,
        out_dim: int = 256,
        num_heads: int = 4,
        num_layers: int = 1,
        dropout: float = 0.1,
        pool: str = "flatten",
        modality: str = "text",
    ) -> None:
        super().__init__()
        self.modality = modality
        self.input_shape = (check_positive_int(seq_len, "seq_len"), check_positive_int(in_dim, "in_dim"))
        self.out_dim = check_positive_int(out_dim, "out_dim")
        self.num_tokens = seq_len
        self.sequence_length = seq_len
        check_heads(out_dim, "out_dim", num_heads, "num_heads")
        self.embed = nn.Linear(in_dim, out_dim)
        self.position = nn.Parameter(torch.zeros(1, seq_len, out_dim))
        layer = nn.TransformerEncoderLayer(
            out_dim, num_heads, dim_feedforward=2 * out_dim,
            dropout=check_probability(dropout, "dropout"), batch_first=True, norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(
            layer, check_positive_int(num_layers, "num_layers"), enable_nested_tensor=False
        )
        self.norm = nn.LayerNorm(out_dim)
        nn.init.normal_(self.position, std=0.02)
        self.init_pool(pool)

    def mask_input(self, x: Tensor, input_mask: Tensor) -> Tensor:
        return x * input_mask.unsqueeze(-1).to(x.dtype)

    def token_mask(self, input_mask: Tensor) -> Tensor:
        return input_mask

    def tokens(self, x: Tensor, token_mask: Tensor | None = None) -> Tensor:
        padding = None
        if token_mask is not None:
            # A sample with no real token attends over all (zeroed) positions instead of a NaN softmax;
            # its tokens are all padding and pooled to nothing anyway.
            padding = ~token_mask & token_mask.any(dim=1, keepdim=True)
        return self.norm(self.transformer(self.embed(x) + self.position, src_key_padding_mask=padding))

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from wsfusion._validation import check_tensor, format_shape

#: How an encoder turns its tokens into the pooled vector (see :class:`ModalityEncoder`).
POOLS = ("flatten", "attention", "mean")


def conv_blocks(in_channels: int, channels: tuple[int, int, int]) -> list[nn.Module]:
    """Three ``Conv3x3 - BatchNorm - ReLU`` blocks, the first two followed by a 2x2 max-pool."""
    if len(channels) != 3:
        raise ValueError(f"channels must list 3 conv widths, got {channels!r}")
    c1, c2, c3 = channels
    return [
        nn.Conv2d(in_channels, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c2, c3, 3, padding=1), nn.BatchNorm2d(c3), nn.ReLU(),
    ]


class ModalityEncoder(nn.Module):
    r"""Base class of the modality encoders.

    An encoder maps one modality's raw input ``[B, *input_shape]`` to its
    token sequence ``[B, num_tokens, out_dim]`` (spatial positions, words,
    time frames) and to a pooled vector ``[B, out_dim]`` made from the tokens
    by one of three ``pool`` rules:

    .. math::
        \mathbf{z}_{\mathrm{flatten}} = \mathbf{W}_p\,[\mathbf{t}_1 \| \cdots \| \mathbf{t}_T] + \mathbf{b}_p,
        \qquad
        \mathbf{z}_{\mathrm{attention}} = \sum_t \mathrm{softmax}_t\Big(
            \frac{\mathbf{q}^\top \mathbf{t}_t}{\sqrt{D}}\Big)\,\mathbf{t}_t,
        \qquad
        \mathbf{z}_{\mathrm{mean}} = \frac{1}{T} \sum_t \mathbf{t}_t

    ``"flatten"`` (the default) keeps the layout: which grid cell or time step a
    feature came from still matters to the pooled vector. ``"mean"`` throws
    the layout away. Measured on AV-digits hard (two small CNNs, 64-d
    features, 20 epochs, seeds 100-102; validation / test accuracy; chosen on
    validation; ``benchmarks/encoder_pooling.py``):

    ===========  =============  =============  ===============
    pool         image only     audio only     concat (early)
    ===========  =============  =============  ===============
    flatten      0.554 / 0.530  0.647 / 0.642  0.795 / 0.791
    attention    0.357 / 0.339  0.669 / 0.649  0.729 / 0.698
    mean         0.355 / 0.342  0.667 / 0.634  0.730 / 0.701
    ===========  =============  =============  ===============

    Flattening costs ``num_tokens * out_dim * out_dim`` parameters (about a
    million at the notebook's 256-d features); ``"attention"`` costs
    ``out_dim``.

    **Padding.** Encoders of sequences (audio frames, text tokens) take an
    optional ``input_mask`` ``[B, L]`` (:obj:`True` = a real position along the
    sequence axis): padded input positions are zeroed before encoding, padded
    tokens (:meth:`token_mask`) are left out of the pooling and, in the text
    encoder, are not attended to. What a padded position holds then changes
    nothing.

    Token fusions read :meth:`encode_tokens` and never the pooled vector, so
    an encoder built for one needs no pooling parameters: give it
    ``pool="mean"`` (the trainer does).

    Subclasses set :attr:`modality`, :attr:`input_shape`, :attr:`out_dim`,
    :attr:`num_tokens` (then call :meth:`init_pool`), and implement
    :meth:`tokens`; sequence encoders also implement :meth:`mask_input` and
    :meth:`token_mask`.
    """

    modality: str
    input_shape: tuple[int, ...]
    out_dim: int
    num_tokens: int
    #: Length of the sequence axis that ``input_mask`` covers (``None``: no sequence axis).
    sequence_length: int | None = None

    def init_pool(self, pool: str) -> None:
        """Create the pooling parameters; call once ``out_dim`` and ``num_tokens`` are set."""
        if pool not in POOLS:
            raise ValueError(f"{self.modality!r} encoder: pool must be one of {POOLS}, got {pool!r}")
        self.pool = pool
        self.pool_proj = nn.Linear(self.num_tokens * self.out_dim, self.out_dim) if pool == "flatten" else None
        self.pool_query = nn.Parameter(torch.empty(self.out_dim)) if pool == "attention" else None
        self.reset_pool_parameters()

    def reset_pool_parameters(self) -> None:
        if self.pool_proj is not None:
            self.pool_proj.reset_parameters()
        if self.pool_query is not None:
            nn.init.normal_(self.pool_query, std=1.0 / math.sqrt(self.out_dim))

    def tokens(self, x: Tensor, token_mask: Tensor | None = None) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def mask_input(self, x: Tensor, input_mask: Tensor) -> Tensor:  # pragma: no cover - sequence encoders
        raise NotImplementedError

    def token_mask(self, input_mask: Tensor) -> Tensor:
        """``[B, num_tokens]`` bool: the tokens that see at least one real input position."""
        raise TypeError(f"the {self.modality!r} encoder has no sequence axis: it takes no input_mask")

    def check_input(self, x: object) -> Tensor:
        """Raise a ``ValueError``/``TypeError`` naming the modality for bad input."""
        return check_tensor(x, f"{self.modality!r} input", ("B", *self.input_shape))

    def check_input_mask(self, input_mask: object, batch: int) -> Tensor:
        """``input_mask`` must be a bool ``[B, sequence_length]`` tensor."""
        if self.sequence_length is None:
            raise TypeError(f"the {self.modality!r} encoder has no sequence axis: it takes no input_mask")
        expected = f"[{batch}, {self.sequence_length}]"
        if not isinstance(input_mask, Tensor) or input_mask.dtype != torch.bool:
            got = f"dtype {input_mask.dtype}" if isinstance(input_mask, Tensor) else type(input_mask).__name__
            raise TypeError(f"{self.modality!r} input_mask must be a bool tensor of shape {expected}, got {got}")
        if tuple(input_mask.shape) != (batch, self.sequence_length):
            raise ValueError(
                f"{self.modality!r} input_mask must have shape {expected}, got {format_shape(tuple(input_mask.shape))}"
            )
        return input_mask

    def pool_tokens(self, tokens: Tensor, token_mask: Tensor | None = None) -> Tensor:
        """The pooled vector ``[B, out_dim]`` of ``tokens`` (padded tokens left out)."""
        if token_mask is not None:
            tokens = tokens * token_mask.unsqueeze(-1).to(tokens.dtype)
        if self.pool == "flatten":
            return self.pool_proj(tokens.flatten(1))
        if self.pool == "mean":
            if token_mask is None:
                return tokens.mean(dim=1)
            count = token_mask.sum(dim=1, keepdim=True).clamp(min=1).to(tokens.dtype)
            return tokens.sum(dim=1) / count
        score = tokens @ self.pool_query / math.sqrt(self.out_dim)
        if token_mask is not None:
            score = score.masked_fill(~token_mask, torch.finfo(score.dtype).min)
        weights = torch.softmax(score, dim=1)
        if token_mask is not None:
            weights = weights * token_mask.to(weights.dtype)  # a sample without tokens pools to zero
        return (weights.unsqueeze(-1) * tokens).sum(dim=1)

    def encode_tokens(self, x: Tensor, input_mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The token sequence ``[B, num_tokens, out_dim]`` and its token mask ``[B, num_tokens]``
        (:obj:`None` without ``input_mask``); what token fusions read, no pooling."""
        x = self.check_input(x)
        token_mask = None
        if input_mask is not None:
            input_mask = self.check_input_mask(input_mask, x.shape[0]).to(x.device)
            x = self.mask_input(x, input_mask)
            token_mask = self.token_mask(input_mask)
        return self.tokens(x, token_mask), token_mask

    def forward(
        self, x: Tensor, return_tokens: bool = False, input_mask: Tensor | None = None
    ) -> Tensor | tuple[Tensor, Tensor]:
        r"""
        Args:
            x (torch.Tensor): The raw input ``[B, *input_shape]``.
            return_tokens (bool, optional): Also return the token sequence.
                (default: :obj:`False`)
            input_mask (torch.Tensor, optional): Bool ``[B, L]`` marking the
                real positions of a padded sequence (:obj:`None`: all real).
                (default: :obj:`None`)

        Returns:
            The pooled vector ``[B, out_dim]``, or ``(pooled, tokens)`` with
            tokens ``[B, num_tokens, out_dim]`` when ``return_tokens=True``
            (padded tokens are still there: mask them with :meth:`token_mask`).
        """
        tokens, token_mask = self.encode_tokens(x, input_mask)
        pooled = self.pool_tokens(tokens, token_mask)
        return (pooled, tokens) if return_tokens else pooled

    def extra_repr(self) -> str:
        return (
            f"modality={self.modality!r}, input_shape={list(self.input_shape)}, "
            f"out_dim={self.out_dim}, num_tokens={self.num_tokens}, pool={self.pool!r}"
        )

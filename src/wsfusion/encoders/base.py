from __future__ import annotations

from torch import Tensor, nn

from wsfusion._validation import check_tensor


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

    An encoder maps one modality's raw input ``[B, *input_shape]`` to a pooled
    vector ``[B, out_dim]`` and, when asked, to its token sequence
    ``[B, num_tokens, out_dim]`` (spatial positions, words, time frames).
    The pooled vector is always the mean of the tokens, so the two views agree.

    Subclasses set :attr:`modality`, :attr:`input_shape`, :attr:`out_dim` and
    :attr:`num_tokens`, and implement :meth:`tokens`.
    """

    modality: str
    input_shape: tuple[int, ...]
    out_dim: int
    num_tokens: int

    def tokens(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_input(self, x: object) -> Tensor:
        """Raise a ``ValueError``/``TypeError`` naming the modality for bad input."""
        return check_tensor(x, f"{self.modality!r} input", ("B", *self.input_shape))

    def forward(self, x: Tensor, return_tokens: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        r"""
        Args:
            x (torch.Tensor): The raw input ``[B, *input_shape]``.
            return_tokens (bool, optional): Also return the token sequence.
                (default: :obj:`False`)

        Returns:
            The pooled vector ``[B, out_dim]``, or ``(pooled, tokens)`` with
            tokens ``[B, num_tokens, out_dim]`` when ``return_tokens=True``.
        """
        tokens = self.tokens(self.check_input(x))
        pooled = tokens.mean(dim=1)
        return (pooled, tokens) if return_tokens else pooled

    def extra_repr(self) -> str:
        return (
            f"modality={self.modality!r}, input_shape={list(self.input_shape)}, "
            f"out_dim={self.out_dim}, num_tokens={self.num_tokens}"
        )

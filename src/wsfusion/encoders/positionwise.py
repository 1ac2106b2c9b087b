from __future__ import annotations

from torch import Tensor

from wsfusion._validation import check_positive_int
from wsfusion.encoders.base import ModalityEncoder


class PositionwiseEncoder(ModalityEncoder):
    r"""One encoder shared by every position of a sequence of images or spectrograms.

    The input holds :math:`S` positions, each an input of the ``inner`` encoder
    (an image :math:`[C, H, W]`, a spectrogram :math:`[C, F, T]`). The positions are
    folded into the batch, encoded by ``inner`` with one set of weights, and their
    tokens concatenated in position order, so position :math:`s` owns tokens
    :math:`[s p, (s + 1) p)` of the :math:`S p` tokens (:math:`p` = ``inner.num_tokens``):

    .. math::
        \mathbf{T}(\mathbf{x}) = \big[\, \mathrm{inner}(\mathbf{x}_1) \,\|\,
        \mathrm{inner}(\mathbf{x}_2) \,\|\, \cdots \,\|\, \mathrm{inner}(\mathbf{x}_S) \,\big]

    The pooled vector is made from all :math:`S p` tokens by ``pool``, as
    :class:`ModalityEncoder` describes (``"flatten"`` keeps which position and
    which token a feature came from). ``inner``'s own pooling is never used, so it
    must be the parameter-free ``"mean"``. Positions are never padded: there is no
    ``input_mask``.

    In training mode ``inner``'s batch norms see every position of the batch
    together; in evaluation mode the tokens of position :math:`s` are exactly
    ``inner``'s tokens of :math:`\mathbf{x}_s`.

    Args:
        inner (ModalityEncoder): The per-position encoder, with ``pool="mean"``.
        length (int): Positions :math:`S` per sample.
        pool (str, optional): ``"flatten"``, ``"attention"`` or ``"mean"``
            (see :class:`ModalityEncoder`). (default: :obj:`"flatten"`)

    Shapes:
        - **input:** :math:`(B, S, *\mathrm{inner.input\_shape})`
        - **output:** pooled :math:`(B, D)`; tokens :math:`(B, S p, D)`

    Example:
        >>> inner = VisualEncoder(in_channels=1, image_size=28, out_dim=64, pool="mean")
        >>> enc = PositionwiseEncoder(inner, length=4)
        >>> enc(torch.randn(2, 4, 1, 28, 28), return_tokens=True)[1].shape
        torch.Size([2, 64, 64])
    """

    def __init__(self, inner: ModalityEncoder, length: int, pool: str = "flatten") -> None:
        super().__init__()
        if not isinstance(inner, ModalityEncoder):
            raise TypeError(f"inner must be a ModalityEncoder, got {type(inner).__name__}")
        if inner.pool != "mean":
            raise ValueError(f"inner's pooling is never used, so it must be the parameter-free 'mean', "
                             f"got pool={inner.pool!r}")
        self.length = check_positive_int(length, "length")
        self.inner = inner
        self.modality = inner.modality
        self.input_shape = (self.length, *inner.input_shape)
        self.out_dim = inner.out_dim
        self.num_tokens = self.length * inner.num_tokens
        self.init_pool(pool)

    def tokens(self, x: Tensor, token_mask: Tensor | None = None) -> Tensor:
        batch = x.shape[0]
        folded = x.reshape(batch * self.length, *self.inner.input_shape)
        return self.inner.tokens(folded).reshape(batch, self.num_tokens, self.out_dim)

    def extra_repr(self) -> str:
        return f"length={self.length}, " + super().extra_repr()

from __future__ import annotations

from torch import Tensor, nn

from wsfusion._validation import check_positive_int
from wsfusion.encoders.base import ModalityEncoder, conv_blocks


class AudioEncoder(ModalityEncoder):
    r"""A CNN over a (mel or MFCC) spectrogram, with one token per time step.

    Two ``Conv3x3 - BatchNorm - ReLU - MaxPool2x2`` blocks and a third conv
    block shrink the spectrogram ``[n_freq, n_frames]`` to
    ``[n_freq / 4, n_frames / 4]``; each of the ``n_frames // 4`` remaining
    time steps is a token, the projection of its whole (channel x frequency)
    column, so no frequency band is averaged away. The pooled vector is made
    from the tokens as :class:`ModalityEncoder` describes (``pool``).

    .. math::
        \mathbf{t}_{\tau} = \mathbf{W} \, \mathrm{vec}\big(
        \mathrm{CNN}(\mathbf{S} \odot \mathbf{m})_{:, :, \tau}\big) + \mathbf{b}

    **Padding.** ``input_mask`` ``[B, n_frames]`` marks the real frames
    (:attr:`wsfusion.data.AVDigits.audio_mask`): padded frames are zeroed
    before the CNN, and a token is padding when none of its 4 frames is real,
    so it is left out of the pooled vector and of the token fusions' attention.

    Args:
        in_channels (int, optional): Spectrogram channels. (default: :obj:`1`)
        n_freq (int, optional): Frequency bins (64 mel bands, 13 MFCCs, ...).
            (default: :obj:`64`)
        n_frames (int, optional): Time frames. (default: :obj:`100`)
        out_dim (int, optional): Output feature size. (default: :obj:`256`)
        channels (tuple of int, optional): Channels of the three conv blocks.
            (default: :obj:`(32, 64, 128)`)
        pool (str, optional): ``"flatten"``, ``"attention"`` or ``"mean"``
            (see :class:`ModalityEncoder`). (default: :obj:`"flatten"`)
        modality (str, optional): Name used in error messages.
            (default: :obj:`"audio"`)

    Shapes:
        - **input:** spectrogram :math:`(B, C, F, T)`; optional ``input_mask`` :math:`(B, T)` bool
        - **output:** pooled :math:`(B, D)`; tokens :math:`(B, \lfloor T/4 \rfloor, D)`

    Example:
        >>> enc = AudioEncoder(n_freq=13, n_frames=40)   # 13 MFCCs x 40 frames
        >>> enc(torch.randn(8, 1, 13, 40), return_tokens=True)[1].shape
        torch.Size([8, 10, 256])
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_freq: int = 64,
        n_frames: int = 100,
        out_dim: int = 256,
        channels: tuple[int, int, int] = (32, 64, 128),
        pool: str = "flatten",
        modality: str = "audio",
    ) -> None:
        super().__init__()
        self.modality = modality
        self.input_shape = (
            check_positive_int(in_channels, "in_channels"),
            check_positive_int(n_freq, "n_freq"),
            check_positive_int(n_frames, "n_frames"),
        )
        if n_freq < 4 or n_frames < 4:
            raise ValueError(f"the spectrogram must be at least 4x4 (two 2x2 pools), got {n_freq}x{n_frames}")
        self.out_dim = check_positive_int(out_dim, "out_dim")
        self.num_tokens = n_frames // 4
        self.sequence_length = n_frames
        self.features = nn.Sequential(*conv_blocks(in_channels, channels))
        self.proj = nn.Linear(channels[-1] * (n_freq // 4), out_dim)
        self.init_pool(pool)

    def mask_input(self, x: Tensor, input_mask: Tensor) -> Tensor:
        return x * input_mask[:, None, None, :].to(x.dtype)

    def token_mask(self, input_mask: Tensor) -> Tensor:
        return input_mask[:, : 4 * self.num_tokens].reshape(-1, self.num_tokens, 4).any(dim=-1)

    def tokens(self, x: Tensor, token_mask: Tensor | None = None) -> Tensor:
        fmap = self.features(x)  # [B, C, F/4, T/4]
        return self.proj(fmap.flatten(1, 2).transpose(1, 2))

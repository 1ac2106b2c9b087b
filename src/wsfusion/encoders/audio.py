from __future__ import annotations

from torch import Tensor, nn

from wsfusion._validation import check_positive_int
from wsfusion.encoders.base import ModalityEncoder, conv_blocks


class AudioEncoder(ModalityEncoder):
    r"""A CNN over a (mel or MFCC) spectrogram, with one token per time step.

    Two ``Conv3x3 - BatchNorm - ReLU - MaxPool2x2`` blocks and a third conv
    block shrink the spectrogram ``[n_freq, n_frames]`` to
    ``[n_freq / 4, n_frames / 4]``; frequency is averaged out and each of the
    ``n_frames // 4`` remaining time steps is projected to ``out_dim``.

    .. math::
        \mathbf{t}_{\tau} = \mathbf{W} \, \frac{1}{F'} \sum_{f}
        \mathrm{CNN}(\mathbf{S})_{f, \tau} + \mathbf{b},
        \qquad \mathbf{z} = \frac{1}{T'} \sum_{\tau} \mathbf{t}_{\tau}

    Args:
        in_channels (int, optional): Spectrogram channels. (default: :obj:`1`)
        n_freq (int, optional): Frequency bins (64 mel bands, 13 MFCCs, ...).
            (default: :obj:`64`)
        n_frames (int, optional): Time frames. (default: :obj:`100`)
        out_dim (int, optional): Output feature size. (default: :obj:`256`)
        channels (tuple of int, optional): Channels of the three conv blocks.
            (default: :obj:`(32, 64, 128)`)
        modality (str, optional): Name used in error messages.
            (default: :obj:`"audio"`)

    Shapes:
        - **input:** spectrogram :math:`(B, C, F, T)`
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
        self.features = nn.Sequential(*conv_blocks(in_channels, channels))
        self.proj = nn.Linear(channels[-1], out_dim)

    def tokens(self, x: Tensor) -> Tensor:
        fmap = self.features(x)  # [B, C, F/4, T/4]
        return self.proj(fmap.mean(dim=2).transpose(1, 2))

"""Modality encoders: raw input -> pooled vector ``[B, D]`` and tokens ``[B, T, D]``.

The defaults follow the notebook's shapes: visual ``[3, 32, 32]``, text
``[20, 128]``, audio ``[1, 64, 100]``, all with output size 256.
"""

from wsfusion.encoders.audio import AudioEncoder
from wsfusion.encoders.base import POOLS, ModalityEncoder
from wsfusion.encoders.positionwise import PositionwiseEncoder
from wsfusion.encoders.text import TextEncoder
from wsfusion.encoders.visual import VisualEncoder

__all__ = ["POOLS", "ModalityEncoder", "VisualEncoder", "TextEncoder", "AudioEncoder", "PositionwiseEncoder",
           "default_encoders", "encoder_for"]


def default_encoders(out_dim: int = 256) -> dict[str, ModalityEncoder]:
    """The notebook's three encoders: visual ``[3, 32, 32]``, text ``[20, 128]``, audio ``[1, 64, 100]``."""
    return {
        "visual": VisualEncoder(out_dim=out_dim),
        "text": TextEncoder(out_dim=out_dim),
        "audio": AudioEncoder(out_dim=out_dim),
    }


def encoder_for(
    modality: str,
    shape: tuple[int, ...],
    out_dim: int = 256,
    channels: tuple[int, int, int] = (32, 64, 128),
    pool: str = "flatten",
) -> ModalityEncoder:
    """An encoder for one modality's per-sample input ``shape``.

    ``[T, F]`` token embeddings get a :class:`TextEncoder`; ``[C, F, T]``
    for a modality named ``"audio"`` (or starting with it) an
    :class:`AudioEncoder`; any other ``[C, H, W]`` a :class:`VisualEncoder`.
    A leading position axis, ``[S, C, H, W]`` or ``[S, C, F, T]``
    (:class:`~wsfusion.data.AVDigitStrings`), gets a :class:`PositionwiseEncoder`
    around the encoder of one position: ``S`` times its tokens, in position order.
    ``channels`` sets the CNN widths, ``pool`` how tokens become the pooled
    vector (:data:`POOLS`).

    Example:
        >>> encoder_for("audio", (1, 13, 48), out_dim=64).num_tokens
        12
        >>> encoder_for("audio", (16, 1, 13, 64), out_dim=64).num_tokens   # 16 positions x 16 tokens
        256
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        return TextEncoder(in_dim=shape[1], seq_len=shape[0], out_dim=out_dim, pool=pool, modality=modality)
    if len(shape) == 3 and modality.startswith("audio"):
        return AudioEncoder(shape[0], shape[1], shape[2], out_dim=out_dim, channels=channels, pool=pool,
                            modality=modality)
    if len(shape) == 3:
        return VisualEncoder(shape[0], (shape[1], shape[2]), out_dim=out_dim, channels=channels, pool=pool,
                             modality=modality)
    if len(shape) == 4:
        inner = encoder_for(modality, shape[1:], out_dim, channels, pool="mean")
        return PositionwiseEncoder(inner, shape[0], pool=pool)
    raise ValueError(
        f"no encoder for modality {modality!r} with per-sample shape {list(shape)}: "
        "expected [T, F] tokens, a [C, H, W] image / [C, F, T] spectrogram, or [S, ...] positions of those"
    )

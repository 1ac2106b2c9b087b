"""Modality encoders: raw input -> pooled vector ``[B, D]`` and tokens ``[B, T, D]``.

The defaults follow the notebook's shapes: visual ``[3, 32, 32]``, text
``[20, 128]``, audio ``[1, 64, 100]``, all with output size 256.
"""

from wsfusion.encoders.audio import AudioEncoder
from wsfusion.encoders.base import ModalityEncoder
from wsfusion.encoders.text import TextEncoder
from wsfusion.encoders.visual import VisualEncoder

__all__ = ["ModalityEncoder", "VisualEncoder", "TextEncoder", "AudioEncoder", "default_encoders"]


def default_encoders(out_dim: int = 256) -> dict[str, ModalityEncoder]:
    """The notebook's three encoders: visual ``[3, 32, 32]``, text ``[20, 128]``, audio ``[1, 64, 100]``."""
    return {
        "visual": VisualEncoder(out_dim=out_dim),
        "text": TextEncoder(out_dim=out_dim),
        "audio": AudioEncoder(out_dim=out_dim),
    }

"""Fusion strategies, one interface: ``forward(features: Mapping[str, Tensor]) -> [B, out_dim]``.

Build any of them by name with :func:`build`; :func:`available` lists the names.
"""

from wsfusion.fusion.attention import CrossModalAttention
from wsfusion.fusion.base import FusionModule
from wsfusion.fusion.early import EarlyFusion
from wsfusion.fusion.hybrid import HybridFusion
from wsfusion.fusion.late import LateFusion
from wsfusion.fusion.masked_ws import MaskedWSFusion, SparseWSFusion
from wsfusion.fusion.registry import available, build, describe, fusion_class, options, register
from wsfusion.fusion.tensor import LowRankTensorFusion, TensorFusion
from wsfusion.fusion.transformer import MultiModalTransformer
from wsfusion.fusion.unimodal import UnimodalFusion
from wsfusion.fusion.ws_graph import WSGraphFusion
from wsfusion.fusion.ws_transformer import WSTransformerFusion

register("early")(EarlyFusion)
register("late")(LateFusion)
register("hybrid")(HybridFusion)
register("attention")(CrossModalAttention)
register("transformer")(MultiModalTransformer)
register("tensor")(TensorFusion)
register("low-rank")(LowRankTensorFusion)
register("ws-dense")(MaskedWSFusion)
register("ws-sparse")(SparseWSFusion)
register("ws-gnn")(WSGraphFusion)
register("ws-transformer")(WSTransformerFusion)
register("unimodal")(UnimodalFusion)

__all__ = [
    "FusionModule",
    "EarlyFusion",
    "LateFusion",
    "HybridFusion",
    "CrossModalAttention",
    "MultiModalTransformer",
    "MaskedWSFusion",
    "SparseWSFusion",
    "WSGraphFusion",
    "WSTransformerFusion",
    "UnimodalFusion",
    "TensorFusion",
    "LowRankTensorFusion",
    "build",
    "available",
    "describe",
    "fusion_class",
    "options",
    "register",
]

"""``MultiModalNetwork``: modality encoders + one fusion module + an optional head."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from wsfusion._validation import check_modality_keys
from wsfusion.encoders import ModalityEncoder
from wsfusion.fusion import FusionModule


class MultiModalNetwork(nn.Module):
    r"""Encoders, a fusion module and a head, keyed by modality name.

    .. math::
        \mathbf{y} = \mathrm{head}\big(\mathrm{fusion}(\{m: \mathrm{enc}_m(\mathbf{x}_m)\}_m)\big)

    Encoders are asked for token sequences when the fusion module accepts
    them (:attr:`FusionModule.accepts_tokens`), otherwise for pooled vectors.
    A modality absent from the inputs (allowed when the fusion module was
    built with ``allow_missing=True``) is not encoded at all.

    Args:
        encoders (Mapping[str, nn.Module]): One encoder per modality; each
            returns ``[B, D_m]`` (and ``(pooled, tokens)`` with
            ``return_tokens=True`` if the fusion takes tokens).
        fusion (FusionModule): The fusion; its modalities and feature sizes
            must match the encoders'.
        head (nn.Module, optional): Applied to the fused ``[B, out_dim]``;
            :obj:`None` returns the fused features. (default: :obj:`None`)

    Shapes:
        - **input:** ``{m: (B, *input_shape_m)}``, optional ``mask {m: (B,)}`` bool
        - **output:** :math:`(B, out\_dim)` or the head's output

    Example:
        >>> from wsfusion.encoders import default_encoders
        >>> from wsfusion.fusion import build
        >>> encoders = default_encoders()
        >>> fusion = build("late", {m: e.out_dim for m, e in encoders.items()}, out_dim=10)
        >>> model = MultiModalNetwork(encoders, fusion)
    """

    def __init__(self, encoders: Mapping[str, nn.Module], fusion: FusionModule, head: nn.Module | None = None) -> None:
        super().__init__()
        if not isinstance(fusion, FusionModule):
            raise TypeError(f"fusion must be a wsfusion.fusion.FusionModule, got {type(fusion).__name__}")
        if not isinstance(encoders, Mapping) or set(encoders) != set(fusion.modalities):
            got = list(encoders) if isinstance(encoders, Mapping) else type(encoders).__name__
            raise ValueError(f"encoders {got} must cover exactly the fusion's modalities {list(fusion.modalities)}")
        for name, encoder in encoders.items():
            dim = getattr(encoder, "out_dim", None)
            if dim is not None and dim != fusion.modality_dims[name]:
                raise ValueError(
                    f"encoder {name!r} outputs {dim} features but the fusion expects {fusion.modality_dims[name]}"
                )
            if fusion.accepts_tokens and not isinstance(encoder, ModalityEncoder):
                raise TypeError(
                    f"{type(fusion).__name__} takes token sequences: encoder {name!r} must be a "
                    "wsfusion.encoders.ModalityEncoder (forward(x, return_tokens=True))"
                )
        self.encoders = nn.ModuleDict({m: encoders[m] for m in fusion.modalities})
        self.fusion = fusion
        self.head = head if head is not None else nn.Identity()

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.fusion.modalities

    def encode(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Run each present modality's encoder: pooled ``[B, D]`` or tokens ``[B, T, D]``."""
        if not isinstance(inputs, Mapping):
            raise TypeError(f"MultiModalNetwork takes a mapping modality -> input tensor, got {type(inputs).__name__}")
        check_modality_keys(inputs, self.modalities, what="MultiModalNetwork", allow_missing=self.fusion.allow_missing)
        if self.fusion.accepts_tokens:
            return {m: self.encoders[m](x, return_tokens=True)[1] for m, x in inputs.items()}
        return {m: self.encoders[m](x) for m, x in inputs.items()}

    def forward(self, inputs: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None = None) -> Tensor:
        return self.head(self.fusion(self.encode(inputs), mask))

"""``MultiModalNetwork``: modality encoders + one fusion module + an optional head."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from wsfusion import fusion as fusion_registry
from wsfusion._validation import check_modality_keys
from wsfusion.encoders import ModalityEncoder, encoder_for
from wsfusion.fusion import FusionModule


class MultiModalNetwork(nn.Module):
    r"""Encoders, a fusion module and a head, keyed by modality name.

    .. math::
        \mathbf{y} = \mathrm{head}\big(\mathrm{fusion}(\{m: \mathrm{enc}_m(\mathbf{x}_m)\}_m)\big)

    Encoders are asked for token sequences when the fusion module accepts
    them (:attr:`FusionModule.accepts_tokens`), otherwise for pooled vectors.
    A modality absent from the inputs (allowed when the fusion module was
    built with ``allow_missing=True``) is not encoded at all.

    Padded sequences (audio frames, text tokens) take an ``input_mask``
    ``{m: (B, L_m)}`` bool (:obj:`True` = real position): the encoder zeroes
    and ignores the padding in its pooled vector, and token fusions get the
    encoder's :meth:`~wsfusion.encoders.ModalityEncoder.token_mask` as their
    ``token_mask`` (a key-padding mask), so padding is never attended to.

    Args:
        encoders (Mapping[str, nn.Module]): One encoder per modality; each
            returns ``[B, D_m]`` (and ``(pooled, tokens)`` with
            ``return_tokens=True`` if the fusion takes tokens).
        fusion (FusionModule): The fusion; its modalities and feature sizes
            must match the encoders'.
        head (nn.Module, optional): Applied to the fused ``[B, out_dim]``;
            :obj:`None` returns the fused features. (default: :obj:`None`)

    Shapes:
        - **input:** ``{m: (B, *input_shape_m)}``, optional ``mask {m: (B,)}`` bool,
          optional ``input_mask {m: (B, L_m)}`` bool
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
                    "wsfusion.encoders.ModalityEncoder (encode_tokens(x, input_mask))"
                )
        self.encoders = nn.ModuleDict({m: encoders[m] for m in fusion.modalities})
        self.fusion = fusion
        self.head = head if head is not None else nn.Identity()

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.fusion.modalities

    def encode(self, inputs: Mapping[str, Tensor], input_mask: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Run each present modality's encoder: pooled ``[B, D]``, or tokens ``[B, T, D]`` for a token fusion."""
        return self.encode_with_token_mask(inputs, input_mask)[0]

    def encode_with_token_mask(
        self, inputs: Mapping[str, Tensor], input_mask: Mapping[str, Tensor] | None = None
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """:meth:`encode`, and the token masks ``[B, T]`` of the modalities given an
        ``input_mask`` when the fusion takes tokens (empty otherwise)."""
        if not isinstance(inputs, Mapping):
            raise TypeError(f"MultiModalNetwork takes a mapping modality -> input tensor, got {type(inputs).__name__}")
        check_modality_keys(inputs, self.modalities, what="MultiModalNetwork", allow_missing=self.fusion.allow_missing)
        input_mask = dict(input_mask or {})
        unknown = [m for m in input_mask if m not in self.modalities]
        if unknown:
            raise ValueError(
                f"MultiModalNetwork: input_mask has unknown modality {unknown[0]!r}; expected keys {list(self.modalities)}"
            )
        features, token_mask = {}, {}
        for m, x in inputs.items():
            if self.fusion.accepts_tokens:
                features[m], real = self.encoders[m].encode_tokens(x, input_mask.get(m))
                if real is not None:
                    token_mask[m] = real
            elif m in input_mask:
                features[m] = self.encoders[m](x, input_mask=input_mask[m])
            else:
                features[m] = self.encoders[m](x)  # any nn.Module works for pooled fusions
        return features, token_mask

    def forward(
        self,
        inputs: Mapping[str, Tensor],
        mask: Mapping[str, Tensor] | None = None,
        input_mask: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        features, token_mask = self.encode_with_token_mask(inputs, input_mask)
        if token_mask:
            return self.head(self.fusion(features, mask, token_mask=token_mask))
        return self.head(self.fusion(features, mask))


def build_model(
    fusion: str,
    modality_shapes: Mapping[str, Sequence[int]],
    num_classes: int,
    *,
    fusion_options: Mapping[str, Any] | None = None,
    feature_dim: int = 64,
    fused_dim: int = 64,
    encoder_channels: Sequence[int] = (16, 32, 64),
    encoder_pool: str = "flatten",
) -> MultiModalNetwork:
    """The default encoder of every modality, the registered fusion ``fusion`` and a linear head.

    The fusion's protocol decides what its encoders return: a fusion that takes token sequences
    (:attr:`~wsfusion.fusion.FusionModule.accepts_tokens`, or ``tokens=True`` / a token-count
    mapping among its options) never reads the pooled vector, so its encoders get the
    parameter-free ``"mean"`` pool instead of ``encoder_pool``; a fusion that needs the token
    counts (:attr:`~wsfusion.fusion.FusionModule.needs_token_counts`, or ``tokens=True``) gets
    ``tokens={m: encoder.num_tokens}``. :class:`~wsfusion.train.TrainConfig` holds these
    arguments (:meth:`~wsfusion.train.TrainConfig.model_options`), and the defaults here are its
    defaults.

    Args:
        fusion (str): A name from :func:`wsfusion.fusion.available`.
        modality_shapes (Mapping[str, Sequence[int]]): Per-sample input shape of each modality.
        num_classes (int): Outputs of the linear head.
        fusion_options (Mapping[str, Any], optional): Keyword options of the fusion.
        feature_dim (int): Every encoder's output size (the fusion's inputs).
        fused_dim (int): The fusion's output size, read by the head.
        encoder_channels (Sequence[int]): CNN widths of the visual and audio encoders.
        encoder_pool (str): How the encoders of a pooled fusion pool their tokens.
    """
    fusion_class = fusion_registry.fusion_class(fusion)
    options = dict(fusion_options or {})
    tokens = options.get("tokens")
    fill_token_counts = fusion_class.needs_token_counts or tokens is True
    takes_tokens = fusion_class.accepts_tokens or fill_token_counts or isinstance(tokens, Mapping)
    pool = "mean" if takes_tokens else encoder_pool
    encoders = {m: encoder_for(m, tuple(shape), feature_dim, tuple(encoder_channels), pool=pool) for m, shape in modality_shapes.items()}
    if fill_token_counts:
        options["tokens"] = {m: e.num_tokens for m, e in encoders.items()}
    fused = fusion_registry.build(fusion, {m: feature_dim for m in encoders}, fused_dim, allow_missing=True, **options)
    return MultiModalNetwork(encoders, fused, nn.Linear(fused_dim, num_classes))

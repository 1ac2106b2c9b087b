from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from wsfusion._validation import (
    check_batch_sizes,
    check_all_finite,
    check_modality_dims,
    check_modality_keys,
    check_positive_int,
    format_shape,
)

#: The values of :attr:`FusionModule.check_finite`.
FINITE_CHECKS = ("auto", "sync", "async", "off")


class FusionModule(nn.Module):
    r"""Base class of every fusion strategy: one interface for any number of modalities.

    ``forward(features, mask=None)`` takes a mapping modality name ->
    features and returns ``[B, out_dim]``. Features are pooled vectors
    ``[B, D_m]``; modules with :attr:`accepts_tokens` also take token
    sequences ``[B, T_m, D_m]`` (a pooled vector then counts as one token).

    Padded token sequences: modules with :attr:`accepts_tokens` also take
    ``token_mask={m: [B, T_m]}`` (bool, :obj:`True` = a real token); padded
    tokens are never attended to nor pooled (see :meth:`check_token_mask`).

    Missing modalities: a per-sample boolean ``mask[m]`` of shape ``[B]``
    (:obj:`True` = present) marks samples whose modality ``m`` is missing.
    With ``allow_missing=True`` a key may also be absent altogether (missing
    for every sample). What a module does with a missing modality is
    documented per module; the baselines replace it by zeros unless they say
    otherwise.

    Non-finite features (NaN, inf) are refused, as :attr:`check_finite` says:
    by default with a ``ValueError`` naming the modality on CPU, and on a CUDA
    device without the host sync that such an error needs on every step.

    Args:
        modality_dims (Mapping[str, int]): Feature size ``D_m`` of each
            modality, in the order used for concatenation.
        out_dim (int): Output size.
        allow_missing (bool, optional): Accept absent modality keys.
            (default: :obj:`False`, an absent key raises a ``ValueError``)
    """

    #: Whether ``[B, T, D]`` token sequences are accepted.
    accepts_tokens: bool = False
    #: Whether the module's ``tokens`` option must be given each modality's token
    #: count (the trainer fills it in from the encoders; modules where it is
    #: optional take ``tokens=True`` to ask for the same).
    needs_token_counts: bool = False
    #: ``"baseline"``, ``"ws"`` (fusion over a Watts–Strogatz graph) or
    #: ``"unimodal"``: how ``compare`` groups rows and picks the best baseline.
    family: str = "baseline"
    #: How :meth:`check_inputs` refuses non-finite features (set it on a module or a subclass):
    #:
    #: * ``"auto"`` (default): ``"sync"`` on CPU (nothing to wait for), ``"async"`` on CUDA;
    #: * ``"sync"``: a ``ValueError`` naming the modality, at the cost of one device sync per
    #:   forward on a GPU (a debugging setting there);
    #: * ``"async"``: :func:`torch._assert_async` per modality, no host sync. On CUDA a
    #:   non-finite input stops the run at the next synchronisation as a device-side assert,
    #:   which ends the process's CUDA context (restart it, then rerun with ``"sync"`` to see
    #:   which modality); on CPU it is a ``RuntimeError`` naming the modality;
    #: * ``"off"``: no check.
    #:
    #: Skipped while ``torch.compile`` traces, in every mode.
    check_finite: str = "auto"

    def __init__(self, modality_dims: Mapping[str, int], out_dim: int, allow_missing: bool = False) -> None:
        super().__init__()
        self.modality_dims = check_modality_dims(modality_dims, type(self).__name__)
        self.out_dim = check_positive_int(out_dim, "out_dim")
        self.allow_missing = bool(allow_missing)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.modality_dims)

    def check_inputs(
        self,
        features: Mapping[str, Tensor],
        mask: Mapping[str, Tensor] | None = None,
    ) -> tuple[int, dict[str, Tensor]]:
        """Validate ``features`` and ``mask``; return the batch size and a full mask.

        The returned mask has one boolean ``[B]`` tensor per modality of the
        module (all :obj:`False` for an absent key).
        """
        what = type(self).__name__
        if not isinstance(features, Mapping):
            raise TypeError(
                f"{what} takes a mapping modality -> features, got {type(features).__name__}; "
                f"expected keys {list(self.modalities)}"
            )
        check_modality_keys(features, self.modalities, what=what, allow_missing=self.allow_missing)
        max_rank = 3 if self.accepts_tokens else 2
        sizes: dict[str, int] = {}
        for name, x in features.items():
            dim = self.modality_dims[name]
            expected = f"[B, {dim}]" + (f" or [B, T, {dim}]" if self.accepts_tokens else "")
            if not isinstance(x, Tensor):
                raise TypeError(f"{what}: {name!r} features must be a torch.Tensor of shape {expected}, got {type(x).__name__}")
            if not 2 <= x.dim() <= max_rank or x.shape[-1] != dim:
                hint = " (this module takes pooled vectors; pool the tokens first)" if x.dim() == 3 else ""
                raise ValueError(
                    f"{what}: {name!r} features must have shape {expected}, "
                    f"got {format_shape(tuple(x.shape))}{hint}"
                )
            if not x.is_floating_point():
                raise TypeError(f"{what}: {name!r} features must be floating point, got dtype {x.dtype}")
            sizes[name] = x.shape[0]
        self._check_finite(features, what)
        batch = check_batch_sizes(sizes, what)
        device = next(iter(features.values())).device
        full_mask = self._check_mask(mask, batch, device, what)
        for name in self.modalities:
            if name not in features:
                full_mask[name] = torch.zeros(batch, dtype=torch.bool, device=device)
        return batch, full_mask

    def _check_finite(self, features: Mapping[str, Tensor], what: str) -> None:
        mode = self.check_finite
        if mode not in FINITE_CHECKS:
            raise ValueError(f"{what}: check_finite must be one of {FINITE_CHECKS}, got {mode!r}")
        if mode == "off" or not features or torch.compiler.is_compiling():
            return
        if mode == "auto":
            mode = finite_check_for(next(iter(features.values())).device)
        if mode == "sync":
            check_all_finite(features, what)
            return
        for name, x in features.items():  # no host sync: the assert runs on the device
            torch._assert_async(torch.isfinite(x).all(), f"{what}: {name!r} features contain non-finite values "
                                                          "(NaN or inf); clean or mask the input before fusing")

    def check_token_mask(
        self, features: Mapping[str, Tensor], token_mask: Mapping[str, Tensor] | None
    ) -> dict[str, Tensor]:
        """Validate ``token_mask`` against the token sequences in ``features``.

        Returns a bool ``[B, T_m]`` per present modality (a pooled vector
        counts as one real token; a modality without a mask has only real
        tokens).
        """
        what = type(self).__name__
        token_mask = {} if token_mask is None else token_mask
        if not isinstance(token_mask, Mapping):
            raise TypeError(f"{what}: token_mask must be a mapping modality -> bool tensor [B, T], got {type(token_mask).__name__}")
        out = {}
        for name in token_mask:
            if name not in features:
                raise ValueError(f"{what}: token_mask has modality {name!r} but its features are not given")
        for name, x in features.items():
            steps = x.shape[1] if x.dim() == 3 else 1
            m = token_mask.get(name)
            if m is None:
                out[name] = torch.ones(x.shape[0], steps, dtype=torch.bool, device=x.device)
                continue
            if not isinstance(m, Tensor) or m.dtype != torch.bool or tuple(m.shape) != (x.shape[0], steps) or x.dim() != 3:
                got = format_shape(tuple(m.shape)) + f" {m.dtype}" if isinstance(m, Tensor) else type(m).__name__
                raise ValueError(
                    f"{what}: token_mask[{name!r}] must be a bool tensor of shape [{x.shape[0]}, {steps}] "
                    f"matching its token sequence, got {got}"
                )
            out[name] = m.to(x.device)
        return out

    def _check_mask(self, mask: Mapping[str, Tensor] | None, batch: int, device: torch.device, what: str) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        if mask is not None:
            if not isinstance(mask, Mapping):
                raise TypeError(f"{what}: mask must be a mapping modality -> bool tensor [B], got {type(mask).__name__}")
            for name, m in mask.items():
                if name not in self.modality_dims:
                    raise ValueError(f"{what}: mask has unknown modality {name!r}; expected keys {list(self.modalities)}")
                if not isinstance(m, Tensor) or m.dtype != torch.bool or tuple(m.shape) != (batch,):
                    got = format_shape(tuple(m.shape)) + f" {m.dtype}" if isinstance(m, Tensor) else type(m).__name__
                    raise ValueError(f"{what}: mask[{name!r}] must be a bool tensor of shape [{batch}], got {got}")
                out[name] = m.to(device)
        for name in self.modalities:
            out.setdefault(name, torch.ones(batch, dtype=torch.bool, device=device))
        return out

    def filled(self, features: Mapping[str, Tensor], mask: Mapping[str, Tensor], batch: int) -> dict[str, Tensor]:
        """Every modality's features with missing samples (and absent keys) set to zero."""
        ref = next(iter(features.values()))
        out = {}
        for name, dim in self.modality_dims.items():
            x = features.get(name)
            if x is None:
                out[name] = ref.new_zeros(batch, dim)
            else:
                keep = mask[name].to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
                out[name] = x * keep
        return out

    def reset_parameters(self) -> None:
        """Re-initialise every parameter (sub-modules here; subclasses add their own tensors)."""
        reset_children(self)

    def extra_repr(self) -> str:
        return f"modality_dims={self.modality_dims}, out_dim={self.out_dim}"


def finite_check_for(device: torch.device) -> str:
    """What ``check_finite="auto"`` does on ``device``: ``"async"`` on CUDA (no host sync per step),
    ``"sync"`` elsewhere (a ``ValueError`` naming the modality; on CPU there is no device to wait for)."""
    return "async" if torch.device(device).type == "cuda" else "sync"


def reset_children(module: nn.Module) -> None:
    """Call each child's own ``reset_parameters``, recursing through containers that have none.

    A child that resets itself is not recursed into, so a layer's custom
    initialisation (e.g. glorot in a conv) is not overwritten by the defaults
    of its inner ``nn.Linear`` modules.
    """
    for child in module.children():
        if isinstance(child, nn.MultiheadAttention):
            child.out_proj.reset_parameters()
            child._reset_parameters()  # in-projections xavier, biases zero, as at construction
        elif hasattr(child, "reset_parameters"):
            child.reset_parameters()
        else:
            reset_children(child)


def as_tokens(x: Tensor) -> Tensor:
    """A pooled vector ``[B, D]`` is a sequence of one token ``[B, 1, D]``."""
    return x.unsqueeze(1) if x.dim() == 2 else x


def mlp(in_dim: int, hidden_dim: int, out_dim: int, dropout: float) -> nn.Sequential:
    """``Linear - ReLU - Dropout - Linear``, the head every baseline shares."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden_dim, out_dim))

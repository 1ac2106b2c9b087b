"""Input checks shared by the public API.

Every message names the modality (or argument) that was wrong and the shape
that was expected, so that a user sees the problem at the call site instead of
a cryptic error from deep inside torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import Tensor


def format_shape(shape: Sequence[int | str]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def check_finite(x: Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or infinite values."""
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(torch.isinf(x).sum())
        raise ValueError(
            f"{name} contains non-finite values ({n_nan} NaN, {n_inf} inf); "
            "clean or mask the input before fusing"
        )


def check_tensor(
    x: object,
    name: str,
    expected: Sequence[int | str],
    *,
    finite: bool = True,
) -> Tensor:
    """Check rank and the fixed sizes of ``x`` against ``expected``.

    ``expected`` lists one entry per dimension: an ``int`` is a size that must
    match, a ``str`` (``"B"``, ``"T"``) is a free size shown in messages.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {format_shape(expected)}, got {type(x).__name__}")
    if x.dim() != len(expected) or any(
        isinstance(e, int) and s != e for s, e in zip(x.shape, expected)
    ):
        raise ValueError(
            f"{name} must have shape {format_shape(expected)}, got {format_shape(tuple(x.shape))}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if finite:
        check_finite(x, name)
    return x


def check_modality_keys(
    given: Iterable[str],
    expected: Sequence[str],
    *,
    what: str,
    allow_missing: bool,
) -> None:
    """Unknown keys always raise; absent keys raise unless ``allow_missing``."""
    given = list(given)
    unknown = [k for k in given if k not in expected]
    if unknown:
        raise ValueError(
            f"{what} got unknown modality {unknown[0]!r}; expected keys {list(expected)}"
        )
    missing = [k for k in expected if k not in given]
    if not given:
        raise ValueError(f"{what} got no modalities; expected keys {list(expected)}")
    if missing and not allow_missing:
        raise ValueError(
            f"{what} is missing modality {missing[0]!r}; expected keys {list(expected)} "
            "(build it with allow_missing=True to treat absent modalities as missing)"
        )


def check_batch_sizes(sizes: Mapping[str, int], what: str) -> int:
    """All modalities must agree on the batch size; return it."""
    distinct = set(sizes.values())
    if len(distinct) > 1:
        detail = ", ".join(f"{k}: {v}" for k, v in sizes.items())
        raise ValueError(f"{what}: batch sizes disagree between modalities ({detail})")
    return distinct.pop()


def check_modality_dims(modality_dims: object, what: str) -> dict[str, int]:
    """Validate a ``{modality: feature_dim}`` mapping given to a constructor."""
    if not isinstance(modality_dims, Mapping) or not modality_dims:
        raise ValueError(f"{what} needs a non-empty mapping modality -> feature dim, got {modality_dims!r}")
    dims: dict[str, int] = {}
    for name, dim in modality_dims.items():
        if not isinstance(name, str):
            raise TypeError(f"{what}: modality names must be strings, got {name!r}")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"{what}: modality {name!r} needs a positive integer feature dim, got {dim!r}")
        dims[name] = dim
    return dims


def check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_probability(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def check_heads(dim: object, dim_name: str, heads: object, heads_name: str) -> tuple[int, int]:
    """Both positive integers and ``heads`` divides ``dim`` (multi-head attention)."""
    dim, heads = check_positive_int(dim, dim_name), check_positive_int(heads, heads_name)
    if dim % heads:
        raise ValueError(f"{dim_name}={dim} must be divisible by {heads_name}={heads}")
    return dim, heads

"""Input checks shared by the public API.

Every message names the modality (or argument) that was wrong and the shape
that was expected, so that a user sees the problem at the call site instead of
a cryptic error from deep inside torch.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import Tensor


def format_shape(shape: Sequence[int | str]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def check_finite(x: Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or infinite values (eager mode; skipped while ``torch.compile`` traces)."""
    if x.is_floating_point() and not torch.compiler.is_compiling() and not bool(torch.isfinite(x).all()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(torch.isinf(x).sum())
        raise ValueError(
            f"{name} contains non-finite values ({n_nan} NaN, {n_inf} inf); "
            "clean or mask the input before fusing"
        )


def check_all_finite(tensors: Mapping[str, Tensor], what: str) -> None:
    """:func:`check_finite` for several tensors at the cost of one device sync, not one each.

    Skipped while ``torch.compile`` traces (a data-dependent branch would break the graph).
    """
    floating = {name: x for name, x in tensors.items() if x.is_floating_point()}
    if not floating or torch.compiler.is_compiling():
        return
    flags = torch.stack([torch.isfinite(x).all().to(next(iter(floating.values())).device) for x in floating.values()])
    if bool(flags.all()):
        return
    for name, x in floating.items():
        check_finite(x, f"{what}: {name!r} features")


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


def check_int(value: object, name: str, minimum: int = 0) -> int:
    """An integer ``>= minimum`` (``bool`` is refused: ``True`` nodes or ``k=True`` is always a mistake)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        what = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def check_positive_int(value: object, name: str) -> int:
    """An integer ``>= 1``."""
    return check_int(value, name, 1)


#: Intervals understood by :func:`check_fraction`.
FRACTION_INTERVALS = ("[0, 1]", "[0, 1)", "(0, 1)", "(0, 1]")


def check_fraction(value: object, name: str, interval: str = "[0, 1]") -> float:
    """A finite real number in ``interval``, one of :data:`FRACTION_INTERVALS` (brackets as in maths)."""
    if interval not in FRACTION_INTERVALS:
        raise ValueError(f"interval must be one of {FRACTION_INTERVALS}, got {interval!r}")
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        v = float(value)  # type: ignore[arg-type]
        above = v > 0.0 if interval[0] == "(" else v >= 0.0
        below = v < 1.0 if interval[-1] == ")" else v <= 1.0
        ok = math.isfinite(v) and above and below
    if not ok:
        kind = "" if isinstance(value, numbers.Real) else f" ({type(value).__name__})"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}{kind}")
    return float(value)  # type: ignore[arg-type]


def check_probability(value: object, name: str) -> float:
    """A dropout-style probability in ``[0, 1)`` (1 would drop everything)."""
    return check_fraction(value, name, "[0, 1)")


def check_positive_number(value: object, name: str) -> float:
    """A finite real number ``> 0`` (a temperature, a learning rate)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_heads(dim: object, dim_name: str, heads: object, heads_name: str) -> tuple[int, int]:
    """Both positive integers and ``heads`` divides ``dim`` (multi-head attention)."""
    dim, heads = check_positive_int(dim, dim_name), check_positive_int(heads, heads_name)
    if dim % heads:
        raise ValueError(f"{dim_name}={dim} must be divisible by {heads_name}={heads}")
    return dim, heads

"""Input checks shared by the public API.

Every message names the modality (or argument) that was wrong and the shape
that was expected, so that a user sees the problem at the call site instead of
a cryptic error from deep inside torch.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

import torch
from torch import Tensor

V = TypeVar("V")


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


def check_modality_mapping(
    mapping: object,
    what: str,
    value: Callable[[str, object], V],
    *,
    prefix: str = "",
) -> dict[str, V]:
    """A non-empty mapping modality name -> value, in the mapping's order (the one check of such mappings).

    Args:
        mapping (object): the argument to check.
        what (str): the message when ``mapping`` is not a non-empty mapping,
            completed by ``", got <type>"`` (e.g. ``"nodes must be a non-empty
            mapping modality -> node count"``).
        value (Callable[[str, object], V]): ``value(name, v)`` checks the value
            of modality ``name``, raising ``ValueError`` with its own message,
            and returns it normalised.
        prefix (str): put before the messages about a modality name
            (e.g. ``"EarlyFusion: "``). (default: ``""``)

    Raises:
        ValueError: ``mapping`` is not a mapping or is empty, a modality name
            is not a non-empty string, or ``value`` refuses a value.
    """
    if not isinstance(mapping, Mapping) or not mapping:
        got = "an empty mapping" if isinstance(mapping, Mapping) else type(mapping).__name__
        raise ValueError(f"{what}, got {got}")
    out: dict[str, V] = {}
    for name, v in mapping.items():
        if not isinstance(name, str):
            raise ValueError(f"{prefix}modality names must be strings, got {name!r} ({type(name).__name__})")
        if not name:
            raise ValueError(f"{prefix}modality names must be non-empty strings, got ''")
        out[name] = value(name, v)
    return out


def check_modality_dims(modality_dims: object, what: str) -> dict[str, int]:
    """Validate a ``{modality: feature_dim}`` mapping given to the constructor ``what``: positive integer dims."""

    def dim(name: str, value: object) -> int:
        if not is_int(value) or value < 1:  # type: ignore[operator]
            raise ValueError(f"{what}: modality {name!r} needs a positive integer feature dim, got {value!r}")
        return int(value)  # type: ignore[arg-type]

    return check_modality_mapping(
        modality_dims, f"{what} needs a non-empty mapping modality -> feature dim", dim, prefix=f"{what}: "
    )


def is_int(value: object) -> bool:
    """Whether ``value`` is an integer (``int``, ``numpy.int64``, ...) other than a ``bool``.

    ``bool`` is an :class:`numbers.Integral`, but ``True`` nodes or ``k=True`` is always a mistake.
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(value: object, name: str, minimum: int = 0) -> int:
    """An integer ``>= minimum`` (``bool`` is refused, see :func:`is_int`)."""
    if not is_int(value) or value < minimum:  # type: ignore[operator]
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


def check_non_negative_number(value: object, name: str) -> float:
    """A finite real number ``>= 0`` (a weight decay, a warm-up length)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)) or value < 0:
        raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")
    return float(value)


def check_heads(dim: object, dim_name: str, heads: object, heads_name: str) -> tuple[int, int]:
    """Both positive integers and ``heads`` divides ``dim`` (multi-head attention)."""
    dim, heads = check_positive_int(dim, dim_name), check_positive_int(heads, heads_name)
    if dim % heads:
        raise ValueError(f"{dim_name}={dim} must be divisible by {heads_name}={heads}")
    return dim, heads


def check_device(device: object, name: str = "device") -> torch.device:
    """A device this process can use: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"auto"`` (CUDA if available) or a
    :class:`torch.device`.

    Raises ``ValueError`` naming the device and why it cannot be used (a CPU-only torch build, no visible
    GPU, an index past the device count), so that a run fails before it loads data or builds a model.
    """
    if isinstance(device, torch.device):
        resolved = device
    elif not isinstance(device, str):
        raise TypeError(f"{name} must be a string such as 'cpu', 'cuda', 'cuda:0' or 'auto', got {type(device).__name__}")
    elif device == "auto":
        resolved = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            resolved = torch.device(device)
        except (RuntimeError, ValueError):
            raise ValueError(f"{name} must be cpu, cuda, cuda:N or auto, got {device!r}") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch build has no CUDA support" if not torch.backends.cuda.is_built()
                   else "no CUDA device is visible")
            raise ValueError(f"{name} {device!r} is not available: {why} (torch {torch.__version__}); use cpu or auto")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"{name} {device!r} is not available: {count} CUDA device{'s' if count != 1 else ''} visible")
    elif resolved.type != "cpu":
        backend = getattr(torch, resolved.type, None) or getattr(torch.backends, resolved.type, None)
        available = getattr(backend, "is_available", None)
        if callable(available) and not available():
            raise ValueError(f"{name} {device!r} is not available in this torch build (torch {torch.__version__})")
    return resolved


def token_mask_from_key_padding(
    features: Mapping[str, Tensor],
    token_mask: Mapping[str, Tensor] | None,
    key_padding_mask: Mapping[str, Tensor] | None,
    what: str,
) -> Mapping[str, Tensor] | None:
    """``token_mask`` (:obj:`True` = a real token), or the inverse of ``key_padding_mask``.

    ``key_padding_mask`` has PyTorch's polarity (:obj:`True` = padding, ignored, as in
    ``nn.MultiheadAttention``): ``{m: [B, T_m]}`` bool, one entry per token sequence of
    ``features``. Passing both masks is a ``ValueError``.
    """
    if key_padding_mask is None:
        return token_mask
    if token_mask is not None:
        raise ValueError(
            f"{what}: pass token_mask (True = a real token) or key_padding_mask (True = padding), not both"
        )
    if not isinstance(key_padding_mask, Mapping):
        raise TypeError(
            f"{what}: key_padding_mask must be a mapping modality -> bool tensor [B, T_m] (True = padding), "
            f"got {type(key_padding_mask).__name__}"
        )
    out = {}
    for name, m in key_padding_mask.items():
        x = features.get(name) if isinstance(features, Mapping) else None
        if not isinstance(x, Tensor):
            raise ValueError(f"{what}: key_padding_mask has modality {name!r} but its features are not given")
        want = f"[{x.shape[0]}, {x.shape[1]}]" if x.dim() == 3 else f"[B, T] for a token sequence [B, T, D] (got {format_shape(tuple(x.shape))} features)"
        if (not isinstance(m, Tensor) or m.dtype != torch.bool or x.dim() != 3
                or tuple(m.shape) != (x.shape[0], x.shape[1])):
            got = format_shape(tuple(m.shape)) + f" {m.dtype}" if isinstance(m, Tensor) else type(m).__name__
            raise ValueError(
                f"{what}: key_padding_mask[{name!r}] must be a bool tensor of shape {want} "
                f"(True = padding), got {got}"
            )
        out[name] = ~m
    return out

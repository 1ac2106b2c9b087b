"""``build(name, modality_dims, out_dim, **options)``: every fusion strategy by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

from wsfusion.fusion.base import FusionModule

_REGISTRY: dict[str, type[FusionModule]] = {}


def register(name: str) -> Callable[[type[FusionModule]], type[FusionModule]]:
    """Class decorator adding a fusion module to :func:`build` under ``name``."""

    def add(cls: type[FusionModule]) -> type[FusionModule]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"fusion name {name!r} is already registered to {_REGISTRY[name].__name__}")
        _REGISTRY[name] = cls
        return cls

    return add


def available() -> tuple[str, ...]:
    """Names accepted by :func:`build`, in registration order."""
    return tuple(_REGISTRY)


def fusion_class(name: str) -> type[FusionModule]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown fusion {name!r}; available: {', '.join(_REGISTRY)}") from None


def options(name: str) -> tuple[str, ...]:
    """The keyword options that :func:`build` accepts for ``name``."""
    params = inspect.signature(fusion_class(name)).parameters
    return tuple(p for p in params if p not in ("modality_dims", "out_dim"))


def describe(name: str) -> str:
    """The first line of the fusion's docstring."""
    doc = inspect.getdoc(fusion_class(name)) or ""
    return doc.splitlines()[0] if doc else ""


def build(name: str, modality_dims: Mapping[str, int], out_dim: int, **kwargs: object) -> FusionModule:
    """Build the fusion module registered as ``name``.

    Args:
        name (str): One of :func:`available`.
        modality_dims (Mapping[str, int]): Feature size of each modality.
        out_dim (int): Output size.
        **kwargs: Options of that module (see :func:`options`).

    Example:
        >>> fusion = build("low-rank", {"visual": 256, "audio": 256}, out_dim=10, rank=8)
    """
    cls = fusion_class(name)
    accepted = options(name)
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        raise TypeError(f"fusion {name!r} has no option {unknown[0]!r}; options: {', '.join(accepted)}")
    return cls(modality_dims, out_dim, **kwargs)

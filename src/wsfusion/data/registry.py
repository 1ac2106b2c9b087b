"""``build(name, **options)``: every dataset by name, as its three splits; ``layout(name, **options)``: its
shapes and classes without its data."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wsfusion.data.base import SPLITS, InMemoryDataset, Layout, Splits

__all__ = ["register", "available", "options", "check_options", "build", "layout"]


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., InMemoryDataset]  #: ``factory(split, **options)``: one split
    layout: Callable[..., Layout]  #: ``layout(**options)``: the split's layout, no data loaded


_REGISTRY: dict[str, _Entry] = {}

Factory = Callable[..., InMemoryDataset]


def register(name: str, *, layout: Callable[..., Layout]) -> Callable[[Factory], Factory]:
    r"""Decorator adding a dataset to :func:`build` under ``name``.

    The decorated callable (a dataset class or a function) is called as ``factory(split, **options)``
    once for each of ``"train"``, ``"val"`` and ``"test"`` and returns an
    :class:`~wsfusion.data.InMemoryDataset`; its keyword parameters (all with defaults) are the
    dataset's options. ``layout(**options)`` returns the :class:`~wsfusion.data.Layout` (per-sample
    modality shapes, number of classes) that ``factory`` would build, without loading, generating or
    downloading anything; it receives the options named in its own signature (all of them if it takes
    ``**options``), so it may ignore those that do not change the layout.

    Args:
        name (str): The name :func:`build` and the ``--data`` choice of the command line use.
        layout (Callable[..., Layout]): The layout without the data, see above.

    Example:
        >>> # what wsfusion.data does for its own datasets
        >>> register("synthetic", layout=SyntheticTriModal.layout)(synthetic_split)
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"dataset name must be a non-empty string, got {name!r}")
    if not callable(layout):
        raise TypeError(f"dataset {name!r}: layout must be a callable returning a Layout, got {layout!r}")

    def add(factory: Factory) -> Factory:
        if not callable(factory):
            raise TypeError(f"dataset {name!r}: the registered object must be callable as factory(split, **options), "
                            f"got {factory!r}")
        if name in _REGISTRY and _REGISTRY[name].factory is not factory:
            raise ValueError(f"dataset name {name!r} is already registered to {_describe(_REGISTRY[name].factory)}")
        _REGISTRY[name] = _Entry(factory, layout)
        return factory

    return add


def _describe(factory: Callable[..., Any]) -> str:
    return getattr(factory, "__qualname__", repr(factory))


def available() -> tuple[str, ...]:
    """Names accepted by :func:`build`, in registration order."""
    return tuple(_REGISTRY)


def _entry(name: object) -> _Entry:
    try:
        return _REGISTRY[name]  # type: ignore[index]
    except (KeyError, TypeError):
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(_REGISTRY)}") from None


def _parameters(fn: Callable[..., Any]) -> Mapping[str, inspect.Parameter]:
    return inspect.signature(fn).parameters


def options(name: str) -> tuple[str, ...]:
    """The keyword options that :func:`build` accepts for ``name`` (the factory's parameters but ``split``)."""
    params = _parameters(_entry(name).factory)
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(p for p, param in params.items() if p != "split" and param.kind in kinds)


def check_options(name: str, given: Mapping[str, Any]) -> None:
    """Raise ``TypeError`` if ``given`` names an option that dataset ``name`` does not have, or leaves out
    one without a default; ``ValueError`` for an unknown ``name``."""
    accepted = options(name)
    if not isinstance(given, Mapping):
        raise TypeError(f"dataset {name!r}: options must be a mapping option -> value, got {type(given).__name__}")
    unknown = [k for k in given if k not in accepted]
    if unknown:
        raise TypeError(f"dataset {name!r} has no option {unknown[0]!r}; options: {', '.join(accepted) or 'none'}")
    params = _parameters(_entry(name).factory)
    missing = [p for p in accepted if params[p].default is inspect.Parameter.empty and p not in given]
    if missing:
        raise TypeError(f"dataset {name!r} needs the option {missing[0]!r}: it has no default")


def build(name: str, **options: Any) -> Splits:
    """The train, validation and test splits of the dataset registered as ``name``.

    Args:
        name (str): One of :func:`available`.
        **options: Options of that dataset (see :func:`options`), the same for the three splits.

    Returns:
        Splits: ``(train, val, test)``, a named tuple of :class:`~wsfusion.data.InMemoryDataset`.

    Example:
        >>> train, val, test = build("synthetic", num_samples=64, num_classes=4, seed=1)
        >>> len(train), len(val), len(test)
        (64, 16, 16)
    """
    entry = _entry(name)
    check_options(name, options)
    return Splits(*(entry.factory(split, **options) for split in SPLITS))


def layout(name: str, **options: Any) -> Layout:
    """The per-sample shape of each modality and the number of classes of the dataset ``name`` built with
    ``options``, without loading, generating or downloading its data: what
    :func:`wsfusion.models.build_model` needs.

    Example:
        >>> layout("av-digits")
        Layout(modality_shapes={'visual': (1, 28, 28), 'audio': (1, 13, 48)}, num_classes=10)
    """
    entry = _entry(name)
    check_options(name, options)
    params = _parameters(entry.layout)
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        options = {k: v for k, v in options.items() if k in params}
    shapes, num_classes = entry.layout(**options)
    return Layout({m: tuple(int(s) for s in shape) for m, shape in shapes.items()}, int(num_classes))

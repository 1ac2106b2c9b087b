"""A tensor kept as rows of a pool picked by an index: ``pool[index]`` without materialising it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["IndexedTensor"]


class IndexedTensor:
    r"""The tensor ``pool[index]``, stored as the pool and the index.

    A dataset whose samples reuse a few source items many times (AV-digit
    strings: 64 images a sample, drawn from 5,000) keeps the items once, in
    ``pool`` ``(P, *item)``, and each sample's choice in ``index``
    ``(N, *sample)``. Indexing along the leading (sample) axis gathers only
    the rows asked for, so a batch costs its own size and the whole tensor
    never exists unless asked for:

    .. math::
        \mathrm{view}[i] = \mathrm{pool}[\mathrm{index}[i]]

    It stands where an :class:`~wsfusion.data.InMemoryDataset` holds an
    input tensor: ``x[batch_index]`` and ``x[:n]`` give real tensors,
    :attr:`shape`, :attr:`dtype`, :meth:`is_floating_point` and
    ``len(x)`` are those of ``pool[index]``, and any ``torch`` function
    (``torch.equal(x, y)``, ``torch.cat``...) or :meth:`to` works on
    :meth:`materialize`, the whole tensor.

    Args:
        pool (torch.Tensor): The source items ``(P, *item)``.
        index (torch.LongTensor): Rows of ``pool``, ``(N, *sample)``, each in ``[0, P)``.

    Shapes:
        - **view:** ``(N, *sample, *item)``; ``x[key]`` indexes ``index`` with the key's first
          entries and the items with the rest
    """

    def __init__(self, pool: Tensor, index: Tensor) -> None:
        if not isinstance(pool, Tensor) or pool.dim() < 1:
            raise TypeError(f"pool must be a tensor with a leading item axis, got {pool!r}")
        if not isinstance(index, Tensor) or index.dtype != torch.int64 or index.dim() < 1:
            raise TypeError(f"index must be an int64 tensor with a leading sample axis, got {index!r}")
        if index.numel() and not (0 <= int(index.min()) and int(index.max()) < pool.shape[0]):
            raise ValueError(f"index must hold rows of pool, in [0, {pool.shape[0]}), got values in "
                             f"[{int(index.min())}, {int(index.max())}]")
        self.pool = pool
        self.index = index

    @property
    def shape(self) -> torch.Size:
        return torch.Size((*self.index.shape, *self.pool.shape[1:]))

    @property
    def dtype(self) -> torch.dtype:
        return self.pool.dtype

    @property
    def device(self) -> torch.device:
        return self.pool.device

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def dim(self) -> int:
        return self.ndim

    def size(self, dim: int | None = None) -> torch.Size | int:
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return self.shape.numel()

    def is_floating_point(self) -> bool:
        return self.pool.is_floating_point()

    def __len__(self) -> int:
        return self.index.shape[0]

    def __getitem__(self, key: Any) -> Tensor:
        """``pool[index][key]``, gathering only the rows that ``key`` picks."""
        keys = key if isinstance(key, tuple) else (key,)
        if any(k is None or k is Ellipsis for k in keys):
            return self.materialize()[key]
        head, rest = keys[: self.index.dim()], keys[self.index.dim():]
        picked = self.index[head]  # the index entries the key selects
        out = self.pool[picked]
        if not rest:
            return out
        return out[(slice(None),) * picked.dim() + rest]

    def materialize(self) -> Tensor:
        """The whole tensor ``pool[index]`` (a new tensor of :attr:`shape`)."""
        return self.pool[self.index]

    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """:meth:`materialize`, then ``Tensor.to``."""
        return self.materialize().to(*args, **kwargs)

    @classmethod
    def __torch_function__(cls, func: Callable[..., Any], types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        def real(value: Any) -> Any:
            if isinstance(value, IndexedTensor):
                return value.materialize()
            if isinstance(value, (list, tuple)):
                return type(value)(real(v) for v in value)
            return value

        return func(*real(args), **{k: real(v) for k, v in (kwargs or {}).items()})

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(shape={list(self.shape)}, dtype={self.dtype}, "
                f"pool={list(self.pool.shape)}, index={list(self.index.shape)})")

"""Resolving the graph and feature arguments the convs accept, with clear errors."""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import Tensor

from wsfusion._validation import format_shape
from wsfusion.graphs import CrossModalGraph

#: PyG's hook dictionaries on a MessagePassing layer; any hook registered sends the layer down
#: its reference (propagate) path, where PyG calls them.
_PROPAGATE_HOOKS = (
    "_propagate_forward_pre_hooks", "_propagate_forward_hooks", "_message_forward_pre_hooks",
    "_message_forward_hooks", "_aggregate_forward_pre_hooks", "_aggregate_forward_hooks",
    "_message_and_aggregate_forward_pre_hooks", "_message_and_aggregate_forward_hooks",
    "_edge_update_forward_pre_hooks", "_edge_update_forward_hooks",
)


def takes_kernel_path(layer: Any) -> bool:
    """Whether a layer built with ``fuse=True`` may skip ``propagate`` on this call.

    ``fuse`` is PyG's own :class:`~torch_geometric.nn.conv.MessagePassing`
    attribute, with its meaning: message and aggregation are computed in one
    step (here torch's CSR kernels) instead of materialising one message per
    edge; PyG sets ``conv.fuse = False`` to force the message path (e.g.
    ``to_hetero_with_bases``), and so can a user. Not while PyG's explain mode
    is on (``Explainer`` sets edge masks that ``propagate`` applies to the
    messages) nor while any propagate / message / aggregate / edge-update hook
    is registered: then the reference path runs, which equals the kernel one,
    so PyG's tooling sees the layer as it would any other ``MessagePassing``.
    """
    return bool(layer.fuse) and not layer.explain and not any(getattr(layer, h, None) for h in _PROPAGATE_HOOKS)


class IdentityCache:
    """The last value built from some tensors, reused while the same tensor objects come back unchanged.

    "Unchanged" is the same identity and the same in-place ``_version``, plus
    an equal plain ``key`` (sizes, batch). The tensors are held by weak
    reference, and the cache is never state: pickling or copying a module
    gives an empty cache (it is rebuilt on the next call), so whole-model
    saving, ``copy.deepcopy`` and spawn-started workers work at any time.
    """

    __slots__ = ("_refs", "_versions", "_key", "_value")

    def __init__(self) -> None:
        self._refs: tuple[weakref.ref, ...] = ()
        self._versions: tuple[int, ...] = ()
        self._key: Any = None
        self._value: Any = None

    @property
    def empty(self) -> bool:
        return not self._refs

    def get(self, tensors: tuple[Tensor, ...], key: Any) -> Any:
        """The stored value if it was built from exactly these unchanged ``tensors`` and ``key``, else None."""
        if len(tensors) != len(self._refs) or key != self._key:
            return None
        for ref, version, t in zip(self._refs, self._versions, tensors):
            if ref() is not t or t._version != version:
                return None
        return self._value

    def put(self, tensors: tuple[Tensor, ...], key: Any, value: Any) -> Any:
        """Remember ``value`` as built from ``tensors`` (as they are now) and ``key``; returns it."""
        self._refs = tuple(weakref.ref(t) for t in tensors)
        self._versions = tuple(t._version for t in tensors)
        self._key, self._value = key, value
        return value

    def __reduce__(self) -> tuple[type, tuple[()]]:
        return IdentityCache, ()


def resolve_edges(
    layer: str, edge_index: Tensor | CrossModalGraph, edge_type: Tensor | None, num_src: int, num_dst: int,
    device: torch.device,
) -> tuple[Tensor, Tensor | None]:
    """``(edge_index [2, E], edge_type [E] or None)`` on ``device``, from tensors or a :class:`CrossModalGraph`.

    Sources (row 0) index ``[0, num_src)``, targets (row 1) ``[0, num_dst)``.
    A graph's tensors come from :meth:`CrossModalGraph.edge_tensors` (copied to
    ``device`` once, then cached); tensors are range-checked once and then
    remembered until they change (:func:`checked_once`), so the per-call cost
    of validation is no device sync.
    """
    bipartite = num_src != num_dst
    if isinstance(edge_index, CrossModalGraph):  # validated when it was built
        graph = edge_index
        if bipartite:
            raise ValueError(f"{layer}: a CrossModalGraph connects one node set; bipartite input (x_src, x_dst) "
                             f"needs a bipartite edge_index tensor [2, E] (e.g. from graph.to_hetero())")
        if graph.num_nodes != num_dst:
            raise ValueError(f"{layer}: the graph has {graph.num_nodes} nodes but x has {num_dst}")
        edge_index, graph_type = graph.edge_tensors(device)
        if edge_type is None:
            edge_type = graph_type
            _remember(graph_type, ("relations", graph.num_relations))
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.shape[0] != 2:
        got = format_shape(tuple(edge_index.shape)) if isinstance(edge_index, Tensor) else type(edge_index).__name__
        raise ValueError(f"{layer}: edge_index must be a LongTensor of shape [2, E] or a CrossModalGraph, got {got}")
    if edge_index.dtype != torch.long:
        raise TypeError(f"{layer}: edge_index must have dtype torch.int64, got {edge_index.dtype}")
    against = ("nodes", num_src, num_dst)
    if not checked_once(edge_index, against) and edge_index.numel():
        if bipartite:
            src, dst = edge_index
            if int(src.min()) < 0 or int(src.max()) >= num_src:
                raise ValueError(f"{layer}: edge_index[0] (sources) refers to nodes outside [0, {num_src}) "
                                 f"(x_src has {num_src} nodes)")
            if int(dst.min()) < 0 or int(dst.max()) >= num_dst:
                raise ValueError(f"{layer}: edge_index[1] (targets) refers to nodes outside [0, {num_dst}) "
                                 f"(x_dst has {num_dst} nodes)")
        elif int(edge_index.min()) < 0 or int(edge_index.max()) >= num_dst:
            raise ValueError(f"{layer}: edge_index refers to nodes outside [0, {num_dst}) (x has {num_dst} nodes)")
    _remember(edge_index, against)
    if edge_type is not None and (not isinstance(edge_type, Tensor) or tuple(edge_type.shape) != (edge_index.shape[1],)):
        got = format_shape(tuple(edge_type.shape)) if isinstance(edge_type, Tensor) else type(edge_type).__name__
        raise ValueError(f"{layer}: edge_type must have shape [E] = [{edge_index.shape[1]}], got {got}")
    return edge_index.to(device), None if edge_type is None else edge_type.to(device)


class CheckedTensors:
    """Which tensors passed which argument check, for as long as they live unchanged.

    One entry per tensor object: a weak reference, the in-place ``_version``
    at the check and the set of checks it passed (``against``: what it was
    checked against, e.g. ``("nodes", N_src, N_dst)``). The weak reference's
    callback drops the entry when the tensor is freed, so the table holds
    exactly the live checked tensors (no size cap, no wholesale clearing), an
    ``id()`` reused by a new tensor never inherits a pass, and an in-place
    change (a new ``_version``) forgets every pass of that tensor.
    """

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref, int, set[tuple[Any, ...]]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def passed(self, t: Tensor, against: tuple[Any, ...]) -> bool:
        """Whether ``t`` itself, unchanged since, passed the check ``against``."""
        entry = self._entries.get(id(t))
        return entry is not None and entry[0]() is t and entry[1] == t._version and against in entry[2]

    def remember(self, t: Tensor, against: tuple[Any, ...]) -> None:
        """Record that ``t`` (as it is now) passed the check ``against``."""
        key, version = id(t), t._version
        entry = self._entries.get(key)
        if entry is not None and entry[0]() is t and entry[1] == version:
            entry[2].add(against)
            return
        entries = self._entries

        def forget(ref: weakref.ref, key: int = key) -> None:
            current = entries.get(key)
            if current is not None and current[0] is ref:
                del entries[key]

        self._entries[key] = (weakref.ref(t, forget), version, {against})


#: The range checks passed by live, unchanged index tensors (shared by every layer).
_CHECKED = CheckedTensors()


def checked_once(t: Tensor, against: tuple[Any, ...]) -> bool:
    """Whether ``t`` itself, unchanged since (same object, same in-place version), passed the check ``against``.

    Range checks on index tensors need a device sync (``int(t.max())``); a
    layer called with the same buffers every step then checks them once.
    """
    return _CHECKED.passed(t, against)


def _remember(t: Tensor, against: tuple[Any, ...]) -> None:
    if torch.compiler.is_compiling():
        return
    _CHECKED.remember(t, against)


def _check_one(layer: str, x: object, in_channels: int, what: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer}: {what} must be a tensor [N, {in_channels}] or [B, N, {in_channels}], "
                        f"got {type(x).__name__}")
    if x.dim() not in (2, 3) or x.shape[-1] != in_channels:
        raise ValueError(
            f"{layer}: {what} must have shape [N, {in_channels}] or [B, N, {in_channels}], got {format_shape(tuple(x.shape))}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{layer}: {what} must be floating point, got dtype {x.dtype}")
    return x


def check_features(layer: str, x: object, in_channels: int) -> tuple[Tensor, Tensor]:
    """``(x_src, x_dst)``: ``x`` is ``[N, F]`` or ``[B, N, F]`` (both are ``x`` itself), or a bipartite
    pair ``(x_src, x_dst)`` of such tensors with the same batch, ``F = in_channels``."""
    if isinstance(x, (tuple, list)):
        if len(x) != 2:
            raise ValueError(f"{layer}: bipartite input must be a pair (x_src, x_dst), got {len(x)} tensors")
        x_src = _check_one(layer, x[0], in_channels, "x_src")
        x_dst = _check_one(layer, x[1], in_channels, "x_dst")
        if x_src.shape[:-2] != x_dst.shape[:-2]:
            raise ValueError(f"{layer}: x_src and x_dst must have the same batch dimensions, got "
                             f"{format_shape(tuple(x_src.shape))} and {format_shape(tuple(x_dst.shape))}")
        return x_src, x_dst
    x = _check_one(layer, x, in_channels, "x")
    return x, x


def _check_mask(layer: str, mask: object, x: Tensor, what: str) -> Tensor | None:
    if mask is None:
        return None
    allowed = [tuple(x.shape[-2:-1])] + ([tuple(x.shape[:2])] if x.dim() == 3 else [])
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or tuple(mask.shape) not in allowed:
        got = (format_shape(tuple(mask.shape)) + f" {mask.dtype}") if isinstance(mask, Tensor) else type(mask).__name__
        want = " or ".join(format_shape(s) for s in allowed)
        raise ValueError(f"{layer}: {what} must be a bool tensor of shape {want}, got {got} (True = node present)")
    return mask


def check_node_mask(layer: str, node_mask: object, x_src: Tensor, x_dst: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """``(source mask, target mask)``, True = present (the opposite of PyTorch's ``key_padding_mask``).

    ``[N]`` or, for batched ``x``, ``[B, N]``; for bipartite input a pair
    ``(mask_src, mask_dst)``, either may be :obj:`None`.
    """
    if x_src is x_dst:
        if isinstance(node_mask, (tuple, list)):
            raise ValueError(f"{layer}: a pair of node masks needs bipartite input (x_src, x_dst); give one mask")
        mask = _check_mask(layer, node_mask, x_src, "node_mask")
        return mask, mask
    if node_mask is None:
        return None, None
    if not isinstance(node_mask, (tuple, list)) or len(node_mask) != 2:
        raise ValueError(f"{layer}: with bipartite input, node_mask must be a pair (mask_src, mask_dst), "
                         f"got {type(node_mask).__name__}")
    return (_check_mask(layer, node_mask[0], x_src, "node_mask[0] (sources)"),
            _check_mask(layer, node_mask[1], x_dst, "node_mask[1] (targets)"))


def padding_to_node_mask(layer: str, node_mask: Any, key_padding_mask: Any) -> Any:
    """``node_mask`` from PyTorch's ``key_padding_mask`` (True = padding, ignore), which is its negation."""
    if key_padding_mask is None:
        return node_mask
    if node_mask is not None:
        raise ValueError(f"{layer}: give node_mask (True = present) or key_padding_mask (True = padding), not both")
    if isinstance(key_padding_mask, (tuple, list)):
        return tuple(None if m is None else _negate(layer, m) for m in key_padding_mask)
    return _negate(layer, key_padding_mask)


def _negate(layer: str, mask: Any) -> Tensor:
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = f"{mask.dtype} tensor" if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"{layer}: key_padding_mask must be a bool tensor (True = padding), got {got}")
    return ~mask


def check_edge_weight(layer: str, edge_weight: Tensor | None, edge_index: Tensor) -> Tensor | None:
    """``edge_weight`` must be a floating-point ``[E]`` tensor (one weight per edge, shared by the batch)."""
    if edge_weight is None:
        return None
    num_edges = edge_index.shape[1]
    if not isinstance(edge_weight, Tensor) or tuple(edge_weight.shape) != (num_edges,) or not edge_weight.is_floating_point():
        got = (format_shape(tuple(edge_weight.shape)) + f" {edge_weight.dtype}") if isinstance(edge_weight, Tensor) else type(edge_weight).__name__
        raise ValueError(f"{layer}: edge_weight must be a floating-point tensor of shape [E] = [{num_edges}], got {got}")
    return edge_weight.to(edge_index.device)


def check_edge_type(layer: str, edge_type: Tensor | None, num_relations: int, needed_for: str) -> Tensor:
    """``edge_type`` must be given and hold relation ids in ``[0, num_relations)``."""
    if edge_type is None:
        raise ValueError(f"{layer}: edge_type is required {needed_for}, or pass a CrossModalGraph")
    if edge_type.dtype != torch.long:
        raise TypeError(f"{layer}: edge_type must have dtype torch.int64, got {edge_type.dtype}")
    if checked_once(edge_type, ("relations", num_relations)):
        return edge_type
    if edge_type.numel():
        low, high = int(edge_type.min()), int(edge_type.max())
        if low < 0:
            raise ValueError(f"{layer}: edge_type has relation {low}; relation ids must be in [0, {num_relations})")
        if high >= num_relations:
            raise ValueError(f"{layer}: edge_type has relation {high} but num_relations={num_relations}")
    _remember(edge_type, ("relations", num_relations))
    return edge_type

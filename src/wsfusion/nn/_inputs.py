"""Resolving the graph and feature arguments the convs accept, with clear errors."""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

from wsfusion._validation import format_shape
from wsfusion.graphs import CrossModalGraph


def resolve_edges(
    layer: str, edge_index: Tensor | CrossModalGraph, edge_type: Tensor | None, num_nodes: int, device: torch.device
) -> tuple[Tensor, Tensor | None]:
    """``(edge_index [2, E], edge_type [E] or None)`` on ``device``, from tensors or a :class:`CrossModalGraph`.

    A graph's tensors come from :meth:`CrossModalGraph.edge_tensors` (copied to
    ``device`` once, then cached); tensors are range-checked once and then
    remembered until they change (:func:`checked_once`), so the per-call cost
    of validation is no device sync.
    """
    if isinstance(edge_index, CrossModalGraph):  # validated when it was built
        graph = edge_index
        if graph.num_nodes != num_nodes:
            raise ValueError(f"{layer}: the graph has {graph.num_nodes} nodes but x has {num_nodes}")
        edge_index, graph_type = graph.edge_tensors(device)
        if edge_type is None:
            edge_type = graph_type
            _remember(graph_type, ("relations", graph.num_relations))
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.shape[0] != 2:
        got = format_shape(tuple(edge_index.shape)) if isinstance(edge_index, Tensor) else type(edge_index).__name__
        raise ValueError(f"{layer}: edge_index must be a LongTensor of shape [2, E] or a CrossModalGraph, got {got}")
    if edge_index.dtype != torch.long:
        raise TypeError(f"{layer}: edge_index must have dtype torch.int64, got {edge_index.dtype}")
    if not checked_once(edge_index, ("nodes", num_nodes)) and edge_index.numel() and (
        int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes
    ):
        raise ValueError(f"{layer}: edge_index refers to nodes outside [0, {num_nodes}) (x has {num_nodes} nodes)")
    _remember(edge_index, ("nodes", num_nodes))
    if edge_type is not None and (not isinstance(edge_type, Tensor) or tuple(edge_type.shape) != (edge_index.shape[1],)):
        got = format_shape(tuple(edge_type.shape)) if isinstance(edge_type, Tensor) else type(edge_type).__name__
        raise ValueError(f"{layer}: edge_type must have shape [E] = [{edge_index.shape[1]}], got {got}")
    return edge_index.to(device), None if edge_type is None else edge_type.to(device)


#: (id(tensor), what it was checked against) -> (weak reference, tensor version at the check).
_CHECKED: dict[tuple[int, tuple[str, int]], tuple[weakref.ref, int]] = {}


def checked_once(t: Tensor, against: tuple[str, int]) -> bool:
    """Whether ``t`` itself, unchanged since (same object, same in-place version), passed the check ``against``.

    Range checks on index tensors need a device sync (``int(t.max())``); a
    layer called with the same buffers every step then checks them once.
    """
    entry = _CHECKED.get((id(t), against))
    return entry is not None and entry[0]() is t and entry[1] == t._version


def _remember(t: Tensor, against: tuple[str, int]) -> None:
    if torch.compiler.is_compiling():
        return
    if len(_CHECKED) > 1024:  # dead entries of freed tensors
        _CHECKED.clear()
    _CHECKED[(id(t), against)] = (weakref.ref(t), t._version)


def check_features(layer: str, x: object, in_channels: int) -> Tensor:
    """``x`` must be ``[N, F]`` or ``[B, N, F]`` with ``F = in_channels``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer}: x must be a tensor [N, {in_channels}] or [B, N, {in_channels}], got {type(x).__name__}")
    if x.dim() not in (2, 3) or x.shape[-1] != in_channels:
        raise ValueError(
            f"{layer}: x must have shape [N, {in_channels}] or [B, N, {in_channels}], got {format_shape(tuple(x.shape))}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{layer}: x must be floating point, got dtype {x.dtype}")
    return x


def check_node_mask(layer: str, node_mask: Tensor | None, x: Tensor) -> Tensor | None:
    """``node_mask`` (True = present) must be ``[N]`` or, for batched ``x``, ``[B, N]``."""
    if node_mask is None:
        return None
    allowed = [tuple(x.shape[-2:-1])] + ([tuple(x.shape[:2])] if x.dim() == 3 else [])
    if not isinstance(node_mask, Tensor) or node_mask.dtype != torch.bool or tuple(node_mask.shape) not in allowed:
        got = (format_shape(tuple(node_mask.shape)) + f" {node_mask.dtype}") if isinstance(node_mask, Tensor) else type(node_mask).__name__
        want = " or ".join(format_shape(s) for s in allowed)
        raise ValueError(f"{layer}: node_mask must be a bool tensor of shape {want}, got {got}")
    return node_mask


def check_edge_weight(layer: str, edge_weight: Tensor | None, edge_index: Tensor, x: Tensor) -> Tensor | None:
    """``edge_weight`` must be a floating-point ``[E]`` tensor (one weight per edge, shared by the batch)."""
    if edge_weight is None:
        return None
    num_edges = edge_index.shape[1]
    if not isinstance(edge_weight, Tensor) or tuple(edge_weight.shape) != (num_edges,) or not edge_weight.is_floating_point():
        got = (format_shape(tuple(edge_weight.shape)) + f" {edge_weight.dtype}") if isinstance(edge_weight, Tensor) else type(edge_weight).__name__
        raise ValueError(f"{layer}: edge_weight must be a floating-point tensor of shape [E] = [{num_edges}], got {got}")
    return edge_weight.to(device=x.device, dtype=x.dtype)


def check_edge_type(layer: str, edge_type: Tensor | None, num_relations: int, needed_for: str) -> Tensor:
    """``edge_type`` must be given and hold relation ids below ``num_relations``."""
    if edge_type is None:
        raise ValueError(f"{layer}: edge_type is required {needed_for}, or pass a CrossModalGraph")
    if checked_once(edge_type, ("relations", num_relations)):
        return edge_type
    if edge_type.numel() and int(edge_type.max()) >= num_relations:
        raise ValueError(f"{layer}: edge_type has relation {int(edge_type.max())} but num_relations={num_relations}")
    _remember(edge_type, ("relations", num_relations))
    return edge_type

"""The fast kernels behind :class:`WSLinear`: CSR SpMM and SDDMM from torch itself.

A graph's weighted adjacency ``A [N_dst, N_src]`` with one value per directed
edge is stored as CSR *structure* (``crow``, ``col``) plus the edge values in
``edge_index`` order (sorted by target, then source, which is CSR row order).
For the input gradient the transposed structure is precomputed once, with the
permutation that reorders the edge values into it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from wsfusion.graphs._edges import directed_keys, reverse_keys


class CSRStructure(NamedTuple):
    """CSR indices of ``A`` (rows = targets) and of ``A^T`` (rows = sources)."""

    crow: Tensor
    col: Tensor
    t_crow: Tensor
    t_col: Tensor
    t_perm: Tensor  # values of A^T in CSR order = values of A [t_perm]
    num_dst: int
    num_src: int


def csr_structure(edge_index: Tensor, num_nodes: int) -> CSRStructure:
    """CSR structure of ``edge_index`` (row 0 source, row 1 target), sorted by (target, source).

    Raises ``ValueError`` if the edges are not sorted by target then source or
    repeat a pair, since the edge values are used in that order.
    """
    src, dst = edge_index
    key = directed_keys(edge_index, num_nodes)
    if key.numel() > 1 and not bool((key[1:] > key[:-1]).all()):
        raise ValueError("edge_index must be sorted by target then source, without duplicate edges")
    crow = compressed_rows(dst, num_nodes)
    t_perm = torch.argsort(reverse_keys(edge_index, num_nodes))
    return CSRStructure(crow, src.clone(), compressed_rows(src, num_nodes), dst[t_perm], t_perm, num_nodes, num_nodes)


class RelationPairs(NamedTuple):
    """The (target, relation) pairs that occur in a typed edge set, and the CSR structure that sums
    each pair's incoming sources: ``A [P, N]`` with one row per pair, sorted by relation then target."""

    order: Tensor  # [E]: edge ids in the structure's value order
    structure: CSRStructure  # rows = pairs, columns = sources
    target: Tensor  # [P]: each pair's target node
    bounds: tuple[int, ...]  # pairs of relation r are rows bounds[r] : bounds[r + 1]


def relation_pairs(edge_index: Tensor, edge_type: Tensor, num_nodes: int, num_relations: int) -> RelationPairs:
    """Group edges by (relation, target) for aggregate-then-transform relational message passing.

    Edges may come in any order and repeat (a repeated edge counts twice).
    """
    src, dst = edge_index
    pair_key = edge_type * num_nodes + dst
    order = torch.argsort(pair_key * num_nodes + src, stable=True)
    keys, row = torch.unique_consecutive(pair_key[order], return_inverse=True)
    num_pairs = keys.numel()
    col = src[order]
    t_perm = torch.argsort(col * num_pairs + row, stable=True)
    structure = CSRStructure(compressed_rows(row, num_pairs), col, compressed_rows(col[t_perm], num_nodes), row[t_perm], t_perm,
                             num_pairs, num_nodes)
    counts = torch.bincount(keys // num_nodes, minlength=num_relations)
    bounds = (0, *torch.cumsum(counts, 0).tolist())
    return RelationPairs(order, structure, keys % num_nodes, bounds)


def compressed_rows(sorted_rows: Tensor, num_rows: int) -> Tensor:
    """CSR row pointers ``[num_rows + 1]`` of row indices sorted ascending."""
    crow = torch.zeros(num_rows + 1, dtype=torch.long, device=sorted_rows.device)
    crow[1:] = torch.bincount(sorted_rows, minlength=num_rows).cumsum(0)
    return crow


def csr_tensor(crow: Tensor, col: Tensor, values: Tensor, size: tuple[int, int]) -> Tensor:
    return torch.sparse_csr_tensor(crow, col, values, size, check_invariants=False)


def node_major(x: Tensor) -> Tensor:
    """``[B, N] -> [N, B]`` contiguous; free when ``x`` is a transposed view of node-major memory."""
    x_t = x.t()
    return x_t if x_t.is_contiguous() else x_t.contiguous()


class _EdgeWeightedSpMM(torch.autograd.Function):
    """``out = (A(w) @ x.T).T`` for ``x [B, N_src]``; kernels run node-major, gradients by SpMM and SDDMM.

    The kernels want node-major ``[N, B]`` operands, so at most two
    transposing copies happen, both inside: ``x`` and the output gradient are
    made node-major (free when they already are). The output and the input
    gradient are returned as transposed views of the kernels' node-major
    results, never copied back: the op before a ``WSLinear`` takes its
    gradient in any layout (``mm`` reads transposed operands through BLAS
    flags), and a leaf input's gradient is laid out by autograd itself.

    Measured and rejected (``benchmarks/bench_ws_linear.py``, 2 threads):
    running MKL's column-major SpMM on the contiguous ``[B, N]`` memory
    directly (no copies at all) was 1.0-1.6x *slower* than copy + row-major
    SpMM at N >= 3,072, and a permute-based transposing copy that had once
    measured faster was 2-4x slower than ``.t().contiguous()``.
    """

    @staticmethod
    def forward(ctx, weight: Tensor, x: Tensor, s: CSRStructure) -> Tensor:  # type: ignore[override]
        x_nodes = node_major(x)
        ctx.structure = s
        ctx.save_for_backward(weight, x_nodes)
        return (csr_tensor(s.crow, s.col, weight, (s.num_dst, s.num_src)) @ x_nodes).t()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        weight, x_nodes = ctx.saved_tensors
        s: CSRStructure = ctx.structure
        grad_nodes = node_major(grad_out)
        grad_weight = grad_x = None
        if ctx.needs_input_grad[1]:
            grad_x = (csr_tensor(s.t_crow, s.t_col, weight[s.t_perm], (s.num_src, s.num_dst)) @ grad_nodes).t()
        if ctx.needs_input_grad[0]:
            # SDDMM: grad_w[e] = <grad_out[:, dst_e], x[:, src_e]>, only at the edges (never N x N).
            pattern = csr_tensor(s.crow, s.col, weight.detach(), (s.num_dst, s.num_src))
            grad_weight = torch.sparse.sampled_addmm(pattern, grad_nodes, x_nodes.t(), beta=0.0).values()
        return grad_weight, grad_x, None


def edge_weighted_spmm(weight: Tensor, x: Tensor, structure: CSRStructure) -> Tensor:
    r"""``out[:, t] = sum over edges s -> t of weight[e] * x[:, s]``, features last.

    Args:
        weight (torch.Tensor): One value per edge ``[E]``, in the structure's
            (target, source) order.
        x (torch.Tensor): ``[B, N_src]``; fastest when it is a transposed view
            of node-major ``[N_src, B]`` memory (as this function returns).
        structure (CSRStructure): From :func:`csr_structure`.

    Returns:
        ``[B, N_dst]``, a transposed view of node-major memory.
        Differentiable in ``weight`` and ``x``.
    """
    return _EdgeWeightedSpMM.apply(weight, x, structure)

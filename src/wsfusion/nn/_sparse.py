"""The fast kernels behind the layers: CSR SpMM and SDDMM from torch itself, as custom ops.

A graph's weighted adjacency ``A [N_dst, N_src]`` with one value per directed
edge is stored as CSR *structure* (``crow``, ``col``) plus the edge values in
``edge_index`` order (sorted by target, then source, which is CSR row order).
For the input gradient the transposed structure is precomputed once, with the
permutation that reorders the edge values into it (and its inverse, the
transposed structure's own permutation).

The two kernels are :func:`torch.library.custom_op` operators
(``wsfusion::csr_spmm``, ``wsfusion::csr_sddmm``) with fake (shape)
implementations and autograd formulas in terms of each other, so
``torch.compile`` keeps them inside the compiled graph as opaque nodes
instead of breaking the graph. Eager mode runs the same kernels and the same
gradient formulas (:func:`spmm_grads`, :func:`sddmm_grads`) through autograd
functions, which cost less per call than the operators' dispatch.

Precision: torch's CPU CSR kernels have no float16 / bfloat16 version, so
half-precision operands are accumulated in float32 inside the op and the
result is rounded back to the operands' dtype (on every device, so CPU and
CUDA agree). Which dtype the operands have follows autocast's convention for
a matmul (:func:`compute_dtype`), as :class:`torch.nn.Linear` does: under
``torch.autocast`` they are cast to the autocast dtype, otherwise they keep
their own (promoted) dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from wsfusion.graphs.edges import directed_keys, reverse_keys

_HALF = (torch.float16, torch.bfloat16)


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the CSR kernels compute in for operands of ``dtype``: float32 for half precision."""
    return torch.float32 if dtype in _HALF else dtype


def compute_dtype(*tensors: Tensor) -> torch.dtype:
    """The dtype a matmul of ``tensors`` runs in: the autocast dtype when autocast is on for their
    device, else their promoted dtype (as for :func:`torch.nn.functional.linear`)."""
    first = tensors[0]
    device_type = first.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    dtype = first.dtype
    for t in tensors[1:]:
        if t.dtype is not dtype:
            dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _needs_float32(t: Tensor) -> bool:
    # Half precision has no CSR kernel on CPU; and inside the kernels autocast must not cast the
    # sparse matmuls' operands back to half precision.
    return t.dtype in _HALF or torch.is_autocast_enabled(t.device.type)


def _spmm_kernel(crow: Tensor, col: Tensor, t_crow: Tensor, values: Tensor, x: Tensor) -> Tensor:
    size = (crow.numel() - 1, t_crow.numel() - 1)
    if _needs_float32(x):
        acc = accumulation_dtype(x.dtype)
        with torch.autocast(x.device.type, enabled=False):
            return (csr_tensor(crow, col, values.to(acc), size) @ x.to(acc).contiguous()).to(x.dtype)
    return csr_tensor(crow, col, values, size) @ x.contiguous()


def _sddmm_kernel(crow: Tensor, col: Tensor, t_crow: Tensor, a: Tensor, b: Tensor) -> Tensor:
    size = (crow.numel() - 1, t_crow.numel() - 1)
    if _needs_float32(a):
        acc = accumulation_dtype(a.dtype)
        with torch.autocast(a.device.type, enabled=False):
            pattern = csr_tensor(crow, col, a.new_zeros(col.shape, dtype=acc), size)
            return torch.sparse.sampled_addmm(pattern, a.to(acc), b.to(acc).t(), beta=0.0).values().to(a.dtype)
    return torch.sparse.sampled_addmm(csr_tensor(crow, col, a.new_zeros(col.shape), size), a, b.t(), beta=0.0).values()


@torch.library.custom_op("wsfusion::csr_spmm", mutates_args=())
def csr_spmm_op(crow: Tensor, col: Tensor, t_crow: Tensor, t_col: Tensor, t_perm: Tensor, t_inv: Tensor,
                values: Tensor, x: Tensor) -> Tensor:
    """:func:`spmm` as an operator torch.compile keeps in its graph."""
    return _spmm_kernel(crow, col, t_crow, values, x)


@csr_spmm_op.register_fake
def _(crow, col, t_crow, t_col, t_perm, t_inv, values, x):
    return x.new_empty(crow.shape[0] - 1, x.shape[1])


@torch.library.custom_op("wsfusion::csr_sddmm", mutates_args=())
def csr_sddmm_op(crow: Tensor, col: Tensor, t_crow: Tensor, t_col: Tensor, t_perm: Tensor, t_inv: Tensor,
                 a: Tensor, b: Tensor) -> Tensor:
    """:func:`sddmm` as an operator torch.compile keeps in its graph."""
    return _sddmm_kernel(crow, col, t_crow, a, b)


@csr_sddmm_op.register_fake
def _(crow, col, t_crow, t_col, t_perm, t_inv, a, b):
    return a.new_empty(col.shape[0])


def _transposed(indices: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """The structure of ``A^T``: its transpose is ``A``, so the two index pairs and permutations swap."""
    crow, col, t_crow, t_col, t_perm, t_inv = indices
    return t_crow, t_col, crow, col, t_inv, t_perm


def _op_spmm(indices: tuple[Tensor, ...], values: Tensor, x: Tensor) -> Tensor:
    return csr_spmm_op(*indices, values, x)


def _op_sddmm(indices: tuple[Tensor, ...], a: Tensor, b: Tensor) -> Tensor:
    return csr_sddmm_op(*indices, a, b)


def _kernel_spmm(indices: tuple[Tensor, ...], values: Tensor, x: Tensor) -> Tensor:
    return _spmm_kernel(indices[0], indices[1], indices[2], values, x)


def _kernel_sddmm(indices: tuple[Tensor, ...], a: Tensor, b: Tensor) -> Tensor:
    return _sddmm_kernel(indices[0], indices[1], indices[2], a, b)


def spmm_grads(spmm_: Callable, sddmm_: Callable, indices: tuple[Tensor, ...], values: Tensor, x: Tensor,
               grad: Tensor, needs: tuple[bool, bool]) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of ``A(values) @ x`` in ``(values, x)``: SDDMM for the values, SpMM on the transpose for ``x``.

    ``spmm_`` / ``sddmm_`` run the kernels: the custom ops (compiled, differentiable again) or the
    kernels themselves (eager, first order).
    """
    grad = grad.contiguous()
    grad_values = sddmm_(indices, grad, x) if needs[0] else None
    grad_x = spmm_(_transposed(indices), values[indices[4]], grad) if needs[1] else None
    return grad_values, grad_x


def sddmm_grads(spmm_: Callable, indices: tuple[Tensor, ...], a: Tensor, b: Tensor, grad: Tensor,
                needs: tuple[bool, bool]) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of the SDDMM ``<a_row, b_col>`` in ``(a, b)``: SpMM with the gradients as values, and on the transpose."""
    grad_a = spmm_(indices, grad, b) if needs[0] else None
    grad_b = spmm_(_transposed(indices), grad[indices[4]], a) if needs[1] else None
    return grad_a, grad_b


def _save_all(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def _spmm_backward(ctx, grad: Tensor):
    *indices, values, x = ctx.saved_tensors
    grads = spmm_grads(_op_spmm, _op_sddmm, tuple(indices), values, x, grad, ctx.needs_input_grad[6:])
    return None, None, None, None, None, None, *grads


def _sddmm_backward(ctx, grad: Tensor):
    *indices, a, b = ctx.saved_tensors
    grads = sddmm_grads(_op_spmm, tuple(indices), a, b, grad, ctx.needs_input_grad[6:])
    return None, None, None, None, None, None, *grads


csr_spmm_op.register_autograd(_spmm_backward, setup_context=_save_all)
csr_sddmm_op.register_autograd(_sddmm_backward, setup_context=_save_all)


class _SpMM(torch.autograd.Function):
    """Eager twin of ``wsfusion::csr_spmm``: the same kernels and gradient formulas, without the
    operator's dispatch (measured ~2x the whole layer's time at N=192), first-order only. The index
    tensors ride on ``ctx`` as one tuple (they are structure, never differentiated)."""

    @staticmethod
    def forward(ctx, indices: tuple[Tensor, ...], values: Tensor, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.indices = indices
        ctx.save_for_backward(values, x)
        return _kernel_spmm(indices, values, x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        values, x = ctx.saved_tensors
        return None, *spmm_grads(_kernel_spmm, _kernel_sddmm, ctx.indices, values, x, grad, ctx.needs_input_grad[1:])


class _SDDMM(torch.autograd.Function):
    """Eager twin of ``wsfusion::csr_sddmm``."""

    @staticmethod
    def forward(ctx, indices: tuple[Tensor, ...], a: Tensor, b: Tensor) -> Tensor:  # type: ignore[override]
        ctx.indices = indices
        ctx.save_for_backward(a, b)
        return _kernel_sddmm(indices, a, b)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        a, b = ctx.saved_tensors
        return None, *sddmm_grads(_kernel_spmm, ctx.indices, a, b, grad, ctx.needs_input_grad[1:])


def spmm(crow: Tensor, col: Tensor, t_crow: Tensor, t_col: Tensor, t_perm: Tensor, t_inv: Tensor,
         values: Tensor, x: Tensor) -> Tensor:
    """``A @ x`` for ``A [R, C]`` in CSR (``crow``, ``col``, ``values``) and dense ``x [C, d]``: ``[R, d]``.

    ``t_crow``, ``t_col``, ``t_perm``, ``t_inv`` are the transpose's structure
    (values of ``A^T`` = ``values[t_perm]``, ``t_inv`` its inverse), used by
    the backward pass: SpMM on the transpose for ``x``, :func:`sddmm` for the
    values. Under ``torch.compile`` this is the ``wsfusion::csr_spmm``
    operator, in eager mode an autograd function with the same kernel.
    """
    if torch.compiler.is_compiling():
        return csr_spmm_op(crow, col, t_crow, t_col, t_perm, t_inv, values, x)
    return _SpMM.apply((crow, col, t_crow, t_col, t_perm, t_inv), values, x)


def sddmm(crow: Tensor, col: Tensor, t_crow: Tensor, t_col: Tensor, t_perm: Tensor, t_inv: Tensor,
          a: Tensor, b: Tensor) -> Tensor:
    r"""``[V]``: :math:`\langle a_{\mathrm{row}(v)}, b_{\mathrm{col}(v)} \rangle` at every stored entry ``v``
    of the CSR structure, for ``a [R, d]``, ``b [C, d]`` (never ``R × C``); the ``wsfusion::csr_sddmm``
    operator under ``torch.compile``."""
    if torch.compiler.is_compiling():
        return csr_sddmm_op(crow, col, t_crow, t_col, t_perm, t_inv, a, b)
    return _SDDMM.apply((crow, col, t_crow, t_col, t_perm, t_inv), a, b)


class CSRStructure(NamedTuple):
    """CSR indices of ``A`` (rows = targets) and of ``A^T`` (rows = sources)."""

    crow: Tensor
    col: Tensor
    t_crow: Tensor
    t_col: Tensor
    t_perm: Tensor  # values of A^T in CSR order = values of A [t_perm]
    t_inv: Tensor  # the inverse permutation: values of A = values of A^T [t_inv]
    num_dst: int
    num_src: int

    @property
    def indices(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The six index tensors, in the kernels' argument order."""
        return self.crow, self.col, self.t_crow, self.t_col, self.t_perm, self.t_inv


def inverse_permutation(perm: Tensor) -> Tensor:
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel(), device=perm.device)
    return inverse


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
    return CSRStructure(crow, src.clone(), compressed_rows(src, num_nodes), dst[t_perm], t_perm,
                        inverse_permutation(t_perm), num_nodes, num_nodes)


class RelationPairs(NamedTuple):
    """The (target, relation) pairs that occur in a typed edge set, and the CSR structure that sums
    each pair's incoming sources: ``A [P, N_src]`` with one row per pair, sorted by relation then target."""

    order: Tensor  # [E]: edge ids in the structure's value order
    structure: CSRStructure  # rows = pairs, columns = sources
    target: Tensor  # [P]: each pair's target node
    bounds: tuple[int, ...]  # pairs of relation r are rows bounds[r] : bounds[r + 1]


def relation_pairs(edge_index: Tensor, edge_type: Tensor, num_src: int, num_dst: int, num_relations: int) -> RelationPairs:
    """Group edges by (relation, target) for aggregate-then-transform relational message passing.

    Edges may come in any order and repeat (a repeated edge counts twice);
    sources index ``[0, num_src)``, targets ``[0, num_dst)`` (bipartite when they differ).
    """
    src, dst = edge_index
    pair_key = edge_type * num_dst + dst
    order = torch.argsort(pair_key * num_src + src, stable=True)
    keys, row = torch.unique_consecutive(pair_key[order], return_inverse=True)
    num_pairs = keys.numel()
    col = src[order]
    t_perm = torch.argsort(col * num_pairs + row, stable=True)
    structure = CSRStructure(compressed_rows(row, num_pairs), col, compressed_rows(col[t_perm], num_src), row[t_perm], t_perm,
                             inverse_permutation(t_perm), num_pairs, num_src)
    counts = torch.bincount(keys // num_dst, minlength=num_relations)
    bounds = (0, *torch.cumsum(counts, 0).tolist())
    return RelationPairs(order, structure, keys % num_dst, bounds)


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


def edge_weighted_spmm(weight: Tensor, x: Tensor, structure: CSRStructure) -> Tensor:
    r"""``out[:, t] = sum over edges s -> t of weight[e] * x[:, s]``, features last.

    The kernel runs node-major: ``x`` is made ``[N_src, B]`` contiguous (free
    when it already is a transposed view of such memory) and the output is
    returned as a transposed view of the kernel's node-major result, never
    copied back; its gradient comes back the same way. Measured and rejected
    (``benchmarks/bench_ws_linear.py``, 2 threads): MKL's column-major SpMM on
    the contiguous ``[B, N]`` memory (no copies) was 1.0-1.6x *slower* than
    copy + row-major SpMM at N >= 3,072.

    Args:
        weight (torch.Tensor): One value per edge ``[E]``, in the structure's
            (target, source) order.
        x (torch.Tensor): ``[B, N_src]``.
        structure (CSRStructure): From :func:`csr_structure`.

    Returns:
        ``[B, N_dst]`` in :func:`compute_dtype` of ``weight`` and ``x``, a
        transposed view of node-major memory. Differentiable in ``weight``
        and ``x`` (SpMM with the transposed values, SDDMM for the weights).
    """
    dtype = compute_dtype(weight, x)
    if weight.dtype != dtype:
        weight = weight.to(dtype)
    if x.dtype != dtype:
        x = x.to(dtype)
    if torch.compiler.is_compiling():
        return csr_spmm_op(*structure.indices, weight, node_major(x)).t()
    return _EdgeWeightedSpMM.apply(weight, x, structure)


class _EdgeWeightedSpMM(torch.autograd.Function):
    """Eager :func:`edge_weighted_spmm`: the layout changes happen inside, so autograd records one node
    instead of four (the transposing copy, the kernel, the output's transpose; measured +10% of the
    whole layer's step at N = 192 when they were separate)."""

    @staticmethod
    def forward(ctx, weight: Tensor, x: Tensor, s: CSRStructure) -> Tensor:  # type: ignore[override]
        x_nodes = node_major(x)
        ctx.structure = s
        ctx.save_for_backward(weight, x_nodes)
        return _kernel_spmm(s.indices, weight, x_nodes).t()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        weight, x_nodes = ctx.saved_tensors
        s: CSRStructure = ctx.structure
        grad_weight, grad_x = spmm_grads(_kernel_spmm, _kernel_sddmm, s.indices, weight, x_nodes, node_major(grad_out),
                                         ctx.needs_input_grad[:2])
        return grad_weight, None if grad_x is None else grad_x.t(), None

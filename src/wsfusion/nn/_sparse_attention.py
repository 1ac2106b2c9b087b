r"""Attention restricted to a graph's edges on torch's own CSR kernels (the fused path of
:class:`~wsfusion.nn.CrossModalAttentionConv`).

The ``B`` samples × ``H`` heads of attention over one static graph (``N`` nodes, ``E``
edges) are one sparse matrix over the **rows of the projections' own memory**: a
``[B, N, H·d]`` projection is ``[R, d]`` with ``R = B·N·H`` rows, row ``(b, i, h)`` being
head ``h`` of node ``i`` in sample ``b``. Attention of head ``h`` from target ``i`` to
source ``j`` is the entry ``((b, i, h), (b, j, h))``, so the ``V = B·H·E`` scores are the
values of one ``[R, R]`` CSR matrix, and nothing is ever copied into a heads-first layout:

* scores :math:`s_v = \langle q_{\mathrm{row}(v)}, k_{\mathrm{col}(v)} \rangle` by SDDMM
  (:func:`torch.sparse.sampled_addmm`);
* the softmax over each row's values (segment max, ``exp``, segment sum), one autograd
  function that keeps only its output;
* the output :math:`o_r = \sum_{v \in r} \alpha_v v_{\mathrm{col}(v)}` by one CSR SpMM, already
  in ``[B, N, H·d]`` order for the output projection.

The backward passes are again SDDMM / SpMM, on the stored structure and its precomputed
transpose; no ``[V, d]`` tensor is ever built.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from wsfusion.nn._sparse import compressed_rows, csr_tensor


class AttentionStructure(NamedTuple):
    """CSR layout of ``B`` samples × ``H`` heads of attention over ``[B·N·H, d]`` rows."""

    order: Tensor  # [E]: edge ids sorted by (target, source); CSR edge position p is edge order[p]
    crow: Tensor  # [R + 1]
    col: Tensor  # [V]: column (b, source, h) of each value
    row: Tensor  # [V]: row (b, target, h) of each value, its softmax group
    edge: Tensor  # [V]: CSR edge position p of each value
    t_crow: Tensor  # [R + 1]: the transpose (rows = (b, source, h))
    t_col: Tensor  # [V]
    t_perm: Tensor  # [V]: values of the transpose in its CSR order = values [t_perm]
    batch: int
    num_nodes: int
    heads: int

    @property
    def num_rows(self) -> int:
        return self.batch * self.num_nodes * self.heads


def attention_structure(edge_index: Tensor, num_nodes: int, batch: int, heads: int) -> AttentionStructure:
    """The CSR layouts of ``edge_index`` (row 0 source, row 1 target; any order, repeats allowed)."""
    src, dst = edge_index
    n, h = num_nodes, heads
    device = edge_index.device
    order = torch.argsort(dst * n + src, stable=True)
    s_src, s_dst = src[order], dst[order]
    node_crow = compressed_rows(s_dst, n)
    rows = batch * n * h
    row_degree = node_crow.diff().repeat_interleave(h).repeat(batch)  # rows in (b, i, h) order
    crow = torch.zeros(rows + 1, dtype=torch.long, device=device)
    crow[1:] = row_degree.cumsum(0)
    row = torch.repeat_interleave(torch.arange(rows, device=device), row_degree)
    node = (row // h) % n
    edge = node_crow[node] + torch.arange(row.numel(), device=device) - crow[row]
    col = ((row // (h * n)) * n + s_src[edge]) * h + row % h
    t_perm = torch.argsort(col * rows + row, stable=True)
    return AttentionStructure(order=order, crow=crow, col=col, row=row, edge=edge,
                              t_crow=compressed_rows(col[t_perm], rows), t_col=row[t_perm], t_perm=t_perm,
                              batch=batch, num_nodes=n, heads=h)


def _spmm(crow: Tensor, col: Tensor, values: Tensor, x: Tensor) -> Tensor:
    """``[R, d]``: the ``[R, R]`` CSR matrix with ``values`` times ``x [R, d]``."""
    r = x.shape[0]
    return csr_tensor(crow, col, values, (r, r)) @ x


def _sddmm(s: AttentionStructure, a: Tensor, b: Tensor) -> Tensor:
    """``[V]``: :math:`\\langle a_{\\mathrm{row}(v)}, b_{\\mathrm{col}(v)} \\rangle` per value, ``a, b [R, d]``."""
    r = a.shape[0]
    pattern = csr_tensor(s.crow, s.col, a.new_zeros(s.col.shape), (r, r))
    return torch.sparse.sampled_addmm(pattern, a, b.t(), beta=0.0).values()


class _EdgeScores(torch.autograd.Function):
    """SDDMM: scores of every (edge, head, sample); backward by SpMM with the score gradients as values."""

    @staticmethod
    def forward(ctx, query: Tensor, key: Tensor, s: AttentionStructure) -> Tensor:  # type: ignore[override]
        ctx.structure = s
        ctx.save_for_backward(query, key)
        return _sddmm(s, query, key)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        query, key = ctx.saved_tensors
        s: AttentionStructure = ctx.structure
        grad_query = grad_key = None
        if ctx.needs_input_grad[0]:
            grad_query = _spmm(s.crow, s.col, grad, key)
        if ctx.needs_input_grad[1]:
            grad_key = _spmm(s.t_crow, s.t_col, grad[s.t_perm], query)
        return grad_query, grad_key, None


class _EdgeAggregate(torch.autograd.Function):
    """SpMM: :math:`o_r = \\sum_{v \\in r} \\alpha_v v_{\\mathrm{col}(v)}`; backward by SpMM on the transpose and SDDMM."""

    @staticmethod
    def forward(ctx, alpha: Tensor, value: Tensor, s: AttentionStructure) -> Tensor:  # type: ignore[override]
        ctx.structure = s
        ctx.save_for_backward(alpha, value)
        return _spmm(s.crow, s.col, alpha, value)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        alpha, value = ctx.saved_tensors
        s: AttentionStructure = ctx.structure
        grad = grad.contiguous()
        grad_alpha = grad_value = None
        if ctx.needs_input_grad[0]:
            grad_alpha = _sddmm(s, grad, value)
        if ctx.needs_input_grad[1]:
            grad_value = _spmm(s.t_crow, s.t_col, alpha[s.t_perm], grad)
        return grad_alpha, grad_value, None


def edge_scores(query: Tensor, key: Tensor, s: AttentionStructure) -> Tensor:
    """``[V]`` dot products of each value's target query row and source key row (``[R, d]`` inputs)."""
    return _EdgeScores.apply(query, key, s)


def edge_aggregate(alpha: Tensor, value: Tensor, s: AttentionStructure) -> Tensor:
    """``[R, d]``: every row's sum of its values' ``alpha [V]`` times the source value rows."""
    return _EdgeAggregate.apply(alpha, value, s)


class _EdgeSoftmax(torch.autograd.Function):
    r"""Gated softmax over each row's values, saving only what its gradient needs.

    Forward: :math:`\alpha_v = w_v e^{s_v} / T_{r(v)}` with
    :math:`T_r = \sum_{v \in r} w_v e^{s_v}` (values not ``present`` left out;
    :math:`\alpha = 0` where :math:`T = 0`). Backward, with
    :math:`\bar g_r = \sum_{v \in r} g_v \alpha_v`:

    .. math::
        \frac{\partial L}{\partial s_v} = \alpha_v (g_v - \bar g_{r(v)}),
        \qquad
        \frac{\partial L}{\partial w_v} = \frac{e^{s_v}}{T_{r(v)}} (g_v - \bar g_{r(v)}),

    so only :math:`\alpha` (and, for learnable gates, :math:`e^{s}/T`, finite
    also where :math:`w_v = 0`) is kept, instead of every ``[V]``
    intermediate autograd would save. Empty rows give zero gradients.
    """

    @staticmethod
    def forward(ctx, score: Tensor, weight: Tensor | None, present: Tensor | None,  # type: ignore[override]
                s: AttentionStructure) -> Tensor:
        masked = score if present is None else score.masked_fill(~present, float("-inf"))
        peak = torch.full((s.num_rows,), float("-inf"), dtype=score.dtype, device=score.device)
        peak = peak.scatter_reduce(0, s.row, masked, "amax")
        peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
        exp = torch.exp(masked - peak[s.row])
        gated = exp if weight is None else exp * weight
        total = torch.zeros_like(peak).index_add_(0, s.row, gated)[s.row]
        empty = total == 0
        inverse = torch.where(empty, torch.zeros_like(total), 1.0 / torch.where(empty, 1.0, total))
        alpha = gated * inverse
        ratio = exp * inverse if weight is not None and ctx.needs_input_grad[1] else None
        ctx.structure = s
        ctx.save_for_backward(alpha, ratio)
        return alpha

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        alpha, ratio = ctx.saved_tensors
        s: AttentionStructure = ctx.structure
        row_dot = torch.zeros(s.num_rows, dtype=grad.dtype, device=grad.device)
        centred = grad - row_dot.index_add_(0, s.row, grad * alpha)[s.row]
        grad_score = alpha * centred if ctx.needs_input_grad[0] else None
        grad_weight = ratio * centred if ratio is not None else None
        return grad_score, grad_weight, None, None


def edge_softmax(score: Tensor, s: AttentionStructure, present: Tensor | None = None,
                 weight: Tensor | None = None) -> Tensor:
    r"""Softmax of ``score [V]`` over each row's values, :math:`\mathrm{softmax}(s + \log w)`.

    ``present`` (bool ``[V]``) leaves values out; ``weight`` ``[V]`` (non-negative
    gates) scales each term before normalising. A row with no value left (none
    present, or every gate closed) gets coefficients 0, with finite (zero)
    gradients: the renormalisation never divides by zero. Differentiable in
    ``score`` and ``weight`` (:class:`_EdgeSoftmax`: only the output is kept for
    the backward pass).
    """
    return _EdgeSoftmax.apply(score, weight, present, s)

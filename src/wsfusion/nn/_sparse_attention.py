r"""Attention restricted to a graph's edges on torch's own CSR kernels (the ``fuse=True`` path of
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

from wsfusion.nn._sparse import compressed_rows, compute_dtype, inverse_permutation, sddmm, spmm


class AttentionStructure(NamedTuple):
    """CSR layout of ``B`` samples × ``H`` heads of attention: rows ``(b, target, h)`` of the
    ``[B·N_dst·H, d]`` queries, columns ``(b, source, h)`` of the ``[B·N_src·H, d]`` keys and values."""

    order: Tensor  # [E]: edge ids sorted by (target, source); CSR edge position p is edge order[p]
    crow: Tensor  # [R + 1]
    col: Tensor  # [V]: column (b, source, h) of each value
    row: Tensor  # [V]: row (b, target, h) of each value, its softmax group
    edge: Tensor  # [V]: CSR edge position p of each value
    t_crow: Tensor  # [C + 1]: the transpose (rows = (b, source, h))
    t_col: Tensor  # [V]
    t_perm: Tensor  # [V]: values of the transpose in its CSR order = values [t_perm]
    t_inv: Tensor  # [V]: the inverse permutation
    batch: int
    num_nodes: int  # targets
    heads: int
    num_src: int

    @property
    def num_rows(self) -> int:
        return self.batch * self.num_nodes * self.heads

    @property
    def indices(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        return self.crow, self.col, self.t_crow, self.t_col, self.t_perm, self.t_inv


def attention_structure(edge_index: Tensor, num_nodes: int, batch: int, heads: int,
                        num_src: int | None = None) -> AttentionStructure:
    """The CSR layouts of ``edge_index`` (row 0 source, row 1 target; any order, repeats allowed).

    ``num_nodes`` targets; sources index ``[0, num_src)`` (default: the same
    nodes; bipartite when they differ).
    """
    src, dst = edge_index
    n, h = num_nodes, heads
    n_src = n if num_src is None else num_src
    device = edge_index.device
    order = torch.argsort(dst * n_src + src, stable=True)
    s_src, s_dst = src[order], dst[order]
    node_crow = compressed_rows(s_dst, n)
    rows, cols = batch * n * h, batch * n_src * h
    row_degree = node_crow.diff().repeat_interleave(h).repeat(batch)  # rows in (b, i, h) order
    crow = torch.zeros(rows + 1, dtype=torch.long, device=device)
    crow[1:] = row_degree.cumsum(0)
    row = torch.repeat_interleave(torch.arange(rows, device=device), row_degree)
    node = (row // h) % n
    edge = node_crow[node] + torch.arange(row.numel(), device=device) - crow[row]
    col = ((row // (h * n)) * n_src + s_src[edge]) * h + row % h
    t_perm = torch.argsort(col * rows + row, stable=True)
    return AttentionStructure(order=order, crow=crow, col=col, row=row, edge=edge,
                              t_crow=compressed_rows(col[t_perm], cols), t_col=row[t_perm], t_perm=t_perm,
                              t_inv=inverse_permutation(t_perm), batch=batch, num_nodes=n, heads=h, num_src=n_src)


def edge_scores(query: Tensor, key: Tensor, s: AttentionStructure) -> Tensor:
    """``[V]`` dot products of each value's target query row and source key row.

    ``query [R, d]`` (rows ``(b, target, h)``), ``key [C, d]``; SDDMM, in the
    :func:`~wsfusion.nn._sparse.compute_dtype` of the two (fp32 accumulation).
    """
    dtype = compute_dtype(query, key)
    return sddmm(*s.indices, query.to(dtype), key.to(dtype))


def edge_aggregate(alpha: Tensor, value: Tensor, s: AttentionStructure) -> Tensor:
    """``[R, d]``: every row's sum of its values' ``alpha [V]`` times the source value rows ``value [C, d]``.

    Runs in the dtype of ``value`` (or autocast's): the coefficients are cast to it.
    """
    dtype = compute_dtype(value)
    return spmm(*s.indices, alpha.to(dtype), value.to(dtype))


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
                row: Tensor, num_rows: int) -> Tensor:
        masked = score if present is None else score.masked_fill(~present, float("-inf"))
        peak = torch.full((num_rows,), float("-inf"), dtype=score.dtype, device=score.device)
        peak = peak.scatter_reduce(0, row, masked, "amax")
        peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
        exp = torch.exp(masked - peak[row])
        gated = exp if weight is None else exp * weight
        total = torch.zeros_like(peak).index_add_(0, row, gated)[row]
        empty = total == 0
        inverse = torch.where(empty, torch.zeros_like(total), 1.0 / torch.where(empty, 1.0, total))
        alpha = gated * inverse
        if weight is not None and ctx.needs_input_grad[1]:
            ctx.save_for_backward(alpha, row, exp * inverse)
        else:
            ctx.save_for_backward(alpha, row)
        ctx.num_rows = num_rows
        return alpha

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        alpha, row, *ratio = ctx.saved_tensors
        row_dot = torch.zeros(ctx.num_rows, dtype=grad.dtype, device=grad.device)
        centred = grad - row_dot.index_add_(0, row, grad * alpha)[row]
        grad_score = alpha * centred if ctx.needs_input_grad[0] else None
        grad_weight = ratio[0] * centred if ratio else None
        return grad_score, grad_weight, None, None, None


def edge_softmax(score: Tensor, s: AttentionStructure, present: Tensor | None = None,
                 weight: Tensor | None = None) -> Tensor:
    r"""Softmax of ``score [V]`` over each row's values, :math:`\mathrm{softmax}(s + \log w)`.

    ``present`` (bool ``[V]``) leaves values out; ``weight`` ``[V]`` (non-negative
    gates) scales each term before normalising. A row with no value left (none
    present, or every gate closed) gets coefficients 0, with finite (zero)
    gradients: the renormalisation never divides by zero. Half-precision
    scores are normalised in float32 (autocast's rule for softmax), and the
    coefficients are float32 then. Differentiable in ``score`` and ``weight``
    (:class:`_EdgeSoftmax`: only the output is kept for the backward pass).
    """
    dtype = torch.promote_types(score.dtype, torch.float32)
    weight = None if weight is None else weight.to(dtype)
    return _EdgeSoftmax.apply(score.to(dtype), weight, present, s.row, s.num_rows)

r"""Attention restricted to a graph's edges on torch's own CSR kernels (the fused path of
:class:`~wsfusion.nn.CrossModalAttentionConv`).

For ``G = B·H`` (batch × heads) problems over one static graph with ``N``
nodes and ``E`` edges, everything edge-sized is ``[G, E]`` scalars; no
``[G, E, d]`` tensor is ever built:

* scores :math:`s_e = \langle q_{t(e)}, k_{s(e)} \rangle` by SDDMM
  (:func:`torch.sparse.sampled_addmm` on the batched CSR pattern);
* the softmax over each target's incoming edges on the CSR values
  (segment max, ``exp``, segment sum: ``[G, E]`` ops, differentiated by autograd);
* the output :math:`o_t = \sum_e \alpha_e v_{s(e)}` by one CSR SpMM with the
  ``G`` problems laid out block-diagonally (``[G·N, G·N] @ [G·N, d]``).

The two heavy steps are custom autograd functions whose backward passes are
again SDDMM / SpMM, on the stored structure and its precomputed transpose.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from wsfusion.nn._sparse import csr_tensor


class AttentionStructure(NamedTuple):
    """CSR layout of a graph for ``G`` stacked problems (rows = targets, in ``order``)."""

    order: Tensor  # [E]: edge ids sorted by (target, source); CSR value e is edge order[e]
    dst: Tensor  # [E] target of each CSR value
    crow: Tensor  # [G, N + 1] batched pattern (the same rows in every problem)
    col: Tensor  # [G, E]
    block_crow: Tensor  # [G·N + 1] block-diagonal layout for SpMM
    block_col: Tensor  # [G·E]
    t_block_crow: Tensor  # transposed (rows = sources) block-diagonal layout
    t_block_col: Tensor
    t_perm: Tensor  # [E]: CSR values of A^T = values of A [t_perm] (within each problem)
    num_nodes: int
    groups: int


def attention_structure(edge_index: Tensor, num_nodes: int, groups: int) -> AttentionStructure:
    """The CSR layouts of ``edge_index`` (row 0 source, row 1 target; any order, repeats allowed)."""
    src, dst = edge_index
    n, e = num_nodes, src.numel()
    device = edge_index.device
    order = torch.argsort(dst * n + src, stable=True)
    s_src, s_dst = src[order], dst[order]
    crow = _compressed(s_dst, n)
    t_perm = torch.argsort(s_src * n + s_dst, stable=True)
    t_crow = _compressed(s_src[t_perm], n)
    g = torch.arange(groups, device=device).unsqueeze(1)
    return AttentionStructure(
        order=order,
        dst=s_dst,
        crow=crow.expand(groups, -1).contiguous(),
        col=s_src.expand(groups, -1).contiguous(),
        block_crow=_blocks(crow, e, groups),
        block_col=(s_src.unsqueeze(0) + g * n).flatten(),
        t_block_crow=_blocks(t_crow, e, groups),
        t_block_col=(s_dst[t_perm].unsqueeze(0) + g * n).flatten(),
        t_perm=t_perm,
        num_nodes=n,
        groups=groups,
    )


def _compressed(sorted_rows: Tensor, num_rows: int) -> Tensor:
    crow = torch.zeros(num_rows + 1, dtype=torch.long, device=sorted_rows.device)
    crow[1:] = torch.bincount(sorted_rows, minlength=num_rows).cumsum(0)
    return crow


def _blocks(crow: Tensor, num_edges: int, groups: int) -> Tensor:
    offsets = torch.arange(groups, device=crow.device).unsqueeze(1) * num_edges
    return torch.cat([crow[:1], (crow[1:].unsqueeze(0) + offsets).flatten()])


def _block_spmm(crow: Tensor, col: Tensor, values: Tensor, x: Tensor) -> Tensor:
    """``[G, N, d]``: each problem's ``[N, N]`` CSR matrix (values ``[G, E]``) times its ``x [G, N, d]``."""
    g, n, d = x.shape
    matrix = csr_tensor(crow, col, values.reshape(-1), (g * n, g * n))
    return (matrix @ x.reshape(g * n, d)).view(g, n, d)


def _sddmm(s: AttentionStructure, a: Tensor, b: Tensor) -> Tensor:
    """``[G, E]``: :math:`\\langle a_{t(e)}, b_{s(e)} \\rangle` per CSR value, ``a, b [G, N, d]``."""
    pattern = csr_tensor(s.crow, s.col, a.new_zeros(s.col.shape), (s.groups, s.num_nodes, s.num_nodes))
    return torch.sparse.sampled_addmm(pattern, a, b.transpose(1, 2), beta=0.0).values()


class _EdgeScores(torch.autograd.Function):
    """SDDMM: scores of every edge; backward by SpMM with the score gradients as values."""

    @staticmethod
    def forward(ctx, query: Tensor, key: Tensor, s: AttentionStructure) -> Tensor:  # type: ignore[override]
        ctx.structure = s
        ctx.save_for_backward(query, key)
        return _sddmm(s, query.contiguous(), key.contiguous())

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        query, key = ctx.saved_tensors
        s: AttentionStructure = ctx.structure
        grad_query = grad_key = None
        if ctx.needs_input_grad[0]:
            grad_query = _block_spmm(s.block_crow, s.block_col, grad, key.contiguous())
        if ctx.needs_input_grad[1]:
            grad_key = _block_spmm(s.t_block_crow, s.t_block_col, grad[:, s.t_perm], query.contiguous())
        return grad_query, grad_key, None


class _EdgeAggregate(torch.autograd.Function):
    """SpMM: :math:`o_t = \\sum_e \\alpha_e v_{s(e)}`; backward by SpMM on the transpose and SDDMM."""

    @staticmethod
    def forward(ctx, alpha: Tensor, value: Tensor, s: AttentionStructure) -> Tensor:  # type: ignore[override]
        value = value.contiguous()
        ctx.structure = s
        ctx.save_for_backward(alpha, value)
        return _block_spmm(s.block_crow, s.block_col, alpha, value)

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
            grad_value = _block_spmm(s.t_block_crow, s.t_block_col, alpha[:, s.t_perm], grad)
        return grad_alpha, grad_value, None


def edge_scores(query: Tensor, key: Tensor, s: AttentionStructure) -> Tensor:
    """``[G, E]`` dot products of each edge's target query and source key (``[G, N, d]`` inputs)."""
    return _EdgeScores.apply(query, key, s)


def edge_aggregate(alpha: Tensor, value: Tensor, s: AttentionStructure) -> Tensor:
    """``[G, N, d]``: every target's sum of its edges' ``alpha [G, E]`` times the source values."""
    return _EdgeAggregate.apply(alpha, value, s)


class _EdgeSoftmax(torch.autograd.Function):
    r"""Gated softmax over each target's incoming edges, saving only what its gradient needs.

    Forward: :math:`\alpha_e = w_e e^{s_e} / T_{t(e)}` with
    :math:`T_t = \sum_{e \to t} w_e e^{s_e}` (edges not ``present`` left out;
    :math:`\alpha = 0` where :math:`T = 0`). Backward, with
    :math:`\bar g_t = \sum_{e \to t} g_e \alpha_e`:

    .. math::
        \frac{\partial L}{\partial s_e} = \alpha_e (g_e - \bar g_{t(e)}),
        \qquad
        \frac{\partial L}{\partial w_e} = \frac{e^{s_e}}{T_{t(e)}} (g_e - \bar g_{t(e)})
        \ \text{(summed over problems)},

    so only :math:`\alpha` (and, for learnable gates, :math:`e^{s}/T`, finite
    also where :math:`w_e = 0`) is kept, instead of every ``[G, E]``
    intermediate autograd would save. Empty rows give zero gradients.
    """

    @staticmethod
    def forward(ctx, score: Tensor, weight: Tensor | None, present: Tensor | None,  # type: ignore[override]
                s: AttentionStructure) -> Tensor:
        index = s.dst.expand_as(score)
        masked = score if present is None else score.masked_fill(~present, float("-inf"))
        peak = torch.full((score.shape[0], s.num_nodes), float("-inf"), dtype=score.dtype, device=score.device)
        peak = peak.scatter_reduce(1, index, masked, "amax")
        peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
        exp = torch.exp(masked - peak.gather(1, index))
        gated = exp if weight is None else exp * weight
        total = torch.zeros_like(peak).index_add_(1, s.dst, gated).gather(1, index)
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
        row_dot = torch.zeros(grad.shape[0], s.num_nodes, dtype=grad.dtype, device=grad.device)
        centred = grad - row_dot.index_add_(1, s.dst, grad * alpha).gather(1, s.dst.expand_as(grad))
        grad_score = alpha * centred if ctx.needs_input_grad[0] else None
        grad_weight = (ratio * centred).sum(0) if ratio is not None else None
        return grad_score, grad_weight, None, None


def edge_softmax(score: Tensor, s: AttentionStructure, present: Tensor | None = None,
                 weight: Tensor | None = None) -> Tensor:
    r"""Softmax of ``score [G, E]`` over each target's incoming edges, :math:`\mathrm{softmax}(s + \log w)`.

    ``present`` (bool, broadcastable to ``[G, E]``) leaves edges out; ``weight``
    ``[E]`` (non-negative gates) scales each term before normalising. A target
    with no incoming edge left (none present, or every gate closed) gets
    coefficients 0, with finite (zero) gradients: the renormalisation never
    divides by zero. Differentiable in ``score`` and ``weight``
    (:class:`_EdgeSoftmax`: only the output is kept for the backward pass).
    """
    if present is not None:
        present = present.expand_as(score)
    return _EdgeSoftmax.apply(score, weight, present, s)

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wsfusion._validation import format_shape
from wsfusion.graphs import CrossModalGraph
from wsfusion.nn.init import in_degree_uniform_


class MaskedLinear(nn.Module):
    r"""The notebook's dense Watts–Strogatz layer: ``F.linear(x, W * mask, b)``.

    .. math::
        \mathbf{y} = (\mathbf{W} \odot \mathbf{M}) \, \mathbf{x} + \mathbf{b},
        \qquad M_{ts} = 1 \iff (s \to t) \in \mathcal{E}

    It stores and multiplies the full :math:`N \times N` weight although only
    the graph's edges are used: it is kept as the reference that the sparse
    :class:`WSLinear` must equal, not for speed.

    Initialisation: :func:`~wsfusion.nn.init.in_degree_uniform_`,
    :math:`W_{ts} \sim \mathcal{U}(-\sqrt{3/d_t}, \sqrt{3/d_t})` with
    :math:`d_t` the in-degree of node :math:`t` (unit-variance outputs for
    unit-variance inputs); bias zero.

    Args:
        graph (CrossModalGraph): The connectivity.
        bias (bool, optional): Learn a bias. (default: :obj:`True`)

    Shapes:
        - **input:** :math:`(*, N)`
        - **output:** :math:`(*, N)`
    """

    def __init__(self, graph: CrossModalGraph, bias: bool = True) -> None:
        super().__init__()
        self.graph = graph
        n = graph.num_nodes
        self.weight = nn.Parameter(torch.empty(n, n))
        self.bias = nn.Parameter(torch.empty(n)) if bias else None
        self.register_buffer("mask", graph.to_dense_mask())
        self.reset_parameters()

    def reset_parameters(self) -> None:
        in_degree_uniform_(self.weight, self.mask.sum(dim=1, keepdim=True))
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        n = self.graph.num_nodes
        if not isinstance(x, Tensor) or x.dim() == 0 or x.shape[-1] != n:
            got = format_shape(tuple(x.shape)) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"MaskedLinear input must have shape [..., {n}] (one entry per graph node), got {got}")
        return F.linear(x, self.weight * self.mask, self.bias)

    def extra_repr(self) -> str:
        return f"num_nodes={self.graph.num_nodes}, num_edges={int(self.mask.sum())}, bias={self.bias is not None}"

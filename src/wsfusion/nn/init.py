"""Initialisation for layers whose fan-in is the graph's in-degree, not N."""

from __future__ import annotations


import torch
from torch import Tensor


@torch.no_grad()
def in_degree_uniform_(weight: Tensor, fan_in: Tensor) -> Tensor:
    r"""Fill ``weight`` in place with :math:`\mathcal{U}(-a_i, a_i)`, :math:`a_i = \sqrt{3 / d_i}`.

    ``fan_in`` (broadcastable to ``weight``) is the number of inputs summed
    into each output, i.e. the target node's in-degree. A sum of :math:`d`
    unit-variance inputs with these weights has unit variance, so activations
    keep their scale whatever the graph size (``nn.Linear``'s rule would use
    :math:`N` and shrink them by :math:`\sqrt{N / k}` on a :math:`k`-regular
    graph). Nodes without inputs (:math:`d = 0`) are treated as :math:`d = 1`.
    """
    bound = torch.sqrt(3.0 / fan_in.to(weight.dtype).clamp(min=1.0))
    return weight.uniform_(-1.0, 1.0).mul_(bound)


__all__ = ["in_degree_uniform_"]

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from wsfusion._validation import check_positive_int, check_probability
from wsfusion.fusion.base import FusionModule
from wsfusion.graphs import CrossModalGraph, ws_cross_modal_graph
from wsfusion.nn import MaskedLinear


class MaskedWSFusion(FusionModule):
    r"""The notebook's Watts–Strogatz fusion, dense: the reference for the sparse layers.

    Each modality is projected to its node count :math:`n_m` (one scalar node
    per channel), the channels are concatenated into :math:`N = \sum_m n_m`
    nodes, a dense masked layer mixes them along the WS graph, and a linear
    head reads the result:

    .. math::
        \mathbf{x} = [\mathbf{W}_1\mathbf{z}_1 \| \cdots \| \mathbf{W}_M\mathbf{z}_M], \quad
        \mathbf{y} = \mathbf{W}_o \, \sigma\big((\mathbf{W} \odot \mathbf{M})\mathbf{x} + \mathbf{b}\big)

    With the default 3 modalities × 64 nodes, ``k=6``, ``beta=0.3``,
    ``seed=42`` the mask is exactly ``networkx.watts_strogatz_graph(192, 6, 0.3, seed=42)``.
    A missing modality is replaced by zeros.

    Args:
        modality_dims (Mapping[str, int]): Feature size of each modality.
        out_dim (int): Output size.
        nodes_per_modality (int, optional): Nodes :math:`n_m` of every
            modality when ``graph`` is not given. (default: :obj:`64`)
        k (int, optional): WS ring degree. (default: :obj:`6`)
        beta (float, optional): WS rewiring probability. (default: :obj:`0.3`)
        seed (int, optional): Graph seed. (default: :obj:`42`)
        order (str, optional): ``"blocked"`` or ``"interleaved"`` ring.
            (default: :obj:`"blocked"`)
        graph (CrossModalGraph, optional): Use this graph instead; its
            modalities must be those of ``modality_dims``. (default: :obj:`None`)
        dropout (float, optional): Dropout before the head. (default: :obj:`0.1`)
        allow_missing (bool, optional): Accept absent keys. (default: :obj:`False`)

    Shapes:
        - **input:** ``{m: (B, D_m)}``
        - **output:** :math:`(B, out\_dim)`
    """

    def __init__(
        self,
        modality_dims: Mapping[str, int],
        out_dim: int,
        nodes_per_modality: int = 64,
        k: int = 6,
        beta: float = 0.3,
        seed: int | None = 42,
        order: str = "blocked",
        graph: CrossModalGraph | None = None,
        dropout: float = 0.1,
        allow_missing: bool = False,
    ) -> None:
        super().__init__(modality_dims, out_dim, allow_missing)
        self.graph = graph_for(self.modality_dims, graph, nodes_per_modality, k, beta, seed, order, type(self).__name__)
        counts = {m: s.stop - s.start for m, s in self.graph.node_slices.items()}
        self.proj = nn.ModuleDict({m: nn.Linear(d, counts[m]) for m, d in self.modality_dims.items()})
        self.ws = MaskedLinear(self.graph, bias=True)
        self.dropout = nn.Dropout(check_probability(dropout, "dropout"))
        self.head = nn.Linear(self.graph.num_nodes, out_dim)

    def forward(self, features: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None = None) -> Tensor:
        batch, mask = self.check_inputs(features, mask)
        filled = self.filled(features, mask, batch)
        x = torch.cat([self.proj[m](filled[m]) for m in self.graph.modalities], dim=-1)
        return self.head(self.dropout(torch.relu(self.ws(x))))


def graph_for(
    modality_dims: Mapping[str, int],
    graph: CrossModalGraph | None,
    nodes_per_modality: int,
    k: int,
    beta: float,
    seed: int | None,
    order: str,
    what: str,
) -> CrossModalGraph:
    """The given graph (checked against the modalities) or a new WS graph."""
    if graph is None:
        n = check_positive_int(nodes_per_modality, "nodes_per_modality")
        return ws_cross_modal_graph({m: n for m in modality_dims}, k=k, beta=beta, seed=seed, order=order)
    if not isinstance(graph, CrossModalGraph):
        raise TypeError(f"{what}: graph must be a CrossModalGraph, got {type(graph).__name__}")
    if set(graph.modalities) != set(modality_dims):
        raise ValueError(
            f"{what}: graph modalities {list(graph.modalities)} do not match the features' {list(modality_dims)}"
        )
    return graph

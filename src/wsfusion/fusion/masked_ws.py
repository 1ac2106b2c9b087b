from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from wsfusion._validation import check_positive_int, check_probability
from wsfusion.fusion.base import FusionModule
from wsfusion.graphs import CrossModalGraph, ws_cross_modal_graph
from wsfusion.nn import MaskedLinear, WSLinear


class _ScalarNodeWSFusion(FusionModule):
    r"""Scalar-node WS fusion: one graph node per projected feature channel (see the subclasses).

    Each modality is projected to its node count :math:`n_m`, the channels
    are concatenated into :math:`N = \sum_m n_m` nodes, ``num_layers`` WS
    layers mix them along the graph (each followed by a ReLU), and a linear
    head reads the result:

    .. math::
        \mathbf{x}^{(0)} = [\mathbf{W}_1\mathbf{z}_1 \| \cdots \| \mathbf{W}_M\mathbf{z}_M], \quad
        \mathbf{x}^{(l+1)} = \mathrm{ReLU}\big((\mathbf{W}^{(l)} \odot \mathbf{M})\,\mathbf{x}^{(l)} + \mathbf{b}^{(l)}\big), \quad
        \mathbf{y} = \mathbf{W}_o \, \mathbf{x}^{(L)}

    A missing modality is replaced by zeros.
    """

    layer_class: type[nn.Module]
    family = "ws"

    def __init__(
        self,
        modality_dims: Mapping[str, int],
        out_dim: int,
        nodes_per_modality: int = 64,
        k: int = 6,
        beta: float = 0.3,
        seed: int | None = 42,
        order: str = "blocked",
        self_loops: bool = False,
        graph: CrossModalGraph | None = None,
        num_layers: int = 1,
        dropout: float = 0.1,
        allow_missing: bool = False,
        topology: str = "fixed",
        topology_options: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(modality_dims, out_dim, allow_missing)
        layer_class = self._layer_class(topology, topology_options)
        self.graph = graph_for(
            self.modality_dims, graph, type(self).__name__,
            nodes_per_modality=nodes_per_modality, k=k, beta=beta, seed=seed, order=order, self_loops=self_loops,
        )
        counts = self.graph.node_counts
        self.proj = nn.ModuleDict({m: nn.Linear(d, counts[m]) for m, d in self.modality_dims.items()})
        self.layers = nn.ModuleList(
            layer_class(self.graph, bias=True) for _ in range(check_positive_int(num_layers, "num_layers"))
        )
        self.dropout = nn.Dropout(check_probability(dropout, "dropout"))
        self.head = nn.Linear(self.graph.num_nodes, out_dim)

    def _layer_class(self, topology: str, options: Mapping[str, object] | None) -> Callable[..., nn.Module]:
        if topology == "fixed":
            if options:
                raise ValueError(f"{type(self).__name__}: topology_options need topology='learnable'")
            return self.layer_class
        if topology == "learnable" and self.layer_class is WSLinear:
            from wsfusion.topology import LearnableWSLinear

            return functools.partial(LearnableWSLinear.from_graph, **dict(options or {}))
        allowed = "'fixed' or 'learnable'" if self.layer_class is WSLinear else "'fixed'"
        raise ValueError(f"{type(self).__name__}: topology must be {allowed}, got {topology!r}")

    def forward(self, features: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None = None) -> Tensor:
        batch, mask = self.check_inputs(features, mask)
        filled = self.filled(features, mask, batch)
        x = torch.cat([self.proj[m](filled[m]) for m in self.graph.modalities], dim=-1)
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.head(self.dropout(x))


class MaskedWSFusion(_ScalarNodeWSFusion):
    r"""The notebook's Watts–Strogatz fusion, dense: the reference for :class:`SparseWSFusion`.

    Every WS layer is a :class:`~wsfusion.nn.MaskedLinear`, a full
    :math:`N \times N` weight multiplied by the graph's mask, as in the
    notebook. With the default 3 modalities × 64 nodes, ``k=6``, ``beta=0.3``,
    ``seed=42`` the mask is exactly ``networkx.watts_strogatz_graph(192, 6, 0.3, seed=42)``.

    Each modality is projected to its node count :math:`n_m`, the channels
    are concatenated into :math:`N = \sum_m n_m` nodes, ``num_layers`` WS
    layers mix them along the graph (each followed by a ReLU), and a linear
    head reads the result:

    .. math::
        \mathbf{x}^{(0)} = [\mathbf{W}_1\mathbf{z}_1 \| \cdots \| \mathbf{W}_M\mathbf{z}_M], \quad
        \mathbf{x}^{(l+1)} = \mathrm{ReLU}\big((\mathbf{W}^{(l)} \odot \mathbf{M})\,\mathbf{x}^{(l)} + \mathbf{b}^{(l)}\big), \quad
        \mathbf{y} = \mathbf{W}_o \, \mathbf{x}^{(L)}

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
        self_loops (bool, optional): Add a self loop to every node (each
            channel keeps a learned weight on itself). (default: :obj:`False`)
        graph (CrossModalGraph, optional): Use this graph instead; its
            modalities must be those of ``modality_dims``. (default: :obj:`None`)
        num_layers (int, optional): Stacked WS layers. (default: :obj:`1`)
        dropout (float, optional): Dropout before the head. (default: :obj:`0.1`)
        allow_missing (bool, optional): Accept absent keys. (default: :obj:`False`)
        topology (str, optional): ``"fixed"``, the only topology of the dense layer. (default: :obj:`"fixed"`)
        topology_options (Mapping, optional): Must be empty (no learnable topology here). (default: :obj:`None`)

    Shapes:
        - **input:** ``{m: (B, D_m)}``
        - **output:** :math:`(B, out\_dim)`
    """

    layer_class = MaskedLinear


class SparseWSFusion(_ScalarNodeWSFusion):
    r"""The notebook's Watts–Strogatz fusion done sparsely, with :class:`~wsfusion.nn.WSLinear` layers.

    The same model as :class:`MaskedWSFusion` (equal outputs and gradients
    for equal weights), but each layer stores and multiplies only the
    :math:`E` edge weights instead of the :math:`N^2` dense matrix.

    Each modality is projected to its node count :math:`n_m`, the channels
    are concatenated into :math:`N = \sum_m n_m` nodes, ``num_layers`` WS
    layers mix them along the graph (each followed by a ReLU), and a linear
    head reads the result:

    .. math::
        \mathbf{x}^{(0)} = [\mathbf{W}_1\mathbf{z}_1 \| \cdots \| \mathbf{W}_M\mathbf{z}_M], \quad
        \mathbf{x}^{(l+1)} = \mathrm{ReLU}\big((\mathbf{W}^{(l)} \odot \mathbf{M})\,\mathbf{x}^{(l)} + \mathbf{b}^{(l)}\big), \quad
        \mathbf{y} = \mathbf{W}_o \, \mathbf{x}^{(L)}

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
        self_loops (bool, optional): Add a self loop to every node (each
            channel keeps a learned weight on itself). (default: :obj:`False`)
        graph (CrossModalGraph, optional): Use this graph instead; its
            modalities must be those of ``modality_dims``. (default: :obj:`None`)
        num_layers (int, optional): Stacked WS layers. (default: :obj:`1`)
        dropout (float, optional): Dropout before the head. (default: :obj:`0.1`)
        allow_missing (bool, optional): Accept absent keys. (default: :obj:`False`)
        topology (str, optional): ``"fixed"``, or ``"learnable"``: each layer is a
            :class:`~wsfusion.topology.LearnableWSLinear` on the same nodes,
            ``k`` and seed, whose rewiring probability ``beta`` is trained. (default: :obj:`"fixed"`)
        topology_options (Mapping, optional): Options of ``LearnableWSLinear``
            (``per_pair``, ``edge_logits``, ``temperature``, ...). (default: :obj:`None`)

    Shapes:
        - **input:** ``{m: (B, D_m)}``
        - **output:** :math:`(B, out\_dim)`
    """

    layer_class = WSLinear


def graph_for(
    modality_dims: Mapping[str, int],
    graph: CrossModalGraph | None,
    what: str,
    *,
    nodes_per_modality: int | Mapping[str, int],
    **options: object,
) -> CrossModalGraph:
    """The given graph (checked against the modalities) or a new WS graph with these options."""
    if graph is None:
        if isinstance(nodes_per_modality, Mapping):
            if set(nodes_per_modality) != set(modality_dims):
                raise ValueError(
                    f"{what}: node counts are given for {list(nodes_per_modality)} "
                    f"but the modalities are {list(modality_dims)}"
                )
            nodes = {m: nodes_per_modality[m] for m in modality_dims}
        else:
            nodes = {m: check_positive_int(nodes_per_modality, "nodes_per_modality") for m in modality_dims}
        return ws_cross_modal_graph(nodes, **options)
    if not isinstance(graph, CrossModalGraph):
        raise TypeError(f"{what}: graph must be a CrossModalGraph, got {type(graph).__name__}")
    if set(graph.modalities) != set(modality_dims):
        raise ValueError(
            f"{what}: graph modalities {list(graph.modalities)} do not match the features' {list(modality_dims)}"
        )
    return graph

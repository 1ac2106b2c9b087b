from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from wsfusion._validation import check_positive_int, check_probability
from wsfusion.fusion._graph_parts import LEARNABLE, check_topology, fusion_graph
from wsfusion.fusion.base import FusionModule
from wsfusion.graphs import CrossModalGraph
from wsfusion.nn import MaskedLinear, WSLinear

# The model and arguments both scalar-node fusions share; each class docstring is its own first
# paragraph, this, and its ``topology`` entry.
_MODEL = r"""
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
        k (int, optional): Degree of the graph (WS ring degree). (default: :obj:`6`)
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
@TOPOLOGY@
    Shapes:
        - **input:** ``{m: (B, D_m)}``
        - **output:** :math:`(B, out\_dim)`
"""

_GRAPH_TOPOLOGY = """\
        topology (str, optional): Which graph: a name of
            :func:`wsfusion.graphs.available` (``"ws"``: the WS graph of ``k``,
            ``beta``, ``seed``, ``order``, ``self_loops``; ``"lattice"``,
            ``"random"``, ``"bigbird"``, ...: ``graphs.build(name, nodes, k,
            seed=seed)``){learnable}. (default: :obj:`"ws"`)
        topology_options (Mapping, optional): {options} (default: :obj:`None`)
"""


def _doc(first: str, learnable: bool) -> str:
    learnable_entry = """, or ``"learnable"``: each layer is a
            :class:`~wsfusion.topology.LearnableWSLinear` on the same nodes,
            ``k`` and seed, whose rewiring probability ``beta`` is trained"""
    options = ("Options of ``LearnableWSLinear``\n            (``per_pair``, ``edge_logits``, ``temperature``, ...) "
               "with ``topology=\"learnable\"``,\n            or of the registry builder of another ``topology``."
               if learnable else "Options of the registry builder of\n            ``topology`` (not ``\"ws\"``).")
    topology = _GRAPH_TOPOLOGY.format(learnable=learnable_entry if learnable else "", options=options)
    return first.rstrip() + "\n" + _MODEL.replace("@TOPOLOGY@", topology)


class _ScalarNodeWSFusion(FusionModule):
    """Scalar-node WS fusion: one graph node per projected feature channel (the model of the subclasses)."""

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
        topology: str = "ws",
        topology_options: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(modality_dims, out_dim, allow_missing)
        what = type(self).__name__
        topology = check_topology(what, topology, topology_options, learnable=self.layer_class is WSLinear)
        self.graph = fusion_graph(type(self), self.modality_dims, graph, topology=topology,
                                  topology_options=None if topology == LEARNABLE else topology_options,
                                  nodes_per_modality=nodes_per_modality, k=k, seed=seed,
                                  beta=beta, order=order, self_loops=self_loops)
        layer_class = self._layer_class(topology, topology_options)
        counts = self.graph.node_counts
        self.proj = nn.ModuleDict({m: nn.Linear(d, counts[m]) for m, d in self.modality_dims.items()})
        self.layers = nn.ModuleList(
            layer_class(self.graph, bias=True) for _ in range(check_positive_int(num_layers, "num_layers"))
        )
        self.dropout = nn.Dropout(check_probability(dropout, "dropout"))
        self.head = nn.Linear(self.graph.num_nodes, out_dim)

    def _layer_class(self, topology: str, options: Mapping[str, object] | None) -> Callable[..., nn.Module]:
        if topology != LEARNABLE:
            return self.layer_class
        from wsfusion.topology import LearnableWSLinear

        return functools.partial(LearnableWSLinear.from_graph, **dict(options or {}))

    def forward(self, features: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None = None) -> Tensor:
        batch, mask = self.check_inputs(features, mask)
        filled = self.filled(features, mask, batch)
        x = torch.cat([self.proj[m](filled[m]) for m in self.graph.modalities], dim=-1)
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.head(self.dropout(x))


class MaskedWSFusion(_ScalarNodeWSFusion):
    __doc__ = _doc(r"""The notebook's Watts–Strogatz fusion, dense: the reference for :class:`SparseWSFusion`.

    Every WS layer is a :class:`~wsfusion.nn.MaskedLinear`, a full
    :math:`N \times N` weight multiplied by the graph's mask, as in the
    notebook. With the default 3 modalities × 64 nodes, ``k=6``, ``beta=0.3``,
    ``seed=42`` the mask is exactly ``networkx.watts_strogatz_graph(192, 6, 0.3, seed=42)``.
""", learnable=False)

    layer_class = MaskedLinear


class SparseWSFusion(_ScalarNodeWSFusion):
    __doc__ = _doc(r"""The notebook's Watts–Strogatz fusion done sparsely, with :class:`~wsfusion.nn.WSLinear` layers.

    The same model as :class:`MaskedWSFusion` (equal outputs and gradients
    for equal weights), but each layer stores and multiplies only the
    :math:`E` edge weights instead of the :math:`N^2` dense matrix.
""", learnable=True)

    layer_class = WSLinear

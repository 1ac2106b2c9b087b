from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from wsfusion._validation import check_positive_int, check_probability, token_mask_from_key_padding
from wsfusion.fusion._graph_parts import (
    LEARNABLE,
    AttentionReadout,
    FixedTopology,
    MeanReadout,
    PostNorm,
    PreNorm,
    SegmentNodes,
    TokenNodes,
    check_topology,
    fusion_graph,
    learnable_topology,
)
from wsfusion.fusion.base import FusionModule, mlp
from wsfusion.graphs import CrossModalGraph
from wsfusion.nn import CrossModalAttentionConv, CrossModalConv

CONVS = ("rgcn", "attention")
READOUTS = ("mean", "attention")
NORMS = ("post", "pre")


class WSGraphFusion(FusionModule):
    r"""Graph fusion: modality segments (or tokens) as nodes of a Watts–Strogatz graph, fused by message passing.

    **Segment nodes** (default): each modality's pooled vector is projected to
    ``segments`` nodes of ``node_dim`` features. **Token nodes**
    (``tokens={m: T_m}``): each token of a modality's sequence ``[B, T_m, D_m]``
    is projected to one node. A learned modality embedding
    :math:`\mathbf{e}_m` is added, then ``num_layers`` convolutions
    (:class:`~wsfusion.nn.CrossModalConv`, ``conv="rgcn"``, or
    :class:`~wsfusion.nn.CrossModalAttentionConv`, ``conv="attention"``) run
    over the WS graph with a residual connection and LayerNorm:

    .. math::
        \mathbf{X}^{(0)} = [\mathbf{P}_m(\mathbf{z}_m) + \mathbf{e}_m]_{m}, \qquad
        \mathbf{X}^{(l+1)} = \mathrm{LN}\Big(\mathbf{X}^{(l)} +
            \mathrm{Dropout}\big(\sigma(\mathrm{Conv}^{(l)}(\mathbf{X}^{(l)}, \mathcal{G}))\big)\Big)

    (:math:`\sigma` = ReLU for ``rgcn``, identity for ``attention``). With
    ``norm="pre"`` the blocks are Transformer-style instead (pre-norm,
    optional position-wise feed-forward of width ``ffn_dim``, a final LN):

    .. math::
        \mathbf{X} \leftarrow \mathbf{X} + \mathrm{Dropout}\big(\mathrm{Conv}(\mathrm{LN}(\mathbf{X}), \mathcal{G})\big),
        \qquad
        \mathbf{X} \leftarrow \mathbf{X} + \mathrm{Dropout}\big(\mathrm{FFN}(\mathrm{LN}(\mathbf{X}))\big)

    The readout is the mean of each modality's nodes, concatenated
    (``readout="mean"``), or attention pooling over all nodes
    (``readout="attention"``), followed by a linear head to ``out_dim``.

    **Padded tokens** (token nodes only) are removed exactly like missing
    modalities' nodes: no messages, no readout. Mark them with ``token_mask``
    (:obj:`True` = a real token, the polarity of the convs' ``node_mask``) or,
    with PyTorch's polarity, ``key_padding_mask`` (:obj:`True` = padding, as in
    :class:`torch.nn.MultiheadAttention`): ``key_padding_mask=m`` is
    ``token_mask=~m``, and passing both is a ``ValueError``.

    **Missing modalities** are removed, not zero-filled: the nodes of a
    modality missing for a sample send no messages, receive none, and are left
    out of the readout (its slot in the ``"mean"`` readout is zero), so the
    result equals running the same layers on the graph without those nodes.

    Args:
        modality_dims (Mapping[str, int]): Feature size of each modality.
        out_dim (int): Output size.
        segments (int, optional): Nodes per modality for pooled inputs.
            (default: :obj:`8`)
        tokens (Mapping[str, int], optional): Token count of each modality;
            switches to token nodes (inputs ``[B, T_m, D_m]``). (default: :obj:`None`)
        node_dim (int, optional): Features per node. (default: :obj:`32`)
        conv (str, optional): ``"rgcn"`` or ``"attention"``. (default: :obj:`"rgcn"`)
        num_layers (int, optional): Message-passing layers. (default: :obj:`2`)
        heads (int, optional): Attention heads (``conv="attention"``).
            (default: :obj:`4`)
        num_bases (int, optional): Basis decomposition for ``rgcn``.
            (default: :obj:`None`)
        readout (str, optional): ``"mean"`` or ``"attention"``. (default: :obj:`"mean"`)
        k (int, optional): WS ring degree. (default: :obj:`4`)
        beta (float, optional): WS rewiring probability. (default: :obj:`0.3`)
        seed (int, optional): Graph seed. (default: :obj:`0`)
        order (str, optional): ``"blocked"`` or ``"interleaved"``. (default: :obj:`"blocked"`)
        graph (CrossModalGraph, optional): Use this graph (its node counts
            are the segments/tokens of each modality), e.g. one of
            :func:`wsfusion.graphs.build`. (default: :obj:`None`)
        dropout (float, optional): Dropout on each layer's update. (default: :obj:`0.1`)
        allow_missing (bool, optional): Accept absent keys. (default: :obj:`False`)
        topology (str, optional): Which graph: a name of
            :func:`wsfusion.graphs.available` (``"ws"``: the WS graph of ``k``,
            ``beta``, ``seed``, ``order``; ``"lattice"``, ``"random"``,
            ``"bigbird"``, ...: ``graphs.build(name, nodes, k, seed=seed)``,
            where ``beta`` and ``order`` do not apply), or ``"learnable"``:
            message passing runs over the candidate edges of a
            :class:`~wsfusion.topology.LearnableWSGraph` (same nodes, ``k``,
            seed, order; ``beta`` as its initial value), each message gated by
            its edge's sampled gate, so ``beta`` is trained. (default: :obj:`"ws"`)
        topology_options (Mapping, optional): Options of ``LearnableWSGraph``
            (``per_pair``, ``edge_logits``, ``temperature``, ...) with
            ``topology="learnable"``, or of the registry builder of another
            ``topology`` (e.g. ``{"hubs": 2}``). (default: :obj:`None`)
        norm (str, optional): ``"post"`` (``LN(x + update)``) or ``"pre"``
            (Transformer-style ``x + update(LN(x))`` and a final LN).
            (default: :obj:`"post"`)
        ffn_dim (int, optional): Hidden size of a feed-forward block after
            every conv (:obj:`None`: no feed-forward). (default: :obj:`None`)
        attention_dropout (float, optional): Dropout on the attention
            coefficients (``conv="attention"``). (default: :obj:`0.0`)

    Shapes:
        - **input:** ``{m: (B, D_m)}``, or ``{m: (B, T_m, D_m)}`` with ``tokens``;
          optional ``mask {m: (B,)}`` bool (:obj:`True` = present), and with
          ``tokens`` ``token_mask {m: (B, T_m)}`` bool (:obj:`True` = a real token)
          or ``key_padding_mask {m: (B, T_m)}`` bool (:obj:`True` = padding)
        - **output:** :math:`(B, out\_dim)`
    """

    family = "ws"

    def __init__(
        self,
        modality_dims: Mapping[str, int],
        out_dim: int,
        segments: int = 8,
        tokens: Mapping[str, int] | None = None,
        node_dim: int = 32,
        conv: str = "rgcn",
        num_layers: int = 2,
        heads: int = 4,
        num_bases: int | None = None,
        readout: str = "mean",
        k: int = 4,
        beta: float = 0.3,
        seed: int | None = 0,
        order: str = "blocked",
        graph: CrossModalGraph | None = None,
        dropout: float = 0.1,
        allow_missing: bool = False,
        topology: str = "ws",
        topology_options: Mapping[str, object] | None = None,
        norm: str = "post",
        ffn_dim: int | None = None,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__(modality_dims, out_dim, allow_missing)
        what = type(self).__name__
        if norm not in NORMS:
            raise ValueError(f"{what}: norm must be one of {NORMS}, got {norm!r}")
        topology = check_topology(what, topology, topology_options)
        if conv not in CONVS:
            raise ValueError(f"conv must be one of {CONVS}, got {conv!r}")
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        self.graph = fusion_graph(type(self), self.modality_dims, graph, topology=topology,
                                  topology_options=None if topology == LEARNABLE else topology_options,
                                  nodes_per_modality=tokens if tokens is not None else segments, k=k, seed=seed,
                                  beta=beta, order=order)
        self.node_dim = check_positive_int(node_dim, "node_dim")
        self.conv_type = conv
        self.readout = readout
        # The parts (see wsfusion.fusion._graph_parts): node builder, conv blocks in their norm order, readout,
        # graph source. Parameters keep their historical names (proj, convs, norms, ..., head, topology).
        self.proj = (TokenNodes if tokens is not None else SegmentNodes)(self.modality_dims, self.graph, node_dim)
        self.token_nodes = self.accepts_tokens = self.proj.token_nodes
        # node_modality indexes the graph's relation vocabulary (its own modalities by default).
        self.modality_embedding = nn.Parameter(torch.empty(len(self.graph.vocabulary), node_dim))
        self.convs = nn.ModuleList(self._convs(conv, check_positive_int(num_layers, "num_layers"), num_bases, heads,
                                               check_probability(attention_dropout, "attention_dropout")))
        self.activation = nn.ReLU() if conv == "rgcn" else nn.Identity()
        self.norms = nn.ModuleList(nn.LayerNorm(node_dim) for _ in range(num_layers))
        dropout = check_probability(dropout, "dropout")
        self.dropout = nn.Dropout(dropout)
        self.block = PreNorm if norm == "pre" else PostNorm
        if ffn_dim is None:
            self.ffns = self.ffn_norms = None
        else:
            check_positive_int(ffn_dim, "ffn_dim")
            self.ffns = nn.ModuleList(mlp(node_dim, ffn_dim, node_dim, dropout) for _ in range(num_layers))
            self.ffn_norms = nn.ModuleList(nn.LayerNorm(node_dim) for _ in range(num_layers))
        # Each block's (before, after) LayerNorm placement, resolved once (plain tuples: the norms stay
        # registered under norms / ffn_norms only).
        self._conv_norms = tuple(self.block.around(n) for n in self.norms)
        self._ffn_norms = None if self.ffns is None else tuple(self.block.around(n) for n in self.ffn_norms)
        self.final_norm = nn.LayerNorm(node_dim) if self.block.final_norm else None
        if readout == "attention":
            self.pooling = AttentionReadout()
            self.pool_query = nn.Parameter(torch.empty(node_dim))
            self.head = nn.Linear(node_dim, out_dim)
        else:
            self.pooling = MeanReadout(self.graph)
            self.register_parameter("pool_query", None)
            self.head = nn.Linear(len(self.graph.modalities) * node_dim, out_dim)
        # The graph source: forward() gives the gates of this call (None for a fixed topology).
        if topology == LEARNABLE:
            self.topology = learnable_topology(self.graph, k, beta, order, topology_options)
            edge_index = self.topology.edge_index
        else:
            self.topology = FixedTopology(topology if graph is None else "graph")
            edge_index = self.graph.edge_index
        # Graph tensors as buffers so they follow the module to its device.
        self.register_buffer("edge_index", edge_index.clone(), persistent=False)
        self.register_buffer("edge_type", self.graph.relation_ids(edge_index), persistent=False)
        self.register_buffer("node_modality", self.graph.node_modality, persistent=False)
        self.reset_parameters()

    def _convs(self, conv: str, num_layers: int, num_bases: int | None, heads: int,
               attention_dropout: float) -> list[nn.Module]:
        n, relations = self.node_dim, self.graph.num_relations
        if conv == "rgcn":
            return [CrossModalConv(n, n, relations, num_bases=num_bases) for _ in range(num_layers)]
        return [CrossModalAttentionConv(n, n, heads=heads, num_relations=relations, dropout=attention_dropout)
                for _ in range(num_layers)]

    def reset_parameters(self) -> None:
        """Re-initialise every parameter the module owns (projections, convs, norms, readout, topology)."""
        super().reset_parameters()
        nn.init.normal_(self.modality_embedding, std=0.02)
        if self.pool_query is not None:
            nn.init.normal_(self.pool_query, std=1.0 / math.sqrt(self.node_dim))

    def nodes(self, features: Mapping[str, Tensor], batch: int) -> Tensor:
        """Initial node features ``[B, N, node_dim]`` (zeros for absent modalities): the node builder's
        projections plus the modality embedding."""
        return self.proj(features, batch) + self.modality_embedding[self.node_modality]

    def node_mask(self, mask: Mapping[str, Tensor], token_mask: Mapping[str, Tensor] | None = None) -> Tensor:
        """``[B, N]`` bool: a node is present when its modality is present in that sample
        (and, for token nodes, when its token is not padding)."""
        some = next(iter(mask.values()))  # a vocabulary entry without nodes is never looked up
        present = torch.stack([mask[m] if m in mask else torch.zeros_like(some) for m in self.graph.vocabulary],
                              dim=1)[:, self.node_modality]
        if not token_mask:
            return present
        real = torch.cat([
            token_mask[m] if m in token_mask else present.new_ones(present.shape[0], count)
            for m, count in self.proj.counts
        ], dim=1)
        return present & real

    def message_passing(
        self, x: Tensor, edge_index: Tensor, edge_type: Tensor, node_mask: Tensor | None,
        edge_weight: Tensor | None = None,
    ) -> Tensor:
        """The ``num_layers`` residual conv (and feed-forward) blocks over ``x [B, N, node_dim]``."""
        for i, (conv, (before, after)) in enumerate(zip(self.convs, self._conv_norms)):
            update = conv(before(x), edge_index, edge_type, node_mask=node_mask, edge_weight=edge_weight)
            x = after(x + self.dropout(self.activation(update)))
            if self.ffns is not None:
                before, after = self._ffn_norms[i]
                x = after(x + self.dropout(self.ffns[i](before(x))))
        return x if self.final_norm is None else self.final_norm(x)

    def pool(self, x: Tensor, node_mask: Tensor) -> Tensor:
        """Readout of the present nodes to ``[B, out_dim]``."""
        return self.head(self.pooling(x, node_mask, self.pool_query))

    def forward(
        self,
        features: Mapping[str, Tensor],
        mask: Mapping[str, Tensor] | None = None,
        token_mask: Mapping[str, Tensor] | None = None,
        *,
        key_padding_mask: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        batch, mask = self.check_inputs(features, mask)
        self.proj.check(features, type(self).__name__)
        node_mask = self.node_mask(mask, self._token_mask(features, token_mask, key_padding_mask))
        x = self.nodes(features, batch)
        # The graph source's gates: None (fixed), or one per candidate edge (learnable: a sample in
        # training, the most probable graph in eval).
        x = self.message_passing(x, self.edge_index, self.edge_type, node_mask, self.topology())
        return self.pool(x, node_mask)

    def _token_mask(self, features: Mapping[str, Tensor], token_mask: Mapping[str, Tensor] | None,
                    key_padding_mask: Mapping[str, Tensor] | None) -> dict[str, Tensor] | None:
        for given, value in (("token_mask", token_mask), ("key_padding_mask", key_padding_mask)):
            if value is not None and not self.token_nodes:
                raise ValueError(f"{type(self).__name__}: {given} needs token nodes (build it with tokens={{m: T_m}})")
        token_mask = token_mask_from_key_padding(features, token_mask, key_padding_mask, type(self).__name__)
        return token_mask and self.check_token_mask(features, token_mask)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, graph={self.graph!r}, conv={self.conv_type!r}, readout={self.readout!r}, "
                f"norm={self.block.name!r}")

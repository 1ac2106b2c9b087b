from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from wsfusion._validation import check_positive_int, check_probability, format_shape, token_mask_from_key_padding
from wsfusion.fusion.attention import as_tokens
from wsfusion.fusion.base import FusionModule, mlp
from wsfusion.fusion.masked_ws import graph_for
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
            are the segments/tokens of each modality). (default: :obj:`None`)
        dropout (float, optional): Dropout on each layer's update. (default: :obj:`0.1`)
        allow_missing (bool, optional): Accept absent keys. (default: :obj:`False`)
        topology (str, optional): ``"fixed"``, or ``"learnable"``: message passing
            runs over the candidate edges of a :class:`~wsfusion.topology.LearnableWSGraph`
            (same nodes, ``k``, seed, order; ``beta`` as its initial value), each message
            gated by its edge's sampled gate, so ``beta`` is trained. (default: :obj:`"fixed"`)
        topology_options (Mapping, optional): Options of ``LearnableWSGraph``
            (``per_pair``, ``edge_logits``, ``temperature``, ...). (default: :obj:`None`)
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
        topology: str = "fixed",
        topology_options: Mapping[str, object] | None = None,
        norm: str = "post",
        ffn_dim: int | None = None,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__(modality_dims, out_dim, allow_missing)
        if norm not in NORMS:
            raise ValueError(f"WSGraphFusion: norm must be one of {NORMS}, got {norm!r}")
        if topology not in ("fixed", "learnable"):
            raise ValueError(f"WSGraphFusion: topology must be 'fixed' or 'learnable', got {topology!r}")
        if topology_options and topology != "learnable":
            raise ValueError("WSGraphFusion: topology_options need topology='learnable'")
        if conv not in CONVS:
            raise ValueError(f"conv must be one of {CONVS}, got {conv!r}")
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        what = type(self).__name__
        self.token_nodes = tokens is not None
        self.accepts_tokens = self.token_nodes
        self.graph = graph_for(
            self.modality_dims, graph, what,
            nodes_per_modality=tokens if tokens is not None else segments, k=k, beta=beta, seed=seed, order=order,
        )
        counts = self.graph.node_counts
        self.node_dim = check_positive_int(node_dim, "node_dim")
        self.conv_type = conv
        self.readout = readout
        self.proj = nn.ModuleDict({
            m: nn.Linear(d, node_dim if self.token_nodes else counts[m] * node_dim)
            for m, d in self.modality_dims.items()
        })
        # node_modality indexes the graph's relation vocabulary (its own modalities by default).
        self.modality_embedding = nn.Parameter(torch.empty(len(self.graph.vocabulary), node_dim))
        num_layers = check_positive_int(num_layers, "num_layers")
        if conv == "rgcn":
            convs = [CrossModalConv(node_dim, node_dim, self.graph.num_relations, num_bases=num_bases) for _ in range(num_layers)]
        else:
            convs = [CrossModalAttentionConv(node_dim, node_dim, heads=heads, num_relations=self.graph.num_relations,
                                             dropout=check_probability(attention_dropout, "attention_dropout"))
                     for _ in range(num_layers)]
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(nn.LayerNorm(node_dim) for _ in range(num_layers))
        self.pre_norm = norm == "pre"
        dropout = check_probability(dropout, "dropout")
        self.dropout = nn.Dropout(dropout)
        if ffn_dim is None:
            self.ffns = self.ffn_norms = None
        else:
            check_positive_int(ffn_dim, "ffn_dim")
            self.ffns = nn.ModuleList(mlp(node_dim, ffn_dim, node_dim, dropout) for _ in range(num_layers))
            self.ffn_norms = nn.ModuleList(nn.LayerNorm(node_dim) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(node_dim) if self.pre_norm else None
        if readout == "attention":
            self.pool_query = nn.Parameter(torch.empty(node_dim))
            self.head = nn.Linear(node_dim, out_dim)
        else:
            self.register_parameter("pool_query", None)
            self.head = nn.Linear(len(self.graph.modalities) * node_dim, out_dim)
        self.topology = None
        edge_index = self.graph.edge_index
        if topology == "learnable":
            from wsfusion.topology import LearnableWSGraph

            g = self.graph
            self.topology = LearnableWSGraph(
                dict(g.node_counts), g.k if g.k is not None else k,
                **{"beta_init": min(max(g.beta if g.beta is not None else beta, 0.01), 0.99),
                   "seed": g.seed if g.seed is not None else 0, "order": g.order or order,
                   **dict(topology_options or {})},
            )
            edge_index = self.topology.edge_index
        # Graph tensors as buffers so they follow the module to its device.
        node_modality = self.graph.node_modality
        self.register_buffer("edge_index", edge_index.clone(), persistent=False)
        self.register_buffer("edge_type", self.graph.relation_ids(edge_index), persistent=False)
        self.register_buffer("node_modality", node_modality, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every parameter the module owns (projections, convs, norms, readout, topology)."""
        super().reset_parameters()
        nn.init.normal_(self.modality_embedding, std=0.02)
        if self.pool_query is not None:
            nn.init.normal_(self.pool_query, std=1.0 / math.sqrt(self.node_dim))

    def nodes(self, features: Mapping[str, Tensor], batch: int) -> Tensor:
        """Initial node features ``[B, N, node_dim]`` (zeros for absent modalities)."""
        ref = next(iter(features.values()))
        parts = []
        for m in self.graph.modalities:
            count = self.graph.node_counts[m]
            if m not in features:
                parts.append(ref.new_zeros(batch, count, self.node_dim))
            elif self.token_nodes:
                parts.append(self.proj[m](as_tokens(features[m])))
            else:
                parts.append(self.proj[m](features[m]).view(batch, count, self.node_dim))
        return torch.cat(parts, dim=1) + self.modality_embedding[self.node_modality]

    def node_mask(self, mask: Mapping[str, Tensor], token_mask: Mapping[str, Tensor] | None = None) -> Tensor:
        """``[B, N]`` bool: a node is present when its modality is present in that sample
        (and, for token nodes, when its token is not padding)."""
        some = next(iter(mask.values()))  # a vocabulary entry without nodes is never looked up
        present = torch.stack([mask[m] if m in mask else torch.zeros_like(some) for m in self.graph.vocabulary],
                              dim=1)[:, self.node_modality]
        if not token_mask:
            return present
        real = torch.cat([
            token_mask[m] if m in token_mask else present.new_ones(present.shape[0], self.graph.node_counts[m])
            for m in self.graph.modalities
        ], dim=1)
        return present & real

    def message_passing(
        self, x: Tensor, edge_index: Tensor, edge_type: Tensor, node_mask: Tensor | None,
        edge_weight: Tensor | None = None,
    ) -> Tensor:
        """The ``num_layers`` residual conv (and feed-forward) blocks over ``x [B, N, node_dim]``."""
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            h = norm(x) if self.pre_norm else x
            update = conv(h, edge_index, edge_type, node_mask=node_mask, edge_weight=edge_weight)
            if self.conv_type == "rgcn":
                update = torch.relu(update)
            x = x + self.dropout(update) if self.pre_norm else norm(x + self.dropout(update))
            if self.ffns is not None:
                ffn, ffn_norm = self.ffns[i], self.ffn_norms[i]
                if self.pre_norm:
                    x = x + self.dropout(ffn(ffn_norm(x)))
                else:
                    x = ffn_norm(x + self.dropout(ffn(x)))
        return x if self.final_norm is None else self.final_norm(x)

    def pool(self, x: Tensor, node_mask: Tensor) -> Tensor:
        """Readout of the present nodes to ``[B, out_dim]``."""
        present = node_mask.unsqueeze(-1).to(x.dtype)
        if self.readout == "mean":
            slots = []
            for m, s in self.graph.node_slices.items():
                count = present[:, s].sum(dim=1).clamp(min=1.0)
                slots.append((x[:, s] * present[:, s]).sum(dim=1) / count)
            return self.head(torch.cat(slots, dim=-1))
        score = (x @ self.pool_query) / math.sqrt(self.node_dim)
        score = score.masked_fill(~node_mask, torch.finfo(score.dtype).min)
        weights = torch.softmax(score, dim=1) * node_mask.to(x.dtype)  # all-missing sample -> zero
        return self.head((weights.unsqueeze(-1) * x).sum(dim=1))

    def forward(
        self,
        features: Mapping[str, Tensor],
        mask: Mapping[str, Tensor] | None = None,
        token_mask: Mapping[str, Tensor] | None = None,
        *,
        key_padding_mask: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        batch, mask = self.check_inputs(features, mask)
        self._check_token_counts(features)
        for given, value in (("token_mask", token_mask), ("key_padding_mask", key_padding_mask)):
            if value is not None and not self.token_nodes:
                raise ValueError(f"{type(self).__name__}: {given} needs token nodes (build it with tokens={{m: T_m}})")
        token_mask = token_mask_from_key_padding(features, token_mask, key_padding_mask, type(self).__name__)
        node_mask = self.node_mask(mask, token_mask and self.check_token_mask(features, token_mask))
        # Learnable topology: one gate per candidate edge (a sample in training, the most probable graph in eval).
        gates = None if self.topology is None else self.topology()
        x = self.message_passing(self.nodes(features, batch), self.edge_index, self.edge_type, node_mask, gates)
        return self.pool(x, node_mask)

    def _check_token_counts(self, features: Mapping[str, Tensor]) -> None:
        if not self.token_nodes:
            return  # check_inputs already refuses token sequences
        for m, x in features.items():
            count = self.graph.node_counts[m]
            if as_tokens(x).shape[1] != count:
                raise ValueError(
                    f"{type(self).__name__}: {m!r} must be a token sequence [B, {count}, {self.modality_dims[m]}] "
                    f"(the graph has {count} {m} nodes), got {format_shape(tuple(x.shape))}"
                )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, graph={self.graph!r}, conv={self.conv_type!r}, readout={self.readout!r}"

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import scatter, softmax

from wsfusion._validation import check_heads, check_positive_int, check_probability
from wsfusion.graphs import CrossModalGraph
from wsfusion.nn._inputs import (
    IdentityCache,
    check_edge_type,
    check_edge_weight,
    check_features,
    check_node_mask,
    padding_to_node_mask,
    resolve_edges,
    takes_kernel_path,
)
from wsfusion.nn._sparse_attention import (
    AttentionStructure,
    attention_structure,
    edge_aggregate,
    edge_scores,
    edge_softmax,
)


class CrossModalAttentionConv(MessagePassing):
    r"""Multi-head attention restricted to the neighbours of a cross-modal graph.

    Standard scaled dot-product multi-head attention in which node :math:`i`
    attends only over its incoming edges, with an optional learned relation
    embedding added to the keys:

    .. math::
        \alpha_{ij}^{h} = \underset{j \in \mathcal{N}(i)}{\mathrm{softmax}}
        \left( \frac{(\mathbf{W}_Q^{h} \mathbf{x}_i)^{\top}
        (\mathbf{W}_K^{h} \mathbf{x}_j + \mathbf{r}^{h}_{r(j, i)})}{\sqrt{d}} \right),
        \qquad
        \mathbf{x}^{\prime}_i = \mathbf{W}_O \big\Vert_{h=1}^{H}
        \sum_{j \in \mathcal{N}(i)} \alpha_{ij}^{h} \mathbf{W}_V^{h} \mathbf{x}_j

    Without relation embeddings it equals dense multi-head attention
    (:class:`torch.nn.MultiheadAttention`) with a :math:`-\infty` mask outside
    the graph, at :math:`O(E)` instead of :math:`O(N^2)` time and memory.
    A node without incoming edges gets a zero attention term (then the bias).

    ``node_mask`` (``True`` = present) removes nodes: a masked node is no key
    for anyone and its own output is zero, exactly as on the graph without
    those nodes. ``key_padding_mask`` is the same with PyTorch's polarity
    (``True`` = padding, as in :class:`torch.nn.MultiheadAttention`); give one.
    ``edge_weight`` (``[E]``, e.g. learnable-topology gates) multiplies each
    coefficient before renormalising over the target's incoming edges
    (:math:`\mathrm{softmax}(s + \log w)`); 0/1 weights equal the graph
    without the zero-weight edges.

    Two equal paths compute it (tested equal in float64, outputs and all
    gradients, and equal to dense masked :class:`torch.nn.MultiheadAttention`):

    * ``fuse=True`` (default; PyG's ``MessagePassing.fuse``: messages are
      never materialised per edge): all samples and heads are one CSR matrix over
      the rows ``(b, node, head)`` of the projections' own ``[B, N, H·d]``
      memory: scores by SDDMM (:func:`torch.sparse.sampled_addmm`), the
      softmax on the CSR values, the output by one CSR SpMM; the backward
      pass is SDDMM / SpMM on the stored structure and its transpose (custom
      autograd functions). Memory is :math:`O(B H E)` scalars plus the
      :math:`O(B N F)` projections; no :math:`[B, E, H, d]` tensor and no
      heads-first copy exists. The CSR layout of an ``edge_index`` is built
      once per batch size and reused while that tensor is unchanged.
    * ``fuse=False``: PyG's generic path (:meth:`edge_update` computes the
      coefficients with gathers and a scatter softmax, :meth:`message` weights
      the gathered values), the reference. A ``fuse=True`` layer takes it by itself
      while PyG's explain mode or any propagate / message hook is active.

    **Bipartite input** ``x = (x_src, x_dst)`` with a bipartite ``edge_index``
    is sparse cross-attention (MulT-style): queries from ``x_dst``, keys and
    values from ``x_src``, on both paths; it is how the layer sits inside
    :class:`~torch_geometric.nn.conv.HeteroConv`.

    **Training modes:** under ``torch.autocast`` the output has the autocast
    dtype, the CSR kernels accumulate in float32 and the softmax runs in
    float32 (the returned coefficients are float32); half-precision modules
    work the same way; ``torch.compile`` (inductor) keeps the kernels in the
    graph as custom ops; the CSR-layout cache is never pickled.

    Args:
        in_channels (int): Input features per node.
        out_channels (int): Output features per node (``heads`` must divide it).
        heads (int, optional): Attention heads. (default: :obj:`4`)
        num_relations (int, optional): Learn one key offset per relation and
            head; :obj:`None` disables it. (default: :obj:`None`)
        dropout (float, optional): Dropout on the attention coefficients.
            (default: :obj:`0.0`)
        bias (bool, optional): Biases in the projections. (default: :obj:`True`)
        fuse (bool, optional): Fuse message and aggregation into the CSR
            kernels (PyG's ``fuse`` attribute; :obj:`False`: the reference
            message path). (default: :obj:`True`)

    Shapes:
        - **input:** node features :math:`(N, F_{in})` or a batch over one
          static graph :math:`(B, N, F_{in})`; ``edge_index`` :math:`(2, E)`
          (``edge_type`` :math:`(E)` with relation embeddings), or a
          :class:`CrossModalGraph`; optional ``node_mask`` (or
          ``key_padding_mask``) :math:`(N)` or :math:`(B, N)`; bipartite:
          ``((N_{src}, F_{in}), (N_{dst}, F_{in}))`` (or batched), masks a pair
        - **output:** :math:`(N, F_{out})` or :math:`(B, N, F_{out})`; with
          ``return_attention_weights=True`` also ``(edge_index, alpha)``,
          alpha :math:`(E, H)` or :math:`(B, E, H)`
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        heads: int = 4,
        num_relations: int | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        fuse: bool = True,
    ) -> None:
        super().__init__(aggr="add", node_dim=-3)
        self.fuse = bool(fuse)
        self._structure = IdentityCache()  # the CSR layout of the last edges seen, per batch size
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        _, self.heads = check_heads(out_channels, "out_channels", heads, "heads")
        self.head_dim = out_channels // heads
        self.num_relations = None if num_relations is None else check_positive_int(num_relations, "num_relations")
        self.dropout = check_probability(dropout, "dropout")
        self.query = nn.Linear(in_channels, out_channels, bias=bias)
        self.key = nn.Linear(in_channels, out_channels, bias=bias)
        self.value = nn.Linear(in_channels, out_channels, bias=bias)
        self.out = nn.Linear(out_channels, out_channels, bias=bias)
        self.relation = None if num_relations is None else nn.Embedding(num_relations, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for lin in (self.query, self.key, self.value, self.out):
            nn.init.xavier_uniform_(lin.weight)
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)
        if self.relation is not None:
            nn.init.normal_(self.relation.weight, std=0.02)

    def forward(
        self,
        x: Tensor | tuple[Tensor, Tensor],
        edge_index: Tensor | CrossModalGraph,
        edge_type: Tensor | None = None,
        node_mask: Tensor | tuple[Tensor | None, Tensor | None] | None = None,
        return_attention_weights: bool = False,
        edge_weight: Tensor | None = None,
        *,
        key_padding_mask: Tensor | tuple[Tensor | None, Tensor | None] | None = None,
    ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        name = type(self).__name__
        x_src, x_dst = check_features(name, x, self.in_channels)
        node_mask = padding_to_node_mask(name, node_mask, key_padding_mask)
        mask_src, mask_dst = check_node_mask(name, node_mask, x_src, x_dst)
        num_src, num_dst = x_src.shape[-2], x_dst.shape[-2]
        fuse = takes_kernel_path(self)
        batch = x_dst.shape[0] if x_dst.dim() == 3 else 1
        edge_index, edge_type, edge_weight, structure = self._edges(
            edge_index, edge_type, edge_weight, num_src, num_dst, batch, x_dst.device, fuse)
        if fuse:
            return self._fused_forward(x_src, x_dst, edge_index, edge_type, mask_src, mask_dst, edge_weight,
                                       return_attention_weights, structure)
        lead_src, lead_dst = x_src.shape[:-1], x_dst.shape[:-1]
        query = self.query(x_dst).view(*lead_dst, self.heads, self.head_dim)
        key = self.key(x_src).view(*lead_src, self.heads, self.head_dim)
        value = self.value(x_src).view(*lead_src, self.heads, self.head_dim)
        relation = None if self.relation is None else self.relation(edge_type).view(-1, self.heads, self.head_dim)
        source_present = None if mask_src is None else mask_src[..., edge_index[0]]
        size = (num_src, num_dst)
        # As PyG's GATConv: the coefficients are an edge-level computation (edge_updater), then
        # the messages weight the values by them (propagate).
        alpha = self.edge_updater(edge_index, query=query, key=key, relation=relation,
                                  source_present=source_present, edge_weight=edge_weight, size=size)
        dropped = F.dropout(alpha, p=self.dropout, training=self.training)
        out = self.propagate(edge_index, value=value, alpha=dropped.to(value.dtype), size=size)
        out = self.out(out.reshape(*lead_dst, self.out_channels))
        if mask_dst is not None:
            out = out * mask_dst.unsqueeze(-1).to(out.dtype)
        if return_attention_weights:
            return out, (edge_index, alpha)
        return out

    # Resolving and range-checking the edges, and the cached CSR layout, run eagerly under
    # torch.compile (one graph break a call): they read tensor identities, not tensor values.
    @torch.compiler.disable
    def _edges(self, edge_index: Tensor | CrossModalGraph, edge_type: Tensor | None, edge_weight: Tensor | None,
               num_src: int, num_dst: int, batch: int, device: torch.device, fuse: bool,
               ) -> tuple[Tensor, Tensor | None, Tensor | None, AttentionStructure | None]:
        name = type(self).__name__
        edge_index, edge_type = resolve_edges(name, edge_index, edge_type, num_src, num_dst, device)
        if self.relation is not None:
            if edge_type is None and self.num_relations == 1:
                edge_type = edge_index.new_zeros(edge_index.shape[1])
            edge_type = check_edge_type(name, edge_type, self.num_relations, "with relation embeddings")
        edge_weight = check_edge_weight(name, edge_weight, edge_index)
        structure = self._structure_for(edge_index, num_src, num_dst, batch) if fuse else None
        return edge_index, edge_type, edge_weight, structure

    def _structure_for(self, edge_index: Tensor, num_src: int, num_dst: int, batch: int) -> AttentionStructure:
        """The CSR layout of ``edge_index``, rebuilt only when a different (or changed) tensor comes in."""
        key = (num_src, num_dst, batch)
        structure = self._structure.get((edge_index,), key)
        if structure is None:
            structure = self._structure.put((edge_index,), key, attention_structure(
                edge_index, num_dst, batch, self.heads, num_src=num_src))
        return structure

    def _fused_forward(
        self, x_src: Tensor, x_dst: Tensor, edge_index: Tensor, edge_type: Tensor | None, mask_src: Tensor | None,
        mask_dst: Tensor | None, edge_weight: Tensor | None, return_attention_weights: bool, s: AttentionStructure,
    ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        batched = x_dst.dim() == 3
        xs = x_src if batched else x_src.unsqueeze(0)
        xd = x_dst if batched else x_dst.unsqueeze(0)
        b, n = xd.shape[0], xd.shape[1]
        n_src = xs.shape[1]
        h, d = self.heads, self.head_dim

        # The projections' own [B, N, H·d] memory is the [B·N·H, d] row layout of the structure:
        # no heads-first copies of queries, keys, values or outputs (nor of their gradients), and
        # the 1/sqrt(d) score scale rides on the query weights.
        scale = 1.0 / math.sqrt(d)
        query_bias = None if self.query.bias is None else self.query.bias * scale
        query = F.linear(xd, self.query.weight * scale, query_bias).reshape(-1, d)
        key = self.key(xs).reshape(-1, d)
        value = self.value(xs).reshape(-1, d)
        score = edge_scores(query, key, s)  # [V], values in (b, target, head, source) order
        if self.relation is not None:
            # q·(k + r) = q·k + q·r: the relation term is q against R vectors, picked per value.
            relations = self.relation.weight.view(-1, h, d)
            num_relations = relations.shape[0]
            q_dot_r = torch.einsum("bnhd,rhd->bnhr", query.view(b, n, h, d), relations.to(query.dtype))
            score = score + q_dot_r.reshape(-1)[s.row * num_relations + edge_type[s.order][s.edge]]
        present = None
        if mask_src is not None:
            # The value's source node (b, j) is its column // heads.
            present = mask_src.expand(b, n_src).reshape(-1)[s.col // h]
        weight = None if edge_weight is None else edge_weight[s.order][s.edge]
        alpha = edge_softmax(score, s, present, weight)
        dropped = F.dropout(alpha, p=self.dropout, training=True) if self.training and self.dropout > 0 else alpha
        out = self.out(edge_aggregate(dropped, value, s).view(b, n, h * d))
        if mask_dst is not None:
            out = out * mask_dst.unsqueeze(-1).to(out.dtype)
        if not batched:
            out = out.squeeze(0)
        if not return_attention_weights:
            return out
        # [B, E, H] in the input's edge order: value v is (sample, CSR edge position, head).
        weights = alpha.new_zeros(b, edge_index.shape[1], h)
        weights[s.row // (h * n), s.order[s.edge], s.row % h] = alpha
        return out, (edge_index, weights if batched else weights.squeeze(0))

    def edge_update(
        self,
        query_i: Tensor,
        key_j: Tensor,
        relation: Tensor | None,
        source_present: Tensor | None,
        edge_weight: Tensor | None,
        index: Tensor,
        ptr: Tensor | None,
        size_i: int | None,
    ) -> Tensor:
        r"""The attention coefficients :math:`\alpha` ``[..., E, H]`` (before dropout)."""
        if relation is not None:
            key_j = key_j + relation
        score = (query_i * key_j).sum(dim=-1) / math.sqrt(self.head_dim)  # [..., E, H]
        score = score.to(torch.promote_types(score.dtype, torch.float32))  # softmax in fp32, as autocast's
        if source_present is not None:
            # The lowest finite score rather than -inf: a target whose neighbours are all masked
            # then gets a finite softmax (zeroed below) instead of NaN values and gradients.
            present = source_present.unsqueeze(-1)
            score = score.masked_fill(~present, torch.finfo(score.dtype).min)
        alpha = softmax(score, index, ptr, size_i, dim=-2)
        if source_present is not None:
            alpha = alpha * present.to(alpha.dtype)
        if edge_weight is not None:
            # Gate the coefficients and renormalise over each target's incoming edges:
            # softmax(s + log w), without log(0) for closed gates.
            alpha = alpha * edge_weight.unsqueeze(-1)
            total = scatter(alpha, index, dim=-2, dim_size=size_i, reduce="sum").index_select(-2, index)
            # Every gate of a target closed: coefficients 0 with zero (finite) gradients, never 0/0.
            empty = total == 0
            alpha = torch.where(empty, torch.zeros_like(alpha), alpha / torch.where(empty, 1.0, total))
        return alpha

    def message(self, value_j: Tensor, alpha: Tensor) -> Tensor:
        return value_j * alpha.unsqueeze(-1)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, heads={self.heads}, "
            f"num_relations={self.num_relations}, fuse={self.fuse})"
        )

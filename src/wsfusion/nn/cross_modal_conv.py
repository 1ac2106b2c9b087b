from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.inits import glorot
from torch_geometric.utils import scatter

from wsfusion._validation import check_positive_int
from wsfusion.graphs import CrossModalGraph
from wsfusion.nn._inputs import (
    IdentityCache,
    check_edge_type,
    check_edge_weight,
    check_features,
    check_node_mask,
    resolve_edges,
    takes_kernel_path,
)
from wsfusion.nn._sparse import RelationPairs, compute_dtype, edge_weighted_spmm, relation_pairs


class CrossModalConv(MessagePassing):
    r"""Relation-typed message passing over a cross-modal graph (RGCN-like, `Schlichtkrull et al., 2018
    <https://arxiv.org/abs/1703.06103>`_), with one weight per ordered modality pair.

    .. math::
        \mathbf{x}^{\prime}_i = \mathbf{W}_{\mathrm{root}} \mathbf{x}_i +
        \underset{j \in \mathcal{N}(i)}{\mathrm{AGG}}\; \mathbf{W}_{r(j, i)} \mathbf{x}_j + \mathbf{b}

    where :math:`r(j, i)` is the edge's relation (``graph.edge_type``: source
    modality × M + target modality) and AGG is a sum (``aggr="add"``) or a mean
    (``aggr="mean"``) over the incoming edges. With ``num_bases`` the relation
    weights share a basis, :math:`\mathbf{W}_r = \sum_b a_{rb} \mathbf{V}_b`.

    **Our mean is not** :class:`~torch_geometric.nn.conv.RGCNConv`'s. Here the
    mean is taken over *all* incoming edges of node :math:`i`, whatever their
    relation, and counts only present neighbours (``node_mask``), weighted by
    ``edge_weight``:

    .. math::
        \mathbf{x}^{\prime}_i = \mathbf{W}_{\mathrm{root}} \mathbf{x}_i +
        \frac{\sum_{j \in \mathcal{N}(i)} w_{ji} \mathbf{W}_{r(j, i)} \mathbf{x}_j}
        {\max\big(1, \sum_{j \in \mathcal{N}(i)} w_{ji}\big)} + \mathbf{b},

    while ``RGCNConv(aggr="mean")`` averages within each relation and sums the
    relations' means,
    :math:`\sum_r \frac{1}{|\mathcal{N}_r(i)|} \sum_{j \in \mathcal{N}_r(i)} \mathbf{W}_r \mathbf{x}_j`.
    The two agree when every node receives a single relation (or with
    ``aggr="add"``, where both are the plain sum). ``conv.aggr`` reports the
    aggregation asked for; PyG's aggregation module (``conv.aggr_module``) always
    sums the messages, and the division by the neighbour count follows it.

    ``node_mask`` (``True`` = present, the opposite of PyTorch's
    ``key_padding_mask``) removes nodes from message passing: a masked node sends
    nothing and its own output is zero, and the mean counts only the
    neighbours present. The result equals running the layer on the graph
    without those nodes. ``edge_weight`` (``[E]``, e.g. the gates of a
    :class:`~wsfusion.topology.LearnableWSGraph`) scales each message, and the
    mean divides by the sum of the weights; with 0/1 weights this equals the
    graph without the zero-weight edges.

    Two equal paths compute it (tested equal to each other in float64 for both
    aggregations, and with ``aggr="add"`` to PyG's
    :class:`~torch_geometric.nn.conv.RGCNConv` and ``FastRGCNConv``):

    * ``fuse=True`` (default; PyG's ``MessagePassing.fuse``: messages are
      never materialised per edge): aggregate, then transform. One CSR SpMM sums
      the sources of every (relation, target) pair that occurs, with
      ``edge_weight`` as the sparse values (its gradient by SDDMM), and each
      relation's block of pairs is multiplied by its weight: :math:`P \le N R`
      transforms (in a cross-modal graph a target meets only the relations into
      its own modality), no :math:`[E, F]` gather, no Python loop over edges.
      The layout of an ``edge_index``/``edge_type`` pair is built once and
      reused while those tensors are unchanged (a cache, never pickled).
    * ``fuse=False``: PyG's generic gather / scatter path, the reference.
      A ``fuse=True`` layer takes it by itself while PyG's explain mode (``Explainer``
      edge masks) or any propagate / message hook is active.

    **Bipartite input** ``x = (x_src, x_dst)`` with a bipartite ``edge_index``
    (row 0 indexes ``x_src``, row 1 ``x_dst``) passes messages from one node
    set to another, as PyG's convs do (e.g. inside
    :class:`~torch_geometric.nn.conv.HeteroConv` over
    :meth:`CrossModalGraph.to_hetero`); the root weight applies to ``x_dst``.
    With ``num_relations=1``, ``edge_type`` may be left out.

    **Training modes:** under ``torch.autocast`` the output has the autocast
    dtype (as :class:`torch.nn.Linear`'s) and the CSR kernels accumulate in
    float32; half-precision modules work the same way; ``torch.compile``
    (inductor) keeps the kernels in the graph as custom ops.

    Args:
        in_channels (int): Input features per node.
        out_channels (int): Output features per node.
        num_relations (int): Number of relations (``graph.num_relations``).
        num_bases (int, optional): Basis decomposition size; :obj:`None`
            learns one full matrix per relation. (default: :obj:`None`)
        aggr (str, optional): ``"mean"`` (over all incoming edges, see above)
            or ``"add"``. (default: :obj:`"mean"`)
        root_weight (bool, optional): Add :math:`\mathbf{W}_{\mathrm{root}}
            \mathbf{x}_i`. (default: :obj:`True`)
        bias (bool, optional): Learn :math:`\mathbf{b}`. (default: :obj:`True`)
        fuse (bool, optional): Fuse message and aggregation into the CSR
            kernels (PyG's ``fuse`` attribute; :obj:`False`: the reference
            message path). (default: :obj:`True`)

    Shapes:
        - **input:** node features :math:`(N, F_{in})` or a batch over one
          static graph :math:`(B, N, F_{in})`; ``edge_index`` :math:`(2, E)`
          with ``edge_type`` :math:`(E)`, or a :class:`CrossModalGraph`;
          optional ``node_mask`` :math:`(N)` or :math:`(B, N)`; optional
          ``edge_weight`` :math:`(E)`; bipartite: ``((N_{src}, F_{in}),
          (N_{dst}, F_{in}))`` (or batched), ``node_mask`` a pair
        - **output:** :math:`(N, F_{out})` or :math:`(B, N, F_{out})`
          (:math:`N = N_{dst}` for bipartite input)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_relations: int,
        num_bases: int | None = None,
        aggr: str = "mean",
        root_weight: bool = True,
        bias: bool = True,
        fuse: bool = True,
    ) -> None:
        if aggr not in ("mean", "add"):
            raise ValueError(f"aggr must be 'mean' or 'add', got {aggr!r}")
        # Messages are always summed (PyG's SumAggregation); the mean then divides by the per-sample
        # count of present neighbours. conv.aggr still reports what was asked (PyG only reads it in __init__).
        super().__init__(aggr="add", node_dim=-2)
        self.aggr = aggr
        self.fuse = bool(fuse)
        self._structure = IdentityCache()  # the (relation, target) layout of the last edges seen
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.num_relations = check_positive_int(num_relations, "num_relations")
        self.num_bases = None if num_bases is None else check_positive_int(num_bases, "num_bases")
        if num_bases is None:
            self.weight = nn.Parameter(torch.empty(num_relations, in_channels, out_channels))
            self.register_parameter("comp", None)
        else:
            self.weight = nn.Parameter(torch.empty(num_bases, in_channels, out_channels))
            self.comp = nn.Parameter(torch.empty(num_relations, num_bases))
        self.root = nn.Linear(in_channels, out_channels, bias=False) if root_weight else None
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        # As PyG's RGCNConv: glorot per relation (or basis) matrix, fans over its last two dimensions.
        # (xavier_uniform_ on the 3-D tensor would count the relation axis into the fans.)
        glorot(self.weight)
        glorot(self.comp)
        if self.root is not None:
            glorot(self.root.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    @property
    def mean(self) -> bool:
        """Whether the aggregation is the mean over all incoming edges (``aggr == "mean"``)."""
        return self.aggr == "mean"

    def relation_weights(self) -> Tensor:
        """``[num_relations, F_in, F_out]``, composed from the bases if there are any."""
        if self.comp is None:
            return self.weight
        return torch.einsum("rb,bio->rio", self.comp, self.weight)

    def forward(
        self,
        x: Tensor | tuple[Tensor, Tensor],
        edge_index: Tensor | CrossModalGraph,
        edge_type: Tensor | None = None,
        node_mask: Tensor | tuple[Tensor | None, Tensor | None] | None = None,
        edge_weight: Tensor | None = None,
    ) -> Tensor:
        name = type(self).__name__
        x_src, x_dst = check_features(name, x, self.in_channels)
        mask_src, mask_dst = check_node_mask(name, node_mask, x_src, x_dst)
        num_src, num_dst = x_src.shape[-2], x_dst.shape[-2]
        fuse = takes_kernel_path(self)
        edge_index, edge_type, edge_weight, pairs = self._edges(edge_index, edge_type, edge_weight, num_src, num_dst,
                                                                x_src.device, fuse)
        dtype = compute_dtype(x_dst, self.weight)  # the output's, as nn.Linear's under autocast
        if mask_src is not None:
            x_src = x_src * mask_src.unsqueeze(-1).to(x_src.dtype)  # masked nodes send nothing
        if edge_weight is not None:
            edge_weight = edge_weight.to(x_src.dtype)

        src, dst = edge_index
        if fuse:
            out = self._fused_messages(x_src, num_dst, pairs, edge_weight)
        else:
            # Every source under every relation's weight, [..., N_src * R, F_out]; each edge then
            # takes the row of its source under its own relation.
            relations = self.num_relations
            h = torch.einsum("...nf,rfo->...nro", x_src, self.relation_weights()).flatten(-3, -2)
            typed = torch.stack([src * relations + edge_type, dst])
            out = self.propagate(typed, x=h, edge_weight=edge_weight, size=(num_src * relations, num_dst))
        if self.mean:
            present = torch.ones_like(src, dtype=x_src.dtype) if mask_src is None else mask_src[..., src].to(x_src.dtype)
            if edge_weight is not None:
                present = present * edge_weight
            count = scatter(present, dst, dim=-1, dim_size=num_dst, reduce="sum")
            out = out / count.clamp(min=1).unsqueeze(-1)
        if self.root is not None:
            out = out + self.root(x_dst if mask_dst is None else x_dst * mask_dst.unsqueeze(-1).to(x_dst.dtype))
        if self.bias is not None:
            out = out + self.bias
        if mask_dst is not None:
            out = out * mask_dst.unsqueeze(-1).to(out.dtype)
        return out.to(dtype)

    # Resolving and range-checking the edges, and the cached index layout, run eagerly under
    # torch.compile (one graph break a call): they read tensor identities, not tensor values.
    @torch.compiler.disable
    def _edges(self, edge_index: Tensor | CrossModalGraph, edge_type: Tensor | None, edge_weight: Tensor | None,
               num_src: int, num_dst: int, device: torch.device, fuse: bool,
               ) -> tuple[Tensor, Tensor, Tensor | None, RelationPairs | None]:
        name = type(self).__name__
        edge_index, edge_type = resolve_edges(name, edge_index, edge_type, num_src, num_dst, device)
        if edge_type is None and self.num_relations == 1:
            edge_type = edge_index.new_zeros(edge_index.shape[1])  # one relation: every edge has it
        edge_type = check_edge_type(name, edge_type, self.num_relations, "(one relation id per edge)")
        edge_weight = check_edge_weight(name, edge_weight, edge_index)
        pairs = self._structure_for(edge_index, edge_type, num_src, num_dst) if fuse else None
        return edge_index, edge_type, edge_weight, pairs

    def _fused_messages(self, x_src: Tensor, num_dst: int, pairs: RelationPairs, edge_weight: Tensor | None) -> Tensor:
        r""":math:`\sum_{j \to i} w_{ji} \mathbf{W}_{r(j,i)} \mathbf{x}_j`, aggregating before transforming.

        One SpMM sums each (relation, target) pair's sources, ``[P, F_in]``; then
        each relation's pairs (a contiguous block) go through its weight. ``P`` is
        at most :math:`N R` and usually far less (a target meets only the relations
        into its own modality), so this costs :math:`P F_{in} F_{out}` instead of
        :math:`N R F_{in} F_{out}`.
        """
        num_src = x_src.shape[-2]
        weight = x_src.new_ones(pairs.order.numel()) if edge_weight is None else edge_weight[pairs.order]
        lead = x_src.shape[:-2]
        columns = x_src.movedim(-1, -2).reshape(-1, num_src)  # [B·F_in, N_src]: features are the SpMM batch
        summed = edge_weighted_spmm(weight, columns, pairs.structure)  # [B·F_in, P]
        summed = summed.reshape(*lead, self.in_channels, -1).movedim(-1, -2)  # [..., P, F_in]
        weights = self.relation_weights()
        sizes = [end - start for start, end in zip(pairs.bounds[:-1], pairs.bounds[1:])]
        # split (not slicing): its backward concatenates the blocks' gradients instead of
        # filling a full-size zero tensor per block.
        blocks = [block @ w for block, w, size in zip(summed.split(sizes, dim=-2), weights.unbind(0), sizes) if size]
        if blocks:
            transformed = torch.cat(blocks, dim=-2)
        else:
            transformed = summed.new_zeros(*lead, 0, self.out_channels, dtype=compute_dtype(summed, weights))
        out = transformed.new_zeros(*lead, num_dst, self.out_channels)
        return out.index_add(-2, pairs.target, transformed)

    def _structure_for(self, edge_index: Tensor, edge_type: Tensor, num_src: int, num_dst: int) -> RelationPairs:
        """The (relation, target) layout, rebuilt only when different (or changed) index tensors come in."""
        key = (num_src, num_dst)
        pairs = self._structure.get((edge_index, edge_type), key)
        if pairs is None:
            pairs = self._structure.put((edge_index, edge_type), key,
                                        relation_pairs(edge_index, edge_type, num_src, num_dst, self.num_relations))
        return pairs

    def message(self, x_j: Tensor, edge_weight: Tensor | None) -> Tensor:
        return x_j if edge_weight is None else x_j * edge_weight.unsqueeze(-1)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"num_relations={self.num_relations}, num_bases={self.num_bases}, aggr={self.aggr}, "
            f"fuse={self.fuse})"
        )

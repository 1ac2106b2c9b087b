from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing


from wsfusion._validation import format_shape
from wsfusion.graphs import CrossModalGraph
from wsfusion.graphs.edges import canonical_edge_index, is_symmetric
from wsfusion.nn._inputs import _PROPAGATE_HOOKS, takes_kernel_path
from wsfusion.nn._sparse import CSRStructure, compute_dtype, csr_structure, csr_tensor, edge_weighted_spmm, node_major
from wsfusion.nn.init import in_degree_uniform_


class EdgeWeightedLinear(nn.Module):
    r"""Base of :class:`WSLinear` and ``LearnableWSLinear``: one weight per directed edge of a CSR structure.

    .. math::
        y_t = \sum_{s \to t} w_{s \to t} \, x_s + b_t

    Subclasses own ``weight [E]`` (in the structure's target-then-source
    order), an optional ``bias [N]`` and ``num_nodes``, and call
    :meth:`_set_structure` whenever their edge set changes; the forward pass
    :meth:`edge_linear` runs the CSR SpMM / SDDMM kernel of
    :func:`~wsfusion.nn._sparse.edge_weighted_spmm` with whatever edge values
    the subclass passes (the plain weight, or gated weights).
    """

    num_nodes: int
    weight: nn.Parameter
    bias: nn.Parameter | None

    def _set_structure(self, edge_index: Tensor) -> None:
        """(Re)build the CSR buffers of ``edge_index`` (sorted by target, then source) on the layer's device."""
        device = self.weight.device
        for name, value in csr_structure(edge_index.cpu(), self.num_nodes)._asdict().items():
            if isinstance(value, Tensor):
                if hasattr(self, f"_{name}"):
                    setattr(self, f"_{name}", value.to(device))
                else:  # derived from the edge set, so never part of the state dict
                    self.register_buffer(f"_{name}", value.to(device), persistent=False)
        self.__dict__.pop("_structure_tuple", None)

    @property
    def structure(self) -> CSRStructure:
        # Built once from the buffers (six module-attribute lookups are ~4 us, 2% of a small layer's
        # step) and dropped whenever they are replaced: _set_structure and _apply (.to(), .half(), ...).
        s = self.__dict__.get("_structure_tuple")
        if s is None:
            s = CSRStructure(self._crow, self._col, self._t_crow, self._t_col, self._t_perm, self._t_inv, self.num_nodes,
                             self.num_nodes)
            self.__dict__["_structure_tuple"] = s
        return s

    def _apply(self, fn: Any, recurse: bool = True) -> Any:
        self.__dict__.pop("_structure_tuple", None)
        return super()._apply(fn, recurse)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_structure_tuple", None)  # a view of the buffers, rebuilt on first use
        return state

    def in_degree(self) -> Tensor:
        """``[N]``: edges entering each node."""
        return self._crow.diff()

    def check_node_features(self, x: Any) -> None:
        """``ValueError`` unless ``x`` is ``[..., N]``; ``TypeError`` unless it is floating point."""
        n, name = self.num_nodes, type(self).__name__
        if not isinstance(x, Tensor) or x.dim() == 0 or x.shape[-1] != n:
            got = format_shape(tuple(x.shape)) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name} input must have shape [..., {n}] (one entry per graph node), got {got}")
        if not x.is_floating_point():
            raise TypeError(f"{name} input must be floating point, got dtype {x.dtype}")

    def edge_linear(self, edge_values: Tensor, x: Tensor) -> Tensor:
        """``y [..., N]`` for ``x [..., N]`` with ``edge_values [E]`` on the edges (plus the bias)."""
        n = self.num_nodes
        lead = x.shape[:-1]
        # The kernel returns a transposed view of node-major memory: stacked layers (and
        # element-wise ops between them) never copy to change layout.
        return self.add_bias(edge_weighted_spmm(edge_values, x.reshape(-1, n), self.structure)).reshape(*lead, n)

    def add_bias(self, out: Tensor) -> Tensor:
        """``out [B, N]`` plus the bias (if any) in ``out``'s dtype; element-wise, so a transposed view of
        node-major memory stays one."""
        if self.bias is None:
            return out
        return out + (self.bias if self.bias.dtype == out.dtype else self.bias.to(out.dtype))


class WSLinear(MessagePassing, EdgeWeightedLinear):
    r"""A linear layer whose connections are the edges of a graph: one weight per directed edge.

    The sparse drop-in for the notebook's masked dense layer
    ``F.linear(x, W * mask, b)``, over scalar nodes (one feature channel per
    node), with features last like :class:`torch.nn.Linear`:

    .. math::
        \mathbf{y} = (\mathbf{W} \odot \mathbf{M})\,\mathbf{x} + \mathbf{b},
        \qquad\text{node-wise}\qquad
        y_t = \sum_{s \in \mathcal{N}(t)} w_{s \to t} \, x_s + b_t

    It stores only the :math:`E` edge weights (``weight[e]`` belongs to edge
    ``graph.edge_index[:, e]``, source row 0, target row 1), so memory is
    linear in :math:`E` and :math:`N = 65{,}536` nodes fit where the dense
    weight alone would take 17 GB.

    Two equivalent paths compute it:

    * ``fuse=True`` (default; PyG's ``MessagePassing.fuse``): every call goes
      through :meth:`message_and_aggregate`, a custom autograd function on
      torch's own sparse kernels: CSR SpMM forward, SpMM with the transposed
      values for the input gradient, and :func:`torch.sparse.sampled_addmm`
      (SDDMM) for the edge-weight gradient. Data is kept node-major ``[N, B]``
      inside (one transpose in, one out). :meth:`forward` calls it directly
      with the layer's CSR structure (``propagate``'s argument collection
      costs ~0.1 ms a call, a third of the whole layer at :math:`N = 192`);
      ``propagate`` calls it too when given the transposed adjacency as a
      torch sparse tensor, as for any fused PyG layer (see
      :meth:`adj_t`), and so does :meth:`forward` while a
      ``message_and_aggregate`` hook is registered.
    * ``fuse=False``: PyG's generic :meth:`message` / ``aggregate`` (gather
      ``x[src]`` to ``[E, B]``, scale, scatter-add), the reference path. A
      ``fuse=True`` layer takes it by itself in PyG's explain mode and while
      a propagate / message / aggregate hook is registered.

    The output has the shape of the input but is a transposed view of
    node-major memory (not contiguous), so that stacked ``WSLinear`` layers
    and element-wise ops between them never copy to change layout; call
    ``.contiguous()`` (or use ``reshape`` rather than ``view``) if you need
    contiguous memory.

    **The edge set is state.** ``edge_index`` is a buffer saved in
    :meth:`state_dict`, so a layer whose edges were changed (by
    :meth:`set_edge_index`, e.g. through :func:`~wsfusion.topology.rewire_`)
    and saved loads into a fresh layer built on the original graph and
    computes the same function: loading replaces the fresh layer's edges (and
    ``graph``) with the saved ones. State dicts written before the edge set
    was saved (no ``edge_index`` key) load onto the layer's current edges.

    Initialisation (:meth:`reset_parameters`):
    :math:`w_{s \to t} \sim \mathcal{U}(-\sqrt{3/d_t}, \sqrt{3/d_t})` with
    :math:`d_t` the actual in-degree of :math:`t`, so a unit-variance input
    gives unit-variance outputs whatever :math:`N` is; bias zero.

    Args:
        graph (CrossModalGraph): The connectivity (any edge set sorted by
            target then source without duplicates, e.g. a WS graph with or
            without self-loops).
        bias (bool, optional): Learn a bias per node. (default: :obj:`False`)
        fuse (bool, optional): Fuse message and aggregation into the CSR
            kernels of :meth:`message_and_aggregate` (:obj:`False`: the
            reference message path). (default: :obj:`True`)

    Shapes:
        - **input:** :math:`(*, N)`
        - **output:** :math:`(*, N)`

    Example:
        >>> graph = ws_cross_modal_graph({"visual": 64, "text": 64, "audio": 64}, k=6, beta=0.3, seed=42)
        >>> layer = WSLinear(graph)
        >>> layer(torch.randn(32, 192)).shape
        torch.Size([32, 192])
    """

    def __init__(self, graph: CrossModalGraph, bias: bool = False, fuse: bool = True) -> None:
        super().__init__(aggr="add", node_dim=0)
        if not isinstance(graph, CrossModalGraph):
            raise TypeError(f"WSLinear needs a CrossModalGraph, got {type(graph).__name__}")
        self.graph = graph
        self.num_nodes = graph.num_nodes
        self.fuse = bool(fuse)
        edge_index = graph.edge_index
        self.weight = nn.Parameter(torch.empty(edge_index.shape[1]))
        self.bias = nn.Parameter(torch.empty(self.num_nodes)) if bias else None
        self.register_buffer("edge_index", edge_index.clone())
        self._set_structure(edge_index)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        in_degree_uniform_(self.weight, self.in_degree()[self.edge_index[1]])
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    @torch.no_grad()
    def set_edge_index(self, edge_index: Tensor) -> None:
        """Make ``edge_index`` the layer's edge set: ``weight[e]`` then belongs to its edge ``e``.

        The weights are not touched (reorder them first, as
        :func:`~wsfusion.topology.rewire_` does, which also remaps optimiser
        state); ``graph``, the ``edge_index`` buffer and the CSR structure are
        rebuilt. A symmetric edge set gives a normal :class:`CrossModalGraph`,
        an asymmetric one a directed edge set stored in it (its undirected
        exports then see the union of both directions).

        Args:
            edge_index (LongTensor ``[2, E]``): directed edges (row 0 source,
                row 1 target) in any column order, without duplicates;
                :math:`E` must equal ``weight.numel()``.
        """
        n = self.num_nodes
        ei = canonical_edge_index(edge_index, n, symmetric=False)
        if ei.size(1) != self.weight.numel():
            raise ValueError(
                f"set_edge_index needs as many edges as the layer has weights ({self.weight.numel()}), got "
                f"{ei.size(1)}; change the weight first (rewire_ does both)"
            )
        old = self.graph
        meta = dict(order=old.order, ring_order=old.ring_order, seed=old.seed, vocabulary=old.vocabulary)
        if is_symmetric(ei, n):
            self.graph = CrossModalGraph.from_edge_index(ei, dict(old.node_counts), **meta)
        else:
            self.graph = CrossModalGraph(ei, dict(old.node_counts), _validated=True, **meta)
        self.edge_index = ei.to(self.edge_index.device)
        self._set_structure(ei)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        key = prefix + "edge_index"
        saved = state_dict.get(key)
        if saved is None:
            state_dict[key] = self.edge_index  # saved before the edge set was state: the current edges
        elif saved.shape != self.edge_index.shape or not torch.equal(saved.to(self.edge_index.device), self.edge_index):
            weight = state_dict.get(prefix + "weight")
            if weight is not None and weight.numel() != self.weight.numel():
                # A rewiring that changed the edge count: the loaded weight needs its own size
                # (build the optimiser after loading).
                self.weight = nn.Parameter(self.weight.new_empty(weight.shape))
            self.set_edge_index(saved.cpu())
        super()._load_from_state_dict(state_dict, prefix, *args)

    def forward(self, x: Tensor) -> Tensor:
        self.check_node_features(x)
        n = self.num_nodes
        lead = x.shape[:-1]
        if takes_kernel_path(self):
            # message_and_aggregate called directly: propagate's argument collection costs
            # ~0.1 ms a call, a third of the whole layer at N=192. Transposes are views here.
            out = self.message_and_aggregate(self.structure, x.reshape(-1, n).t(), self.weight).t()
            return self.add_bias(out).reshape(*lead, n)
        dtype = compute_dtype(self.weight, x)
        x_nodes = node_major(x.reshape(-1, n).to(dtype))
        if self.fuse and not self.explain and self._message_and_aggregate_hooks_only():
            # PyG's own fused propagate: message_and_aggregate (and its hooks) over the sparse adj_t.
            out = self.propagate(self.adj_t(), x=x_nodes, edge_weight=self.weight.to(dtype))
        else:
            out = self.propagate(self.edge_index, x=x_nodes, edge_weight=self.weight.to(dtype), size=(n, n))
        return self.add_bias(out.t()).reshape(*lead, n)

    def _message_and_aggregate_hooks_only(self) -> bool:
        fused_hooks = ("_message_and_aggregate_forward_pre_hooks", "_message_and_aggregate_forward_hooks")
        others = [h for h in _PROPAGATE_HOOKS if h not in fused_hooks]
        return any(getattr(self, h) for h in fused_hooks) and not any(getattr(self, h) for h in others)

    def adj_t(self) -> Tensor:
        """The transposed adjacency as a torch sparse CSR tensor ``[N, N]`` (row = target, column = source,
        values 1), the ``edge_index`` argument under which ``propagate`` runs :meth:`message_and_aggregate`."""
        s = self.structure
        return csr_tensor(s.crow, s.col, torch.ones(s.col.numel(), device=s.col.device), (self.num_nodes, self.num_nodes))

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.unsqueeze(-1) * x_j

    def message_and_aggregate(self, adj_t: CSRStructure | Tensor, x: Tensor, edge_weight: Tensor) -> Tensor:
        r"""Message and aggregation in one step, :math:`\mathbf{Y} = (\mathbf{W} \odot \mathbf{M})\,\mathbf{X}`
        on the CSR kernels (differentiable in ``x`` and ``edge_weight``).

        Args:
            adj_t (CSRStructure or torch.Tensor): The layer's CSR structure, or
                its transposed adjacency as a torch sparse tensor (:meth:`adj_t`;
                any other edge set is a ``ValueError``, since ``edge_weight``
                follows the layer's edges).
            x (torch.Tensor): Node-major features ``[N, B]`` (PyG's
                ``node_dim=0``).
            edge_weight (torch.Tensor): ``[E]`` in the layer's edge order.

        Returns:
            ``[N, B]``, node-major (contiguous).
        """
        structure = self.structure
        if not isinstance(adj_t, CSRStructure) or adj_t is not structure:
            self._check_adj_t(adj_t)
        return edge_weighted_spmm(edge_weight, x.t(), structure).t()

    def _check_adj_t(self, adj_t: object) -> None:
        n, s = self.num_nodes, self.structure
        if isinstance(adj_t, CSRStructure):
            same = adj_t.num_dst == s.num_dst and torch.equal(adj_t.crow, s.crow) and torch.equal(adj_t.col, s.col)
        elif isinstance(adj_t, Tensor) and adj_t.layout in (torch.sparse_csr, torch.sparse_coo) and \
                tuple(adj_t.shape) == (n, n):
            csr = adj_t if adj_t.layout == torch.sparse_csr else adj_t.coalesce().to_sparse_csr()
            crow, col = csr.crow_indices(), csr.col_indices()
            same = col.numel() == s.col.numel() and torch.equal(crow.to(s.crow), s.crow) and torch.equal(col.to(s.col), s.col)
        else:
            got = format_shape(tuple(adj_t.shape)) if isinstance(adj_t, Tensor) else type(adj_t).__name__
            raise ValueError(f"WSLinear.message_and_aggregate needs the layer's adj_t (a sparse [{n}, {n}] tensor, "
                             f"WSLinear.adj_t()), got {got}")
        if not same:
            raise ValueError("WSLinear.message_and_aggregate: adj_t must hold the layer's own edges (edge_weight "
                             "follows them); use WSLinear.adj_t()")

    @classmethod
    def from_dense(cls, weight: Tensor, graph: CrossModalGraph, bias: Tensor | None = None, fuse: bool = True) -> WSLinear:
        """Keep the entries of a dense ``[N, N]`` weight (``weight[target, source]``) that lie on the graph.

        Entries off the graph are dropped, exactly as the mask does.
        """
        n = graph.num_nodes
        if not isinstance(weight, Tensor) or tuple(weight.shape) != (n, n):
            got = format_shape(tuple(weight.shape)) if isinstance(weight, Tensor) else type(weight).__name__
            raise ValueError(f"from_dense needs a weight of shape [{n}, {n}] (target, source), got {got}")
        if bias is not None and (not isinstance(bias, Tensor) or tuple(bias.shape) != (n,)):
            got = format_shape(tuple(bias.shape)) if isinstance(bias, Tensor) else type(bias).__name__
            raise ValueError(f"from_dense needs a bias of shape [{n}], got {got}")
        layer = cls(graph, bias=bias is not None, fuse=fuse).to(device=weight.device, dtype=weight.dtype)
        src, dst = layer.edge_index
        with torch.no_grad():
            layer.weight.copy_(weight[dst, src])
            if bias is not None:
                layer.bias.copy_(bias)
        return layer

    def to_dense(self) -> Tensor:
        """The dense ``[N, N]`` weight (``[target, source]``), zero off the graph."""
        src, dst = self.edge_index
        dense = self.weight.new_zeros(self.num_nodes, self.num_nodes)
        dense[dst, src] = self.weight.detach()
        return dense

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_nodes={self.num_nodes}, num_edges={self.weight.numel()}, "
            f"bias={self.bias is not None}, fuse={self.fuse})"
        )

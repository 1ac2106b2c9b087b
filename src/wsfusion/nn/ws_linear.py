from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from wsfusion._validation import format_shape
from wsfusion.graphs import CrossModalGraph
from wsfusion.nn._sparse import CSRStructure, csr_structure, edge_weighted_spmm, node_major
from wsfusion.nn.init import in_degree_uniform_


class WSLinear(MessagePassing):
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

    * ``fused=True`` (default): :meth:`message_and_aggregate` runs a custom
      autograd function on torch's own sparse kernels: CSR SpMM forward, SpMM
      with the transposed values for the input gradient, and
      :func:`torch.sparse.sampled_addmm` (SDDMM) for the edge-weight gradient.
      Data is kept node-major ``[N, B]`` inside (one transpose in, one out).
    * ``fused=False``: PyG's generic :meth:`message` / ``aggregate`` (gather
      ``x[src]`` to ``[E, B]``, scale, scatter-add), the reference path.

    The output has the shape of the input but is a transposed view of
    node-major memory (not contiguous), so that stacked ``WSLinear`` layers
    and element-wise ops between them never copy to change layout; call
    ``.contiguous()`` (or use ``reshape`` rather than ``view``) if you need
    contiguous memory.

    Initialisation (:meth:`reset_parameters`):
    :math:`w_{s \to t} \sim \mathcal{U}(-\sqrt{3/d_t}, \sqrt{3/d_t})` with
    :math:`d_t` the actual in-degree of :math:`t`, so a unit-variance input
    gives unit-variance outputs whatever :math:`N` is; bias zero.

    Args:
        graph (CrossModalGraph): The connectivity (any edge set sorted by
            target then source without duplicates, e.g. a WS graph with or
            without self-loops).
        bias (bool, optional): Learn a bias per node. (default: :obj:`False`)
        fused (bool, optional): Use the sparse-kernel path. (default: :obj:`True`)

    Shapes:
        - **input:** :math:`(*, N)`
        - **output:** :math:`(*, N)`

    Example:
        >>> graph = ws_cross_modal_graph({"visual": 64, "text": 64, "audio": 64}, k=6, beta=0.3, seed=42)
        >>> layer = WSLinear(graph)
        >>> layer(torch.randn(32, 192)).shape
        torch.Size([32, 192])
    """

    def __init__(self, graph: CrossModalGraph, bias: bool = False, fused: bool = True) -> None:
        super().__init__(aggr="add", node_dim=0)
        if not isinstance(graph, CrossModalGraph):
            raise TypeError(f"WSLinear needs a CrossModalGraph, got {type(graph).__name__}")
        self.graph = graph
        self.num_nodes = graph.num_nodes
        self.fused = fused
        edge_index = graph.edge_index
        self.weight = nn.Parameter(torch.empty(edge_index.shape[1]))
        self.bias = nn.Parameter(torch.empty(self.num_nodes)) if bias else None
        # Derived from the graph, so not part of the state dict.
        self.register_buffer("edge_index", edge_index.clone(), persistent=False)
        for name, value in csr_structure(edge_index, self.num_nodes)._asdict().items():
            if isinstance(value, Tensor):
                self.register_buffer(f"_{name}", value, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        in_degree_uniform_(self.weight, self.in_degree()[self.edge_index[1]])
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def in_degree(self) -> Tensor:
        """``[N]``: edges entering each node."""
        return self._crow.diff()

    @property
    def structure(self) -> CSRStructure:
        return CSRStructure(self._crow, self._col, self._t_crow, self._t_col, self._t_perm, self.num_nodes, self.num_nodes)

    def forward(self, x: Tensor) -> Tensor:
        n = self.num_nodes
        if not isinstance(x, Tensor) or x.dim() == 0 or x.shape[-1] != n:
            got = format_shape(tuple(x.shape)) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"WSLinear input must have shape [..., {n}] (one entry per graph node), got {got}")
        if not x.is_floating_point():
            raise TypeError(f"WSLinear input must be floating point, got dtype {x.dtype}")
        lead = x.shape[:-1]
        flat = x.reshape(-1, n)
        if self.fused:
            # The kernels want node-major [N, B] memory; the autograd function changes
            # layout at most once each way and returns a transposed view of node-major
            # memory, so stacked layers (and element-wise ops between them) never copy.
            # message_and_aggregate is called directly: propagate's argument collection
            # costs ~0.1 ms a call, a third of the whole layer at N=192.
            out = self.message_and_aggregate(None, flat, self.weight)
        else:
            out = self.propagate(self.edge_index, x=node_major(flat), edge_weight=self.weight, size=(n, n)).t()
        if self.bias is not None:
            out = out + self.bias  # element-wise ops keep the node-major memory layout
        return out.reshape(*lead, n)

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.unsqueeze(-1) * x_j

    def message_and_aggregate(self, adj_t: Tensor | None, x: Tensor, edge_weight: Tensor) -> Tensor:
        # x is [B, N] here (features last), see forward; the structure is the layer's own graph.
        return edge_weighted_spmm(edge_weight, x, self.structure)

    @classmethod
    def from_dense(cls, weight: Tensor, graph: CrossModalGraph, bias: Tensor | None = None, fused: bool = True) -> WSLinear:
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
        layer = cls(graph, bias=bias is not None, fused=fused).to(device=weight.device, dtype=weight.dtype)
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
            f"bias={self.bias is not None}, fused={self.fused})"
        )

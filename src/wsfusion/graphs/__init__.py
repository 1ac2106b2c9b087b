"""Watts-Strogatz cross-modal graphs: construction, exports, metrics and plots.

>>> from wsfusion.graphs import ws_cross_modal_graph
>>> g = ws_cross_modal_graph({"visual": 64, "text": 64, "audio": 64}, k=6, beta=0.3, seed=42)
>>> g.stats()["num_edges"]
576

Importing this package pulls in torch and numpy only; networkx, scipy,
torch_geometric and matplotlib are imported by the functions that need them.
"""

from wsfusion.graphs.plot import plot_graph, plot_mask
from wsfusion.graphs.ws import (
    ORDERS,
    CrossModalGraph,
    interleaved_ring_order,
    token_graph,
    ws_cross_modal_graph,
)

__all__ = [
    "ORDERS",
    "CrossModalGraph",
    "interleaved_ring_order",
    "plot_graph",
    "plot_mask",
    "token_graph",
    "ws_cross_modal_graph",
]

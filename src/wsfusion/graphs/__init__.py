"""Watts-Strogatz cross-modal graphs: construction, exports, metrics and plots.

>>> from wsfusion.graphs import ws_cross_modal_graph
>>> g = ws_cross_modal_graph({"visual": 64, "text": 64, "audio": 64}, k=6, beta=0.3, seed=42)
>>> g.stats()["num_edges"]
576

Modules: :mod:`~wsfusion.graphs.graph` (the :class:`CrossModalGraph`
container), :mod:`~wsfusion.graphs.builders` (:func:`ws_cross_modal_graph`,
:func:`token_graph`, :func:`ring_lattice`), :mod:`~wsfusion.graphs.convert`
(``to_*`` / ``from_*``), :mod:`~wsfusion.graphs.metrics` (``stats``) and
:mod:`~wsfusion.graphs.plot`.

Importing this package pulls in torch and numpy only; networkx, scipy,
torch_geometric and matplotlib are imported by the functions that need them.
"""

from wsfusion.graphs.builders import (
    ORDERS,
    interleaved_ring_order,
    ring_lattice,
    token_graph,
    ws_cross_modal_graph,
)
from wsfusion.graphs.graph import CrossModalGraph
from wsfusion.graphs.plot import plot_graph, plot_mask
from wsfusion.graphs.topologies import (
    available,
    bigbird_graph,
    build,
    hub_graph,
    hub_nodes,
    lattice_graph,
    moore_bound,
    random_graph,
    reach,
)

__all__ = [
    "ORDERS",
    "CrossModalGraph",
    "available",
    "bigbird_graph",
    "build",
    "hub_graph",
    "hub_nodes",
    "interleaved_ring_order",
    "lattice_graph",
    "moore_bound",
    "plot_graph",
    "plot_mask",
    "random_graph",
    "reach",
    "ring_lattice",
    "token_graph",
    "ws_cross_modal_graph",
]

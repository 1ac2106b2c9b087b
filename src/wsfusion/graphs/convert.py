r"""Conversions between :class:`~wsfusion.graphs.CrossModalGraph` and other graph formats, as free functions.

PyG-style free functions, each the inverse of its partner:

=================================  ===================================
export                             import
=================================  ===================================
:func:`to_dense_mask`              :func:`from_dense_mask`
:func:`to_scipy`                   :func:`from_scipy`
:func:`to_networkx`                :func:`from_networkx`
:func:`to_pyg`                     :func:`from_pyg`
:func:`to_hetero`                  :func:`from_hetero`
(``graph.edge_index``)             :func:`from_edge_index`
=================================  ===================================

They are the methods ``CrossModalGraph.to_*`` / ``CrossModalGraph.from_*``
themselves: ``convert.to_networkx(g)`` is ``g.to_networkx()`` and
``convert.from_networkx(G)`` is ``CrossModalGraph.from_networkx(G)``.  The
implementation lives in :mod:`wsfusion.graphs._formats`, below the class, so
that no module of the package imports one that imports it back.
networkx, scipy and torch_geometric are imported by the functions that need
them.

Every export carries the relation vocabulary (:attr:`CrossModalGraph.vocabulary`)
and every import reads it back; the imports that take ``**meta`` also accept
``vocabulary=`` to set one.

Example:
    >>> from wsfusion.graphs import ws_cross_modal_graph
    >>> from wsfusion.graphs.convert import from_networkx, to_networkx
    >>> g = ws_cross_modal_graph({"visual": 6, "audio": 6}, k=4, seed=0)
    >>> from_networkx(to_networkx(g)) == g
    True
"""

from __future__ import annotations

from wsfusion.graphs._formats import HETERO_RELATION, to_dense_mask, to_hetero, to_networkx, to_pyg, to_scipy
from wsfusion.graphs.graph import CrossModalGraph

__all__ = [
    "HETERO_RELATION",
    "from_dense_mask",
    "from_edge_index",
    "from_hetero",
    "from_networkx",
    "from_pyg",
    "from_scipy",
    "to_dense_mask",
    "to_hetero",
    "to_networkx",
    "to_pyg",
    "to_scipy",
]

from_edge_index = CrossModalGraph.from_edge_index
from_dense_mask = CrossModalGraph.from_dense_mask
from_scipy = CrossModalGraph.from_scipy
from_networkx = CrossModalGraph.from_networkx
from_pyg = CrossModalGraph.from_pyg
from_hetero = CrossModalGraph.from_hetero

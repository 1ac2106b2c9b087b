"""Compatibility module: the old home of the graph code, now split by concern.

* :mod:`wsfusion.graphs.graph`: :class:`CrossModalGraph`;
* :mod:`wsfusion.graphs.builders`: :func:`ws_cross_modal_graph`,
  :func:`token_graph`, :func:`ring_lattice`, :func:`interleaved_ring_order`;
* :mod:`wsfusion.graphs.convert`: ``to_*`` / ``from_*``;
* :mod:`wsfusion.graphs.metrics`: ``stats``.

Kept so that ``from wsfusion.graphs.ws import ...`` and graphs pickled
before the split (whose reducer is ``wsfusion.graphs.ws._rebuild``) still
load.  New code should import from :mod:`wsfusion.graphs`.
"""

# Re-exports for old imports (private names included: wsfusion.topology used them).
# ruff: noqa: F401
from wsfusion.graphs._checks import (
    ORDERS,
    _check_beta,
    _check_k,
    _check_nodes,
    _check_order,
    _check_seed,
    _is_int,
)
from wsfusion.graphs._edges import canonical_edge_index as _canonical_edge_index
from wsfusion.graphs.builders import interleaved_ring_order, ring_lattice, token_graph, ws_cross_modal_graph
from wsfusion.graphs.convert import HETERO_RELATION
from wsfusion.graphs.graph import CrossModalGraph, _rebuild
from wsfusion.graphs.metrics import _average_path_length

__all__ = ["CrossModalGraph", "ws_cross_modal_graph", "token_graph", "ORDERS"]

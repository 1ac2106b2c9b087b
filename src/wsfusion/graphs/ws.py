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

# ruff: noqa: F401
from wsfusion.graphs._checks import ORDERS
from wsfusion.graphs.builders import interleaved_ring_order, ring_lattice, token_graph, ws_cross_modal_graph
from wsfusion.graphs.graph import CrossModalGraph, _rebuild

__all__ = ["CrossModalGraph", "ws_cross_modal_graph", "token_graph", "ORDERS"]

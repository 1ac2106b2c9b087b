"""Learned topologies: connectivity that training can change.

* Learnable beta: :class:`LearnableWSGraph` (a WS graph whose rewiring
  probability is trained through relaxed Bernoulli edge gates) and
  :class:`LearnableWSLinear` (a ``WSLinear`` on it, drop-in for ``SparseWSFusion``).
* :func:`rewire_`: change a ``WSLinear``'s edge set in place, optimizer state included.

This package depends only on :mod:`wsfusion.graphs` and :mod:`wsfusion.nn`. The
training callbacks that drive it, ``TemperatureSchedule`` (anneals the gates)
and ``Rewirer`` (SET / RigL), live in :mod:`wsfusion.train`.
"""

from wsfusion.topology.learnable import LearnableWSGraph, learnable_options
from wsfusion.topology.learnable_linear import LearnableWSLinear
from wsfusion.topology.rewire import rewire_

__all__ = ["LearnableWSGraph", "LearnableWSLinear", "learnable_options", "rewire_"]

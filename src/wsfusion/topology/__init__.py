"""Learned and dynamic topologies.

* Learnable beta: :class:`LearnableWSGraph` (a WS graph whose rewiring
  probability is trained through relaxed Bernoulli edge gates) and
  :class:`LearnableWSLinear` (a ``WSLinear`` on it, drop-in for ``SparseWSFusion``);
  :class:`TemperatureSchedule` anneals the gates' temperature during training.
* Dynamic sparse rewiring: :class:`Rewirer` (SET / RigL training callback) and
  :func:`rewire_` (change a ``WSLinear``'s edge set in place, optimizer state included).
"""

from wsfusion.topology.learnable import LearnableWSGraph, LearnableWSLinear
from wsfusion.topology.rewire import MODES, Rewirer, rewire_
from wsfusion.topology.schedule import TemperatureSchedule

__all__ = ["LearnableWSGraph", "LearnableWSLinear", "TemperatureSchedule", "Rewirer", "rewire_", "MODES"]

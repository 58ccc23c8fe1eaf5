"""Stage 7, search: the genetic search (``genetic``), everything a search on one target
loads (``context``), the ``search`` command's job (``job``) and its report and plot.

In: a space, latency predictors, the accuracy journal. Out: the best architecture under a
budget, its Pareto front, exported artefacts. Depends on ``latency``, ``accuracy``,
``deploy``, ``measure``, ``lower``, ``space``, ``core``."""

"""Stage 7, search: the genetic search (``genetic``), everything a search on one target
loads (``context``), what the GP's uncertainty says about a result (``uncertainty``), and
the ``search`` command's text report and plot (``report``; its job is steps of
``pipeline``).

In: a space, latency predictors, the accuracy journal. Out: the best architecture under a
budget and its Pareto front. Depends on ``latency``, ``accuracy``, ``lower``, ``table``,
``tuning``, ``space``, ``core``."""

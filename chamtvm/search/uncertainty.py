"""What the accuracy predictor's own uncertainty says about a search result.

* :func:`beats_runner_up`: the GP's posterior probability that the chosen network is more
  accurate than the runner-up (the best other feasible network the search evaluated), from
  the joint posterior of the two (their correlation included);
* :func:`front_flatness`: whether the predicted accuracies along the Pareto front differ
  by less than the GP's own standard deviation there, i.e. whether the accuracy predictor
  carries information the search can act on. When it does not ("flat"), a search result
  is in effect a latency-only choice, and the report says so.
* :func:`lcb`: a lower confidence bound ``mean - kappa * std`` for a risk-averse search.

All accuracies are fractions; ``indices`` are rows of choice indices ``(N, D)``.
"""

from __future__ import annotations

import numpy as np


def _features(space, indices) -> np.ndarray:
    from ..accuracy.encoding import accuracy_features

    return accuracy_features(space, np.atleast_2d(np.asarray(indices, dtype=np.int64)))


def beats_runner_up(gp, space, best_indices, runner_up_indices) -> float | None:
    """P(accuracy(best) > accuracy(runner-up)) under the GP posterior; None without a runner-up."""
    if runner_up_indices is None:
        return None
    return float(gp.prob_greater(_features(space, best_indices), _features(space, runner_up_indices))[0])


def front_flatness(gp, space, front_indices) -> dict:
    """``{"spread_points", "gp_std_points", "flat"}``: the range of predicted accuracies
    over the front (points) against the median GP standard deviation there (points);
    ``flat`` when the range is smaller than that std (the predictor cannot tell the
    front's networks apart)."""
    X = _features(space, front_indices)
    mean, std = gp.predict(X, return_std=True)
    spread = float(100 * (mean.max() - mean.min()))
    sd = float(100 * np.median(std))
    return {"spread_points": spread, "gp_std_points": sd, "flat": bool(len(X) >= 2 and spread < sd),
            "front_size": int(len(X))}


FLAT_FRONT = ("flat accuracy predictor: {where}the front's predicted accuracies differ by less than the GP's own "
              "std, so {what}")


def flat_front_warning(budgets_ms: list[float] | None = None) -> str:
    """The one text of the flat-front warning: for the picks at ``budgets_ms`` (the main job),
    or for the one pick of the ``search`` command (None)."""
    if budgets_ms is None:
        return FLAT_FRONT.format(where="", what="this pick is in effect a latency-only choice")
    return FLAT_FRONT.format(where=f"at budgets {budgets_ms} ms ", what="those picks are in effect latency-only choices")


def lcb(gp, space, indices, kappa: float) -> np.ndarray:
    """``(N,)`` lower confidence bound of the accuracy: posterior mean - ``kappa`` * std."""
    mean, std = gp.predict(_features(space, indices), return_std=True)
    return mean - kappa * std

"""The picks priced after their tuning (step ``measure picks``): in-network kernel times and
a residual refitted on *tuning networks*.

The residual of step ``models`` is fitted on training networks timed before the picks' own
kernels were tuned. The tuning makes those kernels several times faster, and the table sum of a
network of heavily tuned kernels misses by more than before: rows are timed inside batch
networks (``lower.batchnet``), which run a tuned kernel about as cold as with its weights
flushed from the caches, while a small network of the space runs it about warm
(``docs/latency-fidelity.md``, *Heavily tuned picks*).

So, in the same round-robin batch as the picks, step ``measure picks`` also times tuning
networks: the job's training networks rebuilt with the schedules after the tuning, and a few
neighbours of each pick (one or two choices changed: they share most of its kernels). Each
tuning network is then also timed call by call (``table.in_network``), and every kernel that
ran inside one is priced by its median in-network time (``InNetworkTable``). The residual is
fitted again on the tuning networks, never on a pick, with the job's residual mode (``auto``:
chosen by cross-validation on them), and the picks are priced by that table and residual. A
pick is never timed call by call for its own price.
"""

from __future__ import annotations

import numpy as np

from ..latency.models import LatencyPredictor, fit_residual, network_training_set

NEIGHBOURS_PER_PICK = 4  # the default of --pick-neighbours
MIN_NETWORKS = 8         # fewer measured tuning networks: the search's residual stays


def neighbour_archs(space, pick_archs, per_pick: int, seed: int) -> list:
    """``per_pick`` distinct architectures near each of ``pick_archs`` (``space.mutate``: each
    choice resampled with probability 0.1, at least one), none equal to a pick or to another;
    seeded by ``seed``. Fewer where the space has fewer neighbours."""
    rng = np.random.default_rng(seed)
    taken = {a.to_json() for a in pick_archs}
    out = []
    for arch in pick_archs:
        got, tries = 0, 0
        while got < per_pick and tries < 50 * per_pick:
            tries += 1
            n = space.mutate(arch, rng, prob=0.1)
            if n.to_json() in taken:
                continue
            taken.add(n.to_json())
            out.append(n)
            got += 1
    return out


def refit_residual(priced, predictor: LatencyPredictor, target_fingerprint: str, mode: str
                   ) -> tuple[LatencyPredictor | None, dict]:
    """``(predictor, selection)``: ``predictor``'s table and kernel model with a residual fitted
    on the measured networks of ``priced`` (``pricing.PricedNetwork``), and how it was chosen
    (``latency.models.fit_residual``'s dict, plus ``networks``). ``(None, selection)`` when fewer
    than ``MIN_NETWORKS`` of them were measured."""
    X, sums, meas, _keys = network_training_set(_Rows([p.row for p in priced if p.ok]), predictor.table,
                                                target_fingerprint)
    if len(meas) < MIN_NETWORKS:
        return None, {"chosen": None, "networks": len(meas),
                      "why": f"{len(meas)} tuning networks measured (fewer than {MIN_NETWORKS}): the search's "
                             "residual prices the picks"}
    residual, selection = fit_residual(X, sums, meas, mode)
    selection["networks"] = len(meas)
    selection["table_sum_error_pct"] = float(100 * np.mean(sums / meas - 1))
    return LatencyPredictor(predictor.table, predictor.kernel_model, residual), selection


class _Rows:
    """The network rows of ``priced`` as the minimal journal ``network_training_set`` reads."""

    def __init__(self, rows):
        self._rows = rows

    def rows(self):
        return iter(self._rows)

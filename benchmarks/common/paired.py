"""Paired differences and their spread, for benchmarks that compare two methods seed by seed,
and for those that replicate a whole method (each replicate holding several seeds)."""

from __future__ import annotations

import numpy as np


def summary(v) -> dict:
    """``n``, mean, std (population), min, max, median of the values that are not None."""
    v = np.asarray([x for x in v if x is not None], dtype=float)
    if not len(v):
        return {"n": 0}
    return {"n": int(len(v)), "mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()),
            "max": float(v.max()), "median": float(np.median(v))}


def paired_summary(d) -> dict:
    """``summary`` of paired differences (one per seed) and whether they are told apart from 0:
    ``positive`` / ``negative`` (seeds above / below 0), ``ci95`` (the mean's two-sided 95 %
    t-interval, sample std), ``sign_test_p`` (two-sided, ties dropped) and
    ``wilcoxon_p`` (two-sided signed-rank; None under 6 non-zero differences)."""
    from scipy import stats

    v = np.asarray([x for x in d if x is not None], dtype=float)
    out = summary(v)
    if len(v) < 2:
        return out
    pos, neg = int((v > 0).sum()), int((v < 0).sum())
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    out.update(positive=pos, negative=neg, ci95=[float(v.mean()) - half, float(v.mean()) + half],
               sign_test_p=float(stats.binomtest(pos, pos + neg).pvalue) if pos + neg else None,
               wilcoxon_p=float(stats.wilcoxon(v[v != 0]).pvalue) if pos + neg >= 6 else None)
    return out


def replicated(per_replicate: list[list[float]]) -> dict:
    """Paired differences of a replicated method: ``per_replicate[r]`` holds replicate ``r``'s
    differences, one per seed (a replicate that has none is left out).

    ``per_replicate``: each replicate's ``paired_summary``; ``across_replicates``: the
    replicate means as the sample (the replicate is the unit: ``ci95`` is the t-interval over
    replicates, df = replicates - 1), with how many replicates came out below, at and above 0;
    ``pooled``: every difference as one sample (too narrow an interval when the seeds of a
    replicate share what makes it a replicate)."""
    reps = [[x for x in r if x is not None] for r in per_replicate]
    reps = [r for r in reps if r]
    if not reps:
        return {"replicates": 0}
    means = [float(np.mean(r)) for r in reps]
    across = paired_summary(means)
    across.update(replicates=len(reps), below_zero=sum(m < 0 for m in means), zero=sum(m == 0 for m in means),
                  above_zero=sum(m > 0 for m in means))
    return {"replicates": len(reps), "across_replicates": across,
            "pooled": paired_summary([x for r in reps for x in r]),
            "per_replicate": [paired_summary(r) for r in reps]}

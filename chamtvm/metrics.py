"""Fidelity metrics of predicted vs measured latencies."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def fidelity(predicted: Sequence[float], measured: Sequence[float]) -> dict:
    """Share within +-5 % and +-10 %, median and mean absolute percentage error (%),
    Kendall tau and Spearman rho of ``predicted`` against ``measured`` (same units)."""
    from scipy import stats

    p = np.asarray(predicted, dtype=float)
    m = np.asarray(measured, dtype=float)
    if len(p) != len(m) or len(p) == 0:
        raise ValueError(f"need equal, non-empty sequences, got {len(p)} and {len(m)}")
    ape = np.abs(p - m) / m * 100.0
    out = {
        "n": int(len(p)),
        "within_5pct": float(np.mean(ape <= 5.0)),
        "within_10pct": float(np.mean(ape <= 10.0)),
        "median_ape_pct": float(np.median(ape)),
        "mape_pct": float(np.mean(ape)),
        "max_ape_pct": float(np.max(ape)),
        "bias_pct": float(np.median((p - m) / m * 100.0)),
    }
    if len(p) >= 3:
        out["kendall_tau"] = float(stats.kendalltau(p, m).statistic)
        out["spearman_rho"] = float(stats.spearmanr(p, m).statistic)
    return out

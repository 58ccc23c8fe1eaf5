"""Figures every benchmark and report uses: prediction fidelity and measurement spread.

In: predicted and measured latencies (same units), or repeat samples. Out: plain dicts
and floats. One spread definition for the whole project: the interquartile range over
the median, in percent (``iqr_spread_pct``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

SPREAD_DEFINITION = "IQR/median, percent"


def iqr_spread_pct(samples: Sequence[float]) -> float:
    """Spread of repeat samples: (75th - 25th percentile) / median, in percent.

    The one spread definition of the project (``SPREAD_DEFINITION``); 0.0 for a single sample."""
    s = np.asarray(samples, dtype=float)
    if s.size == 0:
        raise ValueError("no samples")
    med = float(np.median(s))
    if s.size == 1 or med == 0:
        return 0.0
    q75, q25 = np.percentile(s, [75, 25])
    return float(100 * (q75 - q25) / med)


def spread_pct(row: dict) -> float:
    """Repeat spread (IQR/median, %) of a measured table or network row.

    Uses the row's ``runtime_us_samples``; rows without samples fall back to their
    ``runtime_us_min``/``runtime_us_max`` range over the median (said by the name of the
    field that holds it in old reports)."""
    samples = row.get("runtime_us_samples")
    if samples:
        return iqr_spread_pct(samples)
    return 100 * (row["runtime_us_max"] - row["runtime_us_min"]) / row["runtime_us_p50"]


def error_pct(predicted: float, measured: float) -> float:
    """Prediction error against a measurement, in percent: ``100 * (predicted / measured - 1)``
    (positive: predicted slower than measured). The one error formula of the project."""
    if not measured > 0:
        raise ValueError(f"measured latency must be positive, got {measured}")
    return 100.0 * (predicted / measured - 1.0)


def fidelity(predicted: Sequence[float], measured: Sequence[float]) -> dict:
    """Share within +-5 % and +-10 %, median and mean absolute percentage error (%), the
    median (``bias_pct``) and mean (``mean_error_pct``) signed error (%), Kendall tau and
    Spearman rho (3 or more pairs) of ``predicted`` against ``measured`` (same units)."""
    from scipy import stats

    p = np.asarray(predicted, dtype=float)
    m = np.asarray(measured, dtype=float)
    if len(p) != len(m) or len(p) == 0:
        raise ValueError(f"need equal, non-empty sequences, got {len(p)} and {len(m)}")
    if np.any(m <= 0) or not np.all(np.isfinite(m)) or not np.all(np.isfinite(p)):
        raise ValueError("measured latencies must be positive and finite, predictions finite")
    ape = np.abs(p - m) / m * 100.0
    out = {
        "n": int(len(p)),
        "within_5pct": float(np.mean(ape <= 5.0)),
        "within_10pct": float(np.mean(ape <= 10.0)),
        "median_ape_pct": float(np.median(ape)),
        "mape_pct": float(np.mean(ape)),
        "max_ape_pct": float(np.max(ape)),
        "bias_pct": float(np.median((p - m) / m * 100.0)),
        "mean_error_pct": float(np.mean((p - m) / m * 100.0)),
    }
    if len(p) >= 3:
        out["kendall_tau"] = float(stats.kendalltau(p, m).statistic)
        out["spearman_rho"] = float(stats.spearmanr(p, m).statistic)
    return out

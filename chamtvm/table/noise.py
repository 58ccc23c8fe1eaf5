"""How noisy the measurements behind a table and its held-out networks were: the run's noise,
as the job report states it.

Every row and network row carries what its measurement saw (``measure.timing``): whether it
was taken at the device's nominal speed (``nominal``), the reference time beside it against
the nominal baseline (``reference_us`` / ``reference_baseline_us``), a correction by the slow
factor where no nominal sample came (``corrected_by_slow_factor``), other processes' CPU
(``other_cores``, local targets) and its samples. ``noise_summary`` condenses them.

In: table rows (dicts) of one fingerprint, network rows (dicts with ``runtime_us_samples``).
Out: a JSON-ready dict (shares in [0, 1], spreads in % as IQR/median, times in us).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..core.metrics import iqr_spread_pct


def _spreads(rows: list[dict]) -> list[float]:
    return [iqr_spread_pct(r["runtime_us_samples"]) for r in rows if len(r.get("runtime_us_samples") or []) >= 3]


def _part(rows: list[dict]) -> dict:
    """Noise figures of one group of rows (kernels or networks)."""
    if not rows:
        return {"rows": 0}
    with_ref = [r for r in rows if r.get("nominal") is not None]
    ratios = [r["reference_us"] / r["reference_baseline_us"] for r in rows
              if r.get("reference_us") and r.get("reference_baseline_us")]
    others = [float(r["other_cores"]) for r in rows if isinstance(r.get("other_cores"), (int, float))]
    spreads = _spreads(rows)
    return {
        "rows": len(rows),
        "nominal_share": (sum(1 for r in with_ref if r["nominal"]) / len(with_ref)) if with_ref else None,
        "rows_with_reference": len(with_ref),
        "corrected_by_slow_factor": sum(1 for r in rows if r.get("corrected_by_slow_factor")),
        "reference_over_baseline_median": float(np.median(ratios)) if ratios else None,
        "reference_over_baseline_p90": float(np.percentile(ratios, 90)) if ratios else None,
        "other_cores_median": float(np.median(others)) if others else None,
        "other_cores_max": max(others) if others else None,
        "spread_pct_median": float(np.median(spreads)) if spreads else None,
        "spread_pct_p90": float(np.percentile(spreads, 90)) if spreads else None,
    }


def noise_summary(kernel_rows: Iterable[dict], network_rows: Iterable[dict], reference: dict | None = None) -> dict:
    """The run's noise: ``kernels`` and ``networks`` parts (``_part``), and ``reference``
    (the nominal baselines and slow factors learnt, ``table.reference``) when given."""
    out = {"kernels": _part([r for r in kernel_rows if r.get("status", "ok") == "ok"]),
           "networks": _part([r for r in network_rows if r.get("status", "ok") == "ok"])}
    if reference is not None:
        out["reference"] = reference
    return out


def noise_line(summary: dict) -> str:
    """One sentence for the job's log."""
    parts = []
    for name in ("kernels", "networks"):
        p = summary.get(name) or {}
        if not p.get("rows"):
            continue
        bits = [f"{p['rows']} {name}"]
        if p.get("nominal_share") is not None:
            bits.append(f"{100 * p['nominal_share']:.0f} % at nominal speed")
        if p.get("corrected_by_slow_factor"):
            bits.append(f"{p['corrected_by_slow_factor']} corrected by the slow factor")
        if p.get("spread_pct_median") is not None:
            bits.append(f"spread median {p['spread_pct_median']:.1f} % (IQR/median)")
        if p.get("other_cores_max") is not None:
            bits.append(f"other processes up to {p['other_cores_max']:.2f} cores")
        parts.append(", ".join(bits))
    return "measurement noise: " + ("; ".join(parts) if parts else "no measurement")

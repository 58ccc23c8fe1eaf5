"""Latency prediction of a network as the table sum over its fused kernels."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..table.store import LatencyTable
from ..table.fill import PreparedKernel

STATISTICS = ("runtime_us_p50", "runtime_us_min", "runtime_us_mean")


@dataclass
class Prediction:
    """Predicted latency (ms) with its per-kernel breakdown and the kernels the table lacks."""

    latency_ms: float
    statistic: str
    kernels: list[dict] = field(default_factory=list)
    missing: list[dict] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing

    def to_dict(self) -> dict:
        return {
            "latency_ms": self.latency_ms,
            "statistic": self.statistic,
            "complete": self.complete,
            "kernels": self.kernels,
            "missing": self.missing,
        }


def table_sum(prepared: list[PreparedKernel], table: LatencyTable,
              statistic: str = "runtime_us_p50") -> Prediction:
    """Sum of ``count x latency`` over the kernels found in the table.

    ``statistic`` picks the row field used per kernel. Missing kernels contribute nothing
    and are listed in ``missing`` (with why: never measured, or failed).
    """
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; choose one of {STATISTICS}")
    total_us = 0.0
    kernels, missing = [], []
    for p in prepared:
        k = p.kernel
        row = table.get(p.key)
        entry = {"name": k.name, "key": p.key, "schedule": p.schedule, "count": k.count,
                 "flops": k.flops, "bytes": k.bytes}
        if row is None:
            failed = table.failed(p.key)
            entry["why"] = f"failed: {failed['error']}" if failed else "not in table"
            missing.append(entry)
            continue
        lat = float(row[statistic])
        entry["latency_us"] = lat
        entry["total_us"] = lat * k.count
        total_us += lat * k.count
        kernels.append(entry)
    kernels.sort(key=lambda e: -e["total_us"])
    return Prediction(total_us / 1e3, statistic, kernels, missing)

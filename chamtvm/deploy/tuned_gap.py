"""How far a model priced with default schedules is from the same model tuned.

A prediction for kernels the target's MetaSchedule database has no record for is a
prediction for TVM's default schedules (plain loop nests on CPU), which nobody deploys. The
table itself says how far tuning moved kernels of the same kinds: every kernel with both a
default row and a tuned or transferred row gives a speed-up (default / deployed time).
``predict`` prints this as a note, and ``tune-model`` closes the gap."""

from __future__ import annotations

from statistics import median
from typing import Iterable

from ..lower.kernels import ArgSpec, Kernel
from ..table.store import LatencyTable
from ..tuning.transfer import kernel_kind


def _kind_of_row(row: dict) -> tuple:
    args = tuple(ArgSpec(tuple(a[0]), str(a[1])) for a in row.get("args") or [])
    return kernel_kind(Kernel(row.get("name", ""), row.get("struct_hash", ""), args, float("nan")))


def tuned_speedups(table: LatencyTable, fingerprint: str, statistic: str = "runtime_us_p50") -> dict[tuple, list[float]]:
    """Per kernel kind, the speed-ups (default row time / fastest tuned-or-transferred row
    time) of the table's kernels that have both rows for the target ``fingerprint``."""
    default: dict[str, float] = {}
    tuned: dict[str, tuple[float, tuple]] = {}
    for row in table.rows():
        if row.get("target_fingerprint") != fingerprint or row.get(statistic) is None:
            continue
        h, t = row.get("struct_hash"), float(row[statistic])
        if row.get("schedule", "default") == "default":
            default[h] = t
        elif h not in tuned or t < tuned[h][0]:
            tuned[h] = (t, _kind_of_row(row))
    out: dict[tuple, list[float]] = {}
    for h, (t, kind) in tuned.items():
        if h in default and t > 0:
            out.setdefault(kind, []).append(default[h] / t)
    return out


def default_schedule_note(prepared: Iterable, kernel_us: dict[str, float], table: LatencyTable, fingerprint: str,
                          statistic: str = "runtime_us_p50") -> dict | None:
    """What a prediction priced with default schedules should say, or None when every kernel
    runs a tuned or transferred schedule. ``prepared``: the model's prepared kernels;
    ``kernel_us``: table key -> the kernel's predicted time x calls (us). Returns the share
    of default-scheduled kernels and time, and the speed-ups tuned kernels of the same kinds
    reached in this table (``speedup_median``/``speedup_range``; None when no kind matches)."""
    prepared = list(prepared)
    dflt = [p for p in prepared if p.schedule == "default"]
    if not dflt:
        return None
    total = sum(kernel_us.values()) or 1.0
    share = sum(kernel_us.get(p.key, 0.0) for p in dflt) / total
    by_kind = tuned_speedups(table, fingerprint, statistic)
    kinds = {kernel_kind(p.kernel) for p in dflt}
    ratios = [r for k in kinds for r in by_kind.get(k, [])]
    note = {"default_kernels": len(dflt), "kernels": len(prepared), "default_time_share": share,
            "kinds_with_tuned_kernels": sum(1 for k in kinds if k in by_kind), "default_kinds": len(kinds),
            "tuned_same_kind_kernels": len(ratios),
            "speedup_median": median(ratios) if ratios else None,
            "speedup_range": [min(ratios), max(ratios)] if ratios else None}
    text = (f"note: {len(dflt)} of {len(prepared)} kernels ({100 * share:.0f} % of the predicted time) are priced "
            f"with TVM's default schedules: the figure is for an untuned build, which nobody deploys.")
    if ratios:
        text += (f" In this table, {len(ratios)} tuned kernels of the same kinds run {note['speedup_median']:.1f}x "
                 f"(median; {min(ratios):.1f}-{max(ratios):.1f}x) faster than their defaults.")
    else:
        text += " No kernel of these kinds has been tuned in this table yet."
    note["text"] = text + " Run `python -m chamtvm tune-model MODEL --target T` to price it tuned."
    return note

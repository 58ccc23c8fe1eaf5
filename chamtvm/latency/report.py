"""Text of a prediction for the command line: the figure, its range, and where each
kernel's latency came from (table, measured now, estimated with its interval)."""

from __future__ import annotations


def format_prediction(model: str, target: str, out: dict, table_sum_only: bool = False, top: int = 10) -> str:
    """``out``: the dict of ``Prediction.to_dict`` (table sum) or ``FullPrediction.to_dict``."""
    lines = []
    kernels = out["kernels"]
    if table_sum_only:
        lines.append(f"{model}: predicted {out['latency_ms']:.3f} ms on {target} (table sum, {len(kernels)} kernels)")
    else:
        lo, hi = out.get("latency_ms_range") or (None, None)
        rng = f", range {lo:.3f}-{hi:.3f} ms" if lo is not None and hi is not None and hi > lo else ""
        calls = out.get("calls_by_source", {})
        lines.append(f"{model}: predicted {out['latency_ms']:.3f} ms on {target}{rng} "
                     f"(table sum {out['table_sum_ms']:.3f} ms, residual {out['residual']}, {len(kernels)} kernels)")
        lines.append(f"  kernel calls: {calls.get('table', 0)} from the table, {calls.get('measured_now', 0)} measured "
                     f"now, {calls.get('estimated', 0)} estimated ({out.get('estimated_share', 0) * 100:.0f} % of "
                     f"the time)")
    for k in kernels[:top]:
        src = k.get("source", "table")
        tail = ""
        if src == "estimated":
            tail = f"  estimated, 80 % interval {k['latency_us_low'] * k['count']:.1f}-{k['latency_us_high'] * k['count']:.1f} us"
        elif src == "measured_now":
            tail = "  measured now"
        lines.append(f"  {k['name']:<40} x{k['count']:<3} {k['latency_us'] * k['count']:>10.1f} us{tail}")
    if len(kernels) > top:
        lines.append(f"  ... {len(kernels) - top} more (--json lists all)")
    missing = out.get("missing") or out.get("missing_kernels") or []
    if missing:
        lines.append(f"  MISSING ({len(missing)} kernels not in the table and no kernel model to price them; "
                     f"not counted; --measure-missing measures them)")
    return "\n".join(lines)

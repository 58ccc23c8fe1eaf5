"""Shared reading of ``chamtvm transform --json`` reports for the benchmarks."""

from __future__ import annotations


def prune_report_figures(report: dict, wall_s: float) -> dict:
    """The figures of one ``transform --json`` report that the comparison needs."""
    t, a, d = report["teacher"], report["adapted"], report["details"]
    measured = a["measured"]["latency_ms"]
    return {
        "budget_ms": report["budget_ms"], "teacher_measured_ms": t["measured"]["latency_ms"],
        "teacher_test_accuracy": t.get("test_accuracy"), "predicted_ms": a["predicted_ms"],
        "measured_ms": measured, "under_budget": measured <= report["budget_ms"],
        "prediction_error_pct": 100 * (a["predicted_ms"] - measured) / measured,
        "val_accuracy": a.get("val_accuracy"), "test_accuracy": a.get("test_accuracy"),
        "kept_channels_pct": d.get("kept_channels_pct"),
        "measured_checks": d["solver"].get("measured_checks"),
        "admm_rounds": len(d["solver"].get("rounds") or []) or None, "wall_s": round(wall_s, 1),
    }

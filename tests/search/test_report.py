"""The search command's text report and Pareto plot, from a report dict of the documented shape."""

from chamtvm.search.report import format_search, pareto_plot


def _report(tmp_path, emulated=False, flat=False, measured=True):
    arch = {"resolution": 32, "layers": ["skip", "ir_k3_e3"]}
    return {
        "target": "arm", "space": "macro", "latency_budget_ms": 2.0, "emulated": emulated,
        "device_label": "rpc arm@127.0.0.1:9190 key=arm",
        "best": {"architecture": arch, "predicted_accuracy": 0.912, "predicted_latency_ms": 1.8},
        "pareto": [{"architecture": arch, "predicted_accuracy": a, "predicted_latency_ms": lt}
                   for a, lt in ((0.85, 0.9), (0.9, 1.4), (0.912, 1.8))],
        "search": {"evaluated": 12200, "seconds": 0.12},
        "uncertainty": {"p_beats_runner_up": 0.61,
                        "front_flatness": {"spread_points": 0.2 if flat else 6.2, "gp_std_points": 0.5, "flat": flat}},
        "measured": {"latency_ms": 1.9, "predicted_latency_ms": 1.8, "error_pct": -5.3, "error": None}
        if measured else {"latency_ms": None, "error": "compile failed: boom"},
        "artifacts": {"arch": str(tmp_path / "out" / "arch.json"), "library": str(tmp_path / "out" / "net.so")},
    }


def test_text_report_says_what_was_chosen_measured_and_how_sure(tmp_path):
    text = format_search(_report(tmp_path, emulated=True))
    assert "best network for arm under 2.0 ms (space macro, 12200 candidates in 0.12 s)" in text
    assert "predicted accuracy 91.20%, predicted latency 1.800 ms" in text
    assert "P(beats the runner-up) 0.61" in text and "WARNING" not in text
    assert "measured 1.900 ms" in text and "EMULATED" in text and "(-5.3%)" in text
    assert "Pareto front: 3 networks" in text


def test_flat_front_warns_and_a_failed_measurement_is_said(tmp_path):
    text = format_search(_report(tmp_path, flat=True, measured=False))
    assert "WARNING: flat accuracy predictor" in text
    assert "measuring failed: compile failed: boom" in text


def test_pareto_plot_is_written(tmp_path):
    path = tmp_path / "pareto.png"
    pareto_plot(_report(tmp_path), path)
    assert path.stat().st_size > 10_000 and path.read_bytes()[:4] == b"\x89PNG"

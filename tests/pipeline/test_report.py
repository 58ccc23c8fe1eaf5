"""``pipeline.report``: the text of the main job's report (table, tuning, networks, fidelity,
the accuracy and search lines) and the plot of the chosen networks, from a report dict."""


from chamtvm.pipeline.report import format_adapt, format_report, picks_plot


def _pick(budget, measured, regret=False):
    p = {"budget_ms": budget, "predicted_accuracy": 0.9012, "predicted_latency_ms": budget * 0.9,
         "measured_ms": measured, "error_pct": None if measured is None else -2.5,
         "artifacts": {"library": f"/runs/tune-x86/s-{budget:g}ms/network_x86.so"}, "exported_now": budget > 1,
         "p_beats_runner_up": 0.75, "front_flatness": {"spread_points": 1.5, "gp_std_points": 0.4, "flat": False},
         "pareto": [{"predicted_latency_ms": 0.5, "predicted_accuracy": 0.8},
                    {"predicted_latency_ms": budget * 0.9, "predicted_accuracy": 0.9012}]}
    if regret:
        p.update({"regret_points": 0.25, "true_accuracy": 0.9, "best_true_accuracy_under_budget": 0.9025,
                  "samples": 20})
    return p


def _report(emulated=False, **kw):
    return {
        "target": "arm", "device_label": "rpc arm@h:1 key=k", "emulated": emulated, "space": "tiny3",
        "table": {"rows": 40, "space_kernels": 38, "measured_now": 5, "failed": 1},
        "tuning": {"tuned_now": [{"name": "fused_conv2d", "trials": 16, "tuning_s": 12.34, "default_us": 30.0,
                                  "best_us": 10.0}], "kernels_with_tuned_schedule": 3},
        "networks": [{"name": "net0", "table_sum_ms": 1.0, "predicted_ms": 1.1, "measured_ms": 1.2,
                      "error_pct": -8.33, "measured_spread_pct": 2.0}],
        "predictor": {"residual_mode": "scale", "training_networks": 10},
        "fidelity": {"n": 20, "within_5pct": 0.6, "within_10pct": 0.9, "median_ape_pct": 4.2, "mape_pct": 5.5,
                     "kendall_tau": 0.81},
        "seconds": {"table": 10.0, "tune": 20.5}, **kw}


def test_report_lines():
    text = format_report(_report())
    lines = text.splitlines()
    assert lines[0] == "chamtvm tune report: target arm on rpc arm@h:1 key=k"
    assert lines[1] == "table: 40 rows (38 kernels in space tiny3, 5 measured this run, 1 failed)"
    assert lines[2] == "tuning: 1 kernels tuned this run, 3 kernels use a tuned schedule"
    assert "default 30.0 us -> tuned 10.0 us (3.0x)" in lines[3]
    assert any(l.split() == ["net0", "1.000", "1.100", "1.200", "-8.3", "2.0"] for l in lines)
    assert ("held-out fidelity, table + scale residual (10 training networks) (n=20): within ±5%: 60%  "
            "within ±10%: 90%  median APE: 4.20%  MAPE: 5.50%  Kendall tau: 0.810") in lines
    assert lines[-1] == "time (s): table 10.0, tune 20.5"
    assert "EMULATION" not in text
    assert "EMULATION timings, not device timings" in format_report(_report(emulated=True)).splitlines()[0]


def test_report_says_how_many_schedules_were_set_aside_in_the_network():
    report = _report()
    report["tuning"].update(set_aside_in_network=1, set_aside_kernels=["fused_conv2d"])
    lines = format_report(report).splitlines()
    assert lines[2] == ("tuning: 1 kernels tuned this run, 3 kernels use a tuned schedule, 1 set aside "
                        "(no faster in the network than the default row: the default ships)")
    assert lines[3].endswith("(3.0x)  no faster in the network: default ships")


def test_adapt_lines_skipped_and_ok():
    assert format_adapt({}) == []
    assert format_adapt({"accuracy": {"status": "skipped (--task none)"}}) == [
        "accuracy predictor and search: skipped (--task none)"]
    acc = {"status": "ok", "task": "nas-bench-macro", "kind": "lookup", "samples": 20, "trained_now": 15,
           "resumed_from_journal": 5, "failed": 0, "measured_accuracy": {"min": 0.8, "max": 0.925},
           "cv": {"kendall_tau": 0.6123, "rmse": 0.0123}, "ceiling": {"kendall_tau_between_seeds": 0.55}}
    report = {"accuracy": acc, "emulated": True, "accuracy_warning": "flat front",
              "picks": [_pick(1.0, 1.1, regret=True), _pick(2.0, None, regret=True), {"budget_ms": 0.1,
                                                                                        "error": "no network fits"}]}
    lines = format_adapt(report)
    assert lines[0] == ("accuracy predictor (nas-bench-macro, looked up): 20 architectures (15 trained now, 5 from "
                        "the journal, 0 failed); accuracy 80.0..92.5%; cross-validated Kendall tau 0.612, RMSE 1.23 "
                        "points (task ceiling: seed-vs-seed tau 0.550)")
    assert "measured ms (EMULATED)" in lines[1]
    assert lines[2].split()[:5] == ["1", "90.12", "0.900", "1.100", "-2.5"]
    assert lines[2].endswith("/runs/tune-x86/s-1ms (up to date)")  # exported_now False
    assert "failed" in lines[3] and lines[3].split()[4] == "-" and not lines[3].endswith("(up to date)")
    assert lines[4].split() == ["0.1", "no", "network", "fits"]
    assert "regret pts" in lines[5]
    assert lines[6].split() == ["1", "0.75", "1.50", "0.40", "90.00", "90.25", "0.25", "20"]
    assert lines[-1] == "WARNING: flat front"
    acc["cv"]["kendall_tau"] = None
    assert "Kendall tau n/a" in format_adapt({"accuracy": acc, "picks": []})[0]
    acc["known_trainings"] = {"used_networks": 24, "journal": "runs/accuracy-nas-bench-macro-macro.jsonl"}
    assert ("5 from the journal, 0 failed, and 24 known from runs/accuracy-nas-bench-macro-macro.jsonl); "
            in format_adapt({"accuracy": acc, "picks": []})[0])


def test_picks_plot_writes_a_png_only_with_picks(tmp_path):
    path = tmp_path / "plots" / "picks.png"
    picks_plot({"picks": [{"budget_ms": 1, "error": "x"}]}, path)
    assert not path.exists()
    picks_plot({"target": "x86", "space": "tiny3", "emulated": False, "picks": [_pick(1.0, 1.1), _pick(2.0, None)]},
               path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

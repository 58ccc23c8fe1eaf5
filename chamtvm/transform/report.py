"""The text of a transformation's report: accuracy and measured latency of the adapted network
against the teacher and the uniform width-scaling baseline."""

from __future__ import annotations


def _pct(x) -> str:
    return "   -  " if x is None else f"{100 * x:6.2f}"


def _ms(x) -> str:
    return "     -  " if x is None else f"{x:8.3f}"


def format_report(report: dict) -> str:
    """Human-readable summary of ``job.transform``'s report dict."""
    emu = " (EMULATION: not a device timing)" if report.get("emulated") else ""
    lines = [f"transform {report['method']} on {report['task']} ({report['data']} train/val/test images), target "
             f"{report['target']}, budget {report['budget_ms']:g} ms measured{emu}",
             f"  measured on: {report.get('device_label')}; teacher's measured / table-sum latency "
             f"{report['context_scale']:.3f}",
             "",
             f"  {'network':<22} {'val %':>6} {'test %':>6} {'predicted':>9} {'measured':>9} {'speed-up':>8} "
             f"{'budget':>6}"]
    rows = [("teacher", report["teacher"], None), ("adapted (" + report["method"] + ")", report["adapted"], True)]
    if report.get("uniform"):
        u = report["uniform"]
        label = f"uniform width {u['width']:g}" if u.get("width") else "uniform (none fits)"
        rows.append((label, u, True))
    for label, r, judged in rows:
        meas = (r.get("measured") or {}).get("latency_ms")
        pred = r.get("predicted_ms", r.get("table_sum_ms") if label == "teacher" else None)
        sp = r.get("speedup_vs_teacher")
        ok = "" if not judged or meas is None else ("under" if r.get("under_budget") else "OVER")
        lines.append(f"  {label:<22} {_pct(r.get('val_accuracy'))} {_pct(r.get('test_accuracy'))} {_ms(pred)} "
                     f"{_ms(meas)} {('%7.2fx' % sp) if sp else '      - '} {ok:>6}")
    a = report["adapted"]
    if a.get("prediction_error_pct") is not None:
        lines.append(f"\n  adapted: predicted {a['predicted_ms']:.3f} ms vs measured "
                     f"{a['measured']['latency_ms']:.3f} ms ({a['prediction_error_pct']:+.1f} %); "
                     f"accuracy drop {a['accuracy_drop_points_val']:.2f} points (validation), "
                     f"{a.get('accuracy_drop_points_test', float('nan')):.2f} (test)")
    d = report.get("details") or {}
    if "choice" in d:
        ops = ", ".join(f"{k}:{v}" for k, v in d["choice"].items())
        lines.append(f"  blocks: {ops}")
    lines.append(f"\n  artefacts in {report['artifacts'].get('report', '').rsplit('/', 1)[0] or '-'}: weights.pt, "
                 f"adapted.json, model.pt2, model.onnx, {report['artifacts']['library'].rsplit('/', 1)[-1]}")
    if report["artifacts"].get("runtime_threads"):
        lines.append(f"  run the library with TVM_NUM_THREADS={report['artifacts']['runtime_threads']} "
                     f"(the latency was measured so)")
    lines.append(f"  took {report['seconds']['total']:.0f} s")
    return "\n".join(lines)

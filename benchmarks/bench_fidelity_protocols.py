"""Held-out fidelity of the main job's tuned table, today's measurement protocol against the
previous one, on an idle machine and with a controlled disturbance.

    python benchmarks/bench_fidelity_protocols.py --schedules DIR [--heldout 20] [--train-networks 20]
        [--protocols new,old] [--disturb both|no|yes] [--stop-at models] [--out FILE]

``DIR`` is a main job's schedule database (``schedules/x86`` after ``tune --target x86``):
both protocols run the main job's latency steps (``tune --task none --trials 0``) with a
copy of it, so they price the same tuned kernels, each from an empty table:

* ``new``: the x86 target as shipped (``chamtvm/targets/builtin/x86.json``): kernels timed
  inside batch networks, every sample at the CPU's nominal speed (reference kernel),
  threads auto (all cores but one);
* ``old``: the same target with the previous settings: kernels timed alone
  (``kernel_timing: isolated``), no reference check, 2 TVM threads on this 2-core machine
  (``threads`` = all cores), given as a target file in ``CHAMTVM_TARGETS_DIR``.

The disturbance: a Python busy loop pinned with ``taskset`` to core 0, started a few seconds
into the ``table`` step and stopped when the step ``--stop-at`` starts (default ``models``:
the main job now times the training and the held-out networks in one batch in that step, so
the table and the calibration sweep are measured beside the busy loop and every network on a
quiet machine; ``heldout`` was the stop before the two batches were joined). Runs alternate (new, old) per disturbance setting. Reported per run: the
table sum's and the chosen predictor's held-out fidelity, the residual chosen, the share of
rows and networks taken at nominal speed, and the wall time. Writes
``benchmarks/results/fidelity_protocols_x86.json`` and its plot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import RESULTS, REPO, argument_parser, parse_args, pyplot, save_figure, write_results

HOG = "while True:\n    pass\n"


def old_target_file(folder: Path) -> Path:
    """The x86 target with the previous protocol's settings, as a user target file."""
    spec = json.loads((REPO / "chamtvm" / "targets" / "builtin" / "x86.json").read_text())
    spec.update({"threads": os.cpu_count() or 1, "kernel_timing": "isolated",
                 "description": "x86 with the previous measurement protocol (bench_fidelity_protocols.py)"})
    for ev in ("evaluator", "network_evaluator"):
        spec[ev] = {k: v for k, v in spec[ev].items() if not k.startswith("nominal_")}
    spec["evaluator"].update({"repeat": 9, "min_repeat_ms": 10})
    spec["network_evaluator"].update({"repeat": 15, "min_repeat_ms": 50})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "x86.json"
    path.write_text(json.dumps(spec, indent=1))
    return path


def run_job(work: Path, schedules: Path, protocol: str, disturb: bool, heldout: int, train: int,
            stop_at: str = "models") -> dict:
    """One main-job run (latency steps) in ``work``; the disturbance driven by its step log."""
    (work / "schedules").mkdir(parents=True)
    shutil.copytree(schedules, work / "schedules" / "x86")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if protocol == "old":
        env["CHAMTVM_TARGETS_DIR"] = str(old_target_file(work / "targets").parent)
    cmd = [sys.executable, "-m", "chamtvm", "--workdir", str(work), "tune", "--target", "x86", "--task", "none",
           "--trials", "0", "--heldout", str(heldout), "--train-networks", str(train), "--no-progress",
           "--out", str(work / "report.json")]
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    hog, events, log = None, {}, []

    def start_hog():
        nonlocal hog
        time.sleep(5)
        if hog is None and stop_at not in events:
            hog = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", HOG])
            events["disturbance_on_s"] = round(time.time() - t0, 1)

    for line in proc.stdout:
        log.append(line.rstrip())
        if "] table:" in line and disturb:
            events["table_s"] = round(time.time() - t0, 1)
            threading.Thread(target=start_hog, daemon=True).start()
        if f"] {stop_at}:" in line:
            events[stop_at] = round(time.time() - t0, 1)
            if hog is not None:
                hog.kill()
                hog.wait()
                events["disturbance_off_s"] = round(time.time() - t0, 1)
    proc.wait()
    if hog is not None and hog.poll() is None:
        hog.kill()
        hog.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"tune ({protocol}, disturb={disturb}) failed:\n" + "\n".join(log[-30:]))
    report = json.loads((work / "report.json").read_text())
    rows = [json.loads(x) for x in (work / "luts" / "x86.jsonl").read_text().splitlines() if x.strip()]
    nets = [json.loads(x) for x in (work / "luts" / "x86.networks.jsonl").read_text().splitlines() if x.strip()]
    ok_rows = [r for r in rows if r.get("status") == "ok"]
    return {"protocol": protocol, "disturbed": disturb, "wall_s": round(time.time() - t0, 1), "events": events,
            "fidelity_table_sum": report["fidelity_table_sum"], "fidelity": report["fidelity"],
            "residual": report["predictor"].get("residual_selection", report["predictor"].get("residual_mode")),
            "runtime_threads": report.get("runtime_threads"),
            "rows": len(ok_rows), "rows_nominal": sum(1 for r in ok_rows if r.get("nominal") is True),
            "rows_timing": sorted({r.get("timing", "isolated") for r in ok_rows}),
            "networks": len(nets), "networks_nominal": sum(1 for r in nets if r.get("nominal") is True),
            "heldout": [{k: n.get(k) for k in ("name", "table_sum_ms", "predicted_ms", "measured_ms", "error_pct",
                                               "measured_spread_pct")} for n in report["networks"]],
            "seconds": report.get("seconds")}


def plot(result: dict, path: Path) -> None:
    plt = pyplot()
    runs = result["runs"]
    fig, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 3.2), sharey=True, squeeze=False)
    for ax, r in zip(axes[0], runs):
        m = [n["measured_ms"] for n in r["heldout"]]
        p = [n["predicted_ms"] for n in r["heldout"]]
        ax.scatter(m, p, s=12)
        lo, hi = min(m + p), max(m + p)
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.6)
        ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="k", alpha=0.08)
        f = r["fidelity"]
        ax.set_title(f"{r['protocol']}{', disturbed' if r['disturbed'] else ''}\n"
                     f"±10 %: {100 * f['within_10pct']:.0f} %, ±5 %: {100 * f['within_5pct']:.0f} %", fontsize=8)
        ax.set_xlabel("measured (ms)")
    axes[0][0].set_ylabel("predicted (ms)")
    save_figure(fig, path)


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("--schedules", type=Path, required=True, help="a tuned schedules/x86 folder")
    ap.add_argument("--heldout", type=int, default=20)
    ap.add_argument("--train-networks", type=int, default=20)
    ap.add_argument("--stop-at", default="models", help="the step whose start stops the disturbance")
    ap.add_argument("--protocols", default="new,old")
    ap.add_argument("--disturb", choices=["both", "no", "yes"], default="both")
    ap.add_argument("--out", type=Path, default=RESULTS / "fidelity_protocols_x86.json")
    a = parse_args(ap, argv)
    if not (a.schedules / "database_tuning_record.json").exists():
        raise SystemExit(f"{a.schedules} holds no MetaSchedule database (database_tuning_record.json)")
    runs = []
    for disturb in {"both": (False, True), "no": (False,), "yes": (True,)}[a.disturb]:
        for protocol in a.protocols.split(","):
            with tempfile.TemporaryDirectory(prefix="chamtvm-protocols-") as tmp:
                r = run_job(Path(tmp), a.schedules, protocol, disturb, a.heldout, a.train_networks, a.stop_at)
            runs.append(r)
            f, fs = r["fidelity"], r["fidelity_table_sum"]
            print(f"{protocol:4s} disturbed={disturb!s:5s} {r['wall_s']:.0f} s: table sum ±10 % {100 * fs['within_10pct']:.0f} % "
                  f"(±5 % {100 * fs['within_5pct']:.0f} %, MAPE {fs['mape_pct']:.1f} %); predictor ±10 % "
                  f"{100 * f['within_10pct']:.0f} % (±5 % {100 * f['within_5pct']:.0f} %, MAPE {f['mape_pct']:.1f} %); "
                  f"rows nominal {r['rows_nominal']}/{r['rows']}", flush=True)
    write_results({"schedules": str(a.schedules), "runs": runs, "heldout": a.heldout, "train_networks": a.train_networks,
                   "disturbance": "python busy loop pinned to core 0 (taskset), from ~5 s into the table step "
                                  f"to the start of the {a.stop_at} step"}, a.out, figure=plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

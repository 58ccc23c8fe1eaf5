"""How long ``transform teacher:digits --method prune`` takes end to end on x86, as a user runs
it: once from an empty working folder (the digits teacher trained, its width-latency model
measured, the integer program solved and its choice measured, fine-tuning by distillation,
the uniform baseline made, export, measurement) and once more in the same folder at another
budget (teacher and width model reused: what the slow test tier's end-to-end run does, since
its fixture measures the width model first).

For each run: wall time, the job's own seconds per phase, the budget, predicted and measured
latency, and test accuracy of the teacher, the pruned network and the uniform baseline.

    ../shared/tools/quiet-run -- python benchmarks/bench_prune_e2e.py [--work runs/bench-prune-e2e]

Writes benchmarks/results/prune_e2e_x86_digits.json (``--out``). Measure on an idle machine.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from common import RESULTS, RUNS, argument_parser, parse_args, run_chamtvm, write_results
from common.transform import prune_report_figures

SPEEDUPS = (2.0, 1.5)  # the first run starts from an empty folder, the second reuses it


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("--target", default="x86")
    ap.add_argument("--work", type=Path, default=RUNS / "bench-prune-e2e")
    ap.add_argument("--out", type=Path, default=RESULTS / "prune_e2e_x86_digits.json")
    args = parse_args(ap, argv)
    shutil.rmtree(args.work, ignore_errors=True)  # the first run must start from nothing
    args.work.mkdir(parents=True)
    out = {"task": "digits", "target": args.target, "runs": []}
    for i, speedup in enumerate(SPEEDUPS):
        run = run_chamtvm(["--workdir", str(args.work), "transform", "teacher:digits", "--task", "digits",
                           "--target", args.target, "--method", "prune", "--speedup", repr(speedup),
                           "--no-progress", "--out", str(args.work / f"prune-{speedup:g}")],
                          log_path=args.work / "log.txt", json_output=True)
        report = json.loads(run["stdout"])
        row = {"speedup": speedup, "from_empty_folder": i == 0, **prune_report_figures(report, run["wall_s"]),
               "job_seconds": report.get("seconds")}
        base = report.get("uniform") or {}
        row["uniform"] = {k: base.get(k) for k in ("predicted_ms", "val_accuracy", "test_accuracy")} | {
            "measured_ms": (base.get("measured") or {}).get("latency_ms")} if base else None
        out["runs"].append(row)
        print(f"speedup {speedup:g} ({'empty folder' if i == 0 else 'teacher and width model reused'}): "
              f"{row['wall_s']:.1f} s; measured {row['measured_ms']:.4g} ms against a budget of "
              f"{row['budget_ms']:.4g} ms, test {row['test_accuracy']:.4f} (teacher "
              f"{row['teacher_test_accuracy']:.4f}); uniform {row['uniform']}", flush=True)
    write_results(out, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Pruning's two solvers through the command a user runs, each with the measured check:
``transform teacher:digits --method prune --speedup S`` with ``solver=milp`` (the default) and
``solver=admm``, in one working folder (the digits teacher trained once, the width-latency
model measured once, both reused by the second run), at the same budget (the teacher's
measured latency / S).

For each solver: the budget, the structure's measured checks before training (each try's
modelled and measured latency, the confirming timing), the adapted network's predicted and
measured latency (the job's own end-to-end measurement after fine-tuning), whether it is under
the budget, and its validation and test accuracy.

    ../shared/tools/quiet-run -- python benchmarks/bench_prune_solvers.py [--speedup 2] [--work runs/bench-prune-solvers]

Writes benchmarks/results/prune_solvers_x86_digits.json (``--out``). Measure on an idle machine.
"""

from __future__ import annotations

import json
from pathlib import Path

from common import RESULTS, RUNS, argument_parser, parse_args, run_chamtvm, write_results
from common.transform import prune_report_figures

SOLVERS = ("milp", "admm")


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("--speedup", type=float, default=2.0, help="budget = teacher's measured latency / this")
    ap.add_argument("--target", default="x86")
    ap.add_argument("--work", type=Path, default=RUNS / "bench-prune-solvers")
    ap.add_argument("--out", type=Path, default=RESULTS / "prune_solvers_x86_digits.json")
    args = parse_args(ap, argv)
    args.work.mkdir(parents=True, exist_ok=True)
    out = {"task": "digits", "target": args.target, "speedup": args.speedup, "solvers": {}}
    for solver in SOLVERS:
        run = run_chamtvm(["--workdir", str(args.work), "transform", "teacher:digits", "--task", "digits",
                           "--target", args.target, "--method", "prune", "--speedup", repr(args.speedup),
                           "--option", f"solver={solver}", "--no-uniform", "--no-progress",
                           "--out", str(args.work / f"prune-{solver}")],
                          log_path=args.work / "log.txt", json_output=True)
        out["solvers"][solver] = prune_report_figures(json.loads(run["stdout"]), run["wall_s"])
        s = out["solvers"][solver]
        print(f"{solver}: budget {s['budget_ms']:.4g} ms, predicted {s['predicted_ms']:.4g} ms, measured "
              f"{s['measured_ms']:.4g} ms ({s['prediction_error_pct']:+.1f} %, "
              f"{'under' if s['under_budget'] else 'OVER'} the budget), test {s['test_accuracy']:.4f}, "
              f"{len(s['measured_checks'] or [])} measured check(s)", flush=True)
    write_results(out, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

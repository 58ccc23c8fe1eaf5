"""``chamtvm tune-model MODEL --target T``: tune a model's own kernels, as a TVM user does
before deploying it, so that ``predict`` (and the TVM hook, and ``export``) give its tuned
latency.

The model (an ONNX file or an architecture JSON) is lowered for the target; its kernels'
default and deployed rows are measured where the target's table lacks them; the schedules
of tuned kernels of the same kinds are transferred first (no trials), then ``--trials``
MetaSchedule trials go to the costliest kernels, jointly, kernels tuned before included (they
continue from their records); the new schedules are measured into the table
(``deploy.tune_network``). The same request again after it finished spends nothing. Prints the
table sum before and after. Locally, or on the devices under ``--tracker`` for a remote target
(candidates compiled here). The model is lowered as the target lowers networks (its
``conv_layout`` and ``fast_math``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``tune-model`` subcommand on an ``argparse`` subparsers object."""
    from . import validate as v
    from .arguments import add_model_args, add_statistic_arg, add_target_args

    p = subparsers.add_parser("tune-model", help="tune a model's own kernels, so predict gives its tuned latency",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_target_args(p)
    add_model_args(p)
    add_statistic_arg(p)
    p.add_argument("--trials", type=v.non_negative_int, default=64,
                   help="MetaSchedule trials in all (default 64; 0: transfer tuned schedules only)")
    p.add_argument("--trials-per-kernel", type=v.positive_int, default=16,
                   help="trials per kernel: about trials / this many of the costliest kernels are tuned, or more, "
                        "half as many trials each, where that covers 90 %% of the deployed time (default 16)")
    p.add_argument("--tuning-population", type=v.positive_int, default=128,
                   help="MetaSchedule's evolutionary population per kernel (default 128)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..core.workdir import luts_dir
    from ..deploy.tune_network import tune_network
    from ..lower.network import load_model
    from ..measure.runners import make_runner, runner_tracker
    from ..table.store import LatencyTable
    from ..targets.spec import get_target
    from ..tuning.schedules import ScheduleSource

    target = get_target(args.target)
    table = LatencyTable.for_target(target.name, args.luts_dir or luts_dir())
    sched = ScheduleSource.for_target(target, args.schedules_dir)
    net = load_model(args.model, args.space, args.shape, **target.lowering())
    log = (lambda m: print(m, file=sys.stderr)) if args.json else print
    # with --json stdout carries only the JSON: MetaSchedule's loggers (created per tuning,
    # writing to whatever sys.stdout is then) go to stderr with everything else
    quiet_stdout = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    with quiet_stdout, make_runner(target, args.tracker, args.key) as runner:
        res = tune_network(net, target, args.trials, table, sched, runner, args.trials_per_kernel,
                           args.tuning_population, runner_tracker(runner), args.statistic, log=log)
    out = {"model": str(args.model), "target": target.name, "table": str(table.path),
           "schedules": str(sched.work_dir), **res.to_dict()}
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(format_tuning(out))
    return 0


def format_tuning(out: dict) -> str:
    """The text report of one ``tune-model`` run (``out``: the JSON fields)."""
    def ms(x):
        return f"{x:.3f} ms" if x is not None else "n/a"

    prov = lambda d: ", ".join(f"{v} {k}" for k, v in sorted(d.items()))  # noqa: E731
    lines = [f"{out['model']} on {out['target']}: tuned its own kernels in {out['seconds']:.0f} s "
             f"({out['trials_spent']} of {out['trials_budget']} trials)",
             f"  table sum, default schedules: {ms(out['default_ms'])}",
             f"  table sum, deployed before:   {ms(out['before_ms'])}  ({prov(out['provenance_before'])})",
             f"  table sum, deployed after:    {ms(out['after_ms'])}  ({prov(out['provenance_after'])})"]
    for k in out["kernels"]:
        if k["policy"] == "joint":
            how = ("kept" if k["kept"] else "slower in the network: default kept" if k.get("set_aside")
                   else "not faster: default kept")
            lines.append(f"  tuned       {k['name']:<44} {_us(k['best_us'])} vs default {_us(k['default_us'])} ({how})")
        elif k.get("committed"):
            lines.append(f"  transferred {k['name']:<44} {_us(k['best_us'])} vs default {_us(k['default_us'])}")
    if out.get("missing"):
        lines.append(f"  {out['missing']} kernels could not be measured (not counted)")
    lines.append(f"rows in {out['table']}, schedules in {out['schedules']}: "
                 f"`predict {Path(out['model']).name} --target {out['target']}` now prices the tuned model")
    return "\n".join(lines)


def _us(x) -> str:
    return f"{x:8.1f} us" if isinstance(x, (int, float)) else "     n/a   "

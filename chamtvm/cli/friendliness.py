"""``chamtvm friendliness``: which choices of a space suit a target, and a reduced space.

Measures a balanced, seeded design of the space's networks end to end on the target (the
network journal ``luts/<target>.networks.jsonl`` is reused: only missing networks are
measured), looks up or trains their accuracies where the task gives them (each one counted,
through the accuracy journal), regresses both on the choice at every position, and prints
per position and choice: latency contribution (95 % CI), latency share, accuracy
contribution, accuracy share, friendliness (accuracy share / latency share) and kept /
dropped. Writes ``friendliness.json``, a heat map ``friendliness.png`` and the reduced
space ``<space>-<target>-friendly.json`` (same schema; ``tune --space FILE`` and ``search
--space FILE`` take it) into ``--out`` (default ``runs/friendliness-<target>-<space>/``).
Definitions and the reduction rule: ``chamtvm/friendly/friendliness.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}") from None
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1), got {text!r}")
    return v


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``friendliness`` subcommand on an ``argparse`` subparsers object."""
    from ..accuracy.tasks import TASKS
    from ..friendly.design import MAX_NETWORKS
    from ..friendly.friendliness import DEFAULT_DROP, DEFAULT_RULE, RULES
    from . import validate as v
    from .arguments import add_target_args

    p = subparsers.add_parser("friendliness", help="block friendliness per position on a target, and a reduced space",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_target_args(p)
    p.add_argument("--space", default="macro", help="bundled space name or space JSON file (default macro)")
    p.add_argument("--networks", type=v.int_at_least(3), default=None,
                   help=f"networks measured end to end (default: the smallest balanced design with 10 residual "
                        f"degrees of freedom, at most {MAX_NETWORKS})")
    p.add_argument("--seed", type=v.seed, default=0, help="seed of the design")
    p.add_argument("--task", default=None, choices=[*(n for n in TASKS.names() if n != "command"), "none"],
                   help="accuracies of the design networks, each one counted (default: nas-bench-macro for the "
                        "macro space, else none); none: latency only, or --journal's trainings")
    p.add_argument("--journal", type=Path, default=None,
                   help="accuracy journal (with --task: where lookups/trainings go; with --task none: use its "
                        "trainings of the space as they are)")
    p.add_argument("--rule", choices=RULES, default=DEFAULT_RULE,
                   help="reduction rule: confident (default: drop only choices unfriendly with 95%% confidence), "
                        "window (drop choices no budget between the 10%% and 90%% latency quantiles would take, "
                        "with 95%% confidence over all choices: a cheap block that loses too much accuracy too) or "
                        "quota (the earlier rule: drop exactly the --drop fraction by point estimates); "
                        "docs/friendliness.md")
    p.add_argument("--drop", type=_fraction, default=DEFAULT_DROP,
                   help=f"size knob: fraction of the non-baseline choices (window: of the choices beyond one per "
                        f"position) to drop, at most (confident, window) or exactly (quota) (default {DEFAULT_DROP:.3g})")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default runs/friendliness-<target>-<space>)")
    p.add_argument("--json", action="store_true", help="print the JSON document instead of the table")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)
    return p


def _check(args):
    """Everything checkable before any measurement; UsageError / SpaceError / TargetError (exit 2)."""
    from ..core.hostport import tracker_from_env
    from ..friendly.design import effects_model
    from ..space.schema import SearchSpace
    from ..targets.spec import get_target
    from .validate import UsageError

    target = get_target(args.target)
    space = SearchSpace.load(args.space)
    for flag in ("luts_dir", "schedules_dir", "out"):
        value = getattr(args, flag)
        if value is not None and value.exists() and not value.is_dir():
            raise UsageError(f"--{flag.replace('_', '-')} {value} is a file, not a folder")
    if args.tracker is None:
        try:
            tracker_from_env()
        except ValueError as e:
            raise UsageError(str(e)) from None
    try:
        model = effects_model(space)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.networks is not None:
        if args.networks <= model.n_params:
            raise UsageError(f"--networks {args.networks}: space {space.name!r} has {model.n_params} effects to "
                             f"estimate; measure more than {model.n_params} networks")
        if args.networks > space.size():
            raise UsageError(f"--networks {args.networks}: space {space.name!r} has only {space.size()} networks")
    task = args.task
    if task is None:
        from ..accuracy.nasbench import check_macro_space

        try:
            check_macro_space(space)
            task = "nas-bench-macro"
        except ValueError:
            task = "none"
    if task != "none":
        from ..accuracy.tasks import make_trainer

        try:
            make_trainer(task).check(space)
        except ValueError as e:
            raise UsageError(f"--task {task}: {e}") from None
    elif args.journal is not None and not args.journal.is_file():
        raise UsageError(f"--journal {args.journal} is not a file (with --task none its trainings are used as they "
                         f"are)")
    return target, space, (None if task == "none" else task)


def run(args: argparse.Namespace) -> int:
    """Execute the subcommand; returns the exit code (bad input raises, ``main`` exits 2)."""
    from ..core.versions import tvm_version
    from ..core.workdir import luts_dir, runs_dir
    from ..friendly.profile import profile_space, write_outputs
    from ..measure.runners import make_runner
    from ..table.networks import network_table
    from ..table.store import LatencyTable
    from ..tuning.schedules import ScheduleSource

    target, space, task = _check(args)
    luts = args.luts_dir or luts_dir()
    table = LatencyTable.for_target(target.name, luts)
    schedules = ScheduleSource(target, args.schedules_dir and args.schedules_dir / target.name)
    nets = network_table(target, luts)
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    runner = make_runner(target, args.tracker, args.key)
    t0 = time.time()
    with runner:
        log(f"profiling space {space.name} ({space.size():,} networks) on {target.name} ({runner.label}"
            f"{', EMULATED timings' if runner.emulated else ''})")
        prof = profile_space(space, target, runner, schedules, table, nets, args.networks, args.seed, task,
                             args.journal, args.drop, progress=not args.no_progress, log=log, rule=args.rule)
    prof.seconds["total"] = round(time.time() - t0, 1)
    out = args.out or runs_dir() / f"friendliness-{target.name}-{space.name}"
    provenance = {"command": "python -m chamtvm " + " ".join(sys.argv[1:]) if sys.argv else None,
                  "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "tvm_version": tvm_version(),
                  "target_fingerprint": target.fingerprint, "table": str(table.path), "table_rows": len(table),
                  "network_journal": str(nets.path)}
    paths = write_outputs(prof, space, out, provenance)
    if args.json:
        print(json.dumps({**prof.to_dict(), "outputs": paths}, indent=1))
    else:
        print(format_profile(prof, paths))
    return 0


def _pm(value, ci, fmt="{:.3f}"):
    return "-" if value is None else f"{fmt.format(value)} ±{fmt.format(ci)}"


def format_profile(prof, paths: dict) -> str:
    """The table of positions x choices, the fits and where everything was written."""
    t, m = prof.table, prof.measured
    emu = " (EMULATED: not device timings)" if prof.emulated else ""
    lines = [f"friendliness of space {t.space} on {prof.target}{emu}",
             f"  {len(m.latency_ms)} networks measured end to end ({m.measured_now} now, {m.reused} from the network "
             f"journal, {len(m.failed)} failed); design: {prof.design['networks']} networks, balanced "
             f"{prof.design['balanced']}, orthogonality {prof.design['orthogonality']}",
             f"  latency fit: R^2 {t.latency_fit.r2:.3f}, residual sd {t.latency_fit.sigma:.3f} ms, "
             f"{t.latency_fit.dof} residual dof"]
    if prof.accuracy:
        a = t.accuracy_fit
        lines.append(f"  accuracy: {prof.accuracy['counted']} networks ({prof.accuracy.get('task', 'journal')}, "
                     f"{prof.accuracy['new']} new); fit R^2 {a.r2:.3f}, residual sd {a.sigma:.3f} points")
    lines.append(f"  {'position':<22} {'choice':<10} {'latency ms (95% CI)':>20} {'lat share':>9} "
                 f"{'accuracy pts (95% CI)':>22} {'acc share':>9} {'friendly':>8} {'F_hi':>6}  kept")
    for r in t.rows:
        share_a = "-" if r.accuracy_share is None else f"{100 * r.accuracy_share:.1f}%"
        fr = "base" if r.baseline else ("-" if r.friendliness is None else f"{r.friendliness:.2f}")
        hi = "-" if r.friendliness_hi is None else f"{r.friendliness_hi:.2f}"
        lines.append(f"  {r.position:<22} {str(r.choice):<10} {_pm(r.latency_ms, r.latency_ci_ms):>20} "
                     f"{100 * r.latency_share:>8.1f}% {_pm(r.accuracy_pts, r.accuracy_ci_pts):>22} {share_a:>9} "
                     f"{fr:>8} {hi:>6}  {'kept' if r.kept else 'DROPPED'}: {r.why}")
    for note in t.notes:
        lines.append(f"  note: {note}")
    if "reduced_space" in paths:
        from ..space.schema import SearchSpace

        small = SearchSpace.load(paths["reduced_space"])
        lines.append(f"  reduced space: {small.size():,} of {prof.space_size:,} networks (rule {t.rule}, drop "
                     f"{t.drop:.3g}) -> {paths['reduced_space']}")
        journal = (prof.accuracy or {}).get("journal")
        task = (prof.accuracy or {}).get("task")
        if journal and task:  # the design's accuracies are not lost: the loop in the reduced space reuses them
            lines.append(f"  search it: python -m chamtvm tune --target {prof.target} --space {paths['reduced_space']} "
                         f"--task {task} --known-accuracies {journal}")
    elif t.accuracy_fit is not None:
        lines.append(f"  no reduced space: rule {t.rule} dropped nothing")
    lines.append(f"  table {paths['json']}; heat map {paths['plot']}; {prof.seconds.get('total', 0):.0f} s")
    return "\n".join(lines)

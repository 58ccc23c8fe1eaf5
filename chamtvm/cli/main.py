"""Command line: ``python -m chamtvm {tune,predict,measure,targets,accuracy} ...``."""

from __future__ import annotations
import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from ..measure.runners import make_runner
from ..pipeline.tuned_residual import NEIGHBOURS_PER_PICK



from . import validate as v
from .arguments import add_known_accuracies_arg as _add_known_accuracies_arg
from .arguments import add_model_args as _add_model_args
from .arguments import add_statistic_arg as _add_statistic_arg
from .arguments import add_target_args as _add_target_args
from .validate import UsageError  # noqa: F401  (re-exported: callers catch chamtvm.cli.main.UsageError)


def cmd_targets(args) -> int:
    from ..targets.spec import available_targets

    targets = available_targets()
    if args.json:
        print(json.dumps({n: {"description": t.description, "tvm_target": t.target_json(),
                              "host": t.host, "rpc_key": t.rpc_key, "local": t.local,
                              "cross_compiler": t.cross_compiler, "source": t.source}
                          for n, t in targets.items()}, indent=1))
        return 0
    for name, t in sorted(targets.items()):
        where = "local" if t.local else f"RPC key '{t.rpc_key}'"
        print(f"{name:<10} {where:<16} {t.description}")
    return 0


def _lowered(args, target):
    from ..lower.network import load_model

    return load_model(args.model, args.space, args.shape, **target.lowering())


def _lut_dir(args):
    from ..core.workdir import luts_dir

    return args.luts_dir or luts_dir()


def _runner(args, target):
    return make_runner(target, args.tracker, args.key)


def cmd_predict(args) -> int:
    from ..table.store import LatencyTable
    from ..latency.table_sum import table_sum
    from ..tuning.schedules import ScheduleSource
    from ..table.fill import prepare
    from ..targets.spec import get_target

    target = get_target(args.target)
    table = LatencyTable.for_target(target.name, _lut_dir(args))
    if len(table) == 0 and not args.measure_missing:
        msg = v.no_table_message(table.path, target.name)
        if args.json:
            print(json.dumps({"model": str(args.model), "target": target.name, "table": str(table.path),
                              "latency_ms": None, "error": msg}, indent=1))
        raise UsageError(msg)
    net = _lowered(args, target)
    from ..lower.fast_math import approximated_kernels, fast_math_note

    note = fast_math_note(target.name, net.kernels)
    if note:
        print(note, file=sys.stderr)
    sched = ScheduleSource.for_target(target, args.schedules_dir)
    sched.use_database = args.schedules == "tuned"
    for note in v.schedule_notes(sched, table, args.schedules_dir):
        print(note, file=sys.stderr)
    prepared = prepare(net.kernels, target, sched)
    runner = _runner(args, target) if args.measure_missing else None
    if args.table_sum_only:
        if runner is not None:
            from ..latency.on_demand import measure_missing

            with runner:
                measure_missing(prepared, table, target, runner, log=lambda m: print(m, file=sys.stderr))
        pred = table_sum(prepared, table, args.statistic)
        out = {"model": str(args.model), "target": target.name, "table": str(table.path), **pred.to_dict()}
        complete = pred.complete
    else:
        from ..latency.on_demand import predict_prepared

        full = predict_prepared(prepared, table, target, runner, space=net.space,
                                log=lambda m: print(m, file=sys.stderr))
        for note in v.extrapolation_notes(full.kernels, table):
            print(note, file=sys.stderr)
        out = {"model": str(args.model), "target": target.name, "table": str(table.path), **full.to_dict()}
        complete = not full.missing
    from ..deploy.tuned_gap import default_schedule_note

    kernel_us = {k["key"]: k.get("total_us", (k.get("latency_us") or 0.0) * k.get("count", 1)) for k in out["kernels"]}
    out["schedules"] = args.schedules
    out["fast_math_kernels"] = approximated_kernels(net.kernels)
    out["default_schedules"] = default_schedule_note(prepared, kernel_us, table, target.fingerprint, args.statistic)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        from ..latency.report import format_prediction

        print(format_prediction(str(args.model), target.name, out, args.table_sum_only))  # MISSING line included
        if out["default_schedules"]:
            print(out["default_schedules"]["text"])
    return 0 if complete else 3


def cmd_measure(args) -> int:
    from ..measure.network import measure_network
    from ..tuning.schedules import ScheduleSource
    from ..targets.spec import get_target

    target = get_target(args.target)
    runner = _runner(args, target)
    net = _lowered(args, target)
    sched = ScheduleSource.for_target(target, args.schedules_dir)
    with runner:
        res = measure_network(net, target, runner, sched)
    out = {"model": str(args.model), "target": target.name, "device_label": runner.label,
           "emulated": runner.emulated, "error": res.error}
    if res.ok:
        import numpy as np

        s = np.asarray(res.samples_us) / 1e3
        out.update(latency_ms=float(np.median(s)), latency_ms_min=float(s.min()),
                   latency_ms_max=float(s.max()), latency_ms_std=float(s.std()),
                   repeat=len(s), number=res.number, samples_ms=[float(x) for x in s])
    if args.json:
        print(json.dumps(out, indent=1))
    elif res.ok:
        emu = " (EMULATED: not a device timing)" if runner.emulated else ""
        print(f"{args.model}: measured {out['latency_ms']:.3f} ms median on {runner.label}{emu} "
              f"(min {out['latency_ms_min']:.3f}, max {out['latency_ms_max']:.3f}, {out['repeat']} repeats)")
    else:
        print(f"{args.model}: measurement failed: {res.error}", file=sys.stderr)
    return 0 if res.ok else 1


def cmd_tune(args) -> int:
    from ..targets.spec import get_target
    from ..pipeline.config import TuneConfig
    from ..pipeline.report import format_report
    from ..pipeline.job import run_tune

    target = get_target(args.target)
    runner = _runner(args, target)
    from ..accuracy.tasks import default_space

    cfg = TuneConfig(space=args.space or default_space(args.task), trials=args.trials, trials_per_kernel=args.trials_per_kernel,
                     tuning_population=args.tuning_population, pick_trials=args.pick_trials,
                     pick_neighbours=args.pick_neighbours, heldout=args.heldout, statistic=args.statistic, train_networks=args.train_networks,
                     residual_mode=args.residual, calibration=not args.no_calibration,
                     real_calibration=args.real_calibration,
                     luts_dir=_lut_dir(args), schedules_dir=args.schedules_dir,
                     progress=not args.no_progress, task=args.task, train_command=args.train_command,
                     accuracy_samples=args.accuracy_samples, accuracy_proxies=not args.no_proxies,
                     accuracy_known=args.known_accuracies, budgets_ms=args.budgets_ms, search_seed=args.seed, lcb_kappa=args.lcb)
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    from ..accuracy.executors import open_executor

    with open_executor(args.executor) as cfg.executor, runner:  # ExecutorError: exit 2 (main)
        report = run_tune(target, runner, cfg, log=log)
    from ..core.workdir import runs_dir

    out = args.out or runs_dir() / f"tune-{target.name}.json"
    from ..core.atomic import atomic_write_text

    atomic_write_text(out, json.dumps(report, indent=1))
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(format_report(report))
        print(f"report written to {out}")
    return 0


def cmd_search(args) -> int:
    from ..search.report import format_search
    from ..pipeline.config import SearchConfig
    from ..pipeline.search_job import run_search
    from ..targets.spec import get_target

    target = get_target(args.target)
    cfg = SearchConfig(space=args.space, latency_ms=args.latency_ms, journal=args.journal,
                       max_mflops=args.max_mflops, max_mparams=args.max_mparams, population=args.population,
                       generations=args.generations, seed=args.seed, out=args.out, luts_dir=args.luts_dir,
                       schedules_dir=args.schedules_dir, measure=not args.no_measure, pick_trials=args.pick_trials,
                       pick_neighbours=args.pick_neighbours)
    runner = None if args.no_measure else _runner(args, target)
    try:
        report = run_search(cfg, target, runner)
    finally:
        if runner is not None:
            runner.close()
    print(json.dumps(report, indent=1) if args.json else format_search(report))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chamtvm", description=__doc__)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="working folder of luts/, schedules/ and runs/ (default: $CHAMTVM_HOME or the "
                             "current directory)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("targets", help="list registered targets")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_targets)

    p = sub.add_parser("tune", help="the main job: latency table, schedules and predictor, accuracy predictor, "
                                    "search at a few budgets, export")
    _add_target_args(p)
    p.add_argument("--space", default=None, help="bundled space name or space JSON file (default: the task's space: "
                                                 "macro for nas-bench-macro, fashion for fashion-mnist)")
    p.add_argument("--trials", type=v.non_negative_int, default=64, help="total MetaSchedule trials (0: no tuning)")
    p.add_argument("--trials-per-kernel", type=v.positive_int, default=16)
    p.add_argument("--pick-trials", type=v.non_negative_int, default=None,
                   help="MetaSchedule trials per distinct pick, spent as one campaign on the picks' own kernels "
                        "before export (default 256; 0 with --trials 0: no tuning). More trials, faster exports "
                        "and a longer job (docs/deployed-speed.md)")
    p.add_argument("--pick-neighbours", type=v.non_negative_int, default=NEIGHBOURS_PER_PICK,
                   help="after the picks' tuning, networks near each pick timed beside it, with the training "
                        "networks as tuned now, to refit the residual that prices the picks (default "
                        f"{NEIGHBOURS_PER_PICK}; docs/latency-fidelity.md)")
    p.add_argument("--tuning-population", type=v.positive_int, default=128,
                   help="MetaSchedule's evolutionary population per kernel (its own default is 512; "
                        "smaller makes each tuning round cheaper)")
    p.add_argument("--heldout", type=v.non_negative_int, default=20, help="held-out networks measured end to end")
    p.add_argument("--train-networks", type=v.non_negative_int, default=20,
                   help="networks measured end to end to train the residual model (0: table sum only)")
    from ..latency.models import AUTO_RESIDUAL, DEFAULT_RESIDUAL_MODE, NO_RESIDUAL, RESIDUAL_MODES

    p.add_argument("--residual", default=DEFAULT_RESIDUAL_MODE, choices=[AUTO_RESIDUAL, NO_RESIDUAL, *RESIDUAL_MODES],
                   help="residual on top of the table sum: auto (default: chosen by cross-validation on the training "
                        "networks, no residual unless one beats it), none, one median scale, the VM's cost per call "
                        "(calls), per-kind scales (kinds), a learned ratio or relative offset")
    _add_statistic_arg(p)
    p.add_argument("--no-calibration", action="store_true",
                   help="skip the calibration sweep (operators outside the space, for the unseen-kernel model)")
    p.add_argument("--real-calibration", nargs="?", const="uniform", default=False, choices=["uniform", "adaptive"],
                   help="also measure the real-network sweep (530 kernels of 128-224 px networks: what `predict` "
                        "on ONNX models of real families needs; several minutes); 'adaptive': about as many "
                        "kernels, chosen in rounds where the kernel model is least sure")
    from ..accuracy.tasks import TASKS

    p.add_argument("--task", default="nas-bench-macro", choices=[*TASKS.names(), "none"],
                   help="task of the accuracy predictor (default nas-bench-macro: NAS-Bench-Macro's CIFAR-10 "
                        "accuracies, looked up; fashion-mnist trains; none: stop after the latency steps)")
    p.add_argument("--command", dest="train_command", default=None,
                   help="with --task command: trainer command (gets the arch JSON path, prints the accuracy)")
    p.add_argument("--accuracy-samples", type=v.int_at_least(3), default=20,
                   help="lookups (trainings) of the budget-aware accuracy loop, spent on the budgets")
    p.add_argument("--no-proxies", action="store_true",
                   help="no zero-cost proxies among the accuracy loop's prior features")
    _add_known_accuracies_arg(p, "--accuracy-samples")
    p.add_argument("--budgets-ms", type=v.budgets, default=None,
                   help="comma-separated latency budgets in ms (default: 25/50/75%% quantiles of the space's "
                        "predicted latencies on the target)")
    p.add_argument("--seed", type=v.seed, default=0, help="seed of the genetic search (spaces larger than the accuracy loop's pool)")
    p.add_argument("--executor", default=None, metavar="SPEC",
                   help="where trainings run: local (default) or dask://HOST:PORT (a Dask distributed scheduler)")
    p.add_argument("--lcb", type=v.non_negative_float, default=None, metavar="KAPPA",
                   help="search on the GP's lower confidence bound mean - KAPPA * std (default: on the mean)")
    p.add_argument("--out", type=Path, default=None, help="report JSON path (default runs/tune-<target>.json)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("predict", help="predict a model's latency from the target's table")
    _add_target_args(p)
    _add_model_args(p)
    _add_statistic_arg(p)
    p.add_argument("--table-sum-only", action="store_true",
                   help="plain table sum (no learned models); missing kernels are listed, not priced")
    p.add_argument("--measure-missing", action="store_true",
                   help="first measure the kernels the table lacks (locally, or through --tracker/--key) and "
                        "append them to the table")
    p.add_argument("--schedules", choices=["tuned", "default"], default="tuned",
                   help="price the kernels with the target's tuned and transferred schedules where its database "
                        "has them (default; `tune-model` adds a model's own), or all with TVM's default schedules")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("measure", help="compile a model for the target and measure it end to end")
    _add_target_args(p)
    _add_model_args(p)
    p.set_defaults(func=cmd_measure)

    p = sub.add_parser("search", help="most accurate network under a latency budget, exported for the target")
    _add_target_args(p)
    p.add_argument("--latency-ms", type=v.positive_float, required=True, help="latency budget in ms on the target")
    p.add_argument("--space", default=None, help="space searched (needs trained architectures in the journal; "
                                                 "default: macro, as for tune)")
    p.add_argument("--journal", type=Path, default=None,
                   help="accuracy journal (default runs/accuracy-nas-bench-macro-macro.jsonl for space macro, "
                        "else runs/accuracy-fashion-mnist-<space>.jsonl)")
    p.add_argument("--max-mflops", type=v.positive_float, default=None,
                   help="optional limit on multiply-accumulates per image (millions)")
    p.add_argument("--max-mparams", type=v.positive_float, default=None, help="optional limit on parameters (millions)")
    p.add_argument("--population", type=v.int_at_least(4), default=200)
    p.add_argument("--generations", type=v.non_negative_int, default=60)
    p.add_argument("--seed", type=v.seed, default=0)
    p.add_argument("--out", type=Path, default=None, help="artefact folder (default runs/search-<target>-<budget>ms)")
    p.add_argument("--no-measure", action="store_true", help="do not measure the chosen network on the target")
    p.add_argument("--pick-trials", type=v.non_negative_int, default=0,
                   help="MetaSchedule trials on the chosen network's own kernels before export (default 0: none)")
    p.add_argument("--pick-neighbours", type=v.non_negative_int, default=2 * NEIGHBOURS_PER_PICK,
                   help="after --pick-trials, networks near the chosen one timed beside it to refit the residual "
                        f"that prices it (default {2 * NEIGHBOURS_PER_PICK}; fewer than 8: not refitted)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    from . import accuracy, devices, friendliness, transform, tune_model

    accuracy.add_parser(sub)
    devices.add_parser(sub)
    friendliness.add_parser(sub)
    transform.add_parser(sub)
    tune_model.add_parser(sub)
    return parser


def main(argv=None) -> int:
    from ..lower.kernels import ModelError
    from ..table.store import TableError
    from ..search.genetic import SearchError
    from ..space.schema import SpaceError
    from ..targets.spec import TargetError
    from ..accuracy.executors import ExecutorError

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from ..core import interrupt
    from ..core.jsonl import appended_count
    from ..tuning.database import ScheduleDatabaseError

    interrupt.install()  # SIGINT -> 130, SIGTERM -> 143, clean-ups run for both
    try:
        args = build_parser().parse_args(argv)
        v.check(args)
        if getattr(args, "workdir", None) is not None:
            os.environ["CHAMTVM_HOME"] = str(Path(args.workdir).expanduser().resolve())
        code = args.func(args)
        if interrupt.received() is not None and args.command != "device":  # a library swallowed it
            interrupt.reraise_if_interrupted()  # (``device --foreground`` stops on Ctrl-C by design)
        return code
    except (SpaceError, TargetError, TableError, ModelError, SearchError, UsageError, ScheduleDatabaseError,
            ExecutorError) as e:
        print(f"chamtvm: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a read-only or full working folder, a folder where a file belongs, ...
        print(f"chamtvm: error: {v.os_error_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        interrupt.absorb_late()
        n = appended_count()
        saved = (f"{n} finished result(s) were saved before it; a rerun continues from them" if n else
                 "nothing had been saved yet")
        print(f"chamtvm: interrupted ({interrupt.signal_name(e)}); "
              f"{saved}", file=sys.stderr)
        return interrupt.exit_code(e)

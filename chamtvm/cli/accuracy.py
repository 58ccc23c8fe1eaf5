"""``chamtvm accuracy``: find the most accurate network of a space (under latency
budgets) on a task, and build (or resume) its accuracy predictor.

Draws a fixed candidate pool from the space (``--pool``, seeded) and chooses ``--samples``
of them to train with the budget-aware loop (``--strategy budgeted``, the default:
``accuracy.pick_under_budgets``; with ``--target`` the pool's latencies are predicted
from that target's table and the picks are the best *observed* networks under each of
``--budgets-ms``, default the 25/50/75 % quantiles of the pool's latencies; without a
target, one pick: the best of the pool), or by imbalanced-Sobol + Bayesian optimisation
for ranking the whole space (``--strategy bo``) or at random. Trainings go through the
journal (``--journal``; a rerun with the same arguments reuses every finished training
and continues where it stopped); then the GP predictor is fitted on them, saved as JSON
beside the journal, and its cross-validated quality printed (leave-one-out up to 20
samples, else 5-fold: Kendall tau and RMSE in accuracy points).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``accuracy`` subcommand on an ``argparse`` subparsers object."""
    from . import validate as v
    from .arguments import add_known_accuracies_arg

    p = subparsers.add_parser(
        "accuracy", help="train sampled architectures and fit the accuracy predictor",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from ..accuracy.tasks import TASKS

    p.add_argument("--task", choices=TASKS.names(), default="nas-bench-macro",
                   help="accuracy task: " + "; ".join(f"{n}: {t.description}" for n, t in TASKS.items())
                        + " (default nas-bench-macro)")
    p.add_argument("--command", metavar="CMD", dest="trainer_command",
                   help="with --task command: a trainer command; it gets the arch JSON path as its "
                        "last argument and prints the accuracy (fraction or %%) on its last line")
    p.add_argument("--samples", type=v.int_at_least(3), default=20, help="architectures to train (default 20)")
    p.add_argument("--space", default=None,
                   help="bundled space name or JSON file (default: the task's space, macro for nas-bench-macro, "
                        "fashion for the image tasks)")
    from ..accuracy.sampling import SAMPLERS

    p.add_argument("--pool", type=v.positive_int, default=None,
                   help="candidate pool size (default: the whole space up to 10,000 networks, else 200 drawn)")
    p.add_argument("--strategy", choices=["budgeted", *SAMPLERS.names()], default="budgeted",
                   help="budgeted (default): budget-aware lookups, picks = best observed under each budget; "
                        "bo / random: lookups for ranking the whole space")
    p.add_argument("--target", default=None,
                   help="price the pool with this target's latency table (built by `tune`) and pick under budgets")
    p.add_argument("--budgets-ms", type=v.budgets, default=None,
                   help="comma-separated latency budgets in ms (with --target; default: 25/50/75%% quantiles "
                        "of the pool's predicted latencies)")
    p.add_argument("--luts-dir", type=Path, default=None, help="folder of latency tables (default: <workdir>/luts)")
    p.add_argument("--schedules-dir", type=Path, default=None,
                   help="root of MetaSchedule databases (default: <workdir>/schedules)")
    p.add_argument("--no-proxies", action="store_true",
                   help="leave the zero-cost proxies out of the prior features (they cost ~0.5 s of CPU per "
                        "network the first time; cached)")
    p.add_argument("--epochs", type=v.positive_int, default=None, help="override the proxy task's epochs")
    p.add_argument("--journal", type=Path, default=None,
                   help="JSON-lines journal of trainings (default runs/accuracy-<task>-<space>.jsonl)")
    add_known_accuracies_arg(p, "--samples")
    p.add_argument("--workers", type=v.positive_int, default=1,
                   help="parallel training processes (default 1: in-process, one at a time)")
    p.add_argument("--executor", default=None, metavar="SPEC",
                   help="where trainings run: local (default; --workers processes) or dask://HOST:PORT (a Dask "
                        "distributed scheduler; the journal is appended by this process only)")
    p.add_argument("--seed", type=v.seed, default=0, help="seed of the pool, the sampling and the trainings")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Execute the subcommand; returns the process exit code."""
    from ..space.schema import SearchSpace, SpaceError
    from ..accuracy.fit import build_predictor, default_journal, default_pool_size
    from ..accuracy.datasets import DatasetMissingError
    from ..accuracy.journal import Journal, JournalError
    from ..accuracy.tasks import default_space, make_trainer

    def fail(msg: str, code: int = 2) -> int:
        print(f"chamtvm accuracy: error: {msg}", file=sys.stderr)
        return code

    try:
        space = SearchSpace.load(args.space or default_space(args.task))
        trainer_kw = {} if args.task == "command" or args.epochs is None else {"epochs": args.epochs}
        trainer = make_trainer(args.task, args.trainer_command, **trainer_kw)
        trainer.check(space)
    except (SpaceError, ValueError, DatasetMissingError) as e:
        return fail(str(e))
    if args.budgets_ms and not args.target:
        return fail("--budgets-ms needs --target (the latencies the budgets apply to)")
    if args.strategy != "budgeted" and args.target:
        return fail("--target applies to --strategy budgeted")
    latency = None
    if args.target:
        try:
            from ..accuracy.pricing import pool_latency

            latency = pool_latency(space, args.target, args.luts_dir, args.schedules_dir)
        except ValueError as e:
            return fail(str(e))
    journal = Journal(args.journal or default_journal(args.task, space))
    from ..accuracy.executors import ExecutorError, open_executor

    try:
        with open_executor(args.executor, args.workers) as executor:
            built = build_predictor(space, trainer, journal, args.samples, args.pool or default_pool_size(space),
                                    args.strategy, args.seed, executor, progress=not args.json,
                                    latency_ms=latency, budgets_ms=args.budgets_ms, proxies=not args.no_proxies,
                                    known_journal=args.known_accuracies)
    except ExecutorError as e:
        return fail(str(e))
    except (ValueError, DatasetMissingError) as e:
        return fail(str(e))
    except JournalError as e:
        return fail(f"{e} (fix or move the journal; finished lines before it are intact)")
    except RuntimeError as e:
        return fail(str(e), 1)

    from ..accuracy.encoding import pool_features

    pred = built.gp.predict(pool_features(space, built.pool))
    best = int(np.argmax(pred))
    yc, cv = built.accuracies, built.cv
    regret = None
    if built.budgeted is not None and hasattr(trainer, "true_accuracy"):  # a table: the regret is known
        truth = np.asarray(trainer.true_accuracy(space, np.array([space.indices(a) for a in built.pool])))
        regret = [None if r is None else 100 * r for r in built.regret(truth)]
    summary = {
        "task": args.task, "space": space.name, "pool": len(built.pool), "strategy": args.strategy,
        "seed": args.seed, **built.summary(),
        **({"ceiling": trainer.ceiling()} if hasattr(trainer, "ceiling") else {}),
        **({"regret_points": regret} if regret is not None else {}),
        "predicted_best": {"architecture": built.pool[best].to_dict(), "predicted_accuracy": float(pred[best])},
    }
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        cvk = "leave-one-out" if cv["n_folds"] == cv["n"] else f"{cv['n_folds']}-fold"
        print(f"accuracy predictor for space {space.name!r} on {args.task}: {len(built.chosen)} architectures "
              f"({built.trained_now} trained now, {built.resumed} from {journal.path}, {len(built.errors)} failed"
              + (f", {built.known['used_networks']} known from {built.known['journal']}" if built.known else "") + ")")
        print(f"  measured accuracy: {yc.min():.4f} .. {yc.max():.4f} (mean {yc.mean():.4f})")
        tau = "undefined (constant predictions)" if cv["kendall_tau"] is None else f"{cv['kendall_tau']:.3f}"
        ceil = summary.get("ceiling")
        print(f"  {cvk} cross-validation: Kendall tau {tau}, RMSE {cv['rmse'] * 100:.2f} points"
              + (f" (task ceiling: seed-vs-seed tau {ceil['kendall_tau_between_seeds']:.3f})" if ceil else ""))
        if built.budgeted is not None:
            ph = built.budgeted.phase_counts()
            print(f"  lookups: {ph['initial']} initial, {ph['exploration']} exploration, "
                  f"{ph['verification']} verification; surrogate {built.budgeted.final_model}")
            for k, p in enumerate(built.picks()):
                where = "no budget" if not args.target else f"under {p['budget_ms']:g} ms"
                if p["index"] is None:
                    print(f"  pick {where}: none (no network of the pool meets it)")
                    continue
                kind = "observed" if p["observed"] else "PREDICTED (no looked-up network meets the budget)"
                lat = f", {p['latency_ms']:.3g} ms" if args.target else ""
                reg = f", regret {regret[k]:.2f} points (true best of the pool)" if regret is not None else ""
                print(f"  pick {where}: {p['accuracy']:.4f} {kind}{lat}{reg}  {json.dumps(p['architecture'])}")
        print(f"  predicted best of the pool of {len(built.pool)}: {pred[best]:.4f}  {built.pool[best].to_json()}")
        print(f"  predictor saved to {built.predictor_path}")
        for e in summary["errors"]:
            print(f"  training error: {e}")
    return 0


def main(argv=None) -> int:
    """Stand-alone entry (``python -m chamtvm.accuracy.cli ...``) until chamtvm/cli.py wires it."""
    parser = argparse.ArgumentParser(prog="chamtvm")
    sub = parser.add_subparsers(dest="command_name", required=True)
    add_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())

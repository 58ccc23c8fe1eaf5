"""Search speed and reproducibility with the real predictors of a target.

Loads what ``search`` loads (the target's table and saved latency models for the space,
the GP refitted on the accuracy journal), then runs the genetic search at a few budgets
and seeds: candidates evaluated, wall seconds per search (median, min, max), and whether
a repeated seed gives the same network. Also times the two batch predictors alone.

    python benchmarks/bench_search.py [--target x86] [--space fashion] [--seeds 5]

Needs ``python -m chamtvm tune --target T`` (table, models, journal) first. Writes
``benchmarks/results/search_<target>.json``.
"""

from __future__ import annotations

import os
import statistics
import time

from common import RESULTS, argument_parser, parse_args, write_results


def main(argv=None) -> int:
    import numpy as np

    from chamtvm.accuracy.fit import default_journal
    from chamtvm.pipeline.adapt import auto_budgets
    from chamtvm.core.workdir import luts_dir
    from chamtvm.search.context import search_context
    from chamtvm.space.schema import SearchSpace
    from chamtvm.targets.spec import get_target

    ap = argument_parser(__doc__)
    ap.add_argument("--target", default="x86")
    ap.add_argument("--space", default="fashion")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--population", type=int, default=200)
    ap.add_argument("--generations", type=int, default=60)
    args = parse_args(ap, argv)

    space = SearchSpace.load(args.space)
    target = get_target(args.target)
    t0 = time.perf_counter()
    ctx = search_context(space, target, luts_dir(), None, default_journal("fashion-mnist", space))
    load_s = time.perf_counter() - t0
    budgets = auto_budgets(ctx)

    rng = np.random.default_rng(0)
    sizes = np.array([len(c) for _, c in space.dimensions()])
    batch = (rng.random((10000, len(sizes))) * sizes).astype(np.int64)
    predictor_s = {}
    for name, fn in (("latency", ctx.batch.predict_ms), ("accuracy", ctx.accuracy)):
        times = []
        for _ in range(5):
            t = time.perf_counter()
            fn(batch)
            times.append(time.perf_counter() - t)
        predictor_s[name] = {"median": statistics.median(times), "min": min(times), "max": max(times)}

    runs = []
    for budget in budgets:
        for seed in range(args.seeds):
            t = time.perf_counter()
            r = ctx.search(budget, seed, args.population, args.generations)
            runs.append({"budget_ms": budget, "seed": seed, "seconds": time.perf_counter() - t,
                         "evaluated": r.evaluated, "predicted_accuracy": r.best_accuracy,
                         "predicted_latency_ms": r.best_latency_ms, "best": r.best_indices.tolist()})
    again = ctx.search(budgets[0], 0, args.population, args.generations)
    same = again.best_indices.tolist() == runs[0]["best"]
    secs = [r["seconds"] for r in runs]
    result = {
        "target": args.target, "space": space.name, "cpus": os.cpu_count(),
        "load_seconds": round(load_s, 2), "budgets_ms": budgets, "seeds": args.seeds,
        "population": args.population, "generations": args.generations,
        "evaluated_per_search": runs[0]["evaluated"],
        "search_seconds": {"median": statistics.median(secs), "min": min(secs), "max": max(secs)},
        "predictor_seconds_per_10k": predictor_s,
        "same_seed_same_network": same,
        "trained_architectures": ctx.n_trained, "runs": runs,
    }
    print(f"{args.target}/{space.name}: loading predictors {load_s:.1f} s; per search of "
          f"{runs[0]['evaluated']} candidates: median {result['search_seconds']['median']:.3f} s "
          f"(min {min(secs):.3f}, max {max(secs):.3f}, {len(secs)} searches at budgets {budgets} ms)")
    for name, s in predictor_s.items():
        print(f"  {name} predictor, 10,000 candidates: median {s['median'] * 1e3:.1f} ms "
              f"(min {s['min'] * 1e3:.1f}, max {s['max'] * 1e3:.1f})")
    print(f"  same seed, same network: {same}")
    for budget in budgets:
        accs = [r["predicted_accuracy"] for r in runs if r["budget_ms"] == budget]
        print(f"  budget {budget} ms: best predicted accuracy over seeds {100 * min(accs):.2f}..{100 * max(accs):.2f} %")
    write_results(result, RESULTS / f"search_{args.target}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

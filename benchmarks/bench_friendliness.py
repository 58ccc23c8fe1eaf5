"""Hardware-friendly search spaces (issue 21): does the space reduced per target by block
friendliness give the ChamNet loop a better accuracy-latency front than the full space?

Task: NAS-Bench-Macro (``macro`` space, 6,561 networks, real CIFAR-10 accuracies: the 3-seed
mean, what the lookup task returns). Targets: ``x86`` (local) and ``arm`` on the emulated
board (QEMU: every ``arm`` latency is an EMULATION timing, labelled so).

Phases (each resumable; the ones that time networks run under ``quiet-run``):

``table``    the target's kernel table and residual for ``macro`` (``chamtvm tune --space macro
    --task none --trials 0``, untuned unless ``--trials N``) in ``$CHAMTVM_HOME``: what the
    search's predicted latencies and the profile's "table present" use.
``profile``  ``python -m chamtvm friendliness --target T --space macro``: a balanced,
    D-optimal design of 27 networks measured end to end on the target (afresh: the phase gives
    the command a copy of the kernel table and an empty network journal, so every latency it
    reports was measured in this run, under this run's quiet-run record), their accuracies looked up (27 counted lookups: nothing else of the benchmark's
    table is used), the friendliness table and the reduced space (the default rule, ``confident``,
    and knob, drop 1/3, of ``chamtvm/friendly/friendliness.py``). Its wall time is the figure for
    the "< 10 min on x86 with a table present" goal. Then, as a control, the same command with
    ``--rule quota`` (the earlier rule) on the same measurements (nothing measured again).
    ``--reuse-luts DIR`` re-analyses an earlier profile instead: its networks come from the
    journal in DIR (nothing measured; the wall time is then not a profile's).
``rule``     ``chamtvm friendliness --rule R`` (``--rule``, default ``window``) on the profile's
    measurements (nothing measured again, the design's lookups reused): its reduced space is
    searched as ``reduced-R``.
``search``   the ChamNet loop, the same for both spaces: imbalanced-Sobol + BO lookups
    (``accuracy.sampling.sample_and_fit``, the main job's settings ``sampling.DEFAULTS``) over
    the whole space as the pool, the GP, then the genetic search (``search.genetic``,
    population 200, 60 generations, the main job's) on the GP's mean at each budget; 20 / 30 /
    50 lookups x seeds 0-4 (``--seeds N``: 0..N-1), in the full space, in the reduced space
    (``reduced``), in the quota rule's reduced space (``reduced-quota``, the control), and in
    the full space with 27 more lookups (the reduced space's own 27 design lookups: equal *total* lookups). A rule that
    dropped nothing has no reduced space to search. Each space also ``<method>+known``: the loop
    fitted on the profile's design networks that lie in it as well (accuracies known, not looked up
    again; ``sample_and_fit(known=...)``) with the same new lookups. ``--loop budgeted``: the same
    plan with the loop ``chamtvm tune`` runs (``accuracy.budgeted.pick_under_budgets``; the pick
    per budget is the best network looked up), in ``search-budgeted_<t>.json``.
``bounds``   reference reductions no user can make, searched with the same loop and seeds: how
    much a per-position reduction of this space could gain at all (they use every network's
    true accuracy, which the profile never sees). ``bound-exact-rule``: the command's rule and
    knob on the exact effects (``friendly.friendliness.analyse`` over all 6,561 networks, their
    predicted latencies and true accuracies: the profile without noise, as far as the predictor
    is right). ``bound-exact-window``: the same with the window rule. ``bound-oracle``: at
    each position only the choices that the exact best networks under the nine budgets use
    (no reduction loss, the smallest such space). Not timings.
``measure``  the distinct picks measured end to end on the target (network journal; ``--max``
    caps how many, the emulated board is slow).
``report``   ``benchmarks/results/friendliness_macro.json`` and ``friendliness_macro.png``.
``stagewise`` ``python -m chamtvm friendliness --target T --space fashion --task none`` (``--space``):
    a stage-wise space's latency contributions (kernel, expansion, depth, width per stage) from
    its design networks measured end to end in a fresh journal; latency only (its accuracies need
    trainings); the report carries it (``stagewise``).
``designs``  the whole method replicated: ``--designs DIR,DIR,...``, working folders whose profiles
    used other ``--design-seed``s (another design: other networks measured, another reduction),
    each with its rules and searches. Scores them like ``report`` and pairs each comparison by
    (design, search seed ``0..--seeds-1``), with the design as the unit: each design's mean over
    its seeds, and a t-interval over designs (``common.paired.replicated``); a rule that dropped
    nothing on a design leaves the full space there (difference 0). Also which choices each rule
    dropped over the designs, per target. ``benchmarks/results/friendliness_macro_designs.json``.
``timing``   ``benchmarks/results/friendliness_profile_<target>.json``: the last profile's wall
    time with its quiet-run record, and its kept choices against the ones the report used
    (``--runs DIR`` keeps such a profile apart from the search benchmark's working folder;
    ``--luts-from`` / ``--schedules-from`` give the profile a main job's table and schedules).

Latency used by each figure (said again in the JSON):
* the search, the budgets, the regret and the hypervolumes: the target's latency predictor
  (kernel table + the macro space's residual, ``BatchLatencyPredictor``), the same function
  for every network of both spaces (a reduced network is priced as the full-space network it
  is), because the 6,561 networks cannot all be measured end to end here;
* friendliness: end-to-end measurements of the design networks only;
* ``picks_measured``: the picks measured end to end (``measure --methods full,reduced``: only
  those methods' picks, in a seeded shuffled order, so a drift of the host's speed falls on every
  method alike; ``--fresh-journal``: none reused from earlier phases), their predicted-vs-measured
  error, and the hypervolume recomputed with the picks' measured latencies
  (``hv_measured_latency``) and with them divided by the phase's median measured/predicted
  ratio (``hv_measured_latency_scaled``: the host's speed in that phase taken out, one factor for
  all methods).

Figures: budgets = the 10 %, 20 %, ..., 90 % quantiles of the full space's predicted latencies;
regret at a budget = (true best accuracy of the *full* space under it) - (true accuracy of the
pick), points; hypervolume of the true (accuracy, latency) front of the picks at all budgets,
over the latency window from the smallest to the largest budget, above the lowest accuracy of the
space (``hv``; above the median accuracy: ``hv_median_ref``), as a share of the exact best
front's over the same window (all 6,561 networks; ``hv_ratio``, ``hv_median_ref_ratio``), and as
``hv_gap_points`` = (exact - found) / window width: the mean accuracy gap, in points, between
the found front's staircase and the exact front's over the window (independent of the
reference accuracy).
``reduction_loss_points``: how much less accurate the reduced space's best network under each
budget is than the full space's (a floor on the reduced space's regret). Differences reduced -
full are paired by seed (mean, std, min, max).

    python benchmarks/bench_friendliness.py profile --target x86
    python benchmarks/bench_friendliness.py search --target x86
    python benchmarks/bench_friendliness.py measure --target x86 [--max 200]
    python benchmarks/bench_friendliness.py report
Run ``profile`` and ``measure`` under ``../shared/tools/quiet-run --record runs/quiet_records.jsonl``:
the report attaches each profile's quiet-run record (``friendliness.quiet_run``) from that file.
(``--tracker HOST:PORT --key arm`` for arm, or ``--emulate-arm PORT``: the phase starts the emulated
board as its own child processes, so ``quiet-run`` counts the emulator's CPU as the job's.)
"""

from __future__ import annotations

import json
from contextlib import contextmanager, nullcontext
import time
from pathlib import Path

from common import (REPO, RESULTS, argument_parser, one_blas_thread, parse_args, pyplot, run_chamtvm, save_figure,
                    write_results)
from common.paired import paired_summary, replicated, summary

one_blas_thread()

import numpy as np  # noqa: E402

LOOKUPS = [20, 30, 50]
SEEDS = [0, 1, 2, 3, 4]
QUANTILES = [round(q, 2) for q in np.arange(0.1, 0.91, 0.1)]
POPULATION, GENERATIONS = 200, 60  # the main job's genetic search (pipeline.config.TuneConfig)
RUNS = REPO / "runs" / "bench_friendliness"
QUIET_RECORDS = REPO / "runs" / "quiet_records.jsonl"
TARGETS = ("x86", "arm")


def rel(path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return Path(path).name


def load_json(path: Path):
    return json.loads(Path(path).read_text()) if Path(path).exists() else None


def save_json(obj, path: Path) -> None:
    from chamtvm.core.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=1))


def tracker_args(args) -> list[str]:
    return ["--tracker", args.tracker, "--key", args.key] if args.tracker else []


_PREDICTED: dict[tuple, tuple] = {}  # predicted_latency's results by what they were computed from


def predicted_latency(target: str):
    """The ``macro`` space, all its index rows, their predicted latency (ms) on ``target``
    (``accuracy.pricing.pool_latency``: kernel table + the macro space's residual) and what it used.
    Computed once per state of the working folder's tables and schedules (``designs`` scores
    the same target in several folders and loops)."""
    from chamtvm.core.workdir import luts_dir, schedules_root

    state = (target, str(luts_dir()), str(schedules_root()),
             tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size)
                          for p in Path(luts_dir()).glob("*") if p.is_file())))
    if state not in _PREDICTED:
        _PREDICTED[state] = _predicted_latency(target)
    return _PREDICTED[state]


def _predicted_latency(target: str):
    from chamtvm.accuracy.pricing import pool_latency
    from chamtvm.core.workdir import luts_dir, schedules_root
    from chamtvm.pipeline.regret import all_indices
    from chamtvm.space.schema import SearchSpace
    from chamtvm.table.store import LatencyTable

    space = SearchSpace.load("macro")
    idx = all_indices(space)
    try:
        lat = pool_latency(space, target, luts_dir(), schedules_root())(idx)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    return space, idx, lat, {"table_rows": len(LatencyTable.for_target(target, luts_dir()))}


# -------------------------------------------------------------------------------- table
def phase_table(args) -> None:
    """The target's kernel table and residual for ``macro`` in the working folder
    (``$CHAMTVM_HOME``): ``chamtvm tune --space macro --task none`` (the latency steps only),
    untuned (``--trials 0``) unless ``--trials N``. The search's predicted latencies come from it."""
    res = run_chamtvm(["tune", "--target", args.target, "--space", "macro", "--task", "none",
                       "--trials", str(args.trials), "--no-calibration", "--no-progress",
                       "--out", str(RUNS / f"table_{args.target}.json"), *tracker_args(args)],
                      log_path=RUNS / f"table_{args.target}.log")
    write_results({"target": args.target, "wall_s": round(res["wall_s"], 1), "trials": args.trials,
                   "report": load_json(RUNS / f"table_{args.target}.json")}, RUNS / f"table_{args.target}_run.json")
    print(f"{args.target} table for macro in {res['wall_s']:.0f} s", flush=True)


# ------------------------------------------------------------------------------ profile
def fresh_luts(target: str, luts_from: Path | None = None) -> Path:
    """A folder holding a copy of the target's kernel table (from ``luts_from``, default the
    working folder's tables) and no network journal: the profile measures its design networks
    in this run (the command still has its table present)."""
    import shutil

    from chamtvm.core.workdir import luts_dir, table_path

    folder = RUNS / f"luts-{target}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    folder.mkdir(parents=True)
    shutil.copy(table_path(target, luts_from or luts_dir()), folder / f"{target}.jsonl")
    return folder


def phase_profile(args) -> None:
    """``chamtvm friendliness`` on a copy of the table (and of ``--schedules-from``'s databases:
    the design networks are built with the schedules a main job left, as a user's would be)."""
    import shutil

    out = RUNS / f"friendliness-{args.target}-macro"
    luts = args.reuse_luts.resolve() if args.reuse_luts else fresh_luts(args.target, args.luts_from)
    schedules = []
    if args.schedules_from:
        copy = luts.parent / f"schedules-{luts.name}"
        shutil.copytree(args.schedules_from, copy, ignore=shutil.ignore_patterns("*.lock"))
        schedules = ["--schedules-dir", str(copy)]
    size = ["--networks", str(args.networks)] if args.networks else []
    size += ["--seed", str(args.design_seed)]
    res = run_chamtvm(["friendliness", "--target", args.target, "--space", "macro", "--out", str(out),
                       "--luts-dir", str(luts), *schedules, *size, "--no-progress", *tracker_args(args)],
                      log_path=RUNS / f"profile_{args.target}.log", json_output=True)
    doc = res["json"]
    # the control: the earlier rule (quota) on the same measurements; the command reuses the 27
    # networks from the journal and the accuracies from the accuracy journal (nothing measured)
    quota = run_chamtvm(["friendliness", "--target", args.target, "--space", "macro", "--out", str(out) + "-quota",
                         "--luts-dir", str(luts), *schedules, *size, "--no-progress", "--rule", "quota",
                         *tracker_args(args)], log_path=RUNS / f"profile_{args.target}.log", json_output=True)["json"]
    write_results({"wall_s": round(res["wall_s"], 1), "luts_dir": rel(luts), "design_seed": args.design_seed,
                   "luts_from": rel(args.luts_from) if args.luts_from else None,
                   "schedules_from": rel(args.schedules_from) if args.schedules_from else None, "document": doc,
                   "quota_control": {"measured_now": quota["networks"]["measured_now"], "kept": quota["kept"],
                                     "rule": quota["rule"], "reduced_space": quota["outputs"].get("reduced_space")}},
                  RUNS / f"profile_{args.target}.json")
    print(f"profiled {args.target} in {res['wall_s']:.0f} s; reduced space {doc['outputs'].get('reduced_space')}; "
          f"quota rule's {quota['outputs'].get('reduced_space')}")


def phase_stagewise(args) -> None:
    """``chamtvm friendliness --target T --space S --task none`` on a stage-wise space (default
    ``fashion``: kernel, expansion, depth and width per stage): the latency contribution of each
    value at each stage from the design networks measured end to end, in a fresh network journal.
    Latency only: this space's accuracies need trainings (``--task fashion-mnist``), so there is
    no friendliness and no reduced space."""
    out = RUNS / f"friendliness-{args.target}-{args.space}"
    luts = fresh_luts(args.target)
    res = run_chamtvm(["friendliness", "--target", args.target, "--space", args.space, "--task", "none",
                       "--out", str(out), "--luts-dir", str(luts), "--no-progress", *tracker_args(args)],
                      log_path=RUNS / f"stagewise_{args.space}_{args.target}.log", json_output=True)
    write_results({"space": args.space, "wall_s": round(res["wall_s"], 1), "luts_dir": rel(luts),
                   "document": res["json"]}, RUNS / f"stagewise_{args.space}_{args.target}.json")
    print(f"{args.space} on {args.target}: {res['json']['networks']['measured_ok']} networks in {res['wall_s']:.0f} s")


def stagewise(target: str) -> dict | None:
    """What the ``stagewise`` phase left for ``target`` (any space): the latency fit and every
    position's contributions, with the run's quiet-run record."""
    out = {}
    for path in sorted(RUNS.glob(f"stagewise_*_{target}.json")):
        run = load_json(path)
        doc = run["document"]
        out[run["space"]] = {
            "wall_s": run["wall_s"], "networks": doc["networks"]["measured_ok"], "design": doc["design"],
            "latency_fit": doc["latency_fit"], "notes": doc.get("notes"),
            "rows": [{k: r.get(k) for k in ("position", "choice", "latency_ms", "latency_ci_ms", "latency_share",
                                            "baseline")} for r in doc["rows"]],
            "provenance": run.get("provenance"),
            "quiet_run": quiet_record("stagewise", target, run.get("provenance") or {})}
    return out or None


def phase_timing(args) -> None:
    """``friendliness_profile_<target>.json``: one profile's wall time with its quiet-run
    record (the "< 10 min on x86 with a table present" goal), and whether it kept the same
    choices as the profile the search benchmark used (``friendliness_macro.json``)."""
    prof = load_json(RUNS / f"profile_{args.target}.json")
    if prof is None:
        raise SystemExit(f"no profile in {rel(RUNS)}: run the profile phase first (with --runs {rel(RUNS)})")
    doc = prof["document"]
    kept = doc["kept"]
    earlier = load_json(RESULTS / "friendliness_macro.json") or {}
    before = ((earlier.get("targets") or {}).get(args.target) or {}).get("friendliness", {}).get("kept")
    cells = lambda k: {(pos, c) for pos, cs in (k or {}).items() for c in cs}  # noqa: E731
    same = None
    if before and kept:
        a, b = cells(kept), cells(before)
        same = {"identical": a == b, "jaccard": round(len(a & b) / max(len(a | b), 1), 3),
                "only_now": sorted(f"{p}:{c}" for p, c in a - b), "only_before": sorted(f"{p}:{c}" for p, c in b - a)}
    res = {"target": args.target, "wall_s": prof["wall_s"], "limit_s": 600,
           "quiet_run": quiet_record("profile", args.target, prof.get("provenance", {})),
           "networks_measured_now": doc["networks"]["measured_now"], "networks": doc["networks"]["measured_ok"],
           "latency_fit": doc["latency_fit"], "seconds": doc["seconds"],
           "table_present": prof.get("luts_from") or "the working folder's table",
           "schedules_from": prof.get("schedules_from"),
           "kept": kept, "kept_vs_search_benchmark_profile": same, "document": doc}
    write_results(res, RESULTS / f"friendliness_profile_{args.target}.json", measurements_from=RUNS / f"profile_{args.target}.json")


# ------------------------------------------------------------------------------- search
def hypervolume(acc, lat, acc_ref: float, lat_ref: float, lat_lo: float) -> float:
    """Hypervolume of the points (higher accuracy, lower latency) inside the window of latencies
    ``[lat_lo, lat_ref]`` above ``acc_ref``: the integral over that window of ``max(0, f(t) -
    acc_ref)`` with ``f(t)`` the best accuracy among points no slower than ``t`` (the staircase
    of their front). The exact front's staircase is the highest, so its value bounds any set's."""
    acc, lat = np.asarray(acc, float), np.asarray(lat, float)
    order = np.argsort(lat, kind="stable")
    acc, lat = acc[order], lat[order]
    best = np.maximum.accumulate(acc)
    cuts = np.unique(np.clip(np.r_[lat, lat_lo, lat_ref], lat_lo, lat_ref))
    total = 0.0
    for t0, t1 in zip(cuts[:-1], cuts[1:]):
        n = np.searchsorted(lat, t0, side="right")
        if n:
            total += max(best[n - 1] - acc_ref, 0.0) * (t1 - t0)
    return float(total)


def flat_strides(space) -> np.ndarray:
    """Multipliers of choice indices giving a network's row in ``pipeline.regret.all_indices(space)``."""
    sizes = np.array([len(c) for _, c in space.dimensions()])
    return np.r_[np.cumprod(sizes[::-1])[::-1][1:], 1]


def exact_front(acc, lat) -> np.ndarray:
    """Indices of the non-dominated points, latency ascending."""
    from chamtvm.search.genetic import pareto_front

    return pareto_front(np.asarray(acc, float), np.asarray(lat, float))


class Loop:
    """The ChamNet loop on one space whose networks map into ``macro`` (the evaluation frame)."""

    def __init__(self, space, full, truth_full, lat_full):
        from chamtvm.pipeline.regret import all_indices

        self.space = space
        self.pool = all_indices(space)
        maps = [[full_choices.index(c) for c in choices]
                for (_, choices), (_, full_choices) in zip(space.dimensions(), full.dimensions())]
        self.to_full_cols = maps
        self.full_strides = flat_strides(full)
        self.own_strides = flat_strides(space)
        self.pool_full = self.to_full(self.pool)
        self.truth = truth_full[self.full_flat(self.pool_full)]
        self.lat_full = lat_full
        self.lat = lat_full[self.full_flat(self.pool_full)]

    def to_full(self, idx) -> np.ndarray:
        idx = np.atleast_2d(idx)
        return np.column_stack([np.asarray(m)[idx[:, d]] for d, m in enumerate(self.to_full_cols)])

    def full_flat(self, full_idx) -> np.ndarray:
        return np.atleast_2d(full_idx) @ self.full_strides

    def own_flat(self, idx) -> np.ndarray:
        return np.atleast_2d(idx) @ self.own_strides

    def own_rows(self, full_idx) -> np.ndarray:
        """Pool rows of the full-space networks ``full_idx`` ``(n, D)`` that lie in this space
        (the others left out), in the given order."""
        rows = []
        for r in np.atleast_2d(full_idx):
            try:
                own = [m.index(int(c)) for m, c in zip(self.to_full_cols, r)]
            except ValueError:  # a choice this space dropped
                continue
            rows.append(int(self.own_flat(own)[0]))
        return np.array(rows, dtype=np.int64)

    def run(self, lookups: int, seed: int, budgets, known_full=None) -> dict:
        """``lookups`` new lookups; ``known_full``: full-space index rows whose accuracies the
        loop already has (the profile's design networks): those in this space join every fit
        (``sample_and_fit``'s ``known``) and are never looked up again."""
        from chamtvm.accuracy.encoding import accuracy_features
        from chamtvm.accuracy.fit import LOG_ERROR_SCALE
        from chamtvm.accuracy.sampling import DEFAULTS, sample_and_fit
        from chamtvm.search.genetic import SearchError, genetic_search

        X = accuracy_features(self.space, self.pool)
        known = None
        if known_full is not None:
            rows = self.own_rows(known_full)
            known = (rows, self.truth[rows])
        gp, chosen = sample_and_fit(X, lambda i: self.truth[i], lookups, "bo", seed=seed, kernel=DEFAULTS["kernel"],
                                    acquisition=DEFAULTS["acquisition"], kappa=DEFAULTS["kappa"],
                                    skew=DEFAULTS["skew"], log_error_scale=LOG_ERROR_SCALE, known=known)
        mean = gp.predict(X)  # the GP's mean of every network of the space, looked up by the search
        picks = []
        for b in budgets:
            try:
                res = genetic_search(self.space, lambda idx: mean[self.own_flat(idx)],
                                     lambda idx: self.lat[self.own_flat(idx)], b, np.random.default_rng(seed),
                                     population=POPULATION, generations=GENERATIONS)
            except SearchError:
                picks.append(None)
                continue
            picks.append([int(v) for v in self.to_full(res.best_indices)[0]])
        out = {"lookups": int(len(chosen)), "picks": picks}
        if known is not None:
            out["known"] = int(len(known[0]))  # of the lookups, those the design had (not looked up again)
        return out

    def run_budgeted(self, lookups: int, seed: int, budgets, known_full=None) -> dict:
        """The loop ``chamtvm tune`` runs (``accuracy.budgeted.pick_under_budgets``, the main
        job's encoding, its prior of log parameters and log MACs; the main job adds zero-cost
        proxies where a bundle has them: left out here, the same for every space) under the
        same budgets: each pick is the best network looked up under its budget. ``known_full``
        as in :meth:`run`."""
        from chamtvm.accuracy.budgeted import pick_under_budgets
        from chamtvm.accuracy.encoding import accuracy_features

        enc = accuracy_features(self.space, self.pool, cost=False)
        prior = accuracy_features(self.space, self.pool)[:, enc.shape[1]:]
        known = None
        if known_full is not None:
            rows = self.own_rows(known_full)
            known = (rows, self.truth[rows])
        res = pick_under_budgets(enc, lambda i: self.truth[i], self.lat, budgets, lookups, seed=seed, prior=prior,
                                 known=known)
        picks = [None if p.index is None else [int(v) for v in self.to_full(self.pool[p.index])[0]]
                 for p in res.picks]
        out = {"lookups": res.n_lookups + res.n_known, "picks": picks,
               "observed": [bool(p.observed) for p in res.picks]}
        if known is not None:
            out["known"] = res.n_known
        return out


KNOWN = "+known"  # method suffix: the loop also fits on the profile's design networks (their accuracies known)


def base_method(key: str) -> str:
    """The space a run's method searched: ``reduced-window+known/20/3`` -> ``reduced-window``."""
    m = key.split("/")[0]
    return m[:-len(KNOWN)] if m.endswith(KNOWN) else m


def reusable_runs(cache: dict, budgets: list, reduced_dims: dict, full_loop: Loop, loop: str = "chamnet",
                  design: list | None = None) -> dict:
    """The cached runs still valid: none under other budgets; a reduced space's (method
    ``reduced`` or ``reduced-quota``) only for the same reduced space; ``<method>+known`` only for
    the same design (``design``: its full-space indices; a profile with another design seed has
    other networks), ``full+design`` for as many design lookups; the full space's (which do not
    depend on the reduction) only if this code reproduces the first cached one exactly
    (recomputed now; the check is recorded)."""
    runs = dict(cache.get("runs", {})) if cache.get("budgets_ms") == budgets else {}
    before = cache.get("design_indices")
    if before != design:
        runs = {k: v for k, v in runs.items() if not k.split("/")[0].endswith(KNOWN)
                and not (k.startswith("full+design/") and len(before or []) != len(design or []))}
    before = cache.get("reduced_dimensions") or {}
    runs = {k: v for k, v in runs.items() if not k.startswith("reduced")
            or (isinstance(before, dict) and before.get(base_method(k)) == reduced_dims.get(base_method(k)))}
    full = sorted((k for k in runs if not k.startswith("reduced")),
                  key=lambda k: (not k.startswith("full/"), int(k.split("/")[1]), k))
    if full:
        first = runs[full[0]]
        run = full_loop.run if loop == "chamnet" else full_loop.run_budgeted
        again = run(int(first["lookups"]), int(full[0].split("/")[2]), budgets)
        same = again["picks"] == first["picks"] and again["lookups"] == first["lookups"]
        print(f"cached {full[0]} reproduced: {same}", flush=True)
        CACHE_CHECKS.append({"run": full[0], "reproduced_picks": same})
        if not same:
            runs = {k: v for k, v in runs.items() if k.startswith("reduced")}
    return runs


CACHE_CHECKS: list[dict] = []
LOOPS = {"chamnet": "GP + BO lookups (sampling.sample_and_fit), then the genetic search on the GP's mean per budget",
         "budgeted": "the loop `chamtvm tune` runs (accuracy.budgeted.pick_under_budgets): per budget the best "
                     "network looked up"}


def search_path(target: str, loop: str = "chamnet") -> Path:
    """The search phase's runs of one loop: ``search_<t>.json`` (the ChamNet loop) or
    ``search-budgeted_<t>.json``."""
    return RUNS / (f"search_{target}.json" if loop == "chamnet" else f"search-{loop}_{target}.json")


def phase_search(args) -> None:
    from chamtvm.accuracy.nasbench import NasBenchMacro
    from chamtvm.space.schema import SearchSpace

    prof = load_json(RUNS / f"profile_{args.target}.json")
    if prof is None:
        raise SystemExit(f"run the profile phase for {args.target} first")
    doc = prof["document"]
    # the default rule's reduced space, and the earlier (quota) rule's on the same profile as a control;
    # a rule that dropped nothing has no reduced space (its "reduced space" is the full one)
    paths = {"reduced": doc["outputs"].get("reduced_space"),
             "reduced-quota": (prof.get("quota_control") or {}).get("reduced_space")}
    for f in sorted(RUNS.glob(f"rule_*_{args.target}.json")):  # other rules on the same profile (phase rule)
        paths[f"reduced-{f.name[len('rule_'):-len(f'_{args.target}.json')]}"] = load_json(f).get("reduced_space")
    full, idx_full, lat_full, latency_info = predicted_latency(args.target)
    truth = NasBenchMacro.load().true_accuracy(idx_full)  # fraction, rows in index order
    spaces = {m: SearchSpace.load(REPO / p) for m, p in paths.items() if p}
    for m, p in paths.items():
        if not p:
            print(f"{args.target}: rule of '{m}' dropped nothing: no reduced space to search", flush=True)
    budgets = [float(f"{q:.4g}") for q in np.quantile(lat_full, QUANTILES)]
    loops = {"full": Loop(full, full, truth, lat_full), **{m: Loop(sp, full, truth, lat_full) for m, sp in spaces.items()}}
    design_lookups = int(doc["accuracy"]["counted"])
    cache_path = search_path(args.target, args.loop)
    cache = load_json(cache_path) or {}
    reduced_dims = {m: [[path, list(choices)] for path, choices in sp.dimensions()] for m, sp in spaces.items()}
    design_rows = np.array(doc["networks"]["indices"], dtype=np.int64)  # the design, full-space indices
    runs = reusable_runs(cache, budgets, reduced_dims, loops["full"], args.loop, design_rows.tolist())
    plan = [("full", n, n) for n in LOOKUPS] + [(m, n, n) for m in spaces for n in LOOKUPS] + \
           [("full+design", n, n + design_lookups) for n in LOOKUPS]
    plan += [(m + KNOWN, n, n) for m in ["full", *spaces] for n in LOOKUPS]
    if args.methods:  # only these (the budgeted loop with many lookups takes minutes a run)
        wanted = args.methods.split(",")
        plan = [x for x in plan if x[0] in wanted]
    for method, n, loop_n in plan:
        for seed in (list(range(args.seeds)) if not args.quick else SEEDS[:2]):
            key = f"{method}/{n}/{seed}"
            if key in runs:
                continue
            t0 = time.time()
            loop = loops["full" if method == "full+design" else base_method(key)]
            run = loop.run if args.loop == "chamnet" else loop.run_budgeted
            out = run(loop_n, seed, budgets, known_full=design_rows if method.endswith(KNOWN) else None)
            out["seconds"] = round(time.time() - t0, 1)
            runs[key] = out
            save_json({"budgets_ms": budgets, "reduced_dimensions": reduced_dims, "runs": runs,
                       "design_indices": design_rows.tolist()}, cache_path)
            print(f"{args.target} {key}: {out['seconds']} s", flush=True)
    write_results({"budgets_ms": budgets, "reduced_dimensions": reduced_dims, "runs": runs, "latency": latency_info,
                   "reduced_spaces": {m: rel(REPO / p) if p else None for m, p in paths.items()},
                   "reduced_sizes": {m: sp.size() for m, sp in spaces.items()},
                   "design_lookups": design_lookups, "design_indices": design_rows.tolist(), "loop": args.loop,
                   "cache_checks": CACHE_CHECKS}, cache_path)


# --------------------------------------------------------------------------------- rule
def phase_rule(args) -> None:
    """``chamtvm friendliness --rule R`` on the profile's measurements (its table copy and
    journal: nothing measured again, the design's lookups reused from the accuracy journal),
    written to ``rule_<R>_<target>.json``; ``search`` then searches its reduced space as
    ``reduced-<R>``."""
    prof = load_json(RUNS / f"profile_{args.target}.json")
    if prof is None:
        raise SystemExit(f"run the profile phase for {args.target} first")
    doc = prof["document"]
    res = run_chamtvm(["friendliness", "--target", args.target, "--space", "macro",
                       "--out", str(RUNS / f"friendliness-{args.target}-macro-{args.rule}"),
                       "--luts-dir", str(REPO / prof["luts_dir"]), "--networks", str(doc["networks"]["measured_ok"]),
                       "--seed", str(prof.get("design_seed", 0)), "--no-progress", "--rule", args.rule,
                       *tracker_args(args)],
                      log_path=RUNS / f"rule_{args.rule}_{args.target}.log", json_output=True)
    got = res["json"]
    if got["networks"]["measured_now"]:
        raise SystemExit(f"the rule's run measured {got['networks']['measured_now']} networks: not the profile's")
    write_results({"rule": got["rule"], "kept": got["kept"], "rows": got["rows"],
                   "reduced_space": got["outputs"].get("reduced_space"), "networks": got["networks"]["measured_ok"],
                   "accuracy": got["accuracy"], "profile": rel(RUNS / f"profile_{args.target}.json")},
                  RUNS / f"rule_{args.rule}_{args.target}.json")


# ------------------------------------------------------------------------------- bounds
def bound_spaces(full, idx_full, lat_full, truth_pts, budgets) -> dict:
    """The reference reductions of ``phase_bounds``: method -> (space or None where it drops
    nothing, what it kept, why)."""
    from chamtvm.friendly.friendliness import DEFAULT_DROP, DEFAULT_RULE, analyse
    from chamtvm.space.restrict import restrict

    exact = analyse(full, idx_full, lat_full, truth_pts, drop=DEFAULT_DROP, rule=DEFAULT_RULE)
    kept_rule = exact.kept()
    kept_window = analyse(full, idx_full, lat_full, truth_pts, drop=DEFAULT_DROP, rule="window").kept()
    paths = list(kept_rule)
    dims = [d for d, (_, choices) in enumerate(full.dimensions()) if len(choices) > 1]
    assert len(dims) == len(paths)
    best = [int(np.flatnonzero(lat_full <= b)[np.argmax(truth_pts[lat_full <= b])]) for b in budgets]
    kept_oracle = {}
    for path, d in zip(paths, dims):
        choices = full.dimensions()[d][1]
        used = sorted({int(idx_full[i][d]) for i in best})
        kept_oracle[path] = tuple(choices[c] for c in used)
    out = {}
    for method, kept, why in (
            ("bound-exact-rule", kept_rule,
             f"the {DEFAULT_RULE} rule (drop {DEFAULT_DROP:.3g}) on every network's predicted latency and true accuracy"),
            ("bound-exact-window", kept_window,
             f"the window rule (drop {DEFAULT_DROP:.3g}) on every network's predicted latency and true accuracy"),
            ("bound-oracle", kept_oracle, "only the choices the exact best networks under the budgets use")):
        if all(len(k) == len(full.dimensions()[d][1]) for k, d in zip(kept.values(), dims)):
            out[method] = (None, kept, why)
            continue
        sp = restrict(full, kept, f"{full.name}-{method}")  # a reference reduction, not a method: ``why``
        out[method] = (sp, kept, why)
    return out


def phase_bounds(args) -> None:
    """``bound-exact-rule`` and ``bound-oracle`` (module docstring) searched like the others."""
    from chamtvm.accuracy.nasbench import NasBenchMacro

    search = load_json(RUNS / f"search_{args.target}.json")
    if search is None:
        raise SystemExit(f"run the search phase for {args.target} first (the bounds use its budgets)")
    budgets = search["budgets_ms"]
    full, idx_full, lat_full, _ = predicted_latency(args.target)
    truth = NasBenchMacro.load().true_accuracy(idx_full)
    spaces = bound_spaces(full, idx_full, lat_full, 100 * truth, budgets)
    cache_path = RUNS / f"bounds_{args.target}.json"
    cache = load_json(cache_path) or {}
    kept = {m: {p: list(c) for p, c in k.items()} for m, (_, k, _) in spaces.items()}
    before = cache.get("kept") or {}  # a method's runs stay valid while its space does
    runs = {k: v for k, v in (cache.get("runs") or {}).items()
            if cache.get("budgets_ms") == budgets and before.get(k.split("/")[0]) == kept.get(k.split("/")[0])}
    out_dir = RUNS / f"bounds-{args.target}"
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for m, (sp, k, why) in spaces.items():
        sizes = {p: len(c) for p, c in zip(k, (c for _, c in full.dimensions() if len(c) > 1))}
        print(f"{args.target} {m}: {why}: kept " + ", ".join(f"{p} {list(c)}" for p, c in k.items()
                                                             if len(c) < sizes[p]), flush=True)
        if sp is None:
            print(f"{args.target} {m}: drops nothing: no space to search", flush=True)
            files[m] = None
            continue
        path = out_dir / f"{sp.name}.json"
        save_json(sp.to_dict(), path)
        files[m] = rel(path)
        loop = Loop(sp, full, truth, lat_full)
        for n in LOOKUPS:
            for seed in range(args.seeds):
                key = f"{m}/{n}/{seed}"
                if key in runs:
                    continue
                t0 = time.time()
                runs[key] = {**loop.run(n, seed, budgets), "seconds": round(time.time() - t0, 1)}
                save_json({"budgets_ms": budgets, "kept": kept, "spaces": files, "runs": runs}, cache_path)
                print(f"{args.target} {key}: {runs[key]['seconds']} s", flush=True)
    write_results({"budgets_ms": budgets, "kept": kept, "spaces": files, "runs": runs,
                   "sizes": {m: (sp.size() if sp is not None else None) for m, (sp, _, _) in spaces.items()}}, cache_path)


# ------------------------------------------------------------------------------ measure
def phase_measure(args) -> None:
    from chamtvm.core.workdir import luts_dir, schedules_root
    from chamtvm.friendly.profile import measure_networks
    from chamtvm.measure.runners import make_runner
    from chamtvm.core.hostport import parse_hostport
    from chamtvm.space.schema import SearchSpace
    from chamtvm.table.networks import network_table
    from chamtvm.table.store import LatencyTable
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.schedules import ScheduleSource

    search = load_json(RUNS / f"search_{args.target}.json")
    if search is None:
        raise SystemExit(f"run the search phase for {args.target} first")
    methods = sorted({k.split("/")[0] for k in search["runs"]})
    wanted = args.methods.split(",") if args.methods else methods
    unknown = sorted(set(wanted) - set(methods))
    if unknown:
        raise SystemExit(f"--methods: {', '.join(unknown)} not in this search (it has {', '.join(methods)})")
    # distinct picks of the wanted methods, most-used first (ties: seeded order), so a cap keeps the
    # ones most figures need; then measured in a seeded shuffled order, so the methods' picks are
    # interleaved and a drift of the host's speed during the phase falls on all of them alike
    counts: dict[tuple, int] = {}
    for key, run in search["runs"].items():
        if key.split("/")[0] in wanted:
            for p in run["picks"]:
                if p is not None:
                    counts[tuple(p)] = counts.get(tuple(p), 0) + 1
    rng = np.random.default_rng(0)
    tie = {k: rng.random() for k in counts}
    rows = sorted(counts, key=lambda k: (-counts[k], tie[k]))[:args.max]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    target = get_target(args.target)
    space = SearchSpace.load("macro")
    tracker = parse_hostport(args.tracker, "tracker") if args.tracker else None
    runner = make_runner(target, tracker, args.key)
    luts = fresh_luts(args.target) if args.fresh_journal else luts_dir()
    with runner:
        m = measure_networks(space, np.array(rows), target, runner, ScheduleSource(target, schedules_root() / target.name),
                             LatencyTable.for_target(target.name, luts), network_table(target, luts), progress=True,
                             desc=f"picks on {target.name} (measure end to end)")
        label, emulated = runner.label, bool(runner.emulated)
    measured = {json.dumps(r.tolist()): {"ms": float(ms), "spread_pct": float(s)}
                for r, ms, s in zip(m.indices, m.latency_ms, m.spread_pct)}
    write_results({"measured": measured, "methods": wanted, "distinct_picks": len(counts), "asked": len(rows),
                   "order": "seeded shuffle (methods interleaved)", "failed": m.failed,
                   "measured_now": m.measured_now, "reused": m.reused, "device_label": label, "emulated": emulated,
                   "luts_dir": rel(luts) if args.fresh_journal else None},
                  RUNS / f"measured_{args.target}.json")
    print(f"{args.target}: {len(measured)} of {len(counts)} distinct picks measured ({m.measured_now} now)")


# ------------------------------------------------------------------------------- report
FIELDS = ("hv", "hv_ratio", "hv_gap_points", "hv_median_ref", "hv_median_ref_ratio", "mean_regret_points",
          "hv_measured_latency", "hv_measured_latency_scaled", "hv_median_ref_measured_latency_scaled")


def evaluate_target(target: str, loop: str = "chamnet") -> dict | None:
    from chamtvm.accuracy.nasbench import NasBenchMacro
    from chamtvm.core.metrics import fidelity
    from chamtvm.space.schema import SearchSpace

    prof, search = load_json(RUNS / f"profile_{target}.json"), load_json(search_path(target, loop))
    if prof is None or search is None:
        return None
    measured = (load_json(RUNS / f"measured_{target}.json") or {}).get("measured", {})
    full, idx_full, lat_full, _ = predicted_latency(target)
    truth = 100 * NasBenchMacro.load().true_accuracy(idx_full)
    strides = flat_strides(full)
    budgets = search["budgets_ms"]
    acc_ref, acc_med = float(truth.min()), float(np.median(truth))
    lat_lo, lat_ref = float(min(budgets)), float(max(budgets))
    best_under = [float(truth[lat_full <= b].max()) for b in budgets]
    front = exact_front(truth, lat_full)
    hv_exact = hypervolume(truth, lat_full, acc_ref, lat_ref, lat_lo)
    hv_exact_med = hypervolume(truth, lat_full, acc_med, lat_ref, lat_lo)
    bounds = load_json(RUNS / f"bounds_{target}.json") if loop == "chamnet" else None  # searched with the ChamNet loop
    if bounds is not None and bounds.get("budgets_ms") != budgets:
        print(f"{target}: bounds_{target}.json was searched under other budgets: left out", flush=True)
        bounds = None
    reduced_exact = {}  # per reduced space: its own best networks (the floor of its regret)
    spaces = dict(search.get("reduced_spaces") or {"reduced": search.get("reduced_space")})
    spaces.update((bounds or {}).get("spaces") or {})
    for m, p in spaces.items():
        if not p:
            reduced_exact[m] = None
            continue
        red_loop = Loop(SearchSpace.load(REPO / p), full, truth / 100, lat_full)
        red_best = [float(100 * red_loop.truth[red_loop.lat <= b].max()) if (red_loop.lat <= b).any() else None
                    for b in budgets]
        hv_red = hypervolume(100 * red_loop.truth, red_loop.lat, acc_ref, lat_ref, lat_lo)
        reduced_exact[m] = {"space": p, "size": int(len(red_loop.pool)), "best_under_budget_pts": red_best,
                            "reduction_loss_points": [None if r is None else float(b - r)
                                                      for b, r in zip(best_under, red_best)],
                            "hv": hv_red, "hv_of_exact": hv_red / hv_exact}

    # the host's speed in the measure phase against the predictor's: the median measured/predicted
    # ratio over every pick measured (one factor for all methods; their picks were measured interleaved)
    predicted = {k: float(lat_full[np.array(json.loads(k)) @ strides]) for k in measured}  # ms, per measured pick
    ratios = [v["ms"] / predicted[k] for k, v in measured.items()]
    speed_scale = float(np.median(ratios)) if ratios else None

    def score(picks):
        rows = [p for p in picks if p is not None]
        flat = np.array(rows) @ strides
        acc, lat = truth[flat], lat_full[flat]
        reg = [None if p is None else float(bu - truth[np.array(p) @ strides]) for p, bu in zip(picks, best_under)]
        meas = [measured.get(json.dumps(list(p)), {}).get("ms") for p in rows]
        out = {"hv": hypervolume(acc, lat, acc_ref, lat_ref, lat_lo),
               "hv_median_ref": hypervolume(acc, lat, acc_med, lat_ref, lat_lo),
               "regret_points": reg, "mean_regret_points": float(np.mean([r for r in reg if r is not None])),
               "picks_true_accuracy": [float(a) for a in acc], "picks_predicted_ms": [float(t) for t in lat],
               "picks_measured_ms": meas}
        out["hv_ratio"] = out["hv"] / hv_exact
        out["hv_median_ref_ratio"] = out["hv_median_ref"] / hv_exact_med
        out["hv_gap_points"] = (hv_exact - out["hv"]) / (lat_ref - lat_lo)
        if all(x is not None for x in meas):
            out["hv_measured_latency"] = hypervolume(acc, np.array(meas), acc_ref, lat_ref, lat_lo)
            scaled = np.array(meas) / speed_scale
            out["hv_measured_latency_scaled"] = hypervolume(acc, scaled, acc_ref, lat_ref, lat_lo)
            out["hv_median_ref_measured_latency_scaled"] = hypervolume(acc, scaled, acc_med, lat_ref, lat_lo)
        return out

    per = {}
    for key, run in list(search["runs"].items()) + list(((bounds or {}).get("runs") or {}).items()):
        method, n, seed = key.split("/")
        per.setdefault(method, {}).setdefault(n, {})[seed] = {**score(run["picks"]), "lookups": run["lookups"]}
    table = {}
    all_runs = {**search["runs"], **((bounds or {}).get("runs") or {})}
    for method, by_n in per.items():
        table[method] = {}
        for n, by_seed in by_n.items():
            s = list(by_seed.values())
            table[method][n] = {
                # seeds that gave the same picks are one run, not several (with the design known the loop
                # tune runs has no random start left: its seeds repeat a few runs)
                "distinct_runs": len({json.dumps(all_runs[f"{method}/{n}/{seed}"]["picks"]) for seed in by_seed}),
                "lookups_in_loop": s[0]["lookups"], "hv": summary([x["hv"] for x in s]),
                "hv_ratio": summary([x["hv_ratio"] for x in s]),
                "hv_median_ref": summary([x["hv_median_ref"] for x in s]),
                "hv_median_ref_ratio": summary([x["hv_median_ref_ratio"] for x in s]),
                "hv_gap_points": summary([x["hv_gap_points"] for x in s]),
                "mean_regret_points": summary([x["mean_regret_points"] for x in s]),
                "regret_points_per_budget": {f"{b:g}": summary([x["regret_points"][j] for x in s])
                                             for j, b in enumerate(budgets)},
                "hv_measured_latency": summary([x.get("hv_measured_latency") for x in s]),
                "hv_measured_latency_scaled": summary([x.get("hv_measured_latency_scaled") for x in s]),
                "hv_median_ref_measured_latency_scaled": summary([x.get("hv_median_ref_measured_latency_scaled")
                                                                  for x in s]),
                "per_seed": by_seed}

    def paired(a, b, n, field):
        sa, sb = per[a][n], per[b][n]
        return paired_summary([sa[k][field] - sb[k][field] for k in sa
                        if k in sb and sa[k].get(field) is not None and sb[k].get(field) is not None])

    diffs = {}
    for n in map(str, LOOKUPS):
        for m in (m for m in per if m.startswith(("reduced", "bound-")) and n in per[m]):
            diffs.setdefault(n, {})[f"{m}_minus_full"] = {f: paired(m, "full", n, f) for f in FIELDS}
            if not m.startswith("bound-") and n in per.get("full+design", {}):  # a reference paid no lookups
                diffs[n][f"{m}_minus_full_plus_design"] = {f: paired(m, "full+design", n, f) for f in FIELDS}
            if m.endswith(KNOWN) and n in per.get("full" + KNOWN, {}):  # the same design data, only the space differs
                diffs[n][f"{m}_minus_full_plus_known"] = {f: paired(m, "full" + KNOWN, n, f) for f in FIELDS}
        if n in per.get("full" + KNOWN, {}):  # does the design's data help the full space's loop?
            diffs.setdefault(n, {})["full+known_minus_full"] = {f: paired("full" + KNOWN, "full", n, f) for f in FIELDS}
            if n in per.get("full+design", {}):
                diffs[n]["full+known_minus_full_plus_design"] = {f: paired("full" + KNOWN, "full+design", n, f)
                                                                 for f in FIELDS}
    pairs = [(predicted[k], v["ms"]) for k, v in measured.items()]
    by_method = {}  # the predictor on each method's own distinct picks (is one space's picks priced worse?)
    for method in per:
        own = {json.dumps(list(p)) for key, run in search["runs"].items() if key.split("/")[0] == method
               for p in run["picks"] if p is not None}
        got = [(predicted[k], measured[k]["ms"]) for k in sorted(own) if k in measured]
        if len(got) == len(own) and got:
            by_method[method] = fidelity([p for p, _ in got], [m for _, m in got])
    mprof = load_json(RUNS / f"measured_{target}.json") or {}
    doc = prof["document"]
    return {
        "target": target, "emulated": bool(doc["emulated"]), "device_label": doc["device_label"],
        "label": f"{target} (EMULATION)" if doc["emulated"] else target,
        "friendliness": {"wall_s": prof["wall_s"], "networks": doc["networks"]["measured_ok"],
                         "measured_now": doc["networks"]["measured_now"],
                         "reused": doc["networks"]["reused_from_journal"], "design": doc["design"],
                         "accuracy": doc["accuracy"], "latency_fit": doc["latency_fit"],
                         "accuracy_fit": doc["accuracy_fit"], "kept": doc["kept"], "rows": doc["rows"],
                         "rule": doc.get("rule"), "quota_control": prof.get("quota_control"),
                         "reduced_space": doc.get("reduced_space"), "provenance": prof["provenance"],
                         "quiet_run": quiet_record("profile", target, prof["provenance"]),
                         "seconds": doc["seconds"]},
        "budgets_ms": budgets, "reference": {"accuracy_pts": acc_ref, "median_accuracy_pts": acc_med,
                                             "latency_window_ms": [lat_lo, lat_ref]},
        "exact": {"hv": hv_exact, "hv_median_ref": hv_exact_med, "best_under_budget_pts": best_under,
                  "reduced_spaces": reduced_exact,
                  "front": [{"indices": idx_full[i].tolist(), "accuracy_pts": float(truth[i]),
                             "predicted_ms": float(lat_full[i])} for i in front]},
        "seeds": sorted({int(k.split("/")[2]) for k in search["runs"]}),
        "methods": table, "differences": diffs,
        "picks_measured": {"count": len(measured), "distinct_picks": mprof.get("distinct_picks"),
                           "methods": mprof.get("methods"), "order": mprof.get("order"),
                           "speed_scale_measured_over_predicted": speed_scale,
                           "fidelity": fidelity([p for p, _ in pairs], [m for _, m in pairs]) if len(pairs) >= 1 else None,
                           "fidelity_by_method": by_method,
                           "device_label": mprof.get("device_label"), "provenance": mprof.get("provenance"),
                           "quiet_run": quiet_record("measure", target, mprof.get("provenance") or {})},
        "search_provenance": search.get("provenance"), "latency_info": search.get("latency"),
        "bounds": None if bounds is None else {
            "what": "reference reductions no user can make (they use every network's true accuracy), searched "
                    "with the same loop and seeds: how much a per-position reduction could gain at all; "
                    "bound-exact-rule: the default rule and knob on the exact effects of all 6,561 networks "
                    "(predicted latency, true accuracy); bound-exact-window: the window rule on them; bound-oracle: at each position only the choices the "
                    "exact best networks under the budgets use",
            "kept": bounds.get("kept"), "spaces": bounds.get("spaces"), "sizes": bounds.get("sizes"),
            "provenance": bounds.get("provenance")},
        "table_run": table_run(target),
        "machine_speed": machine_speed(target, prof, mprof),
        "stagewise": stagewise(target),
    }


def machine_speed(target: str, prof: dict, mprof: dict) -> dict:
    """How fast the host ran in each phase, from the network journals' rows: the median time of
    the runner's reference kernel (``reference_us``, the same kernel in every phase) and the
    median ratio of a network's measured latency to its kernel-table sum, for the networks the
    ``table`` phase measured (training and held-out; the rows measured during it), the profile's
    design networks and the picks (the rows measured during the ``measure`` phase, or in its own
    journal with ``--fresh-journal``)."""
    from chamtvm.core.workdir import luts_dir

    def rows(path: Path) -> list[dict]:
        return [r for r in read_jsonl(path) if r.get("status") == "ok"]

    prov = (mprof or {}).get("provenance") or {}
    lo, hi = prov.get("started_utc", "~"), prov.get("ended_utc", "")
    main = rows(luts_dir() / f"{target}.networks.jsonl")
    own = (mprof or {}).get("luts_dir")  # the measure phase's own journal (--fresh-journal)
    picks = rows(REPO / own / f"{target}.networks.jsonl") if own else \
        [r for r in main if lo <= r.get("measured_at", "") <= hi]
    tprov = (load_json(RUNS / f"table_{target}_run.json") or {}).get("provenance") or {}
    tlo, thi = tprov.get("started_utc"), tprov.get("ended_utc")
    in_table = (lambda r: tlo <= r.get("measured_at", "") <= thi) if tlo and thi else \
        (lambda r: not lo <= r.get("measured_at", "") <= hi)  # no table phase here: all but the picks
    groups = {"picks": picks,
              "table_networks": [r for r in main if in_table(r)],
              "profile_design": rows(REPO / prof.get("luts_dir", "-") / f"{target}.networks.jsonl")}

    def med(values):
        values = [v for v in values if v is not None]
        return float(np.median(values)) if values else None

    return {g: {"networks": len(rs), "reference_us_median": med([r.get("reference_us") for r in rs]),
                "measured_over_table_sum_median": med([r["runtime_us_p50"] / r["table_sum_us"] for r in rs
                                                       if r.get("table_sum_us")])}
            for g, rs in groups.items()}


def table_run(target: str) -> dict | None:
    """What the ``table`` phase left (when it built this run's table): its wall time, quiet-run
    record and the predictor's held-out fidelity (networks measured end to end)."""
    run = load_json(RUNS / f"table_{target}_run.json")
    if run is None:
        return None
    rep = run.get("report") or {}
    return {"wall_s": run["wall_s"], "trials": run.get("trials"), "table_rows": (rep.get("table") or {}).get("rows"),
            "heldout_fidelity": rep.get("fidelity"), "heldout_fidelity_table_sum": rep.get("fidelity_table_sum"),
            "residual": (rep.get("predictor") or {}).get("residual_mode"), "provenance": run.get("provenance"),
            "quiet_run": quiet_record("table", target, run.get("provenance") or {})}


def kept_comparison(res: dict) -> dict | None:
    if not all(t in res for t in TARGETS):
        return None
    a, b = (res[t]["friendliness"]["kept"] for t in TARGETS)
    cells_a = {(p, c) for p, cs in a.items() for c in cs}
    cells_b = {(p, c) for p, cs in b.items() for c in cs}
    lat = {t: {(r["position"], r["choice"]): r["latency_ms"] for r in res[t]["friendliness"]["rows"]} for t in TARGETS}
    share = {t: {(r["position"], r["choice"]): r["latency_share"] for r in res[t]["friendliness"]["rows"]}
             for t in TARGETS}
    keys = sorted(lat["x86"])
    from scipy import stats

    qa, qb = ((res[t]["friendliness"].get("quota_control") or {}).get("kept") for t in TARGETS)
    quota = None
    if qa and qb:
        ca, cb = ({(p, c) for p, cs in q.items() for c in cs} for q in (qa, qb))
        quota = {"same_kept_choices": ca == cb, "jaccard": len(ca & cb) / len(ca | cb),
                 "kept_only_on_x86": sorted(f"{p}:{c}" for p, c in ca - cb),
                 "kept_only_on_arm": sorted(f"{p}:{c}" for p, c in cb - ca)}
    return {"rule": res["x86"]["friendliness"].get("rule", {}).get("name"), "quota_control": quota,
            "same_kept_choices": cells_a == cells_b,
            "kept_only_on_x86": sorted(f"{p}:{c}" for p, c in cells_a - cells_b),
            "kept_only_on_arm": sorted(f"{p}:{c}" for p, c in cells_b - cells_a),
            "jaccard": len(cells_a & cells_b) / len(cells_a | cells_b),
            "latency_share_spearman": float(stats.spearmanr([share["x86"][k] for k in keys],
                                                            [share["arm"][k] for k in keys]).statistic),
            "latency_share_by_target": {f"{p}:{c}": {t: share[t][(p, c)] for t in TARGETS} for p, c in keys}}


def read_jsonl(path: Path) -> list[dict]:
    """The JSON objects of a JSON-lines file, a damaged line skipped ([] when it does not exist)."""
    if not Path(path).exists():
        return []
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def records() -> list[dict]:
    """This benchmark's quiet-run records (``quiet-run --record runs/quiet_records.jsonl``)."""
    return [r for r in read_jsonl(QUIET_RECORDS) if "bench_friendliness" in str(r.get("cmd"))]


def quiet_record(phase: str, target: str, provenance: dict) -> dict | None:
    """The quiet-run record of the run that wrote a phase's file: the latest record of that
    phase and target that started before the file was written (None: not run under quiet-run)."""
    written = provenance.get("ended_utc") or provenance.get("utc") or ""
    mine = [r for r in records() if f"{phase} --target {target}" in r.get("cmd", "")
            and r.get("started", "") <= written]
    return max(mine, key=lambda r: r["started"]) if mine else None


def interval_points(points) -> list[tuple[float, float, float]]:
    """``(x, mean, half width)`` of each ``(x, summary)`` of ``points`` whose summary has a 95 %
    interval (``common.paired``'s ``mean`` and ``ci95``), for ``errorbar``."""
    return [(x, y["mean"], y["mean"] - y["ci95"][0]) for x, y in points if "ci95" in y]


def difference_axes(ax, xlabel: str, ylabel: str, title: str, legend_size: int = 6) -> None:
    """The frame of a panel of paired differences: the zero line, labels, grid and legend."""
    ax.axhline(0, color="black", lw=0.8)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size, loc="best", framealpha=0.6)


def plot(res: dict, path: Path) -> None:
    plt = pyplot()
    targets = [t for t in TARGETS if t in res["targets"]]
    fig, axes = plt.subplots(len(targets), 6, figsize=(30, 4.2 * len(targets)), squeeze=False)
    colours = {"full": "tab:blue", "reduced": "tab:green", "reduced-quota": "tab:orange", "full+design": "tab:purple",
               "reduced-window": "tab:red", "bound-exact-rule": "tab:brown", "bound-exact-window": "tab:pink",
               "bound-oracle": "tab:gray"}
    for row, t in zip(axes, targets):
        r = res["targets"][t]
        names = {"full": "full space", "reduced": "reduced space", "reduced-quota": "reduced, earlier quota rule (control)",
                 "full+design": f"full space, +{r['friendliness']['accuracy']['counted']} lookups (the design's)",
                 "reduced-window": "reduced space, window rule",
                 "bound-exact-rule": "reference: the rule on exact effects (not a method)",
                 "bound-exact-window": "reference: the window rule on exact effects (not a method)",
                 "bound-oracle": "reference: the exact best networks' choices (not a method)"}

        def name(m):
            base = base_method(m)
            return names[base] + (", the design's networks known" if m.endswith(KNOWN) else "")
        ax = row[0]
        fr = r["exact"]["front"]
        ax.step([p["predicted_ms"] for p in fr], [p["accuracy_pts"] for p in fr], where="post", color="grey",
                label="exact best front (6,561 networks)")
        for m in (m for m in ("full", "reduced") if m in r["methods"]):
            s = r["methods"][m]["30"]["per_seed"]["0"]
            ax.scatter(s["picks_predicted_ms"], s["picks_true_accuracy"], color=colours[m], s=18,
                       label=f"{names[m]}: picks, 30 lookups, seed 0")
            scale = r["picks_measured"].get("speed_scale_measured_over_predicted")
            meas = [(ms / scale, a) for ms, a in zip(s["picks_measured_ms"], s["picks_true_accuracy"]) if ms and scale]
            if meas:
                ax.scatter(*zip(*meas), facecolors="none", edgecolors=colours[m], s=30,
                           label=f"the same, measured / {scale:.3f} (the phase's speed)")
        ax.set(xlabel="latency (ms): predicted (table + residual), hollow: measured", ylabel="true accuracy (%)",
               title=f"{r['label']}: fronts", ylim=(max(r["reference"]["median_accuracy_pts"] - 3, 80), None))
        ax.legend(fontsize=7)
        for ax, field, ylabel in ((row[1], "hv_gap_points", "front's mean gap to the exact front (points)"),
                                  (row[2], "mean_regret_points", "mean regret (points)")):
            for m in (m for m in colours if m in r["methods"]):
                ns = sorted(int(n) for n in r["methods"].get(m, {}))
                ys = [r["methods"][m][str(n)][field] for n in ns]
                ax.errorbar(ns, [y["mean"] for y in ys], yerr=[y["std"] for y in ys], marker="o", capsize=3,
                            color=colours[m], label=names[m] + (" (x: loop lookups)" if m == "full+design" else ""))
            for m, ex in (r["exact"]["reduced_spaces"].items() if field == "mean_regret_points" else ()):
                loss = [x for x in (ex or {}).get("reduction_loss_points", []) if x is not None]
                if loss:
                    ax.axhline(float(np.mean(loss)), color=colours[m], ls=":", lw=1,
                               label=f"{names[m]}: its own floor (its best vs the full space's)")
            ax.set(xlabel="lookups in the loop", ylabel=ylabel, title=f"{r['label']}: mean ± std, {len(r['seeds'])} seeds")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6, loc="best", framealpha=0.6)
        for ax, diffs, loop in ((row[3], r["differences"], "ChamNet loop"),
                                (row[5], (r.get("budgeted_loop") or {}).get("differences") or {}, "the loop tune runs")):
            # the paired differences, the comparison the issue asks for, with their 95 % intervals
            shift = 0.0
            # against the full space, and with the design known against the full space with it known (the
            # comparisons against full+design are in the JSON)
            style = {"full": ("o", "-"), "full_plus_known": ("^", ":")}
            for key in sorted({k for v in diffs.values() for k in v}):
                method, versus = key.split("_minus_")
                if (not method.startswith(("reduced", "bound-")) or versus not in style
                        or (versus == "full") == method.endswith(KNOWN)):
                    continue
                ns = sorted(int(n) for n in diffs if key in diffs[n])
                ys = [diffs[str(n)][key]["mean_regret_points"] for n in ns]
                ok = interval_points((n + shift, y) for n, y in zip(ns, ys))
                if ok:
                    ax.errorbar(*zip(*ok), marker=style[versus][0], ls=style[versus][1], capsize=3,
                                color=colours[base_method(method)],
                                label=f"{name(method)} - {name(versus.replace('_plus_', '+'))}")
                    shift += 0.4
            if not diffs:
                ax.text(0.5, 0.5, f"{loop}: not searched", ha="center", va="center", transform=ax.transAxes)
                ax.set_axis_off()
                continue
            difference_axes(ax, "new lookups in the loop", "paired difference of mean regret (points)",
                            f"{r['label']}, {loop}: paired, mean and 95 % interval", legend_size=5)
        ax = row[4]  # the same pairing on the hypervolume above the median accuracy: predicted, and measured
        drawn = False
        ns = sorted(int(n) for n in r["differences"] if "reduced_minus_full" in r["differences"][n])
        for field, shift, style, what in (
                ("hv_median_ref", 0.0, dict(marker="o", ls="-"), "predicted latencies"),
                ("hv_median_ref_measured_latency_scaled", 0.6, dict(marker="o", ls="--", mfc="none"),
                 "picks measured / the phase's speed")):
            ys = [(n, r["differences"][str(n)]["reduced_minus_full"].get(field) or {}) for n in ns]
            ok = interval_points((n + shift, y) for n, y in ys)
            if ok:
                ax.errorbar(*zip(*ok), capsize=3, color=colours["reduced"], label=f"reduced - full, {what}", **style)
                drawn = True
        if not drawn:
            ax.text(0.5, 0.5, "no reduced space to compare:\nthe default rule dropped nothing here", ha="center",
                    va="center", transform=ax.transAxes)
            ax.set_axis_off()
        else:
            difference_axes(ax, "lookups in the loop", "paired difference of hypervolume\nabove the median accuracy",
                            f"{r['label']}: reduced - full, mean and 95 % interval")
    fig.suptitle("NAS-Bench-Macro: the ChamNet loop (panels 1-5) and the loop tune runs (panel 6) in the full vs "
                 "the friendliness-reduced space (latency: the target's predictor; arm = EMULATION)")
    save_figure(fig, path, dpi=110)


def phase_report(args) -> None:
    import shutil

    res = {"targets": {}}
    for t in TARGETS:
        r = evaluate_target(t)
        if r is not None:
            res["targets"][t] = r
            other = evaluate_target(t, "budgeted")
            if other is not None:  # the product's loop on the same profile, spaces, budgets and seeds
                r["budgeted_loop"] = {k: other[k] for k in ("seeds", "methods", "differences", "search_provenance")}
            png = RUNS / f"friendliness-{t}-macro" / "friendliness.png"
            if png.exists():
                shutil.copy(png, RESULTS / f"{args.results_name}_{t}_heatmap.png")
                r["heatmap"] = rel(RESULTS / f"{args.results_name}_{t}_heatmap.png")
    if not res["targets"]:
        raise SystemExit("nothing to report: run the profile and search phases first")
    res["x86_vs_arm"] = kept_comparison(res["targets"])
    res["quiet_run_records"] = records()
    res["quiet_figures"] = {t: bool((r["friendliness"]["quiet_run"] or {}).get("quiet")) for t, r in res["targets"].items()}
    res["latency_used"] = {
        "friendliness": "end-to-end measurements of the design networks (network journal)",
        "search, budgets, regret, hv": "the target's latency predictor (kernel table + the macro space's residual), "
                                       "the same function for both spaces",
        "picks_measured": "the picks measured end to end; hv_measured_latency uses them for the picks (the exact "
                          "front stays predicted); hv_measured_latency_scaled divides them by one factor, the median "
                          "measured/predicted ratio of every pick measured in that phase (the host's speed then, "
                          "the same for every method: their picks were measured interleaved); "
                          "hv_median_ref_measured_latency_scaled: the same above the space's median accuracy "
                          "(with the lowest accuracy as reference, a fastest pick measured above the window's "
                          "start loses a rectangle as tall as the space's accuracy range, which then dominates)"}
    res["protocol"] = {"loops": {"targets.<t>": LOOPS["chamnet"], "targets.<t>.budgeted_loop": LOOPS["budgeted"]},
                       "lookups": LOOKUPS, "seeds": sorted({x for r in res["targets"].values() for x in r["seeds"]}),
                       "budget_quantiles": QUANTILES,
                       "population": POPULATION, "generations": GENERATIONS,
                       "design_lookups_note": "the reduced space cost extra lookups, its design networks' accuracies "
                                              "(targets.<t>.friendliness.accuracy.counted); 'full+design' gives the "
                                              "full space the same total",
                       "methods": {"bound-exact-rule": "reference, not a method: the default rule on the exact "
                                                       "effects (every network's predicted latency and true accuracy)",
                                   "bound-exact-window": "reference, not a method: the window rule on the exact effects",
                                   "bound-oracle": "reference, not a method: at each position only the choices the "
                                                   "exact best networks under the budgets use",
                                   "reduced": "the space reduced by the command's default rule (confident)",
                                   "reduced-window": "the space reduced by the window rule on the same profile",
                                   "reduced-quota": "control: the earlier quota rule on the same profile",
                                   "full+design": "the full space with the design's lookups added to the loop's",
                                   "<method>+known": "the loop in that space also fitted on the profile's design "
                                                     "networks that lie in it (their accuracies known, not looked "
                                                     "up again; runs.<key>.known of them), with the same new "
                                                     "lookups: '<reduced>+known minus full+known' differs only "
                                                     "in the space"}}
    write_results(res, RESULTS / f"{args.results_name}.json", figure=plot, measurements_from=RUNS)


# ------------------------------------------------------------------------------ designs
# (method, against): reduced spaces against the full space, with the same information
DESIGN_COMPARISONS = (("reduced", "full"), ("reduced-window", "full"),
                      ("reduced+known", "full+known"), ("reduced-window+known", "full+known"),
                      ("full+known", "full"), ("reduced", "full+design"), ("reduced-window", "full+design"))
DESIGN_FIELDS = {"mean_regret_points": "lower is better", "hv_median_ref": "higher is better",
                 "hv_gap_points": "lower is better"}
DESIGN_RULES = {"reduced": "confident (the default)", "reduced-window": "window"}


def design_scores(folder: Path, target: str, loop: str) -> dict | None:
    """One replicate's scored runs of one loop (``evaluate_target`` on its working folder), the
    rules that dropped nothing there, and the choices each rule dropped."""
    global RUNS
    home, RUNS = RUNS, folder.resolve()  # the phases read their working folder from RUNS
    try:
        return _design_scores(folder, target, loop)
    finally:
        RUNS = home


def _design_scores(folder: Path, target: str, loop: str) -> dict | None:
    search, res = load_json(search_path(target, loop)), evaluate_target(target, loop)
    if res is None or search is None:
        return None
    prof = load_json(RUNS / f"profile_{target}.json")
    window = load_json(RUNS / f"rule_window_{target}.json") or {}
    spaces = search.get("reduced_spaces") or {}
    return {"folder": rel(folder), "design_seed": prof.get("design_seed", 0),
            "design_indices": prof["document"]["networks"]["indices"], "methods": res["methods"],
            "no_reduction": sorted(m for m, p in spaces.items() if not p), "reduced_sizes": search.get("reduced_sizes"),
            "dropped": {"reduced": dropped(prof["document"]["rows"]), "reduced-window": dropped(window.get("rows"))},
            "profile": {"wall_s": prof["wall_s"], "measured_now": prof["document"]["networks"]["measured_now"],
                        "luts_dir": prof["luts_dir"], "provenance": prof["provenance"],
                        "quiet_run": profile_record(target, prof)},
            "search_provenance": search.get("provenance")}


def dropped(rows) -> list[list[str]] | None:
    """The (position, choice) pairs a rule dropped, from its friendliness rows."""
    return None if rows is None else sorted([r["position"], r["choice"]] for r in rows if not r["kept"])


def profile_record(target: str, prof: dict) -> dict | None:
    """The quiet-run record of the run that measured a profile's networks: the profile run of
    the working folder its network journal lives in (a re-analysed profile, ``--reuse-luts``,
    was measured there)."""
    folder = str(Path(prof["luts_dir"]).parent)
    written = prof["provenance"].get("ended_utc") or ""
    mine = [r for r in records() if f"profile --target {target}" in r.get("cmd", "")
            and r.get("cmd", "").endswith(f"--runs {folder}") and "--reuse-luts" not in r.get("cmd", "")
            and r.get("started", "") <= written]
    return max(mine, key=lambda r: r["started"]) if mine else None


def seed_value(scores: dict, method: str, n: str, seed: int, field: str) -> float | None:
    """A method's score at one (lookups, seed); a reduced method whose rule dropped nothing on
    this design is scored as its full-space counterpart (the space a user then searches)."""
    base = base_method(method)
    if method not in scores["methods"] and base in scores["no_reduction"]:
        method = "full" + method[len(base):]
    return (scores["methods"].get(method, {}).get(n, {}).get("per_seed", {}).get(str(seed)) or {}).get(field)


def design_comparison(designs: list[dict], a: str, b: str, n: str, field: str, seeds: int) -> dict | None:
    """``a - b`` paired by (design, search seed), the design as the replicate (``common.paired.replicated``)."""
    rows = []  # (design, its differences): the designs where both methods have runs
    for d in designs:
        pairs = ((seed_value(d, a, n, s, field), seed_value(d, b, n, s, field)) for s in range(seeds))
        diffs = [va - vb for va, vb in pairs if va is not None and vb is not None]
        if diffs:
            rows.append((d, diffs))
    if not rows:
        return None
    got = replicated([diffs for _d, diffs in rows])
    for (d, _diffs), p in zip(rows, got["per_replicate"]):
        p.update(design_seed=d["design_seed"],
                 no_reduction=base_method(a) in d["no_reduction"] or base_method(b) in d["no_reduction"],
                 distinct_runs={m: d["methods"].get(m, {}).get(n, {}).get("distinct_runs") for m in (a, b)})
    return got


def drop_frequencies(by_target: dict) -> dict:
    """Per rule and target: how many designs dropped each ``position/choice``, and how alike the
    dropped sets are (mean Jaccard similarity; two empty sets are alike) between the designs of
    one target and between x86's and arm's designs."""
    out = {}

    def jaccard(x, y):
        return 1.0 if not x and not y else len(x & y) / len(x | y)

    for rule in DESIGN_RULES:
        sets = {t: [{f"{p}/{c}" for p, c in (d["dropped"][rule] or [])} for d in ds] for t, ds in by_target.items()}
        within = {t: float(np.mean([jaccard(x, y) for i, x in enumerate(ss) for y in ss[i + 1:]]))
                  if len(ss) > 1 else None for t, ss in sets.items()}
        out[rule] = {"dropped_by_designs": {t: {k: sum(k in s for s in ss) for k in sorted(set().union(*ss))}
                                            for t, ss in sets.items()},
                     "dropped_per_design": {t: [len(s) for s in ss] for t, ss in sets.items()},
                     "jaccard_within_target": within,
                     "jaccard_x86_vs_arm": float(np.mean([jaccard(x, y) for x in sets["x86"] for y in sets["arm"]]))
                     if {"x86", "arm"} <= set(sets) else None}
    return out


def plot_designs(res: dict, path: Path) -> None:
    plt = pyplot()
    targets = [t for t in TARGETS if t in res["targets"]]
    fig, axes = plt.subplots(len(targets), 3, figsize=(20, 4.8 * len(targets)), squeeze=False)
    colours = {"reduced_minus_full": "tab:green", "reduced-window_minus_full": "tab:red",
               "reduced+known_minus_full+known": "tab:green", "reduced-window+known_minus_full+known": "tab:red",
               "full+known_minus_full": "tab:blue"}
    for row, t in zip(axes, targets):
        r = res["targets"][t]
        label = f"{t} (EMULATION)" if r["emulated"] else t
        for ax, loop in zip(row[:2], LOOPS):
            comparisons = (r["loops"].get(loop) or {}).get("comparisons") or {}
            shift = -0.8
            for key, colour in colours.items():
                by_n = {int(n): v[key]["mean_regret_points"] for n, v in comparisons.items()
                        if ((v.get(key) or {}).get("mean_regret_points") or {}).get("replicates")}
                if not by_n:
                    continue
                ns = sorted(by_n)
                for n in ns:  # each design's mean over its search seeds
                    ys = [p["mean"] for p in by_n[n]["per_replicate"]]
                    ax.scatter([n + shift] * len(ys), ys, color=colour, s=10, alpha=0.5)
                ok = interval_points((n + shift, by_n[n]["across_replicates"]) for n in ns)
                if ok:
                    known = key.startswith("reduced") and "+known" in key
                    ax.errorbar(*zip(*ok), color=colour, ls="--" if known else "-", marker="^" if known else "o",
                                capsize=3, label=key.replace("_minus_", " - "))
                shift += 0.4
            difference_axes(ax, "new lookups in the loop", "paired difference of mean regret (points)",
                            f"{label}, {'ChamNet loop' if loop == 'chamnet' else 'the loop tune runs'}, "
                            f"{r['designs']} designs:\ndots one design (mean of its seeds), bars 95 % over designs")
        ax = row[2]  # which choices each rule dropped over the designs, on the space's grid
        positions = [p for p, _c in res["space_dimensions"]]
        choices = list(dict.fromkeys(c for _p, cs in res["space_dimensions"] for c in cs))
        count = {rule: res["drops"][rule]["dropped_by_designs"].get(t, {}) for rule in DESIGN_RULES}
        grid = np.array([[count["reduced"].get(f"{p}/{c}", 0) for p in positions] for c in choices], float)
        ax.imshow(grid, cmap="Reds", vmin=0, vmax=max(r["designs"], 1), aspect="auto")
        for i, c in enumerate(choices):
            for j, p in enumerate(positions):
                ax.text(j, i, f"{int(grid[i, j])} / {count['reduced-window'].get(f'{p}/{c}', 0)}", ha="center",
                        va="center", fontsize=8)
        ax.set(xticks=range(len(positions)), xticklabels=[p.replace("layers", "") for p in positions],
               yticks=range(len(choices)), yticklabels=choices, xlabel="layer",
               title=f"{label}: designs (of {r['designs']}) that dropped the choice,\nconfident rule (colour) / "
                     "window rule")
    fig.suptitle("NAS-Bench-Macro: friendliness-reduced minus full space with the whole method replicated over "
                 "designs (latency: the target's predictor; arm = EMULATION)")
    save_figure(fig, path, dpi=110)


def phase_designs(args) -> None:
    """Issue 21 with the whole method replicated (``--designs DIR,DIR,...``: working folders, one
    design seed each): reads and scores, measures and searches nothing."""
    if not args.designs:
        raise SystemExit("designs: give --designs DIR,DIR,... (working folders of profiles with other --design-seed)")
    folders = [Path(f) for f in args.designs.split(",") if f]
    res, by_target = {"targets": {}}, {}
    for t in TARGETS:
        loops = {}
        for loop in LOOPS:
            designs = [d for d in (design_scores(f, t, loop) for f in folders) if d is not None]
            if not designs:
                continue
            if len({d["design_seed"] for d in designs}) != len(designs):
                raise SystemExit(f"{t}: two folders hold the same design seed: they are not replicates")
            comparisons = {}
            for n in map(str, LOOKUPS):
                for a, b in DESIGN_COMPARISONS:
                    got = {f: design_comparison(designs, a, b, n, f, args.seeds) for f in DESIGN_FIELDS}
                    if got["mean_regret_points"] is not None:
                        comparisons.setdefault(n, {})[f"{a}_minus_{b}"] = got
            loops[loop] = {"what": LOOPS[loop], "comparisons": comparisons,
                           "designs": [{k: v for k, v in d.items() if k not in ("methods", "dropped")}
                                       for d in designs]}
            by_target.setdefault(t, designs)
        if loops:
            res["targets"][t] = {"emulated": t == "arm", "designs": len(by_target[t]), "loops": loops,
                                 "design_seeds": [d["design_seed"] for d in by_target[t]],
                                 "design_sizes": sorted({len(d["design_indices"]) for d in by_target[t]})}
    if not res["targets"]:
        raise SystemExit("nothing to report: no folder holds a profile and a search")
    res["drops"] = drop_frequencies(by_target)
    from chamtvm.space.schema import SearchSpace

    res["space_dimensions"] = [[p, list(c)] for p, c in SearchSpace.load("macro").dimensions() if len(c) > 1]
    res["protocol"] = {
        "search_seeds": list(range(args.seeds)), "lookups": LOOKUPS, "fields": DESIGN_FIELDS, "rules": DESIGN_RULES,
        "comparisons": [f"{a}_minus_{b}" for a, b in DESIGN_COMPARISONS],
        "unit": "the design (a profile of its own design networks, measured and looked up): across_replicates.ci95 "
                "is the t-interval of the design means over designs; pooled takes every (design, seed) pair as "
                "independent, too narrow (the seeds of a design share its reduction)",
        "no_reduction": "a rule that dropped nothing leaves the full space, which a user then searches: difference "
                        "0 on every seed of that design",
        "latency": "the target's predictor (kernel table + the macro space's residual) for the search, budgets, "
                   "regret and hypervolume; friendliness from the design networks measured end to end (arm: "
                   "EMULATION timings)"}
    write_results(res, RESULTS / f"{args.results_name}.json", figure=plot_designs)
    for t, r in res["targets"].items():
        for loop, lr in r["loops"].items():
            for n, cmp in lr["comparisons"].items():
                for key in ("reduced_minus_full", "reduced-window_minus_full", "reduced+known_minus_full+known",
                            "reduced-window+known_minus_full+known"):
                    x = ((cmp.get(key) or {}).get("mean_regret_points") or {}).get("across_replicates")
                    if x:
                        ci = "[{:+.3f}, {:+.3f}]".format(*x["ci95"]) if "ci95" in x else ""
                        print(f"{t:4s} {loop:9s} {n:>3s} {key:38s} {x['mean']:+.3f} {ci} designs below/at/above 0: "
                              f"{x['below_zero']}/{x['zero']}/{x['above_zero']}")


@contextmanager
def emulated_board(port: int):
    """The emulated ARM board (tracker + one QEMU server) as children of this process, so a
    ``quiet-run`` around the phase counts the emulator's CPU as the job's own, not as load from
    others; stopped on exit."""
    from chamtvm.devices.arm import ArmEmulation
    from chamtvm.devices.local import start_tracker
    from chamtvm.devices.procs import DeviceGroup

    tracker = ("127.0.0.1", port)
    with DeviceGroup(tracker=tracker, key="arm", emulated=True) as group:
        group.extend(start_tracker(port, host="127.0.0.1", timeout_s=300))  # patient: `import tvm` is slow under load
        emu = ArmEmulation.default()
        emu.setup(log=print)
        group.extend(emu.start_servers(tracker, "arm", 1, timeout_s=600))
        yield f"127.0.0.1:{port}"


def main(argv=None) -> int:
    global RUNS
    ap = argument_parser(__doc__)
    ap.add_argument("phase", choices=["table", "profile", "rule", "search", "bounds", "measure", "report", "timing",
                                      "stagewise", "designs"])
    ap.add_argument("--target", default="x86", choices=TARGETS)
    ap.add_argument("--tracker", default=None, help="HOST:PORT of the tracker (arm)")
    ap.add_argument("--key", default="arm")
    ap.add_argument("--max", type=int, default=10_000, help="measure at most this many distinct picks")
    ap.add_argument("--methods", default=None,
                    help="measure: only these methods' picks; search: only these methods (comma-separated, e.g. "
                         "full,reduced; default all)")
    ap.add_argument("--fresh-journal", action="store_true",
                    help="measure: in a new folder with a copy of the kernel table and an empty network journal "
                         "(every pick measured in this run, none reused)")
    ap.add_argument("--networks", type=int, default=None,
                    help="profile: design networks (default: the command's, 27 for macro; at most 60)")
    ap.add_argument("--design-seed", type=int, default=0,
                    help="profile: the seed of the design (the command's --seed; default 0): another seed, another "
                         "set of design networks, a replicate of the whole method (phase designs)")
    ap.add_argument("--trials", type=int, default=0, help="table: tuning trials per kernel (default 0: untuned)")
    ap.add_argument("--rule", default="window",
                    help="rule: the reduction rule run on the profile's measurements (default window)")
    ap.add_argument("--space", default="fashion", help="stagewise: the stage-wise space (default fashion)")
    ap.add_argument("--seeds", type=int, default=len(SEEDS),
                    help=f"search: seeds 0..N-1 per method and lookup count (default {len(SEEDS)}, the issue's; more "
                         "to tell a small paired difference from 0: searches reuse the ones already run); designs: "
                         "the search seeds used of each design")
    ap.add_argument("--quick", action="store_true", help="search: 2 seeds (smoke run, not reported)")
    ap.add_argument("--loop", default="chamnet", choices=list(LOOPS),
                    help="search: chamnet (the issue's GP + BO + genetic search; search_<t>.json) or budgeted (the "
                         "loop `chamtvm tune` runs; search-budgeted_<t>.json); the report reads both")
    ap.add_argument("--emulate-arm", type=int, default=None, metavar="PORT",
                    help="start the emulated ARM board (tracker on 127.0.0.1:PORT, key arm) for this phase and stop "
                         "it after")
    ap.add_argument("--luts-from", type=Path, default=None,
                    help="profile: copy the target's kernel table from this folder (default: the working folder's)")
    ap.add_argument("--reuse-luts", type=Path, default=None,
                    help="profile: an earlier profile's folder (its luts_dir): its design networks are reused from "
                         "its journal, nothing measured (to re-analyse a profile after a change of the analysis)")
    ap.add_argument("--schedules-from", type=Path, default=None,
                    help="profile: copy this schedules root (e.g. a main job's schedules/) for the design networks")
    ap.add_argument("--results-name", default=None,
                    help="report: results file NAME.json (and NAME_<target>_heatmap.png; default friendliness_macro); "
                         "designs: NAME.json and NAME.png (default friendliness_macro_designs)")
    ap.add_argument("--designs", default=None,
                    help="designs: comma-separated working folders, one profile's design seed each")
    ap.add_argument("--runs", type=Path, default=None,
                    help=f"this benchmark's working folder (default {rel(RUNS)}); the timing phase reads its profile")
    args = parse_args(ap, argv)
    if args.results_name is None:
        args.results_name = "friendliness_macro_designs" if args.phase == "designs" else "friendliness_macro"
    if args.runs is not None:
        RUNS = args.runs.resolve()
    RUNS.mkdir(parents=True, exist_ok=True)
    phase = {"table": phase_table, "profile": phase_profile, "rule": phase_rule, "search": phase_search, "bounds": phase_bounds, "measure": phase_measure, "report": phase_report,
             "timing": phase_timing, "stagewise": phase_stagewise, "designs": phase_designs}
    with emulated_board(args.emulate_arm) if args.emulate_arm else nullcontext(args.tracker) as tracker:
        args.tracker = tracker
        phase[args.phase](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

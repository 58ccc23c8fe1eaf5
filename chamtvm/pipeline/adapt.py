"""The adaptation steps (``job.TUNE_STEPS`` 13-20; the ``search`` command shares
``space latency``, ``budgets``, ``search context``, ``search``, ``export`` and ``measure
picks``): the space's latency and the budgets, the budget-aware accuracy loop on the task,
the pick at each budget, export and measurement of each pick, and the regret on tasks
that know their true accuracies. Each ``step_*`` function is one step; it reads and
writes the ``JobState`` fields its ``Step`` declares (``job``).

* ``budgets``: given, or the 25/50/75 % quantiles of the space's predicted latencies on
  the target; set before the accuracy loop, which spends its lookups on them;
* ``accuracy``: ``accuracy.pick_under_budgets`` through ``fit.build_predictor(strategy=
  "budgeted")``: lookups (trainings go through the journal
  ``runs/accuracy-<task>-<space>.jsonl``, so a rerun trains nothing twice) chosen for the
  budgets, exploration then verification of the top contenders;
* ``search``: per budget, the loop's best *observed* network under it when the loop's
  pool was the whole space (``chosen_by: "observed"``), else (pool smaller than the space;
  the ``search`` command) the genetic search on the GP fitted on the journal
  (``"search"``); deterministic; per pick the GP's probability that it beats the
  runner-up and whether the front is flat (predicted accuracies closer than the GP's std:
  the pick is then in effect latency-only);
* ``tune picks``: the picks' own kernels, the ones their libraries ship, tuned as one
  campaign of ``cfg.pick_trials`` MetaSchedule trials per distinct pick
  (``deploy.tune_network.tune_networks``: tuned records of the same kinds transferred first,
  then trials on the costliest of their distinct kernels, a kernel the picks share tuned once
  and ranked by its calls in all of them, starting from the database's records), their rows
  measured into the table; the pick re-prepared with the
  schedules after tuning and re-priced, its budget checked again; what it was before is kept
  (``PickTuning``) and measured beside it;
* ``export``: each chosen network's artefacts (``deploy.export_network``); up to date when
  ``export.json`` says the same architecture and kernel keys (schedules included) were
  exported already;
* ``measure picks``: each chosen network end to end on the target, journaled in
  ``luts/<target>.networks.jsonl`` (never measured twice): predicted vs measured; a pick
  whose own kernels were tuned is also measured as it was before, in the same batch;
* ``regret``: lookup tasks (true accuracy of every network known, ``regret``): the pick's
  true accuracy, the true best under the same budget, the regret in points, and the top
  ``contenders`` measured end to end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..search.genetic import SearchError, SearchResult
from ..space.schema import SearchSpace
from .pricing import price_and_measure_all

QUANTILES = (0.25, 0.5, 0.75)

def trainer_for(task: str, space: SearchSpace, command: str | None = None):
    """``(trainer, None)``, or ``(None, reason)`` when the task cannot train this space."""
    from ..accuracy.datasets import DatasetMissingError
    from ..accuracy.tasks import make_trainer

    if task == "none":
        return None, "skipped (--task none)"
    try:
        trainer = make_trainer(task, command)
        trainer.check(space)
    except (ValueError, DatasetMissingError) as e:
        return None, f"skipped: {e}"
    return trainer, None


def auto_budgets(latency, quantiles=QUANTILES) -> list[float]:
    """Budgets (ms, 3 significant digits) at quantiles of the space's predicted latencies
    (``latency``: a ``search.context.SpaceLatency`` or ``SearchContext``)."""
    lat = latency.latency_range_ms()
    return [float(f"{q:.3g}") for q in np.quantile(lat, quantiles)]


# ---------------------------------------------------------------- accuracy predictor
def step_task(s) -> None:
    """The task's trainer for the space, or why it cannot train it (then no accuracy steps)."""
    s.trainer, s.trainer_note = trainer_for(s.cfg.task, s.space, s.cfg.train_command)
    if s.trainer_note:
        s.log(f"note: the accuracy predictor and the search will be {s.trainer_note}")


def accuracy_enabled(s) -> str | None:
    return s.trainer_note if s.trainer is None else None


def step_accuracy(s) -> None:
    """The budget-aware accuracy loop on the task: lookups (trainings through the journal)
    chosen for the budgets, the best observed network under each, the GP fitted on them."""
    from ..accuracy.fit import build_predictor, default_journal, default_pool_size, trainer_protocol
    from ..accuracy.journal import Journal

    cfg, space, trainer = s.cfg, s.space, s.trainer
    journal = Journal(default_journal(trainer.task, space, cfg.runs_dir))
    pool = cfg.accuracy_pool or default_pool_size(space)
    built = build_predictor(space, trainer, journal, cfg.accuracy_samples, pool, "budgeted", cfg.accuracy_seed,
                            cfg.executor, cfg.progress, latency_ms=s.space_latency.batch.predict_ms,
                            budgets_ms=s.budgets_ms, proxies=cfg.accuracy_proxies, known_journal=cfg.accuracy_known)
    accuracy = {"status": "ok", **trainer_protocol(trainer), "kind": trainer.kind, "pool": len(built.pool),
                **built.summary()}
    if hasattr(trainer, "ceiling"):  # the task's own ranking ceiling, beside the GP's tau
        accuracy["ceiling"] = trainer.ceiling()
    s.accuracy_build, s.accuracy = built, accuracy
    s.journal_path, s.accuracy_protocol = journal.path, trainer_protocol(trainer)


def observed_picks(build, space: SearchSpace) -> dict:
    """Per budget (ms), ``(choice-index row, observed accuracy)`` of the accuracy loop's best
    *observed* network under it, when the loop's pool was the whole space (it then saw, by
    the same latency predictor, every network that meets the budget); ``{}`` otherwise
    (pool smaller than the space, or another strategy): the genetic search picks."""
    if build is None or build.budgeted is None or len(build.pool) != space.size():
        return {}
    return {p.budget_ms: (np.asarray(space.indices(build.pool[p.index])), p.accuracy)
            for p in build.budgeted.picks if p.index is not None and p.observed}


# ---------------------------------------------------------------- search
def step_space_latency(s) -> None:
    """The space's latency predictors on the target: the table with its saved models, batched."""
    from ..search.context import load_space_latency

    s.space_latency = load_space_latency(s.space, s.target, s.table, s.schedules)


def budgets_enabled(s) -> str | None:
    """The main job without a trainer has no use for budgets (the search command has no trainer)."""
    return s.get("trainer_note")


def step_budgets(s) -> None:
    """The budgets: the given ones, or quantiles of the space's predicted latencies."""
    s.budgets_ms = list(s.budgets_given) if s.budgets_given else auto_budgets(s.space_latency)


def step_search_context(s) -> None:
    """Load the search: the space's latency predictors and the GP fitted on the journal."""
    from ..search.context import load_search_context

    s.search_ctx = load_search_context(s.space, s.target, s.table, s.schedules, s.journal_path,
                                       s.search_settings.seed, s.get("accuracy_protocol"), s.space_latency)


@dataclass
class Pick:
    """The search's outcome at one budget (ms): the chosen architecture, its lowered network,
    prepared kernels and prediction by the network predictor; or the search's ``error``."""

    budget_ms: float
    result: SearchResult | None = None
    error: str | None = None
    arch: object = None
    net: object = None
    prepared: list | None = None
    prediction: object = None  # latency.models.FullPrediction
    observed_accuracy: float | None = None  # the accuracy loop's lookup of the pick (None: chosen by the search)
    prediction_search_residual: object = None  # after the picks' tuning (step measure picks): the search's figure


def step_search(s) -> None:
    """At each budget the accuracy loop's best observed network when its pool was the whole
    space, else the genetic search's pick; each pick lowered and priced by the network predictor."""
    from ..lower.network import lower_arch
    from ..table.fill import prepare
    from .regret import all_indices

    ctx, st, space = s.search_ctx, s.search_settings, s.space
    observed = observed_picks(s.get("accuracy_build"), space)
    every = all_indices(space) if observed else None
    every_acc = ctx.accuracy(every) if observed else None
    every_ms = ctx.batch.predict_ms(every) if observed else None
    picks = []
    bar = s.progress(len(s.budgets_ms), f"search at {len(s.budgets_ms)} budgets")
    try:
        for budget in s.budgets_ms:
            seen = observed.get(budget)
            try:
                result = (ctx.result_for(seen[0], budget, every, every_acc, every_ms) if seen else
                          ctx.search(budget, st.seed, st.population, st.generations, st.max_mflops, st.max_mparams,
                                     lcb_kappa=st.lcb_kappa))
            except SearchError as e:
                if st.strict:  # the search command: its budget cannot be met
                    raise
                picks.append(Pick(budget, error=str(e)))
                continue
            finally:
                bar.update(1)
            arch = space.from_indices(result.best_indices)
            net = lower_arch(space, arch, f"pick-{budget:g}ms", **s.target.lowering())
            prepared = prepare(net.kernels, s.target, s.schedules)
            picks.append(Pick(budget, result, None, arch, net, prepared, ctx.latency.predict(prepared),
                              seen[1] if seen else None))
    finally:
        bar.close()
    s.picks = picks


def uncertainty(ctx, result: SearchResult) -> dict:
    """The GP's P(best beats the runner-up) and the front's flatness (``search.uncertainty``)."""
    from ..search.uncertainty import beats_runner_up, front_flatness

    return {"p_beats_runner_up": beats_runner_up(ctx.gp, ctx.space, result.best_indices, result.runner_up_indices),
            "front_flatness": front_flatness(ctx.gp, ctx.space, result.pareto_indices)}


# ---------------------------------------------------------------- tune picks
@dataclass
class PickTuning:
    """A pick's own kernels tuned before export (step ``tune picks``): its prepared kernels
    and prediction before (what would have shipped) and what ``deploy.tune_network`` did
    (``tuning``: a ``NetworkTuning``); the pick itself holds them after."""

    prepared_before: list
    prediction_before: object  # latency.models.FullPrediction
    schedules_before: object   # ScheduleSource.frozen() of before the tuning: builds the pick as it was
    tuning: object             # deploy.tune_network.NetworkTuning (shared by picks of one network)


def tune_picks_enabled(s) -> str | None:
    """Tuning the picks needs trials and a way to time candidates on the target."""
    from ..measure.runners import runner_tracker

    if s.cfg.pick_trials <= 0:
        if getattr(s.cfg, "trials", None) == 0:  # the main job's --trials 0: no tuning at all
            return "--trials 0 (no tuning; --pick-trials N tunes the picks alone)"
        return "--pick-trials 0"
    if s.runner is None:
        return "no runner"
    if not s.target.local and runner_tracker(s.runner) is None:
        return f"target {s.target.name} is remote and its runner has no tracker to tune through"
    return None


def step_tune_picks(s) -> None:
    """Tune the picks' own kernels as one campaign of --pick-trials MetaSchedule trials per
    distinct pick; re-price each pick, re-check its budget."""
    from ..deploy.tune_network import tune_networks
    from ..measure.runners import runner_tracker
    from ..table.fill import prepare

    cfg, ctx = s.cfg, s.search_ctx
    ok = [p for p in s.picks if not p.error]
    schedules_before = s.schedules.frozen()  # what the picks would have shipped with
    distinct: dict[str, object] = {}  # one network per architecture (two budgets may pick the same one)
    for pick in ok:
        distinct.setdefault(pick.arch.to_json(), pick.net)
    trials = cfg.pick_trials * len(distinct)
    s.log(f"tuning the kernels of {len(distinct)} pick(s) as one campaign within {trials} trials "
          f"({cfg.pick_trials} per pick)")
    tuned = tune_networks(list(distinct.values()), s.target, trials, s.table, s.schedules, s.runner,
                          cfg.trials_per_kernel, cfg.tuning_population, runner_tracker(s.runner), cfg.statistic,
                          log=s.log) if distinct else []
    done = dict(zip(distinct, tuned))
    tunings = []
    for pick in s.picks:  # priced once every pick is tuned: later tunings may transfer to earlier picks
        if pick.error:
            tunings.append(None)
            continue
        before = (pick.prepared, pick.prediction)
        pick.prepared = prepare(pick.net.kernels, s.target, s.schedules)  # what export and measurement use
        pick.prediction = ctx.latency.predict(pick.prepared)
        if pick.prediction.latency_ms > pick.budget_ms:
            s.log(f"WARNING: the pick at {pick.budget_ms:g} ms is predicted at {pick.prediction.latency_ms:.3f} ms "
                  "after tuning its kernels: over its budget")
        tunings.append(PickTuning(*before, schedules_before, done[pick.arch.to_json()]))
    s.pick_tunings = tunings


def tuning_report(pick: Pick, t: PickTuning | None, before_price) -> dict | None:
    """The report's ``tuning`` entry of a tuned pick: trials, kernels, predicted and measured
    before (ms); the table sum after is the pick's with the schedules after every pick's
    tuning (later picks' records and transfers may reach kernels an earlier pick shares)."""
    if t is None:
        return None
    nt = t.tuning
    search = pick.prediction_search_residual or pick.prediction  # as the search's predictor prices it
    return {"trials_budget": nt.trials_budget, "trials_spent": nt.trials_spent, "seconds": nt.seconds,
            "campaign_networks": nt.shared_by,
            "predicted_before_ms": t.prediction_before.latency_ms,
            "predicted_with_search_residual_ms": search.latency_ms,
            "table_sum_before_ms": nt.before_ms, "table_sum_after_ms": search.table_sum_ms,
            # the sum the pick is priced from: kernels timed inside tuning networks at those times
            "priced_sum_after_ms": pick.prediction.table_sum_ms,
            "table_sum_default_ms": nt.default_ms,
            "within_budget_after": pick.prediction.latency_ms <= pick.budget_ms,
            "measured_before_ms": before_price.measured_ms if before_price else None,
            "provenance_before": nt.provenance_before, "provenance_after": nt.provenance_after,
            "kernels": nt.kernels}


# ---------------------------------------------------------------- export
@dataclass
class Export:
    """A pick's exported artefacts (``deploy.export_network``'s paths) and whether this run wrote them."""

    paths: dict
    exported_now: bool


def export_stamp(space: SearchSpace, pick: Pick) -> dict:
    """What an export depends on: the architecture, the space and the exact kernel keys."""
    return {"arch": pick.arch.to_dict(), "space": space.name, "kernel_keys": sorted(p.key for p in pick.prepared)}


def export_up_to_date(out: Path, stamp: dict) -> bool:
    """True when ``out/export.json`` holds ``stamp`` and every artefact it lists exists."""
    path = out / "export.json"
    if not path.exists():
        return False
    try:
        old = json.loads(path.read_text())
    except json.JSONDecodeError:
        return False
    return old.get("stamp") == stamp and all(Path(p).exists() for p in old.get("files", []))


def export_pick(space: SearchSpace, arch, target, out: Path, schedules, prepared, space_ref: str | None = None
                ) -> tuple[dict, bool]:
    """Export ``arch`` into ``out`` unless up to date; ``(paths, exported_now)``. ``space_ref``:
    how ``arch.json`` names the space (default its name)."""
    from ..core.atomic import atomic_write_text
    from ..deploy.export import export_network

    stamp = {"arch": arch.to_dict(), "space": space.name, "kernel_keys": sorted(p.key for p in prepared)}
    if export_up_to_date(out, stamp):
        return json.loads((out / "export.json").read_text())["paths"], False
    paths = export_network(space, arch, target, out, schedules, space_ref=space_ref or space.name)
    files = [v for k, v in paths.items() if k in ("arch", "onnx", "torch_export", "library")]
    atomic_write_text(out / "export.json", json.dumps({"stamp": stamp, "paths": paths, "files": files}, indent=1))
    return paths, True


def schedules_as_exported(pick: Pick, target, schedules, predict, log) -> list[str]:
    """Prepare ``pick``'s kernels with ``schedules`` as the export will build them; where a
    kernel's schedule is no longer the one it was priced with (a tuned record TVM cannot read
    back from the database is set aside, and the default schedule is built instead), warn,
    take the schedules that ship and price the pick again (``predict``: prepared kernels ->
    prediction), so that its export stamp, prediction and measurement all describe the
    library that ships. Returns the names of the kernels whose schedule changed."""
    from ..table.fill import prepare

    fresh = prepare(pick.net.kernels, target, schedules)
    before = {p.kernel.struct_hash: p.schedule for p in pick.prepared}
    changed = sorted({p.kernel.name for p in fresh if before.get(p.kernel.struct_hash) != p.schedule})
    if changed:
        log(f"WARNING: the pick at {pick.budget_ms:g} ms: {len(changed)} kernel(s) no longer get the schedule they "
            f"were priced with ({', '.join(changed[:4])}{', ...' if len(changed) > 4 else ''}): the database "
            "changed since (a record TVM could not read back is set aside); priced again as exported")
        pick.prepared = fresh
        pick.prediction = predict(fresh)
    return changed


def step_export(s) -> None:
    """Export each chosen network's artefacts (architecture, ONNX, torch.export, TVM library),
    each priced again first where its schedules changed since (``schedules_as_exported``)."""
    exports = []
    s.schedules.reload()
    for pick in s.picks:
        if pick.error:
            exports.append(None)
            continue
        schedules_as_exported(pick, s.target, s.schedules, s.search_ctx.latency.predict, s.log)
        paths, now = export_pick(s.space, pick.arch, s.target, s.pick_dir(pick.budget_ms), s.schedules,
                                 pick.prepared, s.space_ref)
        exports.append(Export(paths, now))
    s.exports = exports


def exports_up_to_date(s) -> dict | None:
    """Every pick's export up to date: the exports read back from their ``export.json``."""
    exports = []
    for pick in s.picks:
        if pick.error:
            exports.append(None)
            continue
        out = s.pick_dir(pick.budget_ms)
        if not export_up_to_date(out, export_stamp(s.space, pick)):
            return None
        exports.append(Export(json.loads((out / "export.json").read_text())["paths"], False))
    return {"exports": exports}


# ---------------------------------------------------------------- measure
def step_measure_picks(s) -> None:
    """Measure each chosen network end to end on the target: predicted vs measured (and as it was
    before tuning). After a tuning of the picks, the tuning networks (``tuned_residual``) are
    timed in the same batch, then call by call, and the picks are priced from their kernels'
    times inside them and the residual refitted on them."""
    from dataclasses import replace

    from ..measure.network import NetworkBuilds
    from .tuned_residual import price_after_tuning, tuning_networks

    ok = [pick for pick in s.picks if not pick.error]
    tunings = s.get("pick_tunings") or [None] * len(s.picks)
    before = [(pick, t) for pick, t in zip(s.picks, tunings) if t is not None]
    nets = [(pick.net, pick.prepared, {"arch": pick.arch.to_dict(), "space": s.space.name}) for pick in ok]
    nets += [(pick.net, t.prepared_before, {"arch": pick.arch.to_dict(), "space": s.space.name}, t.schedules_before)
             for pick, t in before]
    tuning = tuning_networks(s, [pick.arch for pick, _t in before]) if before else []
    bar = s.progress(len(nets) + len(tuning), "measuring the chosen networks" +
                     (" (and as before tuning, and the tuning networks)" if before else ""))
    with NetworkBuilds() as builds:  # a tuning network timed end to end, then call by call: compiled once
        try:
            priced = price_and_measure_all(nets + tuning, s.search_ctx.latency, s.target, s.runner, s.schedules,
                                           s.nets_table, on_done=lambda _i: bar.update(1), builds=builds)
        finally:
            bar.close()
        priced, tuning_priced = priced[:len(nets)], priced[len(nets):]
        s.pick_residual = None
        predictor = None
        if tuning:
            predictor, s.pick_residual = price_after_tuning(s, tuning, tuning_priced, builds)
    if predictor is not None:
        for pick in ok:
            pick.prediction_search_residual = pick.prediction
            pick.prediction = predictor.predict(pick.prepared)
        priced = [replace(p, prediction=predictor.predict(p.prepared)) for p in priced]
    after, was = iter(priced[:len(ok)]), iter(priced[len(ok):])
    s.pick_prices = [None if pick.error else next(after) for pick in s.picks]
    s.pick_prices_before = [None if t is None else next(was) for t in tunings]


def measure_enabled(s) -> str | None:
    return None if s.runner is not None and s.search_settings.measure else "--no-measure"


# ---------------------------------------------------------------- regret
def regret_enabled(s) -> str | None:
    from .regret import MAX_ENUMERATED

    if getattr(s.trainer, "true_accuracy", None) is None:
        return f"task {s.trainer.task!r} does not know the true accuracy of every network"
    if s.space.size() > MAX_ENUMERATED:
        return f"space {s.space.name!r} has more than {MAX_ENUMERATED} networks"
    return None


def step_regret(s) -> None:
    """The regret of each pick against the true best under its budget; the top contenders measured."""
    from ..lower.network import lower_arch
    from ..table.fill import prepare
    from .regret import contender_rows, pick_regret, regret_setup

    ctx, space = s.search_ctx, s.space
    setup = regret_setup(space, s.trainer, ctx.batch.predict_ms)
    # every pick's contenders measured in one batch (round-robin where networks are timed in rounds)
    def row_key(row) -> tuple[int, ...]:
        return tuple(int(x) for x in row)

    rows = {row_key(row): row for p in s.picks if not p.error
            for row in contender_rows(setup, p.budget_ms, s.cfg.contenders)}
    nets = []
    for n, row in enumerate(rows.values()):
        arch = space.from_indices(row)
        net = lower_arch(space, arch, f"contender{n}", **s.target.lowering())
        nets.append((net, prepare(net.kernels, s.target, s.schedules), {"arch": arch.to_dict(), "space": space.name}))
    measured = dict(zip(rows, (p.measured_ms for p in price_and_measure_all(
        nets, ctx.latency, s.target, s.runner, s.schedules, s.nets_table))))

    samples = len(s.accuracy_build.chosen)
    s.regrets = [None if p.error else pick_regret(setup, p.result.best_indices, p.budget_ms, samples,
                                                  s.cfg.contenders, lambda row: measured[row_key(row)])
                 for p in s.picks]
    s.regret_networks = int(len(setup.indices))


def pick_report(pick: Pick, export: Export | None, price, regret: dict | None, ctx,
                tuning: PickTuning | None = None, price_before=None) -> dict:
    """The report's entry of one pick (the fields the text report and the plot read); ``tuning``
    and ``price_before``: its own kernels' tuning and its measurement as it was before."""
    if pick.error:
        return {"budget_ms": pick.budget_ms, "error": pick.error}
    r = pick.result
    out = {"budget_ms": pick.budget_ms, "architecture": pick.arch.to_dict(), "predicted_accuracy": r.best_accuracy,
           "chosen_by": "search" if pick.observed_accuracy is None else "observed",
           "observed_accuracy": pick.observed_accuracy,
           "predicted_latency_ms": pick.prediction.latency_ms, "search_latency_ms": r.best_latency_ms,
           "measured_ms": price.measured_ms if price else None,
           "measured_spread_pct": price.spread_pct if price else None,
           "error_pct": price.error_pct if price else None,
           "measure_error": price.measure_error if price else "not measured",
           "evaluated": r.evaluated,
           "exported_now": export.exported_now if export else False,
           "artifacts": export.paths if export else None,
           "pareto": [{"predicted_accuracy": float(a), "predicted_latency_ms": float(lt)}
                      for a, lt in zip(r.pareto_accuracy, r.pareto_latency_ms)],
           **uncertainty(ctx, r)}
    if tuning is not None:
        out["tuning"] = tuning_report(pick, tuning, price_before)
    if regret is not None:
        out.update(regret)
    return out

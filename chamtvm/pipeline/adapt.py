"""The main job's second half: accuracy predictor on the task, search at a few latency
budgets, export and measurement of each chosen network.

Steps (after ``tune``'s latency steps), each resumable or skipped when up to date:
  7. accuracy   build the GP accuracy predictor on the built-in task (``accuracy.build``):
                trainings go through the journal ``runs/accuracy-<task>-<space>.jsonl``,
                so a rerun trains nothing twice
  8. search     the genetic search at each budget (given, or the 25/50/75 % quantiles of
                the space's predicted latencies on the target); deterministic, < 1 s each;
                per pick the GP's probability that it beats the runner-up, and whether the
                front is flat (predicted accuracies closer than the GP's std: the report
                then says the search was in effect latency-only); ``lcb_kappa``: search
                on the lower confidence bound
  8b. regret    lookup tasks (true accuracy of every network known, ``regret``): the
                pick's true accuracy, the true best under the same budget (latency
                predicted for all; the top ``contenders`` measured), the regret in points
  9. export     each chosen network's artefacts (``deploy.export_network``) into
                ``runs/tune-<target>/<space>-<budget>ms/``; skipped when ``export.json``
                says the same architecture and kernel keys (schedules included) were
                exported already
 10. measure    each chosen network end to end on the target (journaled in
                ``luts/<target>.networks.jsonl``, never measured twice): predicted vs measured"""

from __future__ import annotations
import json
from pathlib import Path
import numpy as np
from ..search.genetic import SearchError
from ..space.schema import SearchSpace



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


def auto_budgets(ctx, quantiles=QUANTILES) -> list[float]:
    """Budgets (ms, 3 significant digits) at quantiles of the space's predicted latencies."""
    lat = ctx.latency_range_ms()
    return [float(f"{q:.3g}") for q in np.quantile(lat, quantiles)]


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


def export_pick(space: SearchSpace, arch, target, out: Path, schedules, prepared) -> tuple[dict, bool]:
    """Export ``arch`` into ``out`` unless up to date; ``(paths, exported_now)``."""
    from ..deploy.export import export_network

    stamp = {"arch": arch.to_dict(), "space": space.name, "kernel_keys": sorted(p.key for p in prepared)}
    if export_up_to_date(out, stamp):
        return json.loads((out / "export.json").read_text())["paths"], False
    paths = export_network(space, arch, target, out, schedules, space_ref=space.name)
    files = [v for k, v in paths.items() if k in ("arch", "onnx", "torch_export", "library")]
    from ..core.atomic import atomic_write_text

    atomic_write_text(out / "export.json", json.dumps({"stamp": stamp, "paths": paths, "files": files}, indent=1))
    return paths, True


def run_adapt(space: SearchSpace, target, runner, table, nets_table, schedules, cfg, timer, log=print) -> dict:
    """Steps 7-10 (module docstring); returns the report's ``accuracy`` and ``picks`` parts."""
    from ..accuracy.fit import build_predictor, default_journal, default_pool_size, trainer_protocol
    from ..accuracy.journal import Journal
    from ..lower.network import lower_arch
    from ..search.context import search_context
    from ..table.fill import prepare
    from ..table.networks import ensure_measured
    from ..core.progress import progress_bar
    from ..core.metrics import spread_pct

    trainer, reason = trainer_for(cfg.task, space, cfg.train_command)
    if trainer is None:
        log(f"accuracy predictor and search: {reason}")
        return {"accuracy": {"status": reason}, "picks": []}
    journal = Journal(default_journal(trainer.task, space, cfg.runs_dir))
    pool = cfg.accuracy_pool or default_pool_size(space)
    built = timer.run("accuracy", build_predictor, space, trainer, journal, cfg.accuracy_samples,
                      pool, "bo", cfg.accuracy_seed, cfg.executor, cfg.progress)
    accuracy = {"status": "ok", **trainer_protocol(trainer), "kind": trainer.kind, "pool": len(built.pool),
                **built.summary()}
    if hasattr(trainer, "ceiling"):  # the task's own ranking ceiling, beside the GP's tau
        accuracy["ceiling"] = trainer.ceiling()

    ctx = search_context(space, target, cfg.luts_dir, cfg.schedules_dir, journal.path, cfg.search_seed,
                         trainer_protocol(trainer))
    budgets = list(cfg.budgets_ms) if cfg.budgets_ms else auto_budgets(ctx)
    from ..search.uncertainty import beats_runner_up, front_flatness
    from .regret import pick_regret, regret_setup

    setup = timer.run("regret", regret_setup, space, trainer, ctx.batch.predict_ms)

    def measure_row(row):
        a = space.from_indices(row)
        n = lower_arch(space, a, "contender")
        prep = prepare(n.kernels, target, schedules)
        r = ensure_measured(n, prep, target, runner, schedules, nets_table, {"arch": a.to_dict(), "space": space.name},
                            ctx.latency.predict(prep).table_sum_ms * 1e3)
        return r["runtime_us_p50"] / 1e3 if r and r.get("status") == "ok" else None

    picks = []
    bar = progress_bar(len(budgets), f"search, export and measure at {len(budgets)} budgets", cfg.progress)
    for budget in budgets:
        pick = {"budget_ms": budget}
        try:
            result = timer.run("search", ctx.search, budget, cfg.search_seed, cfg.population, cfg.generations,
                               lcb_kappa=cfg.lcb_kappa)
        except SearchError as e:
            pick["error"] = str(e)
            picks.append(pick)
            bar.update(1)
            continue
        arch = space.from_indices(result.best_indices)
        net = lower_arch(space, arch, f"pick-{budget:g}ms")
        prepared = prepare(net.kernels, target, schedules)
        full = ctx.latency.predict(prepared)
        out = Path(cfg.runs_dir) / f"tune-{target.name}" / f"{space.name}-{budget:g}ms"
        paths, exported_now = timer.run("export", export_pick, space, arch, target, out, schedules, prepared)
        row = timer.run("measure picks", ensure_measured, net, prepared, target, runner, schedules, nets_table,
                        {"arch": arch.to_dict(), "space": space.name}, full.table_sum_ms * 1e3)
        measured_ms = row["runtime_us_p50"] / 1e3 if row and row.get("status") == "ok" else None
        pick.update({
            "architecture": arch.to_dict(), "predicted_accuracy": result.best_accuracy,
            "predicted_latency_ms": full.latency_ms, "search_latency_ms": result.best_latency_ms,
            "measured_ms": measured_ms,
            "measured_spread_pct": spread_pct(row) if measured_ms else None,
            "error_pct": 100 * (full.latency_ms / measured_ms - 1) if measured_ms else None,
            "measure_error": None if measured_ms else (row or {}).get("error", "not measured"),
            "evaluated": result.evaluated, "exported_now": exported_now, "artifacts": paths,
            "pareto": [{"predicted_accuracy": float(a), "predicted_latency_ms": float(lt)}
                       for a, lt in zip(result.pareto_accuracy, result.pareto_latency_ms)],
            "p_beats_runner_up": beats_runner_up(ctx.gp, space, result.best_indices, result.runner_up_indices),
            "front_flatness": front_flatness(ctx.gp, space, result.pareto_indices),
        })
        if setup is not None:
            pick.update(timer.run("regret", pick_regret, setup, result.best_indices, budget, len(built.chosen),
                                  cfg.contenders, measure_row))
        picks.append(pick)
        bar.update(1)
    bar.close()
    flat = [p["budget_ms"] for p in picks if p.get("front_flatness", {}).get("flat")]
    warning = None
    if flat:
        warning = (f"flat accuracy predictor: at budgets {flat} ms the front's predicted accuracies differ by less "
                   f"than the GP's own std, so those picks are in effect latency-only choices")
        log(f"WARNING: {warning}")
    return {"accuracy": accuracy, "picks": picks, "accuracy_warning": warning,
            "regret": None if setup is None else {"networks": int(len(setup.indices)), "contenders": cfg.contenders},
            "search_setup": {"lcb_kappa": cfg.lcb_kappa,"budgets": "given" if cfg.budgets_ms else f"quantiles {list(QUANTILES)} of predicted latency",
                             "seed": cfg.search_seed, "population": cfg.population, "generations": cfg.generations,
                             "accuracy_protocol": ctx.protocol, "trained_architectures": ctx.n_trained}}

"""The main job: build (or resume) a target's latency table, schedules and latency
predictor for a space and check them on held-out networks measured end to end; then
(``adapt``) build the accuracy predictor on the task, search at a few latency budgets
and export and measure the chosen networks.

Steps, each resumable:
  1. coverage   every fused kernel of the space (probe lowering, ``coverage``)
  2. table      measure the kernels the table lacks (default schedules), plus a fixed
                calibration sweep of operators outside the space (``calibration``)
  3. tuning     MetaSchedule within ``trials``, most expensive kernels first; the tuned
                kernels are then measured too (new keys: ``ms-<trace hash>``)
  4. models     the unseen-kernel model (table rows) and the residual model (a few
                measured training networks), saved next to the table
  5. held-out   sample networks (seeded), predict them (table sum, and table + residual),
                measure them end to end (appended to ``luts/<target>.networks.jsonl``)
  7-10.         accuracy predictor, search, export, measure: see ``adapt``
  report        predicted vs measured, fidelity metrics, the chosen networks, time spent;
                printed and JSON"""

from __future__ import annotations
from dataclasses import dataclass
import numpy as np
from ..table.store import LatencyTable
from ..measure.base import Runner
from ..lower.network import lower_arch
from ..latency.table_sum import table_sum
from ..tuning.schedules import ScheduleSource
from ..table.fill import fill_table, prepare
from ..targets.spec import TargetSpec
from .config import TuneConfig
from ..table.networks import ensure_measured
from ..core.progress import progress_bar



@dataclass
class MeasuredArch:
    """One architecture lowered, predicted from the table and measured end to end."""

    arch: object
    net: object
    prepared: list
    table_sum: object  # predict.Prediction
    row: dict | None   # the network row (status ok or failed), None if never measured


def measure_archs(space, archs, target: TargetSpec, runner: Runner, schedules: ScheduleSource,
                  table: LatencyTable, nets_table: LatencyTable, desc: str, cfg: "TuneConfig",
                  prefix: str = "net") -> list[MeasuredArch]:
    """Lower each architecture, measure any kernel the table lacks (never guess), and
    measure the network end to end unless the journal has it."""
    out = []
    bar = progress_bar(len(archs), desc, cfg.progress)
    for i, arch in enumerate(archs):
        net = lower_arch(space, arch, f"{prefix}{i}")
        prep = prepare(net.kernels, target, schedules)
        pred = table_sum(prep, table, cfg.statistic)
        if pred.missing:
            fill_table(prep, table, runner, target, cfg.batch_size)
            pred = table_sum(prep, table, cfg.statistic)
        row = ensure_measured(net, prep, target, runner, schedules, nets_table,
                              {"arch": arch.to_dict(), "space": space.name}, pred.latency_ms * 1e3)
        out.append(MeasuredArch(arch, net, prep, pred, row))
        bar.update(1)
    bar.close()
    return out


@dataclass
class FittedModels:
    predictor: object
    residual: object
    n_train: int
    kernel_rows: int
    paths: dict
    residual_selection: dict  # how the residual was chosen (``latency.models.fit_residual``)


def fit_models(space, table: LatencyTable, nets_table: LatencyTable, target: TargetSpec, runner: Runner,
               schedules: ScheduleSource, cfg: TuneConfig) -> FittedModels:
    """Fit (and save next to the table) the unseen-kernel model on the table's rows and the
    residual model on ``cfg.train_networks`` measured networks (measured now if missing)."""
    from pathlib import Path

    from ..latency.models import (
        KernelCostModel,
        LatencyPredictor,
        fit_residual,
        model_paths,
        network_training_set,
    )

    kernel_path, residual_path = model_paths(table, space.name)
    rows = list(table.rows())
    kernel_model = KernelCostModel().fit(rows) if len(rows) >= 5 else None
    if kernel_model is not None:
        kernel_model.save(kernel_path, table)
    residual, n_train, selection = None, 0, {"chosen": "none", "why": "no training networks"}
    if cfg.train_networks >= 2:
        rng = np.random.default_rng(cfg.train_seed)
        archs = [space.sample(rng) for _ in range(cfg.train_networks)]
        measured = measure_archs(space, archs, target, runner, schedules, table, nets_table,
                                 "training networks for the residual (measure)", cfg, "train")
        keys = [m.row["key"] for m in measured if m.row is not None and m.row.get("status") == "ok"]
        X, sums, meas, all_keys = network_training_set(nets_table, table, target.fingerprint)
        pick = [i for i, k in enumerate(all_keys) if k in set(keys)]
        n_train = len(pick)
        if n_train >= 2:
            residual, selection = fit_residual(X[pick], sums[pick], meas[pick], cfg.residual_mode)
        if residual is not None:
            residual.save(residual_path, table, [all_keys[i] for i in pick])
        else:  # no residual beats the table sum: a residual saved by an earlier run must not be used
            for stale in (residual_path, Path(str(residual_path) + ".meta.json")):
                stale.unlink(missing_ok=True)
    return FittedModels(LatencyPredictor(table, kernel_model, residual), residual, n_train, len(rows),
                        {"kernel_model": str(kernel_path), "residual": str(residual_path) if residual else None},
                        selection)


def tune_schedules(kernels, table: LatencyTable, target: TargetSpec, schedules: ScheduleSource,
                   cfg: TuneConfig, log=print, tracker: tuple[str, int, str] | None = None,
                   runner: Runner | None = None) -> list[dict]:
    """The tuning step: ``tuning.policy.tune_schedules`` within ``cfg.trials``, ranking the
    kernels by their default-schedule rows of ``table``."""
    from ..tuning.policy import tune_schedules as tune

    default_us = {p.kernel.struct_hash: row["runtime_us_p50"]
                  for p in prepare(kernels, target, ScheduleSource(target, use_database=False))
                  if (row := table.get(p.key)) is not None}
    return tune(kernels, default_us, target, schedules, cfg.trials, cfg.trials_per_kernel, cfg.tuning_population,
                log=log, tracker=tracker, runner=runner)

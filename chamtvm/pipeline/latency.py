"""The latency steps of the main job (``job.TUNE_STEPS`` 3-12): every kernel of the space
in the target's table, the calibration sweep, tuning, the schedules that ship (the faster
of tuned and default as the table prices them), the latency models, and the held-out
networks that check them. Each ``step_*`` function is one step; it reads and writes the
``JobState`` fields its ``Step`` declares (``job``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..measure.base import Runner
from ..lower.network import lower_arch
from ..table.faster_schedule import default_rows_us
from ..table.fill import fill_table, prepare
from ..table.store import LatencyTable
from ..targets.spec import TargetSpec
from ..tuning.schedules import ScheduleSource
from .pricing import PricedNetwork, price_and_measure_all


def untimed_keys(prepared, table: LatencyTable) -> int:
    """How many of the prepared kernels the table neither has nor has seen fail."""
    return sum(1 for p in prepared if p.key not in table and table.failed(p.key) is None)


def fill(s, prepared, desc: str):
    """Measure the prepared kernels the table lacks (a progress bar from the instruments);
    the fill summary (``table.fill.BuildSummary``)."""
    bar = s.progress(untimed_keys(prepared, s.table), desc)
    try:
        return fill_table(prepared, s.table, s.runner, s.target, s.cfg.batch_size, progress=bar.update)
    finally:
        bar.close()


def _all_in_table(prepared_field: str, fill_field: str):
    """An ``up_to_date`` for a measuring step: its summary (nothing measured) when every
    kernel of ``prepared_field`` is in the table or failed before."""
    from ..table.fill import BuildSummary

    def up_to_date(s):
        prepared = getattr(s, prepared_field)
        if untimed_keys(prepared, s.table):
            return None
        return {fill_field: BuildSummary(requested=len(prepared), already_in_table=len(prepared))}

    return up_to_date


def step_coverage(s) -> None:
    """Every fused kernel of the space (probe lowering, ``lower.coverage``)."""
    from ..lower.coverage import probe_group_count, space_kernels

    bar = s.progress(probe_group_count(s.space), "lowering probe modules")
    try:
        s.kernels = space_kernels(s.space, progress=bar.update, lowering=s.target.lowering())
    finally:
        bar.close()


def step_prepare(s) -> None:
    """The space's kernels with the schedules of the target's database (the table keys)."""
    s.prepared = prepare(s.kernels, s.target, s.schedules)


def step_table(s) -> None:
    """Measure the space's kernels the table lacks."""
    s.table_fill = fill(s, s.prepared, f"measuring kernels ({len(s.kernels)} in space)")


table_up_to_date = _all_in_table("prepared", "table_fill")


def step_calibration(s) -> None:
    """Measure the calibration sweep: operators outside the space, for the unseen-kernel model."""
    from ..lower.calibration import calibration_kernels, real_calibration_kernels

    calib, mode = calibration_kernels(), s.cfg.real_calibration
    if mode and mode != "adaptive":
        calib = calib + real_calibration_kernels()
    measured = fill(s, prepare(calib, s.target, s.schedules), f"measuring calibration kernels ({len(calib)})").measured
    rounds = []
    if mode == "adaptive":  # the real-network sweep grown where the kernel model is least sure
        from ..latency.adaptive import adaptive_calibration

        def fill_round(prepared):
            nonlocal measured
            summary = fill(s, prepared, "adaptive sweep")
            measured += summary.measured
            return summary

        rounds = [r.to_dict() for r in adaptive_calibration(s.table, fill_round, s.target, s.schedules, log=s.log)]
    s.calibration_measured, s.adaptive_calibration = measured, rounds


def calibration_enabled(s) -> str | None:
    return None if s.cfg.calibration else "--no-calibration"


def step_tuning(s) -> None:
    """Tune the costliest kernels with MetaSchedule within the trials, then transfer their schedules."""
    from ..measure.runners import runner_tracker
    from ..tuning.policy import tune_schedules

    cfg = s.cfg
    s.tuned_now = tune_schedules(s.kernels, default_rows_us(s.kernels, s.table, s.target), s.target, s.schedules,
                                 cfg.trials, cfg.trials_per_kernel, cfg.tuning_population, log=s.log,
                                 tracker=runner_tracker(s.runner), runner=s.runner)


def tuning_enabled(s) -> str | None:
    from ..measure.runners import runner_tracker

    if s.cfg.trials <= 0:
        return "--trials 0"
    if not s.target.local and runner_tracker(s.runner) is None:
        return f"target {s.target.name} is remote and its runner has no tracker to tune through"
    return None


def step_prepare_tuned(s) -> None:
    """The space's kernels with the schedules after tuning (new keys: ``ms-<trace hash>``)."""
    s.prepared_tuned = prepare(s.kernels, s.target, s.schedules)


def step_tuned_table(s) -> None:
    """Measure the tuned kernels the table lacks."""
    s.tuned_fill = fill(s, s.prepared_tuned, "measuring tuned kernels")


tuned_table_up_to_date = _all_in_table("prepared_tuned", "tuned_fill")


def step_faster_schedules(s) -> None:
    """Set aside every tuned or transferred schedule no faster in the network than its default row.

    Compares each deployed schedule's row (timed in batch networks) with the kernel's
    default-schedule row, measuring a default row the table lacks first, and lists the slower
    ones as default-preferred (``table.faster_schedule``); ``schedules`` is reloaded, so every
    later step that prepares kernels from it (models, held-out networks, search, export,
    picks) prices and builds what ships, and ``prepared_deployed`` is the space's kernels
    with those schedules."""
    from ..table.faster_schedule import set_aside_slower_schedules
    from ..tuning.schedules import DEFAULT_TAG

    tuned = [p for p in s.prepared_tuned if p.schedule != DEFAULT_TAG]
    defaults = prepare([p.kernel for p in tuned], s.target, ScheduleSource(s.target, use_database=False))
    if untimed_keys(defaults, s.table):
        fill(s, defaults, "measuring default rows of tuned kernels")
    default_us = default_rows_us(tuned, s.table, s.target, s.cfg.statistic)
    s.set_aside_schedules = set_aside_slower_schedules(tuned, default_us, s.table, s.schedules, s.cfg.statistic,
                                                       s.log)
    if s.set_aside_schedules:
        s.schedules.reload()
        s.prepared_deployed = prepare(s.kernels, s.target, s.schedules)
    else:
        s.prepared_deployed = s.prepared_tuned


@dataclass
class FittedModels:
    """The latency models of a table: ``predictor`` (table sum, kernel model for unseen
    kernels, residual), the residual alone (None when too few networks), how many training
    networks and table rows they were fitted on, and where they were saved."""

    predictor: object
    residual: object
    n_train: int
    kernel_rows: int
    paths: dict
    residual_selection: dict  # how the residual was chosen (``latency.models.fit_residual``)


def lower_archs(space, archs, target: TargetSpec, runner: Runner, schedules: ScheduleSource, table: LatencyTable,
                prefix: str = "net", batch_size: int = 48) -> list[tuple]:
    """``(LoweredNetwork, prepared kernels, journal meta)`` per architecture, named
    ``<prefix><i>``; every kernel the table lacks is measured first (a price is never a guess)."""
    nets = []
    for i, arch in enumerate(archs):
        net = lower_arch(space, arch, f"{prefix}{i}", **target.lowering())
        prepared = prepare(net.kernels, target, schedules)
        if untimed_keys(prepared, table):
            fill_table(prepared, table, runner, target, batch_size)
        nets.append((net, prepared, {"arch": arch.to_dict(), "space": space.name}))
    return nets


def price_archs(space, archs, predictor, target: TargetSpec, runner: Runner, schedules: ScheduleSource,
                table: LatencyTable, nets_table: LatencyTable, bar, prefix: str = "net",
                batch_size: int = 48, statistic: str = "runtime_us_p50",
                lowered: list[tuple] | None = None) -> list[tuple[object, PricedNetwork]]:
    """``(arch, PricedNetwork)`` per architecture: lowered (``lower_archs``, unless ``lowered``
    holds its result for these ``archs``), priced by ``predictor`` and measured end to end
    unless the network journal has it, all in one batch (``pricing.price_and_measure_all``:
    round-robin where the target times networks in rounds). ``bar.update(1)`` per network
    measured."""
    nets = lowered if lowered is not None else lower_archs(space, archs, target, runner, schedules, table, prefix,
                                                           batch_size)
    if len(nets) != len(archs):
        raise ValueError(f"{len(nets)} lowered networks for {len(archs)} architectures")
    priced = price_and_measure_all(nets, predictor, target, runner, schedules, nets_table, statistic,
                                   on_done=lambda _i: bar.update(1))
    return list(zip(archs, priced))


def step_models(s) -> None:
    """Fit and save the unseen-kernel model (table rows) and the residual model (training networks).

    The training networks and the held-out networks (step 12) are timed in one batch, round-robin
    in the target's rounds, so both sets see the same states of the machine: on a machine whose
    speed drifts over minutes, two batches timed apart differ by a few per cent as a whole
    (``benchmarks/bench_noise_floor.py``), and a residual fitted on one batch would carry that
    difference into the held-out figure. Only the training networks' rows are fitted on; the
    held-out rows wait in the network journal for step 12."""
    from pathlib import Path

    from ..latency.models import (
        KernelCostModel,
        LatencyPredictor,
        fit_residual,
        model_paths,
        network_training_set,
    )

    cfg, space, table = s.cfg, s.space, s.table
    kernel_path, residual_path = model_paths(table, space.name)
    rows = list(table.rows())
    kernel_model = KernelCostModel().fit(rows) if len(rows) >= 5 else None
    if kernel_model is not None:
        kernel_model.save(kernel_path, table)
    residual, n_train, selection = None, 0, {"chosen": "none", "why": "no training networks"}
    s.heldout_lowered = None  # step 12 lowers them itself unless they are timed here
    if cfg.train_networks >= 2:
        archs = training_archs(cfg, space)
        heldout = heldout_archs(cfg, space)  # timed beside them, never fitted on (see the docstring)
        bar = s.progress(len(archs) + len(heldout), "training and held-out networks (measure)")
        try:
            lowered = lower_archs(space, archs, s.target, s.runner, s.schedules, table, "train", cfg.batch_size)
            s.heldout_lowered = lower_archs(space, heldout, s.target, s.runner, s.schedules, table, "heldout",
                                            cfg.batch_size)
            priced = price_archs(space, archs + heldout, LatencyPredictor(table), s.target, s.runner, s.schedules,
                                 table, s.nets_table, bar, "train", cfg.batch_size, cfg.statistic,
                                 lowered=lowered + s.heldout_lowered)[:len(archs)]
        finally:
            bar.close()
        keys = {p.row["key"] for _, p in priced if p.ok}
        X, sums, meas, all_keys = network_training_set(s.nets_table.rows(), table, s.target.fingerprint)
        pick = [i for i, k in enumerate(all_keys) if k in keys]
        n_train = len(pick)
        if n_train >= 2:
            residual, selection = fit_residual(X[pick], sums[pick], meas[pick], cfg.residual_mode)
        if residual is not None:
            residual.save(residual_path, table, [all_keys[i] for i in pick])
        else:  # no residual beats the table sum: a residual saved by an earlier run must not be used
            for stale in (residual_path, Path(str(residual_path) + ".meta.json")):
                stale.unlink(missing_ok=True)
    s.models = FittedModels(LatencyPredictor(table, kernel_model, residual), residual, n_train, len(rows),
                            {"kernel_model": str(kernel_path), "residual": str(residual_path) if residual else None},
                            selection)


def training_archs(cfg, space) -> list:
    """The seeded training architectures (``cfg.train_networks`` of them, ``cfg.train_seed``;
    none for a config without training networks, e.g. the search command's)."""
    rng = np.random.default_rng(getattr(cfg, "train_seed", 0))
    return [space.sample(rng) for _ in range(getattr(cfg, "train_networks", 0))]


def heldout_archs(cfg, space) -> list:
    """The seeded held-out architectures (``cfg.heldout`` of them, ``cfg.heldout_seed``)."""
    rng = np.random.default_rng(cfg.heldout_seed)
    return [space.sample(rng) for _ in range(cfg.heldout)]


def step_heldout(s) -> None:
    """Predict seeded held-out networks (table sum; table + residual) and measure them end to end
    (already measured by step 11 in the training networks' batch, unless no residual was fitted)."""
    cfg, space = s.cfg, s.space
    archs = heldout_archs(cfg, space)
    bar = s.progress(len(archs), "held-out networks (predict; measured with the training networks)")
    try:
        lowered = s.get("heldout_lowered")  # lowered by step 11 when it timed them (None: not)
        priced = price_archs(space, archs, s.models.predictor, s.target, s.runner, s.schedules, s.table,
                             s.nets_table, bar, "heldout", cfg.batch_size, cfg.statistic, lowered=lowered)
    finally:
        bar.close()
    s.heldout = [{"name": p.name, "key": p.row["key"], "arch": arch.to_dict(),
                  "predicted_ms": p.predicted_ms, "table_sum_ms": p.table_sum_ms,
                  "measured_ms": p.measured_ms, "measured_spread_pct": p.spread_pct,
                  "error_pct": p.error_pct, "kernels": len(p.prepared)}
                 for arch, p in priced if p.ok]


def heldout_enabled(s) -> str | None:
    return None if s.cfg.heldout > 0 else "--heldout 0"

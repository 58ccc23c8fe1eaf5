"""What the steps of the jobs read and write: one typed field per intermediate result.

``JobState`` holds the caller's inputs (``INPUTS``) and, for every field a step writes, the
value once written (``steps.UNSET`` until then). Which step writes and reads which field is
declared on the steps (``job.TUNE_STEPS``, ``search_job.SEARCH_STEPS``) and checked when they run.
Latencies are in ms unless the name says ``us``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .steps import UNSET


@dataclass(frozen=True)
class SearchSettings:
    """How the genetic search runs at each budget: its seed, size, the optional lower
    confidence bound (``lcb_kappa``: search on mean - kappa * GP std), limits in millions
    of multiply-accumulates / parameters, whether the picks are measured, and whether an unmet
    budget is an error."""

    seed: int = 0
    population: int = 200
    generations: int = 60
    lcb_kappa: float | None = None
    max_mflops: float | None = None
    max_mparams: float | None = None
    measure: bool = True  # measure each pick end to end (the search command's --no-measure: False)
    strict: bool = False  # a budget no network meets stops the job (the search command) instead of
                          # leaving a pick with an error (the main job)


@dataclass(eq=False)
class JobState:
    """The state of one job run (see the module docstring)."""

    INPUTS = ("target", "runner", "cfg", "log", "stage_dir", "skipped")

    # ---- inputs, set by the caller
    target: Any                        # TargetSpec
    runner: Any                        # Runner, or None (the search command with --no-measure)
    cfg: Any                           # TuneConfig or SearchConfig: what the job was asked
    log: Callable[..., None] = print   # where steps say what the user must know (warnings, notes)
    stage_dir: Path | None = None      # the search command: the folder its output is staged in
    skipped: dict = field(default_factory=dict)  # step name -> why it did not run (run_steps)

    # ---- the stores and settings (the first step of each job)
    space: Any = UNSET                 # SearchSpace
    space_ref: Any = UNSET             # str: how exported arch.json files name the space (a name or a path)
    table: Any = UNSET                 # LatencyTable of the target's kernels (steps append to it)
    nets_table: Any = UNSET            # LatencyTable: the target's journal of network measurements
    schedules: Any = UNSET             # ScheduleSource: the target's MetaSchedule database
    search_settings: Any = UNSET       # SearchSettings
    budgets_given: Any = UNSET         # tuple of budgets (ms) asked for, or None: automatic
    pick_dir: Any = UNSET              # Callable[[budget_ms], Path]: where a pick is exported
    trainer: Any = UNSET               # the task's Trainer, or None when it cannot train the space
    trainer_note: Any = UNSET          # why there is no trainer (None when there is one)

    # ---- latency: table, tuning, models, held-out networks
    kernels: Any = UNSET               # list[Kernel]: every fused kernel of the space
    prepared: Any = UNSET              # list[PreparedKernel]: those kernels with the schedules the job
                                       # started with
    table_fill: Any = UNSET            # BuildSummary of measuring the space's kernels
    calibration_measured: Any = UNSET  # int: calibration kernels measured this run
    adaptive_calibration: Any = UNSET  # list[dict]: rounds of the adaptive sweep ([] when uniform)
    tuned_now: Any = UNSET             # list[dict]: kernels tuned (policy joint) or transferred this run
    prepared_tuned: Any = UNSET        # list[PreparedKernel]: the space's kernels with the schedules
                                       # after this run's tuning (``prepared`` is left as it was)
    tuned_fill: Any = UNSET            # BuildSummary of measuring the tuned kernels
    set_aside_schedules: Any = UNSET   # list[str]: struct hashes of kernels whose tuned or transferred
                                       # schedule was no faster in the network than the default row: the
                                       # default ships (``table.faster_schedule``)
    prepared_deployed: Any = UNSET     # list[PreparedKernel]: the space's kernels with the schedules that
                                       # ship, after ``set_aside_schedules`` (``schedules`` is reloaded, so
                                       # later steps that prepare from it build and price the same)
    models: Any = UNSET                # latency.FittedModels: kernel model, residual, predictor
    heldout_lowered: Any = UNSET       # list[(LoweredNetwork, prepared kernels, journal meta)]: the
                                       # held-out networks as step ``models`` lowered and timed them
                                       # (None: it did not; step ``heldout`` lowers them itself)
    heldout: Any = UNSET               # list[dict]: held-out networks, predicted and measured

    # ---- budgets, accuracy loop and search
    space_latency: Any = UNSET         # search.context.SpaceLatency: the space's latency predictors
    accuracy_build: Any = UNSET        # accuracy.fit.PredictorBuild (its ``budgeted``: the loop's picks)
    accuracy: Any = UNSET              # dict: the report's ``accuracy`` part
    journal_path: Any = UNSET          # Path of the accuracy journal the search fits its GP on
    accuracy_protocol: Any = UNSET     # dict: the trainings' protocol (None: the journal's newest)
    search_ctx: Any = UNSET            # search.context.SearchContext
    budgets_ms: Any = UNSET            # list[float]: the budgets of the accuracy loop and the search
    picks: Any = UNSET                 # list[adapt.Pick]: per budget, the chosen network or the error
    pick_tunings: Any = UNSET          # list[adapt.PickTuning | None] per pick: its own kernels tuned
                                       # (the pick's ``prepared`` and ``prediction`` are then the tuned ones)
    exports: Any = UNSET               # list[adapt.Export | None] per pick (None: no network)
    pick_prices: Any = UNSET           # list[PricedNetwork | None] per pick
    pick_prices_before: Any = UNSET    # list[PricedNetwork | None] per pick: as it was before tuning
    pick_residual: Any = UNSET         # dict | None: the residual refitted after the picks' tuning (tuned_residual)
    regrets: Any = UNSET               # list[dict | None] per pick: true accuracy, regret, contenders
    regret_networks: Any = UNSET       # int: networks of the enumerated space

    # ---- the report
    report: Any = UNSET                # dict: the job's report

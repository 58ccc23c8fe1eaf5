"""The main job (``python -m chamtvm tune``) as a list of steps, ``TUNE_STEPS``; steps 13-14
(``BUDGET_STEPS``) and 16-20 (``PICK_STEPS``) are also the ``search`` command's
(``search_job.SEARCH_STEPS``). Each step reads and writes the ``state.JobState`` fields it
declares; a step disabled by the settings or by data (a field an earlier, skipped step did
not produce) is listed in the report's ``skipped_steps`` with why; timing, log lines and
progress bars are instruments around the steps (``instruments``). A step is added, moved
or dropped by editing the list.

The main job, in this order (the one numbering; ``[k/22]`` in the log):
   1. open            load the space, the target's table, network journal and schedules
   2. task            the accuracy task's trainer for the space, or why it cannot train it
   3. coverage        every fused kernel of the space (probe lowering, ``lower.coverage``)
   4. prepare         those kernels with the schedules of the target's database
   5. table           measure the kernels the table lacks (up to date: none lacking)
   6. calibration     measure a fixed sweep of operators outside the space (--no-calibration)
   7. tuning          MetaSchedule within --trials, costliest kernels first, then transfers
                      (--trials 0)
   8. prepare tuned   the kernels with the schedules after tuning (new keys ``ms-<hash>``)
   9. tuned table     measure the tuned kernels the table lacks (up to date: none lacking)
  10. faster schedules set aside each tuned or transferred schedule whose row is no faster
                      than the kernel's default row: the default ships (tuning skipped)
  11. models          fit and save the unseen-kernel model and the residual (training networks,
                      timed in one batch with the held-out networks; fitted on the training ones)
  12. heldout         held-out networks predicted, their end-to-end timings compared (--heldout 0)
  13. space latency   the space's latency predictors: the table with the saved models, batched
                      (main job: no trainer for the space)
  14. budgets         the given budgets, or quantiles of the space's predicted latencies
  15. accuracy        the budget-aware accuracy loop (``accuracy.pick_under_budgets``) on the
                      task: lookups spent on the budgets, the best observed network under each
                      (--task none, or a task that cannot train the space)
  16. search context  the GP fitted on the journal, beside the space's latency predictors
  17. search          per budget the loop's best observed network (pool = the whole space),
                      else the genetic search's pick; each pick lowered and priced
  18. tune picks      each pick's own kernels tuned within --pick-trials (transfer first, then
                      trials on its costliest kernels), re-priced, its budget re-checked
                      (--trials 0 or --pick-trials 0: skipped)
  19. export          each pick's artefacts (up to date: every ``export.json`` matches)
  20. measure picks   each pick measured end to end: predicted vs measured (a tuned pick also
                      as it was before tuning; after a tuning, the training networks and
                      neighbours of the picks timed beside them, end to end and call by call,
                      price the picks' kernels and refit the residual: ``tuned_residual``)
  21. regret          lookup tasks: each pick against the true best under its budget
  22. report          the report dict and the plot of the picks

The ``search`` command (``search_job``): ``search open`` (its space, journal, budget and
output folder), steps 13-14 and 16-19, ``search report`` (report.json, the Pareto plot).
"""

from __future__ import annotations

import time
from pathlib import Path

from ..measure.base import Runner
from ..targets.spec import TargetSpec
from . import adapt, latency
from .config import TuneConfig
from .instruments import ProgressBars, StepLog, StepTimer
from .report import step_report
from .state import JobState, SearchSettings
from .steps import Step, StepInstrument, run_steps

STORES = ("space", "space_ref", "table", "nets_table", "schedules")
SEARCH_INPUTS = ("space", "target", "table", "schedules", "search_settings")


def open_stores(s, space_ref: str, luts_dir, schedules_dir) -> None:
    """Write the space (``space_ref``: a bundled name or a JSON path), the target's kernel
    table and network journal (in ``luts_dir``, None: the working folder's) and its
    schedules (under ``schedules_dir``, None: the default) into the step's view ``s``."""
    from ..space.schema import SearchSpace
    from ..table.networks import network_table
    from ..table.store import LatencyTable
    from ..tuning.schedules import ScheduleSource

    s.space, s.space_ref = SearchSpace.load(space_ref), str(space_ref)
    s.table = LatencyTable.for_target(s.target.name, luts_dir)
    s.nets_table = network_table(s.target, s.table.path.parent)
    s.schedules = ScheduleSource.for_target(s.target, schedules_dir)


def step_open(s) -> None:
    """Load the space, the target's table, network journal and schedules; the search settings."""
    cfg, target = s.cfg, s.target
    open_stores(s, cfg.space, cfg.luts_dir, cfg.schedules_dir)
    s.space_ref = s.space.name  # the main job's exports name the space
    s.search_settings = SearchSettings(cfg.search_seed, cfg.population, cfg.generations, cfg.lcb_kappa)
    s.budgets_given = cfg.budgets_ms
    root, name = Path(cfg.runs_dir) / f"tune-{target.name}", s.space.name
    s.pick_dir = lambda budget: root / f"{name}-{budget:g}ms"
    s.log(f"target {target.name} ({s.runner.label}{', EMULATED timings' if s.runner.emulated else ''}); "
          f"space {s.space.name} ({s.space.size():.3g} architectures); table {s.table.path} ({len(s.table)} rows)")


OPEN = Step("open", step_open, reads=("cfg", "target", "runner", "log"),
            writes=(*STORES, "search_settings", "budgets_given", "pick_dir"))

BUDGET_STEPS: list[Step] = [  # steps 13-14: the main job's and the search command's
    Step("space latency", adapt.step_space_latency, reads=("space", "target", "table", "schedules"),
         optional_reads=("trainer_note",), writes=("space_latency",), enabled=adapt.budgets_enabled),
    Step("budgets", adapt.step_budgets, reads=("space_latency", "budgets_given"), writes=("budgets_ms",)),
]

PICK_STEPS: list[Step] = [  # steps 16-19: the main job's and the search command's
    Step("search context", adapt.step_search_context, reads=(*SEARCH_INPUTS, "journal_path", "space_latency"),
         optional_reads=("accuracy_protocol",), writes=("search_ctx",)),
    Step("search", adapt.step_search,
         reads=("space", "target", "schedules", "search_settings", "search_ctx", "budgets_ms"),
         optional_reads=("accuracy_build",), writes=("picks",)),
    Step("tune picks", adapt.step_tune_picks,
         reads=("cfg", "picks", "search_ctx", "target", "runner", "table", "schedules", "log"),
         writes=("pick_tunings",), enabled=adapt.tune_picks_enabled),
    Step("export", adapt.step_export, reads=("picks", "space", "space_ref", "target", "schedules", "pick_dir",
                                             "search_ctx", "log"),
         writes=("exports",), up_to_date=adapt.exports_up_to_date),  # re-prices a changed pick in place
    Step("measure picks", adapt.step_measure_picks,
         reads=("cfg", "picks", "space", "search_ctx", "search_settings", "target", "runner", "table", "schedules",
                "nets_table", "log"),
         optional_reads=("pick_tunings",), writes=("pick_prices", "pick_prices_before", "pick_residual"),
         enabled=adapt.measure_enabled),
]
SHARED_STEPS: list[Step] = [*BUDGET_STEPS, *PICK_STEPS]  # in the search command's order

MEASURE = ("target", "runner", "table", "cfg")

TUNE_STEPS: list[Step] = [
    OPEN,
    Step("task", adapt.step_task, reads=("cfg", "space", "log"), writes=("trainer", "trainer_note")),
    Step("coverage", latency.step_coverage, reads=("space", "target"), writes=("kernels",)),
    Step("prepare", latency.step_prepare, reads=("kernels", "target", "schedules"), writes=("prepared",),
         timer_name="table"),
    Step("table", latency.step_table, reads=(*MEASURE, "prepared", "kernels"), writes=("table_fill",),
         up_to_date=latency.table_up_to_date),
    Step("calibration", latency.step_calibration, reads=(*MEASURE, "schedules", "log"),
         writes=("calibration_measured", "adaptive_calibration"), enabled=latency.calibration_enabled),
    Step("tuning", latency.step_tuning, reads=(*MEASURE, "kernels", "schedules", "log"), writes=("tuned_now",),
         enabled=latency.tuning_enabled),
    Step("prepare tuned", latency.step_prepare_tuned, reads=("tuned_now", "kernels", "target", "schedules"),
         writes=("prepared_tuned",), timer_name="tuning"),
    Step("tuned table", latency.step_tuned_table, reads=(*MEASURE, "prepared_tuned"), writes=("tuned_fill",),
         up_to_date=latency.tuned_table_up_to_date, timer_name="tuning"),
    Step("faster schedules", latency.step_faster_schedules,
         reads=(*MEASURE, "kernels", "schedules", "prepared_tuned", "log"),
         writes=("set_aside_schedules", "prepared_deployed"), timer_name="tuning"),
    Step("models", latency.step_models, reads=(*MEASURE, "space", "schedules", "nets_table"),
         writes=("models", "heldout_lowered")),
    Step("heldout", latency.step_heldout, reads=(*MEASURE, "space", "schedules", "nets_table", "models"),
         optional_reads=("heldout_lowered",), writes=("heldout",), enabled=latency.heldout_enabled),
    *BUDGET_STEPS,
    Step("accuracy", adapt.step_accuracy, reads=("cfg", "space", "trainer", "trainer_note", "space_latency", "budgets_ms"),
         writes=("accuracy_build", "accuracy", "journal_path", "accuracy_protocol"), enabled=adapt.accuracy_enabled),
    *PICK_STEPS,
    Step("regret", adapt.step_regret,
         reads=("cfg", "trainer", "space", "search_ctx", "picks", "accuracy_build", "target", "runner", "schedules",
                "nets_table"),
         writes=("regrets", "regret_networks"), enabled=adapt.regret_enabled),
    Step("report", step_report,
         reads=("cfg", "target", "runner", "space", "table", "kernels", "prepared", "models", "skipped", "log", "nets_table"),
         optional_reads=("heldout", "prepared_tuned", "prepared_deployed", "set_aside_schedules", "table_fill",
                         "tuned_fill", "calibration_measured", "adaptive_calibration", "tuned_now", "trainer_note",
                         "accuracy", "search_ctx", "picks", "pick_tunings", "exports", "pick_prices",
                         "pick_prices_before", "pick_residual", "regrets", "regret_networks"),
         writes=("report",)),
]


def default_instruments(log, progress: bool) -> list[StepInstrument]:
    """A timer, a log line per step and progress bars (hidden when ``progress`` is False)."""
    return [StepTimer(), StepLog(log), ProgressBars(progress)]


def run_tune(target: TargetSpec, runner: Runner, cfg: TuneConfig, log=print, steps: list[Step] | None = None,
             instruments: list[StepInstrument] | None = None) -> dict:
    """Run the main job's ``steps`` (default ``TUNE_STEPS``, module docstring) with
    ``instruments`` (default ``default_instruments``); the report dict, with ``seconds``
    (per step, from the first ``StepTimer``, and the total)."""
    t_start = time.time()
    instruments = default_instruments(log, cfg.progress) if instruments is None else list(instruments)
    state = run_steps(list(steps or TUNE_STEPS), JobState(target, runner, cfg, log), instruments)
    report = state.report
    timer = next((i for i in instruments if isinstance(i, StepTimer)), None)
    report["seconds"] = {**(timer.seconds if timer else {}), "total": round(time.time() - t_start, 1)}
    return report

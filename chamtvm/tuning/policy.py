"""How many kernels get tuned, and how far: the tuning policy.

Many kernels are tuned together by MetaSchedule's task scheduler (``ms.tune_tasks``) with
**one shared cost model** (XGBoost on per-store features), saved in the target's schedules
folder and reloaded next time, so a later run starts warm on the table's own tuning records.
Tuning goes in rounds of ``round_trials`` trials per active kernel; a kernel whose best
time improved by less than ``min_gain`` over its last round has reached its point of
diminishing returns and leaves the active set. The gradient task scheduler spends each
round's trials where the weighted latency (time x calls) falls fastest.

Every finished kernel gets one line in the target's tuning log (``tuned_kernels.jsonl``,
the same log ``tune_kernel`` writes), with its trials, seconds and best time.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..targets.spec import TargetSpec
from .schedules import _quiet_ms_logs, evolutionary_strategy, local_runtime_threads, ms_builder_runner, schedules_dir, tuned_log, workload_module

COST_MODEL_FILE = "cost_model_xgb.tar"


@dataclass
class TuningTask:
    """A kernel to tune: its PrimFunc, structural hash, name and weight (calls x networks)."""

    func: object
    struct_hash: str
    name: str
    weight: float = 1.0


@dataclass
class TuningReport:
    """What a tuning run did: per kernel the best time (us) after each round, trials spent."""

    rounds: list[dict] = field(default_factory=list)
    best_us: dict[str, float | None] = field(default_factory=dict)
    trials: dict[str, int] = field(default_factory=dict)
    stopped: dict[str, str] = field(default_factory=dict)  # struct_hash -> why it left the active set
    kernel_s: dict[str, float] = field(default_factory=dict)  # struct_hash -> its share of the wall time
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"rounds": self.rounds, "best_us": self.best_us, "trials": self.trials,
                "stopped": self.stopped, "kernel_s": self.kernel_s, "seconds": round(self.seconds, 1)}


def best_record_us(db, func, target: TargetSpec) -> float | None:
    """Best measured mean time (us) of ``func`` in ``db``, None without a valid record."""
    rec = db.query_tuning_record(workload_module(func), target.tvm(), "main")
    if rec is None or not rec.run_secs:
        return None
    secs = [float(s) for s in rec.run_secs]
    return sum(secs) / len(secs) * 1e6


def _record_counts(db) -> int:
    return len(db.get_all_tuning_records())


def shared_cost_model(work_dir: Path, cores: int):
    """The target's XGBoost cost model, reloaded from ``work_dir`` when one was saved."""
    from tvm.s_tir import meta_schedule as ms

    model = ms.cost_model.XGBModel(num_tuning_cores=cores, verbose_eval=0)
    path = work_dir / COST_MODEL_FILE
    if path.exists():
        try:
            model.load(str(path))
        except Exception:  # a damaged or foreign file: start cold rather than fail the run
            model = ms.cost_model.XGBModel(num_tuning_cores=cores, verbose_eval=0)
    return model


def tune_tasks(tasks: Sequence[TuningTask], target: TargetSpec, trials: int,
               work_dir: str | Path | None = None, round_trials: int = 16, min_gain: float = 0.03,
               seed: int = 0, tracker: tuple[str, int, str] | None = None,
               log: Callable[[str], None] = lambda s: None, population: int | None = None) -> TuningReport:
    """Tune ``tasks`` jointly within ``trials`` MetaSchedule trials in all (see the module
    docstring); records go into the target's database, one line per kernel into the log.

    ``population``: the evolutionary search's population per task (MetaSchedule's default
    512 when None). Generating a round's candidates costs about a minute per task on a
    contended 2-core machine at 512; a smaller population makes small rounds cheaper."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.logging import get_loggers_from_work_dir

    from ..core.jsonl import append_lines

    work_dir = Path(work_dir or schedules_dir(target))
    work_dir.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    tvm_target = target.tvm()
    builder, runner = ms_builder_runner(target, tracker)
    model = shared_cost_model(work_dir, cores)
    report = TuningReport()
    active = list(tasks)
    t0 = time.time()
    left = int(trials)
    spent_s = {t.struct_hash: 0.0 for t in tasks}
    db = ms.database.JSONDatabase(work_dir=str(work_dir))
    best = {t.struct_hash: best_record_us(db, t.func, target) for t in tasks}
    rnd = 0
    while active and left > 0:
        per_task = max(1, min(round_trials, left // len(active)))
        if left < len(active):  # fewer trials than kernels: the heaviest ones first
            active = sorted(active, key=lambda t: -t.weight)[:left]
            per_task = 1
        names = [f"t{i}_{t.name}"[:60] for i, t in enumerate(active)]
        contexts = [
            ms.TuneContext(mod=workload_module(t.func), target=tvm_target, space_generator="post-order-apply",
                           search_strategy=evolutionary_strategy(population), task_name=n, rand_state=seed + 7919 * rnd + i,
                           num_threads=cores, logger=lg).clone()
            for i, (t, n, lg) in enumerate(zip(active, names, get_loggers_from_work_dir(str(work_dir), names)))
        ]
        before = _record_counts(db)
        r0 = time.time()
        with _quiet_ms_logs(), local_runtime_threads(target, tracker):
            db = ms.tune_tasks(tasks=contexts, task_weights=[float(t.weight) for t in active],
                               work_dir=str(work_dir), max_trials_global=per_task * len(active),
                               max_trials_per_task=per_task, num_trials_per_iter=min(16, per_task),
                               builder=builder, runner=runner, database="json", cost_model=model,
                               task_scheduler="gradient")
        used = max(_record_counts(db) - before, 0)
        left -= used if used else per_task * len(active)  # no record at all: count the attempt
        round_s = time.time() - r0
        still = []
        row = {"round": rnd, "active": len(active), "trials": used, "seconds": round(round_s, 1), "kernels": {}}
        for t in active:
            new = best_record_us(db, t.func, target)
            old = best[t.struct_hash]
            gain = (old - new) / old if (old and new) else (1.0 if new else 0.0)
            best[t.struct_hash] = new if new is not None else old
            report.trials[t.struct_hash] = report.trials.get(t.struct_hash, 0) + per_task
            spent_s[t.struct_hash] += round_s / len(active)
            row["kernels"][t.struct_hash] = {"best_us": best[t.struct_hash], "gain": gain}
            if new is None:
                report.stopped[t.struct_hash] = "no valid candidate"
            elif gain < min_gain and rnd > 0:
                report.stopped[t.struct_hash] = f"diminishing returns (gain {gain:.1%} < {min_gain:.0%})"
            else:
                still.append(t)
        report.rounds.append(row)
        log(f"tuning round {rnd}: {len(active)} kernels x {per_task} trials in {round_s:.0f} s, "
            f"{len(still)} still improving")
        active = still
        rnd += 1
    for t in active:
        report.stopped.setdefault(t.struct_hash, "budget spent")
    try:
        model.save(str(work_dir / COST_MODEL_FILE))
    except Exception:  # an untrained model (no valid candidate yet) has nothing to save
        pass
    measured_on = "local" if tracker is None else f"rpc {tracker[2]}@{tracker[0]}:{tracker[1]}"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    lines = [json.dumps({"struct_hash": t.struct_hash, "name": t.name, "trials": report.trials.get(t.struct_hash, 0),
                         "tuning_s": round(spent_s[t.struct_hash], 2), "best_us": best[t.struct_hash],
                         "measured_on": measured_on, "tuned_at": stamp, "policy": "joint",
                         "stopped": report.stopped.get(t.struct_hash)})
             for t in tasks if report.trials.get(t.struct_hash)]
    if lines:
        append_lines(tuned_log(target, work_dir), lines)
    report.best_us = best
    report.kernel_s = {h: round(v, 2) for h, v in spent_s.items()}
    report.seconds = time.time() - t0
    return report

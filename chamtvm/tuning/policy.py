"""The tuning policy: which kernels get tuned, in what order, how far, and what is deployed.

Within a budget of MetaSchedule trials (``tune_schedules``): the most expensive untuned
kernel of each *kind* first (``transfer.kernel_kind``), so every kind gets a trace to
transfer, then the next most expensive, about ``trials / trials_per_kernel`` kernels
(``choose_kernels``). They are tuned together by MetaSchedule's task scheduler
(``tune_tasks``) with **one shared cost model** (XGBoost on per-store features), saved in
the target's schedules folder and reloaded next time, so a later run starts warm on the
table's own tuning records. Tuning goes in rounds of ``round_trials`` trials per active
kernel; a kernel whose best time improved by less than ``min_gain`` over its last round has
reached its point of diminishing returns and leaves the active set. The gradient task
scheduler spends each round's trials where the weighted latency (time x calls) falls
fastest. A tuned record no faster than the kernel's default schedule is listed as
default-preferred (``provenance.prefer_default``): the default stays deployed. Then the
tuned traces are transferred to the untuned kernels of the same kind (``transfer``).

Every finished kernel gets one line in the target's tuning log (``tuned_kernels.jsonl``,
the same log the single-kernel ``tune_kernel`` writes), with its trials, seconds and best time.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..core.workdir import target_schedules_dir
from ..lower.kernels import Kernel
from ..targets.spec import TargetSpec
from .database import (append_progress, append_tuning_log, best_record_us, database_lock, read_progress, records_of,
                       tuned_hashes, tuned_records, workload_module)
from .cost_model import load_cost_model, new_cost_model, save_cost_model
from .metaschedule import evolutionary_strategy, local_runtime_threads, ms_builder_runner, quiet_ms_logs
from .provenance import prefer_default
from .schedules import DEFAULT_TAG, ScheduleSource
from .space import space_generator
from .transfer import kernel_kind, transfer_schedules


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


def _measured_on(tracker) -> str:
    """Where a tuning log line's candidates were timed."""
    return "local" if tracker is None else f"rpc {tracker[2]}@{tracker[0]}:{tracker[1]}"


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def tune_kernel(prim_func, struct_hash: str, name: str, target: TargetSpec, trials: int,
                work_dir: Path | None = None, seed: int = 0,
                tracker: tuple[str, int, str] | None = None, population: int | None = None) -> dict:
    """Tune one kernel with MetaSchedule, on the local machine or on the devices under
    ``tracker = (host, port, key)`` (candidates cross-compiled here, timed there); records
    go into the target's database and a line into the tuning log. Returns that line.
    ``population``: the evolutionary search's population (MetaSchedule's 512 when None)."""
    from tvm.s_tir import meta_schedule as ms

    work_dir = Path(work_dir or target_schedules_dir(target.name))
    work_dir.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    t0 = time.time()
    with ms_builder_runner(target, tracker) as (builder, runner), database_lock(work_dir), quiet_ms_logs(), \
            local_runtime_threads(target, tracker):
        db = ms.tir_integration.tune_tir(
            workload_module(prim_func), target.tvm(), work_dir=str(work_dir),
            max_trials_global=trials, num_trials_per_iter=min(16, trials), seed=seed,
            builder=builder, runner=runner, num_tuning_cores=cores, cost_model=new_cost_model(),
            strategy=evolutionary_strategy(population), space=space_generator(target),
        )
    line = {"struct_hash": struct_hash, "name": name, "trials": trials,
            "tuning_s": round(time.time() - t0, 2), "best_us": best_record_us(db, prim_func, target),
            "measured_on": _measured_on(tracker), "tuned_at": _utc_now()}
    append_tuning_log(target, work_dir, [line])
    return line


def _campaign_id(tasks: Sequence[TuningTask], trials: int, round_trials: int, min_gain: float, seed: int,
                 population: int | None, further: bool = False, campaign: str | None = None) -> str:
    """Identity of one joint tuning (its kernels, or the caller's ``campaign`` name, and its
    settings): a rerun of the same one resumes it."""
    what = campaign if campaign is not None else sorted(t.struct_hash for t in tasks)
    blob = json.dumps([what, trials, round_trials, min_gain, seed, population] + (["further"] if further else []))
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _ended(work_dir: Path, cid: str) -> dict | None:
    """The end event of campaign ``cid`` when its last run finished, else None."""
    end = None
    for ev in read_progress(work_dir):
        if ev.get("campaign") == cid:
            end = ev if ev.get("event") == "end" else None
    return end


def _unfinished(work_dir: Path, cid: str) -> tuple[dict | None, list[dict]]:
    """``(start event, round events)`` of the last run of campaign ``cid`` that did not end."""
    start, rounds = None, []
    for ev in read_progress(work_dir):
        if ev.get("campaign") != cid:
            continue
        if ev.get("event") == "start" and isinstance(ev.get("base"), dict):
            start, rounds = ev, []
        elif ev.get("event") == "round" and start is not None and isinstance(ev.get("kernels"), dict):
            rounds.append(ev)
        elif ev.get("event") == "end":
            start, rounds = None, []
    return start, rounds


def tune_tasks(tasks: Sequence[TuningTask], target: TargetSpec, trials: int,
               work_dir: str | Path | None = None, round_trials: int = 16, min_gain: float = 0.03,
               seed: int = 0, tracker: tuple[str, int, str] | None = None,
               log: Callable[[str], None] = lambda s: None, population: int | None = None,
               further: bool = False, campaign: str | None = None) -> TuningReport:
    """Tune ``tasks`` jointly within ``trials`` MetaSchedule trials in all (see the module
    docstring); records go into the target's database, one line per kernel into the log.

    One tuning per database at a time: this holds the database lock (waiting for another
    run), and a task another run finished meanwhile is not tuned again. ``further``: tasks
    whose tuning finished are tuned further (a network's own tuning, ``tune-model``: its
    costliest kernels are often the table's, tuned with a few trials); MetaSchedule's
    evolutionary search starts from their records in the database. The same further tuning
    (same kernels, or the same ``campaign`` name, budget and settings) asked again once it has
    finished does nothing: ``campaign`` names a tuning whose kernels are chosen from rows that
    the tuning itself changes (a network's: ``deploy.tune_network``), so a rerun is recognised
    even when it would choose other kernels. Each round is
    journaled (``tuning_progress.jsonl``) and the cost model saved after it, so a killed run
    rerun with the same tasks and settings resumes: it spends only the trials left (the
    trials spent are the database's records of these kernels since the run began).

    ``population``: the evolutionary search's population per task (MetaSchedule's default
    512 when None). Generating a round's candidates costs about a minute per task on a
    contended 2-core machine at 512; a smaller population makes small rounds cheaper."""
    work_dir = Path(work_dir or target_schedules_dir(target.name))
    work_dir.mkdir(parents=True, exist_ok=True)
    with database_lock(work_dir, log):
        todo = list(tasks)
        if not further:  # a further tuning takes finished kernels too: no need to read the log
            done = tuned_hashes(target, work_dir)
            if any(t.struct_hash in done for t in tasks):
                log(f"{sum(t.struct_hash in done for t in tasks)} of {len(tasks)} kernels are tuned already "
                    "(another run); not tuned again")
            todo = [t for t in tasks if t.struct_hash not in done]
        return _tune_locked(todo, target, trials, work_dir, round_trials, min_gain, seed, tracker, log, population,
                            further, campaign)


def _finished_report(db, tasks, target, end: dict) -> TuningReport:
    """The report of a further tuning that finished earlier (its journal's end event)."""
    report = TuningReport()
    report.trials = {h: int(n) for h, n in (end.get("trials") or {}).items()}
    report.best_us = {t.struct_hash: best_record_us(db, t.func, target) for t in tasks}
    report.stopped = {t.struct_hash: f"finished at {end.get('at')}" for t in tasks}
    return report


def _tune_locked(tasks, target, trials, work_dir, round_trials, min_gain, seed, tracker, log, population,
                 further=False, campaign=None) -> TuningReport:
    """:func:`tune_tasks` once the lock is held and finished tasks are left out (unless ``further``)."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.logging import get_loggers_from_work_dir

    report = TuningReport()
    t0 = time.time()
    if not tasks or trials <= 0:
        return report
    cid = _campaign_id(tasks, trials, round_trials, min_gain, seed, population, further, campaign)
    if further:
        end = _ended(work_dir, cid)
        if end is not None:
            log(f"this tuning of {len(tasks)} kernels within {trials} trials finished at {end.get('at')}; "
                "not tuned again")
            return _finished_report(ms.database.JSONDatabase(work_dir=str(work_dir)), tasks, target, end)
    with ms_builder_runner(target, tracker) as (builder, runner):
        cores = os.cpu_count() or 1
        tvm_target = target.tvm()
        model = load_cost_model(work_dir, log)
        db = ms.database.JSONDatabase(work_dir=str(work_dir))
        start, done_rounds = _unfinished(work_dir, cid)
        if start is None:
            start = {"event": "start", "campaign": cid, "budget": int(trials), "at": _utc_now(), "pid": os.getpid(),
                     "tasks": [t.struct_hash for t in tasks], "base": {t.struct_hash: records_of(db, t.func) for t in tasks}}
            append_progress(work_dir, start)
        base = start["base"]
        charged = sum(int(r.get("charged") or 0) for r in done_rounds)  # rounds that left no record at all

        def spent() -> dict[str, int]:
            return {t.struct_hash: max(records_of(db, t.func) - int(base.get(t.struct_hash, 0)), 0) for t in tasks}

        spent_s = {t.struct_hash: 0.0 for t in tasks}
        best = {t.struct_hash: best_record_us(db, t.func, target) for t in tasks}
        for r in done_rounds:  # what the killed run had found, and which kernels it had stopped
            report.rounds.append(r)
            for h, k in r["kernels"].items():
                if h in spent_s and isinstance(k, dict):
                    spent_s[h] += float(r.get("seconds", 0.0)) / max(len(r["kernels"]), 1)
                    if k.get("stopped"):
                        report.stopped[h] = k["stopped"]
        active = [t for t in tasks if t.struct_hash not in report.stopped]
        left = int(trials) - sum(spent().values()) - charged
        if done_rounds or left < trials:
            log(f"resuming an interrupted tuning run: {trials - left} of {trials} trials were spent, "
                f"{len(done_rounds)} round(s) journaled")
        rnd = len(done_rounds)
        while active and left > 0:
            per_task = max(1, min(round_trials, left // len(active)))
            if left < len(active):  # fewer trials than kernels: the heaviest ones first
                active = sorted(active, key=lambda t: -t.weight)[:left]
                per_task = 1
            names = [f"t{i}_{t.name}"[:60] for i, t in enumerate(active)]
            contexts = [
                ms.TuneContext(mod=workload_module(t.func), target=tvm_target, space_generator=space_generator(target),
                               search_strategy=evolutionary_strategy(population), task_name=n, rand_state=seed + 7919 * rnd + i,
                               num_threads=cores, logger=lg).clone()
                for i, (t, n, lg) in enumerate(zip(active, names, get_loggers_from_work_dir(str(work_dir), names)))
            ]
            before = sum(spent().values())
            r0 = time.time()
            with quiet_ms_logs(), local_runtime_threads(target, tracker):
                db = ms.tune_tasks(tasks=contexts, task_weights=[float(t.weight) for t in active],
                                   work_dir=str(work_dir), max_trials_global=per_task * len(active),
                                   max_trials_per_task=per_task, num_trials_per_iter=min(16, per_task),
                                   builder=builder, runner=runner, database="json", cost_model=model,
                                   task_scheduler="gradient")
            used = sum(spent().values()) - before
            charge = 0 if used > 0 else per_task * len(active)  # no record at all: count the attempt
            left = int(trials) - sum(spent().values()) - charged - charge
            charged += charge
            round_s = time.time() - r0
            still = []
            row = {"event": "round", "campaign": cid, "round": rnd, "active": len(active), "trials": used,
                   "charged": charge, "seconds": round(round_s, 1), "kernels": {}}
            for t in active:
                new = best_record_us(db, t.func, target)
                old = best[t.struct_hash]
                gain = (old - new) / old if (old and new) else (1.0 if new else 0.0)
                best[t.struct_hash] = new if new is not None else old
                spent_s[t.struct_hash] += round_s / len(active)
                if new is None:
                    report.stopped[t.struct_hash] = "no valid candidate"
                elif gain < min_gain and rnd > 0:
                    report.stopped[t.struct_hash] = f"diminishing returns (gain {gain:.1%} < {min_gain:.0%})"
                else:
                    still.append(t)
                row["kernels"][t.struct_hash] = {"best_us": best[t.struct_hash], "gain": gain,
                                                 "stopped": report.stopped.get(t.struct_hash)}
            save_cost_model(model, work_dir)  # warm for a resumed run too
            append_progress(work_dir, row)
            report.rounds.append(row)
            log(f"tuning round {rnd}: {len(active)} kernels x {per_task} trials in {round_s:.0f} s, "
                f"{len(still)} still improving")
            active = still
            rnd += 1
        for t in active:
            report.stopped.setdefault(t.struct_hash, "budget spent")
        report.trials = {h: n for h, n in spent().items() if n}
        measured_on, stamp = _measured_on(tracker), _utc_now()
        append_tuning_log(target, work_dir, [
            {"struct_hash": t.struct_hash, "name": t.name,
             "trials": report.trials.get(t.struct_hash, 0) + (int(base.get(t.struct_hash, 0)) if further else 0),
             "tuning_s": round(spent_s[t.struct_hash], 2), "best_us": best[t.struct_hash],
             "measured_on": measured_on, "tuned_at": stamp, "policy": "joint",
             "stopped": report.stopped.get(t.struct_hash),
             **({"further_trials": report.trials.get(t.struct_hash, 0)} if further else {})}
            for t in tasks if report.trials.get(t.struct_hash)])
        append_progress(work_dir, {"event": "end", "campaign": cid, "at": stamp, "trials": report.trials})
        report.best_us = best
        report.kernel_s = {h: round(v, 2) for h, v in spent_s.items()}
        report.seconds = time.time() - t0
        return report


def choose_kernels(kernels: Sequence[Kernel], default_us: dict[str, float], trials: int,
                   trials_per_kernel: int) -> list[tuple[float, Kernel]]:
    """``[(weighted cost in us, kernel)]`` the policy tunes within ``trials``, costliest
    first: ``trials // trials_per_kernel`` kernels (at least one when ``trials`` > 0), the
    costliest kernel of each kind before any second one of a kind. ``default_us``: struct
    hash -> the kernel's time (us per call) with its default schedule; a kernel without one
    is not tuned (nothing to rank or compare it by). The cost is that time x the kernel's
    calls per network. The choice does not depend on what is tuned already, so a rerun with
    the same budget chooses the same kernels (and finds them done)."""
    ranked = [(default_us[k.struct_hash] * k.count, k) for k in kernels if k.struct_hash in default_us]
    ranked.sort(key=lambda x: -x[0])
    n = min(len(ranked), max(trials // max(trials_per_kernel, 1), 1) if trials > 0 else 0)
    heads, seen = [], set()
    for cost, k in ranked:
        if kernel_kind(k) not in seen:
            seen.add(kernel_kind(k))
            heads.append((cost, k))
    order = heads + [x for x in ranked if x not in heads]
    return sorted(order[:n], key=lambda x: -x[0])


def tune_schedules(kernels: Sequence[Kernel], default_us: dict[str, float], target: TargetSpec,
                   schedules: ScheduleSource, trials: int, trials_per_kernel: int, population: int | None = None,
                   log: Callable[[str], None] = print, tracker: tuple[str, int, str] | None = None,
                   runner=None) -> list[dict]:
    """The whole policy (module docstring) on ``kernels`` into ``schedules.work_dir``:
    within ``trials`` MetaSchedule trials, tune the kernels :func:`choose_kernels` picks,
    jointly, each in rounds of half its share (``trials_per_kernel``) until its gain falls
    under 3 %; keep the default schedule where the tuned one is no faster than
    ``default_us`` (us per call, the table's default-schedule times); then transfer the
    tuned traces to the untuned kernels of the same kind, measured by ``runner`` (made for
    the target when None) as candidates against their default schedule. Timed on the
    devices under ``tracker = (host, port, key)`` for a remote target (nothing is tuned for
    a remote target without one). Returns one dict per kernel tuned now (``policy: joint``)
    and per transfer (``policy: transfer``).

    A rerun does only what is left: chosen kernels already tuned are not tuned again, the
    others get ``trials`` minus the trials the tuned ones took, an interrupted joint tuning
    resumes (:func:`tune_tasks`) and kernels already transferred are not transferred again;
    so a finished run rerun with the same budget tunes nothing. The whole step holds the
    database lock: a second run on the same database waits, then finds that work done."""
    if trials <= 0 or (not target.local and tracker is None):
        return []
    schedules.work_dir.mkdir(parents=True, exist_ok=True)
    with database_lock(schedules.work_dir, log):
        return _tune_schedules_locked(kernels, default_us, target, schedules, trials, trials_per_kernel,
                                      population, log, tracker, runner)


def _tune_schedules_locked(kernels, default_us, target, schedules, trials, trials_per_kernel, population, log,
                           tracker, runner) -> list[dict]:
    chosen = choose_kernels(kernels, default_us, trials, trials_per_kernel)
    done = tuned_records(target, schedules.work_dir)
    order = [(cost, k) for cost, k in chosen if k.struct_hash not in done]
    left = trials - sum(int(done[k.struct_hash].get("trials") or 0) for _, k in chosen if k.struct_hash in done)
    if chosen and trials < trials_per_kernel:
        log(f"tuning: {trials} trials are less than one kernel's share (--trials-per-kernel {trials_per_kernel}); "
            f"the costliest kernel gets them all")
    if chosen and not order:
        log(f"tuning up to date: the {len(chosen)} kernel(s) chosen within {trials} trials are tuned already")
    lines = []
    if order and left > 0:
        log(f"tuning {len(order)} kernels jointly within {left} trials")
        rep = tune_tasks([TuningTask(k.func, k.struct_hash, k.name, cost) for cost, k in order], target, left,
                         schedules.work_dir, round_trials=max(trials_per_kernel // 2, 2), tracker=tracker, log=log,
                         population=population)
        for cost, k in order:
            h = k.struct_hash
            if rep.trials.get(h):
                best = rep.best_us.get(h)
                lines.append({"struct_hash": h, "name": k.name, "policy": "joint", "trials": rep.trials[h],
                              "tuning_s": rep.kernel_s.get(h, 0.0), "best_us": best, "default_us": default_us[h],
                              "stopped": rep.stopped.get(h), "kept": best is None or best < default_us[h]})
        done = tuned_records(target, schedules.work_dir)
    _prefer_defaults([k for _, k in chosen if k.struct_hash in done], done, default_us, target, schedules, log)
    schedules.reload()
    if runner is None:
        from ..measure.runners import make_runner

        runner = make_runner(target, tracker[:2] if tracker else None, tracker[2] if tracker else None)
    for t in transfer_schedules(kernels, target, runner, schedules.work_dir, log=log):
        d = t.to_dict()
        # the report's fields: a transfer costs no trials; its times are measured candidates
        lines.append({**d, "policy": "transfer", "trials": 0, "tuning_s": 0.0,
                      "default_us": d["default_us"] if d["default_us"] is not None else float("nan"),
                      "best_us": d["best_us"] if d["committed"] else None})
    schedules.reload()
    return lines


def _prefer_defaults(tuned: Sequence[Kernel], records: dict[str, dict], default_us: dict[str, float],
                     target: TargetSpec, schedules: ScheduleSource, log) -> None:
    """List as default-preferred every tuned kernel whose best record (tuning log) is no
    faster than its default schedule and is not listed yet (also after a kill before it was)."""
    fresh = ScheduleSource(target, schedules.work_dir)
    for k in tuned:
        best, default = records[k.struct_hash].get("best_us"), default_us[k.struct_hash]
        if best is None or best < default:
            continue
        tag = fresh.apply(k.func)[1]
        if tag == DEFAULT_TAG:  # listed already (or no record to deploy)
            continue
        prefer_default(schedules.work_dir, tag, k.struct_hash, k.name, best, default)
        log(f"tuned {k.name}: {best:.1f} us is no faster than its default {default:.1f} us; "
            "the default schedule stays deployed")

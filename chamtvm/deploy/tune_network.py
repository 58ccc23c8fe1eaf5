"""Tune one network's own kernels, the ones its library ships, and price it before and after.

A TVM user tunes a model before deploying it, so a latency that matters is the tuned one.
``tune_network`` gives it for any lowered network (a search pick, an ONNX model) within a
stated budget of MetaSchedule trials:

1. **rows**: every kernel's default-schedule row and its deployed-schedule row (the
   target's database: tuned and transferred records) are measured where the table lacks
   them; the table sum is the latency *before*;
2. **transfer first**: the best traces of tuned kernels of the same kind (``tuning.transfer``)
   are replayed on the network's kernels that have no record, measured against their
   default schedule, and kept where faster; this costs no trials;
3. **trials on the costliest**: the kernels costing most as deployed now (row x calls, about
   ``trials / trials_per_kernel`` of them, or, where the budget gives each one round, all the
   costliest that make up 90 % of the deployed time: ``costliest``) are tuned jointly
   (``tuning.policy.tune_tasks``).
   MetaSchedule's evolutionary search starts from the records the database already holds
   for a kernel (tuned or transferred), so a kernel tuned before is tuned further. A record
   no faster than the kernel's default row is set aside (the default stays deployed);
4. **transfer again** from the kernels just tuned, then the new schedules' rows are
   measured; a schedule whose row (timed in the network) is no faster than the kernel's
   default row is set aside (``table.faster_schedule``), and the table sum is the latency
   *after*, never above the sum with default schedules kernel by kernel.

``tune_networks`` does the same for several networks as one campaign over their distinct
kernels (the main job's picks: a kernel they share is tuned once, for all of them).

Everything lands where ``predict``, ``search``, the TVM hook and ``export`` look: rows in the
target's table, records in its MetaSchedule database.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..lower.kernels import Kernel
from ..lower.network import LoweredNetwork
from ..latency.table_sum import Prediction, table_sum
from ..table.faster_schedule import default_rows_us, set_aside_slower_schedules
from ..table.fill import fill_table, prepare
from ..table.store import LatencyTable
from ..targets.spec import TargetSpec
from ..tuning.schedules import ScheduleSource


@dataclass
class NetworkTuning:
    """What ``tune_network`` did: the network's table sums (ms) with default schedules,
    as deployed before and after, trials spent, and one line per tuned or transferred kernel
    of the network. Tuned with others (``tune_networks``): budget, trials spent and seconds
    are the whole campaign's, ``shared_by`` networks."""

    network: str
    trials_budget: int
    trials_spent: int
    default_ms: float
    before_ms: float
    after_ms: float
    seconds: float
    provenance_before: dict[str, int] = field(default_factory=dict)
    provenance_after: dict[str, int] = field(default_factory=dict)
    kernels: list[dict] = field(default_factory=list)
    missing: int = 0
    shared_by: int = 1  # networks tuned in the same campaign (``tune_networks``): trials and seconds are its


    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _provenance(prepared) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in prepared:
        out[p.provenance] = out.get(p.provenance, 0) + 1
    return out


def _priced(kernels: Sequence[Kernel], target: TargetSpec, schedules: ScheduleSource, table: LatencyTable,
            runner, statistic: str) -> tuple[list, Prediction]:
    """Prepared kernels under ``schedules`` with the rows the table lacks measured, and their sum."""
    prepared = prepare(kernels, target, schedules)
    fill_table(prepared, table, runner, target)
    return prepared, table_sum(prepared, table, statistic)


COVER_SHARE = 0.9  # the costliest kernels that together take this share of the deployed time all get trials


def costliest(prepared, table: LatencyTable, trials: int, trials_per_kernel: int,
              statistic: str = "runtime_us_p50", calls: dict[str, int] | None = None) -> list[tuple[float, object]]:
    """``[(cost us, prepared kernel)]``, costliest first, by deployed time x calls, of the
    kernels with a row: ``trials // trials_per_kernel`` of them (at least one when ``trials``
    > 0), or more where the budget allows: the costliest kernels that make up
    ``COVER_SHARE`` of the deployed time, as many as get one round of ``trials_per_kernel //
    2`` trials each. ``calls``: struct hash -> calls per run (default the kernel's own count;
    several networks tuned together: their calls summed, ``tune_networks``). Why: a kernel's
    first round takes it from its default schedule most of the way (ResNet-18's 3x3
    convolutions ran 18-54x faster after 32 trials), and a costly kernel left at its default
    then dominates the network (ResNet-18 tuned on its 8 costliest kernels only: 92 of 112 ms
    in the 11 it left at default, benchmarks/results/deployed_models_x86.json)."""
    ranked = []
    for p in prepared:
        row = table.get(p.key)
        if row is not None:
            n_calls = calls.get(p.kernel.struct_hash, p.kernel.count) if calls else p.kernel.count
            ranked.append((float(row[statistic]) * n_calls, p))
    ranked.sort(key=lambda x: -x[0])
    if trials <= 0:
        return []
    n = max(1, trials // max(trials_per_kernel, 1))
    total, covered, cover = sum(c for c, _ in ranked), 0.0, 0
    for c, _ in ranked:
        if covered >= COVER_SHARE * total:
            break
        covered += c
        cover += 1
    return ranked[:max(n, min(cover, trials // max(trials_per_kernel // 2, 1)))]


def union_kernels(nets: Sequence[LoweredNetwork]) -> tuple[list[Kernel], dict[str, int]]:
    """The distinct kernels of ``nets`` (first occurrence of each struct hash, in order) and
    struct hash -> calls per run of all of them together (a kernel two networks share counts
    for both)."""
    kernels: dict[str, Kernel] = {}
    calls: dict[str, int] = {}
    for net in nets:
        for k in net.kernels:
            kernels.setdefault(k.struct_hash, k)
            calls[k.struct_hash] = calls.get(k.struct_hash, 0) + int(k.count)
    return list(kernels.values()), calls


def tune_network(net: LoweredNetwork, target: TargetSpec, trials: int, table: LatencyTable,
                 schedules: ScheduleSource, runner, trials_per_kernel: int = 16, population: int | None = 128,
                 tracker: tuple[str, int, str] | None = None, statistic: str = "runtime_us_p50",
                 log: Callable[[str], None] = print) -> NetworkTuning:
    """Tune ``net``'s kernels within ``trials`` MetaSchedule trials (module docstring) into
    ``schedules.work_dir``, rows into ``table``, measured by ``runner`` (candidates through
    ``tracker = (host, port, key)`` for a remote target). ``trials`` 0 transfers only."""
    return tune_networks([net], target, trials, table, schedules, runner, trials_per_kernel, population, tracker,
                         statistic, log)[0]


def tune_networks(nets: Sequence[LoweredNetwork], target: TargetSpec, trials: int, table: LatencyTable,
                  schedules: ScheduleSource, runner, trials_per_kernel: int = 16, population: int | None = 128,
                  tracker: tuple[str, int, str] | None = None, statistic: str = "runtime_us_p50",
                  log: Callable[[str], None] = print) -> list[NetworkTuning]:
    """Tune the kernels of several networks as **one campaign** within ``trials`` MetaSchedule
    trials in all: the steps of the module docstring on the union of their distinct kernels,
    each kernel ranked by its deployed time x its calls in all the networks together
    (``union_kernels``), so a kernel the networks share is tuned once, for all of them (the
    main job's picks share about half their kernels). One ``NetworkTuning`` per network, in
    order: its own table sums before and after and the lines of its own kernels; trials,
    budget and seconds are the campaign's (``shared_by`` networks)."""
    from ..tuning.policy import TuningTask, tune_tasks
    from ..tuning.provenance import prefer_default
    from ..tuning.transfer import transfer_schedules

    t0 = time.time()
    kernels, calls = union_kernels(nets)
    default_src = ScheduleSource(target, use_database=False)
    default_prep, _ = _priced(kernels, target, default_src, table, runner, statistic)  # the union's default rows
    default_us = default_rows_us(default_prep, table, target, statistic)
    # each network's kernels under the schedules it has now (their rows measured): the sum before
    # is read from them at the end, below
    before = [_priced(net.kernels, target, schedules, table, runner, statistic)[0] for net in nets]
    lines: list[dict] = []

    def transfer(stage: str) -> None:
        if not schedules.has_database:
            return
        for t in transfer_schedules(kernels, target, runner, schedules.work_dir, log=log):
            lines.append({**t.to_dict(), "policy": "transfer", "stage": stage})
        schedules.reload()

    transfer("before trials")
    spent = 0
    if trials > 0 and (target.local or tracker is not None):
        prep, _ = _priced(kernels, target, schedules, table, runner, statistic)
        chosen = [(c, p) for c, p in costliest(prep, table, trials, trials_per_kernel, statistic, calls)
                  if p.kernel.struct_hash in default_us]
        if chosen:
            what = nets[0].name if len(nets) == 1 else f"{len(nets)} networks ({len(kernels)} distinct kernels)"
            log(f"tuning {len(chosen)} kernels of {what} jointly within {trials} trials")
            hashes = ",".join(sorted(k.struct_hash for k in kernels))
            rep = tune_tasks([TuningTask(p.kernel.func, p.kernel.struct_hash, p.kernel.name, c) for c, p in chosen],
                             target, trials, schedules.work_dir, round_trials=max(trials_per_kernel // 2, 2),
                             tracker=tracker, log=log, population=population, further=True,
                             campaign=("network " if len(nets) == 1 else "networks ") + hashes)
            spent = sum(rep.trials.values())
            schedules.reload()
            for _, p in chosen:
                h = p.kernel.struct_hash
                best, default = rep.best_us.get(h), default_us[h]
                kept = best is not None and best < default
                tag = schedules.apply(p.kernel.func)[1]
                if best is not None and not kept and tag != "default":
                    prefer_default(schedules.work_dir, tag, h, p.kernel.name, best, default)
                    log(f"tuned {p.kernel.name}: {best:.1f} us is no faster than its default {default:.1f} us; "
                        "the default schedule stays deployed")
                lines.append({"struct_hash": h, "name": p.kernel.name, "policy": "joint",
                              "trials": rep.trials.get(h, 0), "best_us": best, "default_us": default,
                              "stopped": rep.stopped.get(h), "kept": kept})
            schedules.reload()
            transfer("after trials")
    after_prep, _ = _priced(kernels, target, schedules, table, runner, statistic)
    # a row timed while the device ran slow is timed again by each fill (``table.fill``), so the
    # default rows read at the start may have changed since: compare with the table as it is now
    default_prep, _ = _priced(kernels, target, default_src, table, runner, statistic)
    default_us = default_rows_us(default_prep, table, target, statistic)
    set_aside = set_aside_slower_schedules(after_prep, default_us, table, schedules, statistic, log)
    if set_aside:
        for line in lines:
            if line.get("struct_hash") in set_aside:
                line.update(kept=False, committed=False, set_aside="no faster than the default row in the network")
        schedules.reload()
    seconds = round(time.time() - t0, 1)
    out = []
    for net, prep_before in zip(nets, before):
        # every row is in the table (the union was filled under both schedules above): the three
        # sums read it as it stands, with no row timed again between the set-aside and them, so
        # ``predict`` prices the network as reported here, after <= default kernel by kernel, and
        # a network nothing was tuned for reports before == after (the before rows are its kernels
        # under the schedules it had at the start; a row timed again since is read as it is now)
        sum_before = table_sum(prep_before, table, statistic)
        prep_after = prepare(net.kernels, target, schedules)
        sum_after = table_sum(prep_after, table, statistic)
        sum_default = table_sum(prepare(net.kernels, target, default_src), table, statistic)
        own = {k.struct_hash for k in net.kernels}
        out.append(NetworkTuning(net.name, int(trials), spent, sum_default.latency_ms, sum_before.latency_ms,
                                 sum_after.latency_ms, seconds, _provenance(prep_before), _provenance(prep_after),
                                 [line for line in lines if line.get("struct_hash") in own], len(sum_after.missing),
                                 len(nets)))
    return out

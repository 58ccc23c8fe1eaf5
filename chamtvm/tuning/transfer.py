"""Transfer a tuned kernel's schedule to similar kernels, measured as candidates.

Kernels of one *kind* (same fused operators, argument ranks and convolution window, e.g.
every 1x1 convolution + bias + clip, every 3x3 depthwise one) differ only in extents. The
best MetaSchedule trace of a tuned kernel of that kind is replayed on the new kernel with
its tile decisions **re-fitted to the new extents** (each ``SamplePerfectTile`` keeps the
old inner factors as far as they divide the new loop, the outer factor takes the rest);
a few re-sampled variants of the same trace join as candidates. All candidates of all
kernels and their default schedules are built into a few libraries and timed in one
stream of batches (one measuring worker, not one per kernel). As soon as a kernel's
candidates are timed, one line goes into ``transferred_kernels.jsonl`` (the provenance:
which kernel it came from, candidates, times) and the fastest candidate, when it beats the
default, is committed to the target's database as the kernel's record, so table rows,
network builds and exported libraries all use it. A killed transfer loses only the kernels
being timed; a rerun does the rest.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from ..core.workdir import target_schedules_dir
from ..lower.kernels import Kernel
from ..targets.spec import TargetSpec
from .database import database_lock, tuned_hashes, workload_module
from .provenance import TRANSFER_LOG, transfer_attempts
from .schedules import DEFAULT_TAG, ScheduleSource, trace_tag


def kernel_kind(k: Kernel) -> tuple:
    """What must agree for a schedule to transfer: operator names (digits dropped),
    argument ranks and, for convolutions, the window, whether it is depthwise, and the
    stride (input over output height)."""
    ops = re.sub(r"\d+", "", k.name)
    ranks = tuple(len(a.shape) for a in k.args)
    window = ()
    if "conv2d" in k.name and len(k.args) >= 2 and len(k.args[1].shape) == 4:
        w, x, y = k.args[1].shape, k.args[0].shape, k.args[-1].shape
        stride = max(1, round(x[2] / y[2])) if len(x) == 4 and len(y) == 4 and y[2] else 1
        # stride changes the loop nest (a stride-2 trace does not replay on stride 1:
        # "old_outputs.size() == new_outputs.size()" in bench_deployed's ResNet-18 transfers)
        window = (w[2], w[3], "depthwise" if w[1] == 1 and x[1] != 1 else "dense", stride)
    return ops, ranks, window


def refit_tile(old: Sequence[int], extent: int, max_innermost: int = 0) -> list[int]:
    """Tile factors for ``extent`` shaped like ``old`` (outer to inner): each inner factor
    is the largest divisor of what is left that does not exceed the old factor."""
    left, inner = int(extent), []
    for i, f in enumerate(reversed([int(x) for x in old[1:]])):
        cap = max(1, f)
        if i == 0 and max_innermost > 0:
            cap = min(cap, max_innermost)
        d = max(x for x in range(1, min(cap, left) + 1) if left % x == 0)
        inner.append(d)
        left //= d
    return [left] + list(reversed(inner))


def replay(trace, func, refit: bool = True, seed: int = 1):
    """``s_tir.Schedule`` of ``func`` with ``trace`` replayed: tile decisions re-fitted
    (``refit``) or re-sampled (seeded, >= 1), other decisions kept. Raises when it does not apply."""
    from tvm import s_tir

    sch = s_tir.Schedule(workload_module(func), seed=seed)

    def provider(inst, inputs, attrs, decision):
        if inst.kind.name == "SamplePerfectTile":
            if not refit:
                return None
            extent = int(sch.get(inputs[0]).extent)
            return refit_tile([int(x) for x in decision], extent, int(attrs[1]))
        return decision

    trace.apply_to_schedule(sch, remove_postproc=False, decision_provider=provider)
    return sch


@dataclass
class Transfer:
    """One transfer: target kernel, source kernel, candidate count and times (us)."""

    struct_hash: str
    name: str
    source_hash: str
    candidates: int
    valid: int
    best_us: float | None
    default_us: float | None
    committed: bool
    tag: str
    error: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _build(named: list[tuple[str, object]], target: TargetSpec, path: Path):
    """Build ``named`` into one library; a failing build is split to drop only the culprits.
    Returns ``(library or None, names built, {name: error})``."""
    from ..measure.compile import build_kernel_library

    try:
        return build_kernel_library(named, target, path), [n for n, _ in named], {}
    except Exception as e:
        if len(named) == 1:
            return None, [], {named[0][0]: f"build failed: {type(e).__name__}"}
    ok, errors = [], {}
    for k, (name, f) in enumerate(named):
        lib, built, err = _build([(name, f)], target, path.with_name(f"{path.stem}_{k}.so"))
        ok += [(name, f)] if built else []
        errors.update(err)
    if not ok:
        return None, [], errors
    return build_kernel_library(ok, target, path), [n for n, _ in ok], errors


def _timings(cands: dict[str, tuple[object, Kernel]], target: TargetSpec, runner, tmp: Path,
             batch_size: int = 48) -> Iterator[tuple[str, float | str]]:
    """``(name, median time in us or the error)`` of every ``name -> (PrimFunc, kernel)``
    as it comes (timed to rank candidates: ``Evaluator.for_ranking``, no wait for nominal
    speed): libraries of ``batch_size`` candidates, all timed through one stream of batches
    (one worker); a candidate that does not build is reported with the next result."""
    import numpy as np

    from ..measure.base import KernelBatch, KernelItem

    names = list(cands)
    failed: dict[str, str] = {}

    def batches():
        for b in range(0, len(names), batch_size):
            chunk = names[b: b + batch_size]
            lib, built, errors = _build([(n, cands[n][0]) for n in chunk], target, tmp / f"transfer{b}.so")
            failed.update(errors)
            if lib is not None:
                yield KernelBatch(lib, tuple(KernelItem(n, n, cands[n][1].args) for n in built))

    for res in runner.measure_batches(batches(), target.evaluator.for_ranking()):
        while failed:
            yield failed.popitem()
        yield res.key, float(np.median(res.samples_us)) if res.ok else (res.error or "failed")
    while failed:
        yield failed.popitem()


@dataclass
class _Plan:
    """A kernel to transfer to: its source kernel and record, candidate schedules, replay errors."""

    kernel: Kernel
    source: Kernel
    scheds: dict[str, object]
    errors: list[str]
    default: str  # the candidate name of its default schedule


def transfer_schedules(kernels: Sequence[Kernel], target: TargetSpec, runner, work_dir: str | Path | None = None,
                       resamples: int = 2, seed: int = 0, log=lambda s: None) -> list[Transfer]:
    """For each kernel without a record, replay the best trace of a tuned kernel of the
    same kind (see the module docstring); returns one ``Transfer`` per attempted kernel.

    Sources are kernels the tuning log lists as tuned, never transferred ones. Each kernel's
    transfer is journaled (``transferred_kernels.jsonl``, then its record committed) as soon
    as its candidates are timed, so a killed run loses at most the kernels being timed. A
    kernel already attempted from the same source (logged, kept or not) is not attempted
    again, unless its line says a record was kept that the database lacks (a kill between
    the two writes): a rerun, also one after a kill, does only what is left. It holds the
    database lock (``database.database_lock``: one writer per database); a killed run's
    scratch folder is removed by the next one (``core.scratch``)."""
    work_dir = Path(work_dir or target_schedules_dir(target.name))
    if not ScheduleSource(target, work_dir).has_database:
        return []
    with database_lock(work_dir, log):
        return _transfer_locked(kernels, target, runner, work_dir, resamples, seed, log)


def _transfer_locked(kernels, target, runner, work_dir: Path, resamples, seed, log) -> list[Transfer]:
    """:func:`transfer_schedules` once the database lock is held."""
    from ..core.scratch import scratch_dir

    db = ScheduleSource(target, work_dir).database()
    tvm_target = target.tvm()
    tuned = tuned_hashes(target, work_dir)
    attempted = transfer_attempts(work_dir)
    sources: dict[tuple, tuple[Kernel, object]] = {}
    todo, seen = [], set()
    for k in kernels:
        if k.struct_hash in seen:
            continue
        seen.add(k.struct_hash)
        rec = db.query_tuning_record(workload_module(k.func), tvm_target, "main")
        if rec is None:
            todo.append(k)
        elif k.struct_hash in tuned:
            sources.setdefault(kernel_kind(k), (k, rec))
    plans: dict[str, _Plan] = {}  # candidate name -> the plan it belongs to
    cands = {}
    for n, k in enumerate(todo):  # replay first (cheap), then build and time everything in one stream
        src = sources.get(kernel_kind(k))
        last = attempted.get(k.struct_hash, {})
        if src is None or (last.get("source_hash") == src[0].struct_hash and not last.get("committed")):
            continue  # no source, or attempted from it already (a kept one would have its record)
        plan = _Plan(k, src[0], {}, [], f"t{n}_default")
        for i in range(1 + resamples):
            try:
                plan.scheds[f"t{n}_c{i}"] = replay(src[1].trace, k.func, refit=(i == 0), seed=seed + i + 1)
            except Exception as e:  # the trace does not fit this kernel: data, not a crash
                plan.errors.append(f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
        for name, sch in plan.scheds.items():
            cands[name] = (sch.mod["main"].with_attr("tirx.is_scheduled", True), k)
            plans[name] = plan
        cands[plan.default] = (k.func, k)
        plans[plan.default] = plan
    out: list[Transfer] = []
    if not plans:
        return out
    times: dict[str, float | str] = {}
    waiting: dict[str, set[str]] = {}  # a plan (by its default's name) -> its candidates not timed yet
    for name, plan in plans.items():
        waiting.setdefault(plan.default, set()).add(name)
    with scratch_dir("chamtvm-transfer-") as tmp:
        for name, value in _timings(cands, target, runner, Path(tmp)):
            times[name] = value
            plan = plans[name]
            waiting[plan.default].discard(name)
            if not waiting[plan.default]:  # all its candidates timed: journal it now
                del waiting[plan.default]
                out.append(_finish(plan, times, resamples, db, target, work_dir, log))
    for default in waiting:  # candidates the runner never answered for
        out.append(_finish(plans[default], times, resamples, db, target, work_dir, log))
    return out


def _finish(plan: _Plan, times: dict, resamples: int, db, target: TargetSpec, work_dir: Path, log) -> Transfer:
    """Pick ``plan``'s fastest candidate; when it beats the default schedule, keep it. The
    transfer log's line is written first, then the record: a kill in between leaves a line
    whose record is missing, which a rerun redoes (never a record without its provenance)."""
    from tvm.s_tir import meta_schedule as ms

    from ..core.jsonl import append_lines

    k = plan.kernel
    d = times.get(plan.default)
    default_us = d if isinstance(d, float) else None
    valid = {c: times[c] for c in plan.scheds if isinstance(times.get(c), float)}
    best = min(valid, key=valid.get) if valid else None
    committed = best is not None and (default_us is None or valid[best] < default_us)
    errors = plan.errors + [f"{c}: {times[c]}" for c in plan.scheds if isinstance(times.get(c), str)]
    t = Transfer(k.struct_hash, k.name, plan.source.struct_hash, 1 + resamples, len(valid),
                 valid.get(best) if best else None, default_us, committed,
                 trace_tag(plan.scheds[best].trace) if committed else DEFAULT_TAG, "; ".join(errors) or None)
    log(f"transfer {plan.source.name} -> {k.name}: {len(valid)}/{1 + resamples} candidates, "
        f"best {t.best_us} us vs default {default_us} us{' (kept)' if committed else ''}")
    append_lines(work_dir / TRANSFER_LOG, [json.dumps({**t.to_dict(),
                 "transferred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})])
    if committed:
        mod = workload_module(k.func)
        db.commit_tuning_record(ms.database.TuningRecord(
            trace=plan.scheds[best].trace, workload=db.commit_workload(mod), run_secs=[valid[best] * 1e-6],
            target=target.tvm(), args_info=ms.arg_info.ArgInfo.from_prim_func(mod["main"])))
    return t

"""Schedules a kernel is deployed with: the target's default pipeline, or a MetaSchedule
database in ``<workdir>/schedules/<target>/`` when one holds a record for the kernel.

The schedule *tag* enters latency-table keys: ``default`` for the target's default
schedules (plain loop nests on CPU, dlight rules on GPU), ``ms-<hash of the best trace>``
for a tuned kernel, so a better record later gives a new key and old rows stay valid.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..targets.spec import TargetSpec

DEFAULT_TAG = "default"


def schedules_dir(target: TargetSpec, root: str | Path | None = None) -> Path:
    """Folder of the target's MetaSchedule database under ``root`` (default: the working
    folder's ``schedules/``; ``CHAMTVM_SCHEDULES_DIR`` overrides it)."""
    from ..core.workdir import schedules_root

    root = root or schedules_root()
    return Path(root) / target.name


def workload_module(prim_func):
    """The IRModule MetaSchedule keys a kernel's workload by."""
    import tvm

    return tvm.IRModule({"main": prim_func.with_attr("global_symbol", "main").with_attr("tirx.noalias", True)})


class ScheduleSource:
    """Looks kernels up in a target's MetaSchedule database (if any) and applies them."""

    def __init__(self, target: TargetSpec, work_dir: str | Path | None = None, use_database: bool = True):
        self.target = target
        self.work_dir = Path(work_dir) if work_dir else schedules_dir(target)
        self.use_database = use_database
        self._db = None

    @property
    def has_database(self) -> bool:
        return self.use_database and (self.work_dir / "database_tuning_record.json").exists()

    def database(self):
        if self._db is None and self.has_database:
            from tvm.s_tir import meta_schedule as ms

            self._db = ms.database.JSONDatabase(work_dir=str(self.work_dir), allow_missing=False)
        return self._db

    def reload(self) -> None:
        self._db = None

    def apply(self, prim_func):
        """``(prim_func to build, tag)``: the tuned schedule when the database has one."""
        db = self.database()
        if db is None:
            return prim_func, DEFAULT_TAG
        mod = workload_module(prim_func)
        record = db.query_tuning_record(mod, self.target.tvm(), "main")
        if record is None:
            return prim_func, DEFAULT_TAG
        sch = db.query_schedule(mod, self.target.tvm(), "main")
        trace_json = str(record.trace.as_json(remove_postproc=False))
        tag = "ms-" + hashlib.sha1(trace_json.encode()).hexdigest()[:10]
        return sch.mod["main"].with_attr("tirx.is_scheduled", True), tag

    def provenance(self, tag: str) -> str:
        """Where the schedule of ``tag`` came from: ``default``, ``tuned`` (MetaSchedule on
        this kernel) or ``transferred`` (a tuned kernel's trace re-fitted, ``tuning.transfer``)."""
        from .provenance import provenance, transferred_tags

        return provenance(tag, transferred_tags(self.work_dir))

    def apply_to_module(self, fused_mod):
        """Replace every kernel of a fused Relax module that the database holds by its tuned
        schedule (the same lookup as :meth:`apply`, so kernels and networks agree)."""
        if not self.has_database:
            return fused_mod
        from tvm import tirx

        mod = fused_mod.shallow_copy() if hasattr(fused_mod, "shallow_copy") else fused_mod
        for gv, func in list(mod.functions.items()):
            if isinstance(func, tirx.PrimFunc):
                scheduled, tag = self.apply(func)
                if tag != DEFAULT_TAG:
                    attrs = {k: v for k, v in func.attrs.items()} if func.attrs else {}
                    for k, v in attrs.items():
                        scheduled = scheduled.with_attr(k, v)
                    mod[gv] = scheduled.without_attr("global_symbol") if "global_symbol" not in attrs else scheduled
        return mod


def _fast_build(mod, target, _params):
    """MetaSchedule's default builder minus its ~27 s ``tensor_intrin`` import per worker."""
    import tvm
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    return tvm.tirx.build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod), target=target)


def _cross_export(cross_compiler: str, mod) -> str:
    """MetaSchedule export step for a remote device: a shared library linked by the
    target's cross compiler (the default export writes a tar the device would have to link)."""
    import tempfile

    from tvm.support import cc

    path = os.path.join(tempfile.mkdtemp(prefix="chamtvm-ms-"), "tvm_tmp_mod.so")
    mod.export_library(path, fcompile=cc.cross_compiler(cross_compiler))
    return path


def _host_random_fill(arg) -> None:
    """Fill a (remote) tensor with seeded uniform [-1, 1) data sent from here."""
    import numpy as np

    shape, dtype = tuple(int(x) for x in arg.shape), str(arg.dtype)
    rng = np.random.default_rng(0)
    arg.copyfrom(rng.uniform(-1, 1, shape).astype(dtype) if "float" in dtype else np.zeros(shape, dtype))


def _alloc_args_host_filled(session, device, args_info, alloc_repeat):
    """MetaSchedule argument allocation that needs no ``random_fill`` on the device (TVM
    runtimes built without ``USE_RANDOM``, like the emulated aarch64 board's, lack it)."""
    from tvm.s_tir.meta_schedule.runner.utils import alloc_argument_common

    return alloc_argument_common(_host_random_fill, device, args_info, alloc_repeat)


def ms_builder_runner(target: TargetSpec, tracker: tuple[str, int, str] | None = None):
    """``(builder, runner)`` for MetaSchedule: local build (cross-linked for a remote
    target) and the local machine, or the devices under ``tracker = (host, port, key)``."""
    import functools

    from tvm.s_tir import meta_schedule as ms

    f_export = functools.partial(_cross_export, target.cross_compiler) if target.cross_compiler else None
    builder = ms.builder.LocalBuilder(f_build=_fast_build, f_export=f_export, timeout_sec=120)
    if tracker is None:
        return builder, "local"
    host, port, key = tracker
    runner = ms.runner.RPCRunner(
        ms.runner.RPCConfig(tracker_host=host, tracker_port=int(port), tracker_key=key, session_timeout_sec=300),
        ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=0, enable_cpu_cache_flush=False),
        f_alloc_argument=_alloc_args_host_filled, max_workers=1)
    return builder, runner


def tuned_log(target: TargetSpec, work_dir: Path | None = None) -> Path:
    return (work_dir or schedules_dir(target)) / "tuned_kernels.jsonl"


def tuned_hashes(target: TargetSpec, work_dir: Path | None = None) -> set[str]:
    """Structural hashes of kernels whose tuning finished (from the tuning log)."""
    import json

    path = tuned_log(target, work_dir)
    if not path.exists():
        return set()
    out = set()
    for line in path.read_text().splitlines():
        try:
            out.add(json.loads(line)["struct_hash"])
        except (json.JSONDecodeError, KeyError):
            continue  # an unfinished last line from an interrupted run
    return out


def tune_kernel(prim_func, struct_hash: str, name: str, target: TargetSpec, trials: int,
                work_dir: Path | None = None, seed: int = 0,
                tracker: tuple[str, int, str] | None = None) -> dict:
    """Tune one kernel with MetaSchedule, on the local machine or on the devices under
    ``tracker = (host, port, key)`` (candidates cross-compiled here, timed there); records
    go into the target's database and a line into the tuning log. Returns that line."""
    import json
    import time

    from tvm.s_tir import meta_schedule as ms

    work_dir = Path(work_dir or schedules_dir(target))
    work_dir.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    builder, runner = ms_builder_runner(target, tracker)
    t0 = time.time()
    with _quiet_ms_logs():
        db = ms.tir_integration.tune_tir(
            workload_module(prim_func), target.tvm(), work_dir=str(work_dir),
            max_trials_global=trials, num_trials_per_iter=min(16, trials), seed=seed,
            builder=builder, runner=runner, num_tuning_cores=cores,
        )
    record = db.query_tuning_record(workload_module(prim_func), target.tvm(), "main")
    best_us = None
    if record is not None and record.run_secs:
        best_us = float(sum(float(s) for s in record.run_secs) / len(record.run_secs)) * 1e6
    line = {"struct_hash": struct_hash, "name": name, "trials": trials,
            "tuning_s": round(time.time() - t0, 2), "best_us": best_us,
            "measured_on": "local" if tracker is None else f"rpc {tracker[2]}@{tracker[0]}:{tracker[1]}",
            "tuned_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(tuned_log(target, work_dir), "a") as f:
        f.write(json.dumps(line) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return line


class _quiet_ms_logs:
    """MetaSchedule logs every trial at INFO to the console; keep it to the work_dir logs."""

    def __enter__(self):
        import logging

        self._logger = logging.getLogger("tvm.s_tir.meta_schedule")
        self._level = self._logger.level
        self._logger.setLevel(logging.WARNING)

    def __exit__(self, *exc):
        self._logger.setLevel(self._level)

"""Schedules a kernel is deployed with: the target's default pipeline, or a MetaSchedule
database in ``<workdir>/schedules/<target>/`` when one holds a record for the kernel.

The schedule *tag* enters latency-table keys: ``default`` for the target's default
schedules (plain loop nests on CPU, dlight rules on GPU), ``ms-<hash of the best trace>``
for a tuned kernel, so a better record later gives a new key and old rows stay valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
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
        self._default_preferred = None

    @property
    def has_database(self) -> bool:
        return self.use_database and (self.work_dir / "database_tuning_record.json").exists()

    def database(self, log=None):
        """The target's MetaSchedule database, or None. Its files are checked line by line
        first (:func:`checked_database_dir`): a damaged line or a torn tail is reported with
        file and line and set aside, never handed to TVM."""
        if self._db is None and self.has_database:
            import shutil

            from tvm.s_tir import meta_schedule as ms

            folder = checked_database_dir(self.work_dir, log if log is not None else _stderr)
            try:
                self._db = ms.database.JSONDatabase(work_dir=str(folder), allow_missing=False)
            except Exception as e:  # what the line checks cannot see: say which folder, briefly
                msg = str(e).strip().splitlines()
                raise ScheduleDatabaseError(
                    f"{self.work_dir}: TVM cannot read the MetaSchedule database "
                    f"({msg[-1][:200] if msg else type(e).__name__}); move the folder away to tune again"
                ) from None
            finally:
                if folder != self.work_dir:
                    shutil.rmtree(folder, ignore_errors=True)  # the records are in memory now
        return self._db

    def reload(self) -> None:
        self._db = None
        self._default_preferred = None

    def apply(self, prim_func):
        """``(prim_func to build, tag)``: the tuned schedule when the database has one (and
        it was not found slower than the default, ``provenance.default_preferred_tags``)."""
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
        if self._default_preferred is None:
            from .provenance import default_preferred_tags

            self._default_preferred = default_preferred_tags(self.work_dir)
        if tag in self._default_preferred:
            return prim_func, DEFAULT_TAG
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


def evolutionary_strategy(population: int | None):
    """MetaSchedule's evolutionary search with ``population`` per task (its own default, 512,
    when None: the string ``"evolutionary"``)."""
    from tvm.s_tir import meta_schedule as ms

    if population is None:
        return "evolutionary"
    return ms.search_strategy.EvolutionarySearch(population_size=population,
                                                 init_min_unmeasured=min(50, population))


@contextlib.contextmanager
def local_runtime_threads(target: TargetSpec, tracker=None):
    """While tuning locally, MetaSchedule's measuring processes (forked from this one) run
    candidates with the target's ``runtime_threads`` (``TVM_NUM_THREADS``), the count the
    table rows and networks are timed with; through a tracker the device decides."""
    n = target.runtime_threads if tracker is None else None
    old = os.environ.get("TVM_NUM_THREADS")
    if n is not None:
        os.environ["TVM_NUM_THREADS"] = str(n)
    try:
        yield
    finally:
        if n is not None:
            if old is None:
                os.environ.pop("TVM_NUM_THREADS", None)
            else:
                os.environ["TVM_NUM_THREADS"] = old


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


def _is_tuning_line(raw: bytes) -> bool:
    try:
        rec = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(rec, dict) and isinstance(rec.get("struct_hash"), str)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def tuned_hashes(target: TargetSpec, work_dir: Path | None = None, log=_stderr) -> set[str]:
    """Structural hashes of kernels whose tuning finished (from the tuning log). A complete
    line that is not a record is named (file:line) through ``log`` and not counted (its
    kernel is tuned again); a torn last line is not data (the next append sets it aside)."""
    from ..core.jsonl import split_lines

    path = tuned_log(target, work_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return set()
    lines, tail, torn = split_lines(data, _is_tuning_line)
    out = set()
    for n, raw in enumerate(lines + ([tail] if tail is not None else []), start=1):
        if not raw.strip():
            continue
        if _is_tuning_line(raw):
            out.add(json.loads(raw)["struct_hash"])
        elif log:
            log(f"note: {path}:{n}: not a tuning-log record ({raw[:60]!r}); ignored, that kernel is tuned again")
    if torn and log:
        log(f"note: {path}: unfinished last line (an interrupted run); not counted")
    return out


class ScheduleDatabaseError(RuntimeError):
    """A MetaSchedule database that cannot be used; the message names the folder."""


WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"


def _check_lines(path: Path, check) -> tuple[list[bytes], list[tuple[int, bytes, str]], bool]:
    """``(good lines, [(line number, raw, why)], unterminated)`` of a database file;
    ``check(obj, n)`` raises ``ValueError`` for a line that parses but is no valid entry;
    ``unterminated``: the last entry is whole but lacks its newline (TVM's next append would
    run into it)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], [], False
    lines = data.split(b"\n")
    tail = lines.pop()
    good, bad, unterminated = [], [], False
    for n, raw in enumerate(lines + ([tail] if tail.strip() else []), start=1):
        if not raw.strip():
            continue
        why = None
        try:
            obj = json.loads(raw)
            check(obj, n)
        except (ValueError, UnicodeDecodeError) as e:
            why = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        except Exception as e:  # TVM's own parser (tvm errors): still this line's fault
            why = f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:160] if str(e).strip() else ''}"
        if why is None:
            good.append(raw)
            unterminated = unterminated or n == len(lines) + 1
        else:
            bad.append((n, raw, ("torn last line: " if n == len(lines) + 1 else "") + why))
    return good, bad, unterminated


def check_database(work_dir: str | Path) -> tuple[list[bytes], list[bytes], list[str], list[bytes], bool]:
    """Validate a MetaSchedule JSON database line by line, as TVM would parse it.

    Returns ``(workload lines, record lines (indices renumbered), problems, set-aside lines,
    rewrite)``: a damaged workload line drops the records that point at it; each problem
    names ``file:line``; ``rewrite`` is True when the files must be rewritten (problems, or a
    whole last entry lacking its newline). Nothing is written."""
    from tvm.s_tir import meta_schedule as ms

    work_dir = Path(work_dir)
    wl_objs: dict[int, object] = {}

    def check_wl(obj, n):
        if not (isinstance(obj, list) and len(obj) == 2 and all(isinstance(x, str) for x in obj)):
            raise ValueError("not a [hash, module] workload entry")
        wl_objs[n] = ms.database.Workload.from_json(obj)

    wl_good, wl_bad, wl_open = _check_lines(work_dir / WORKLOADS, check_wl)
    # index in the file (0-based among entries TVM reads) -> (line number, workload)
    data = (work_dir / WORKLOADS).read_bytes() if (work_dir / WORKLOADS).exists() else b""
    entries = [n for n, raw in enumerate(data.split(b"\n"), start=1) if raw.strip()]
    old_index = {i: n for i, n in enumerate(entries)}
    good_lines = [n for n in entries if n in wl_objs]
    new_index = {n: i for i, n in enumerate(good_lines)}
    problems = [f"{work_dir / WORKLOADS}:{n}: damaged workload ({why})" for n, _, why in wl_bad]
    aside = [raw for _, raw, _ in wl_bad]
    renumbered: list[bytes] = []

    def check_rec(obj, n):
        if not (isinstance(obj, list) and len(obj) == 2 and isinstance(obj[0], int) and not isinstance(obj[0], bool)):
            raise ValueError("not a [workload index, record] entry")
        line = old_index.get(obj[0])
        if line is None:
            raise ValueError(f"workload index {obj[0]} is not in {WORKLOADS}")
        if line not in wl_objs:
            raise ValueError(f"its workload ({WORKLOADS}:{line}) is damaged")
        ms.database.TuningRecord.from_json(obj[1], wl_objs[line])
        renumbered.append(json.dumps([new_index[line], obj[1]], separators=(",", ":")).encode())

    rec_good, rec_bad, rec_open = _check_lines(work_dir / RECORDS, check_rec)
    problems += [f"{work_dir / RECORDS}:{n}: damaged tuning record ({why})" for n, _, why in rec_bad]
    aside += [raw for _, raw, _ in rec_bad]
    return wl_good, renumbered, problems, aside, bool(problems) or wl_open or rec_open


def _write_database(folder: Path, workloads: list[bytes], records: list[bytes]) -> None:
    from ..core.atomic import atomic_write_bytes

    atomic_write_bytes(folder / WORKLOADS, b"".join(x + b"\n" for x in workloads))
    atomic_write_bytes(folder / RECORDS, b"".join(x + b"\n" for x in records))


def repair_database(work_dir: str | Path, log=_stderr, wait_s: float = 0.0) -> bool:
    """Set aside the damaged lines of the database in ``work_dir`` (into
    ``<file>.bad-<UTC timestamp>``) and rewrite both files atomically without them, under the
    database lock (``<work_dir>/database.lock``; waits up to ``wait_s`` seconds for it).
    Returns True when the database is clean now, False when the lock was held elsewhere."""
    from filelock import FileLock, Timeout

    work_dir = Path(work_dir)
    try:
        lock = FileLock(str(work_dir / "database.lock"), timeout=wait_s)
        lock.acquire()
    except Timeout:
        return False
    try:
        _repair_locked(work_dir, log)
        return True
    finally:
        lock.release()


def checked_database_dir(work_dir: str | Path, log=_stderr) -> Path:
    """A folder TVM can read the database of ``work_dir`` from: ``work_dir`` itself once its
    damaged lines are set aside, or, while a tuning run holds the database lock, a temporary
    copy without them (the caller removes it)."""
    import tempfile

    work_dir = Path(work_dir)
    wl, rec, problems, _, rewrite = check_database(work_dir)
    if not rewrite or repair_database(work_dir, log):
        return work_dir
    tmp = Path(tempfile.mkdtemp(prefix="chamtvm-db-"))
    _write_database(tmp, wl, rec)
    if log:
        log(f"note: {work_dir}: {len(problems)} damaged database line(s) skipped (a tuning run holds the lock)")
    return tmp


def tune_kernel(prim_func, struct_hash: str, name: str, target: TargetSpec, trials: int,
                work_dir: Path | None = None, seed: int = 0,
                tracker: tuple[str, int, str] | None = None, population: int | None = None) -> dict:
    """Tune one kernel with MetaSchedule, on the local machine or on the devices under
    ``tracker = (host, port, key)`` (candidates cross-compiled here, timed there); records
    go into the target's database and a line into the tuning log. Returns that line.
    ``population``: the evolutionary search's population (MetaSchedule's 512 when None)."""
    import time

    from tvm.s_tir import meta_schedule as ms

    work_dir = Path(work_dir or schedules_dir(target))
    work_dir.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    builder, runner = ms_builder_runner(target, tracker)
    t0 = time.time()
    from filelock import FileLock

    # one tuning run writes a database at a time; its damaged lines are set aside first
    with FileLock(str(work_dir / "database.lock")):
        if (work_dir / RECORDS).exists() or (work_dir / WORKLOADS).exists():
            _repair_locked(work_dir)  # TVM appends: the files must end with whole lines
        with _quiet_ms_logs(), local_runtime_threads(target, tracker):
            db = ms.tir_integration.tune_tir(
                workload_module(prim_func), target.tvm(), work_dir=str(work_dir),
                max_trials_global=trials, num_trials_per_iter=min(16, trials), seed=seed,
                builder=builder, runner=runner, num_tuning_cores=cores,
                strategy=evolutionary_strategy(population),
            )
    record = db.query_tuning_record(workload_module(prim_func), target.tvm(), "main")
    best_us = None
    if record is not None and record.run_secs:
        best_us = float(sum(float(s) for s in record.run_secs) / len(record.run_secs)) * 1e6
    line = {"struct_hash": struct_hash, "name": name, "trials": trials,
            "tuning_s": round(time.time() - t0, 2), "best_us": best_us,
            "measured_on": "local" if tracker is None else f"rpc {tracker[2]}@{tracker[0]}:{tracker[1]}",
            "tuned_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    from ..core.jsonl import append_lines

    append_lines(tuned_log(target, work_dir), [json.dumps(line)], is_complete=_is_tuning_line)
    return line


def _repair_locked(work_dir: Path, log=_stderr) -> None:
    """:func:`repair_database` for a caller that already holds the database lock."""
    from ..core.jsonl import set_aside

    wl, rec, problems, aside, rewrite = check_database(work_dir)
    if rewrite and not problems:  # whole entries, one lacking its newline: complete it
        _write_database(work_dir, wl, rec)
    if problems:
        side = set_aside(work_dir / RECORDS, b"".join(x + b"\n" for x in aside), "bad")
        _write_database(work_dir, wl, rec)
        if log:
            for p in problems:
                log(f"note: {p}")
            log(f"note: {len(aside)} damaged MetaSchedule database line(s) set aside in {side}; the other "
                f"records are used (a killed tuning run leaves a torn last line)")


class _quiet_ms_logs:
    """MetaSchedule logs every trial at INFO to the console; keep it to the work_dir logs."""

    def __enter__(self):
        import logging

        self._logger = logging.getLogger("tvm.s_tir.meta_schedule")
        self._level = self._logger.level
        self._logger.setLevel(logging.WARNING)

    def __exit__(self, *exc):
        self._logger.setLevel(self._level)

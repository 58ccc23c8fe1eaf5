"""The files of a target's schedules folder (``schedules/<target>/``) that MetaSchedule and
the tuners write: the JSON database (``database_workload.json``, ``database_tuning_record.json``),
its lock, the tuning log (``tuned_kernels.jsonl``, one line per kernel whose tuning
finished) and the tuning journal (``tuning_progress.jsonl``: each round and budget of the
tuning policy as it happens, so a killed run resumes with what is left).

TVM reads the database without checking it and appends to it; a damaged line would give a
C++ traceback and a torn last line would corrupt the next append. So every line is checked
here the way TVM parses it before TVM sees the files; a damaged line is reported with file
and line, set aside, and the files are rewritten atomically without it, under the database
lock (``database.lock``, held by a tuning run while it writes)."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

from ..core.workdir import target_schedules_dir
from ..targets.spec import TargetSpec

WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"
TUNING_LOG = "tuned_kernels.jsonl"
PROGRESS = "tuning_progress.jsonl"  # the tuning journal: rounds and budgets, for a resumed run
LOCK = "database.lock"


def workload_module(prim_func):
    """The IRModule MetaSchedule keys a kernel's workload by: a deep copy of ``prim_func``
    (as ``main``) that shares no IR node with it.

    A TVM ``Schedule`` built on a module rewrites nodes it holds the only reference to in
    place, and TVM's database and tuners build schedules on the modules they are given
    without copying them (``Database.query_schedule``, the design-space generator). A
    shallow module would let a trace replayed on it rewrite the kernel's own body: the
    network would then hold (and commit as a workload) a scheduled kernel. About 4 ms per
    call for a fused convolution."""
    import tvm

    return private_copy(tvm.IRModule({"main": prim_func.with_attr("global_symbol", "main")
                                      .with_attr("tirx.noalias", True)}))


def private_copy(mod):
    """A deep copy of IRModule ``mod`` (through TVM's JSON form), sharing no node with it:
    what a ``Schedule`` may be built on without rewriting ``mod``."""
    import tvm

    return tvm.ir.load_json(tvm.ir.save_json(mod))


def best_record_us(db, func, target: TargetSpec) -> float | None:
    """Best measured mean time (us) of ``func`` in the MetaSchedule database ``db``, None
    without a valid record."""
    rec = db.query_tuning_record(workload_module(func), target.tvm(), "main")
    if rec is None or not rec.run_secs:
        return None
    secs = [float(s) for s in rec.run_secs]
    return sum(secs) / len(secs) * 1e6


def tuned_log(target: TargetSpec, work_dir: Path | None = None) -> Path:
    """The tuning log of ``target`` (in ``work_dir``, default its schedules folder)."""
    return Path(work_dir or target_schedules_dir(target.name)) / TUNING_LOG


def _is_tuning_line(raw: bytes) -> bool:
    try:
        rec = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(rec, dict) and isinstance(rec.get("struct_hash"), str)


def stderr_note(msg: str) -> None:
    """The default ``log`` of the tuning package: the note on stderr."""
    print(msg, file=sys.stderr)


def tuned_records(target: TargetSpec, work_dir: Path | None = None, log=stderr_note) -> dict[str, dict]:
    """``struct_hash -> its last line`` of the kernels whose tuning finished (the tuning log).
    A complete line that is not a record is named (file:line) through ``log`` and not counted
    (its kernel is tuned again); a torn last line is not data (the next append sets it aside)."""
    from ..core.jsonl import split_lines

    path = tuned_log(target, work_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    lines, tail, torn = split_lines(data, _is_tuning_line)
    out = {}
    for n, raw in enumerate(lines + ([tail] if tail is not None else []), start=1):
        if not raw.strip():
            continue
        if _is_tuning_line(raw):
            rec = json.loads(raw)
            out[rec["struct_hash"]] = rec
        elif log:
            log(f"note: {path}:{n}: not a tuning-log record ({raw[:60]!r}); ignored, that kernel is tuned again")
    if torn and log:
        log(f"note: {path}: unfinished last line (an interrupted run); not counted")
    return out


def tuned_hashes(target: TargetSpec, work_dir: Path | None = None, log=stderr_note) -> set[str]:
    """Structural hashes of the kernels whose tuning finished (:func:`tuned_records`)."""
    return set(tuned_records(target, work_dir, log))


def append_tuning_log(target: TargetSpec, work_dir: Path | None, lines: list[dict]) -> None:
    """Append one line per finished kernel to the tuning log, durably (a torn last line of
    a killed run is set aside first, ``core.jsonl.append_lines``)."""
    from ..core.jsonl import append_lines

    if lines:
        append_lines(tuned_log(target, work_dir), [json.dumps(x) for x in lines], is_complete=_is_tuning_line)


def read_progress(work_dir: Path) -> list[dict]:
    """The tuning journal of ``work_dir`` (``tuning_progress.jsonl``): the JSON objects of
    its lines, in order (a torn last line of a killed run is not data)."""
    from ..core.jsonl import split_lines

    try:
        data = (Path(work_dir) / PROGRESS).read_bytes()
    except FileNotFoundError:
        return []
    lines, tail, _ = split_lines(data)
    out = []
    for raw in lines + ([tail] if tail is not None else []):
        try:
            rec = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def append_progress(work_dir: Path, record: dict) -> None:
    """Append one event to the tuning journal, durably (``core.jsonl.append_lines``)."""
    from ..core.jsonl import append_lines

    append_lines(Path(work_dir) / PROGRESS, [json.dumps(record)])


def records_of(db, func) -> int:
    """How many tuning records (measured candidates, valid or not) ``db`` holds for ``func``:
    the MetaSchedule trials spent on it."""
    mod = workload_module(func)
    if not db.has_workload(mod):
        return 0
    wl = db.commit_workload(mod)  # the database's own workload object (nothing new is written)
    return sum(1 for r in db.get_all_tuning_records() if r.workload.same_as(wl))


def _lock(work_dir: Path):
    """The database lock of ``work_dir``: one reentrant lock object per folder in a process
    (a tuning run holding it may read and repair its own database)."""
    from filelock import FileLock

    return FileLock(str(Path(work_dir) / LOCK), is_singleton=True)


@contextlib.contextmanager
def database_lock(work_dir: Path, log=None):
    """Hold the database lock of ``work_dir`` with its files checked: a damaged line is set
    aside first, so TVM's appends land after whole lines. While another process tunes into
    the same database this waits for it (saying so through ``log``): one tuning per database
    at a time."""
    from filelock import Timeout

    work_dir = Path(work_dir)
    lock = _lock(work_dir)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if log:
            log(f"another tuning run is writing {work_dir}; waiting for it to finish "
                "(what it tunes is not tuned again)")
        lock.acquire()
    try:
        if (work_dir / RECORDS).exists() or (work_dir / WORKLOADS).exists():
            _repair_locked(work_dir)
        yield
    finally:
        lock.release()


class ScheduleDatabaseError(RuntimeError):
    """A MetaSchedule database that cannot be used; the message names the folder."""


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


def repair_database(work_dir: str | Path, log=stderr_note, wait_s: float = 0.0) -> bool:
    """Set aside the damaged lines of the database in ``work_dir`` (into
    ``<file>.bad-<UTC timestamp>``) and rewrite both files atomically without them, under the
    database lock (``<work_dir>/database.lock``; waits up to ``wait_s`` seconds for it).
    Returns True when the database is clean now, False when the lock was held elsewhere."""
    from filelock import Timeout

    work_dir = Path(work_dir)
    lock = _lock(work_dir)
    try:
        lock.acquire(timeout=wait_s)
    except Timeout:
        return False
    try:
        _repair_locked(work_dir, log)
        return True
    finally:
        lock.release()


def checked_database_dir(work_dir: str | Path, log=stderr_note) -> Path:
    """A folder TVM can read the database of ``work_dir`` from: ``work_dir`` itself once its
    damaged lines are set aside, or, while a tuning run holds the database lock, a temporary
    copy without them (the caller removes it)."""
    import tempfile

    work_dir = Path(work_dir)
    wl, rec, problems, _, rewrite = check_database(work_dir)
    if not rewrite:
        return work_dir
    try:
        if repair_database(work_dir, log):
            return work_dir
    except OSError:  # a read-only schedules folder: read a repaired copy, leave the files as they are
        pass
    tmp = Path(tempfile.mkdtemp(prefix="chamtvm-db-"))
    _write_database(tmp, wl, rec)
    if log:
        log(f"note: {work_dir}: {len(problems)} damaged database line(s) skipped (the folder is read-only "
            f"or a tuning run holds the lock)")
    return tmp


def _repair_locked(work_dir: Path, log=stderr_note) -> None:
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

"""Fill a target's latency table with the kernels it lacks, batch by batch.

Each batch of kernels is compiled into one library (one compile, one load), measured by a
runner that returns one result per kernel, and every result is appended to the table as
soon as it arrives, so an interrupted build loses at most the kernel in flight and a
rerun measures only what is missing.

What is missing is decided under the table's lock, batch by batch: the table is reread and
each kernel still missing is *claimed* in ``<table>.claims.json`` (process id, host, start
time) before it is compiled. Two runs filling one table therefore split the work and never
measure a kernel twice; a run waits for the kernels another live run has claimed, and takes
over the claims of a run that died (kill -9 leaves its claims, which a dead pid voids)."""

from __future__ import annotations
import json
import os
import socket
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence
from ..lower.kernels import Kernel
from .store import LatencyTable, failed_row, make_key, ok_row
from ..measure.base import KernelBatch, KernelItem, Runner
from ..measure.compile import build_batch_network, build_kernel_library
from ..tuning.schedules import ScheduleSource
from ..targets.spec import TargetSpec
from ..core.versions import tvm_version
from .reference import ReferenceBaseline



MAX_TIMINGS = 3  # a kernel timed this often is kept even if never at nominal speed

# what a runner reports beside the samples that a row keeps (``measure.timing``)
ROW_EXTRAS = ("timing", "overhead_us", "reference_us", "reference_p10_us", "reference_baseline_us",
              "samples_taken", "samples_nominal", "nominal", "slow_ratio", "corrected_by_slow_factor",
              "other_cores", "attempts", "runtime_threads", "fast_state_tolerance", "samples_before_fast_state")


@dataclass
class PreparedKernel:
    """A kernel with its deployment schedule applied and its table key."""

    key: str
    schedule: str
    kernel: Kernel
    func: object  # the PrimFunc to build (scheduled)
    provenance: str = "default"  # default, tuned or transferred (ScheduleSource.provenance)

    @property
    def symbol(self) -> str:
        return f"k_{self.kernel.struct_hash}_{self.schedule.replace('-', '_')}"

    def item(self) -> KernelItem:
        return KernelItem(self.key, self.symbol, self.kernel.args)


def prepare(kernels: Iterable[Kernel], target: TargetSpec, schedules: ScheduleSource) -> list[PreparedKernel]:
    """Apply the deployment schedule to each kernel and compute its table key."""
    out = []
    for k in kernels:
        func, tag = schedules.apply(k.func)
        out.append(PreparedKernel(make_key(target.fingerprint, tag, k.struct_hash), tag, k, func,
                                  schedules.provenance(tag) if tag != "default" else "default"))
    return out


def row_base(p: PreparedKernel, target: TargetSpec, runner: Runner) -> dict:
    return {
        "struct_hash": p.kernel.struct_hash,
        "name": p.kernel.name,
        "target": target.name,
        "target_fingerprint": target.fingerprint,
        "schedule": p.schedule,
        "schedule_provenance": p.provenance,
        "tvm_version": tvm_version(),
        "device_label": runner.label,
        "emulated": runner.emulated,
        "args": [a.to_list() for a in p.kernel.args],
        "flops": p.kernel.flops,
        "bytes": p.kernel.bytes,
    }


@dataclass
class BuildSummary:
    requested: int = 0
    already_in_table: int = 0
    measured: int = 0
    failed: int = 0
    skipped_failed_before: int = 0
    measured_elsewhere: int = 0  # measured meanwhile by another run on the same table
    retimed_not_nominal: int = 0  # rows timed while the device ran slow, timed again

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _proc_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, Linux), None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


class TableClaims:
    """Kernels being measured right now, by which process: ``<table>.claims.json``, read and
    rewritten (atomically) only under the table's lock."""

    STALE_S = 3600.0  # a claim by another host is trusted this long (its pid cannot be checked)

    def __init__(self, table: LatencyTable):
        self.table = table
        self.path = Path(str(table.path) + ".claims.json")
        self.me = {"pid": os.getpid(), "host": socket.gethostname(), "start": _proc_start(os.getpid())}
        self.mine: set[str] = set()

    def _lock(self):
        from filelock import FileLock

        self.table.path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.table.path) + ".lock")

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # none yet, or unreadable (written atomically, so only by hand): no claims
        return data if isinstance(data, dict) else {}

    def _write(self, claims: dict) -> None:
        from ..core.atomic import atomic_write_text

        self.table.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(claims, sort_keys=True))

    def _alive(self, c) -> bool:
        if not isinstance(c, dict):
            return False
        if c.get("host") != self.me["host"]:
            return time.time() - float(c.get("at", 0)) < self.STALE_S
        pid = c.get("pid")
        if not isinstance(pid, int) or pid <= 0:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return c.get("start") is None or c.get("start") == _proc_start(pid)

    def _is_me(self, c) -> bool:
        return isinstance(c, dict) and c.get("pid") == self.me["pid"] and c.get("host") == self.me["host"]

    def claim(self, items: Sequence["PreparedKernel"], done) -> tuple[list, list, list]:
        """Under the lock: reread the table, then ``(claimed now, claimed by another live run,
        done meanwhile)``; ``done(key)`` says whether the reread table settles a key."""
        with self._lock():
            self.table.load()
            claims = {k: c for k, c in self._read().items() if self._alive(c)}
            mine, theirs, finished = [], [], []
            for p in items:
                if done(p.key):
                    finished.append(p)
                elif p.key in claims and not self._is_me(claims[p.key]):
                    theirs.append(p)
                else:
                    claims[p.key] = {**self.me, "at": time.time()}
                    mine.append(p)
            self._write(claims)
        self.mine.update(p.key for p in mine)
        return mine, theirs, finished

    def who(self, keys) -> set[int]:
        """Process ids of the live runs that claim ``keys``."""
        claims = self._read()
        return {claims[k].get("pid") for k in keys if k in claims and self._alive(claims[k])}

    def release(self, keys=None) -> None:
        """Drop this run's claims on ``keys`` (all of them when None)."""
        keys = set(self.mine if keys is None else keys) & self.mine
        if not keys:
            return
        with self._lock():
            claims = self._read()
            for k in keys:
                if self._is_me(claims.get(k)):
                    del claims[k]
            self._write(claims)
        self.mine -= keys


def fill_table(
    prepared: Sequence[PreparedKernel],
    table: LatencyTable,
    runner: Runner,
    target: TargetSpec,
    batch_size: int = 48,
    retry_failed: bool = False,
    work_dir: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
    log: Callable[[str], None] | None = None,
    poll_s: float = 1.0,
) -> BuildSummary:
    """Measure every prepared kernel the table lacks; append each result as it arrives.

    Safe to run from several processes on one table (see the module docstring): a kernel
    another run has claimed is waited for (``poll_s`` seconds between looks, said through
    ``log``), not measured again. ``progress(n)`` is called with the number of kernels
    finished since the last call.
    """
    summary = BuildSummary(requested=len(prepared))
    in_network = target.kernel_timing == "in_network" and runner.times_in_network()
    kind = "vm" if in_network else "lib"
    baseline = ReferenceBaseline(table.path.parent, target.name, target.fingerprint, log)
    tolerance = target.evaluator.nominal_tolerance
    seen: set[str] = set()
    todo = []
    for p in prepared:
        if p.key in seen:
            continue
        seen.add(p.key)
        row = table.get(p.key)
        if row is not None and (baseline.is_nominal(row, kind, tolerance) or table.timings(p.key) >= MAX_TIMINGS):
            summary.already_in_table += 1
        elif row is None and table.failed(p.key) is not None and not retry_failed:
            summary.skipped_failed_before += 1
        else:
            if row is not None:
                summary.retimed_not_nominal += 1  # timed while the device ran slow: once more
            todo.append(p)
    if not todo:
        return summary
    before = {p.key: ((table.get(p.key) or {}).get("crc"), (table.failed(p.key) or {}).get("crc")) for p in todo}

    def done(key: str) -> bool:  # settled by a row appended since this run decided to measure it
        ok, f = table.get(key), table.failed(key)
        return (ok is not None and ok.get("crc") != before[key][0]) or \
            (f is not None and f.get("crc") != before[key][1])

    def evaluator():  # the device's nominal speed as learnt so far (table.reference)
        return replace(target.evaluator, reference_baseline_us=baseline.baseline_us(kind),
                       slow_factor=baseline.slow_factor(kind))

    by_key = {p.key: p for p in todo}
    claims = TableClaims(table)

    def claimed_batches(tmp: Path) -> Iterator[KernelBatch]:
        pending, counter, said = list(todo), [0], 0.0
        while pending:
            waiting = []
            for start in range(0, len(pending), batch_size):
                mine, theirs, finished = claims.claim(pending[start:start + batch_size], done)
                waiting += theirs
                if finished:
                    summary.measured_elsewhere += len(finished)
                    if progress:
                        progress(len(finished))
                if mine:
                    for b in build_batches(mine, target, tmp, batch_size, counter, in_network):
                        yield replace(b, evaluator=evaluator())
            pending = waiting
            if pending:
                if log and time.time() - said > 60:
                    log(f"waiting for {len(pending)} kernel(s) that another run (pid "
                        f"{', '.join(map(str, sorted(claims.who(p.key for p in pending))))}) is measuring "
                        f"into {table.path}")
                    said = time.time()
                time.sleep(poll_s)

    ratios_seen: set[float] = set()
    alone_again: list[PreparedKernel] = []  # items of a batch network that died: each alone next
    retried: set[str] = set()

    def results(tmp: Path):
        # measure_batches consumes the batches lazily; a runner with several devices
        # compiles the next batches while the devices measure.
        yield from runner.measure_batches(claimed_batches(tmp), target.evaluator)
        if alone_again:
            again, counter = list(alone_again), [10 ** 6]
            retried.update(p.key for p in again)
            yield from runner.measure_batches((replace(b, evaluator=evaluator()) for b in
                                               build_batches(again, target, tmp, 1, counter, in_network)),
                                              target.evaluator)

    try:
        with tempfile.TemporaryDirectory(prefix="chamtvm-batch-", dir=work_dir) as tmp:
            # results come back here, in this thread, and each is appended as it arrives
            for res in results(Path(tmp)):
                p = by_key.get(res.key)
                if p is None:
                    continue
                if in_network and not res.ok and (res.error or "").startswith("batch network:") \
                        and p.key not in retried:
                    alone_again.append(p)  # a crash of one kernel fails its whole batch: find it
                    continue
                if res.ok and tolerance is not None:
                    baseline.learn(kind, res.extra.get("reference_p10_us"))
                    ratio = res.extra.get("slow_ratio")
                    if ratio is not None and ratio not in ratios_seen:  # once per batch: its items share the runs
                        ratios_seen.add(ratio)
                        baseline.learn_slow(kind, ratio)
                base = row_base(p, target, runner)
                if res.energy_uj is not None:
                    base["energy_uj"] = res.energy_uj
                base.update({k: res.extra[k] for k in ROW_EXTRAS if k in res.extra})
                base.setdefault("timing", "isolated")
                if res.ok:
                    table.append([ok_row(p.key, base, res.samples_us, res.number)])
                    summary.measured += 1
                else:
                    table.append([failed_row(p.key, base, res.error or "unknown error")])
                    summary.failed += 1
                claims.release([p.key])
                if progress:
                    progress(1)
    finally:
        claims.release()
    return summary


def build_batches(todo: Sequence[PreparedKernel], target: TargetSpec, tmp: Path, batch_size: int,
                  _counter: list[int] | None = None, in_network: bool = False) -> Iterator[KernelBatch]:
    """Compile ``todo`` into libraries of ``batch_size`` kernels, lazily: kernel libraries,
    or with ``in_network`` batch networks (``lower.batchnet``) whose items are timed inside
    them. A batch that fails to build is split to find the culprit, whose item comes back as
    a failed batch."""
    counter = _counter if _counter is not None else [0]
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        counter[0] += 1
        lib_path = tmp / f"batch{counter[0]}.so"
        inputs = None
        try:
            if in_network and all(p.kernel.n_inputs for p in batch):
                inputs = tuple(build_batch_network([(p.symbol, p.func, p.kernel) for p in batch], target, lib_path))
            else:
                build_kernel_library([(p.symbol, p.func) for p in batch], target, lib_path)
        except Exception as e:
            from ..core.interrupt import reraise_if_interrupted

            reraise_if_interrupted()
            if len(batch) > 1:
                yield from build_batches(batch[:1], target, tmp, 1, counter, in_network)
                yield from build_batches(batch[1:], target, tmp, batch_size // 2 or 1, counter, in_network)
                continue
            error = f"build failed: {e}"
            if in_network and all(p.kernel.n_inputs for p in batch):
                # a kernel no batch network can hold (e.g. a reshape the pipeline folds into a
                # view): timed alone instead, and its row says so (``timing``: isolated)
                try:
                    build_kernel_library([(batch[0].symbol, batch[0].func)], target, lib_path)
                except Exception as e2:
                    reraise_if_interrupted()
                    error = f"build failed: {e2}"
                else:
                    yield KernelBatch(lib_path, (batch[0].item(),))
                    continue
            yield KernelBatch(None, (batch[0].item(),), error)
            continue
        yield KernelBatch(lib_path, tuple(p.item() for p in batch), network_inputs=inputs)

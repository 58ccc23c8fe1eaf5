"""Fill a target's latency table with the kernels it lacks, batch by batch.

Each batch of kernels is compiled into one library (one compile, one load), measured by a
runner that returns one result per kernel, and every result is appended to the table as
soon as it arrives, so an interrupted build loses at most the kernel in flight and a
rerun measures only what is missing."""

from __future__ import annotations
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence
from ..lower.kernels import Kernel
from .store import LatencyTable, failed_row, make_key, ok_row
from ..measure.base import KernelBatch, KernelItem, Runner
from ..measure.compile import build_kernel_library
from ..tuning.schedules import ScheduleSource
from ..targets.spec import TargetSpec
from ..core.versions import tvm_version



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

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def fill_table(
    prepared: Sequence[PreparedKernel],
    table: LatencyTable,
    runner: Runner,
    target: TargetSpec,
    batch_size: int = 48,
    retry_failed: bool = False,
    work_dir: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> BuildSummary:
    """Measure every prepared kernel the table lacks; append each result as it arrives.

    ``progress(n)`` is called with the number of kernels finished since the last call.
    """
    summary = BuildSummary(requested=len(prepared))
    seen: set[str] = set()
    todo = []
    for p in prepared:
        if p.key in seen:
            continue
        seen.add(p.key)
        if p.key in table:
            summary.already_in_table += 1
        elif table.failed(p.key) is not None and not retry_failed:
            summary.skipped_failed_before += 1
        else:
            todo.append(p)
    by_key = {p.key: p for p in todo}
    with tempfile.TemporaryDirectory(prefix="chamtvm-batch-", dir=work_dir) as tmp:
        batches = build_batches(todo, target, Path(tmp), batch_size)
        # measure_batches consumes the batches lazily; a runner with several devices
        # compiles the next batches while the devices measure. Results come back here,
        # in this thread, and each is appended as it arrives.
        for res in runner.measure_batches(batches, target.evaluator):
            p = by_key.get(res.key)
            if p is None:
                continue
            base = row_base(p, target, runner)
            if res.energy_uj is not None:
                base["energy_uj"] = res.energy_uj
            if res.ok:
                table.append([ok_row(p.key, base, res.samples_us, res.number)])
                summary.measured += 1
            else:
                table.append([failed_row(p.key, base, res.error or "unknown error")])
                summary.failed += 1
            if progress:
                progress(1)
    return summary


def build_batches(todo: Sequence[PreparedKernel], target: TargetSpec, tmp: Path, batch_size: int,
                  _counter: list[int] | None = None) -> Iterator[KernelBatch]:
    """Compile ``todo`` into libraries of ``batch_size`` kernels, lazily. A batch that fails
    to build is split to find the culprit, whose item comes back as a failed batch."""
    counter = _counter if _counter is not None else [0]
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        counter[0] += 1
        lib_path = tmp / f"batch{counter[0]}.so"
        try:
            build_kernel_library([(p.symbol, p.func) for p in batch], target, lib_path)
        except Exception as e:
            if len(batch) > 1:
                yield from build_batches(batch[:1], target, tmp, 1, counter)
                yield from build_batches(batch[1:], target, tmp, batch_size // 2 or 1, counter)
                continue
            yield KernelBatch(None, (batch[0].item(),), f"build failed: {e}")
            continue
        yield KernelBatch(lib_path, tuple(p.item() for p in batch))

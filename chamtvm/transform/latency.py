"""Latency of blocks and networks on the target: priced from its latency table (kernels the
table lacks are measured first, locally or through the RPC tracker), and networks measured
end to end.

Blocks are priced where they sit: each candidate block is lowered at the input shape it has
in the network (a network's fused kernels never cross block boundaries, ``lower.coverage``),
many candidates side by side in one probe module, and its kernels are looked up in the table
with the target's deployment schedules (``table.fill.prepare``, ``fill_table``; prices
through ``latency.loading.load_predictor``, so the table's statistic and kernel model are the
ones every other command uses). What the kernels alone miss (the VM's per-call work, memory
planning) is calibrated on the teacher itself: ``context_scale`` = the teacher's measured
end-to-end latency / its table sum, applied to every prediction of a network derived from it.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

# blocks lowered together in one probe module (a lowering's cost grows with its size)
PROBE_BLOCKS = 24


@dataclass
class Priced:
    """A block's (or network's) table sum in ms, its kernel calls, and the kernels the table
    could not give (``estimated``: priced by the kernel model; ``missing``: not priced)."""

    latency_ms: float
    calls: int
    estimated: list[str] = dataclasses.field(default_factory=list)
    missing: list[str] = dataclasses.field(default_factory=list)


class TargetLatency:
    """Prices torch modules on ``target`` from its table and measures networks end to end.

    ``runner``: measures the kernels the table lacks and the networks (None: nothing is
    measured; kernels the table lacks are priced by the kernel model or reported missing).
    ``luts_dir``/``schedules_dir``: as for every command (None: under the working folder).
    """

    def __init__(self, target, runner=None, luts_dir: Path | None = None, schedules_dir: Path | None = None,
                 log: Callable[[str], None] | None = None):
        from ..table.store import LatencyTable
        from ..tuning.schedules import ScheduleSource

        self.target, self.runner, self.log = target, runner, log
        self.table = LatencyTable.for_target(target.name, luts_dir)
        self.schedules = ScheduleSource(target, Path(schedules_dir) / target.name if schedules_dir else None)
        self.measured_now = 0

    # ------------------------------------------------------------- pricing
    def _fill(self, prepared) -> None:
        from ..table.fill import fill_table

        todo = {p.key: p for p in prepared if p.key not in self.table and self.table.failed(p.key) is None}
        if not todo or self.runner is None:
            return
        if self.log:
            self.log(f"measuring {len(todo)} kernels missing from {self.table.path} on {self.runner.label}")
        summary = fill_table(list(todo.values()), self.table, self.runner, self.target)
        self.measured_now += summary.measured
        self.table.load()

    def _predictor(self):
        from ..latency.loading import load_predictor

        return load_predictor(self.table, log=self.log)

    def _priced(self, predictor, prepared) -> Priced:
        if not prepared:
            return Priced(0.0, 0)
        p = predictor.predict(prepared)
        return Priced(p.table_sum_ms, sum(k.kernel.count for k in prepared), list(p.estimated), list(p.missing))

    def price_blocks(self, blocks: Sequence[tuple[object, tuple[int, ...]]],
                     progress: Callable[[int], None] | None = None) -> list[Priced]:
        """The table sum of each ``(module, input_shape)`` block at that input shape (NCHW,
        batch 1), lowered side by side in probe modules; missing kernels measured first."""
        from ..lower.coverage import kernels_per_output
        from ..lower.kernels import extract_kernels, from_torch, fuse, kernel_hash
        from ..table.fill import prepare

        per_block: list[list] = []
        for start in range(0, len(blocks), PROBE_BLOCKS):
            chunk = blocks[start:start + PROBE_BLOCKS]
            probe, shapes = _probe(chunk)
            fused = fuse(from_torch(probe, shapes), **self.target.lowering())
            by_hash = {k.struct_hash: k for k in extract_kernels(fused)}
            name_to_hash = {gv.name_hint: kernel_hash(f) for gv, f in fused.functions.items()
                            if gv.name_hint != "main" and hasattr(f, "params") and not hasattr(f, "ret_ty")}
            outputs = kernels_per_output(fused)
            if len(outputs) != len(chunk):
                raise RuntimeError(f"probe of {len(chunk)} blocks has {len(outputs)} outputs")
            for counts in outputs:
                kernels = {}
                for name, m in counts.items():
                    h = name_to_hash[name]
                    kernels[h] = kernels.get(h, 0) + m
                per_block.append([dataclasses.replace(by_hash[h], count=m) for h, m in kernels.items()])
            if progress:
                progress(len(chunk))
        prepared = [prepare(ks, self.target, self.schedules) for ks in per_block]
        self._fill([p for ps in prepared for p in ps])
        predictor = self._predictor()
        return [self._priced(predictor, ps) for ps in prepared]

    def lower(self, module, input_shape, name: str = "network"):
        from ..lower.network import lower_torch

        return lower_torch(module, tuple(input_shape), name, **self.target.lowering())

    def price_network(self, module, input_shape, name: str = "network"):
        """``FullPrediction`` (table sum and kernel breakdown) of a whole network; kernels the
        table lacks are measured first."""
        from ..table.fill import prepare

        net = self.lower(module, input_shape, name)
        prepared = prepare(net.kernels, self.target, self.schedules)
        self._fill(prepared)
        return self._predictor().predict(prepared)

    # ----------------------------------------------------------- measuring
    def measure_library(self, library: Path, input_shape, key: str = "network"):
        """``MeasureResult`` of a network library (``main`` of its Relax VM) timed end to end
        as chamtvm times every network (``table.networks.measure_at_nominal_speed``: the
        target's network evaluator at the device's nominal speed learnt in this table's
        folder; a library without the reference kernel, such as an exported one, is timed
        without that check)."""
        from ..lower.kernels import ArgSpec
        from ..table.networks import measure_at_nominal_speed

        if self.runner is None:
            raise RuntimeError("no runner: nothing can be measured")
        return measure_at_nominal_speed(
            lambda evaluator: self.runner.measure_network(Path(library), [ArgSpec(tuple(input_shape), "float32")],
                                                          evaluator, key=key),
            self.target, self.table.path.parent)

    def build_library(self, module, input_shape, path: Path, name: str = "network", reference: bool = False) -> Path:
        """Compile ``module`` with the target's pipeline and schedules into the library ``path``
        (through the disk cache of built libraries); ``reference``: with the reference kernel
        that measuring at the device's nominal speed times beside it (not for shipping)."""
        from ..measure.compile import compile_and_export_network

        net = self.lower(module, input_shape, name)
        compile_and_export_network(net.fused, self.target, Path(path), self.schedules, reference=reference)
        return Path(path)

    def measure_module(self, module, input_shape, key: str = "network"):
        """``MeasureResult`` of ``module`` compiled for the target (a measuring build: with the
        reference kernel) and timed end to end (:meth:`measure_library`)."""
        with tempfile.TemporaryDirectory(prefix="chamtvm-transform-") as tmp:
            lib = self.build_library(module, input_shape, Path(tmp) / "net.so", key, reference=True)
            return self.measure_library(lib, input_shape, key)


def measured_ms(res) -> dict:
    """Median, spread and samples (ms) of a ``MeasureResult`` (``latency_ms`` None and the
    ``error`` when it failed)."""
    import numpy as np

    from ..core.metrics import iqr_spread_pct

    if not res.ok:
        return {"latency_ms": None, "error": res.error}
    s = np.asarray(res.samples_us) / 1e3
    return {"latency_ms": float(np.median(s)), "spread_iqr_pct": float(iqr_spread_pct(s)),
            "repeat": len(s), "samples_ms": [round(float(x), 5) for x in s]}


def _probe(blocks: Sequence[tuple[object, tuple[int, ...]]]):
    """A module taking one input per distinct input shape and returning every block's output
    (copies of the blocks, eval mode), plus the input shapes."""
    import copy

    from torch import nn

    shapes = sorted({tuple(s) for _, s in blocks})
    index = {s: i for i, s in enumerate(shapes)}

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([copy.deepcopy(m).eval() for m, _ in blocks])
            self.where = [index[tuple(s)] for _, s in blocks]

        def forward(self, *xs):
            return tuple(b(xs[i]) for b, i in zip(self.blocks, self.where))

    return Probe().eval(), shapes

"""Latency of a network as a function of the kept width of each channel group, measured on
the target through TVM, inside the network (ALCS's piecewise-linear latency model).

What is measured is what deploys: the network, cut to given widths, is lowered by chamtvm's
one pipeline (``lower.network``: BatchNorm folded, operators fused), compiled as it deploys
(the target's schedules) and every call of it timed inside it (the VM instrument through the
runner: ``WidthProbe``'s ``timing="network"``), so a layer is priced together with the
neighbours it is fused with and runs beside, at their widths. Runners that cannot time calls
inside a network take each fused kernel's row of the target's table instead (``table.fill``).

Model. The network's ``main`` calls its kernels in a fixed order (a *call position* is one
call). Cutting widths changes the shapes, not the order or the fusion, so position ``p`` is
the same operator chain at every width. Position ``p`` touches at most a few groups (a 1x1
convolution: the group it reads and the group it writes). Its time is

* a constant ``T_p`` when it touches no group;
* ``f_pa(w_a)`` when it touches one group ``a``: piecewise-linear over the measured widths;
* ``c + (f_pa(w_a) - c) (f_pb(w_b) - c) / (T_p - c)`` when it touches two: exact for a cost
  ``c + k w_a w_b`` (a convolution's work is bilinear in its input and output channels), with
  ``f_pa`` measured with ``b`` at full width and vice versa; the offset ``c`` is fitted on
  the *diagonal* networks (every group cut at once).

The layer latency of group ``g`` in the ALCS sense is ``L_g(w) = sum of f_pg(w)`` over the
positions touching ``g``. The network's end-to-end latency is ``alpha * sum_p t_p + beta``,
fitted on the unpruned and the diagonal networks measured end to end (the instrument's
windows miss part of the VM's own work between calls, kernels timed one by one also the cache
effects between kernels).

Measurement design. One lowering with every group at a width no other tensor has tells
which positions touch which group. Groups that share a position get different colours;
per colour and grid level one network (that colour's groups cut to their level-th grid
width, the rest at full width) gives every ``f_pg`` point of the colour at once. So a model
of ``n`` widths costs ``2 + n colours + d`` lowerings whatever the number of layers, ``d``
the diagonal networks (at most ``n``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Sequence

import numpy as np

from ...lower.kernels import Kernel
from ...lower.network import LoweredNetwork, lower_torch
from ...measure.base import Runner
from ...table.fill import PreparedKernel, fill_table, prepare
from ...core.versions import tvm_version
from ...table.networks import build_key, ensure_measured, network_table
from ...table.store import LatencyTable, failed_row, ok_row
from ...targets.spec import TargetSpec
from ...tuning.schedules import ScheduleSource
from .graph import ChannelGraph
from .pwl import PiecewiseLinear
from .surgery import select_channels

if TYPE_CHECKING:
    import torch

STATISTIC = "runtime_us_p50"
Config = tuple[tuple[str, int], ...]  # sorted (group, width) pairs that differ from the full network


class WidthLatencyError(RuntimeError):
    """The width-latency model cannot be built (fusion changed with the widths, a kernel
    failed to measure, ...); the message says which."""


def lane_widths(width: int, granularity: int, min_keep: float = 0.25) -> list[int]:
    """Kept widths allowed for a group of ``width`` channels: multiples of ``granularity``
    from ``ceil(min_keep * width)`` (at least one group of ``granularity``) below ``width``,
    and ``width`` itself (a group narrower than ``granularity`` keeps its width)."""
    if granularity < 1 or width < 1:
        raise ValueError(f"width and granularity must be positive, got {width}, {granularity}")
    if not 0 < min_keep <= 1:
        raise ValueError(f"min_keep must be in (0, 1], got {min_keep}")
    low = max(granularity, math.ceil(min_keep * width))
    first = -(-low // granularity) * granularity
    return [w for w in range(first, width, granularity)] + [width]


def grid_widths(candidates: Sequence[int], n: int) -> list[int]:
    """At most ``n`` widths spread evenly over the sorted ``candidates`` below the full width
    (the last candidate), the narrowest always included: the widths that get measured."""
    below = sorted(candidates)[:-1]
    if n < 1 or not below:
        return []
    if len(below) <= n:
        return below
    idx = np.unique(np.round(np.linspace(0, len(below) - 1, n)).astype(int))
    return [below[i] for i in idx]


# ---------------------------------------------------------------- lowering one width config
def call_sequence(fused_mod) -> list[str]:
    """Names of the PrimFuncs ``main`` calls, in call order (one entry per call)."""
    from tvm import relax

    names: list[str] = []

    def visit(expr):
        if isinstance(expr, relax.Call) and getattr(expr.op, "name", None) == "relax.call_tir":
            names.append(expr.args[0].name_hint)

    for block in fused_mod["main"].body.blocks:
        for binding in block.bindings:
            visit(binding.value)
    return names


@dataclass
class Layout:
    """One lowered width configuration: per call position its kernel (``Kernel``, shared by
    positions calling the same PrimFunc) and the name of the PrimFunc it calls (``symbols``:
    what the compiled network calls there), and the lowered network."""

    config: Config
    kernels: list[Kernel]
    net: LoweredNetwork
    symbols: list[str] = field(default_factory=list)

    @property
    def signature(self) -> list[str]:
        """Operator chain per position, without the numbers fusion appends to names."""
        return [re.sub(r"\d+", "", k.name) for k in self.kernels]


FRONTENDS = ("fx", "export")
TIMINGS = ("network", "table")


def _lower_fx(model, input_shape, name: str, lowering: dict | None = None) -> LoweredNetwork:
    """Lower through ``torch.fx`` and TVM's fx importer: the same fusion pipeline as
    ``lower.network.lower_torch`` (BatchNorm folded in torch first), about 3x faster than
    ``torch.export`` + its importer."""
    import torch
    from tvm.relax.frontend.torch import from_fx

    from ...lower.kernels import fold_batchnorm
    from ...lower.network import lower_relax

    with torch.no_grad():
        gm = torch.fx.symbolic_trace(fold_batchnorm(model))
        mod = from_fx(gm, [(list(input_shape), "float32")], unwrap_unit_return_tuple=True)
    return lower_relax(mod, name, **(lowering or {}))


def lower_layout(model: "torch.nn.Module", graph: ChannelGraph, config: Config, frontend: str = "export",
                 lowering: dict | None = None) -> Layout:
    """Lower ``model`` cut (or widened, by repeating channels) to the widths of ``config``;
    ``frontend``: ``export`` (``lower.network.lower_torch``, the deployment path) or ``fx``
    (see :func:`_lower_fx`; ``WidthProbe`` uses it only where it gives the same kernels);
    ``lowering``: the target's (``TargetSpec.lowering``)."""
    from tvm import tirx

    from ...lower.kernels import kernel_hash

    width = graph.widths
    keep = {g: [i % width[g] for i in range(w)] for g, w in config}
    cut = select_channels(model, graph, keep) if keep else model
    name = "prune-" + config_label(config)
    net = _lower_fx(cut, graph.input_shape, name, lowering) if frontend == "fx" else \
        lower_torch(cut, graph.input_shape, name=name, **(lowering or {}))
    by_hash = {k.struct_hash: k for k in net.kernels}
    hash_of = {gv.name_hint: kernel_hash(f) for gv, f in net.fused.functions.items() if isinstance(f, tirx.PrimFunc)}
    calls = call_sequence(net.fused)
    return Layout(config, [by_hash[hash_of[name]] for name in calls], net, calls)


def same_kernels(a: Layout, b: Layout) -> bool:
    """True when two lowerings call the same operator chains with the same argument shapes at
    every position (kernels that can differ only in the order of commutative operands)."""
    return a.signature == b.signature and all(ka.args == kb.args for ka, kb in zip(a.kernels, b.kernels))


def config_label(config: Config) -> str:
    if not config:
        return "full"
    return hashlib.sha1(json.dumps(list(config)).encode()).hexdigest()[:10]


def make_config(widths: Mapping[str, int], full: Mapping[str, int]) -> Config:
    """The canonical config of ``widths`` (only the groups cut from their full width)."""
    return tuple(sorted((g, int(w)) for g, w in widths.items() if int(w) != full[g]))


# ------------------------------------------------------------------------------ the model
@dataclass
class PositionModel:
    """The time of one call position as a function of the widths of the groups it touches."""

    signature: str
    groups: tuple[str, ...]
    full_us: float
    curves: dict[str, PiecewiseLinear] = field(default_factory=dict)
    offset_us: float = 0.0

    def predict_us(self, widths: Mapping[str, float]) -> float:
        if not self.groups:
            return self.full_us
        if len(self.groups) == 1:
            g = self.groups[0]
            return float(self.curves[g].predict(widths[g]))
        c, t = self.offset_us, self.full_us
        out = t - c
        for g in self.groups:
            out *= (float(self.curves[g].predict(widths[g])) - c) / (t - c)
        return c + out

    def to_dict(self) -> dict:
        return {"signature": self.signature, "groups": list(self.groups), "full_us": self.full_us,
                "curves": {g: c.to_dict() for g, c in self.curves.items()}, "offset_us": self.offset_us}

    @classmethod
    def from_dict(cls, d: dict) -> "PositionModel":
        return cls(d["signature"], tuple(d["groups"]), d["full_us"],
                   {g: PiecewiseLinear.from_dict(c) for g, c in d["curves"].items()}, d["offset_us"])


@dataclass
class WidthLatencyModel:
    """Network latency as a function of every group's kept width (see the module docstring).

    ``full``: the unpruned width per group; ``positions``: one model per call position;
    ``alpha``/``beta_us``: end-to-end = alpha * kernel sum + beta; ``calibration``: the
    networks that were measured end to end for it (kernel sum, measured, widths)."""

    target: str
    full: dict[str, int]
    positions: list[PositionModel]
    alpha: float = 1.0
    beta_us: float = 0.0
    calibration: list[dict] = field(default_factory=list)
    emulated: bool = False
    frontend: str = "export"
    grid: dict[str, list[int]] = field(default_factory=dict)  # the widths measured per group
    timing: str = "table"  # where the call times came from (``WidthProbe``'s ``timing``)

    def kernel_sum_us(self, widths: Mapping[str, float] | None = None) -> float:
        """Sum of the modelled kernel times (us) at ``widths`` (missing groups: full width)."""
        w = {**self.full, **(widths or {})}
        return float(sum(p.predict_us(w) for p in self.positions))

    def predict_ms(self, widths: Mapping[str, float] | None = None) -> float:
        """Predicted end-to-end latency (ms) at ``widths``."""
        return (self.alpha * self.kernel_sum_us(widths) + self.beta_us) / 1e3

    def layer_us(self, group: str, width: float) -> float:
        """ALCS's layer latency of ``group`` at ``width`` (others at full width): the time of
        every call position that touches the group, in us."""
        w = {**self.full, group: width}
        return float(sum(p.predict_us(w) for p in self.positions if group in p.groups))

    def layer_leave_one_out(self, group: str) -> list[dict]:
        """The interpolation checked on the model's own measurements: per measured width of
        ``group`` strictly between its narrowest and its full width, the layer latency measured
        there (us) and the one interpolated from the other measured widths without it, with
        the error (%). These are lane multiples (the widths pruning chooses) that the check's
        interpolation did not see; widths between lane multiples are another matter (padding)."""
        positions = [p for p in self.positions if group in p.groups]
        if not positions:
            return []
        knots = sorted(set.intersection(*(set(p.curves[group].knots_.tolist()) for p in positions)))
        out = []
        for w in knots[1:-1]:
            measured = sum(float(p.curves[group].predict(w)) for p in positions)
            predicted = 0.0
            for p in positions:
                keep = p.curves[group].knots_ != w
                predicted += float(PiecewiseLinear().fit(p.curves[group].knots_[keep],
                                                         p.curves[group].values_[keep]).predict(w))
            out.append({"group": group, "width": int(w), "measured_us": measured, "predicted_us": predicted,
                        "error_pct": 100 * (predicted - measured) / measured})
        return out

    @property
    def calibration_error_pct(self) -> float:
        """Largest |end-to-end model - measured| / measured over the calibration networks (%)."""
        errs = [abs(self.alpha * c["kernel_sum_us"] + self.beta_us - c["measured_us"]) / c["measured_us"]
                for c in self.calibration]
        return 100 * max(errs) if errs else 0.0

    def to_dict(self) -> dict:
        return {"target": self.target, "full": self.full, "alpha": self.alpha, "beta_us": self.beta_us,
                "emulated": self.emulated, "frontend": self.frontend, "grid": self.grid,
                "timing": self.timing, "calibration": self.calibration,
                "positions": [p.to_dict() for p in self.positions]}

    @classmethod
    def from_dict(cls, d: dict) -> "WidthLatencyModel":
        return cls(d["target"], dict(d["full"]), [PositionModel.from_dict(p) for p in d["positions"]],
                   d["alpha"], d["beta_us"], d.get("calibration", []), d.get("emulated", False),
                   d.get("frontend", "export"), d.get("grid", {}), d.get("timing", "table"))


def fit_offset(full_us: float, points: Sequence[tuple[float, float, float]]) -> float:
    """The offset ``c`` of a two-group position from ``(f_a, f_b, measured)`` diagonal points:
    the ``c`` in ``[0, min)`` minimising the squared relative error of
    ``c + (f_a - c)(f_b - c)/(T - c)`` (0, the pure product, without points; points measured
    at 0 are left out)."""
    points = [p for p in points if p[2] > 0]  # a call the pipeline elided costs nothing: no ratio
    if not points:
        return 0.0
    fa, fb, m = (np.asarray(x, dtype=float) for x in zip(*points))
    hi = 0.98 * min(float(fa.min()), float(fb.min()), full_us)
    if hi <= 0:
        return 0.0
    cs = np.linspace(0.0, hi, 99)
    err = [np.sum(((c + (fa - c) * (fb - c) / (full_us - c)) / m - 1) ** 2) for c in cs]
    return float(cs[int(np.argmin(err))])


# ------------------------------------------------------------------------- measuring
class WidthProbe:
    """Lowers width configurations of one network, measures their kernels into the target's
    table (and, where asked, the networks end to end into its network journal), and keeps
    every lowering of this session (one lowering per configuration).

    ``frontend="auto"`` lowers the unpruned network both through ``torch.export`` (the
    deployment path) and through ``torch.fx``; when every call position has the same operator
    chain and argument shapes both ways, the other widths are lowered through ``torch.fx``
    (3x faster), else through ``torch.export`` (``self.frontend`` says which).

    ``timing``: where a call position's time comes from.

    * ``"network"``: every call of the configuration timed inside that very network (its
      measuring build, the VM instrument: ``runner.measure_batch_network``, at the device's
      nominal speed), journaled per configuration in ``<luts>/<target>.width-calls.jsonl``.
      A kernel then costs what it costs between the neighbours it runs with in *this* network
      (caches, the previous kernel's output still warm), which is what the network adds up.
    * ``"table"``: the kernel's row in the target's kernel table (timed alone or inside a
      batch network of unrelated kernels, as the table times every kernel).
    * ``"auto"`` (default): ``"network"`` where the runner can time calls inside a network,
      else ``"table"``.

    ``benchmarks/bench_prune_insitu.py`` measured why: on x86 the table rows of the pruning
    benchmark's networks did not add up to those networks where their in-network calls did."""

    def __init__(self, model: "torch.nn.Module", graph: ChannelGraph, target: TargetSpec,
                 table: LatencyTable, runner: Runner, schedules: ScheduleSource | None = None,
                 luts_dir: str | Path | None = None, log: Callable[[str], None] | None = None,
                 frontend: str = "auto", timing: str = "auto"):
        if frontend not in (*FRONTENDS, "auto"):
            raise ValueError(f"frontend must be one of {FRONTENDS} or 'auto', got {frontend!r}")
        if timing not in (*TIMINGS, "auto"):
            raise ValueError(f"timing must be one of {TIMINGS} or 'auto', got {timing!r}")
        self.frontend = frontend
        self.model, self.graph, self.target = model, graph, target
        self.table, self.runner = table, runner
        self.timing = timing if timing != "auto" else ("network" if runner.times_in_network() else "table")
        self.schedules = schedules or ScheduleSource(target)
        self.luts_dir = Path(luts_dir) if luts_dir else table.path.parent
        self.nets_table = network_table(target, self.luts_dir)
        self.calls_table = LatencyTable(self.luts_dir / f"{target.name}.width-calls.jsonl").load() \
            if self.timing == "network" else None
        self.log = log or (lambda msg: None)
        self.layouts: dict[Config, Layout] = {}
        self._prepared: dict[str, PreparedKernel] = {}
        self.model_digest = _structure_digest(model, graph)

    def layout(self, config: Config) -> Layout:
        if self.frontend == "auto":
            deployed = lower_layout(self.model, self.graph, (), "export", self.target.lowering())
            fast = lower_layout(self.model, self.graph, (), "fx", self.target.lowering())
            self.frontend = "fx" if same_kernels(deployed, fast) else "export"
            self.log(f"width configurations are lowered through torch.{self.frontend}")
            self.layouts[()] = deployed
        if config not in self.layouts:
            lay = lower_layout(self.model, self.graph, config, self.frontend, self.target.lowering())
            full = self.layouts.get(())
            if full is not None and lay.signature != full.signature:
                raise WidthLatencyError(
                    f"the network's fused kernels change with the widths {dict(config)}: "
                    f"{len(lay.kernels)} calls instead of {len(full.kernels)}; the width model needs "
                    f"the same operator chain at every width")
            self.layouts[config] = lay
        return self.layouts[config]

    def prepared(self, kernel: Kernel) -> PreparedKernel:
        if kernel.struct_hash not in self._prepared:
            self._prepared[kernel.struct_hash] = prepare([kernel], self.target, self.schedules)[0]
        return self._prepared[kernel.struct_hash]

    def measure(self, configs: Iterable[Config], progress: Callable[[int], None] | None = None) -> None:
        """Lower every configuration and measure what it lacks: with ``timing="network"`` the
        configurations not yet journaled, call by call inside themselves (``progress(1)`` per
        configuration); with ``"table"`` the kernels the table lacks (``progress(n)`` per
        kernels)."""
        configs = list(configs)
        if self.timing == "network":
            self._measure_in_network(configs, progress)
            return
        todo: dict[str, PreparedKernel] = {}
        for i, c in enumerate(configs):
            self.log(f"lowering width configuration {i + 1}/{len(configs)}")
            for k in self.layout(c).kernels:
                p = self.prepared(k)
                if p.key not in self.table:
                    todo[p.key] = p
        if todo:
            self.log(f"measuring {len(todo)} kernels on {self.runner.label}")
            fill_table(list(todo.values()), self.table, self.runner, self.target, progress=progress)
            self.table.load()

    # ------------------------------------------------------------ timing="network"
    def calls_key(self, config: Config) -> str:
        """The journal key of ``config``'s in-network call times: the network's structure, the
        widths and the exact kernels (schedules included) it compiles to."""
        prepared = [self.prepared(k) for k in {k.struct_hash: k for k in self.layout(config).kernels}.values()]
        return build_key(self.target, {"model": self.model_digest, "widths": dict(config), "timing": "in_network"},
                         prepared)

    def _measure_in_network(self, configs: Sequence[Config], progress: Callable[[int], None] | None) -> None:
        from dataclasses import replace

        from ...measure.base import KernelItem
        from ...measure.network import build_for_measuring
        from ...table.reference import ReferenceBaseline

        todo = [c for c in dict.fromkeys(configs) if self.calls_table.get(self.calls_key(c)) is None]
        baseline = ReferenceBaseline(self.luts_dir, self.target.name, self.target.fingerprint)
        for i, config in enumerate(todo):
            lay = self.layout(config)
            self.log(f"timing width configuration {i + 1}/{len(todo)} call by call inside itself "
                     f"({len(lay.symbols)} calls) on {self.runner.label}")
            base = {"model": self.model_digest, "widths": dict(config), "target": self.target.name,
                    "target_fingerprint": self.target.fingerprint, "device_label": self.runner.label,
                    "emulated": self.runner.emulated, "symbols": lay.symbols, "tvm_version": tvm_version()}
            with tempfile.TemporaryDirectory(prefix="chamtvm-width-") as tmp:
                lib = Path(tmp) / "net.so"
                error = build_for_measuring(lay.net, self.target, self.schedules, lib)
                results = {}
                if error is None:
                    evaluator = replace(self.target.evaluator, reference_baseline_us=baseline.baseline_us("vm"),
                                        slow_factor=baseline.slow_factor("vm"))
                    items = [KernelItem(s, s, ()) for s in dict.fromkeys(lay.symbols)]
                    results = {r.key: r for r in self.runner.measure_batch_network(lib, items, lay.net.inputs,
                                                                                   evaluator)}
            failed = [f"{s}: {r.error}" for s, r in results.items() if not r.ok]
            missing = [s for s in dict.fromkeys(lay.symbols) if s not in results]
            if error is None and (failed or missing):
                error = "; ".join(failed) or f"no result for {', '.join(missing)}"
            if error is not None:
                self.calls_table.append([failed_row(self.calls_key(config), base, error)])
            else:
                first = next(iter(results.values()))
                if self.target.evaluator.nominal_tolerance is not None:  # as table.fill learns it
                    baseline.learn("vm", first.extra.get("reference_p10_us"))
                    baseline.learn_slow("vm", first.extra.get("slow_ratio"))
                calls = [float(results[s].median_us) for s in lay.symbols]
                base.update({"calls_us": calls, "overhead_us": first.extra.get("overhead_us"),
                             **{k: first.extra[k] for k in ("reference_us", "slow_ratio", "nominal", "other_cores")
                                if k in first.extra}})
                self.calls_table.append([ok_row(self.calls_key(config), base, [sum(calls)], 1)])
            if progress:
                progress(1)

    def _rows(self, config: Config) -> list[dict | None]:
        """Per call position of ``config``, its kernel's table row (None: not measured)."""
        return [self.table.get(self.prepared(k).key) for k in self.layout(config).kernels]

    def times_us(self, config: Config) -> list[float]:
        """Per call position, its time (us) in ``config`` (``timing``: inside ``config``'s own
        network, or its kernel's table row)."""
        if self.timing == "network":
            key = self.calls_key(config)
            row = self.calls_table.get(key)
            if row is None:
                failed = self.calls_table.failed(key)
                why = failed["error"] if failed else "not measured"
                raise WidthLatencyError(f"the calls of width configuration {dict(config)} have no times inside "
                                        f"the network on {self.target.name}: {why}")
            return [float(t) for t in row["calls_us"]]
        out = []
        for k, row in zip(self.layout(config).kernels, self._rows(config)):
            if row is None:
                failed = self.table.failed(self.prepared(k).key)
                why = failed["error"] if failed else "not measured"
                raise WidthLatencyError(f"kernel {k.name} of width configuration {dict(config)} has no "
                                        f"time on {self.target.name}: {why}")
            out.append(float(row[STATISTIC]))
        return out

    def measure_network_us(self, config: Config) -> dict | None:
        """The end-to-end row of ``config`` (measured now unless the journal has it; None if
        measuring failed). The row records the measured kernel sum when the table has every
        kernel of ``config``."""
        lay = self.layout(config)
        prepared = [self.prepared(k) for k in {k.struct_hash: k for k in lay.kernels}.values()]
        try:
            kernel_sum = sum(self.times_us(config))
        except WidthLatencyError:
            kernel_sum = None
        return ensure_measured(lay.net, prepared, self.target, self.runner, self.schedules, self.nets_table,
                               {"model": self.model_digest, "widths": dict(config)}, kernel_sum)

    def network_us(self, config: Config) -> float:
        """End-to-end latency (us, median) of ``config`` (:meth:`measure_network_us`); a failed
        measurement is a ``WidthLatencyError``."""
        row = self.measure_network_us(config)
        if row is None or row.get("status", "ok") != "ok" or STATISTIC not in row:
            raise WidthLatencyError(f"measuring the network at widths {dict(config)} end to end failed: "
                                    f"{(row or {}).get('error', 'no result')}")
        return float(row[STATISTIC])


    def time_network_now(self, config: Config) -> float:
        """End-to-end latency (us, median) of ``config`` timed now, as :meth:`network_us` times
        it but never read from the network journal (a confirming timing: ``select_measured``);
        a failed measurement is a ``WidthLatencyError``."""
        from ...measure.network import measure_network
        from ...table.networks import measure_at_nominal_speed

        lay = self.layout(config)
        res = measure_at_nominal_speed(lambda ev: measure_network(lay.net, self.target, self.runner, self.schedules,
                                                                  evaluator=ev), self.target, self.luts_dir)
        if not res.ok:
            raise WidthLatencyError(f"timing the network at widths {dict(config)} end to end failed: {res.error}")
        return float(res.median_us)


def _structure_digest(model, graph: ChannelGraph) -> str:
    """Identity of a network's structure (layers and shapes, not weights)."""
    parts = [repr(graph.input_shape)]
    parts += [f"{n}:{type(m).__name__}:{getattr(m, 'stride', '')}:{getattr(m, 'padding', '')}"
              for n, m in model.named_modules()]
    parts += [f"{n}:{tuple(p.shape)}" for n, p in model.named_parameters()]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


@dataclass
class MeasurementPlan:
    """The configurations a width model measures: ``grid`` widths per group, the probe
    widths that tell which positions touch which group, the colour of each group."""

    grid: dict[str, list[int]]
    colours: dict[str, int] = field(default_factory=dict)
    touches: list[tuple[str, ...]] = field(default_factory=list)
    diagonal: list[Config] | None = None  # the diagonal networks measured (None: every level)
    measured: list[Config] | None = None  # the colour networks measured (None: those of ``grid``)

    def colour_configs(self, full: Mapping[str, int], grid: Mapping[str, list[int]] | None = None) -> list[Config]:
        """Per colour and level: that colour's groups at their level-th width of ``grid``."""
        grid = self.grid if grid is None else grid
        levels = max((len(v) for v in grid.values()), default=0)
        out = []
        for colour in sorted(set(self.colours.values())):
            for i in range(levels):
                cfg = {g: ws[i] for g, ws in grid.items() if self.colours[g] == colour and i < len(ws)}
                if cfg:
                    out.append(make_config(cfg, full))
        return list(dict.fromkeys(out))

    def diagonal_configs(self, full: Mapping[str, int]) -> list[Config]:
        """Per level: every group at its level-th grid width at once."""
        levels = max((len(v) for v in self.grid.values()), default=0)
        return [make_config({g: ws[i] for g, ws in self.grid.items() if i < len(ws)}, full) for i in range(levels)]


def probe_widths(graph: ChannelGraph, taken: set[int]) -> dict[str, int]:
    """A width per group, at least its own, that no other group and no dimension in ``taken``
    (every dimension of the unpruned network's kernels) has."""
    out, used = {}, set(taken) | {0, 1}
    for g in graph.groups:
        w = g.width + 1
        while w in used:
            w += 1
        out[g.name] = w
        used.add(w)
    return out


def plan_measurement(probe: WidthProbe, grid: Mapping[str, list[int]]) -> MeasurementPlan:
    """Which positions touch which group (one probe lowering), and colours such that no
    position touches two groups of one colour."""
    full = probe.graph.widths
    base = probe.layout(())
    taken = {d for k in base.kernels for a in k.args for d in a.shape}
    ids = probe_widths(probe.graph, taken)
    lay = probe.layout(make_config(ids, full))
    by_width = {w: g for g, w in ids.items()}
    touches = [tuple(sorted({by_width[d] for a in k.args for d in a.shape if d in by_width},
                            key=list(full).index)) for k in lay.kernels]
    neighbours: dict[str, set[str]] = {g: set() for g in full}
    for t in touches:
        for g in t:
            neighbours[g] |= set(t) - {g}
    colours: dict[str, int] = {}
    for g in full:  # greedy colouring in network order
        used = {colours[n] for n in neighbours[g] if n in colours}
        colours[g] = next(c for c in range(len(full) + 1) if c not in used)
    return MeasurementPlan({g: list(v) for g, v in grid.items()}, colours, touches)


def fit_width_model(probe: WidthProbe, plan: MeasurementPlan, e2e_configs: Sequence[Config] = (),
                    calibrate_now: bool = True) -> WidthLatencyModel:
    """Fit the model from measured configurations (``probe.measure`` must have run on the
    full network, the colour networks and the diagonal networks); ``e2e_configs`` are measured
    end to end for the calibration (the full network always is; ``calibrate_now=False``:
    no calibration, alpha 1 and beta 0)."""
    full = probe.graph.widths
    base = probe.layout(())
    t_full = probe.times_us(())
    configs = (plan.measured if plan.measured is not None else plan.colour_configs(full)) + \
        (plan.diagonal if plan.diagonal is not None else plan.diagonal_configs(full))
    times = {c: probe.times_us(c) for c in configs}
    positions = []
    for p, groups in enumerate(plan.touches):
        groups = tuple(g for g in groups if g in plan.grid and plan.grid[g])
        pm = PositionModel(base.signature[p], groups, t_full[p])
        for g in groups:
            pts = [(full[g], t_full[p])]
            for c in configs:
                cut = dict(c)
                if cut.get(g) is not None and all(o not in cut for o in groups if o != g):
                    pts.append((cut[g], times[c][p]))
            pm.curves[g] = PiecewiseLinear().fit(*zip(*pts))
        if len(groups) >= 2:
            diag = []
            for c in configs:
                cut = dict(c)
                if all(g in cut for g in groups):
                    f = [float(pm.curves[g].predict(cut[g])) for g in groups]
                    if len(groups) == 2:
                        diag.append((f[0], f[1], times[c][p]))
            pm.offset_us = fit_offset(t_full[p], diag)
        positions.append(pm)
    model = WidthLatencyModel(probe.target.name, dict(full), positions, emulated=probe.runner.emulated,
                              frontend=probe.frontend, grid={g: list(ws) for g, ws in plan.grid.items()},
                              timing=probe.timing)
    if calibrate_now:
        calibrate(model, probe, [()] + [c for c in e2e_configs if c])
    return model


def calibrate(model: WidthLatencyModel, probe: WidthProbe, configs: Sequence[Config]) -> None:
    """Measure ``configs`` end to end and fit ``alpha``, ``beta`` (least squares; one
    network: a pure scale)."""
    rows = []
    for c in dict.fromkeys(configs):
        rows.append({"widths": dict(c), "kernel_sum_us": sum(probe.times_us(c)),
                     "modelled_sum_us": model.kernel_sum_us(dict(c)), "measured_us": probe.network_us(c)})
    x = np.array([r["kernel_sum_us"] for r in rows])
    y = np.array([r["measured_us"] for r in rows])
    if len(rows) >= 2 and np.ptp(x) > 0:
        alpha, beta = np.polyfit(x, y, 1)
        if alpha <= 0:
            alpha, beta = float(y.sum() / x.sum()), 0.0
    else:
        alpha, beta = float(y.sum() / x.sum()), 0.0
    model.alpha, model.beta_us, model.calibration = float(alpha), float(beta), rows


def refine_widths(model: WidthLatencyModel, grid: Mapping[str, list[int]], candidates: Mapping[str, Sequence[int]],
                  extra: int) -> dict[str, list[int]]:
    """Up to ``extra`` more widths per group, from its ``candidates``, where its layer latency
    (``model``, fitted on ``grid``) can err most between two measured widths: the segment whose
    jump is largest relative to its lower end (a monotone curve inside it can be that far, as
    a share of its value, from the line joining its ends). Each goes to the candidate nearest
    the segment's middle, which is then split (its halves counted with half the jump). Cliffs
    (a working set leaving a cache, a schedule changing) are where interpolation errs; this
    measures them more finely. :func:`refine_adaptively` calls it one width at a time."""
    out = {}
    for g, ws in grid.items():
        if not ws or extra <= 0:
            out[g] = []
            continue
        pts = sorted(set(ws) | {model.full[g]})
        value = {w: model.layer_us(g, w) for w in pts}
        segments = [(abs(value[b] - value[a]) / max(min(value[a], value[b]), 1e-9), a, b) for a, b in zip(pts, pts[1:])]
        new: list[int] = []
        for _ in range(extra):
            for seg in sorted(segments, reverse=True):
                jump, a, b = seg
                inside = [w for w in candidates.get(g, ()) if a < w < b and w not in new]
                if inside:
                    w = min(inside, key=lambda x: abs(x - (a + b) / 2))
                    segments.remove(seg)
                    segments += [(jump / 2, a, w), (jump / 2, w, b)]
                    new.append(w)
                    break
            else:
                break
        out[g] = sorted(new)
    return out


def refine_adaptively(grid: Mapping[str, list[int]], candidates: Mapping[str, Sequence[int]], extra: int,
                      fit: Callable[[dict[str, list[int]]], WidthLatencyModel],
                      measure: Callable[[dict[str, list[int]]], None]) -> dict[str, list[int]]:
    """Add up to ``extra`` widths per group, one per round: fit the model on the widths
    measured so far (``fit(grid)``), pick each group's next width with :func:`refine_widths`,
    measure them (``measure(new widths per group)``), and fit again. A cliff hidden inside a
    segment that looked linear shows once its middle is measured, and the next round splits
    the half it lies in; picking all widths from the first fit cannot. Returns the grid with
    the widths added."""
    grid = {g: sorted(ws) for g, ws in grid.items()}
    for _ in range(max(0, extra)):
        more = {g: ws for g, ws in refine_widths(fit(grid), grid, candidates, 1).items() if ws}
        if not more:
            break
        measure(more)
        grid = {g: sorted(set(ws) | set(more.get(g, ()))) for g, ws in grid.items()}
    return grid


def build_width_model(model: "torch.nn.Module", graph: ChannelGraph, target: TargetSpec, table: LatencyTable,
                      runner: Runner, grid: Mapping[str, list[int]], schedules: ScheduleSource | None = None,
                      luts_dir: str | Path | None = None, calibration_networks: int | None = None,
                      refine: Mapping[str, Sequence[int]] | None = None, extra_widths: int = 0,
                      frontend: str = "auto", log: Callable[[str], None] | None = None,
                      progress: Callable[[int], None] | None = None) -> tuple[WidthLatencyModel, WidthProbe]:
    """Measure and fit the width-latency model of ``model`` on ``target`` at the ``grid``
    widths of each group (groups with an empty grid keep their width).

    The end-to-end calibration measures the unpruned network and ``calibration_networks - 1``
    diagonal networks spread over the grid's levels (None: every level); the pair offsets are
    fitted on the same diagonal networks. With ``refine`` (candidate widths per group) and
    ``extra_widths``, up to ``extra_widths`` more widths per group are measured one round at a
    time where the layer latency fitted so far can err most (:func:`refine_adaptively`). Returns the model and the
    probe (its lowerings and times, for checks)."""
    probe = WidthProbe(model, graph, target, table, runner, schedules, luts_dir, log, frontend)
    plan = plan_measurement(probe, grid)
    full = graph.widths
    diagonal = plan.diagonal_configs(full)
    if calibration_networks is not None:  # only the diagonal networks the calibration measures
        k = max(0, min(len(diagonal), calibration_networks - 1))
        diagonal = [diagonal[int(i)] for i in np.unique(np.round(np.linspace(0, len(diagonal) - 1, k)))] if k else []
    plan.diagonal = diagonal
    plan.measured = plan.colour_configs(full)
    probe.measure([(), *plan.measured, *diagonal], progress)
    if refine is not None and extra_widths > 0:
        def fit(grid: dict[str, list[int]]) -> WidthLatencyModel:
            plan.grid = grid
            return fit_width_model(probe, plan, calibrate_now=False)

        def measure(more: dict[str, list[int]]) -> None:
            configs = plan.colour_configs(full, more)
            if log:
                log(f"refining: {sum(map(len, more.values()))} more widths where the layer latency can err most")
            probe.measure(configs, progress)
            plan.measured = plan.measured + [c for c in configs if c not in plan.measured]

        plan.grid = refine_adaptively(plan.grid, refine, extra_widths, fit, measure)
    wm = fit_width_model(probe, plan, diagonal)
    return wm, probe

"""Kernels timed inside real networks of a space: the *in-network table*.

The kernel table (``table.fill``) times every kernel inside a *batch network* of up to 48
kernels. For a kernel tuned far enough that its weights' trip from memory is a large share of
its time, a batch network runs it colder than a small network of the space does, and its row
overestimates it (``docs/latency-fidelity.md``, *Heavily tuned picks*). Timed inside a real
network, call by call with the VM instrument, the same kernels sum to within a few per cent
of the network.

So networks of a space can be timed call by call as well as end to end: each call of a
network's kernel is an observation of that kernel *in a network*, appended to
``<table>.in_network.jsonl`` (one row per kernel and network build: ``key`` =
``<kernel key>@<network build key>``; ``kernel_key``, ``network_key``, the samples). A network
already timed this way is not timed again. :class:`InNetworkTable` is the kernel table as a
predictor reads it, with each kernel that has in-network rows priced by their median.

In: lowered networks with their prepared kernels (``table.fill.prepare``), a runner that times
calls inside a network (``Runner.times_in_network``). Out: rows; the view.
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ..lower.kernels import kernel_hash
from ..measure.base import KernelBatch, KernelItem, Runner
from ..measure.network import NetworkBuilds, shared_or_own
from ..targets.spec import TargetSpec
from .reference import ReferenceBaseline
from .store import LatencyTable, ok_row

SEPARATOR = "@"
MIN_OVERHEADS = 10  # an in-network time under this many times the instrument's own cost is not used


def in_network_table(table: LatencyTable) -> LatencyTable:
    """The in-network table beside ``table`` (``<target>.in_network.jsonl``), loaded."""
    stem = table.path.with_suffix("")
    return LatencyTable(Path(f"{stem}.in_network.jsonl")).load()


def network_items(net, prepared, network_key: str) -> list[KernelItem]:
    """One item per kernel function of ``net`` (its fused module's PrimFuncs whose structure is
    one of ``prepared``'s kernels), named as the network calls it; the item's key is
    ``<kernel key>@<network_key>@<function>`` (a kernel may be compiled into several
    functions of one network)."""
    import tvm

    by_hash = {p.kernel.struct_hash: p for p in prepared}
    items = []
    for gv, f in net.fused.functions.items():
        if isinstance(f, tvm.tirx.PrimFunc):
            p = by_hash.get(kernel_hash(f))
            if p is not None:
                items.append(KernelItem(SEPARATOR.join((p.key, network_key, gv.name_hint)), gv.name_hint,
                                        p.kernel.args))
    return items


def time_kernels_in_networks(nets: Sequence[tuple], target: TargetSpec, runner: Runner, schedules,
                             table: LatencyTable, insitu: LatencyTable, network_key: Callable,
                             log: Callable[[str], None] | None = None, builds: NetworkBuilds | None = None) -> int:
    """Time every kernel call of each network of ``nets`` inside it and append one row per kernel
    and network to ``insitu``; returns how many networks were timed now.

    ``nets``: ``(LoweredNetwork, prepared kernels, identity)`` tuples; ``network_key(net,
    prepared, identity)``: the network's build key (``table.networks.build_key``), so a network
    that already has rows is skipped. ``table``: the kernel table, whose learnt nominal speed
    (``table.reference``) the timings are held to. A network that fails to build or to run is
    said through ``log`` and left out (its kernels keep their batch-network rows). ``builds``: an
    open ``measure.network.NetworkBuilds`` holding the networks' libraries by build key (those
    the end-to-end timing compiled are not compiled again); default: compiled for this call."""
    if not runner.times_in_network():
        if log:
            log(f"{runner.label} cannot time kernels inside a network: no in-network rows")
        return 0
    done = {r.get("network_key") for r in insitu.rows()}
    todo = [(net, prepared, network_key(net, prepared, identity)) for net, prepared, identity, *_ in nets]
    todo = [t for t in todo if t[2] not in done]
    if not todo:
        return 0
    baseline = ReferenceBaseline(table.path.parent, target.name, target.fingerprint, log)
    evaluator = replace(target.evaluator, reference_baseline_us=baseline.baseline_us("vm"),
                        slow_factor=baseline.slow_factor("vm"))
    timed = 0
    with shared_or_own(builds) as held:
        def batches() -> Iterator[KernelBatch]:
            for net, prepared, key in todo:
                lib, error = held.library(key, net, target, schedules)
                items = tuple(network_items(net, prepared, key))
                if error or not items:
                    if log:
                        log(f"in-network timing of {net.name}: {error or 'no kernel of the table in it'}")
                    continue
                yield KernelBatch(lib, items, network_inputs=tuple(net.inputs), evaluator=evaluator)

        by_network: dict[str, dict[str, list]] = {}
        for res in runner.measure_batches(batches(), evaluator):
            kernel_key, net_key, _function = res.key.split(SEPARATOR)
            by_network.setdefault(net_key, {}).setdefault(kernel_key, []).append(res)
        for net_key, kernels in by_network.items():
            rows = []
            for kernel_key, results in kernels.items():
                ok = [r for r in results if r.ok and r.samples_us]
                if not ok:
                    if log:
                        log(f"in-network timing of {kernel_key} in {net_key}: {results[0].error}")
                    continue
                # several functions of one kernel in a network: each call is one observation
                samples = [statistics.median(r.samples_us) for r in ok]
                row = table.get(kernel_key) or {}
                base = {k: row.get(k) for k in ("name", "args", "flops", "bytes", "schedule", "struct_hash")}
                base.update({"kernel_key": kernel_key, "network_key": net_key, "functions": len(ok),
                             "timing": "in_network_real", **{k: v for k, v in ok[0].extra.items()
                                                             if k in ("overhead_us", "reference_us", "nominal",
                                                                      "other_cores", "runtime_threads")}})
                rows.append(ok_row(SEPARATOR.join((kernel_key, net_key)), base, samples, 1))
            if rows:
                insitu.append(rows)
                timed += 1
    return timed


class InNetworkTable:
    """``table`` as a predictor reads it (``get(key)``), with every kernel that has rows in
    ``insitu`` priced by the median of its in-network times (``runtime_us_p50``; the row says
    ``priced_from``: ``in_network`` and over how many networks). Everything else is
    ``table``'s.

    An in-network time is the instrument's window around the call minus the instrument's own
    cost, which in a real network is estimated on the VM's builtins (about 2 us per call on
    this machine, to within about a microsecond; a batch network carries empty kernel calls
    for it, a real network does not). So a time under ``MIN_OVERHEADS`` times that cost is
    mostly the estimate's error, and such a kernel keeps its batch-network row: at that size
    the two protocols differ by little."""

    def __init__(self, table: LatencyTable, insitu: LatencyTable):
        self._table = table
        self.insitu = insitu
        times: dict[str, list[float]] = {}
        for r in insitu.rows():
            if r["runtime_us_p50"] >= MIN_OVERHEADS * (r.get("overhead_us") or 0.0) and r["runtime_us_p50"] > 0:
                times.setdefault(r["kernel_key"], []).append(r["runtime_us_p50"])
        self._median = {k: float(statistics.median(v)) for k, v in times.items()}
        self._networks = {k: len(v) for k, v in times.items()}

    def get(self, key: str) -> dict | None:
        row = self._table.get(key)
        if row is None or key not in self._median:
            return row
        return {**row, "runtime_us_p50": self._median[key], "runtime_us_p50_batch_network": row["runtime_us_p50"],
                "priced_from": "in_network", "in_networks": self._networks[key]}

    def priced_in_network(self, keys) -> int:
        """How many of ``keys`` have in-network rows."""
        return sum(1 for k in keys if k in self._median)

    def __contains__(self, key: str) -> bool:
        return key in self._table

    def __getattr__(self, name):
        return getattr(self._table, name)

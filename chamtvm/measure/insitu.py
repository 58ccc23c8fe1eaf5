"""Kernels timed as they run inside a network: the Relax VM's instrument around every call.

``vm.set_instrument(cb)`` calls ``cb`` before and after every VM ``Call`` instruction (kernels
and ``vm.builtin.*`` alike). The callback takes a timestamp as the last thing it does before
a call and as the first thing after it, so the window it measures holds the call plus a fixed
part of the callback's own cost (argument conversion, entering Python). That fixed part is
measured in the same run on the VM's builtins (``vm.builtin.*``: allocation and checks whose
native work is well under a microsecond) and subtracted: ``overhead_us``.

In: a loaded VM executable module, a device, the input specs. Out: ``CallTimes``: per call
site (in call order) the symbol and the median window in microseconds over ``runs`` runs,
the per-call overhead estimate, and the instrumented and plain end-to-end times.

Standard library and TVM's runtime only: the file is also copied to emulated devices as
``chamtvm_insitu.py``, whose TVM is runtime-only (``from tvm import relax`` fails there). So
the device function drives the VM through the runtime's own packed functions (``RuntimeVM``),
and ``time_calls`` needs no more than ``vm["main"]`` and ``vm.set_instrument``, which
``tvm.relax.VirtualMachine`` has as well.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import statistics

BUILTIN_PREFIX = "vm.builtin."
EMPTY_PREFIX = "chamtvm_empty_"  # calibration calls of a batch network (lower.batchnet.EMPTY_PREFIX)
# builtins that take a few arguments and do almost no native work
ARG_BUILTINS = ("vm.builtin.match_shape", "vm.builtin.check_tensor_info")
# what an instrument returns to let the call run (TVM's ``VMInstrumentReturnKind.NO_OP``,
# ``kNoOp`` in src/runtime/vm/vm.cc; the enum lives in ``tvm.runtime.vm``, which imports numpy)
NO_OP = 0
POOLED_ALLOCATOR = 2  # ``VirtualMachine.POOLED_ALLOCATOR``: what ``relax.VirtualMachine`` uses by default
RPC_SESS_MASK = 128  # ``tvm.rpc.base.RPC_SESS_MASK``: a remote device's type carries it


@dataclass
class CallTimes:
    """Per call site of one network run, in call order: ``symbols[i]``, ``n_args[i]`` and
    ``samples_us[i]`` (the instrument's window around the call in each of ``runs`` runs,
    microseconds); ``window_us[i]`` their median; ``overhead_us`` the instrument's own share
    of a window (``instrument_overhead_us``); ``e2e_plain_us``/``e2e_instrumented_us``: median
    wall time of one run of ``main`` without / with the instrument (a Python call each; the
    plain runs are skipped, None, when only the windows are wanted)."""

    symbols: list[str]
    window_us: list[float]
    overhead_us: float
    e2e_plain_us: float | None
    e2e_instrumented_us: float
    runs: int
    samples_us: list[list[float]] = field(default_factory=list)
    n_args: list[int] = field(default_factory=list)

    def kernel_us(self) -> dict[str, list[float]]:
        """Per kernel symbol: the in-network time of each of its calls, overhead removed (us)."""
        out: dict[str, list[float]] = {}
        for s, w in zip(self.symbols, self.window_us):
            if not s.startswith(BUILTIN_PREFIX) and not s.startswith(EMPTY_PREFIX):
                out.setdefault(s, []).append(max(w - self.overhead_us, 0.0))
        return out

    def kernel_samples_us(self) -> dict[str, list[float]]:
        """Per kernel symbol: one figure per run, the overhead-corrected windows of all its
        calls in that run averaged (us per call)."""
        out: dict[str, list[list[float]]] = {}
        for s, col in zip(self.symbols, self.samples_us):
            if not s.startswith(BUILTIN_PREFIX) and not s.startswith(EMPTY_PREFIX):
                out.setdefault(s, []).append([max(x - self.overhead_us, 0.0) for x in col])
        return {s: [sum(run) / len(run) for run in zip(*cols)] for s, cols in out.items()}

    def to_dict(self, samples: bool = False) -> dict:
        d = {"symbols": self.symbols, "window_us": self.window_us, "overhead_us": self.overhead_us,
             "e2e_plain_us": self.e2e_plain_us, "e2e_instrumented_us": self.e2e_instrumented_us,
             "runs": self.runs, "n_args": self.n_args}
        if samples:
            d["samples_us"] = self.samples_us
        return d


class RuntimeVM:
    """The Relax VM of a loaded executable module, driven through the runtime's packed
    functions alone, as ``tvm.relax.VirtualMachine`` does it (``tvm/runtime/vm.py``): the
    executable's ``vm_load_executable`` makes the VM module, whose ``vm_initialization`` takes
    (device type, device index, allocator) per device, the CPU last (shape functions run
    there), and whose ``set_instrument`` and functions (``vm["main"]``) ``time_calls`` uses.
    Needs no ``tvm.relax`` (absent on a runtime-only TVM) and not numpy."""

    def __init__(self, module, device, allocator: int = POOLED_ALLOCATOR):
        self.module = module["vm_load_executable"]()
        devices = [(device.dlpack_device_type() % RPC_SESS_MASK, device.index)]
        if devices[0][0] != 1:  # kDLCPU
            devices.append((1, 0))
        self.module["vm_initialization"](*[x for d in devices for x in (*d, allocator)])

    def __getitem__(self, name: str):
        return self.module[name]

    def set_instrument(self, instrument) -> None:
        """Call ``instrument(func, symbol, before_run, ret_value, *args) -> int`` around every
        VM call; None removes it."""
        self.module["set_instrument"](instrument)


def time_calls(vm, args: Sequence, runs: int = 30, warmup: int = 3, plain: bool = True) -> CallTimes:
    """Time every call of ``vm["main"](*args)`` inside the network (see module docstring).
    ``vm``: a ``RuntimeVM`` or a ``tvm.relax.VirtualMachine``. With ``plain``, uninstrumented
    runs alternate with the instrumented ones, so a change in the machine's state hits both."""
    noop = NO_OP
    clock = time.perf_counter_ns
    trace: list = []
    start = [0]

    def instrument(func, symbol, before, ret, *a):
        if before:
            start[0] = clock()
            return noop
        t = clock()
        trace.append((symbol, t - start[0], len(a)))
        return noop

    main = vm["main"]
    for _ in range(warmup):
        main(*args)
    plains, instr, windows, symbols, n_args = [], [], [], None, []
    for r in range(runs + warmup):
        _clear(vm)
        if plain:
            t0 = clock()
            main(*args)
            plains.append((clock() - t0) / 1e3)
        vm.set_instrument(instrument)
        trace.clear()
        t2 = clock()
        main(*args)
        t3 = clock()
        _clear(vm)
        if r < warmup:
            plains = plains[:-1] if plain else plains
            continue
        instr.append((t3 - t2) / 1e3)
        syms = [s for s, _, _ in trace]
        if symbols is None:
            symbols, n_args = syms, [n for _, _, n in trace]
        elif syms != symbols:
            raise RuntimeError("the network's call sequence changed between runs")
        windows.append([dt / 1e3 for _, dt, _ in trace])
    samples = [list(col) for col in zip(*windows)]
    w = [float(statistics.median(col)) for col in samples]
    overhead = instrument_overhead_us(symbols, w)
    return CallTimes(list(symbols), w, overhead, statistics.median(plains) if plains else None,
                     statistics.median(instr), runs, samples, n_args)


def instrument_overhead_us(symbols: Sequence[str], window_us: Sequence[float]) -> float:
    """The instrument's own share of every window (us). Best: the median window of the empty
    calibration kernels a batch network carries (``lower.batchnet``, ``chamtvm_empty_<n>``);
    else the median window of the VM builtins that take arguments but do almost no work
    (shape and tensor checks: within ~0.5 us of an empty kernel call here); else the
    smallest builtin window; 0 when the run called no builtin."""
    for names in (None, ARG_BUILTINS):
        pick = [w for s, w in zip(symbols, window_us)
                if (s.startswith(EMPTY_PREFIX) if names is None else s in names)]
        if pick:
            return float(statistics.median(pick))
    builtin = [w for s, w in zip(symbols, window_us) if s.startswith(BUILTIN_PREFIX)]
    return float(min(builtin)) if builtin else 0.0


def _clear(vm) -> None:
    """Remove the instrument (TVM accepts a null function for that)."""
    try:
        vm.set_instrument(None)
    except Exception:  # an older runtime wants a function: a no-op one
        vm.set_instrument(lambda *a: NO_OP)


DEVICE_FUNC = "chamtvm.time_calls"  # registered by chamtvm's RPC servers (``register_device_function``)


def register_device_function() -> None:
    """Register ``chamtvm.time_calls(module, runs, *args)`` in this process (an RPC server's):
    the calls of ``module``'s ``main`` timed on the device itself (``time_calls``, ``runs`` runs,
    no plain runs), as the JSON of ``CallTimes.to_dict(samples=True)``. Over RPC the VM
    instrument cannot call back to the host cheaply, so the device times itself. The VM is a
    ``RuntimeVM``: this works on a runtime-only TVM (an emulated board's) as well."""
    import json

    import tvm_ffi

    @tvm_ffi.register_global_func(DEVICE_FUNC, override=True)
    def _time_calls(module, runs, *args):
        vm = RuntimeVM(module, args[0].device)
        return json.dumps(time_calls(vm, list(args), runs=int(runs), warmup=1, plain=False).to_dict(samples=True))


def calls_from_dict(d: dict) -> CallTimes:
    """``CallTimes`` back from ``to_dict(samples=True)`` (what the device function returns)."""
    return CallTimes(d["symbols"], d["window_us"], d["overhead_us"], d["e2e_plain_us"], d["e2e_instrumented_us"],
                     d["runs"], d.get("samples_us") or [], d.get("n_args") or [])

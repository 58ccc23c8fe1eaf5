"""Timing loops shared by the local worker and the RPC runner (device-side work only)."""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence

import numpy as np

from ..lower.kernels import ArgSpec
from ..targets.spec import Evaluator
from .base import KernelItem, MeasureResult


def random_tensor(spec: ArgSpec, dev, rng: np.random.Generator):
    """A device tensor of ``spec`` with values in [-1, 1) (zeros for integer dtypes)."""
    import tvm

    if spec.dtype.startswith("float"):
        data = rng.uniform(-1, 1, size=spec.shape).astype(spec.dtype)
    else:
        data = np.zeros(spec.shape, dtype=spec.dtype)
    return tvm.runtime.tensor(data, dev)


def _evaluate(fn_timer, args, evaluator: Evaluator) -> tuple[list[float], int]:
    res = fn_timer(*args)
    return [float(t) * 1e6 for t in res.results], evaluator.number


def time_kernels(module, dev, items: Iterable[KernelItem], evaluator: Evaluator,
                 seed: int = 0, meter=None) -> Iterator[MeasureResult]:
    """Time every item's function in ``module`` (a loaded runtime module) on ``dev``.

    ``meter`` (``energy.open_meter``, local devices only) adds ``energy_uj`` per call.
    ``evaluator.cache_flush`` flushes the caches of all arguments but the first before
    each measurement on a CPU device (cold weights, as inside a network)."""
    from .energy import EnergyWindow

    rng = np.random.default_rng(seed)
    for item in items:
        try:
            args = [random_tensor(a, dev, rng) for a in item.args]
            flush = evaluator.cache_flush and int(dev.dlpack_device_type()) % 128 == 1  # kDLCPU, also behind an RPC session mask
            timer = module.time_evaluator(
                item.symbol, dev, number=evaluator.number, repeat=evaluator.repeat,
                min_repeat_ms=evaluator.min_repeat_ms,
                cooldown_interval_ms=evaluator.cooldown_interval_ms,
                f_preproc="cache_flush_cpu_non_first_arg" if flush else "",
            )
            with EnergyWindow(meter) as window:
                samples, number = _evaluate(timer, args, evaluator)
            yield MeasureResult(item.key, samples, number,
                                energy_uj=window.per_call_uj(float(np.median(samples)) * 1e-6))
        except Exception as e:  # one failing kernel must not stop the batch
            yield MeasureResult(item.key, error=f"{type(e).__name__}: {str(e).splitlines()[0][:500]}")


def time_network(module, dev, inputs: Sequence[ArgSpec], evaluator: Evaluator,
                 key: str = "network", seed: int = 0, vm_factory=None, meter=None) -> MeasureResult:
    """Time ``main`` of a Relax VM executable module loaded on ``dev``."""
    from tvm import relax

    from .energy import EnergyWindow

    rng = np.random.default_rng(seed)
    try:
        vm = (vm_factory or relax.VirtualMachine)(module, dev)
        args = [random_tensor(a, dev, rng) for a in inputs]
        vm["main"](*args)  # warm-up: first call allocates the memory plan
        timer = vm.time_evaluator(
            "main", dev, number=evaluator.number, repeat=evaluator.repeat,
            min_repeat_ms=evaluator.min_repeat_ms,
            cooldown_interval_ms=evaluator.cooldown_interval_ms,
        )
        with EnergyWindow(meter) as window:
            samples, number = _evaluate(timer, args, evaluator)
        return MeasureResult(key, samples, number,
                             energy_uj=window.per_call_uj(float(np.median(samples)) * 1e-6))
    except Exception as e:
        return MeasureResult(key, error=f"{type(e).__name__}: {str(e).splitlines()[0][:500]}")


def time_batch_network(module, dev, inputs: Sequence[ArgSpec], items: Sequence[KernelItem],
                       evaluator: Evaluator, runs: int = 40, seed: int = 0) -> list[MeasureResult]:
    """Every item of a batch network (``lower.batchnet``) timed inside it, call by call
    (``measure.insitu``): per item, one sample per run (microseconds per call, the
    instrument's own cost removed). Each result's ``extra`` holds ``overhead_us`` (that cost),
    ``reference_us`` (the batch's reference kernel, median), ``other_cores`` (other processes'
    CPU meanwhile, ``measure.busy``) and ``attempts``; a busy machine is handled as
    ``evaluator``'s ``busy_*`` fields say. A failure fails every item with its message."""
    from tvm import relax

    from ..lower.batchnet import REFERENCE_SYMBOL
    from .busy import timed_while_quiet
    from .insitu import time_calls

    rng = np.random.default_rng(seed)
    try:
        vm = relax.VirtualMachine(module, dev)
        args = [random_tensor(a, dev, rng) for a in inputs]
        calls, load, attempts = timed_while_quiet(lambda: time_calls(vm, args, runs=runs, plain=False),
                                                  evaluator.busy_other_cores, evaluator.busy_retries,
                                                  evaluator.busy_wait_s)
    except Exception as e:
        msg = f"{type(e).__name__}: {str(e).splitlines()[0][:500] if str(e) else ''}"
        return [MeasureResult(i.key, error=msg) for i in items]
    per_symbol = calls.kernel_samples_us()
    ref = per_symbol.get(REFERENCE_SYMBOL)
    extra = {"overhead_us": calls.overhead_us, "other_cores": load, "attempts": attempts,
             "reference_us": float(np.median(ref)) if ref else None, "timing": "in_network"}
    out = []
    for item in items:
        samples = per_symbol.get(item.symbol)
        if not samples:
            out.append(MeasureResult(item.key, error=f"{item.symbol} was not called in its batch network"))
        else:
            out.append(MeasureResult(item.key, samples, 1, extra=dict(extra)))
    return out

"""Timing loops shared by the local worker and the RPC runner (device-side work only).

Where the library carries the reference kernel (``measure.compile``: ``chamtvm_reference``, a
Relax function in network and batch-network libraries, a plain symbol in kernel libraries)
and the evaluator asks for it (``nominal_tolerance``), every sample is taken between two
timings of the reference and kept only when both ran at the device's nominal speed
(``sample_at_nominal_speed``): a throttled clock, another tenant on a virtual machine's host or
another process on the core slows the reference as it slows the sample, so the samples kept
are the device's own speed, and the row says how many were kept and how fast the reference was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from ..lower.kernels import ArgSpec
from ..targets.spec import Evaluator
from .base import KernelItem, MeasureResult

REFERENCE_NUMBER = 5  # reference calls per reference timing (one timing: ~70 us on a desktop core)


def random_tensor(spec: ArgSpec, dev, rng: np.random.Generator):
    """A device tensor of ``spec`` with values in [-1, 1) (zeros for integer dtypes)."""
    import tvm

    if spec.dtype.startswith("float"):
        data = rng.uniform(-1, 1, size=spec.shape).astype(spec.dtype)
    else:
        data = np.zeros(spec.shape, dtype=spec.dtype)
    return tvm.runtime.tensor(data, dev)


@dataclass
class NominalSamples:
    """Samples taken at the device's nominal speed (``sample_at_nominal_speed``).

    ``kept``: the samples (us) whose two reference timings both ran within the tolerance of
    ``baseline_us`` (all samples when no reference or no tolerance), topped up to ``repeat``
    with those nearest it when too few were (``nominal_count``: how many ran at nominal
    speed); ``taken``: how many were taken in all; ``reference_us``: median reference time beside the kept samples (all samples
    when none was kept); ``reference_p10_us``: the 10th percentile of every reference timing
    (the fast end of this measurement, from which a caller learns the nominal time:
    ``table.reference``); ``nominal``: enough samples were kept."""

    kept: list[float]
    taken: int
    reference_us: float | None = None
    reference_p10_us: float | None = None
    baseline_us: float | None = None
    nominal: bool = True
    all_samples: list[float] = field(default_factory=list)
    kept_index: list[int] = field(default_factory=list)  # positions of ``kept`` in ``all_samples``
    slow_ratio: float | None = None  # median slow sample / median nominal sample, where both were seen
    corrected_by: float | None = None  # the slow factor the kept samples were divided by (none nominal)
    nominal_count: int | None = None  # how many of ``kept`` ran at nominal speed (None: all of them)

    def extra(self) -> dict:
        """The fields a row keeps (``table.fill.ROW_EXTRAS``)."""
        return {"reference_us": self.reference_us, "reference_p10_us": self.reference_p10_us,
                "reference_baseline_us": self.baseline_us, "samples_taken": self.taken,
                "samples_nominal": (len(self.kept) if self.nominal_count is None else self.nominal_count)
                if self.baseline_us is not None and self.corrected_by is None else
                0 if self.corrected_by is not None else None,
                "nominal": self.nominal, "slow_ratio": self.slow_ratio, "corrected_by_slow_factor": self.corrected_by}


def sample_at_nominal_speed(take: Callable[[], list[float]], reference: Callable[[], float] | None,
                            evaluator: Evaluator, clock=time.monotonic) -> NominalSamples:
    """Samples of ``take()`` (each call returns one or more samples, us) taken at the device's
    nominal speed (module docstring), as ``evaluator`` asks:

    * no ``reference`` or no ``nominal_tolerance``: ``repeat`` samples, all kept;
    * else each ``take()`` between two ``reference()`` timings; kept when both are within
      ``(1 + nominal_tolerance)`` of the baseline: ``reference_baseline_us``, or while it is
      unknown the fastest reference seen so far (then sampling lasts at least half the budget,
      so a slow spell at the start is not taken for the nominal speed). It stops once ``repeat``
      samples are taken and ``nominal_samples`` are kept, or when ``nominal_budget_s`` has
      passed (then ``nominal`` is False unless enough were kept), but never before ``repeat``
      samples are taken, however slow the device.

    The result holds at least ``min(repeat, nominal_samples)`` samples: where the budget ran
    out with fewer than ``nominal_samples`` kept, they are topped up to ``repeat`` with the
    samples taken nearest the nominal speed (the lowest reference timings around them), so a
    short budget on a slow device gives fewer nominal samples (``samples_nominal``, and
    ``nominal`` False), never fewer samples. A measurement that kept no sample at all gives
    every sample, divided by ``slow_factor`` where it is known (``corrected_by``)."""
    tol = evaluator.nominal_tolerance
    if reference is None or tol is None:
        out: list[float] = []
        while len(out) < max(evaluator.repeat, 1):
            out += take()
        return NominalSamples(out, len(out), all_samples=out, kept_index=list(range(len(out))))
    baseline = evaluator.reference_baseline_us
    start = clock()
    samples, refs, every_ref = [], [], []  # refs[i]: the slower of the two reference timings around sample i
    while True:
        before = reference()
        got = take()
        after = reference()
        samples += got
        refs += [max(before, after)] * len(got)
        every_ref += [before, after]
        base = baseline if baseline is not None else min(refs)
        index = [i for i, r in enumerate(refs) if r <= base * (1 + tol)]
        kept = [samples[i] for i in index]
        elapsed = clock() - start
        enough = len(samples) >= evaluator.repeat and len(kept) >= evaluator.nominal_samples
        if enough and (baseline is not None or elapsed >= evaluator.nominal_budget_s / 2):
            break
        if elapsed >= evaluator.nominal_budget_s and len(samples) >= evaluator.repeat:
            break
    nominal = len(kept) >= evaluator.nominal_samples
    nominal_count = len(kept)
    slow = [samples[i] for i, r in enumerate(refs) if r > base * (1 + 2 * tol)]  # clearly in a slow spell
    slow_ratio = float(np.median(slow) / np.median(kept)) if len(kept) >= 3 and len(slow) >= 3 else None
    corrected = None
    if not kept:  # never at nominal speed within the budget: every sample, said so
        index = list(range(len(samples)))
        if evaluator.slow_factor:
            corrected = float(evaluator.slow_factor)
    elif not nominal and len(index) < evaluator.repeat:  # topped up with the samples nearest nominal speed
        chosen = set(index)
        rest = sorted((i for i in range(len(samples)) if i not in chosen), key=lambda i: (refs[i], i))
        index = sorted(index + rest[:evaluator.repeat - len(index)])
    values = [samples[i] / (corrected or 1.0) for i in index]
    return NominalSamples(values, len(samples), float(np.median([refs[i] for i in index])),
                          float(np.percentile(every_ref, 10)), float(base), nominal, samples, index,
                          slow_ratio, corrected, nominal_count)


def _library_reference(module, dev, rng, vm: bool):
    """A function timing the library's reference kernel (mean of ``REFERENCE_NUMBER`` calls,
    us), or None when the library carries none. ``vm``: a Relax VM whose function is called."""
    from ..lower.batchnet import REFERENCE_ARGS, REFERENCE_SYMBOL

    try:
        module[REFERENCE_SYMBOL]
    except Exception:
        return None
    args = [random_tensor(a, dev, rng) for a in (REFERENCE_ARGS[:2] if vm else REFERENCE_ARGS)]
    timer = module.time_evaluator(REFERENCE_SYMBOL, dev, number=REFERENCE_NUMBER, repeat=1, min_repeat_ms=0)
    return lambda: float(timer(*args).mean) * 1e6


def _one_repeat(timer, args) -> list[float]:
    return [float(t) * 1e6 for t in timer(*args).results]


def fastest_state(samples: Sequence[float], tolerance: float | None) -> list[float]:
    """The samples (us) taken in the fastest state this measurement saw: those within
    ``(1 + tolerance)`` of its fastest sample (all of them when ``tolerance`` is None).

    A virtual machine's host, a phone's governor or a neighbour on the memory bus changes
    the device's speed from one run to the next by more than the reference kernel shows (its
    timing is perturbed by what ran just before it); the fastest runs of one measurement are
    the device at its own speed, the same for a kernel's row and for a network, so a table
    sum of such rows prices the network measured the same way (``Evaluator.fast_state_tolerance``)."""
    xs = [float(x) for x in samples]
    if tolerance is None or not xs or min(xs) <= 0:
        return xs  # a call below the instrument's resolution (0 us) has no fastest state to select
    bound = min(xs) * (1.0 + tolerance)
    return [x for x in xs if x <= bound]


def time_kernels(module, dev, items: Iterable[KernelItem], evaluator: Evaluator,
                 seed: int = 0, meter=None) -> Iterator[MeasureResult]:
    """Time every item's function in ``module`` (a loaded runtime module) on ``dev``, each
    sample at the device's nominal speed where the library carries the reference kernel
    (``sample_at_nominal_speed``).

    ``meter`` (``energy.open_meter``, local devices only) adds ``energy_uj`` per call.
    ``evaluator.cache_flush`` flushes the caches of all arguments but the first before
    each measurement on a CPU device (cold weights, as inside a network)."""
    from .busy import timed_while_quiet
    from .energy import EnergyWindow

    rng = np.random.default_rng(seed)
    reference = _library_reference(module, dev, rng, vm=False)
    for item in items:
        try:
            args = [random_tensor(a, dev, rng) for a in item.args]
            flush = evaluator.cache_flush and int(dev.dlpack_device_type()) % 128 == 1  # kDLCPU, also behind an RPC session mask
            timer = module.time_evaluator(
                item.symbol, dev, number=evaluator.number, repeat=1,
                min_repeat_ms=evaluator.min_repeat_ms,
                cooldown_interval_ms=evaluator.cooldown_interval_ms,
                f_preproc="cache_flush_cpu_non_first_arg" if flush else "",
            )

            def measure():
                with EnergyWindow(meter) as window:
                    got = sample_at_nominal_speed(lambda: _one_repeat(timer, args), reference, evaluator)
                return got, window

            (got, window), load, attempts = timed_while_quiet(
                measure, evaluator.busy_other_cores, evaluator.busy_retries, evaluator.busy_wait_s)
            kept, fast = _fastest_state_of(got.kept, evaluator)
            yield MeasureResult(item.key, kept, evaluator.number,
                                energy_uj=window.per_call_uj(float(np.median(kept)) * 1e-6),
                                extra={**got.extra(), **fast,
                                       "other_cores": load, "attempts": attempts, "timing": "isolated"})
        except Exception as e:  # one failing kernel must not stop the batch
            yield MeasureResult(item.key, error=f"{type(e).__name__}: {str(e).splitlines()[0][:500]}")


def time_network(module, dev, inputs: Sequence[ArgSpec], evaluator: Evaluator,
                 key: str = "network", seed: int = 0, vm_factory=None, meter=None) -> MeasureResult:
    """Time ``main`` of a Relax VM executable module loaded on ``dev``: samples of
    ``evaluator.number`` runs (raised until one lasts ``min_repeat_ms``), at the device's
    nominal speed where the library carries the reference function
    (``measure.compile.with_reference``; ``sample_at_nominal_speed``); a busy machine is
    handled as ``evaluator``'s ``busy_*`` fields say (``extra["other_cores"]``)."""
    from tvm import relax

    from .busy import timed_while_quiet
    from .energy import EnergyWindow

    rng = np.random.default_rng(seed)
    try:
        vm = (vm_factory or relax.VirtualMachine)(module, dev)
        args = [random_tensor(a, dev, rng) for a in inputs]
        vm["main"](*args)  # warm-up: first call allocates the memory plan
        timer = vm.time_evaluator(
            "main", dev, number=evaluator.number, repeat=1,
            min_repeat_ms=evaluator.min_repeat_ms,
            cooldown_interval_ms=evaluator.cooldown_interval_ms,
        )
        reference = _library_reference(vm, dev, rng, vm=True)

        def measure():
            with EnergyWindow(meter) as window:
                got = sample_at_nominal_speed(lambda: _one_repeat(timer, args), reference, evaluator)
            return got, window

        (got, window), load, attempts = timed_while_quiet(
            measure, evaluator.busy_other_cores, evaluator.busy_retries, evaluator.busy_wait_s)
        kept, fast = _fastest_state_of(got.kept, evaluator)
        return MeasureResult(key, kept, evaluator.number,
                             energy_uj=window.per_call_uj(float(np.median(kept)) * 1e-6),
                             extra={**got.extra(), **fast,
                                    "other_cores": load, "attempts": attempts})
    except Exception as e:
        return MeasureResult(key, error=f"{type(e).__name__}: {str(e).splitlines()[0][:500]}")


def time_batch_network(module, dev, inputs: Sequence[ArgSpec], items: Sequence[KernelItem],
                       evaluator: Evaluator, runs_per_sample: int = 5, seed: int = 0,
                       device_calls=None) -> list[MeasureResult]:
    """Every item of a batch network (``lower.batchnet``) timed inside it, call by call
    (``measure.insitu``): one sample per run (us per call, the instrument's own cost
    removed), runs taken ``runs_per_sample`` at a time between reference timings, at the
    device's nominal speed (``sample_at_nominal_speed``, on the runs' total). Each result's
    ``extra`` holds ``overhead_us`` (the instrument's cost), the reference figures,
    ``other_cores`` (``measure.busy``) and ``attempts``. A failure fails every item.
    ``device_calls(module, runs, args)``: how a device behind RPC times the calls itself
    (``measure.insitu.DEVICE_FUNC``); default: here, with the VM instrument."""
    from tvm import relax

    from .busy import timed_while_quiet
    from .insitu import time_calls

    rng = np.random.default_rng(seed)
    try:
        vm = relax.VirtualMachine(module, dev)
        args = [random_tensor(a, dev, rng) for a in inputs]
        reference = _library_reference(vm, dev, rng, vm=True)

        def calls_of(runs: int, warmup: int):
            if device_calls is not None:
                return device_calls(module, runs, args)
            return time_calls(vm, args, runs=runs, warmup=warmup, plain=False)

        calls_of(1, 2)  # warm-up: the memory plan, the caches

        def measure():
            bursts: list = []

            def take() -> list[float]:  # one sample per run: the run's instrumented total
                calls = calls_of(runs_per_sample, 0)
                bursts.append(calls)
                return [float(sum(run)) for run in zip(*calls.samples_us)]

            return sample_at_nominal_speed(take, reference, evaluator), bursts

        (got, bursts), load, attempts = timed_while_quiet(measure, evaluator.busy_other_cores,
                                                          evaluator.busy_retries, evaluator.busy_wait_s)
    except Exception as e:
        msg = f"{type(e).__name__}: {str(e).splitlines()[0][:500] if str(e) else ''}"
        return [MeasureResult(i.key, error=msg) for i in items]
    # the runs kept (at nominal speed) give the items' samples
    kept = set(got.kept_index)
    scale = 1.0 / (got.corrected_by or 1.0)  # no run at nominal speed: the slow factor, where known
    per_symbol: dict[str, list[float]] = {}
    run = 0
    for calls in bursts:
        for s, xs in calls.kernel_samples_us().items():
            per_symbol.setdefault(s, []).extend(x * scale for i, x in enumerate(xs) if run + i in kept)
        run += calls.runs
    overheads = [c.overhead_us for c in bursts]
    extra = {**got.extra(), "overhead_us": float(np.median(overheads)), "other_cores": load,
             "attempts": attempts, "timing": "in_network"}
    out = []
    for item in items:
        samples = per_symbol.get(item.symbol)
        if item.symbol not in per_symbol:
            # the target's pipeline removed the call (a reshape becomes a view in
            # RewriteDataflowReshape): deployed, this kernel costs nothing
            out.append(MeasureResult(item.key, [0.0], 1, extra={**extra, "timing": "elided"}))
        elif not samples:
            out.append(MeasureResult(item.key, error=f"{item.symbol} was not called in its batch network"))
        else:
            kept, fast = _fastest_state_of(samples, evaluator)
            out.append(MeasureResult(item.key, kept, 1, extra={**extra, **fast}))
    return out


def _fastest_state_of(samples: Sequence[float], evaluator: Evaluator) -> tuple[list[float], dict]:
    """``(kept samples, row fields)``: ``fastest_state`` at the evaluator's tolerance, and for
    the row the tolerance and how many samples there were before it (none without one)."""
    kept = fastest_state(samples, evaluator.fast_state_tolerance)
    if evaluator.fast_state_tolerance is None:
        return kept, {}
    return kept, {"fast_state_tolerance": evaluator.fast_state_tolerance, "samples_before_fast_state": len(samples)}


def pooled_rounds(rounds: Sequence[MeasureResult]) -> tuple[list[float], dict]:
    """One network's figure from its ``rounds`` (successful ``MeasureResult``s of the same
    build, each timed as ``time_network`` times it, taken minutes apart round-robin over a
    batch of networks: ``table.networks``): ``(samples us, row fields)``.

    The samples are every round's own kept samples (each round's fastest state, not the
    fastest state over all rounds: a round in a slow state of the device weighs as much as
    one in a fast state, as the deployed network meets both), so their median is the network
    over the whole time the batch took. The row fields are the middle round's (by median)
    reference figures, with the counts summed over rounds, ``nominal`` only if every round was,
    the busiest round's ``other_cores``, and ``rounds`` and ``round_medians_us``."""
    if not rounds or not all(r.ok for r in rounds):
        raise ValueError("pooled_rounds needs one or more successful measurements")
    medians = [float(np.median(r.samples_us)) for r in rounds]
    middle = rounds[int(np.argsort(medians)[(len(medians) - 1) // 2])]
    extra = dict(middle.extra)
    for count in ("samples_taken", "samples_nominal", "samples_before_fast_state", "attempts"):
        values = [r.extra.get(count) for r in rounds]
        if all(isinstance(v, int) for v in values):
            extra[count] = int(sum(values))
    if any("nominal" in r.extra for r in rounds):
        extra["nominal"] = all(bool(r.extra.get("nominal", True)) for r in rounds)
    loads = [r.extra["other_cores"] for r in rounds if isinstance(r.extra.get("other_cores"), (int, float))]
    if loads:
        extra["other_cores"] = float(max(loads))
    extra.update(rounds=len(rounds), round_medians_us=medians)
    samples = [float(x) for r in rounds for x in r.samples_us]
    return samples, extra

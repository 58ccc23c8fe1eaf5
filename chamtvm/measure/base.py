"""Runner interface and the value types that cross it."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from ..lower.kernels import ArgSpec
from ..targets.spec import Evaluator, TargetSpec


@dataclass(frozen=True)
class KernelItem:
    """One kernel of a batch library: table ``key``, exported ``symbol`` and argument specs."""

    key: str
    symbol: str
    args: tuple[ArgSpec, ...]

    def to_json(self) -> dict:
        return {"key": self.key, "symbol": self.symbol, "args": [a.to_list() for a in self.args]}

    @classmethod
    def from_json(cls, d: dict) -> "KernelItem":
        return cls(d["key"], d["symbol"], tuple(ArgSpec(tuple(s), t) for s, t in d["args"]))


@dataclass(frozen=True)
class KernelBatch:
    """One compiled kernel library and its items; ``error`` is set (and ``library`` None)
    when the batch could not be built, so every item fails with that message.

    ``network_inputs`` set: the library is a *batch network* (``lower.batchnet``), a Relax VM
    executable whose ``main`` (taking these inputs) calls every item; its items are timed
    inside it, call by call (``measure.insitu``), not alone."""

    library: Path | None
    items: tuple[KernelItem, ...]
    error: str | None = None
    network_inputs: tuple[ArgSpec, ...] | None = None
    evaluator: Evaluator | None = None  # this batch's settings (e.g. the baseline learnt so far)


@dataclass
class MeasureResult:
    """Outcome of one item: per-repeat times in microseconds, or an error message.

    ``energy_uj`` is the measured energy per call in microjoules where the platform exposes
    a counter, else None (never estimated).
    """

    key: str
    samples_us: list[float] | None = None
    number: int = 0
    error: str | None = None
    energy_uj: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.samples_us)

    @property
    def median_us(self) -> float:
        import statistics

        return statistics.median(self.samples_us or [float("nan")])

    def to_json(self) -> dict:
        return {"key": self.key, "samples_us": self.samples_us, "number": self.number,
                "error": self.error, "energy_uj": self.energy_uj, "extra": self.extra}

    @classmethod
    def from_json(cls, d: dict) -> "MeasureResult":
        return cls(d["key"], d.get("samples_us"), d.get("number", 0), d.get("error"),
                   d.get("energy_uj"), d.get("extra") or {})


class Runner(abc.ABC):
    """Times compiled code on one target's device.

    ``label`` says where the figures come from (shown in reports); ``emulated`` is True when
    the device is an emulator, whose timings must never be presented as device timings.
    """

    target: TargetSpec
    label: str = ""
    emulated: bool = False

    @abc.abstractmethod
    def measure_kernels(
        self, library: Path, items: Sequence[KernelItem], evaluator: Evaluator
    ) -> Iterator[MeasureResult]:
        """Yield one result per item of the exported kernel ``library``, as each finishes."""

    @abc.abstractmethod
    def measure_network(
        self, library: Path, inputs: Sequence[ArgSpec], evaluator: Evaluator, key: str = "network"
    ) -> MeasureResult:
        """Time the Relax VM function ``main`` of an exported network ``library``."""

    def measure_networks(self, networks: Sequence[tuple[str, Path, Sequence[ArgSpec]]],
                         evaluator: Evaluator) -> Iterator[MeasureResult]:
        """Time several exported networks, ``(key, library, inputs)`` each, one after the other;
        one result per network (its ``key``), yielded as each finishes. This default calls
        ``measure_network`` for each; a runner that starts a process or a session per call
        overrides it to time them all in one."""
        for key, library, inputs in networks:
            yield self.measure_network(library, inputs, evaluator, key=key)

    def measure_batch_network(self, library: Path, items: Sequence[KernelItem],
                              inputs: Sequence[ArgSpec], evaluator: Evaluator) -> Iterator[MeasureResult]:
        """Yield one result per item of a batch network ``library`` (``KernelBatch``), each
        timed inside it. Runners that cannot time calls inside a network do not override
        this and say so through ``times_in_network``."""
        raise NotImplementedError(f"{type(self).__name__} cannot time kernels inside a network")

    def times_in_network(self) -> bool:
        """Whether ``measure_batch_network`` works on this runner's devices."""
        return False

    def measure_batch(self, b: KernelBatch, evaluator: Evaluator) -> Iterator[MeasureResult]:
        """One result per item of ``b``: its build error, or its items timed the way the
        batch was built (alone, or inside a batch network)."""
        evaluator = b.evaluator or evaluator
        if b.error is not None:
            for item in b.items:
                yield MeasureResult(item.key, error=b.error)
        elif b.network_inputs is not None:
            yield from self.measure_batch_network(b.library, b.items, b.network_inputs, evaluator)
        else:
            yield from self.measure_kernels(b.library, b.items, evaluator)

    def measure_batches(self, batches: Iterable[KernelBatch], evaluator: Evaluator) -> Iterator[MeasureResult]:
        """Yield one result per item of every batch (consumed lazily), as each finishes.

        This default measures one batch after another; runners with several devices
        (``RPCRunner``) override it to measure batches in parallel."""
        for b in batches:
            yield from self.measure_batch(b, evaluator)

    def close(self) -> None:
        """Release devices and processes."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

"""End-to-end measurement of a lowered network: compile it with the target's pipeline and
schedules, export the library, time it through a runner.

In: a ``LoweredNetwork``, a ``TargetSpec``, a ``Runner``. Out: a ``MeasureResult``
(per-repeat times in microseconds, or an error message)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..lower.network import LoweredNetwork
from ..targets.spec import TargetSpec
from .base import MeasureResult, Runner
from .compile import compile_and_export_network

if TYPE_CHECKING:  # schedules are applied duck-typed (``.apply``); measure sits below tuning
    from ..tuning.schedules import ScheduleSource



def build_for_measuring(net: LoweredNetwork, target: TargetSpec, schedules: "ScheduleSource | None",
                        path: str | Path) -> str | None:
    """Compile ``net`` with the target's pipeline and schedules (and the reference kernel) and
    export the library to ``path``; None, or why it could not be compiled."""
    try:
        compile_and_export_network(net.fused, target, Path(path), schedules, reference=True)
    except Exception as e:
        from ..core.interrupt import reraise_if_interrupted

        reraise_if_interrupted()
        return f"compile failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}"
    return None


def measure_network(net: LoweredNetwork, target: TargetSpec, runner: Runner,
                    schedules: ScheduleSource | None = None, work_dir: str | Path | None = None,
                    key: str | None = None, evaluator=None) -> MeasureResult:
    """Compile ``net`` with the target's pipeline and schedules (and the reference kernel) and
    time it end to end once with ``evaluator`` (default: the target's ``network_evaluator``)."""
    key = key or net.name
    with tempfile.TemporaryDirectory(prefix="chamtvm-net-", dir=work_dir) as tmp:
        lib = Path(tmp) / "net.so"
        error = build_for_measuring(net, target, schedules, lib)
        if error:
            return MeasureResult(key, error=error)
        return runner.measure_network(lib, net.inputs, evaluator or target.network_evaluator, key=key)

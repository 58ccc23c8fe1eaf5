"""End-to-end measurement of a lowered network: compile it with the target's pipeline and
schedules, export the library, time it through a runner.

In: a ``LoweredNetwork``, a ``TargetSpec``, a ``Runner``. Out: a ``MeasureResult``
(per-repeat times in microseconds, or an error message)."""

from __future__ import annotations

import contextlib
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


class NetworkBuilds:
    """Compiled network libraries by build key, kept in one folder while the object is open
    (``with NetworkBuilds() as builds``): a network timed end to end and then call by call
    (step ``measure picks``) is compiled once. A build that failed is remembered with its
    error and not tried again. The key must name the exact build (``table.networks.build_key``:
    the architecture and its kernels, schedules included)."""

    def __init__(self, work_dir: str | Path | None = None):
        self._work_dir = work_dir
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._built: dict[str, tuple[Path | None, str | None]] = {}

    def __enter__(self) -> "NetworkBuilds":
        self._tmp = tempfile.TemporaryDirectory(prefix="chamtvm-builds-", dir=self._work_dir)
        return self

    def __exit__(self, *exc) -> None:
        self._tmp.cleanup()
        self._tmp = None
        self._built.clear()

    def library(self, key: str, net: LoweredNetwork, target: TargetSpec,
                schedules: "ScheduleSource | None") -> tuple[Path | None, str | None]:
        """``(library path, None)`` of ``net`` built with ``target`` and ``schedules`` (built now
        unless this key was built before), or ``(None, why it could not be compiled)``."""
        if self._tmp is None:
            raise RuntimeError("NetworkBuilds used outside its `with` block")
        if key not in self._built:
            path = Path(self._tmp.name) / f"net{len(self._built)}.so"
            error = build_for_measuring(net, target, schedules, path)
            self._built[key] = (None, error) if error else (path, None)
        return self._built[key]

    def __len__(self) -> int:
        """How many builds were tried (compiled or failed)."""
        return len(self._built)


def shared_or_own(builds: NetworkBuilds | None, work_dir: str | Path | None = None):
    """A context holding ``builds`` (an open ``NetworkBuilds``, left open) or, when None, a
    ``NetworkBuilds`` of its own for the block (compiled libraries gone at its end)."""
    return contextlib.nullcontext(builds) if builds is not None else NetworkBuilds(work_dir)


def measure_network(net: LoweredNetwork, target: TargetSpec, runner: Runner,
                    schedules: ScheduleSource | None = None, work_dir: str | Path | None = None,
                    key: str | None = None, evaluator=None, builds: NetworkBuilds | None = None,
                    build_key: str | None = None) -> MeasureResult:
    """Compile ``net`` with the target's pipeline and schedules (and the reference kernel) and
    time it end to end once with ``evaluator`` (default: the target's ``network_evaluator``).
    With ``builds`` (an open ``NetworkBuilds``) and ``build_key``, the library is taken from
    there (compiled there first if it is not yet)."""
    key = key or net.name
    with shared_or_own(builds, work_dir) as held:
        lib, error = held.library(build_key or key, net, target, schedules)
        if error:
            return MeasureResult(key, error=error)
        return runner.measure_network(lib, net.inputs, evaluator or target.network_evaluator, key=key)

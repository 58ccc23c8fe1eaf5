"""Missing kernels measured on demand, then the prediction.

``predict(MODEL, measure_missing=True)``: the kernels of the model that the target's table
lacks are compiled and measured (locally or through the RPC tracker, whichever runner is
given), appended to the table like any other row, and the prediction then prices every
kernel from the table; the kernels measured this way are reported as ``measured_now``.
"""

from __future__ import annotations

from typing import Callable, Sequence

from ..measure.base import Runner
from ..table.fill import BuildSummary, PreparedKernel, fill_table
from ..table.store import LatencyTable
from ..targets.spec import TargetSpec


def measure_missing(prepared: Sequence[PreparedKernel], table: LatencyTable, target: TargetSpec,
                    runner: Runner, log: Callable[[str], None] | None = None) -> tuple[BuildSummary, list[str]]:
    """Measure only the prepared kernels the table lacks (kernels that failed before are not
    retried); returns the fill summary and the keys that are now in the table because of it."""
    todo = [p for p in prepared if p.key not in table]
    if log:
        where = runner.label
        log(f"measuring {len(todo)} of {len(prepared)} kernels missing from {table.path} on {where}")
    summary = fill_table(todo, table, runner, target)
    table.load()
    return summary, [p.key for p in todo if p.key in table]


def predict_prepared(prepared: Sequence[PreparedKernel], table: LatencyTable, target: TargetSpec,
                     runner: Runner | None = None, space: str | None = None,
                     log: Callable[[str], None] | None = None):
    """``FullPrediction`` of prepared kernels from ``table`` and its saved models; with a
    ``runner``, the kernels the table lacks are measured first (``measure_missing``)."""
    from .loading import load_predictor

    # models are loaded before measuring: appending rows changes the table's digest, and a
    # model fitted on the table as it was still prices what could not be measured now
    predictor = load_predictor(table, log=log, space=space)
    now: list[str] = []
    if runner is not None:
        with runner:
            summary, now = measure_missing(prepared, table, target, runner, log)
        if log and summary.failed:
            log(f"note: {summary.failed} kernels failed to measure; they are estimated instead")
    return predictor.predict(prepared, measured_now=now)

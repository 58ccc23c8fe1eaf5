"""The latency of a space's networks on a target, for the budget-aware loop: the same
batch predictor the search uses (the target's kernel table, the saved kernel model for
kernels the table lacks, the space's saved residual), built once from the working
folder's tables and schedules."""

from __future__ import annotations

from pathlib import Path
from typing import Callable


def pool_latency(space, target, luts_dir: Path | None = None, schedules_dir: Path | None = None
                 ) -> Callable:
    """``predict_ms(indices (N, D) int) -> (N,)`` ms of ``space`` on ``target`` (a
    ``TargetSpec`` or a registered name). ``luts_dir`` / ``schedules_dir``: default the
    working folder's. ValueError when the target's table is empty (build it with
    ``tune``)."""
    from ..core.workdir import luts_dir as default_luts, schedules_root
    from ..latency.batch import BatchLatencyPredictor
    from ..latency.loading import load_predictor
    from ..lower.coverage import space_kernel_map
    from ..table.store import LatencyTable
    from ..targets.spec import get_target
    from ..tuning.schedules import ScheduleSource

    if isinstance(target, str):
        target = get_target(target)
    table = LatencyTable.for_target(target.name, luts_dir or default_luts())
    if len(table) == 0:
        raise ValueError(f"the latency table {table.path} is empty: build it first with "
                         f"python -m chamtvm tune --target {target.name} --space {space.name} --task none")
    models = load_predictor(table, space=space.name)
    sched = ScheduleSource(target, Path(schedules_dir or schedules_root()) / target.name)
    batch = BatchLatencyPredictor(space_kernel_map(space, lowering=target.lowering()), table, target, sched, models.kernel_model,
                                  models.residual)
    return batch.predict_ms

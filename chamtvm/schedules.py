"""Schedules a kernel is deployed with: the target's default pipeline, or a MetaSchedule
database in ``schedules/<target>/`` when one holds a record for the kernel.

The schedule *tag* enters latency-table keys: ``default`` for the target's default
schedules (plain loop nests on CPU, dlight rules on GPU), ``ms-<hash of the best trace>``
for a tuned kernel, so a better record later gives a new key and old rows stay valid.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .targets import TargetSpec

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEDULES_DIR = REPO_ROOT / "schedules"
DEFAULT_TAG = "default"


def schedules_dir(target: TargetSpec, root: str | Path | None = None) -> Path:
    """Folder of the target's MetaSchedule database (``CHAMTVM_SCHEDULES_DIR`` overrides root)."""
    root = root or os.environ.get("CHAMTVM_SCHEDULES_DIR") or SCHEDULES_DIR
    return Path(root) / target.name


def workload_module(prim_func):
    """The IRModule MetaSchedule keys a kernel's workload by."""
    import tvm

    return tvm.IRModule({"main": prim_func.with_attr("global_symbol", "main").with_attr("tirx.noalias", True)})


class ScheduleSource:
    """Looks kernels up in a target's MetaSchedule database (if any) and applies them."""

    def __init__(self, target: TargetSpec, work_dir: str | Path | None = None):
        self.target = target
        self.work_dir = Path(work_dir) if work_dir else schedules_dir(target)
        self._db = None

    @property
    def has_database(self) -> bool:
        return (self.work_dir / "database_tuning_record.json").exists()

    def database(self):
        if self._db is None and self.has_database:
            from tvm.s_tir import meta_schedule as ms

            self._db = ms.database.JSONDatabase(work_dir=str(self.work_dir), allow_missing=False)
        return self._db

    def reload(self) -> None:
        self._db = None

    def apply(self, prim_func):
        """``(prim_func to build, tag)``: the tuned schedule when the database has one."""
        db = self.database()
        if db is None:
            return prim_func, DEFAULT_TAG
        mod = workload_module(prim_func)
        record = db.query_tuning_record(mod, self.target.tvm(), "main")
        if record is None:
            return prim_func, DEFAULT_TAG
        sch = db.query_schedule(mod, self.target.tvm(), "main")
        trace_json = str(record.trace.as_json(remove_postproc=False))
        tag = "ms-" + hashlib.sha1(trace_json.encode()).hexdigest()[:10]
        return sch.mod["main"].with_attr("tirx.is_scheduled", True), tag

    def apply_to_module(self, fused_mod):
        """Apply the database to every kernel of a fused Relax module (no-op without one)."""
        if not self.has_database:
            return fused_mod
        from tvm import relax

        with self.target.tvm():
            return relax.transform.MetaScheduleApplyDatabase(work_dir=str(self.work_dir))(fused_mod)

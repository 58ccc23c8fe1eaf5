"""Schedules a kernel is deployed with: the target's default pipeline, or a MetaSchedule
database in ``<workdir>/schedules/<target>/`` when one holds a record for the kernel.

The schedule *tag* enters latency-table keys: ``default`` for the target's default
schedules (plain loop nests on CPU, dlight rules on GPU), ``ms-<hash of the best trace>``
for a tuned kernel, so a better record later gives a new key and old rows stay valid.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..core.workdir import target_schedules_dir
from ..lower.kernels import kernel_hash
from ..targets.spec import TargetSpec
from .database import RECORDS, ScheduleDatabaseError, checked_database_dir, private_copy, stderr_note, workload_module

DEFAULT_TAG = "default"


def trace_tag(trace) -> str:
    """The schedule tag of a MetaSchedule trace: ``ms-`` and the first 10 hex digits of the
    SHA-1 of its JSON (postprocessors included), the same for the trace before it is
    committed and as read back from the database."""
    return "ms-" + hashlib.sha1(str(trace.as_json(remove_postproc=False)).encode()).hexdigest()[:10]


class ScheduleSource:
    """Looks kernels up in a target's MetaSchedule database (if any) and applies them."""

    def __init__(self, target: TargetSpec, work_dir: str | Path | None = None, use_database: bool = True):
        self.target = target
        self.work_dir = Path(work_dir) if work_dir else target_schedules_dir(target.name)
        self.use_database = use_database
        self._db = None
        self._default_preferred = None
        self._transferred = None
        self._frozen = False  # a snapshot (``frozen``): never reads its folder again

    @classmethod
    def for_target(cls, target: TargetSpec, root: str | Path | None = None) -> "ScheduleSource":
        """The schedules of ``target`` under ``root`` (default: the working folder's
        ``schedules/``, or ``$CHAMTVM_SCHEDULES_DIR``): ``<root>/<target name>``."""
        return cls(target, target_schedules_dir(target.name, root))

    @property
    def has_database(self) -> bool:
        if self._frozen:  # a snapshot holds a database exactly when its folder had one
            return self._db is not None
        return self.use_database and (self.work_dir / RECORDS).exists()

    def database(self, log=None):
        """The target's MetaSchedule database, or None. Its files are checked line by line
        first (:func:`checked_database_dir`): a damaged line or a torn tail is reported with
        file and line and set aside, never handed to TVM."""
        if self._db is None and self.has_database:
            import shutil

            from tvm.s_tir import meta_schedule as ms

            folder = checked_database_dir(self.work_dir, log if log is not None else stderr_note)
            try:
                self._db = ms.database.JSONDatabase(work_dir=str(folder), allow_missing=False)
            except Exception as e:  # what the line checks cannot see: say which folder, briefly
                msg = str(e).strip().splitlines()
                raise ScheduleDatabaseError(
                    f"{self.work_dir}: TVM cannot read the MetaSchedule database "
                    f"({msg[-1][:200] if msg else type(e).__name__}); move the folder away to tune again"
                ) from None
            finally:
                if folder != self.work_dir:
                    shutil.rmtree(folder, ignore_errors=True)  # the records are in memory now
        return self._db

    def reload(self) -> None:
        """Read the database and the schedule logs again (after a tuning or a transfer)."""
        if self._frozen:
            return
        self._db = None
        self._default_preferred = None
        self._transferred = None

    def frozen(self) -> "ScheduleSource":
        """A snapshot: the same folder's database and logs read now, into memory, and never
        read again (``reload`` does nothing), so it applies the schedules as they are now
        while a tuning goes on adding records (the build of a network *before* that tuning)."""
        from .provenance import default_preferred, transferred_tags

        snap = ScheduleSource(self.target, self.work_dir, self.use_database)
        if snap.database() is not None:
            snap._default_preferred = default_preferred(self.work_dir)
        snap._transferred = transferred_tags(self.work_dir)
        snap._frozen = True
        return snap

    def apply(self, prim_func):
        """``(prim_func to build, tag)``: the tuned schedule when the database has one (and
        it was not found slower than the default for this very kernel,
        ``provenance.default_preferred``)."""
        db = self.database()
        if db is None:
            return prim_func, DEFAULT_TAG
        mod = workload_module(prim_func)
        record = db.query_tuning_record(mod, self.target.tvm(), "main")
        if record is None:
            return prim_func, DEFAULT_TAG
        tag = trace_tag(record.trace)
        if self._default_preferred is None:
            from .provenance import default_preferred

            self._default_preferred = default_preferred(self.work_dir)
        if self._default_preferred and (tag, kernel_hash(prim_func)) in self._default_preferred:
            return prim_func, DEFAULT_TAG
        from tvm import s_tir

        # the record's trace on a private copy of the record's own workload (the kernel is
        # only structurally equal to it: its block names may differ, and the trace names
        # blocks); ``Database.query_schedule`` would replay it on that module in place
        sch = s_tir.Schedule(private_copy(record.workload.mod))
        record.trace.apply_to_schedule(sch, remove_postproc=False)
        return sch.mod["main"].with_attr("tirx.is_scheduled", True), tag

    def provenance(self, tag: str) -> str:
        """Where the schedule of ``tag`` came from: ``default``, ``tuned`` (MetaSchedule on
        this kernel) or ``transferred`` (a tuned kernel's trace re-fitted, ``tuning.transfer``)."""
        from .provenance import provenance, transferred_tags

        if self._transferred is None:  # read once (a damaged line is reported once)
            self._transferred = transferred_tags(self.work_dir)
        return provenance(tag, self._transferred)

    def apply_to_module(self, fused_mod):
        """Replace every kernel of a fused Relax module that the database holds by its tuned
        schedule (the same lookup as :meth:`apply`, so kernels and networks agree). The input
        module is left as it is (a new module is returned)."""
        if not self.has_database:
            return fused_mod
        import tvm
        from tvm import tirx

        mod = tvm.IRModule(dict(fused_mod.functions.items()), attrs=fused_mod.attrs,
                           global_infos=fused_mod.global_infos)
        for gv, func in list(mod.functions.items()):
            if isinstance(func, tirx.PrimFunc):
                scheduled, tag = self.apply(func)
                if tag != DEFAULT_TAG:
                    attrs = {k: v for k, v in func.attrs.items()} if func.attrs else {}
                    for k, v in attrs.items():
                        scheduled = scheduled.with_attr(k, v)
                    mod[gv] = scheduled.without_attr("global_symbol") if "global_symbol" not in attrs else scheduled
        return mod

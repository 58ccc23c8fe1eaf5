"""Which deployed schedules are slower than their kernel's default-schedule row, and setting
them aside.

Tuning chooses a schedule on MetaSchedule's isolated timing, a transfer on its candidate
timing; the table row of that schedule is timed as the kernel runs in a network. Where the
row is no faster than the same kernel's default-schedule row, what ships must be the
default: the record is listed as default-preferred (``tuning.provenance.prefer_default``),
stays in the database, and ``ScheduleSource.apply`` returns the default schedule once the
source is reloaded. Used by the main job (step ``faster schedules``) and by
``deploy.tune_network``.

In: prepared kernels (``table.fill.prepare``), the table, the target's schedules. Out: the
struct hashes set aside, a line in the schedules folder's ``default_preferred.jsonl`` each.
"""

from __future__ import annotations

from typing import Callable, Iterable

from ..lower.kernels import Kernel
from ..targets.spec import TargetSpec
from ..tuning.schedules import DEFAULT_TAG, ScheduleSource
from .fill import PreparedKernel
from .store import LatencyTable, make_key


def default_rows_us(kernels: Iterable[Kernel | PreparedKernel], table: LatencyTable, target: TargetSpec,
                    statistic: str = "runtime_us_p50") -> dict[str, float]:
    """struct hash -> the ``statistic`` (us) of the kernel's default-schedule row in ``table``,
    for each kernel (a ``Kernel`` or a prepared one, whatever its schedule) that has such a row."""
    out = {}
    for k in kernels:
        k = k.kernel if isinstance(k, PreparedKernel) else k
        row = table.get(make_key(target.fingerprint, DEFAULT_TAG, k.struct_hash))
        if row is not None:
            out[k.struct_hash] = float(row[statistic])
    return out


def set_aside_slower_schedules(prepared: Iterable[PreparedKernel], default_us: dict[str, float], table: LatencyTable,
                               schedules: ScheduleSource, statistic: str = "runtime_us_p50",
                               log: Callable[[str], None] = print) -> list[str]:
    """Set aside every deployed tuned or transferred schedule of ``prepared`` whose table row
    (``statistic``, us) is no faster than the kernel's default row in ``default_us``
    (``default_rows_us``); a kernel lacking either row is left as it is. Returns the struct
    hashes set aside, in ``prepared``'s order. ``schedules`` caches what it read: reload it
    (and prepare the kernels again) to build and price what now ships."""
    from ..tuning.provenance import prefer_default

    out: list[str] = []
    for p in prepared:
        h, row = p.kernel.struct_hash, table.get(p.key)
        if p.schedule == DEFAULT_TAG or row is None or h not in default_us or h in out:
            continue
        deployed = float(row[statistic])
        if deployed >= default_us[h]:
            prefer_default(schedules.work_dir, p.schedule, h, p.kernel.name, deployed, default_us[h])
            log(f"{p.kernel.name}: its {p.provenance} schedule runs {deployed:.1f} us in the network, no faster "
                f"than its default {default_us[h]:.1f} us; the default schedule stays deployed")
            out.append(h)
    return out

"""The device's nominal speed, as the reference kernel has shown it: ``<luts>/<target>.reference.json``.

Every measuring library carries a fixed reference kernel (``lower.batchnet.reference_func``)
timed beside each sample; a sample is kept when the reference ran at the device's nominal
speed (``measure.timing.sample_at_nominal_speed``). The nominal reference time is learnt from
the measurements themselves: the fastest sustained reference time (each measurement's 10th
percentile) seen so far, per target fingerprint and per kind of library (``"vm"``: networks
and batch networks, where the reference is a Relax function; ``"lib"``: kernel libraries,
where it is a plain symbol; the two paths differ by the VM's call overhead). It only ever
goes down (a faster sustained speed seen later is the better estimate of nominal), is written
atomically, and an unreadable file is ignored with a note (it is re-learnt).

It also keeps how much slower than nominal a sample is during the device's slow spells
(``slow_factor``: the median of the ratios seen by measurements that had samples on both
sides), which corrects a measurement that never saw the nominal speed within its budget.

In: measurement results' ``reference_p10_us`` and ``slow_ratio``. Out: ``baseline_us(kind)``
and ``slow_factor(kind)`` for the next measurements' evaluators.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

KINDS = ("vm", "lib")


class ReferenceBaseline:
    """The nominal reference times of one target (fingerprint) in one luts folder."""

    def __init__(self, luts_dir: str | Path, target_name: str, fingerprint: str, log=None):
        self.path = Path(luts_dir) / f"{target_name}.reference.json"
        self.fingerprint = fingerprint
        self.log = log

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, UnicodeDecodeError) as e:
            if self.log:
                self.log(f"note: {self.path} is unreadable ({type(e).__name__}); the device's nominal speed is "
                         f"learnt again")
            return {}
        return data if isinstance(data, dict) else {}

    def baseline_us(self, kind: str) -> float | None:
        """The nominal reference time of ``kind`` (us), None while unknown."""
        entry = self._read().get(self.fingerprint, {}).get(kind)
        v = entry.get("baseline_us") if isinstance(entry, dict) else None
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None

    def learn(self, kind: str, reference_p10_us: float | None) -> None:
        """Lower ``kind``'s nominal time to ``reference_p10_us`` where it is faster (under the
        table's lock when called from a fill; written atomically)."""
        if kind not in KINDS:
            raise ValueError(f"unknown reference kind {kind!r}; one of {KINDS}")
        if reference_p10_us is None or not reference_p10_us > 0:
            return
        current = self.baseline_us(kind)
        if current is not None and current <= reference_p10_us:
            return
        from ..core.atomic import atomic_write_text

        data = self._read()
        entry = data.setdefault(self.fingerprint, {}).setdefault(kind, {})
        entry.update(baseline_us=float(reference_p10_us), updated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(data, indent=1, sort_keys=True))

    def slow_factor(self, kind: str) -> float | None:
        """How much slower a sample is in the device's slow spells (median of the ratios
        measurements saw on both sides, ``learn_slow``), None while fewer than 3 are known."""
        entry = self._read().get(self.fingerprint, {}).get(kind)
        ratios = entry.get("slow_ratios") if isinstance(entry, dict) else None
        ok = [r for r in ratios or [] if isinstance(r, (int, float)) and not isinstance(r, bool) and r >= 1.0]
        return float(sorted(ok)[len(ok) // 2]) if len(ok) >= 3 else None

    def learn_slow(self, kind: str, slow_ratio: float | None) -> None:
        """Keep one measurement's slow-to-nominal ratio (the last 50 are kept)."""
        if slow_ratio is None or not slow_ratio >= 1.0:
            return
        from ..core.atomic import atomic_write_text

        data = self._read()
        entry = data.setdefault(self.fingerprint, {}).setdefault(kind, {})
        entry["slow_ratios"] = (list(entry.get("slow_ratios") or []) + [float(slow_ratio)])[-50:]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(data, indent=1, sort_keys=True))

    def is_nominal(self, row: dict, kind: str, tolerance: float | None) -> bool:
        """Whether a measured row was taken at the nominal speed known now: its own verdict,
        and its reference time within ``tolerance`` of the current baseline (a baseline
        learnt lower since can make an old row slow). Rows without reference figures, or no
        tolerance, count as nominal."""
        if tolerance is None or row.get("reference_us") is None:
            return True
        if row.get("nominal") is False:
            return False
        base = self.baseline_us(kind)
        return base is None or row["reference_us"] <= base * (1 + tolerance)

    def summary(self) -> dict:
        """Per kind: the nominal reference time (us) and the slow factor known now."""
        return {kind: {"baseline_us": self.baseline_us(kind), "slow_factor": self.slow_factor(kind)}
                for kind in KINDS if self.baseline_us(kind) is not None}

"""The journal of end-to-end network measurements, ``luts/<target>.networks.jsonl``: same
append-only format as the kernel table; a network is measured once per exact build
(architecture plus the kernel keys it compiles to, schedules included)."""

from __future__ import annotations
import hashlib
import json
import time
from pathlib import Path
from .fill import TableClaims
from .store import LatencyTable, failed_row, ok_row
from ..measure.base import Runner
from ..measure.network import measure_network
from ..tuning.schedules import ScheduleSource
from ..core.versions import tvm_version
from ..targets.spec import TargetSpec



# what a network measurement reports beside its samples that its row keeps (``measure.timing``)
NETWORK_ROW_EXTRAS = ("reference_us", "reference_p10_us", "reference_baseline_us", "samples_taken",
                      "samples_nominal", "nominal", "slow_ratio", "corrected_by_slow_factor", "other_cores",
                      "attempts", "runtime_threads", "fast_state_tolerance", "samples_before_fast_state")
MAX_TIMINGS = 3  # a network timed this often is kept even if never at nominal speed


def network_table(target: TargetSpec, luts_dir: Path) -> LatencyTable:
    """End-to-end network measurements of a target (same append-only format as kernels)."""
    return LatencyTable(Path(luts_dir) / f"{target.name}.networks.jsonl").load()


def network_key(target: TargetSpec, arch_json: str, kernel_keys: list[str]) -> str:
    """Identity of a network build: the architecture and the exact kernels it compiles to."""
    blob = json.dumps({"arch": arch_json, "kernels": sorted(kernel_keys)}, sort_keys=True)
    return f"{target.fingerprint}/net/{hashlib.sha1(blob.encode()).hexdigest()[:16]}"


def ensure_measured(net, prepared, target: TargetSpec, runner: Runner, schedules: ScheduleSource,
                    nets_table: LatencyTable, identity: dict, table_sum_us: float,
                    poll_s: float = 1.0) -> dict | None:
    """The end-to-end measurement row of ``net`` (measured now unless the journal has it).

    ``identity`` (e.g. the architecture and space, or the model name) is stored in the row
    and, with the exact kernel keys, forms the row key. Returns None if measuring failed
    (the failure is journaled too). Whether it must be measured is decided under the
    journal's lock (a claim, as for kernels in ``fill``): while another live run measures the
    same build, this one waits (``poll_s`` seconds between looks) and takes its row.
    """
    # an architecture is identified by its JSON alone (any space gives the same kernels)
    ident = identity["arch"] if "arch" in identity else identity
    key = network_key(target, json.dumps(ident, sort_keys=True), [p.key for p in prepared])
    baseline = _baseline(target, nets_table)
    tolerance = target.network_evaluator.nominal_tolerance
    row = nets_table.get(key)
    if row is not None and (baseline.is_nominal(row, "vm", tolerance) or nets_table.timings(key) >= MAX_TIMINGS):
        return row
    crc = (row or {}).get("crc")
    claims = TableClaims(nets_table)
    while True:  # decided under the journal's lock: two runs never measure one build twice
        mine, _theirs, done = claims.claim([_Key(key)], lambda k: (nets_table.get(k) or {}).get("crc") not in (None, crc))
        if done:
            return nets_table.get(key)
        if mine:
            break
        time.sleep(poll_s)  # another live run is measuring this very network
    try:
        return _measure(net, prepared, target, runner, schedules, nets_table, identity, table_sum_us, key)
    finally:
        claims.release()


class _Key:
    def __init__(self, key: str):
        self.key = key


def _baseline(target: TargetSpec, nets_table: LatencyTable):
    from .reference import ReferenceBaseline

    return ReferenceBaseline(nets_table.path.parent, target.name, target.fingerprint)


def _measure(net, prepared, target, runner, schedules, nets_table, identity, table_sum_us, key):
    from dataclasses import replace

    baseline = _baseline(target, nets_table)
    evaluator = replace(target.network_evaluator, reference_baseline_us=baseline.baseline_us("vm"),
                        slow_factor=baseline.slow_factor("vm"))
    res = measure_network(net, target, runner, schedules, evaluator=evaluator)
    if res.ok and evaluator.nominal_tolerance is not None:
        baseline.learn("vm", res.extra.get("reference_p10_us"))
        baseline.learn_slow("vm", res.extra.get("slow_ratio"))
    base = {**identity, "target": target.name, "target_fingerprint": target.fingerprint,
            "tvm_version": tvm_version(), "device_label": runner.label, "emulated": runner.emulated,
            "kernel_keys": [p.key for p in prepared], "kernel_counts": [p.kernel.count for p in prepared],
            "table_sum_us": table_sum_us}
    base.update({k: res.extra[k] for k in NETWORK_ROW_EXTRAS if k in res.extra})
    if res.ok:
        nets_table.append([ok_row(key, base, res.samples_us, res.number)])
    else:
        nets_table.append([failed_row(key, base, res.error)])
    return nets_table.get(key)

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
    row = nets_table.get(key)
    if row is not None:
        return row
    claims = TableClaims(nets_table)
    while True:  # decided under the journal's lock: two runs never measure one build twice
        mine, _theirs, done = claims.claim([_Key(key)], lambda k: k in nets_table)
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


def _measure(net, prepared, target, runner, schedules, nets_table, identity, table_sum_us, key):
    res = measure_network(net, target, runner, schedules)
    base = {**identity, "target": target.name, "target_fingerprint": target.fingerprint,
            "tvm_version": tvm_version(), "device_label": runner.label, "emulated": runner.emulated,
            "kernel_keys": [p.key for p in prepared], "kernel_counts": [p.kernel.count for p in prepared],
            "table_sum_us": table_sum_us}
    if res.ok:
        nets_table.append([ok_row(key, base, res.samples_us, res.number)])
    else:
        nets_table.append([failed_row(key, base, res.error)])
    return nets_table.get(key)

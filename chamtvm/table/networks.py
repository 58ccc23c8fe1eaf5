"""The journal of end-to-end network measurements, ``luts/<target>.networks.jsonl``: same
append-only format as the kernel table; a network is measured once per exact build
(architecture plus the kernel keys it compiles to, schedules included).

A target whose ``network_evaluator.rounds`` is above 1 times a batch of networks in rounds
(``ensure_measured_all``): each network is compiled once, then timed once per round,
round-robin over the batch, and its row pools its rounds (``measure.timing.pooled_rounds``).
The device's speed drifts over minutes; rounds spread each network's timing over the whole
batch, so two networks of a batch are compared in the same mix of the device's states, as
the kernels of a table are. Every finished round is journaled at once in
``<networks>.jsonl.rounds.jsonl``, so an interrupted batch keeps the rounds it took and a rerun
takes only the missing ones."""

from __future__ import annotations
import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from .fill import TableClaims
from .store import LatencyTable, failed_row, ok_row
from ..measure.base import MeasureResult, Runner
from ..measure.network import NetworkBuilds, measure_network, shared_or_own
from ..tuning.schedules import ScheduleSource
from ..core.versions import tvm_version
from ..targets.spec import Evaluator, TargetSpec



# what a network measurement reports beside its samples that its row keeps (``measure.timing``)
NETWORK_ROW_EXTRAS = ("reference_us", "reference_p10_us", "reference_baseline_us", "samples_taken",
                      "samples_nominal", "nominal", "slow_ratio", "corrected_by_slow_factor", "other_cores",
                      "attempts", "runtime_threads", "fast_state_tolerance", "samples_before_fast_state",
                      "rounds", "round_medians_us")
MAX_TIMINGS = 3  # a network timed this often is kept even if never at nominal speed


def network_table(target: TargetSpec, luts_dir: Path) -> LatencyTable:
    """End-to-end network measurements of a target (same append-only format as kernels)."""
    return LatencyTable(Path(luts_dir) / f"{target.name}.networks.jsonl").load()


def network_key(target: TargetSpec, arch_json: str, kernel_keys: list[str]) -> str:
    """Identity of a network build: the architecture and the exact kernels it compiles to."""
    blob = json.dumps({"arch": arch_json, "kernels": sorted(kernel_keys)}, sort_keys=True)
    return f"{target.fingerprint}/net/{hashlib.sha1(blob.encode()).hexdigest()[:16]}"


@dataclass
class NetworkToMeasure:
    """One network to measure end to end: the lowered ``net``, its ``prepared`` kernels
    (schedules included), the ``identity`` its row stores (e.g. architecture and space, or a
    model name) and its table sum (us, or None) stored beside the measurement."""

    net: object
    prepared: list
    identity: dict
    table_sum_us: float | None = None
    schedules: ScheduleSource | None = None  # what builds it (None: the call's), e.g. a snapshot of before a tuning


def _schedules_of(item: NetworkToMeasure, default: ScheduleSource) -> ScheduleSource:
    return default if item.schedules is None else item.schedules


def build_key(target: TargetSpec, identity: dict, prepared) -> str:
    """The row key of a network build (``network_key`` of its architecture or identity)."""
    ident = identity["arch"] if "arch" in identity else identity  # any space gives an architecture the same kernels
    return network_key(target, json.dumps(ident, sort_keys=True), [p.key for p in prepared])


def ensure_measured(net, prepared, target: TargetSpec, runner: Runner, schedules: ScheduleSource,
                    nets_table: LatencyTable, identity: dict, table_sum_us: float | None,
                    poll_s: float = 1.0) -> dict | None:
    """The end-to-end measurement row of ``net`` (measured now unless the journal has it);
    one network of ``ensure_measured_all`` (its rounds, if the target asks for several, back
    to back). Returns None if measuring failed (the failure is journaled too)."""
    return ensure_measured_all([NetworkToMeasure(net, prepared, identity, table_sum_us)], target, runner,
                               schedules, nets_table, poll_s=poll_s)[0]


def ensure_measured_all(items: Sequence[NetworkToMeasure], target: TargetSpec, runner: Runner,
                        schedules: ScheduleSource, nets_table: LatencyTable,
                        on_done: Callable[[int, dict | None], None] | None = None,
                        poll_s: float = 1.0, builds: NetworkBuilds | None = None) -> list[dict | None]:
    """The end-to-end measurement row of every item (None where measuring failed; failures
    are journaled too), measured now unless the journal settles it; ``on_done(index, row)`` as
    each item's row is final.

    One round (``network_evaluator.rounds`` 1): each network timed in turn; a row that was not
    at nominal speed is timed again by a later call, at most ``MAX_TIMINGS`` times. Several
    rounds: the networks are compiled once and timed round-robin (module docstring); a row
    that pools at least the rounds asked is settled. Whether a network must be measured is
    decided under the journal's lock (a claim, as for kernels in ``fill``): while another live
    run measures the same build, this one waits (``poll_s`` seconds between looks) and takes
    its row. ``builds``: an open ``measure.network.NetworkBuilds`` the networks are compiled in
    and kept for a later use of the same builds (default: compiled for this call only)."""
    rounds = target.network_evaluator.rounds
    out: list[dict | None] = [None] * len(items)

    def done(i: int, row: dict | None) -> None:
        out[i] = row
        if on_done is not None:
            on_done(i, row)

    if rounds <= 1:
        for i, it in enumerate(items):
            done(i, _ensure_measured_once(it.net, it.prepared, target, runner, _schedules_of(it, schedules),
                                          nets_table, it.identity, it.table_sum_us, poll_s, builds))
        return out
    by_key: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_key.setdefault(build_key(target, it.identity, it.prepared), []).append(i)

    def settled(key: str) -> bool:
        row = nets_table.get(key)
        return row is not None and int(row.get("rounds") or 1) >= rounds

    def finish(key: str) -> None:
        for i in by_key.pop(key):
            done(i, nets_table.get(key))

    for key in [k for k in by_key if settled(k)]:
        finish(key)
    claims = TableClaims(nets_table)
    while by_key:  # decided under the journal's lock: two runs never measure one build twice
        mine, _theirs, finished = claims.claim([_Key(k) for k in by_key], settled)
        for k in finished:
            finish(k.key)
        if mine:
            try:
                _measure_in_rounds({k.key: items[by_key[k.key][0]] for k in mine}, rounds, target, runner,
                                   schedules, nets_table, finish, builds)
            finally:
                claims.release()
        elif by_key:
            time.sleep(poll_s)  # another live run is measuring these very networks
    return out


def _ensure_measured_once(net, prepared, target: TargetSpec, runner: Runner, schedules: ScheduleSource,
                          nets_table: LatencyTable, identity: dict, table_sum_us: float | None,
                          poll_s: float = 1.0, builds: NetworkBuilds | None = None) -> dict | None:
    """``ensure_measured`` for a target that times networks in one round.

    ``identity`` (e.g. the architecture and space, or the model name) is stored in the row
    and, with the exact kernel keys, forms the row key. Returns None if measuring failed
    (the failure is journaled too). Whether it must be measured is decided under the
    journal's lock (a claim, as for kernels in ``fill``): while another live run measures the
    same build, this one waits (``poll_s`` seconds between looks) and takes its row.
    """
    key = build_key(target, identity, prepared)
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
        return _measure(net, prepared, target, runner, schedules, nets_table, identity, table_sum_us, key, builds)
    finally:
        claims.release()


class _Key:
    def __init__(self, key: str):
        self.key = key


def _baseline(target: TargetSpec, nets_table: LatencyTable):
    from .reference import ReferenceBaseline

    return ReferenceBaseline(nets_table.path.parent, target.name, target.fingerprint)


def measure_at_nominal_speed(measure: Callable[[Evaluator], MeasureResult], target: TargetSpec,
                             luts_dir: str | Path) -> MeasureResult:
    """``measure(evaluator)`` of one network with the target's network evaluator at the
    device's nominal speed as learnt in ``luts_dir`` (``table.reference``: the nominal
    reference time and the slow spells' factor), and what it shows of that speed learnt back.
    A network journaled in one round and a library the transform job times go through here
    (journaling in rounds does the same per round), so they are the same kind of figure."""
    from .reference import ReferenceBaseline

    baseline = ReferenceBaseline(luts_dir, target.name, target.fingerprint)
    evaluator = replace(target.network_evaluator, reference_baseline_us=baseline.baseline_us("vm"),
                        slow_factor=baseline.slow_factor("vm"))
    res = measure(evaluator)
    if res.ok and evaluator.nominal_tolerance is not None:
        baseline.learn("vm", res.extra.get("reference_p10_us"))
        baseline.learn_slow("vm", res.extra.get("slow_ratio"))
    return res


def _measure(net, prepared, target, runner, schedules, nets_table, identity, table_sum_us, key, builds=None):
    res = measure_at_nominal_speed(lambda ev: measure_network(net, target, runner, schedules, evaluator=ev,
                                                              builds=builds, build_key=key), target,
                                   nets_table.path.parent)
    base = _row_base(NetworkToMeasure(net, prepared, identity, table_sum_us), target, runner)
    base.update({k: res.extra[k] for k in NETWORK_ROW_EXTRAS if k in res.extra})
    if res.ok:
        nets_table.append([ok_row(key, base, res.samples_us, res.number)])
    else:
        nets_table.append([failed_row(key, base, res.error)])
    return nets_table.get(key)


def rounds_journal_path(nets_table: LatencyTable) -> Path:
    """Where the rounds of networks not yet settled are journaled (beside the journal)."""
    return Path(str(nets_table.path) + ".rounds.jsonl")


def _journal_records(path: Path) -> list[tuple[bytes, dict]]:
    """``(raw line, record)`` of every JSON-object line of the rounds journal ``path`` (none
    when it does not exist); a line that is not one (a torn write, set aside on the next
    append) is skipped."""
    from ..core.jsonl import split_lines

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    lines, tail, _torn = split_lines(data)
    out = []
    for raw in [*lines, *([tail] if tail else [])]:
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict):
            out.append((raw, line))
    return out


def compact_rounds_journal(nets_table: LatencyTable) -> list[dict]:
    """Drop the journaled rounds no rerun can use any more: those of a measurement that has
    since been settled by a row (``after_timings`` below the key's row count in
    ``nets_table``; a rerun reloads the journal and only takes rounds taken after the key's
    last row). Rounds of measurements still open, here or in another process, are kept.
    Under the journal's lock, replaced atomically (only when something is dropped); returns
    the records kept, in journal order."""
    from filelock import FileLock

    from ..core.atomic import atomic_path

    path = rounds_journal_path(nets_table)
    if not path.exists():
        return []
    with FileLock(str(path) + ".lock"):
        records = _journal_records(path)
        keep = [(raw, line) for raw, line in records
                if line.get("after_timings", -1) >= nets_table.timings(line.get("key"))]
        if len(keep) < len(records):
            with atomic_path(path) as tmp:
                Path(tmp).write_bytes(b"".join(raw + b"\n" for raw, _ in keep))
    return [line for _raw, line in keep]


def _journaled_rounds(nets_table: LatencyTable, keys, records: list[dict]) -> dict[str, list[MeasureResult]]:
    """The rounds of the journal ``records`` taken for ``keys`` since each key's last row (an
    interrupted batch's)."""
    out: dict[str, list[MeasureResult]] = {k: [] for k in keys}
    for line in records:
        key = line.get("key")
        # a round belongs to the measurement after the key's last row: ``after_timings`` rows
        if key in out and line.get("after_timings") == nets_table.timings(key) and len(out[key]) == line.get("round"):
            out[key].append(MeasureResult.from_json(line["result"]))
    return out


def _measure_in_rounds(todo: dict[str, NetworkToMeasure], rounds: int, target: TargetSpec, runner: Runner,
                       schedules: ScheduleSource, nets_table: LatencyTable, finish: Callable[[str], None],
                       builds: NetworkBuilds | None = None) -> None:
    """Compile each network of ``todo`` (row key -> network) once (in ``builds`` when given),
    time them round-robin ``rounds`` times (one ``Runner.measure_networks`` call per round; rounds journaled as they
    finish), journal each one's pooled row after its last round and ``finish(key)``; a network
    that fails to compile or to run is journaled as failed and finished at once."""
    from ..core.jsonl import append_lines
    from ..measure.timing import pooled_rounds

    baseline = _baseline(target, nets_table)
    taken = _journaled_rounds(nets_table, todo, compact_rounds_journal(nets_table))
    with shared_or_own(builds) as held:
        libraries: dict[str, Path] = {}
        for key, it in todo.items():
            library, error = held.library(key, it.net, target, _schedules_of(it, schedules))
            if error:
                nets_table.append([failed_row(key, _row_base(it, target, runner), error)])
                finish(key)
            else:
                libraries[key] = library
        for r in range(rounds):
            evaluator = replace(target.network_evaluator, reference_baseline_us=baseline.baseline_us("vm"),
                                slow_factor=baseline.slow_factor("vm"))
            this_round = [(k, libraries[k], todo[k].net.inputs) for k in libraries if len(taken[k]) <= r]
            for res in runner.measure_networks(this_round, evaluator):
                key, it = res.key, todo[res.key]
                if not res.ok:
                    nets_table.append([failed_row(key, {**_row_base(it, target, runner), "round": r},
                                                  res.error or "no samples")])
                    del libraries[key]
                    finish(key)
                    continue
                if evaluator.nominal_tolerance is not None:
                    baseline.learn("vm", res.extra.get("reference_p10_us"))
                    baseline.learn_slow("vm", res.extra.get("slow_ratio"))
                taken[key].append(res)
                if len(taken[key]) < rounds:
                    append_lines(rounds_journal_path(nets_table), [json.dumps(
                        {"key": key, "round": len(taken[key]) - 1, "after_timings": nets_table.timings(key),
                         "result": res.to_json()}, sort_keys=True)])
                    continue
                samples, extra = pooled_rounds(taken[key])
                base = {**_row_base(it, target, runner), **{k: extra[k] for k in NETWORK_ROW_EXTRAS if k in extra}}
                nets_table.append([ok_row(key, base, samples, max(t.number for t in taken[key]))])
                del libraries[key]
                finish(key)


def _row_base(it: NetworkToMeasure, target: TargetSpec, runner: Runner) -> dict:
    """What a network row stores beside its measurement."""
    return {**it.identity, "target": target.name, "target_fingerprint": target.fingerprint,
            "tvm_version": tvm_version(), "device_label": runner.label, "emulated": runner.emulated,
            "kernel_keys": [p.key for p in it.prepared], "kernel_counts": [p.kernel.count for p in it.prepared],
            "table_sum_us": it.table_sum_us}

"""Profile a space on a target: measure the design's networks end to end (reusing the network
journal), look up or train their accuracies (counted, through the accuracy journal), and
compute the friendliness table and the reduced space.

In: a space, a target with its runner and schedules, the kernel table (only to store each
network's table sum beside its measurement; friendliness uses end-to-end latencies alone),
the network journal ``luts/<target>.networks.jsonl`` and an accuracy source (a task, or an
accuracy journal's existing trainings, or none). Out: a :class:`Profile` (the
``friendliness.Friendliness`` table plus what was measured, reused and looked up), and
``write_outputs`` writes its JSON, heat map and the reduced space file.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..space.restrict import restrict
from .design import balanced_design, default_design_size, design_summary, effects_model
from .friendliness import DEFAULT_DROP, DEFAULT_RULE, RULE_TEXT, Friendliness, analyse


@dataclass
class MeasuredNetworks:
    """End-to-end latencies of the design's networks that measured ok."""

    indices: np.ndarray          # (n_ok, D) choice-index rows
    latency_ms: np.ndarray       # (n_ok,) median of the repeats
    spread_pct: list[float]      # per network, IQR/median of the repeats
    keys: list[str]
    measured_now: int
    reused: int
    failed: list[dict] = field(default_factory=list)


def measure_networks(space, rows, target, runner, schedules, table, nets_table, progress: bool = True,
                     desc: str = "design networks (measure end to end)") -> MeasuredNetworks:
    """Measure each choice-index row's network end to end unless the network journal has this
    exact build, all in one batch (``table.networks.ensure_measured_all``: round-robin where the
    target times networks in rounds); failures are journaled and listed."""
    from ..core.metrics import spread_pct
    from ..core.progress import progress_bar
    from ..latency.table_sum import table_sum
    from ..lower.network import lower_arch
    from ..table.fill import prepare
    from ..table.networks import NetworkToMeasure, ensure_measured_all

    rows = np.asarray(rows, dtype=np.int64)
    items = []
    for i, row in enumerate(rows):
        arch = space.from_indices(row)
        net = lower_arch(space, arch, f"friendly{i}", **target.lowering())
        prep = prepare(net.kernels, target, schedules)
        pred = table_sum(prep, table) if table is not None else None
        items.append(NetworkToMeasure(net, prep, {"arch": arch.to_dict(), "space": space.name},
                                      pred.latency_ms * 1e3 if pred is not None and pred.complete else None))
    before = len(nets_table)
    bar = progress_bar(len(rows), desc, progress)
    try:
        recs = ensure_measured_all(items, target, runner, schedules, nets_table, on_done=lambda _i, _row: bar.update(1))
    finally:
        bar.close()
    measured_now = min(len(nets_table) - before, len(rows))
    ok_rows, lat, spreads, keys, failed = [], [], [], [], []
    for row, it, rec in zip(rows, items, recs):
        if rec is not None and rec.get("status") == "ok":
            ok_rows.append(row)
            lat.append(rec["runtime_us_p50"] / 1e3)
            spreads.append(spread_pct(rec))
            keys.append(rec["key"])
        else:
            failed.append({"architecture": it.identity["arch"], "error": (rec or {}).get("error", "not measured")})
    return MeasuredNetworks(np.array(ok_rows, dtype=np.int64).reshape(-1, space.encoding_length), np.array(lat),
                            spreads, keys, measured_now, len(rows) - measured_now, failed)


@dataclass
class Accuracies:
    """Accuracies (points) of networks of the space, and where they came from."""

    indices: np.ndarray   # (m, D)
    points: np.ndarray    # (m,)
    source: dict          # task / journal, lookups or trainings counted, new ones


def design_accuracies(space, rows, task: str, journal_path: Path | None = None, seed: int = 0,
                      progress: bool = True) -> Accuracies:
    """Look up or train every design network through the accuracy journal (a rerun reuses
    the journaled ones); each distinct network is one counted lookup or training."""
    from ..accuracy.fit import default_journal
    from ..accuracy.journal import Journal
    from ..accuracy.tasks import make_trainer
    from ..accuracy.trainer import train_archs

    trainer = make_trainer(task)
    trainer.check(space)
    journal = Journal(journal_path or default_journal(task, space))
    archs = [space.from_indices(r) for r in rows]
    results = train_archs(space, archs, trainer, journal, seed=seed, progress=progress)
    ok = [(r, a) for r, a in zip(rows, results) if a.accuracy is not None]
    errors = sorted({a.error for a in results if a.accuracy is None and a.error})
    return Accuracies(np.array([r for r, _ in ok], dtype=np.int64).reshape(-1, space.encoding_length),
                      np.array([100.0 * a.accuracy for _, a in ok]),
                      {"task": task, "kind": getattr(trainer, "kind", "training"), "journal": str(journal.path),
                       "counted": len(archs), "new": sum(not a.cached for a in results),
                       "failed": len(archs) - len(ok), "errors": errors[:3],
                       "what": f"{len(archs)} design networks, each one counted {getattr(trainer, 'kind', 'training')}"
                               f"; nothing else of the task was used"})


def journal_accuracies(space, journal_path: Path) -> Accuracies:
    """Every trained network of ``space`` in an accuracy journal, as it is (nothing trained now)."""
    from ..accuracy.fit import journal_trainings

    idx, y, protocol = journal_trainings(space, Path(journal_path))
    return Accuracies(idx, 100.0 * y, {"journal": str(journal_path), "protocol": protocol, "counted": int(len(y)),
                                       "new": 0, "what": "the journal's trainings of this space, as they are"})


@dataclass
class Profile:
    """Everything the ``friendliness`` command reports."""

    table: Friendliness
    target: str
    device_label: str
    emulated: bool
    design: dict
    measured: MeasuredNetworks
    accuracy: dict | None
    seconds: dict
    space_size: int

    def to_dict(self) -> dict:
        m = self.measured
        return {"target": self.target, "device_label": self.device_label, "emulated": self.emulated,
                "space_size": self.space_size, "design": self.design,
                "networks": {"measured_ok": int(len(m.latency_ms)), "measured_now": m.measured_now,
                             "reused_from_journal": m.reused, "failed": m.failed,
                             "median_repeat_spread_pct": float(np.median(m.spread_pct)) if m.spread_pct else None,
                             "latency_ms": [float(x) for x in m.latency_ms],
                             "indices": [r.tolist() for r in m.indices],
                             "keys": m.keys},
                "accuracy": self.accuracy, "seconds": self.seconds, **self.table.to_dict()}


def profile_space(space, target, runner, schedules, table, nets_table, networks: int | None = None,
                  seed: int = 0, task: str | None = None, journal: Path | None = None,
                  drop: float = DEFAULT_DROP, progress: bool = True, log=print,
                  rule: str = DEFAULT_RULE) -> Profile:
    """The design (``networks``, default ``design.default_design_size``, seeded), its end-to-end
    latencies, the accuracies (``task``: look up / train the design; else ``journal``'s
    trainings; else none) and the friendliness table with the reduction (``rule``, ``drop``)."""
    t0 = time.time()
    model = effects_model(space)
    n = networks or default_design_size(model, space.size())
    rows = balanced_design(model, n, seed)
    design = {**design_summary(model, rows), "seed": seed, "what": "balanced, D-optimal (design.balanced_design)"}
    t1 = time.time()
    measured = measure_networks(space, rows, target, runner, schedules, table, nets_table, progress)
    if len(measured.latency_ms) <= model.n_params:
        raise RuntimeError(f"only {len(measured.latency_ms)} of {n} networks measured ok, too few for "
                           f"{model.n_params} effects; first error: {measured.failed[0]['error'] if measured.failed else '-'}")
    t2 = time.time()
    acc = None
    if task is not None:
        acc = design_accuracies(space, rows, task, journal, progress=progress)
    elif journal is not None:
        acc = journal_accuracies(space, journal)
    t3 = time.time()
    result = analyse(space, measured.indices, measured.latency_ms, None if acc is None else acc.points, drop,
                     accuracy_indices=None if acc is None else acc.indices, rule=rule)
    seconds = {"design": round(t1 - t0, 1), "measure": round(t2 - t1, 1), "accuracy": round(t3 - t2, 1),
               "analysis": round(time.time() - t3, 1)}
    return Profile(result, target.name, runner.label, bool(runner.emulated), design, measured,
                   None if acc is None else acc.source, seconds, space.size())


def reduced_name(space_name: str, target_name: str) -> str:
    return f"{space_name}-{target_name}-friendly"


def write_outputs(profile: Profile, space, out_dir: Path, provenance: dict) -> dict:
    """Write ``friendliness.json``, the heat map ``friendliness.png`` and, when choices were
    dropped, the reduced space ``<space>-<target>-friendly.json`` into ``out_dir``; their paths."""
    from ..core.atomic import atomic_write_text
    from .plot import heatmap

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": str(out_dir / "friendliness.json"), "plot": str(out_dir / "friendliness.png")}
    doc = {**profile.to_dict(), "provenance": provenance}
    if profile.table.reduced:
        name = reduced_name(space.name, profile.target)
        emu = " (EMULATED board)" if profile.emulated else ""
        n_ok = len(profile.measured.latency_ms)
        description = (f"{space.name} reduced for target {profile.target}{emu} by `chamtvm friendliness`: "
                       f"{n_ok} networks measured end to end, accuracies from "
                       f"{(profile.accuracy or {}).get('counted')} {(profile.accuracy or {}).get('task', 'journal')} "
                       f"networks; rule {profile.table.rule}: {RULE_TEXT[profile.table.rule]}; drop {profile.table.drop:.3g}; "
                       f"details: friendliness.json beside this file ({provenance.get('utc', '')})")
        small = restrict(space, profile.table.kept(), name)
        path = out_dir / f"{name}.json"
        d = small.to_dict()
        d["description"] = description
        atomic_write_text(path, json.dumps(d, indent=1))
        paths["reduced_space"] = str(path)
        doc["reduced_space"] = {"path": str(path), "name": name, "size": small.size(), "full_size": space.size()}
    atomic_write_text(paths["json"], json.dumps(doc, indent=1))
    heatmap(profile.table, Path(paths["plot"]),
            f"{space.name} on {profile.target}{' (EMULATION)' if profile.emulated else ''}")
    return paths

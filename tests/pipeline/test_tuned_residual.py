"""The residual refitted after the picks' tuning (``pipeline.tuned_residual``): the neighbours
timed beside the picks, and the refit on measured tuning networks only."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from chamtvm.latency.models import LatencyPredictor
from chamtvm.pipeline.tuned_residual import MIN_NETWORKS, neighbour_archs, refit_residual
from chamtvm.space.schema import SearchSpace
from chamtvm.table.store import LatencyTable, ok_row

FP = "fp0000"


def test_neighbours_are_distinct_near_the_picks_and_never_a_pick():
    space = SearchSpace.load("macro")
    rng = np.random.default_rng(3)
    picks = [space.sample(rng) for _ in range(3)]
    out = neighbour_archs(space, picks, 4, seed=7)
    assert len(out) == 12
    texts = [a.to_json() for a in out]
    assert len(set(texts)) == 12
    assert not set(texts) & {p.to_json() for p in picks}
    for i, n in enumerate(out):  # each is near its own pick: a few choices changed, at least one
        own = np.array(space.indices(picks[i // 4]))
        changed = int((np.array(space.indices(n)) != own).sum())
        assert 1 <= changed <= 4
    assert [a.to_json() for a in neighbour_archs(space, picks, 4, seed=7)] == texts  # seeded


def _table(tmp_path, n_kernels: int) -> LatencyTable:
    """A table of ``n_kernels`` 1x1 convolutions, kernel i at 10 * (i + 1) us."""
    table = LatencyTable(tmp_path / "t.jsonl")
    rows = []
    for i in range(n_kernels):
        c = 8 * (i + 1)
        base = {"name": f"fused_conv2d{i}_add", "args": [[[1, c, 8, 8], "float32"], [[c, c, 1, 1], "float32"],
                                                        [[1, c, 8, 8], "float32"]],
                "flops": 2.0 * c * c * 64, "bytes": 4.0 * (2 * c * 64 + c * c)}
        rows.append(ok_row(f"{FP}/default/{i}", base, [10.0 * (i + 1)] * 5, 1))
    table.append(rows)
    return table


def _priced(table: LatencyTable, n: int, factor: float, seed: int):
    """``n`` measured networks over ``table``'s kernels, each measured at ``factor`` x its table sum."""
    rng = np.random.default_rng(seed)
    keys = [r["key"] for r in table.rows()]
    out = []
    for j in range(n):
        counts = rng.integers(0, 3, len(keys))
        counts[rng.integers(len(keys))] += 1
        total = sum(table.get(k)["runtime_us_p50"] * c for k, c in zip(keys, counts))
        row = {"key": f"{FP}/net{j}", "status": "ok", "target_fingerprint": FP,
               "kernel_keys": [k for k, c in zip(keys, counts) if c], "kernel_counts": [int(c) for c in counts if c],
               "runtime_us_p50": factor * total}
        out.append(SimpleNamespace(ok=True, row=row))
    return out


def test_refit_learns_what_the_table_sum_misses_on_the_tuning_networks(tmp_path):
    table = _table(tmp_path, 6)
    predictor = LatencyPredictor(table)
    refit, selection = refit_residual(_priced(table, 12, 0.8, seed=0), predictor, FP, "scale")
    assert selection["networks"] == 12 and selection["chosen"] == "scale"
    assert selection["table_sum_error_pct"] == pytest.approx(25.0)
    assert refit.table is table and refit.residual is not None
    other = _priced(table, 3, 0.8, seed=1)  # networks the refit never saw
    for p in other:
        kernels = [{"name": table.get(k)["name"], "args": table.get(k)["args"], "flops": table.get(k)["flops"],
                    "bytes": table.get(k)["bytes"], "count": c, "latency_us": table.get(k)["runtime_us_p50"]}
                   for k, c in zip(p.row["kernel_keys"], p.row["kernel_counts"])]
        from chamtvm.latency.features import network_feature_vector

        total = sum(k["latency_us"] * k["count"] for k in kernels)
        got = float(refit.residual.predict(network_feature_vector(kernels)[None, :], np.array([total]))[0])
        assert got == pytest.approx(p.row["runtime_us_p50"], rel=1e-6)


def test_refit_needs_enough_measured_tuning_networks(tmp_path):
    table = _table(tmp_path, 4)
    priced = _priced(table, MIN_NETWORKS - 1, 0.8, seed=0) + [SimpleNamespace(ok=False, row=None)] * 3
    refit, selection = refit_residual(priced, LatencyPredictor(table), FP, "auto")
    assert refit is None and selection["chosen"] is None
    assert selection["networks"] == MIN_NETWORKS - 1 and "fewer than" in selection["why"]

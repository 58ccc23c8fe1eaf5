"""Batch latency prediction of a per-layer space on a real measured x86 table."""

from pathlib import Path

import numpy as np
import pytest

from chamtvm.latency.batch import BatchLatencyPredictor
from chamtvm.latency.features import network_feature_vector
from chamtvm.latency.models import kernel_dicts
from chamtvm.lower.coverage import space_kernel_map
from chamtvm.lower.network import lower_arch
from chamtvm.measure.local import LocalRunner
from chamtvm.space.schema import SearchSpace
from chamtvm.table.fill import fill_table, prepare
from chamtvm.table.store import LatencyTable
from chamtvm.tuning.schedules import ScheduleSource

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.mark.slow  # ~27 s on a contended 2-core machine: measures every kernel
def test_batch_features_of_a_per_layer_space_equal_per_network_ones(x86, tmp_path):
    space = SearchSpace.load(DATA / "space_layers_tiny.json")
    kmap = space_kernel_map(space)
    sched = ScheduleSource(x86, use_database=False)
    table = LatencyTable(tmp_path / "x86.jsonl")
    fill_table(prepare(kmap.kernels.values(), x86, sched), table, LocalRunner(x86), x86)
    batch = BatchLatencyPredictor(kmap, table, x86)
    rng = np.random.default_rng(6)
    sample = [space.sample(rng) for _ in range(5)]
    X, sums = batch.features(batch.indices(sample))
    for arch, x, s in zip(sample, X, sums):
        known, unknown = kernel_dicts(prepare(lower_arch(space, arch).kernels, x86, sched), table)
        assert not unknown
        np.testing.assert_allclose(x, network_feature_vector(known), rtol=1e-9)
        assert s == pytest.approx(sum(k["latency_us"] * k["count"] for k in known))
    np.testing.assert_allclose(batch.predict_ms(batch.indices(sample)), sums / 1e3)

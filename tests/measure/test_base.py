"""``measure.base``: the value types crossing the runner interface (JSON round trips,
``ok``/``median_us``) and the default ``measure_batches`` (a failed batch fails each of its
items with the batch's message; the others are measured in order)."""

import math

from chamtvm.lower.kernels import ArgSpec
from chamtvm.measure.base import KernelBatch, KernelItem, MeasureResult, Runner


def test_kernel_item_json_round_trip():
    item = KernelItem("fp/default/abc", "k_abc_default", (ArgSpec((1, 8, 4, 4), "float32"), ArgSpec((8,), "int8")))
    d = item.to_json()
    assert d == {"key": "fp/default/abc", "symbol": "k_abc_default",
                 "args": [[[1, 8, 4, 4], "float32"], [[8], "int8"]]}
    assert KernelItem.from_json(d) == item


def test_measure_result_ok_median_and_round_trip():
    r = MeasureResult("k", [3.0, 1.0, 2.0, 10.0], number=5, energy_uj=1.5, extra={"device": "a"})
    assert r.ok and r.median_us == 2.5
    assert MeasureResult.from_json(r.to_json()) == r
    failed = MeasureResult("k", error="compile failed: boom")
    assert not failed.ok and math.isnan(failed.median_us)
    assert not MeasureResult("k", samples_us=[]).ok  # no samples is no measurement
    assert MeasureResult.from_json({"key": "k"}) == MeasureResult("k")  # optional fields default


class _ListRunner(Runner):
    """A runner whose 'device' returns the item's position as its time (records calls)."""

    def __init__(self):
        self.calls = []

    def measure_kernels(self, library, items, evaluator):
        self.calls.append(library)
        for i, item in enumerate(items):
            yield MeasureResult(item.key, [float(i)], 1)

    def measure_network(self, library, inputs, evaluator, key="network"):
        return MeasureResult(key, [1.0], 1)


def test_default_measure_batches_fails_a_broken_batch_item_by_item():
    a = (ArgSpec((4,), "float32"),)
    good = KernelBatch("lib1.so", (KernelItem("k1", "s1", a), KernelItem("k2", "s2", a)))
    bad = KernelBatch(None, (KernelItem("k3", "s3", a), KernelItem("k4", "s4", a)), error="build failed: X")
    last = KernelBatch("lib3.so", (KernelItem("k5", "s5", a),))
    with _ListRunner() as runner:
        out = list(runner.measure_batches([good, bad, last], evaluator=None))
    assert [r.key for r in out] == ["k1", "k2", "k3", "k4", "k5"]
    assert [r.ok for r in out] == [True, True, False, False, True]
    assert out[2].error == out[3].error == "build failed: X"
    assert runner.calls == ["lib1.so", "lib3.so"]  # the broken batch never reached the device
    assert runner.emulated is False

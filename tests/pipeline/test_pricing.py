"""``pipeline.pricing``: a network priced by the latency predictor and its end-to-end row from
the network journal (a build measured before is taken from the journal, not measured again),
with the one error formula; a failed or missing measurement says why. Real lowering, table and journal
(``tiny_gray_search``); the measuring itself is ``measure.network``'s (``measure/test_network.py``)."""

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def priced_inputs(tiny_gray_search, x86, tmp_path_factory):
    from chamtvm.latency.models import LatencyPredictor
    from chamtvm.lower.network import lower_arch
    from chamtvm.table.fill import prepare
    from chamtvm.table.store import LatencyTable
    from chamtvm.tuning.schedules import ScheduleSource

    space = tiny_gray_search.space
    arch = space.from_indices(tiny_gray_search.rows[5])
    net = lower_arch(space, arch, "n5")
    sched = ScheduleSource(x86, use_database=False)
    prepared = prepare(net.kernels, x86, sched)
    table = LatencyTable(tiny_gray_search.luts / "x86.jsonl").load()
    return arch, net, prepared, sched, LatencyPredictor(table), tmp_path_factory.mktemp("nets")


def _journal_with(row_of, x86, folder, arch, prepared):
    """A network journal holding one row for the build (``row_of(key)``)."""
    from chamtvm.table.networks import network_key
    from chamtvm.table.store import LatencyTable

    nets = LatencyTable(folder / "x86.networks.jsonl")
    key = network_key(x86, json.dumps(arch.to_dict(), sort_keys=True), [p.key for p in prepared])
    nets.append([row_of(key)])
    return nets


def test_a_journaled_build_is_priced_and_not_measured_again(priced_inputs, x86, in_process_runner):
    from chamtvm.pipeline.pricing import price_and_measure
    from chamtvm.table.store import ok_row

    arch, net, prepared, sched, predictor, folder = priced_inputs
    samples = [90.0, 100.0, 100.0, 110.0]
    nets = _journal_with(lambda key: ok_row(key, {"arch": arch.to_dict()}, samples, 1), x86, folder / "ok", arch,
                         prepared)
    runner = in_process_runner()
    p = price_and_measure(net, prepared, predictor, x86, runner, sched, nets, {"arch": arch.to_dict(), "space": "g"})
    want_ms = sum(predictor.table.get(k.key)["runtime_us_p50"] * k.kernel.count for k in prepared) / 1e3
    assert runner.network_calls == 0 and p.ok and p.measure_error is None
    assert p.predicted_ms == pytest.approx(want_ms) and p.table_sum_ms == pytest.approx(want_ms)
    assert p.measured_ms == pytest.approx(0.1)
    assert p.error_pct == pytest.approx(100 * (want_ms / 0.1 - 1))
    assert p.spread_pct == pytest.approx(100 * float(np.subtract(*np.percentile(samples, [75, 25]))) / 100)


def test_a_failed_or_missing_measurement_has_no_error_pct_and_says_why(priced_inputs):
    from chamtvm.pipeline.pricing import PricedNetwork
    from chamtvm.table.store import failed_row

    _, _, prepared, _, predictor, _ = priced_inputs
    for row, why in ((failed_row("k", {}, "device lost"), "device lost"), (None, "not measured")):
        p = PricedNetwork("n5", prepared, predictor.predict(prepared), 1.0, row)
        assert not p.ok and p.measured_ms is None and p.error_pct is None and p.spread_pct is None
        assert p.measure_error == why and p.predicted_ms > 0

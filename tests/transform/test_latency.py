"""``transform.latency``: blocks priced side by side at their input shapes add up, with the stem
and head, to the whole network's table sum (the same fused kernels), after the missing kernels
were measured for real on x86. The pricing is done once per session by ``digits_latency`` (the
digits teacher's stem, blocks and head into a fresh table; that table then serves the HANT and
prune end-to-end runs)."""

import pytest

torch = pytest.importorskip("torch")


@pytest.mark.slow
def test_blocks_priced_apart_add_up_to_the_network(digits_latency):
    net, priced, whole = digits_latency.net, digits_latency.priced, digits_latency.whole
    assert len(priced) == len(net.blocks) + 2  # stem, every block, head
    assert digits_latency.measured_now > 0 and all(p.latency_ms > 0 and not p.missing for p in priced)
    assert net.stem(torch.zeros(*digits_latency.shape)).shape[1] == net.layers[0].cin
    assert sum(p.latency_ms for p in priced) == pytest.approx(whole.table_sum_ms, rel=1e-9)
    assert sum(p.calls for p in priced) == sum(k["count"] for k in whole.kernels)

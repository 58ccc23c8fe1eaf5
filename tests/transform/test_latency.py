"""``transform.latency``: blocks priced side by side at their input shapes add up, with the stem
and head, to the whole network's table sum (the same fused kernels), after the missing kernels
were measured for real on x86."""

import pytest

torch = pytest.importorskip("torch")


@pytest.mark.slow
def test_blocks_priced_apart_add_up_to_the_network(tmp_path, x86, in_process_runner):
    from chamtvm.space.model import build_model
    from chamtvm.space.schema import Arch, SearchSpace
    from chamtvm.transform.graph import layered
    from chamtvm.transform.latency import TargetLatency
    from chamtvm.transform.teacher import DEFAULT_TEACHERS

    d = DEFAULT_TEACHERS["digits"]
    net = layered(build_model(SearchSpace.load(d["space"]), Arch.from_dict(d["architecture"])), (1, 1, 28, 28), 10)
    lat = TargetLatency(x86, in_process_runner(), luts_dir=tmp_path)
    stem_out = net.stem(torch.zeros(1, 1, 28, 28)).shape
    head_in = net.features(torch.zeros(1, 1, 28, 28)).shape
    parts = [(net.stem, (1, 1, 28, 28))] + [(b, (1, i.cin, i.in_hw, i.in_hw)) for b, i in zip(net.blocks, net.layers)] \
        + [(net.head, tuple(head_in))]
    priced = lat.price_blocks(parts)
    assert lat.measured_now > 0 and all(p.latency_ms > 0 and not p.missing for p in priced)
    whole = lat.price_network(net, (1, 1, 28, 28))
    assert stem_out[1] == net.layers[0].cin
    assert sum(p.latency_ms for p in priced) == pytest.approx(whole.table_sum_ms, rel=1e-9)
    assert sum(p.calls for p in priced) == sum(k["count"] for k in whole.kernels)

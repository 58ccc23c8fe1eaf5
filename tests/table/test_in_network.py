"""``table.in_network``: kernels timed call by call inside a real network (a real child
process, the VM instrument), one row per kernel and network, never timed twice; the view that
prices a kernel by its in-network rows."""

import json

import pytest


@pytest.fixture(scope="module")
def mid_net():
    """Three convolutions of 24 to 48 channels at 24 x 24 px (the second called twice), each
    tens of microseconds: well above the instrument's own cost (``MIN_OVERHEADS``)."""
    import torch
    from torch import nn

    from chamtvm.lower.network import lower_torch

    class Mid(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(16, 48, 3, padding=1, bias=False)
            self.c2 = nn.Conv2d(48, 48, 1, bias=False)
            self.c3 = nn.Conv2d(48, 48, 1, bias=False)

        def forward(self, x):
            return self.c3(torch.relu(self.c2(torch.relu(self.c1(x))))).mean(dim=(2, 3))

    torch.manual_seed(0)
    return lower_torch(Mid().eval(), (1, 16, 24, 24), "mid")

from chamtvm.table.in_network import InNetworkTable, in_network_table, network_items, time_kernels_in_networks
from chamtvm.table.store import LatencyTable, ok_row


def test_each_kernel_of_a_real_network_timed_inside_it_once(mid_net, x86, quick_kernels, tmp_path):
    from chamtvm.measure.local import LocalRunner
    from chamtvm.table.fill import fill_table, prepare
    from chamtvm.table.networks import build_key
    from chamtvm.tuning.schedules import ScheduleSource

    x86 = quick_kernels(x86)  # every sample kept: the rows' values are not what is checked here
    sched = ScheduleSource(x86, use_database=False)
    prepared = prepare(mid_net.kernels, x86, sched)
    table = LatencyTable(tmp_path / "x86.jsonl")
    identity = {"arch": {"tiny": 1}}
    key_of = lambda _n, prep, ident: build_key(x86, ident, prep)  # noqa: E731
    items = network_items(mid_net, prepared, key_of(None, prepared, identity))
    assert {i.key.split("@")[0] for i in items} == {p.key for p in prepared}  # every kernel, by its table key
    with LocalRunner(x86) as runner:
        fill_table(prepared, table, runner, x86)
        insitu = in_network_table(table)
        assert insitu.path == tmp_path / "x86.in_network.jsonl" and len(insitu) == 0
        assert time_kernels_in_networks([(mid_net, prepared, identity)], x86, runner, sched, table, insitu,
                                        key_of) == 1
        rows = list(insitu.rows())
        assert sorted(r["kernel_key"] for r in rows) == sorted(p.key for p in prepared)
        for r in rows:
            assert r["network_key"] == key_of(None, prepared, identity) and r["runtime_us_p50"] >= 0
            assert r["key"] == f"{r['kernel_key']}@{r['network_key']}" and r["timing"] == "in_network_real"
        # kept on disk, and a network already timed is not timed again
        again = in_network_table(table)
        assert len(again) == len(rows)
        assert time_kernels_in_networks([(mid_net, prepared, identity)], x86, runner, sched, table, again,
                                        key_of) == 0
    # the view prices the kernels well above the instrument's cost by their in-network time,
    # keeps the batch row beside it; the others keep their batch rows
    from chamtvm.table.in_network import MIN_OVERHEADS

    view = InNetworkTable(table, again)
    big = [p for p in prepared
           if again.get(f"{p.key}@{key_of(None, prepared, identity)}")["runtime_us_p50"]
           >= MIN_OVERHEADS * again.get(f"{p.key}@{key_of(None, prepared, identity)}")["overhead_us"]]
    assert len(big) >= 2  # both convolution kernels (the 3x3 and the twice-called 1x1)
    for p in prepared:
        if p not in big:
            assert view.get(p.key) == table.get(p.key)
            continue
        got = view.get(p.key)
        assert got["runtime_us_p50"] == pytest.approx(again.get(f"{p.key}@{key_of(None, prepared, identity)}")
                                                      ["runtime_us_p50"])
        assert got["runtime_us_p50_batch_network"] == table.get(p.key)["runtime_us_p50"]
        assert got["priced_from"] == "in_network" and got["in_networks"] == 1
    assert view.priced_in_network([p.key for p in prepared]) == len(big)


def test_the_view_takes_the_median_over_networks_and_leaves_other_kernels_alone(tmp_path):
    table = LatencyTable(tmp_path / "x86.jsonl")
    base = {"name": "k", "args": [[[1], "float32"]], "flops": 1.0, "bytes": 4.0}
    table.append([ok_row("fp/default/1", base, [100.0] * 3, 1), ok_row("fp/default/2", base, [50.0] * 3, 1)])
    insitu = in_network_table(table)
    insitu.append([ok_row(f"fp/default/1@fp/net/{n}", {**base, "kernel_key": "fp/default/1", "network_key": f"fp/net/{n}"},
                          [us] * 3, 1) for n, us in (("a", 70.0), ("b", 80.0), ("c", 90.0))])
    view = InNetworkTable(table, in_network_table(table))
    assert view.get("fp/default/1")["runtime_us_p50"] == 80.0 and view.get("fp/default/1")["in_networks"] == 3
    assert view.get("fp/default/2") == table.get("fp/default/2")  # no in-network rows: the table's
    assert view.get("fp/default/3") is None and "fp/default/1" in view and "fp/default/3" not in view
    assert view.path == table.path  # everything else is the table's
    assert json.loads(json.dumps(view.get("fp/default/1")))["priced_from"] == "in_network"


@pytest.mark.parametrize("rounds", [1, 2])
def test_a_network_timed_end_to_end_then_call_by_call_is_compiled_once(mid_net, x86, quick_kernels, quick_networks,
                                                                      tmp_path, monkeypatch, rounds):
    """Step ``measure picks`` times each tuning network end to end, then call by call: with one
    ``NetworkBuilds`` open across both, the network is compiled once (in one round, as on a
    target timing networks once, and in rounds, as on x86); without it each timing compiles its
    own. The compiler is the real one, only counted."""
    from dataclasses import replace

    import chamtvm.measure.network as network_module
    from chamtvm.measure.local import LocalRunner
    from chamtvm.measure.network import NetworkBuilds
    from chamtvm.table.fill import prepare
    from chamtvm.table.networks import NetworkToMeasure, build_key, ensure_measured_all, network_table
    from chamtvm.tuning.schedules import ScheduleSource

    x86 = quick_networks(quick_kernels(x86))
    x86 = replace(x86, network_evaluator=replace(x86.network_evaluator, rounds=rounds))
    compiled = []
    real = network_module.build_for_measuring
    monkeypatch.setattr(network_module, "build_for_measuring",
                        lambda net, *rest: compiled.append(net.name) or real(net, *rest))
    sched = ScheduleSource(x86, use_database=False)
    prepared = prepare(mid_net.kernels, x86, sched)
    table = LatencyTable(tmp_path / "x86.jsonl")
    key_of = lambda _n, prep, ident: build_key(x86, ident, prep)  # noqa: E731

    def time_both(identity: dict, builds) -> None:
        item = NetworkToMeasure(mid_net, prepared, identity, None)
        row = ensure_measured_all([item], x86, runner, sched, network_table(x86, tmp_path), builds=builds)[0]
        assert row["status"] == "ok" and int(row.get("rounds") or 1) == rounds
        assert time_kernels_in_networks([(mid_net, prepared, identity)], x86, runner, sched, table,
                                        in_network_table(table), key_of, builds=builds) == 1

    with LocalRunner(x86) as runner:  # (no kernel rows needed: an in-network row stands on its own)
        with NetworkBuilds() as builds:
            time_both({"arch": {"shared": rounds}}, builds)
            assert len(builds) == 1
        assert compiled == ["mid"]
        time_both({"arch": {"own": rounds}}, None)  # another build key: measured afresh, compiled per call
        assert compiled == ["mid"] * 3
    with pytest.raises(RuntimeError, match="outside its `with` block"):
        builds.library("k", mid_net, x86, sched)

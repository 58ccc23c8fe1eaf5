"""``table.networks``: the journal of end-to-end network measurements: a build's key, one
real measurement journaled and read back (never measured twice), a failure journaled too,
and a torn last line (a killed writer) ignored on reading."""

import json

import pytest

from chamtvm.table.networks import ensure_measured, network_key, network_table


def test_network_key_identifies_architecture_and_kernels(x86):
    k = network_key(x86, '{"a": 1}', ["k2", "k1"])
    assert k.startswith(f"{x86.fingerprint}/net/") and len(k.rsplit("/", 1)[1]) == 16
    assert network_key(x86, '{"a": 1}', ["k1", "k2"]) == k  # kernel order does not matter
    assert network_key(x86, '{"a": 2}', ["k1", "k2"]) != k
    assert network_key(x86, '{"a": 1}', ["k1", "k3"]) != k  # another schedule: another build


@pytest.fixture()
def prepared(tiny_net, x86):
    from chamtvm.table.fill import prepare
    from chamtvm.tuning.schedules import ScheduleSource

    return prepare(tiny_net.kernels, x86, ScheduleSource(x86, use_database=False))


def test_measured_once_journaled_and_read_back(tiny_net, prepared, x86, in_process_runner, tmp_path):
    from dataclasses import replace

    from chamtvm.tuning.schedules import ScheduleSource

    # a row timed in a slow spell is timed again by design; this claim is about a row that
    # stands, so the target asks for no nominal speed of networks (kernel rows unchanged)
    x86 = replace(x86, network_evaluator=replace(x86.network_evaluator, nominal_tolerance=None))

    sched = ScheduleSource(x86, use_database=False)
    nets = network_table(x86, tmp_path)
    assert nets.path == tmp_path / "x86.networks.jsonl" and len(nets) == 0
    runner = in_process_runner()
    arch = {"stem_channels": 4}
    row = ensure_measured(tiny_net, prepared, x86, runner, sched, nets, {"arch": arch, "space": "s1"},
                          table_sum_us=123.0, poll_s=0.05)
    assert runner.network_calls == 1 and row["status"] == "ok"
    assert row["key"] == network_key(x86, json.dumps(arch, sort_keys=True), [p.key for p in prepared])
    assert row["arch"] == arch and row["space"] == "s1" and row["table_sum_us"] == 123.0
    assert row["kernel_keys"] == [p.key for p in prepared] and sorted(row["kernel_counts"]) == [1, 1, 2]
    assert row["device_label"] == runner.label and row["emulated"] is False and row["tvm_version"]
    # every sample taken; those of the measurement's fastest state kept (fast_state_tolerance)
    assert row["samples_before_fast_state"] >= x86.network_evaluator.repeat >= row["repeat"] >= 1
    assert row["runtime_us_p50"] > 0 and row["runtime_us_max"] <= 1.05 * row["runtime_us_min"]
    # the same architecture (any space) is not measured again, in this run or the next
    again = ensure_measured(tiny_net, prepared, x86, runner, sched, nets, {"arch": arch, "space": "s2"}, 1.0)
    assert again == row and runner.network_calls == 1
    fresh = network_table(x86, tmp_path)
    assert fresh.get(row["key"]) == row
    assert ensure_measured(tiny_net, prepared, x86, runner, sched, fresh, {"arch": arch}, 1.0) == row
    assert runner.network_calls == 1
    # the claim taken while measuring was released
    assert json.loads((tmp_path / "x86.networks.jsonl.claims.json").read_text()) == {}


def test_a_failed_measurement_is_journaled_and_returns_none(tiny_net, prepared, x86, in_process_runner, tmp_path):
    class Broken:
        def apply_to_module(self, mod):
            raise RuntimeError("database damaged")

    nets = network_table(x86, tmp_path)
    runner = in_process_runner()
    assert ensure_measured(tiny_net, prepared, x86, runner, Broken(), nets, {"model": "m"}, 1.0) is None
    key = network_key(x86, json.dumps({"model": "m"}, sort_keys=True), [p.key for p in prepared])
    failed = nets.failed(key)
    assert failed["error"] == "compile failed: RuntimeError: database damaged" and failed["model"] == "m"
    assert runner.network_calls == 0


def test_torn_last_line_is_ignored_on_reading(x86, tmp_path):
    from chamtvm.table.store import ok_row

    nets = network_table(x86, tmp_path)
    nets.append([ok_row(f"{x86.fingerprint}/net/0123456789abcdef", {"arch": {"a": 1}}, [100.0, 110.0], 1)])
    with open(nets.path, "a") as f:
        f.write('{"key": "x86/net/torn", "status": "ok", "runtime_us_p5')  # killed mid-write
    back = network_table(x86, tmp_path)
    assert len(back) == 1 and back.get(f"{x86.fingerprint}/net/0123456789abcdef")["runtime_us_p50"] == 105.0
    assert back.read_report.truncated_tail
    assert back.get("x86/net/torn") is None


def _in_rounds(x86, rounds: int):
    """``x86`` timing networks in ``rounds`` rounds, briefly (no nominal-speed wait)."""
    from dataclasses import replace

    return replace(x86, network_evaluator=replace(x86.network_evaluator, rounds=rounds, nominal_tolerance=None,
                                                  repeat=3, min_repeat_ms=0))


def _recording(in_process_runner, fail_at: int | None = None):
    """The in-process runner, recording which library each network timing ran; the call
    numbered ``fail_at`` (from 1) is interrupted as a kill of the run would be."""
    from pathlib import Path

    class Recording(in_process_runner):
        def __init__(self):
            super().__init__()
            self.order = []

        def measure_network(self, library, inputs, evaluator, key="network"):
            if fail_at is not None and self.network_calls + 1 == fail_at:
                raise KeyboardInterrupt
            self.order.append(Path(library).name)
            return super().measure_network(library, inputs, evaluator, key)

    return Recording()


def test_networks_are_timed_round_robin_and_pool_their_rounds(tiny_net, prepared, x86, in_process_runner, tmp_path):
    from chamtvm.table.networks import NetworkToMeasure, ensure_measured_all, rounds_journal_path
    from chamtvm.tuning.schedules import ScheduleSource

    x86 = _in_rounds(x86, 3)
    sched = ScheduleSource(x86, use_database=False)
    nets = network_table(x86, tmp_path)
    runner = _recording(in_process_runner)
    items = [NetworkToMeasure(tiny_net, prepared, {"model": name}, 10.0) for name in ("a", "b")]
    done = []
    rows = ensure_measured_all(items, x86, runner, sched, nets, on_done=lambda i, row: done.append(i), poll_s=0.05)
    # each network compiled once, then timed once per round, the batch in turn
    assert runner.order == ["net0.so", "net1.so"] * 3
    assert sorted(done) == [0, 1] and rows[0]["key"] != rows[1]["key"]
    for row in rows:
        assert row["status"] == "ok" and row["rounds"] == 3 and len(row["round_medians_us"]) == 3
        # the row pools every round's samples: its median lies within the rounds' medians
        assert min(row["round_medians_us"]) <= row["runtime_us_p50"] <= max(row["round_medians_us"])
        assert row["repeat"] >= 3 and row["model"] in ("a", "b") and row["table_sum_us"] == 10.0
    # the rounds before the last were journaled as they finished (2 per network)
    journaled = [json.loads(line) for line in rounds_journal_path(nets).read_text().splitlines()]
    assert sorted((j["key"], j["round"]) for j in journaled) == sorted((r["key"], k) for r in rows for k in (0, 1))
    # settled: a rerun times nothing; a target asking for more rounds times the networks again
    again = ensure_measured_all(items, x86, runner, sched, network_table(x86, tmp_path), poll_s=0.05)
    assert again == rows and len(runner.order) == 6
    more = ensure_measured_all(items, _in_rounds(x86, 4), runner, sched, network_table(x86, tmp_path), poll_s=0.05)
    assert len(runner.order) == 6 + 8 and all(r["rounds"] == 4 for r in more)
    # the first batch's rounds, settled by its rows, were dropped when the second began: the
    # journal holds the second batch's (3 per network, taken after each key's first row)
    journaled = [json.loads(line) for line in rounds_journal_path(nets).read_text().splitlines()]
    assert sorted((j["key"], j["round"], j["after_timings"]) for j in journaled) == sorted(
        (r["key"], k, 1) for r in rows for k in (0, 1, 2))
    assert json.loads((tmp_path / "x86.networks.jsonl.claims.json").read_text()) == {}


def test_an_interrupted_batch_keeps_its_rounds_and_the_rerun_takes_only_the_missing(
        tiny_net, prepared, x86, in_process_runner, tmp_path):
    from chamtvm.table.networks import NetworkToMeasure, ensure_measured_all
    from chamtvm.tuning.schedules import ScheduleSource

    x86 = _in_rounds(x86, 3)
    sched = ScheduleSource(x86, use_database=False)
    items = [NetworkToMeasure(tiny_net, prepared, {"model": name}, None) for name in ("a", "b")]
    killed = _recording(in_process_runner, fail_at=4)  # a, b, a done; interrupted at b's second round
    with pytest.raises(KeyboardInterrupt):
        ensure_measured_all(items, x86, killed, sched, network_table(x86, tmp_path), poll_s=0.05)
    assert killed.order == ["net0.so", "net1.so", "net0.so"]
    nets = network_table(x86, tmp_path)
    assert len(nets) == 0  # no network has all its rounds yet
    assert json.loads((tmp_path / "x86.networks.jsonl.claims.json").read_text()) == {}  # claims released
    rerun = _recording(in_process_runner)
    rows = ensure_measured_all(items, x86, rerun, sched, nets, poll_s=0.05)
    # only the three missing rounds: b's second, then the third round of both
    assert rerun.order == ["net1.so", "net0.so", "net1.so"]
    assert all(r["status"] == "ok" and r["rounds"] == 3 for r in rows)

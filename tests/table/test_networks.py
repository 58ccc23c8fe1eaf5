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

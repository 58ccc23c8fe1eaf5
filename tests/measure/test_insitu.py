"""measure.insitu: every call of a network timed inside it, the instrument's cost removed."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def batch_vm(tiny_net, x86, tmp_path_factory):
    import numpy as np
    import tvm
    from tvm import relax

    from chamtvm.measure.compile import build_batch_network
    from chamtvm.measure.timing import random_tensor
    from chamtvm.table.fill import prepare
    from chamtvm.tuning.schedules import ScheduleSource

    prepared = prepare(tiny_net.kernels, x86, ScheduleSource(x86, use_database=False))
    path = tmp_path_factory.mktemp("insitu") / "b.so"
    inputs = build_batch_network([(p.symbol, p.func, p.kernel) for p in prepared], x86, path)
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(path)), tvm.cpu(0))
    rng = np.random.default_rng(0)
    return prepared, vm, [random_tensor(a, tvm.cpu(0), rng) for a in inputs]


def test_every_call_is_timed_in_order_with_one_sample_per_run(batch_vm):
    from chamtvm.lower.batchnet import EMPTY_PREFIX
    from chamtvm.measure.insitu import time_calls

    prepared, vm, args = batch_vm
    ct = time_calls(vm, args, runs=5, warmup=1)
    kernels = [s for s in ct.symbols if s.startswith("k_")]
    assert kernels == [p.symbol for p in prepared]  # one call each, in the batch's order
    assert any(s.startswith(EMPTY_PREFIX) for s in ct.symbols)
    assert all(len(col) == 5 for col in ct.samples_us) and len(ct.n_args) == len(ct.symbols)
    per = ct.kernel_samples_us()
    assert {s for s in per if s.startswith("k_")} == set(kernels) and all(len(v) == 5 for v in per.values())
    # the instrument's own cost: the empty calls' median window (the tiny test kernels cost about
    # as much as an empty call, so only the largest is surely above it)
    empty = sorted(w for s, w in zip(ct.symbols, ct.window_us) if s.startswith(EMPTY_PREFIX))
    assert empty[0] <= ct.overhead_us <= empty[-1] and ct.overhead_us > 0
    assert ct.overhead_us < max(ct.window_us[ct.symbols.index(s)] for s in kernels)
    assert ct.e2e_plain_us > 0 and ct.e2e_instrumented_us > 0


def test_the_overhead_comes_from_the_empty_calls_when_present():
    from chamtvm.measure.insitu import instrument_overhead_us

    syms = ["vm.builtin.null_value", "chamtvm_empty_2", "chamtvm_empty_4", "vm.builtin.match_shape", "k"]
    assert instrument_overhead_us(syms, [1.0, 3.0, 5.0, 9.0, 100.0]) == 4.0
    assert instrument_overhead_us(syms[3:], [9.0, 100.0]) == 9.0  # else the argument-taking builtins
    assert instrument_overhead_us(["vm.builtin.null_value", "k"], [1.5, 100.0]) == 1.5
    assert instrument_overhead_us(["k"], [100.0]) == 0.0


def test_time_batch_network_gives_one_result_per_item_with_the_batch_figures(batch_vm, tiny_net, x86, tmp_path):
    import tvm

    from chamtvm.measure.compile import build_batch_network
    from chamtvm.measure.timing import time_batch_network

    prepared, _, _ = batch_vm
    path = tmp_path / "b.so"
    inputs = build_batch_network([(p.symbol, p.func, p.kernel) for p in prepared], x86, path)
    items = [p.item() for p in prepared]
    from dataclasses import replace

    module = tvm.runtime.load_module(str(path))
    plain = replace(x86.evaluator, repeat=4, nominal_tolerance=None, fast_state_tolerance=None)
    res = time_batch_network(module, tvm.cpu(0), inputs, items, plain, runs_per_sample=2)
    assert [r.key for r in res] == [i.key for i in items] and all(r.ok for r in res)
    assert all(len(r.samples_us) == 4 and r.extra["timing"] == "in_network" for r in res)
    assert res[0].extra["attempts"] >= 1 and res[0].extra["overhead_us"] > 0
    # at nominal speed: samples between two timings of the reference kernel the build added
    nominal = replace(plain, nominal_tolerance=0.5, nominal_samples=3, nominal_budget_s=5.0)
    res = time_batch_network(module, tvm.cpu(0), inputs, items, nominal, runs_per_sample=2)
    assert all(r.ok for r in res) and res[0].extra["reference_us"] > 0 and res[0].extra["samples_taken"] >= 4
    assert res[0].extra["samples_nominal"] == len(res[0].samples_us) >= 3
    # the fastest state: each item keeps its samples within 5 % of its fastest, and says so
    fast = replace(plain, repeat=8, fast_state_tolerance=0.05)
    res = time_batch_network(module, tvm.cpu(0), inputs, items, fast, runs_per_sample=2)
    timed = [r for r in res if r.extra["timing"] == "in_network" and min(r.samples_us) > 0]
    assert timed and all(r.ok for r in res)
    assert all(1 <= len(r.samples_us) <= 8 and max(r.samples_us) <= 1.05 * min(r.samples_us) for r in timed)
    assert all(r.extra["fast_state_tolerance"] == 0.05 and r.extra["samples_before_fast_state"] == 8 for r in timed)

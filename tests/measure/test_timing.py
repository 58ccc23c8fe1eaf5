"""``measure.timing``: a tiny real TVM kernel and network timed on the CPU: samples per
repeat in microseconds, the evaluator's ``number``, random inputs in [-1, 1), and a failing
item reported with its error while the rest goes on."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def kernel_lib(x86, tmp_path_factory):
    import tvm
    from tvm.script import tirx as T

    from chamtvm.measure.compile import build_kernel_library

    @T.prim_func
    def inc(A: T.Buffer((4096,), "float32")):
        for i in range(4096):
            A[i] = A[i] + T.float32(1)

    path = build_kernel_library([("k_inc", inc)], x86, tmp_path_factory.mktemp("timing") / "k.so")
    return tvm.runtime.load_module(str(path))


def test_random_tensor_values_and_dtypes():
    import tvm

    from chamtvm.lower.kernels import ArgSpec
    from chamtvm.measure.timing import random_tensor

    rng = np.random.default_rng(0)
    f = random_tensor(ArgSpec((64, 8), "float32"), tvm.cpu(0), rng).numpy()
    assert f.shape == (64, 8) and f.dtype == np.float32
    assert f.min() >= -1 and f.max() < 1 and f.std() > 0.3  # uniform on [-1, 1): std 0.577
    i = random_tensor(ArgSpec((5,), "int32"), tvm.cpu(0), rng).numpy()
    assert i.dtype == np.int32 and not i.any()


def test_kernels_timed_and_a_missing_symbol_fails_alone(kernel_lib, fast_evaluator):
    import tvm

    from chamtvm.lower.kernels import ArgSpec
    from chamtvm.measure.base import KernelItem
    from chamtvm.measure.timing import time_kernels

    arg = (ArgSpec((4096,), "float32"),)
    items = [KernelItem("a", "k_inc", arg), KernelItem("b", "k_nope", arg), KernelItem("c", "k_inc", arg)]
    res = list(time_kernels(kernel_lib, tvm.cpu(0), items, fast_evaluator))
    assert [r.key for r in res] == ["a", "b", "c"]
    ok = [res[0], res[2]]
    for r in ok:
        assert r.ok and r.number == 2 and len(r.samples_us) == 3
        assert all(0 < t < 1e5 for t in r.samples_us)  # 4096 adds: microseconds, not seconds
        assert r.energy_uj is None  # no meter given
    assert not res[1].ok and res[1].error and "k_nope" in res[1].error


def test_network_timed_through_the_vm(tiny_net, x86, fast_evaluator, tmp_path):
    import tvm

    from chamtvm.measure.compile import compile_network, export
    from chamtvm.measure.timing import time_network

    path = export(compile_network(tiny_net.fused, x86), x86, tmp_path / "n.so")
    mod = tvm.runtime.load_module(str(path))
    r = time_network(mod, tvm.cpu(0), tiny_net.inputs, fast_evaluator, key="tiny")
    assert r.ok and r.key == "tiny" and len(r.samples_us) == 3 and r.number == 2
    assert all(0 < t < 1e6 for t in r.samples_us)
    from chamtvm.lower.kernels import ArgSpec

    bad = time_network(mod, tvm.cpu(0), [ArgSpec((1, 3, 9, 9), "float32")], fast_evaluator, key="bad")
    assert not bad.ok and bad.key == "bad" and bad.error  # wrong input shape: an error, not a crash


def test_fastest_state_keeps_the_samples_near_the_fastest():
    from chamtvm.measure.timing import fastest_state

    xs = [10.0, 13.0, 10.4, 12.0, 10.6, 30.0]
    assert fastest_state(xs, 0.05) == [10.0, 10.4]
    assert fastest_state(xs, 0.2) == [10.0, 10.4, 12.0, 10.6]
    assert fastest_state(xs, None) == xs and fastest_state([], 0.05) == []
    assert fastest_state([0.0, 0.4, 0.0], 0.05) == [0.0, 0.4, 0.0]  # below resolution: all kept


def test_a_fast_state_tolerance_keeps_a_real_networks_fastest_samples(tiny_net, x86, fast_evaluator, tmp_path):
    from dataclasses import replace

    import tvm

    from chamtvm.measure.compile import compile_network, export
    from chamtvm.measure.timing import time_network

    path = export(compile_network(tiny_net.fused, x86), x86, tmp_path / "n.so")
    mod = tvm.runtime.load_module(str(path))
    ev = replace(fast_evaluator, repeat=9, fast_state_tolerance=0.02)
    r = time_network(mod, tvm.cpu(0), tiny_net.inputs, ev, key="tiny")
    assert r.ok and 1 <= len(r.samples_us) <= 9 and max(r.samples_us) <= 1.02 * min(r.samples_us)
    assert r.extra["fast_state_tolerance"] == 0.02 and r.extra["samples_before_fast_state"] == 9


def test_cold_cache_evaluator_times_a_real_kernel_and_changes_the_fingerprint(tmp_path):
    """``cache_flush`` times each call after flushing every argument but the first; the
    evaluator round-trips through the worker request and a bad value is refused."""
    import dataclasses

    import numpy as np
    import pytest
    import tvm
    from tvm import te

    from chamtvm.lower.kernels import ArgSpec
    from chamtvm.measure.base import KernelItem
    from chamtvm.measure.compile import build_kernel_library
    from chamtvm.measure.timing import time_kernels
    from chamtvm.targets.spec import Evaluator, TargetError, get_target

    x86 = get_target("x86")
    a = te.placeholder((256, 256), name="a")
    w = te.placeholder((256, 256), name="w")
    b = te.compute((256, 256), lambda i, j: a[i, j] + w[i, j], name="b")
    lib = tvm.runtime.load_module(str(build_kernel_library([("add", te.create_prim_func([a, w, b]))], x86, tmp_path / "k.so")))
    item = KernelItem("k", "add", (ArgSpec((256, 256), "float32"),) * 3)
    cold = Evaluator(number=1, repeat=5, min_repeat_ms=0, cache_flush=True)
    res = list(time_kernels(lib, tvm.cpu(0), [item], cold))[0]
    assert res.ok and len(res.samples_us) == 5 and all(t > 0 for t in res.samples_us)
    assert Evaluator(**cold.to_dict()) == cold
    assert dataclasses.replace(x86, evaluator=cold).fingerprint != x86.fingerprint
    with pytest.raises(TargetError, match="cache_flush: expected true or false"):
        Evaluator.from_dict({"cache_flush": 1}, "t.evaluator")
    assert np.isfinite(res.median_us)


# ------------------------------------------------------------ samples at nominal speed
def _clock(step=0.01):
    t = [0.0]

    def clock():
        t[0] += step
        return t[0]
    return clock


def test_samples_taken_while_the_reference_ran_slow_are_left_out():
    from dataclasses import replace

    from chamtvm.measure.timing import sample_at_nominal_speed
    from chamtvm.targets.spec import Evaluator

    refs = iter([10, 10, 20, 21, 10, 10.5, 20, 20, 10, 10, 10, 11] * 3)
    values = iter([100, 130, 101, 128, 99, 102] * 3)
    ev = replace(Evaluator(repeat=4), nominal_tolerance=0.15, nominal_samples=3, reference_baseline_us=10.0)
    got = sample_at_nominal_speed(lambda: [next(values)], lambda: next(refs), ev, clock=_clock())
    assert got.kept == [100, 101, 99] and got.taken == 5 and got.nominal
    assert got.all_samples == [100, 130, 101, 128, 99, 102][:got.taken] and got.kept_index == [0, 2, 4]
    assert got.extra()["samples_nominal"] == 3 and got.reference_us == 10.0


def test_a_device_never_at_nominal_speed_gives_every_sample_and_says_so():
    from dataclasses import replace

    from chamtvm.measure.timing import sample_at_nominal_speed
    from chamtvm.targets.spec import Evaluator

    ev = replace(Evaluator(repeat=2), nominal_tolerance=0.1, nominal_samples=3, nominal_budget_s=1.0,
                 reference_baseline_us=10.0)
    got = sample_at_nominal_speed(lambda: [5.0], lambda: 20.0, ev, clock=_clock(0.2))
    assert not got.nominal and got.kept == got.all_samples and got.taken >= 2


def test_a_budget_run_out_on_a_slow_device_still_gives_repeat_samples_those_nearest_nominal_speed():
    from dataclasses import replace

    from chamtvm.measure.timing import sample_at_nominal_speed
    from chamtvm.targets.spec import Evaluator

    # two samples at nominal speed, then a slow spell whose reference slows more and more;
    # the budget (0.5 s) is spent after the third sample (0.2 s per clock reading)
    refs = iter([10, 10, 10, 10] + [12 + k for k in range(100)])
    values = iter([100.0 + k for k in range(100)])
    ev = replace(Evaluator(repeat=5), nominal_tolerance=0.1, nominal_samples=4, nominal_budget_s=0.5,
                 reference_baseline_us=10.0)
    got = sample_at_nominal_speed(lambda: [next(values)], lambda: next(refs), ev, clock=_clock(0.2))
    assert got.taken == 5  # went on past the budget until ``repeat`` samples were taken
    assert not got.nominal and got.extra()["samples_nominal"] == 2
    # the two nominal samples, topped up with the three taken nearest nominal speed
    assert got.kept == [100.0, 101.0, 102.0, 103.0, 104.0] and got.kept_index == [0, 1, 2, 3, 4]
    # with more taken than needed, the top-up is the samples whose references ran fastest
    refs = iter([10, 10, 10, 10, 30, 30, 13, 13, 12, 12] + [30] * 10)
    values = iter([100.0 + k for k in range(10)])
    ev = replace(ev, repeat=4, nominal_budget_s=1.0)
    got = sample_at_nominal_speed(lambda: [next(values)], lambda: next(refs), ev, clock=_clock(0.2))
    assert got.taken == 5 and got.kept_index == [0, 1, 3, 4] and got.kept == [100.0, 101.0, 103.0, 104.0]
    assert got.nominal_count == 2


def test_without_a_known_baseline_the_fastest_reference_seen_sets_it_and_sampling_lasts_half_the_budget():
    from dataclasses import replace

    from chamtvm.measure.timing import sample_at_nominal_speed
    from chamtvm.targets.spec import Evaluator

    ev = replace(Evaluator(repeat=1), nominal_tolerance=0.15, nominal_samples=1, nominal_budget_s=2.0)
    refs = iter([20.0, 20.0] * 3 + [10.0] * 100)
    got = sample_at_nominal_speed(lambda: [1.0], lambda: next(refs), ev, clock=_clock(0.1))
    assert got.baseline_us == 10.0 and got.reference_p10_us == 10.0  # the slow start was not taken as nominal
    assert got.taken >= 5  # went on for half the budget (0.1 s per sample here) before trusting it
    ev = replace(ev, nominal_tolerance=None)
    assert sample_at_nominal_speed(lambda: [1.0, 2.0], None, ev).kept == [1.0, 2.0]  # no reference: all kept


def test_slow_spells_are_measured_and_a_measurement_that_saw_no_nominal_sample_is_corrected():
    from dataclasses import replace

    from chamtvm.measure.timing import sample_at_nominal_speed
    from chamtvm.targets.spec import Evaluator

    # samples on both sides: slow samples (reference 1.5x) take 1.2x as long
    refs = iter([10, 10, 15, 15] * 10)
    values = iter([100.0, 120.0] * 10)
    ev = replace(Evaluator(repeat=6), nominal_tolerance=0.15, nominal_samples=3, reference_baseline_us=10.0)
    got = sample_at_nominal_speed(lambda: [next(values)], lambda: next(refs), ev, clock=_clock())
    assert got.slow_ratio == pytest.approx(1.2) and got.corrected_by is None
    # a measurement entirely in a slow spell is divided by the learnt factor, and says so
    ev = replace(ev, nominal_budget_s=0.5, slow_factor=1.2)
    got = sample_at_nominal_speed(lambda: [120.0], lambda: 15.0, ev, clock=_clock(0.1))
    assert got.kept[0] == pytest.approx(100.0) and got.corrected_by == 1.2 and not got.nominal
    assert got.extra()["corrected_by_slow_factor"] == 1.2 and got.extra()["samples_nominal"] == 0


def test_pooled_rounds_keeps_every_rounds_samples_and_the_middle_rounds_figures():
    from chamtvm.measure.base import MeasureResult
    from chamtvm.measure.timing import pooled_rounds

    def round_of(samples, ref, nominal=True, load=0.0):
        return MeasureResult("n", samples, 1, extra={"reference_us": ref, "samples_taken": 9, "samples_nominal": 7,
                                                     "nominal": nominal, "other_cores": load, "attempts": 1})

    rounds = [round_of([10.0, 10.2], 1.0), round_of([12.0, 12.4], 1.2, nominal=False, load=0.4),
              round_of([11.0, 11.1, 11.2], 1.1)]
    samples, extra = pooled_rounds(rounds)
    assert samples == [10.0, 10.2, 12.0, 12.4, 11.0, 11.1, 11.2]  # a slow round weighs as much as a fast one
    assert extra["rounds"] == 3 and extra["round_medians_us"] == [10.1, 12.2, 11.1]
    assert extra["reference_us"] == 1.1  # the middle round's (by median)
    assert extra["samples_taken"] == 27 and extra["samples_nominal"] == 21 and extra["attempts"] == 3
    assert extra["nominal"] is False and extra["other_cores"] == 0.4
    with pytest.raises(ValueError):
        pooled_rounds([rounds[0], MeasureResult("n", error="lost")])
    with pytest.raises(ValueError):
        pooled_rounds([])

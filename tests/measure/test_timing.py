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

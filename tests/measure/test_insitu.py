"""measure.insitu: every call of a network timed inside it, the instrument's cost removed."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def batch_lib(tiny_net, x86, tmp_path_factory):
    """The tiny network's kernels in one batch network: (prepared, library path, input specs)."""
    from chamtvm.measure.compile import build_batch_network
    from chamtvm.table.fill import prepare
    from chamtvm.tuning.schedules import ScheduleSource

    prepared = prepare(tiny_net.kernels, x86, ScheduleSource(x86, use_database=False))
    path = tmp_path_factory.mktemp("insitu") / "b.so"
    inputs = build_batch_network([(p.symbol, p.func, p.kernel) for p in prepared], x86, path)
    return prepared, path, inputs


@pytest.fixture(scope="module")
def batch_vm(batch_lib):
    import numpy as np
    import tvm
    from tvm import relax

    from chamtvm.measure.timing import random_tensor

    prepared, path, inputs = batch_lib
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


def test_the_runtime_vm_runs_and_times_the_same_calls_as_relax_vm(batch_lib, batch_vm):
    """``RuntimeVM`` (the runtime's packed functions only, what a runtime-only device has) is
    the same VM as ``relax.VirtualMachine``: same outputs, same calls, same ``CallTimes``."""
    import numpy as np
    import tvm

    from chamtvm.measure.insitu import RuntimeVM, time_calls

    _, path, _ = batch_lib
    _, vm, args = batch_vm
    rvm = RuntimeVM(tvm.runtime.load_module(str(path)), tvm.cpu(0))
    assert rvm.module.kind == "relax.VirtualMachine"
    # main returns the empty calls' outputs and the running sum of every kernel's output
    np.testing.assert_array_equal(rvm["main"](*args)[-1].numpy(), vm["main"](*args)[-1].numpy())
    a = time_calls(rvm, args, runs=4, warmup=1)
    b = time_calls(vm, args, runs=4, warmup=1)
    assert a.symbols == b.symbols and a.n_args == b.n_args and a.runs == b.runs == 4
    assert all(len(col) == 4 for col in a.samples_us) and len(a.window_us) == len(a.symbols)
    assert set(a.kernel_samples_us()) == set(b.kernel_samples_us()) and a.overhead_us > 0
    assert a.e2e_plain_us > 0 and a.e2e_instrumented_us > 0


def test_the_device_function_times_calls_in_this_process(batch_lib, batch_vm):
    """``chamtvm.time_calls(module, runs, *args)``, as an RPC server answers it: the JSON of the
    device's own ``time_calls`` (no plain runs), back into ``CallTimes``."""
    import json

    import tvm
    import tvm_ffi

    from chamtvm.measure.insitu import DEVICE_FUNC, calls_from_dict, register_device_function, time_calls

    _, path, _ = batch_lib
    _, vm, args = batch_vm
    register_device_function()
    module = tvm.runtime.load_module(str(path))
    ct = calls_from_dict(json.loads(str(tvm_ffi.get_global_func(DEVICE_FUNC)(module, 3, *args))))
    assert ct.symbols == time_calls(vm, args, runs=1, warmup=0, plain=False).symbols
    assert ct.runs == 3 and all(len(col) == 3 for col in ct.samples_us) and ct.e2e_plain_us is None
    assert ct.overhead_us > 0 and ct.e2e_instrumented_us > 0


RUNTIME_ONLY = """
import json, sys
sys.modules["chamtvm"] = None  # the device has only the copy of measure/insitu.py
sys.modules["torch"] = None
import numpy as np
import tvm
import tvm_ffi
assert tvm.base._RUNTIME_ONLY
try:  # as on the emulated board
    from tvm import relax
    sys.exit("tvm.relax imports in a runtime-only TVM")
except (ImportError, AttributeError):
    pass
from chamtvm_insitu import DEVICE_FUNC, register_device_function
register_device_function()
specs = json.loads(sys.argv[2])
args = [tvm.runtime.tensor(np.ones(s, dtype=d), tvm.cpu(0)) for s, d in specs]
out = tvm_ffi.get_global_func(DEVICE_FUNC)(tvm.runtime.load_module(sys.argv[1]), 2, *args)
print(str(out))
"""


def test_the_device_function_needs_no_relax_and_no_chamtvm(batch_lib, batch_vm, tmp_path):
    """The copy of ``insitu.py`` an emulated device gets (``devices.arm``: ``chamtvm_insitu.py``)
    answers ``chamtvm.time_calls`` in TVM's runtime-only mode (``TVM_USE_RUNTIME_LIB=1``: the
    compiler library is not loaded and ``from tvm import relax`` fails, as on the emulated
    board) without chamtvm."""
    import json
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import chamtvm.measure.insitu as insitu
    from chamtvm.measure.insitu import calls_from_dict, time_calls

    _, path, inputs = batch_lib
    _, vm, args = batch_vm
    shutil.copyfile(Path(insitu.__file__), tmp_path / "chamtvm_insitu.py")
    (tmp_path / "run.py").write_text(RUNTIME_ONLY)
    specs = json.dumps([[list(a.shape), a.dtype] for a in inputs])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(tmp_path), TVM_USE_RUNTIME_LIB="1")
    out = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(path), specs], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    ct = calls_from_dict(json.loads(out.stdout.strip().splitlines()[-1]))
    assert ct.symbols == time_calls(vm, args, runs=1, warmup=0, plain=False).symbols
    assert ct.runs == 2 and all(len(col) == 2 for col in ct.samples_us) and ct.kernel_samples_us()


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

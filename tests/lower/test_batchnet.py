"""lower.batchnet: kernels placed in one Relax program compute what they compute alone."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def batch(tiny_net, x86, tmp_path_factory):
    from chamtvm.measure.compile import build_batch_network, build_kernel_library
    from chamtvm.table.fill import prepare
    from chamtvm.tuning.schedules import ScheduleSource

    prepared = prepare(tiny_net.kernels, x86, ScheduleSource(x86, use_database=False))
    d = tmp_path_factory.mktemp("batchnet")
    inputs = build_batch_network([(p.symbol, p.func, p.kernel) for p in prepared], x86, d / "b.so")
    build_kernel_library([(p.symbol, p.func) for p in prepared], x86, d / "k.so")
    return prepared, inputs, d


def test_every_kernel_computes_what_it_computes_alone_on_its_produced_input(batch):
    """Each kernel runs on its first input as written by its producer (input + 0.5) and on
    its other inputs as given; its consumer adds the first element of its output to a running
    sum that starts at ``one``: the sum equals the same figure from each kernel run alone."""
    import tvm
    from tvm import relax

    from chamtvm.lower.batchnet import REFERENCE_ARGS

    prepared, inputs, d = batch
    dev = tvm.cpu(0)
    rng = np.random.default_rng(0)
    host = [rng.uniform(-1, 1, a.shape).astype(a.dtype) for a in inputs]
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(d / "b.so")), dev)
    outs = vm["main"](*[tvm.runtime.tensor(x, dev) for x in host])
    lib = tvm.runtime.load_module(str(d / "k.so"))
    # main's parameters: each kernel's inputs in order, then the running sum's start ``one``
    assert tuple(inputs[-1].shape) == (1,) and len(inputs) == sum(p.kernel.n_inputs for p in prepared) + 1
    expect, pos = float(host[-1][0]), 0
    for p in prepared:
        k = p.kernel
        ins = host[pos:pos + k.n_inputs]
        pos += k.n_inputs
        args = [tvm.runtime.tensor((ins[0] + np.float32(0.5)).astype(ins[0].dtype), dev)]
        args += [tvm.runtime.tensor(x, dev) for x in ins[1:]]
        args += [tvm.runtime.tensor(np.zeros(a.shape, a.dtype), dev) for a in k.args[k.n_inputs:]]
        lib[p.symbol](*args)
        expect += float(args[k.n_inputs].numpy().reshape(-1)[0])
    assert float(list(outs)[-1].numpy()[0]) == pytest.approx(expect, rel=1e-5, abs=1e-5)
    # the reference kernel the build adds beside main: a fixed matmul
    ref_a, ref_b = (rng.uniform(-1, 1, a.shape).astype("float32") for a in REFERENCE_ARGS[:2])
    got = vm["chamtvm_reference"](tvm.runtime.tensor(ref_a, dev), tvm.runtime.tensor(ref_b, dev))
    np.testing.assert_allclose(got.numpy(), ref_a @ ref_b, rtol=1e-4, atol=1e-4)


def test_a_kernel_without_its_input_output_split_is_refused(tiny_net):
    from dataclasses import replace

    from chamtvm.lower.batchnet import batch_network

    k = replace(tiny_net.kernels[0], n_inputs=None)
    with pytest.raises(ValueError, match="inputs and outputs"):
        batch_network([("k0", k.func, k)])


def test_extract_kernels_records_how_many_arguments_are_inputs(tiny_net):
    # conv + relu kernels read the activation and the weight, and write one output
    assert all(k.n_inputs == len(k.args) - 1 for k in tiny_net.kernels if "conv" in k.name)

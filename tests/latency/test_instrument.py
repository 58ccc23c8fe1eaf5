"""chamtvm as a TVM plugin: a PassInstrument in a plain ``tvm.compile`` of an imported ONNX
model prices it from a real measured table; the module pass annotates fused PrimFuncs."""

from __future__ import annotations

import numpy as np
import pytest

from chamtvm.zoo import real


@pytest.fixture(scope="module")
def onnx_and_table(tmp_path_factory, x86):
    """An imported ONNX model (Relax, as the user has it) and a table with some of its kernels."""
    from chamtvm.lower.kernels import from_onnx_file
    from chamtvm.lower.network import lower_relax
    from chamtvm.measure.local import LocalRunner
    from chamtvm.table.fill import fill_table, prepare
    from chamtvm.table.store import LatencyTable
    from chamtvm.tuning.schedules import ScheduleSource

    d = tmp_path_factory.mktemp("inst")
    path = real.export_onnx("mobilenet_v3_small", 32, d / "m.onnx")
    mod = from_onnx_file(path)
    prepared = prepare(lower_relax(mod).kernels, x86, ScheduleSource(x86, use_database=False))
    table = LatencyTable.for_target("x86", d / "luts")
    fill_table(prepared, table, LocalRunner(x86), x86)
    return mod, table, prepared, d / "luts"


@pytest.mark.slow
def test_instrument_prices_a_plain_tvm_compile(onnx_and_table, x86):
    import tvm
    from tvm import relax

    from chamtvm.latency.instrument import LatencyInstrument

    mod, table, prepared, luts = onnx_and_table
    inst = LatencyInstrument("x86", luts_dir=luts)
    with tvm.transform.PassContext(opt_level=3, instruments=[inst]):
        ex = tvm.compile(mod, x86.tvm())
    assert inst.error is None, inst.error
    rep = inst.report.to_dict()
    expect = sum(table.get(p.key)["runtime_us_p50"] * p.kernel.count for p in prepared) / 1e3
    assert rep["complete"] and rep["latency_ms"] == pytest.approx(expect)
    assert {k["key"] for k in rep["kernels"]} == {p.key for p in prepared}
    # the user's build is untouched: it still runs
    vm = relax.VirtualMachine(ex, tvm.cpu())
    out = vm["main"](tvm.runtime.tensor(np.zeros((1, 3, 32, 32), "float32"), tvm.cpu()))
    assert out.numpy().shape == (1, 1000)


@pytest.mark.slow
def test_price_module_pass_annotates_fused_primfuncs(onnx_and_table, x86):
    from tvm import tirx

    from chamtvm.latency.instrument import PriceModule
    from chamtvm.lower.kernels import fuse

    mod, table, prepared, luts = onnx_and_table
    priced = PriceModule("x86", luts_dir=luts)(fuse(mod))
    funcs = [f for _, f in priced.functions.items() if isinstance(f, tirx.PrimFunc)]
    annotated = [f for f in funcs if f.attrs is not None and "chamtvm.latency_us" in f.attrs]
    assert annotated and all(str(f.attrs["chamtvm.source"]) == "table" for f in annotated)
    total = sum(float(f.attrs["chamtvm.latency_us"]) * int(f.attrs["chamtvm.calls"]) for f in annotated) / 1e3
    assert float(priced.attrs["chamtvm.latency_ms"]) == pytest.approx(total, rel=1e-6)
    assert total == pytest.approx(sum(table.get(p.key)["runtime_us_p50"] * p.kernel.count for p in prepared) / 1e3)

"""chamtvm as a TVM plugin: a PassInstrument in a plain ``tvm.compile`` of an imported ONNX
model prices it from a real measured table; the module pass annotates fused PrimFuncs."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def onnx_and_table(tmp_path_factory, x86, small_onnx):
    """An imported ONNX model (conftest ``small_onnx``, in Relax as the user has it) and a table
    with the kernels chamtvm's own lowering gives it."""
    from chamtvm.lower.kernels import from_onnx_file
    from chamtvm.lower.network import lower_relax
    from chamtvm.measure.local import LocalRunner
    from chamtvm.table.fill import fill_table, prepare
    from chamtvm.table.store import LatencyTable
    from chamtvm.tuning.schedules import ScheduleSource

    d = tmp_path_factory.mktemp("inst")
    mod = from_onnx_file(small_onnx)
    prepared = prepare(lower_relax(mod).kernels, x86, ScheduleSource(x86, use_database=False))
    table = LatencyTable.for_target("x86", d / "luts")
    fill_table(prepared, table, LocalRunner(x86), x86)
    return mod, table, prepared, d / "luts"


@pytest.mark.slow
def test_instrument_prices_each_user_pipeline_as_built(onnx_and_table, x86):
    """A plain ``tvm.compile`` (no fusion) and the fused default pipeline give different
    kernels; the instrument prices the ones each build ships (measured now with a runner),
    and never changes the build."""
    import tvm
    from tvm import relax

    from chamtvm.latency.instrument import LatencyInstrument, _called_primfuncs
    from chamtvm.measure.local import LocalRunner

    mod, table, prepared, luts = onnx_and_table
    reports = {}
    for name, pipeline in (("plain", None), ("fused", relax.get_default_pipeline(x86.tvm()))):
        inst = LatencyInstrument("x86", luts_dir=luts, runner=LocalRunner(x86))
        built = {}

        @tvm.instrument.pass_instrument
        class Keep:  # what the user's pipeline hands to CallTIRRewrite, to compare with
            def run_before_pass(self, m, info):
                if str(info.name) == "CallTIRRewrite" and "m" not in built:
                    built["m"] = m

        with tvm.transform.PassContext(opt_level=3, instruments=[inst, Keep()]):
            ex = tvm.compile(mod, x86.tvm(), relax_pipeline=pipeline) if pipeline else tvm.compile(mod, x86.tvm())
        assert inst.error is None, inst.error
        rep = inst.report.to_dict()
        assert rep["complete"] and inst.schedules["default"] == sum(k["count"] for k in rep["kernels"])
        assert {k["name"] for k in rep["kernels"]} <= set(_called_primfuncs(built["m"]))
        reports[name] = rep
        vm = relax.VirtualMachine(ex, tvm.cpu())  # the user's build is untouched: it still runs
        out = vm["main"](tvm.runtime.tensor(np.zeros((1, 3, 32, 32), "float32"), tvm.cpu()))
        assert out.numpy().shape == (1, 1000)
    # the fused build ships chamtvm's own kernels (already in the table: none measured now; TVM's
    # default pipeline may fold away one of chamtvm's); the plain one more, smaller ones
    fused_keys, ours = {k["key"] for k in reports["fused"]["kernels"]}, {p.key for p in prepared}
    assert fused_keys <= ours and len(fused_keys) >= len(ours) - 1
    assert reports["fused"]["measured_now"] == []
    assert sum(k["count"] for k in reports["plain"]["kernels"]) > sum(k["count"] for k in reports["fused"]["kernels"])
    assert reports["plain"]["measured_now"]


def test_what_cannot_be_priced_is_a_clear_error_and_a_partial_price_says_so(tiny_net, x86, tmp_path):
    import tvm
    from tvm import relax
    from tvm.script import relax as R

    from chamtvm.latency.instrument import PriceModule, PricingError
    from chamtvm.table.store import LatencyTable, ok_row

    empty = tmp_path / "empty"
    with pytest.raises(PricingError, match="no measured kernel"):
        PriceModule("x86", luts_dir=empty)(tiny_net.fused)

    @tvm.script.ir_module
    class Symbolic:
        @R.function
        def main(x: R.Tensor(("n", 4), "float32")):
            return R.add(x, x)

    luts = tmp_path / "luts"
    table = LatencyTable.for_target("x86", luts)
    table.append([ok_row("x86-other/default/1", {"name": "other", "args": [[[1], "float32"]], "bytes": 4, "flops": 1.0},
                         [10.0], 1)])
    with pytest.raises((PricingError, RuntimeError), match="symbolic dimension"):
        PriceModule("x86", luts_dir=luts)(relax.transform.LegalizeOps()(Symbolic))
    with pytest.raises((PricingError, RuntimeError), match="Relax operators"):
        PriceModule("x86", luts_dir=luts)(_unlowered())
    priced = PriceModule("x86", luts_dir=luts)(tiny_net.fused)  # no row of its kernels, no kernel model
    assert bool(priced.attrs["chamtvm.complete"]) is False
    assert set(str(m) for m in priced.attrs["chamtvm.missing"]) == {k.name for k in tiny_net.kernels}


def _unlowered():
    import tvm
    from tvm.script import relax as R

    @tvm.script.ir_module
    class Plain:
        @R.function
        def main(x: R.Tensor((1, 4), "float32")):
            return R.nn.relu(x)

    return Plain


@pytest.mark.slow
def test_price_module_pass_annotates_fused_primfuncs(onnx_and_table, x86):
    from tvm import tirx

    from chamtvm.latency.instrument import PriceModule
    from chamtvm.lower.kernels import fuse
    from chamtvm.table.store import LatencyTable

    mod, table, prepared, luts = onnx_and_table
    priced = PriceModule("x86", luts_dir=luts)(fuse(mod))
    funcs = [f for _, f in priced.functions.items() if isinstance(f, tirx.PrimFunc)]
    annotated = [f for f in funcs if f.attrs is not None and "chamtvm.latency_us" in f.attrs]
    assert annotated and all(str(f.attrs["chamtvm.source"]) == "table" for f in annotated)
    total = sum(float(f.attrs["chamtvm.latency_us"]) * int(f.attrs["chamtvm.calls"]) for f in annotated) / 1e3
    assert float(priced.attrs["chamtvm.latency_ms"]) == pytest.approx(total, rel=1e-6)
    rows = LatencyTable.for_target("x86", luts).load()  # as the pass read it (the fill re-timed some rows)
    # a kernel whose batch-network build failed (known of a reshape of the zoo's MobileNetV3) has no row;
    # the pass prices the others and marks the module incomplete
    have = [p for p in prepared if rows.get(p.key) is not None]
    assert len(have) >= len(prepared) - 1
    assert bool(priced.attrs["chamtvm.complete"]) == (len(have) == len(prepared))
    assert total == pytest.approx(sum(rows.get(p.key)["runtime_us_p50"] * p.kernel.count for p in have) / 1e3)

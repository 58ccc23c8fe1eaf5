"""``chamtvm.api``: ``lower_any`` takes a Relax module, an ONNX file or a torch module;
``predict_latency`` prices a model from the target's table (a real table measured here, and
one of known latencies: the figure is the exact sum), lists what the table lacks, and reads
the schedules of ``schedules_dir``. (Moved here from deploy/test_export.py: the
``lower_any`` and measured-table tests.)"""

import pytest

from chamtvm.api import lower_any, predict_latency
from chamtvm.space.model import build_model, input_shape


def _known_table(luts, prepared, latency_us):
    from chamtvm.table.store import LatencyTable, ok_row

    LatencyTable(luts / "x86.jsonl").append(
        [ok_row(p.key, {**p.kernel.describe(), "schedule": p.schedule}, [latency_us[p.kernel.name]], 1)
         for p in prepared])


def test_predict_latency_is_the_sum_over_the_table_and_lists_the_missing(tiny_net, tiny_torch, x86, tmp_path):
    from chamtvm.table.fill import prepare
    from chamtvm.tuning.schedules import ScheduleSource

    prepared = prepare(tiny_net.kernels, x86, ScheduleSource(x86, use_database=False))
    latency_us = {"fused_conv2d_relu": 7.0, "fused_conv2d1_relu": 5.0, "mean": 1.5}
    _known_table(tmp_path / "full", prepared, latency_us)
    pred = predict_latency(tiny_torch.make(), x86, input_shape=tiny_torch.shape, luts_dir=tmp_path / "full",
                           schedules_dir=tmp_path / "no-schedules")
    assert pred.latency_ms == pytest.approx((7.0 + 2 * 5.0 + 1.5) / 1e3)  # the conv of 4->4 runs twice
    assert pred.table_sum_ms == pytest.approx(pred.latency_ms) and pred.residual == "none"
    assert not pred.missing and not pred.estimated and pred.measured_now == []
    assert {k["name"]: k["count"] for k in pred.kernels} == {"fused_conv2d_relu": 1, "fused_conv2d1_relu": 2,
                                                             "mean": 1}
    d = pred.to_dict()
    assert d["calls_by_source"] == {"table": 4, "measured_now": 0, "estimated": 0} and d["complete"]

    _known_table(tmp_path / "part", [p for p in prepared if p.kernel.name != "mean"], latency_us)
    part = predict_latency(tiny_torch.make(), "x86", input_shape=tiny_torch.shape, luts_dir=tmp_path / "part")
    assert part.latency_ms == pytest.approx(17.0 / 1e3)  # no kernel model saved: the mean is not priced
    assert len(part.missing) == 1 and not part.to_dict()["complete"]


def test_lower_any_errors():
    with pytest.raises(TypeError, match="cannot lower a int: pass a tvm.IRModule, an ONNX path or a torch module"):
        lower_any(42)


def test_predict_latency_of_a_relax_module_without_main_is_a_model_error(x86, tmp_path):
    import tvm

    from chamtvm.lower.kernels import ModelError

    with pytest.raises(ModelError, match="the Relax module has no 'main' function"):
        predict_latency(tvm.IRModule({}), x86, luts_dir=tmp_path)


@pytest.mark.slow
def test_lower_any_accepts_relax_onnx_and_torch(tiny_space, tiny_archs, tmp_path):
    import torch

    from chamtvm.lower.kernels import from_torch

    arch = tiny_archs[0]
    model, shape = build_model(tiny_space, arch), input_shape(tiny_space, arch)
    via_torch = lower_any(model, shape)
    via_relax = lower_any(from_torch(model, shape))
    onnx_path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.zeros(*shape),), str(onnx_path), input_names=["x"], opset_version=17, dynamo=False)
    via_onnx = lower_any(str(onnx_path))
    assert {k.struct_hash for k in via_torch.kernels} == {k.struct_hash for k in via_relax.kernels}
    assert len(via_onnx.kernels) == len(via_torch.kernels)
    with pytest.raises(ValueError, match="input_shape"):
        lower_any(model)


@pytest.mark.slow
def test_predict_latency_of_a_torch_module_with_breakdown(tiny_space, tiny_archs, x86, tmp_path):
    from chamtvm.table.store import LatencyTable
    from chamtvm.measure.local import LocalRunner
    from chamtvm.tuning.schedules import ScheduleSource
    from chamtvm.table.fill import fill_table, prepare

    arch = tiny_archs[1]
    model, shape = build_model(tiny_space, arch), input_shape(tiny_space, arch)
    net = lower_any(model, shape)
    table = LatencyTable(tmp_path / "x86.jsonl")
    fill_table(prepare(net.kernels, x86, ScheduleSource(x86, use_database=False)), table, LocalRunner(x86), x86)
    pred = predict_latency(model, "x86", input_shape=shape, luts_dir=tmp_path)
    assert pred.latency_ms > 0 and not pred.missing and not pred.estimated
    assert sum(k["count"] for k in pred.kernels) == sum(k.count for k in net.kernels)
    assert pred.latency_ms == pytest.approx(sum(k["latency_us"] * k["count"] for k in pred.kernels) / 1e3)

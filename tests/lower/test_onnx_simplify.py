"""ONNX graphs as real exporters emit them (shape arithmetic, channel split, Resize sized from
the input's shape) are simplified and lower; what TVM still cannot import is named."""

from __future__ import annotations

import numpy as np
import pytest

from chamtvm.lower.kernels import ModelError, from_onnx_file
from chamtvm.lower.network import lower_onnx
from chamtvm.zoo import real


def _ops(path):
    import onnx

    return {n.op_type for n in onnx.load(str(path)).graph.node}


@pytest.mark.slow
def test_shufflenet_v2_onnx_lowers_and_matches_torch(tmp_path, x86):
    """torchvision's ShuffleNetV2 graph (Split/Slice sized from Shape, Shape-driven Reshape)
    failed in TVM's importer ('emit_te now only supports Tensor that has ShapeExpr shape')."""
    import torch
    import tvm
    from tvm import relax

    from chamtvm.measure.compile import compile_network

    path = real.export_onnx("shufflenet_v2_x0_5", 64, tmp_path / "shufflenet.onnx")
    assert {"Shape", "Gather", "Slice", "Reshape"} <= _ops(path)  # the idioms are really there
    net = lower_onnx(path)
    assert any("conv2d" in k.name for k in net.kernels)
    ex = compile_network(net.fused, x86)
    vm = relax.VirtualMachine(ex, tvm.cpu())
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype("float32")
    out = vm["main"](tvm.runtime.tensor(x, tvm.cpu())).numpy()
    with torch.no_grad():
        ref = real.build("shufflenet_v2_x0_5")(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-3)


def test_vit_hybrid_with_resize_and_shape_gathers_lowers(tmp_path):
    path = real.export_onnx("vit_hybrid_tiny", 64, tmp_path / "vit.onnx")
    assert {"Resize", "Shape", "Gather", "LayerNormalization", "Softmax"} <= _ops(path)
    net = lower_onnx(path)
    names = " ".join(k.name for k in net.kernels)
    assert "matmul" in names and "softmax" in names and "layer_norm" in names


def test_simplify_folds_every_shape_subgraph(tmp_path):
    import onnx

    from chamtvm.lower.onnx_simplify import simplify

    path = real.export_onnx("shufflenet_v2_x0_5", 64, tmp_path / "s.onnx")
    model = onnx.load(str(path))
    simple = simplify(model, {"x": [1, 3, 64, 64]})
    ops = {n.op_type for n in simple.graph.node}
    assert not ops & {"Shape", "Gather", "Div", "Constant"}, ops
    assert sum(n.op_type == "Conv" for n in simple.graph.node) == sum(n.op_type == "Conv" for n in model.graph.node)


def test_unsupported_operator_is_named_with_its_node(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="relu0"), helper.make_node("Celu", ["r"], ["y"], name="my_celu")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "celu.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ModelError, match=r"Celu \(node 'my_celu'\)"):
        from_onnx_file(path)


@pytest.mark.slow  # TVM's own folding of MobileNetV2's Clip bounds, for the comparison: seconds
def test_clip_bounds_are_folded_in_numpy_to_the_constants_tvm_would_compute(tmp_path):
    """The ONNX importer wraps each constant Clip bound in ``where(isnan(bound), inf, bound)``;
    Relax's FoldConstant builds one kernel per call to fold them (5.5 s for MobileNetV2). They
    are folded in numpy before it: no isnan or where is left, and the fused module is the one
    TVM's own folding gives (the same kernels, so the same table keys)."""
    import tvm
    from tvm import ir, relax

    from chamtvm.lower.kernels import _fold_constants_in_numpy, fuse

    path = real.export_onnx("mobilenet_v2_x0_5", 32, tmp_path / "m.onnx")
    mod = from_onnx_file(path)
    ops = set()

    def visit(e):
        if isinstance(e, relax.Call) and isinstance(e.op, ir.Op):
            ops.add(e.op.name)

    relax.analysis.post_order_visit(mod["main"], visit)
    assert {"relax.isnan", "relax.where"} <= ops  # what the importer emits
    ops.clear()
    relax.analysis.post_order_visit(_fold_constants_in_numpy(mod)["main"], visit)
    assert not ops & {"relax.isnan", "relax.where"}, ops
    ours = fuse(mod)
    theirs = tvm.transform.Sequential([relax.transform.FoldConstant(), relax.transform.FoldBatchnormToConv2D(),
                                       relax.transform.FoldConstant(), relax.transform.LegalizeOps(),
                                       relax.transform.AnnotateTIROpPattern(), relax.transform.FoldConstant(),
                                       relax.transform.FuseOps(), relax.transform.FuseTIR(),
                                       relax.transform.DeadCodeElimination()])(mod)
    tvm.ir.assert_structural_equal(ours, theirs, map_free_vars=True)

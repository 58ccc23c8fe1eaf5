"""``lower.network``: a tiny torch network lowers to the right kernels (names, call counts,
FLOPs, bytes known by hand) and inputs; ONNX files and architecture JSON files lower or fail
with a message saying what is wrong. (Moved here from test_kernels.py: the ONNX-vs-torch
kernels test and the model-file errors of ``load_model``.)"""

import json
from pathlib import Path

import pytest

from chamtvm.lower.kernels import ModelError
from chamtvm.lower.network import load_model, lower_arch, lower_onnx, read_arch
from chamtvm.space.model import build_model, input_shape
from chamtvm.space.schema import SpaceError

DATA = Path(__file__).resolve().parents[1] / "data"


def test_tiny_torch_network_kernels_calls_flops_and_inputs(tiny_net):
    got = {k.name: (k.count, [a.to_list() for a in k.args], k.flops, k.bytes) for k in tiny_net.kernels}
    # conv 3->4 3x3 on 8x8: 256 outputs x 27 MACs x 2 + 256 ReLUs; 4->4: 256 x 36 x 2 + 256;
    # mean over 8x8 of 4 channels: 256 adds + 4 divides. Bytes: float32 arguments read once.
    assert got == {
        "fused_conv2d_relu": (1, [[[1, 3, 8, 8], "float32"], [[4, 3, 3, 3], "float32"], [[1, 4, 8, 8], "float32"]],
                              14080.0, 4 * (192 + 108 + 256)),
        "fused_conv2d1_relu": (2, [[[1, 4, 8, 8], "float32"], [[4, 4, 3, 3], "float32"], [[1, 4, 8, 8], "float32"]],
                               18688.0, 4 * (256 + 144 + 256)),
        "mean": (1, [[[1, 4, 8, 8], "float32"], [[1, 4], "float32"]], 260.0, 4 * (256 + 4)),
    }
    assert [(a.shape, a.dtype) for a in tiny_net.inputs] == [((1, 3, 8, 8), "float32")]
    assert tiny_net.name == "tiny" and tiny_net.space is None
    calls = [line for line in tiny_net.fused["main"].script().splitlines() if "R.call_tir(" in line]
    assert len(calls) == sum(k.count for k in tiny_net.kernels) == 4  # every call counted once


def test_architecture_lowers_with_its_space_name(tiny_space):
    sp, arch = read_arch(DATA / "arch_tiny3.json")  # names its space file relative to itself
    assert sp.name == "tiny3" and arch.resolution == 32
    net = lower_arch(sp, arch, "a")
    assert net.space == "tiny3" and net.inputs[0].shape == (1, 3, 32, 32)


def test_model_file_errors(tmp_path):
    arch = json.loads((DATA / "arch_tiny3.json").read_text())
    cases = [
        (tmp_path / "missing.onnx", None, "does not exist"),
        (tmp_path, None, "is a folder; expected an architecture .json or an .onnx file"),
        (DATA / "arch_tiny3.json", (1, 3, 32, 32), "--shape applies to ONNX models only"),
        (DATA / "arch_tiny3.json", (1, 0), "input shape must be positive integers, got (1, 0)"),
        (DATA / "arch_tiny3.json", (1, True), "input shape must be positive integers"),
    ]
    (tmp_path / "m.txt").write_text("x")
    cases.append((tmp_path / "m.txt", None, "unsupported model file type '.txt'"))
    for path, shape, msg in cases:
        with pytest.raises(ModelError) as info:
            load_model(path, shape=shape)
        assert msg in str(info.value), (path, str(info.value))
    for space, msg in ((5, "'space' must be a bundled space name or a space JSON path, got 5"),
                       ("  ", "'space' must be a bundled space name")):
        p = tmp_path / "a.json"
        p.write_text(json.dumps({**arch, "space": space}))
        with pytest.raises(SpaceError, match=msg):
            read_arch(p)


def _relu_onnx(path, shape):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_onnx_shape_checked_against_the_file(tmp_path):
    static = _relu_onnx(tmp_path / "relu.onnx", [1, 3, 8, 8])
    net = load_model(static)
    assert [k.name for k in net.kernels] == ["relu"] and net.inputs[0].shape == (1, 3, 8, 8)
    assert net.name == "relu"
    with pytest.raises(ModelError, match=r"--shape 1,3,9,9 does not fit the model's input 'x' of shape 1,3,8,8; "
                                         r"its shape is static: drop --shape"):
        load_model(static, shape=(1, 3, 9, 9))
    dynamic = _relu_onnx(tmp_path / "dyn.onnx", ["N", 3, 8, 8])
    with pytest.raises(ModelError, match=r"does not fit the model's input 'x' of shape \?,3,8,8$"):
        load_model(dynamic, shape=(2, 4, 8, 8))
    assert load_model(dynamic, shape=(2, 3, 8, 8)).inputs[0].shape == (2, 3, 8, 8)


def test_onnx_model_lowers_to_the_same_kernels(tiny_space, tiny_archs, tmp_path):
    import torch

    arch = tiny_archs[1]
    path = tmp_path / "net.onnx"
    model = build_model(tiny_space, arch)
    torch.onnx.export(model, (torch.zeros(*input_shape(tiny_space, arch)),), str(path),
                      input_names=["x"], opset_version=17, dynamo=False)
    onnx_net = lower_onnx(path)
    torch_net = lower_arch(tiny_space, arch)
    assert onnx_net.inputs[0].shape == input_shape(tiny_space, arch)

    def linear_convs(net):  # conv + bias (+ residual) kernels, no activation
        return {k.struct_hash for k in net.kernels if "conv2d" in k.name and "clip" not in k.name
                and "maximum" not in k.name}

    # both frontends fold BN into the conv: the kernels without activation are identical
    # (ONNX's Clip imports as maximum/minimum kernels, so activated kernels get other keys)
    assert linear_convs(torch_net) and linear_convs(onnx_net) == linear_convs(torch_net)
    assert len(onnx_net.kernels) == len(torch_net.kernels)




def test_module_without_main_is_a_model_error():
    import tvm

    from chamtvm.lower.network import lower_relax

    with pytest.raises(ModelError, match="broken: the Relax module has no 'main' function"):
        lower_relax(tvm.IRModule({}), "broken")


def test_symbolic_input_shape_is_a_model_error_naming_the_input_and_dimension():
    import tvm
    from tvm.script import relax as R

    from chamtvm.lower.network import lower_relax

    @tvm.script.ir_module
    class Sym:
        @R.function
        def main(x: R.Tensor(("n", 4), "float32")):
            y = R.nn.relu(x)
            return y

    with pytest.raises(ModelError, match=r"sym: input 'x' of 'main' has dynamic dimension n \(axis 0\)"):
        lower_relax(Sym, "sym")


def test_static_relax_module_lowers_with_its_input_spec():
    import tvm
    from tvm.script import relax as R

    from chamtvm.lower.kernels import ArgSpec
    from chamtvm.lower.network import lower_relax

    @tvm.script.ir_module
    class Static:
        @R.function
        def main(x: R.Tensor((2, 4), "float32")):
            y = R.nn.relu(x)
            return y

    net = lower_relax(Static, "static")
    assert net.inputs == [ArgSpec((2, 4), "float32")]
    assert len(net.kernels) == 1

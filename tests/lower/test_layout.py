"""lower.layout: convolutions lowered in NHWC compute what the NCHW network computes, with
the channels innermost in every convolution kernel and no transpose inside the network."""

from __future__ import annotations

import numpy as np
import pytest


def _run(fused, x):
    import tvm
    from tvm import relax

    ex = tvm.compile(fused, "llvm")
    vm = relax.VirtualMachine(ex, tvm.cpu())
    return vm["main"](tvm.runtime.tensor(x)).numpy()


@pytest.mark.slow  # two network builds (35 s on the loaded 2-core box); no built-in target lowers in NHWC
def test_nhwc_network_computes_the_same_with_channels_innermost(tiny_space, tiny_archs):
    from chamtvm.lower.network import lower_arch
    from chamtvm.space.model import input_shape

    arch = tiny_archs[0]
    nchw = lower_arch(tiny_space, arch, "a")
    nhwc = lower_arch(tiny_space, arch, "a", layout="NHWC")
    x = np.random.default_rng(0).uniform(-1, 1, input_shape(tiny_space, arch)).astype("float32")
    np.testing.assert_allclose(_run(nhwc.fused, x), _run(nchw.fused, x), rtol=1e-4, atol=1e-5)
    assert nhwc.inputs == nchw.inputs  # the network's interface stays NCHW
    convs = [k for k in nhwc.kernels if "conv2d" in k.name]
    assert convs and all("clip" not in k.name for k in convs)  # ReLU6 carried through as max/min
    for k in convs:  # output channels innermost in the output and in the HWIO weights
        assert k.args[1].shape[-1] == k.args[-1].shape[-1], k.describe()
    transposes = [k for k in nhwc.kernels if "transpose" in k.name]
    assert sum(k.count for k in transposes) <= 1  # at most the input's NCHW -> NHWC
    # other loop nests, so other kernels: rows of one layout never price the other
    assert not {k.struct_hash for k in convs} & {k.struct_hash for k in nchw.kernels}


def test_unknown_layout_is_an_error_naming_the_valid_ones():
    from chamtvm.lower.layout import CONV_LAYOUTS, LayoutError, check_layout
    from chamtvm.targets import spec

    assert tuple(CONV_LAYOUTS) == spec.CONV_LAYOUTS  # what a target may name is what lowering knows
    assert check_layout(None) == "NCHW" and check_layout("NHWC") == "NHWC"
    assert check_layout("NCHW16c") == "NCHW16c"
    with pytest.raises(LayoutError, match="NCHW.*NHWC"):
        check_layout("NCHW4c")


@pytest.mark.slow  # two network builds
def test_blocked_network_computes_the_same_with_prepacked_weights(tiny_space, tiny_archs):
    """``NCHW8c`` (``lower.blocked``): every convolution whose channels are multiples of 8
    runs on ``(N, C/8, H, W, 8)`` activations with weights packed at compile time (6-D
    constants), the first one (3 input channels) in NCHW; the values are the NCHW network's."""
    from chamtvm.lower.network import lower_arch
    from chamtvm.space.model import input_shape

    arch = tiny_archs[0]
    nchw = lower_arch(tiny_space, arch, "a")
    blocked = lower_arch(tiny_space, arch, "a", layout="NCHW8c")
    x = np.random.default_rng(0).uniform(-1, 1, input_shape(tiny_space, arch)).astype("float32")
    np.testing.assert_allclose(_run(blocked.fused, x), _run(nchw.fused, x), rtol=1e-5, atol=1e-6)
    assert blocked.inputs == nchw.inputs  # the interface stays NCHW
    names = [k.name for k in blocked.kernels]
    dense = [k for k in blocked.kernels if "conv2d_NCHWc" in k.name and "depthwise" not in k.name]
    depthwise = [k for k in blocked.kernels if "depthwise_conv2d_NCHWc" in k.name]
    assert dense and depthwise, names
    for k in dense + depthwise:
        assert len(k.args[0].shape) == 5 and k.args[0].shape[-1] == 8, k.describe()  # blocked data
        assert len(k.args[1].shape) == 6 and k.args[1].shape[-1] == 8, k.describe()  # packed weights
    plain = [k for k in blocked.kernels if "conv2d" in k.name and "NCHWc" not in k.name]
    assert [k.args[0].shape[1] for k in plain] == [3]  # only the stem, on the image's 3 channels
    assert sum(k.count for k in blocked.kernels if "layout_transform" in k.name) <= 2  # in and out of the blocks

"""``transform.graph``: supported networks become stem -> blocks -> head with the same outputs,
their inverted residuals replaceable; unsupported families are refused with the reason; width
scaling keeps depthwise and residual structure consistent."""

import pytest

torch = pytest.importorskip("torch")

from chamtvm.transform.graph import UnsupportedModelError, layered, onnx_bytes, width_scaled  # noqa: E402
from chamtvm.transform.teacher import DEFAULT_TEACHERS  # noqa: E402


@pytest.fixture(scope="module")
def digits_module():
    from chamtvm.space.model import build_model
    from chamtvm.space.schema import Arch, SearchSpace

    d = DEFAULT_TEACHERS["digits"]
    return build_model(SearchSpace.load(d["space"]), Arch.from_dict(d["architecture"]), seed=1)


@pytest.fixture(scope="module")
def digits_layered(digits_module):
    """``layered(digits_module)``, split once per module; tests that change it take a copy."""
    return layered(digits_module, (1, 1, 28, 28), 10)


def test_space_network_splits_into_its_blocks_with_the_same_outputs(digits_module, digits_layered):
    import copy

    net = copy.deepcopy(digits_layered)  # a block is replaced below
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(net(x), digits_module(x), atol=1e-4)
    # the 7 inverted residuals of the architecture, in order, all replaceable; stem and head apart
    assert [(i.cin, i.cout, i.stride) for i in net.layers] == [
        (8, 8, 1), (8, 12, 1), (12, 16, 2), (16, 24, 2), (24, 32, 1), (32, 48, 2), (48, 64, 1)]
    assert all(i.replaceable and i.activation == "relu6" for i in net.layers)
    assert net.layers[0].in_hw == 14 and net.layers[-1].out_hw == 2
    # a block replaced by another of the same shapes runs
    from chamtvm.space.blocks import BLOCKS

    net.blocks[2] = BLOCKS.get("fmb_k3_e1").build(12, 16, 2)
    assert net(x).shape == (3, 10)


@pytest.mark.slow  # two real families exported and read: 25 s on the 2-core machine
def test_mobilenet_and_efficientnet_style_modules_and_onnx_files_are_supported(tmp_path):
    from chamtvm.zoo import real

    mbv2 = real.build("mobilenet_v2_x0_5")
    net = layered(mbv2, (1, 3, 32, 32), 1000)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net(x), mbv2(x), atol=1e-3)
    # 17 inverted residuals; the expand convolutions are inside them, never blocks of their own
    assert sum(i.replaceable for i in net.layers) == 17
    assert all("Clip" not in i.ops[:1] for i in net.layers)
    eff = real.build("efficientnet_lite_x0_5")
    path = tmp_path / "eff.onnx"
    path.write_bytes(onnx_bytes(eff, (1, 3, 32, 32)))
    net2 = layered(path, (1, 3, 32, 32), 1000)
    with torch.no_grad():
        assert torch.allclose(net2(x), eff(x), atol=1e-3)
    assert sum(i.replaceable for i in net2.layers) == 16


def test_unsupported_families_and_shapes_are_refused(digits_module):
    from chamtvm.zoo import real

    with pytest.raises(UnsupportedModelError, match="MaxPool"):
        layered(real.build("resnet10_x0_5"), (1, 3, 32, 32), 1000)

    class Plain(torch.nn.Module):  # convolutions only: no inverted residual
        def __init__(self):
            super().__init__()
            self.c = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, 1, 1),
                                         torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, 1, 1))
            self.fc = torch.nn.Linear(8, 10)

        def forward(self, x):
            return self.fc(self.c(x).mean((2, 3)))

    with pytest.raises(UnsupportedModelError, match="MobileNetV2/EfficientNet-style"):
        layered(Plain(), (1, 1, 28, 28), 10)
    with pytest.raises(UnsupportedModelError, match="does not run on the task's 1x28x28 images"):
        layered(real.build("mobilenet_v2_x0_5"), (1, 1, 28, 28), 10)
    with pytest.raises(UnsupportedModelError, match="the task has 7 classes"):
        layered(digits_module, (1, 1, 28, 28), 7)
    with pytest.raises(UnsupportedModelError, match="not a readable ONNX model"):
        layered(b"not onnx", (1, 1, 28, 28), 10)


def test_width_scaling_scales_every_hidden_channel_consistently(digits_layered):
    net = digits_layered  # read only: width_scaled builds new networks
    half = width_scaled(net, 0.5)
    x = torch.randn(2, 1, 28, 28)
    assert half(x).shape == (2, 10)
    # residual blocks (stride 1, same channels) stay residual: 8 -> 8 and depthwise groups follow
    assert [(i.cin, i.cout) for i in half.layers][:2] == [(8, 8), (8, 8)]
    assert [i.cout for i in half.layers] == [8, 8, 8, 16, 16, 24, 32]
    n_full = sum(p.numel() for p in net.parameters())
    n_half = sum(p.numel() for p in half.parameters())
    assert 0.15 < n_half / n_full < 0.45
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in half.modules())  # trained from scratch with BN
    assert width_scaled(net, 1.0)(x).shape == (2, 10)
    # the deployable form: BatchNorms (with non-trivial statistics) folded into the convolutions
    from chamtvm.space.model import randomize_batchnorm
    from chamtvm.transform.graph import folded

    randomize_batchnorm(half)
    half.eval()
    flat = folded(half)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in flat.modules())
    with torch.no_grad():
        assert torch.allclose(flat(x), half(x), atol=1e-4)
    with pytest.raises(ValueError, match="positive"):
        width_scaled(net, 0)

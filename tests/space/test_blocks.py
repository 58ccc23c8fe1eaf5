"""``space.blocks``: the block registry, the torch builders (shapes, residuals, activations)
and the closed-form costs against values worked out by hand and against torch's count."""

import pytest

from chamtvm.space import blocks as B


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_registry_holds_skip_and_twelve_inverted_residuals():
    names = B.BLOCKS.names()
    assert "skip" in names and len(names) == 13
    assert {f"ir_k{k}_e{e}" for k in (3, 5, 7) for e in (1, 3, 4, 6)} == set(names) - {"skip"}
    ir = B.BLOCKS.get("ir_k5_e4")
    assert (ir.kernel, ir.expansion) == (5, 4)
    skip = B.BLOCKS.get("skip")
    assert skip.is_noop(8, 8, 1) and not skip.is_noop(8, 16, 1) and not skip.is_noop(8, 8, 2)
    assert not ir.is_noop(8, 8, 1)


def test_conv_cost_by_hand():
    # 3->8, 3x3, stride 2 at 32 px: 8*3*9 = 216 weights + 16 BN; 16x16 outputs x 216 MACs
    assert B.conv_cost(3, 8, 3, 2, 32) == (232, 55296, 16)
    # depthwise 5x5 on 32 channels at 15 px, stride 2: 'same' padding gives ceil(15/2) = 8
    assert B.conv_cost(32, 32, 5, 2, 15, groups=32) == (800 + 64, 8 * 8 * 800, 8)


def test_inverted_residual_cost_by_hand_and_against_torch():
    # 8->16, stride 2, expansion 4, 5x5 at 16 px: expand 256+64 / 16*16*256; depthwise
    # 800+64 / 8*8*800; project 512+32 / 8*8*512
    assert B.ir_cost(8, 16, 2, 4, 5, 16) == (1728, 65536 + 51200 + 32768)
    assert _params(B.inverted_residual(8, 16, 2, 4, 5)) == 1728
    # expansion 1: no expand convolution
    p, m = B.ir_cost(8, 8, 1, 1, 3, 8)
    assert p == (72 + 16) + (64 + 16) and m == 64 * 72 + 64 * 64
    assert _params(B.inverted_residual(8, 8, 1, 1, 3)) == p


def test_head_and_skip_costs():
    # 1x1 16->32 at 4 px (512 + 64 BN; 16*512 MACs), then linear 32->10 (320 + 10)
    assert B.head_cost(16, 32, 10, 4) == (576 + 330, 8192 + 320)
    assert _params(B.classifier_head(16, 32, 10)) == 906
    skip = B.BLOCKS.get("skip")
    assert skip.cost(8, 8, 1, 16) == (0, 0)
    assert skip.cost(8, 16, 2, 16) == (128 + 32, 8 * 8 * 128)  # 1x1 stride-2 projection
    assert _params(skip.build(8, 16, 2)) == 160


def test_builders_shapes_residual_and_activations():
    import torch
    from torch import nn

    x = torch.randn(2, 8, 9, 9)
    same = B.inverted_residual(8, 8, 1, 3, 3).eval()
    assert same.residual and not B.inverted_residual(8, 8, 2, 3, 3).residual
    assert not B.inverted_residual(8, 16, 1, 3, 3).residual
    with torch.no_grad():
        assert torch.allclose(same(x), x + same.body(x))
        assert B.inverted_residual(8, 16, 2, 3, 3).eval()(x).shape == (2, 16, 5, 5)  # ceil(9 / 2)
        assert B.classifier_head(8, 12, 10).eval()(x).shape == (2, 10)
    assert isinstance(B.skip_block(8, 8, 1), nn.Identity)
    acts = lambda m: [type(l).__name__ for l in m]  # noqa: E731
    assert acts(B.conv_bn(3, 4, 3, 1)) == ["Conv2d", "BatchNorm2d", "ReLU6"]
    assert acts(B.conv_bn(3, 4, 3, 1, act="relu")) == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert acts(B.conv_bn(3, 4, 3, 1, act=None)) == ["Conv2d", "BatchNorm2d"]
    assert acts(B.conv_bn(3, 4, 3, 1, act=nn.Hardswish)) == ["Conv2d", "BatchNorm2d", "Hardswish"]
    assert acts(B.conv_bn(3, 4, 3, 1, act="hardswish")) == ["Conv2d", "BatchNorm2d", "Hardswish"]
    assert B.torch_activation("silu") is nn.SiLU and B.torch_activation("none") is None
    ir_relu = B.BLOCKS.get("ir_k3_e3").build(8, 8, 1, "relu")
    assert any(isinstance(m, nn.ReLU) for m in ir_relu.modules())
    assert not any(isinstance(m, nn.ReLU6) for m in ir_relu.modules())
    with pytest.raises(ValueError, match=r"unknown activation 'swish'; valid: \['relu6', 'relu', 'hardswish'"):
        B.conv_bn(3, 4, 3, 1, act="swish")

"""Build a torch ``nn.Module`` (MobileNetV2 style: BatchNorm, ReLU6) from an architecture.

Per-layer spaces (``layers.LayerSpace``): stem conv (the space's kernel and stride) ->
one block of ``blocks.BLOCKS`` per layer -> the same head, with the space's activation.

Stage-wise layout: stem conv3x3/s2 -> stages of inverted-residual blocks (1x1 expand, kxk depthwise,
1x1 project, residual when stride 1 and channels match) -> 1x1 head conv -> global
average pool -> linear classifier. Input shape ``(N, space.in_channels, R, R)`` with
``R = arch.resolution``; output logits ``(N, space.num_classes)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is heavy: imported when a model is first built
    import torch

from .blocks import BLOCKS, classifier_head, conv_bn, inverted_residual  # noqa: F401 - public here too
from .layers import LayerArch, LayerSpace
from .schema import Arch, SearchSpace


def randomize_batchnorm(model) -> None:
    """Give every BatchNorm2d non-trivial statistics (uses torch's global generator)."""
    import torch
    from torch import nn

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)


def build_model(space: SearchSpace, arch: Arch, seed: int = 0, randomize_bn: bool = True) -> "torch.nn.Module":
    """The torch network of ``arch`` in eval mode, weights drawn from ``seed``.

    ``randomize_bn`` gives BatchNorm non-trivial running statistics so that numerical
    checks against a compiled version exercise the BN folding; it changes no latency.
    """
    from torch import nn

    space.validate(arch)
    if isinstance(space, LayerSpace):
        return _seeded(lambda: _layer_model(space, arch), seed, randomize_bn)

    class ChamNet(nn.Module):
        def __init__(self):
            super().__init__()
            blocks = [conv_bn(space.in_channels, arch.stem_channels, 3, 2)]
            cin = arch.stem_channels
            for stage_space, stage in zip(space.stages, arch.stages):
                for b in range(stage.blocks):
                    stride = stage_space.stride if b == 0 else 1
                    blocks.append(inverted_residual(cin, stage.channels, stride, stage.expansion, stage.kernel))
                    cin = stage.channels
            self.features = nn.Sequential(*blocks)
            self.head = classifier_head(cin, arch.head_channels, space.num_classes)

        def forward(self, x):
            return self.head(self.features(x))

    return _seeded(ChamNet, seed, randomize_bn)


def _seeded(make, seed: int, randomize_bn: bool):
    """``make()`` with torch's global generator seeded (and restored), in eval mode."""
    import torch

    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = make()
        if randomize_bn:
            randomize_batchnorm(model)
    finally:
        torch.random.set_rng_state(gen_state)
    return model.eval()


def _layer_model(space: LayerSpace, arch: LayerArch):
    """The torch module of a per-layer architecture (attributes ``stem``, ``features``, ``head``)."""
    from torch import nn

    class LayerNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = conv_bn(space.in_channels, space.stem_channels, space.stem_kernel, space.stem_stride,
                                act=space.activation)
            self.features = nn.Sequential(*[
                BLOCKS.get(name).build(cin, cout, stride, space.activation)
                for name, (cin, cout, stride, _) in zip(arch.layers, space.layer_io(arch.resolution))])
            self.head = classifier_head(space.layers[-1].channels, space.head_channels, space.num_classes,
                                        act=space.activation)

        def forward(self, x):
            return self.head(self.features(self.stem(x)))

    return LayerNet()


def input_shape(space: SearchSpace, arch: Arch, batch: int = 1) -> tuple[int, int, int, int]:
    """NCHW shape of the network input."""
    return (batch, space.in_channels, arch.resolution, arch.resolution)

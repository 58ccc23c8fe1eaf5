"""Build a torch ``nn.Module`` (MobileNetV2 style: BatchNorm, ReLU6) from an architecture.

Layout: stem conv3x3/s2 -> stages of inverted-residual blocks (1x1 expand, kxk depthwise,
1x1 project, residual when stride 1 and channels match) -> 1x1 head conv -> global
average pool -> linear classifier. Input shape ``(N, space.in_channels, R, R)`` with
``R = arch.resolution``; output logits ``(N, space.num_classes)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is heavy: imported when a model is first built
    import torch

from .space import Arch, SearchSpace


def _conv_bn(nn, cin: int, cout: int, kernel: int, stride: int, groups: int = 1, relu: bool = True):
    layers = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU6(inplace=False))
    return nn.Sequential(*layers)


def build_model(space: SearchSpace, arch: Arch, seed: int = 0, randomize_bn: bool = True) -> "torch.nn.Module":
    """The torch network of ``arch`` in eval mode, weights drawn from ``seed``.

    ``randomize_bn`` gives BatchNorm non-trivial running statistics so that numerical
    checks against a compiled version exercise the BN folding; it changes no latency.
    """
    import torch
    from torch import nn

    space.validate(arch)

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expansion: int, kernel: int):
            super().__init__()
            hidden = cin * expansion
            layers = []
            if expansion != 1:
                layers.append(_conv_bn(nn, cin, hidden, 1, 1))
            layers.append(_conv_bn(nn, hidden, hidden, kernel, stride, groups=hidden))
            layers.append(_conv_bn(nn, hidden, cout, 1, 1, relu=False))
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            y = self.body(x)
            return x + y if self.residual else y

    class ChamNet(nn.Module):
        def __init__(self):
            super().__init__()
            blocks = [_conv_bn(nn, space.in_channels, arch.stem_channels, 3, 2)]
            cin = arch.stem_channels
            for stage_space, stage in zip(space.stages, arch.stages):
                for b in range(stage.blocks):
                    stride = stage_space.stride if b == 0 else 1
                    blocks.append(InvertedResidual(cin, stage.channels, stride, stage.expansion, stage.kernel))
                    cin = stage.channels
            blocks.append(_conv_bn(nn, cin, arch.head_channels, 1, 1))
            self.features = nn.Sequential(*blocks)
            self.classifier = nn.Linear(arch.head_channels, space.num_classes)

        def forward(self, x):
            x = self.features(x)
            x = x.mean(dim=(2, 3))
            return self.classifier(x)

    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = ChamNet()
        if randomize_bn:
            with torch.no_grad():
                for m in model.modules():
                    if isinstance(m, nn.BatchNorm2d):
                        m.running_mean.uniform_(-0.1, 0.1)
                        m.running_var.uniform_(0.5, 1.5)
                        m.weight.uniform_(0.5, 1.5)
                        m.bias.uniform_(-0.1, 0.1)
    finally:
        torch.random.set_rng_state(gen_state)
    return model.eval()


def input_shape(space: SearchSpace, arch: Arch, batch: int = 1) -> tuple[int, int, int, int]:
    """NCHW shape of the network input."""
    return (batch, space.in_channels, arch.resolution, arch.resolution)

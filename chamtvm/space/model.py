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

from .schema import Arch, SearchSpace


def conv_bn(cin: int, cout: int, kernel: int, stride: int, groups: int = 1, relu: bool = True, act=None):
    """Conv2d (no bias, 'same' padding) + BatchNorm2d (+ ReLU6, or ``act()`` when an
    activation class is given) as an ``nn.Sequential``."""
    from torch import nn

    layers = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act is not None:
        layers.append(act())
    elif relu:
        layers.append(nn.ReLU6(inplace=False))
    return nn.Sequential(*layers)


def inverted_residual(cin: int, cout: int, stride: int, expansion: int, kernel: int):
    """MobileNetV2 block: 1x1 expand (skipped when expansion is 1), kxk depthwise with
    ``stride``, 1x1 linear projection; residual when stride is 1 and channels match."""
    from torch import nn

    class InvertedResidual(nn.Module):
        def __init__(self):
            super().__init__()
            hidden = cin * expansion
            layers = []
            if expansion != 1:
                layers.append(conv_bn(cin, hidden, 1, 1))
            layers.append(conv_bn(hidden, hidden, kernel, stride, groups=hidden))
            layers.append(conv_bn(hidden, cout, 1, 1, relu=False))
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            y = self.body(x)
            return x + y if self.residual else y

    return InvertedResidual()


def classifier_head(cin: int, head_channels: int, num_classes: int):
    """1x1 conv + BN + ReLU6 to ``head_channels``, global average pool, linear classifier."""
    from torch import nn

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv_bn(cin, head_channels, 1, 1)
            self.classifier = nn.Linear(head_channels, num_classes)

        def forward(self, x):
            return self.classifier(self.conv(x).mean(dim=(2, 3)))

    return Head()


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
    import torch
    from torch import nn

    space.validate(arch)

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

    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = ChamNet()
        if randomize_bn:
            randomize_batchnorm(model)
    finally:
        torch.random.set_rng_state(gen_state)
    return model.eval()


def input_shape(space: SearchSpace, arch: Arch, batch: int = 1) -> tuple[int, int, int, int]:
    """NCHW shape of the network input."""
    return (batch, space.in_channels, arch.resolution, arch.resolution)

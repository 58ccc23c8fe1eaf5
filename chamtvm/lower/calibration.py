"""Calibration kernels: a fixed sweep of operators outside the MobileNetV2 space.

The space's own kernels teach the unseen-kernel model little about operators the space
never uses: dense kxk convolutions with many input channels (ResNet), grouped
convolutions, sigmoid/hard-swish epilogues, pooling and concatenation. Tree models do not
extrapolate, so such kernels were predicted 80-90 % too fast (out-of-space benchmark,
before this sweep). Measuring this sweep once per target (about a hundred kernels, a
minute on 2 cores) puts those operator kinds into the table; the kernel model then prices
them from neighbours of the same kind. The sweep is generic (operators and shapes on a
grid), not taken from any network the benchmarks test.
"""

from __future__ import annotations

from .kernels import Kernel

CHANNELS = (16, 48, 128)
SIZES = (7, 14, 28)


def _probe_modules():
    """(torch module, input shapes) pairs whose kernels make the sweep."""
    import torch
    from torch import nn

    from ..space.model import randomize_batchnorm

    def cbn(cin, cout, k, s, groups=1, act=nn.ReLU):
        layers = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        if act is not None:
            layers.append(act())
        return nn.Sequential(*layers)

    class Multi(nn.Module):
        def __init__(self, blocks, where):
            super().__init__()
            self.blocks = nn.ModuleList(blocks)
            self.where = where

        def forward(self, *xs):
            return tuple(b(xs[i]) for b, i in zip(self.blocks, self.where))

    class SE(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.a, self.b = nn.Conv2d(c, max(c // 4, 4), 1), nn.Conv2d(max(c // 4, 4), c, 1)

        def forward(self, x):
            return x * torch.sigmoid(self.b(torch.relu(self.a(x.mean(dim=(2, 3), keepdim=True)))))

    class Residual(nn.Module):
        def __init__(self, c, k):
            super().__init__()
            self.body = cbn(c, c, k, 1, act=None)

        def forward(self, x):
            return torch.relu(self.body(x) + x)

    class SplitShuffle(nn.Module):
        def forward(self, x):
            h = x.shape[1] // 2
            y = torch.cat([x[:, h:], x[:, :h]], dim=1)
            n, c, hh, ww = y.shape
            return y.view(n, 2, c // 2, hh, ww).transpose(1, 2).reshape(n, c, hh, ww)

    out = []
    for size in SIZES:
        shapes = [(1, c, size, size) for c in CHANNELS]
        blocks, where = [], []
        for i, cin in enumerate(CHANNELS):
            for cout in CHANNELS:
                for k, s in ((3, 1), (3, 2), (1, 2)):
                    blocks.append(cbn(cin, cout, k, s))
                    where.append(i)
            blocks += [Residual(cin, 3), cbn(cin, cin, 3, 1, groups=max(cin // 8, 1)),
                       cbn(cin, cin, 5, 1, groups=cin, act=nn.Hardswish), cbn(cin, 2 * cin, 1, 1, act=nn.Hardswish),
                       SE(cin), SplitShuffle(), nn.MaxPool2d(3, 2, 1)]
            where += [i] * 7
        torch.manual_seed(0)
        m = Multi(blocks, where)
        randomize_batchnorm(m)
        out.append((m.eval(), shapes))
    return out


def calibration_kernels() -> list[Kernel]:
    """The distinct kernels of the sweep (counts 1)."""
    from .kernels import extract_kernels, from_torch, fuse

    kernels: dict[str, Kernel] = {}
    for module, shapes in _probe_modules():
        for k in extract_kernels(fuse(from_torch(module, shapes))):
            if k.struct_hash not in kernels:
                k.count = 1
                kernels[k.struct_hash] = k
    return sorted(kernels.values(), key=lambda k: (k.name, k.struct_hash))

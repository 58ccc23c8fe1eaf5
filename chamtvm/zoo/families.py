"""Networks outside the MobileNetV2 space, built in code, for checking that latency
prediction generalizes: ResNet-style basic blocks, ShuffleNet-style channel split,
squeeze-excite and hard-swish MobileNet blocks, at any resolution.

``export_onnx(name, resolution, path)`` writes one as ONNX (legacy exporter, opset 17).
"""

from __future__ import annotations

from pathlib import Path


def _models():
    import torch
    from torch import nn

    from .building import torch_parts

    parts = torch_parts()
    cbr, Basic = parts.cba, parts.Basic

    class Pooled(nn.Module):
        """``features`` (ending in ``cout`` channels), global average pool, 10-way linear."""

        def __init__(self, features, cout):
            super().__init__()
            self.features, self.fc = features, nn.Linear(cout, 10)

        def forward(self, x):
            return self.fc(self.features(x).mean(dim=(2, 3)))

    def resnet_tiny(w=16):
        return Pooled(nn.Sequential(cbr(3, w, 3, 2), Basic(w, w, 1), Basic(w, 2 * w, 2),
                                    Basic(2 * w, 4 * w, 2), Basic(4 * w, 8 * w, 2)), 8 * w)

    class ShuffleUnit(nn.Module):
        def __init__(self, c):
            super().__init__()
            h = c // 2
            self.branch = nn.Sequential(cbr(h, h, 1), cbr(h, h, 3, groups=h, act=None), cbr(h, h, 1))

        def forward(self, x):
            h = x.shape[1] // 2
            a, b = x[:, :h], x[:, h:]
            y = torch.cat([a, self.branch(b)], dim=1)
            n, c, hh, ww = y.shape
            return y.view(n, 2, c // 2, hh, ww).transpose(1, 2).reshape(n, c, hh, ww)

    def shuffle_tiny(w=24):
        return Pooled(nn.Sequential(cbr(3, w, 3, 2), ShuffleUnit(w), cbr(w, 2 * w, 3, 2), ShuffleUnit(2 * w),
                                    cbr(2 * w, 4 * w, 3, 2), ShuffleUnit(4 * w), ShuffleUnit(4 * w)), 4 * w)

    class SE(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.fc1, self.fc2 = nn.Conv2d(c, max(c // 4, 4), 1), nn.Conv2d(max(c // 4, 4), c, 1)

        def forward(self, x):
            s = x.mean(dim=(2, 3), keepdim=True)
            return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))

    class MBBlock(nn.Module):
        def __init__(self, cin, cout, s, e, k, act, se):
            super().__init__()
            h = cin * e
            layers = [cbr(cin, h, 1, act=act), cbr(h, h, k, s, groups=h, act=act)]
            if se:
                layers.append(SE(h))
            layers.append(cbr(h, cout, 1, act=None))
            self.body = nn.Sequential(*layers)
            self.res = s == 1 and cin == cout

        def forward(self, x):
            y = self.body(x)
            return x + y if self.res else y

    def mobile_v3ish(se=True, act=nn.Hardswish, w=16):
        return Pooled(nn.Sequential(
            cbr(3, w, 3, 2, act=act), MBBlock(w, w, 1, 3, 3, act, se), MBBlock(w, 2 * w, 2, 4, 5, act, se),
            MBBlock(2 * w, 2 * w, 1, 4, 3, act, se), MBBlock(2 * w, 4 * w, 2, 6, 5, act, se),
            cbr(4 * w, 16 * w, 1, act=act)), 16 * w)

    return {
        "resnet_basic": lambda: resnet_tiny(16),
        "resnet_basic_wide": lambda: resnet_tiny(24),
        "shufflenet_split": lambda: shuffle_tiny(24),
        "mobilenet_se_hswish": lambda: mobile_v3ish(se=True, act=nn.Hardswish),
        "mobilenet_hswish": lambda: mobile_v3ish(se=False, act=nn.Hardswish),
        "mobilenet_se_relu": lambda: mobile_v3ish(se=True, act=nn.ReLU),
    }


def names() -> list[str]:
    return ["resnet_basic", "resnet_basic_wide", "shufflenet_split", "mobilenet_se_hswish",
            "mobilenet_hswish", "mobilenet_se_relu"]


def build(name: str):
    """The torch module ``name`` (eval mode, weights from seed 0, randomized BN statistics)."""
    from .building import build_seeded

    return build_seeded(_models(), name, "zoo", names())


def export_onnx(name: str, resolution: int, path: str | Path) -> Path:
    """Write zoo model ``name`` at input ``1x3xRxR`` as ONNX; returns the path."""
    from .building import export_onnx_module

    return export_onnx_module(build(name), resolution, path)

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

    from ..space.model import conv_bn

    def cbr(cin, cout, k=3, s=1, groups=1, act=nn.ReLU):
        return conv_bn(cin, cout, k, s, groups=groups, relu=False, act=act)

    class Basic(nn.Module):
        def __init__(self, cin, cout, s):
            super().__init__()
            self.body = nn.Sequential(cbr(cin, cout, 3, s), cbr(cout, cout, 3, 1, act=None))
            self.short = cbr(cin, cout, 1, s, act=None) if (s != 1 or cin != cout) else nn.Identity()

        def forward(self, x):
            return torch.relu(self.body(x) + self.short(x))

    class ResNetTiny(nn.Module):
        def __init__(self, width=16):
            super().__init__()
            w = width
            self.features = nn.Sequential(cbr(3, w, 3, 2), Basic(w, w, 1), Basic(w, 2 * w, 2),
                                          Basic(2 * w, 4 * w, 2), Basic(4 * w, 8 * w, 2))
            self.fc = nn.Linear(8 * w, 10)

        def forward(self, x):
            return self.fc(self.features(x).mean(dim=(2, 3)))

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

    class ShuffleTiny(nn.Module):
        def __init__(self, width=24):
            super().__init__()
            w = width
            self.features = nn.Sequential(cbr(3, w, 3, 2), ShuffleUnit(w), cbr(w, 2 * w, 3, 2), ShuffleUnit(2 * w),
                                          cbr(2 * w, 4 * w, 3, 2), ShuffleUnit(4 * w), ShuffleUnit(4 * w))
            self.fc = nn.Linear(4 * w, 10)

        def forward(self, x):
            return self.fc(self.features(x).mean(dim=(2, 3)))

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

    class MobileV3ish(nn.Module):
        def __init__(self, se=True, act=nn.Hardswish, width=16):
            super().__init__()
            w = width
            self.features = nn.Sequential(
                cbr(3, w, 3, 2, act=act), MBBlock(w, w, 1, 3, 3, act, se), MBBlock(w, 2 * w, 2, 4, 5, act, se),
                MBBlock(2 * w, 2 * w, 1, 4, 3, act, se), MBBlock(2 * w, 4 * w, 2, 6, 5, act, se),
                cbr(4 * w, 16 * w, 1, act=act))
            self.fc = nn.Linear(16 * w, 10)

        def forward(self, x):
            return self.fc(self.features(x).mean(dim=(2, 3)))

    return {
        "resnet_basic": lambda: ResNetTiny(16),
        "resnet_basic_wide": lambda: ResNetTiny(24),
        "shufflenet_split": lambda: ShuffleTiny(24),
        "mobilenet_se_hswish": lambda: MobileV3ish(se=True, act=nn.Hardswish),
        "mobilenet_hswish": lambda: MobileV3ish(se=False, act=nn.Hardswish),
        "mobilenet_se_relu": lambda: MobileV3ish(se=True, act=nn.ReLU),
    }


def names() -> list[str]:
    return ["resnet_basic", "resnet_basic_wide", "shufflenet_split", "mobilenet_se_hswish",
            "mobilenet_hswish", "mobilenet_se_relu"]


def build(name: str):
    """The torch module ``name`` (eval mode, seeded weights, randomized BN statistics)."""
    import torch

    from ..space.model import randomize_batchnorm

    models = _models()
    if name not in models:
        raise KeyError(f"unknown zoo model {name!r}; choose one of {names()}")
    torch.manual_seed(0)
    m = models[name]()
    randomize_batchnorm(m)
    return m.eval()


def export_onnx(name: str, resolution: int, path: str | Path) -> Path:
    """Write zoo model ``name`` at input ``1x3xRxR`` as ONNX; returns the path."""
    import warnings

    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(build(name), (torch.zeros(1, 3, resolution, resolution),), str(path),
                          input_names=["x"], opset_version=17, dynamo=False)
    return path

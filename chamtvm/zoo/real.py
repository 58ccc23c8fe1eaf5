"""Real architecture families, written after torchvision's pure-Python definitions (random
weights, no downloads), for judging latency prediction on models nobody here designed.

Each family keeps the operators and the graph idioms of the original: ShuffleNetV2's
``chunk`` + ``view``-driven channel shuffle (``Split`` and ``Shape``-driven ``Reshape`` in
ONNX), MobileNetV3's hard-swish and hard-sigmoid squeeze-excite, MobileNetV4's universal
inverted bottlenecks, EfficientNet's SiLU, RegNet's grouped convolutions, SqueezeNet's
concatenations, a ViT-style hybrid (conv stem, patch tokens, layer norm, multi-head attention,
GELU), ResNeXt's bottlenecks around a cardinality-32 grouped 3x3 (stride on the 3x3, projection
shortcut, ReLU after the sum), DenseNet's pre-activation dense layers (BN-ReLU-1x1-BN-ReLU-3x3,
every layer concatenating all earlier features of its block, a BatchNormalization that no conv
absorbs, transitions of BN-ReLU-1x1 + 2x2 average pooling), ConvNeXt's blocks (depthwise 7x7,
permute to channels-last, LayerNorm, 4x Linear expansion, GELU, Linear, permute back, layer
scale, residual; a 4x4/4 patchify stem and LayerNorm + 2x2/2 downsampling, all with biases),
EfficientNetV2's Fused-MBConv (a full 3x3 expansion conv, no depthwise) in its early stages and
SiLU MBConv with squeeze-excite later. Conv+BN(+activation) comes from
``space.model.conv_bn``.

Sizes are kept mobile (at most about 1 GMAC at 224 px) so that every member runs quickly under
TVM's default schedules: ResNeXt is torchvision's ``32x4d`` bottleneck with every width halved
(cardinality 32 kept, so 2 channels a group in the first stage), DenseNet keeps 121's block
layout with growth 16 (and a 69-layer growth-12 variant), ConvNeXt uses timm's atto and a
shallow femto, EfficientNetV2 is torchvision's V2-S configuration scaled in width and depth
(``ceil`` of depth x repeats; the 1280-wide head kept). ConvNeXt's layer scale is 0.1 instead
of torchvision's 1e-6 initial value, so that random-weight blocks are not near-identities.

``FAMILIES`` maps a family to its members; ``build(name)`` gives the torch module (eval
mode, seeded weights, randomized BN statistics) and ``export_onnx(name, resolution, path)``
writes it as ONNX the way a user's exporter does (legacy exporter, opset 17).
"""

from __future__ import annotations

from pathlib import Path

FAMILIES: dict[str, tuple[str, ...]] = {
    "mobilenet_v2": ("mobilenet_v2", "mobilenet_v2_x0_5"),
    "mnasnet": ("mnasnet1_0", "mnasnet0_5"),
    "mobilenet_v3": ("mobilenet_v3_large", "mobilenet_v3_small"),
    "mobilenet_v4": ("mobilenet_v4_conv_small", "mobilenet_v4_conv_small_x0_5"),
    "efficientnet": ("efficientnet_b0", "efficientnet_lite_x0_5"),
    "resnet": ("resnet18", "resnet10_x0_5"),
    "squeezenet": ("squeezenet1_1", "squeezenet1_1_x0_5"),
    "shufflenet_v2": ("shufflenet_v2_x1_0", "shufflenet_v2_x0_5"),
    "regnet": ("regnet_y_400mf", "regnet_x_200mf"),
    "vit_hybrid": ("vit_hybrid_tiny", "vit_hybrid_small"),
    "resnext": ("resnext26_32x4d_x0_5", "resnext14_32x4d_x0_5"),
    "densenet": ("densenet121_g16", "densenet69_g12"),
    "convnext": ("convnext_atto", "convnext_femto_shallow"),
    "efficientnet_v2": ("efficientnet_v2_s_x0_5", "efficientnet_v2_s_x0_35"),
}


def family_of(name: str) -> str:
    for fam, members in FAMILIES.items():
        if name in members:
            return fam
    raise KeyError(f"unknown real model {name!r}; choose one of {names()}")


def names() -> list[str]:
    return [m for members in FAMILIES.values() for m in members]


def _div(v: float, divisor: int = 8) -> int:
    """torchvision's ``_make_divisible``: round channels to a multiple of ``divisor``."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _modules():
    import torch
    from torch import nn

    from .building import torch_parts

    parts = torch_parts()
    cba, Basic = parts.cba, parts.Basic

    class SE(nn.Module):
        def __init__(self, c, squeeze, act=nn.ReLU, gate=nn.Sigmoid):
            super().__init__()
            self.fc1, self.fc2 = nn.Conv2d(c, squeeze, 1), nn.Conv2d(squeeze, c, 1)
            self.act, self.gate = act(), gate()

        def forward(self, x):
            s = nn.functional.adaptive_avg_pool2d(x, 1)
            return x * self.gate(self.fc2(self.act(self.fc1(s))))

    class Classifier(nn.Module):
        def __init__(self, features, cout, num_classes=1000, hidden=None, act=nn.ReLU):
            super().__init__()
            self.features = features
            layers = [nn.Linear(cout, hidden), act(), nn.Linear(hidden, num_classes)] if hidden else \
                [nn.Linear(cout, num_classes)]
            self.classifier = nn.Sequential(*layers)

        def forward(self, x):
            x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
            return self.classifier(torch.flatten(x, 1))

    # ------------------------------------------------------------- inverted residuals
    class MBConv(nn.Module):
        """Inverted residual: expand 1x1, depthwise kxk, optional SE, project 1x1."""

        def __init__(self, cin, cout, k, s, expand, act=nn.ReLU6, se=None, se_act=nn.ReLU, gate=nn.Sigmoid):
            super().__init__()
            hidden = _div(cin * expand)
            layers = [] if hidden == cin else [cba(cin, hidden, 1, act=act)]
            layers.append(cba(hidden, hidden, k, s, groups=hidden, act=act))
            if se:
                layers.append(SE(hidden, se(cin, hidden), se_act, gate))
            layers.append(cba(hidden, cout, 1, act=None))
            self.block = nn.Sequential(*layers)
            self.res = s == 1 and cin == cout

        def forward(self, x):
            y = self.block(x)
            return x + y if self.res else y

    def mobilenet_v2(width=1.0):
        cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
               (6, 320, 1, 1)]
        c = _div(32 * width)
        layers = [cba(3, c, 3, 2, act=nn.ReLU6)]
        for t, ch, n, s in cfg:
            out = _div(ch * width)
            for i in range(n):
                layers.append(MBConv(c, out, 3, s if i == 0 else 1, t))
                c = out
        last = _div(1280 * max(1.0, width))
        layers.append(cba(c, last, 1, act=nn.ReLU6))
        return Classifier(nn.Sequential(*layers), last)

    def mnasnet(alpha=1.0):
        depths = [_div(d * alpha) for d in (32, 16, 24, 40, 80, 96, 192, 320)]
        layers = [cba(3, depths[0], 3, 2), cba(depths[0], depths[0], 3, 1, groups=depths[0]),
                  cba(depths[0], depths[1], 1, act=None)]
        c = depths[1]
        for out, k, s, e, n in zip(depths[2:], (3, 5, 5, 3, 5, 3), (2, 2, 2, 1, 2, 1), (3, 3, 6, 6, 6, 6),
                                   (3, 3, 3, 2, 4, 1)):
            for i in range(n):
                layers.append(MBConv(c, out, k, s if i == 0 else 1, e, act=nn.ReLU))
                c = out
        layers.append(cba(c, 1280, 1))
        return Classifier(nn.Sequential(*layers), 1280)

    def mobilenet_v3(large=True):
        hs = nn.Hardswish
        se_sq = lambda cin, hidden: _div(hidden // 4)  # noqa: E731
        if large:
            cfg = [(16, 3, 16, 16, False, "RE", 1), (16, 3, 64, 24, False, "RE", 2), (24, 3, 72, 24, False, "RE", 1),
                   (24, 5, 72, 40, True, "RE", 2), (40, 5, 120, 40, True, "RE", 1), (40, 5, 120, 40, True, "RE", 1),
                   (40, 3, 240, 80, False, "HS", 2), (80, 3, 200, 80, False, "HS", 1),
                   (80, 3, 184, 80, False, "HS", 1), (80, 3, 184, 80, False, "HS", 1),
                   (80, 3, 480, 112, True, "HS", 1), (112, 3, 672, 112, True, "HS", 1),
                   (112, 5, 672, 160, True, "HS", 2), (160, 5, 960, 160, True, "HS", 1),
                   (160, 5, 960, 160, True, "HS", 1)]
            last, hidden = 960, 1280
        else:
            cfg = [(16, 3, 16, 16, True, "RE", 2), (16, 3, 72, 24, False, "RE", 2), (24, 3, 88, 24, False, "RE", 1),
                   (24, 5, 96, 40, True, "HS", 2), (40, 5, 240, 40, True, "HS", 1), (40, 5, 240, 40, True, "HS", 1),
                   (40, 5, 120, 48, True, "HS", 1), (48, 5, 144, 48, True, "HS", 1), (48, 5, 288, 96, True, "HS", 2),
                   (96, 5, 576, 96, True, "HS", 1), (96, 5, 576, 96, True, "HS", 1)]
            last, hidden = 576, 1024
        layers = [cba(3, 16, 3, 2, act=hs)]
        for cin, k, exp, cout, se, a, s in cfg:
            act = hs if a == "HS" else nn.ReLU
            layers.append(MBConv(cin, cout, k, s, exp / cin, act=act, se=se_sq if se else None,
                                 gate=nn.Hardsigmoid))
        layers.append(cba(cfg[-1][3], last, 1, act=hs))
        return Classifier(nn.Sequential(*layers), last, hidden=hidden, act=hs)

    def efficientnet(width=1.0, se=True, act=nn.SiLU):
        cfg = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
               (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]
        stem = _div(32 * width)
        layers = [cba(3, stem, 3, 2, act=act)]
        c = stem
        for e, k, s, _cin, cout, n in cfg:
            out = _div(cout * width)
            for i in range(n):
                layers.append(MBConv(c, out, k, s if i == 0 else 1, e, act=act,
                                     se=(lambda cin, hidden: max(1, cin // 4)) if se else None, se_act=act))
                c = out
        last = 4 * c
        layers.append(cba(c, last, 1, act=act))
        return Classifier(nn.Sequential(*layers), last)

    # ------------------------------------------------------------ MobileNetV4 (conv)
    class UIR(nn.Module):
        """MobileNetV4's universal inverted bottleneck: optional depthwise ``a x a`` before the
        1x1 expansion (no activation), optional depthwise ``k x k`` after it, 1x1 projection;
        the stride sits on the middle depthwise, else on the first (timm's ``UniversalInvertedResidual``)."""

        def __init__(self, cin, cout, a, k, s, expand):
            super().__init__()
            hidden = _div(cin * expand)
            layers = [cba(cin, cin, a, 1 if k else s, groups=cin, act=None)] if a else []
            layers.append(cba(cin, hidden, 1))
            if k:
                layers.append(cba(hidden, hidden, k, s, groups=hidden))
            layers.append(cba(hidden, cout, 1, act=None))
            self.block = nn.Sequential(*layers)
            self.res = s == 1 and cin == cout

        def forward(self, x):
            y = self.block(x)
            return x + y if self.res else y

    def mobilenet_v4_conv_small(width=1.0):
        """timm's ``mobilenetv4_conv_small``: plain conv stages, then UIR blocks
        (``(start dw, middle dw, stride, expansion, channels, repeats)``), a 1x1 to 960 and a
        1280-wide head, ReLU throughout."""
        w = lambda c: _div(c * width)  # noqa: E731
        layers = [cba(3, w(32), 3, 2), cba(w(32), w(32), 3, 2), cba(w(32), w(32), 1),
                  cba(w(32), w(96), 3, 2), cba(w(96), w(64), 1)]
        c = w(64)
        cfg = [(5, 5, 2, 3, 96, 1), (0, 3, 1, 2, 96, 4), (3, 0, 1, 4, 96, 1),
               (3, 3, 2, 6, 128, 1), (5, 5, 1, 4, 128, 1), (0, 5, 1, 4, 128, 1), (0, 5, 1, 3, 128, 1),
               (0, 3, 1, 4, 128, 2)]
        for a, k, s, e, out, n in cfg:
            for i in range(n):
                layers.append(UIR(c, w(out), a, k, s if i == 0 else 1, e))
                c = w(out)
        layers.append(cba(c, w(960), 1))
        return Classifier(nn.Sequential(*layers), w(960), hidden=1280)

    # ------------------------------------------------------------------- resnets
    def resnet(blocks=(2, 2, 2, 2), width=1.0):
        w = [int(64 * width * m) for m in (1, 2, 4, 8)]
        layers = [cba(3, w[0], 7, 2), nn.MaxPool2d(3, 2, 1)]
        c = w[0]
        for i, (out, n) in enumerate(zip(w, blocks)):
            for j in range(n):
                layers.append(Basic(c, out, 2 if (j == 0 and i > 0) else 1))
                c = out
        return Classifier(nn.Sequential(*layers), c)

    # ---------------------------------------------------------------- squeezenet
    class Fire(nn.Module):
        def __init__(self, cin, sq, e1, e3):
            super().__init__()
            self.squeeze = nn.Sequential(nn.Conv2d(cin, sq, 1), nn.ReLU())
            self.e1 = nn.Sequential(nn.Conv2d(sq, e1, 1), nn.ReLU())
            self.e3 = nn.Sequential(nn.Conv2d(sq, e3, 3, padding=1), nn.ReLU())

        def forward(self, x):
            x = self.squeeze(x)
            return torch.cat([self.e1(x), self.e3(x)], 1)

    class SqueezeNet(nn.Module):
        def __init__(self, width=1.0):
            super().__init__()
            f = lambda v: max(8, int(v * width))  # noqa: E731
            pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
            self.features = nn.Sequential(
                nn.Conv2d(3, f(64), 3, 2), nn.ReLU(), pool(),
                Fire(f(64), f(16), f(64), f(64)), Fire(2 * f(64), f(16), f(64), f(64)), pool(),
                Fire(2 * f(64), f(32), f(128), f(128)), Fire(2 * f(128), f(32), f(128), f(128)), pool(),
                Fire(2 * f(128), f(48), f(192), f(192)), Fire(2 * f(192), f(48), f(192), f(192)),
                Fire(2 * f(192), f(64), f(256), f(256)), Fire(2 * f(256), f(64), f(256), f(256)))
            self.classifier = nn.Sequential(nn.Conv2d(2 * f(256), 1000, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))

        def forward(self, x):
            return torch.flatten(self.classifier(self.features(x)), 1)

    # --------------------------------------------------------------- shufflenet
    def channel_shuffle(x, groups: int):
        n, c, h, w = x.size()  # exported as Shape -> Gather -> Reshape, as torchvision's
        x = x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous()
        return x.view(n, -1, h, w)

    class ShuffleBlock(nn.Module):
        def __init__(self, cin, cout, s):
            super().__init__()
            self.s = s
            b = cout // 2
            if s > 1:
                self.branch1 = nn.Sequential(cba(cin, cin, 3, s, groups=cin, act=None), cba(cin, b, 1))
            self.branch2 = nn.Sequential(cba(cin if s > 1 else b, b, 1), cba(b, b, 3, s, groups=b, act=None),
                                         cba(b, b, 1))

        def forward(self, x):
            if self.s == 1:
                x1, x2 = x.chunk(2, dim=1)  # Split with sizes computed from the shape
                out = torch.cat((x1, self.branch2(x2)), dim=1)
            else:
                out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
            return channel_shuffle(out, 2)

    def shufflenet_v2(stages_out):
        layers = [cba(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1)]
        c = 24
        for out, n in zip(stages_out[:3], (4, 8, 4)):
            for i in range(n):
                layers.append(ShuffleBlock(c, out, 2 if i == 0 else 1))
                c = out
        layers.append(cba(c, stages_out[-1], 1))
        return Classifier(nn.Sequential(*layers), stages_out[-1])

    # ------------------------------------------------------------------- regnet
    class RegBlock(nn.Module):
        def __init__(self, cin, cout, s, group_w, se):
            super().__init__()
            g = cout // group_w
            layers = [cba(cin, cout, 1), cba(cout, cout, 3, s, groups=g)]
            if se:
                layers.append(SE(cout, max(1, int(round(cin * 0.25)))))
            layers.append(cba(cout, cout, 1, act=None))
            self.f = nn.Sequential(*layers)
            self.proj = cba(cin, cout, 1, s, act=None) if (s != 1 or cin != cout) else nn.Identity()

        def forward(self, x):
            return torch.relu(self.proj(x) + self.f(x))

    def regnet(widths, depths, group_w, se):
        layers = [cba(3, 32, 3, 2)]
        c = 32
        for w, d in zip(widths, depths):
            for i in range(d):
                layers.append(RegBlock(c, w, 2 if i == 0 else 1, group_w, se))
                c = w
        return Classifier(nn.Sequential(*layers), c)

    # --------------------------------------------------------------- ViT hybrid
    class Attention(nn.Module):
        def __init__(self, dim, heads):
            super().__init__()
            self.heads = heads
            self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

        def forward(self, x):
            b, n, d = x.shape  # Shape-driven reshapes in ONNX
            qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            a = torch.softmax(q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5, dim=-1)
            return self.proj((a @ v).transpose(1, 2).reshape(b, n, d))

    class Encoder(nn.Module):
        def __init__(self, dim, heads, mlp):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.attn = Attention(dim, heads)
            self.mlp = nn.Sequential(nn.Linear(dim, mlp * dim), nn.GELU(), nn.Linear(mlp * dim, dim))

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))

    class ViTHybrid(nn.Module):
        def __init__(self, dim, depth, heads, stem=32):
            super().__init__()
            self.stem = nn.Sequential(cba(3, stem, 3, 2), cba(stem, 2 * stem, 3, 2), cba(2 * stem, 2 * stem, 3, 2))
            self.patch = nn.Conv2d(2 * stem, dim, 2, 2)
            self.pos = nn.Parameter(torch.randn(1, dim, 7, 7) * 0.02)  # resampled to the grid, as timm does
            self.blocks = nn.Sequential(*[Encoder(dim, heads, 4) for _ in range(depth)])
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, 1000)

        def forward(self, x):
            x = self.patch(self.stem(x))
            # Resize with sizes taken from the input's shape (Shape -> Gather -> Concat -> Resize)
            x = x + nn.functional.interpolate(self.pos, size=(x.shape[2], x.shape[3]), mode="bilinear",
                                              align_corners=False)
            x = x.flatten(2).transpose(1, 2)  # (B, tokens, dim)
            x = self.norm(self.blocks(x))
            return self.head(x.mean(dim=1))

    # ------------------------------------------------------------------- resnext
    class Bottleneck(nn.Module):
        """torchvision's ResNeXt bottleneck: 1x1 reduce, grouped 3x3 (``groups`` of
        ``planes * base_width / 64`` channels, the stride here), 1x1 expand to ``4 * planes``,
        a 1x1 projection shortcut when the shape changes, ReLU after the sum."""

        def __init__(self, cin, planes, s, groups, base_width):
            super().__init__()
            width, cout = int(planes * base_width / 64) * groups, 4 * planes
            self.body = nn.Sequential(cba(cin, width, 1), cba(width, width, 3, s, groups=groups),
                                      cba(width, cout, 1, act=None))
            self.down = cba(cin, cout, 1, s, act=None) if (s != 1 or cin != cout) else nn.Identity()

        def forward(self, x):
            return torch.relu(self.body(x) + self.down(x))

    def resnext(blocks, width=1.0, groups=32, base_width=4):
        planes = [int(64 * width * m) for m in (1, 2, 4, 8)]
        layers = [cba(3, planes[0], 7, 2), nn.MaxPool2d(3, 2, 1)]
        c = planes[0]
        for i, (p, n) in enumerate(zip(planes, blocks)):
            for j in range(n):
                layers.append(Bottleneck(c, p, 2 if (j == 0 and i > 0) else 1, groups, base_width))
                c = 4 * p
        return Classifier(nn.Sequential(*layers), c)

    # ------------------------------------------------------------------ densenet
    class DenseLayer(nn.Module):
        """torchvision's ``_DenseLayer``: concatenate every earlier feature map of the block,
        BN-ReLU-1x1 to ``bn_size * growth``, BN-ReLU-3x3 to ``growth``."""

        def __init__(self, cin, growth, bn_size=4):
            super().__init__()
            self.norm1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, bn_size * growth, 1, bias=False)
            self.norm2 = nn.BatchNorm2d(bn_size * growth)
            self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

        def forward(self, features):
            x = self.conv1(torch.relu(self.norm1(torch.cat(features, 1))))
            return self.conv2(torch.relu(self.norm2(x)))

    class DenseBlock(nn.ModuleList):
        def forward(self, x):
            features = [x]
            for layer in self:
                features.append(layer(features))
            return torch.cat(features, 1)

    def densenet(growth, blocks, init, bn_size=4):
        layers = [cba(3, init, 7, 2), nn.MaxPool2d(3, 2, 1)]
        c = init
        for i, n in enumerate(blocks):
            layers.append(DenseBlock([DenseLayer(c + j * growth, growth, bn_size) for j in range(n)]))
            c += n * growth
            if i < len(blocks) - 1:  # transition: BN-ReLU-1x1 halving the channels, 2x2 average pool
                layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2, 2)]
                c //= 2
        layers += [nn.BatchNorm2d(c), nn.ReLU()]
        return Classifier(nn.Sequential(*layers), c)

    # ------------------------------------------------------------------ convnext
    class Permute(nn.Module):
        def __init__(self, dims):
            super().__init__()
            self.dims = dims

        def forward(self, x):
            return torch.permute(x, self.dims)

    class LayerNorm2d(nn.LayerNorm):
        """LayerNorm over the channels of an NCHW map: permute to NHWC and back, as torchvision."""

        def forward(self, x):
            x = nn.functional.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                                         self.eps)
            return x.permute(0, 3, 1, 2)

    class CNBlock(nn.Module):
        def __init__(self, dim, layer_scale=0.1):
            super().__init__()
            self.block = nn.Sequential(
                nn.Conv2d(dim, dim, 7, padding=3, groups=dim), Permute([0, 2, 3, 1]), nn.LayerNorm(dim, eps=1e-6),
                nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), Permute([0, 3, 1, 2]))
            self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), layer_scale))

        def forward(self, x):
            return x + self.layer_scale * self.block(x)

    class ConvNeXt(nn.Module):
        def __init__(self, dims, depths):
            super().__init__()
            ln = lambda d: LayerNorm2d(d, eps=1e-6)  # noqa: E731
            layers = [nn.Conv2d(3, dims[0], 4, 4), ln(dims[0])]
            for i, (d, n) in enumerate(zip(dims, depths)):
                layers += [CNBlock(d) for _ in range(n)]
                if i < len(dims) - 1:
                    layers += [ln(d), nn.Conv2d(d, dims[i + 1], 2, 2)]
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Sequential(ln(dims[-1]), nn.Flatten(1), nn.Linear(dims[-1], 1000))

        def forward(self, x):
            return self.classifier(nn.functional.adaptive_avg_pool2d(self.features(x), 1))

    # ----------------------------------------------------------- efficientnet v2
    class FusedMBConv(nn.Module):
        """EfficientNetV2's fused inverted residual: a full ``k x k`` expansion conv (the stride
        here, SiLU) and a 1x1 linear projection; one ``k x k`` conv when the expansion is 1."""

        def __init__(self, cin, cout, k, s, expand, act=nn.SiLU):
            super().__init__()
            if expand == 1:
                self.block = cba(cin, cout, k, s, act=act)
            else:
                hidden = _div(cin * expand)
                self.block = nn.Sequential(cba(cin, hidden, k, s, act=act), cba(hidden, cout, 1, act=None))
            self.res = s == 1 and cin == cout

        def forward(self, x):
            y = self.block(x)
            return x + y if self.res else y

    def efficientnet_v2(width=1.0, depth=1.0):
        """torchvision's EfficientNetV2-S configuration ``(fused, expansion, kernel, stride,
        channels, repeats)``, channels scaled by ``width`` and repeats by ``depth`` (ceil)."""
        import math

        cfg = [(True, 1, 3, 1, 24, 2), (True, 4, 3, 2, 48, 4), (True, 4, 3, 2, 64, 4),
               (False, 4, 3, 2, 128, 6), (False, 6, 3, 1, 160, 9), (False, 6, 3, 2, 256, 15)]
        se = lambda cin, hidden: max(1, cin // 4)  # noqa: E731
        c = _div(24 * width)
        layers = [cba(3, c, 3, 2, act=nn.SiLU)]
        for fused, e, k, s, cout, n in cfg:
            out = _div(cout * width)
            for i in range(math.ceil(n * depth)):
                st = s if i == 0 else 1
                layers.append(FusedMBConv(c, out, k, st, e) if fused else
                              MBConv(c, out, k, st, e, act=nn.SiLU, se=se, se_act=nn.SiLU))
                c = out
        layers.append(cba(c, 1280, 1, act=nn.SiLU))
        return Classifier(nn.Sequential(*layers), 1280)

    return {
        "mobilenet_v2": lambda: mobilenet_v2(1.0),
        "mobilenet_v2_x0_5": lambda: mobilenet_v2(0.5),
        "mnasnet1_0": lambda: mnasnet(1.0),
        "mnasnet0_5": lambda: mnasnet(0.5),
        "mobilenet_v3_large": lambda: mobilenet_v3(True),
        "mobilenet_v3_small": lambda: mobilenet_v3(False),
        "mobilenet_v4_conv_small": lambda: mobilenet_v4_conv_small(1.0),
        "mobilenet_v4_conv_small_x0_5": lambda: mobilenet_v4_conv_small(0.5),
        "efficientnet_b0": lambda: efficientnet(1.0),
        "efficientnet_lite_x0_5": lambda: efficientnet(0.5, se=False, act=nn.ReLU6),
        "resnet18": lambda: resnet((2, 2, 2, 2)),
        "resnet10_x0_5": lambda: resnet((1, 1, 1, 1), 0.5),
        "squeezenet1_1": lambda: SqueezeNet(1.0),
        "squeezenet1_1_x0_5": lambda: SqueezeNet(0.5),
        "shufflenet_v2_x1_0": lambda: shufflenet_v2((116, 232, 464, 1024)),
        "shufflenet_v2_x0_5": lambda: shufflenet_v2((48, 96, 192, 1024)),
        "regnet_y_400mf": lambda: regnet((48, 104, 208, 440), (1, 3, 6, 6), 8, True),
        "regnet_x_200mf": lambda: regnet((24, 56, 152, 368), (1, 1, 4, 7), 8, False),
        "vit_hybrid_tiny": lambda: ViTHybrid(96, 2, 3),
        "vit_hybrid_small": lambda: ViTHybrid(192, 3, 3),
        "resnext26_32x4d_x0_5": lambda: resnext((2, 2, 2, 2), 0.5),
        "resnext14_32x4d_x0_5": lambda: resnext((1, 1, 1, 1), 0.5),
        "densenet121_g16": lambda: densenet(16, (6, 12, 24, 16), 32),
        "densenet69_g12": lambda: densenet(12, (4, 8, 12, 8), 24),
        "convnext_atto": lambda: ConvNeXt((40, 80, 160, 320), (2, 2, 6, 2)),
        "convnext_femto_shallow": lambda: ConvNeXt((48, 96, 192, 384), (1, 1, 3, 1)),
        "efficientnet_v2_s_x0_5": lambda: efficientnet_v2(0.5, 0.5),
        "efficientnet_v2_s_x0_35": lambda: efficientnet_v2(0.35, 0.3),
    }


def build(name: str):
    """The torch module ``name`` (eval mode, weights from seed 0, randomized BN statistics)."""
    from .building import build_seeded

    return build_seeded(_modules(), name, "real", names())


def export_onnx(name: str, resolution: int, path: str | Path) -> Path:
    """Write ``name`` with input ``1x3xRxR`` as ONNX (legacy exporter, opset 17, BN folded by
    the exporter, shape subgraphs left as the exporter emits them); returns the path."""
    from .building import export_onnx_module

    return export_onnx_module(build(name), resolution, path)

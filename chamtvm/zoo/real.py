"""Real architecture families, written after torchvision's pure-Python definitions (or the
original authors' reference code where torchvision has none; random weights, no downloads),
for judging latency prediction on models nobody here designed.

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
SiLU MBConv with squeeze-excite later. GhostNet's ghost modules (a primary 1x1 conv to half the
channels, a cheap depthwise 3x3 making the other half, ``Concat`` and a ``Slice`` back to the
output width) in ghost bottlenecks with a depthwise stride-2 conv between the two modules, a
depthwise + 1x1 shortcut, and squeeze-excite gated by the reference's ``relu6(x + 3) / 6``
(``Add``, ``Clip``, ``Div``, not ``HardSigmoid``), and a 1x1 conv head with bias on the pooled
map. MobileViT's MV2 blocks (SiLU inverted residuals) and MobileViT blocks: local 3x3 + 1x1,
unfold into 2x2 patches by ml-cvnets' reshape/transpose chain (``Reshape`` and ``Transpose``,
shapes folded to constants by the exporter), pre-norm transformer layers (LayerNorm, multi-head attention, SiLU FFN of twice
the width) and a final LayerNorm, fold back, 1x1 projection, concat with the block's input,
3x3 fusion; as in the reference, a feature map whose side is not a multiple of the patch is
resized bilinearly up to one before unfolding and back after folding (so the 7x7 last stage
at 224 px carries two ``Resize``). GoogLeNet's four-branch inception modules (1x1; 1x1-3x3;
1x1-5x5; 3x3 stride-1 max-pool-1x1; concat) between ``ceil_mode`` max-pools: the third branch
is the paper's real 5x5, where torchvision's port has a 3x3. RepVGG in its deployed
(re-parameterised) form: nothing but 3x3 convs with bias + ReLU, stride 2 at each stage's
first conv. MixNet-S's mixed depthwise convolutions (channels split, the first group taking
the remainder, one kernel size a group among 3/5/7/9/11, concatenated: ``Split``, ``Conv``
per group, ``Concat``), its two-group 1x1 expansions and projections built the same way, and
squeeze-excite reduced from the block input with the block's activation (ReLU in the first
stages, swish later); the BN after a split-and-concatenated conv is one the exporter cannot
fold, so those stay ``BatchNormalization`` nodes, as in an export of timm's MixNet.
Conv+BN(+activation) comes from ``space.model.conv_bn``.

Sizes are kept mobile (at most about 1 GMAC at 224 px) so that every member runs quickly under
TVM's default schedules: ResNeXt is torchvision's ``32x4d`` bottleneck with every width halved
(cardinality 32 kept, so 2 channels a group in the first stage), DenseNet keeps 121's block
layout with growth 16 (and a 69-layer growth-12 variant), ConvNeXt uses timm's atto and a
shallow femto, EfficientNetV2 is torchvision's V2-S configuration scaled in width and depth
(``ceil`` of depth x repeats; the 1280-wide head kept). ConvNeXt's layer scale is 0.1 instead
of torchvision's 1e-6 initial value, so that random-weight blocks are not near-identities.
GhostNet is the paper's 1.0 and 0.5 width multipliers (channels rounded to 4 as the reference),
MobileViT the paper's XXS and XS, GoogLeNet has every width scaled by 0.5 and 0.25 (at least 4
channels; no auxiliary heads, no dropout), RepVGG is A0's depths (1, 2, 4, 14, 1) and widths
(a = 0.75, b = 2.5) scaled by 0.5 and 0.25, MixNet-S is the TF reference's block list at
depth multiplier 1 and 0.5 (channels rounded to 8, the 1536 head scaled too). Everything here
keeps the originals' operators but not their training-time branches (dropout, auxiliary
classifiers, RepVGG's 1x1 and identity branches, which deployment folds into the 3x3).

``FAMILIES`` maps a family to its members; ``build(name)`` gives the torch module (eval
mode, seeded weights, randomized BN statistics) and ``export_onnx(name, resolution, path)``
writes it as ONNX the way a user's exporter does (legacy exporter, opset 17).
"""

from __future__ import annotations

import math
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
    "ghostnet": ("ghostnet_1_0", "ghostnet_0_5"),
    "mobilevit": ("mobilevit_xxs", "mobilevit_xs"),
    "googlenet": ("googlenet_x0_5", "googlenet_x0_25"),
    "repvgg": ("repvgg_a0_x0_5", "repvgg_a0_x0_25"),
    "mixnet": ("mixnet_s", "mixnet_s_x0_5"),
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
        """Pre-norm transformer layer: attention and an ``mlp``-times-wider FFN (``act``)."""

        def __init__(self, dim, heads, mlp, act=nn.GELU):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.attn = Attention(dim, heads)
            self.mlp = nn.Sequential(nn.Linear(dim, mlp * dim), act(), nn.Linear(mlp * dim, dim))

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

    # ------------------------------------------------------------------ ghostnet
    class GhostGate(nn.Module):
        """GhostNet's ``hard_sigmoid``: ``relu6(x + 3) / 6`` (Add, Clip, Div in ONNX)."""

        def forward(self, x):
            return nn.functional.relu6(x + 3.0) / 6.0

    class GhostModule(nn.Module):
        """Primary 1x1 conv to ``ceil(cout / 2)`` channels, cheap depthwise 3x3 on its output,
        both concatenated and sliced to ``cout``; ReLU on both halves or on none."""

        def __init__(self, cin, cout, relu=True):
            super().__init__()
            self.cout, init, act = cout, math.ceil(cout / 2), nn.ReLU if relu else None
            self.primary = cba(cin, init, 1, act=act)
            self.cheap = cba(init, init, 3, groups=init, act=act)

        def forward(self, x):
            x1 = self.primary(x)
            return torch.cat([x1, self.cheap(x1)], 1)[:, :self.cout]

    class GhostBottleneck(nn.Module):
        """Ghost module (ReLU), depthwise ``k x k`` stride-2 (BN, no activation) when strided,
        optional squeeze-excite, ghost module (linear); identity shortcut, else depthwise
        ``k x k`` + 1x1 (both BN, linear)."""

        def __init__(self, cin, mid, cout, k, s, se_ratio):
            super().__init__()
            layers = [GhostModule(cin, mid)]
            if s > 1:
                layers.append(cba(mid, mid, k, s, groups=mid, act=None))
            if se_ratio:
                layers.append(SE(mid, _div(mid * se_ratio, 4), gate=GhostGate))
            layers.append(GhostModule(mid, cout, relu=False))
            self.ghost = nn.Sequential(*layers)
            self.shortcut = nn.Identity() if (s == 1 and cin == cout) else nn.Sequential(
                cba(cin, cin, k, s, groups=cin, act=None), cba(cin, cout, 1, act=None))

        def forward(self, x):
            return self.ghost(x) + self.shortcut(x)

    class GhostNet(nn.Module):
        """The reference's configuration ``(kernel, expansion, channels, SE ratio, stride)``,
        channels ``_div(c * width, 4)``; stem 3x3/2, a 1x1 to the last expansion width, global
        pooling, a 1x1 conv with bias to 1280 + ReLU, the linear classifier."""

        CFG = [(3, 16, 16, 0, 1), (3, 48, 24, 0, 2), (3, 72, 24, 0, 1), (5, 72, 40, 0.25, 2),
               (5, 120, 40, 0.25, 1), (3, 240, 80, 0, 2), (3, 200, 80, 0, 1), (3, 184, 80, 0, 1),
               (3, 184, 80, 0, 1), (3, 480, 112, 0.25, 1), (3, 672, 112, 0.25, 1), (5, 672, 160, 0.25, 2),
               (5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1), (5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1)]

        def __init__(self, width=1.0):
            super().__init__()
            c = _div(16 * width, 4)
            layers = [cba(3, c, 3, 2)]
            for k, e, out, se, s in self.CFG:
                o = _div(out * width, 4)
                layers.append(GhostBottleneck(c, _div(e * width, 4), o, k, s, se))
                c = o
            last = _div(self.CFG[-1][1] * width, 4)
            layers.append(cba(c, last, 1))
            self.features = nn.Sequential(*layers)
            self.head = nn.Sequential(nn.Conv2d(last, 1280, 1), nn.ReLU())
            self.classifier = nn.Linear(1280, 1000)

        def forward(self, x):
            x = self.head(nn.functional.adaptive_avg_pool2d(self.features(x), 1))
            return self.classifier(torch.flatten(x, 1))

    # ----------------------------------------------------------------- mobilevit
    class MobileViTBlock(nn.Module):
        """ml-cvnets' MobileViT block: 3x3 (BN, SiLU) + 1x1 (no BN) to ``dim``, unfold into
        ``patch x patch`` patches, ``depth`` pre-norm transformer layers + LayerNorm, fold,
        1x1 (BN, SiLU) back to ``c``, concat with the input, 3x3 (BN, SiLU) fusion."""

        def __init__(self, c, dim, depth, heads=4, patch=2):
            super().__init__()
            self.patch = patch
            self.local = nn.Sequential(cba(c, c, 3, act=nn.SiLU), nn.Conv2d(c, dim, 1, bias=False))
            self.transformer = nn.Sequential(*[Encoder(dim, heads, 2, act=nn.SiLU) for _ in range(depth)],
                                             nn.LayerNorm(dim))
            self.proj = cba(dim, c, 1, act=nn.SiLU)
            self.fusion = cba(2 * c, c, 3, act=nn.SiLU)

        def forward(self, x):
            y = self.local(x)
            p = self.patch
            b, d, h, w = y.shape
            nh, nw = math.ceil(int(h) / p), math.ceil(int(w) / p)
            resize = (nh * p, nw * p) != (int(h), int(w))
            if resize:  # the reference's resize to a multiple of the patch (e.g. 7x7 at 224 px)
                y = nn.functional.interpolate(y, size=(nh * p, nw * p), mode="bilinear", align_corners=False)
            # unfold: [B, C, H, W] -> [B*C*nh, p, nw, p] -> [B*C*nh, nw, p, p] -> [B, C, N, P] -> [B, P, N, C]
            y = y.reshape(b * d * nh, p, nw, p).transpose(1, 2).reshape(b, d, nh * nw, p * p).transpose(1, 3)
            y = self.transformer(y.reshape(b * p * p, nh * nw, -1))  # [B*P, N, C]
            # fold: [B*P, N, C] -> [B, P, N, C] -> [B, C, N, P] -> [B*C*nh, nw, p, p] -> [B, C, H, W]
            y = y.contiguous().view(b, p * p, nh * nw, -1).transpose(1, 3)
            y = y.reshape(b * d * nh, nw, p, p).transpose(1, 2).reshape(b, d, nh * p, nw * p)
            if resize:
                y = nn.functional.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
            return self.fusion(torch.cat((x, self.proj(y)), 1))

    def mobilevit(stem, c1, c2, stages, last, expand):
        """ml-cvnets' layout: 3x3/2 stem, one MV2, three MV2 (the first stride 2), then per
        ``(channels, transformer dim, depth)`` stage a stride-2 MV2 and a MobileViT block, a 1x1
        to ``last``; SiLU throughout."""
        mv2 = lambda cin, cout, s: MBConv(cin, cout, 3, s, expand, act=nn.SiLU)  # noqa: E731
        layers = [cba(3, stem, 3, 2, act=nn.SiLU), mv2(stem, c1, 1), mv2(c1, c2, 2), mv2(c2, c2, 1), mv2(c2, c2, 1)]
        c = c2
        for out, dim, depth in stages:
            layers += [mv2(c, out, 2), MobileViTBlock(out, dim, depth)]
            c = out
        layers.append(cba(c, last, 1, act=nn.SiLU))
        return Classifier(nn.Sequential(*layers), last)

    # ----------------------------------------------------------------- googlenet
    class Inception(nn.Module):
        """Four branches concatenated: 1x1; 1x1 -> 3x3; 1x1 -> 5x5 (the paper's; torchvision has
        a 3x3 here); 3x3 stride-1 max-pool (``ceil_mode``) -> 1x1."""

        def __init__(self, cin, c1, c3r, c3, c5r, c5, pool):
            super().__init__()
            self.b1 = cba(cin, c1, 1)
            self.b2 = nn.Sequential(cba(cin, c3r, 1), cba(c3r, c3, 3))
            self.b3 = nn.Sequential(cba(cin, c5r, 1), cba(c5r, c5, 5))
            self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), cba(cin, pool, 1))

        def forward(self, x):
            return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)

    def googlenet(width):
        """torchvision's layout without auxiliary heads, every width ``max(4, int(c * width))``;
        an int ``k`` marks a ``k x k`` stride-2 max-pool (``ceil_mode``)."""
        cfg = [3, (64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64), 3,
               (192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),
               (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128), 2,
               (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)]
        f = lambda v: max(4, int(v * width))  # noqa: E731
        layers = [cba(3, f(64), 7, 2), nn.MaxPool2d(3, 2, ceil_mode=True), cba(f(64), f(64), 1),
                  cba(f(64), f(192), 3)]
        c = f(192)
        for row in cfg:
            if isinstance(row, int):
                layers.append(nn.MaxPool2d(row, 2, ceil_mode=True))
                continue
            c1, c3r, c3, c5r, c5, pool = (f(v) for v in row)
            layers.append(Inception(c, c1, c3r, c3, c5r, c5, pool))
            c = c1 + c3 + c5 + pool
        return Classifier(nn.Sequential(*layers), c)

    # -------------------------------------------------------------------- repvgg
    def repvgg(width, depths=(1, 2, 4, 14, 1), a=0.75, b=2.5):
        """Deployed RepVGG: per stage ``depth`` 3x3 convs with bias + ReLU, the first stride 2;
        widths ``min(64, 64a), 64a, 128a, 256a, 512b`` scaled by ``width``."""
        widths = [int(v * width) for v in (min(64, int(64 * a)), int(64 * a), int(128 * a), int(256 * a),
                                           int(512 * b))]
        layers, c = [], 3
        for w, n in zip(widths, depths):
            for i in range(n):
                layers += [nn.Conv2d(c, w, 3, 2 if i == 0 else 1, 1), nn.ReLU()]
                c = w
        return Classifier(nn.Sequential(*layers), c)

    # -------------------------------------------------------------------- mixnet
    class MixConv(nn.Module):
        """MixNet's mixed convolution: the channels split into one group a kernel (the first
        group takes the remainder), one conv each (depthwise, or a full 1x1 for the grouped
        expansions and projections), concatenated; a single kernel is a plain conv."""

        def __init__(self, cin, cout, kernels, s=1, depthwise=False):
            super().__init__()
            n = len(kernels)
            split = lambda c: [c // n + (c - c // n * n if i == 0 else 0) for i in range(n)]  # noqa: E731
            self.splits = split(cin)
            self.convs = nn.ModuleList(
                nn.Conv2d(ci, co, k, s, k // 2, groups=ci if depthwise else 1, bias=False)
                for ci, co, k in zip(self.splits, split(cout), kernels))

        def forward(self, x):
            if len(self.convs) == 1:
                return self.convs[0](x)
            return torch.cat([conv(xi) for conv, xi in zip(self.convs, torch.split(x, self.splits, 1))], 1)

    class MixBlock(nn.Module):
        """MixNet block: ``a``-group 1x1 expansion to ``cin * expand`` (none at 1), mixed
        depthwise, squeeze-excite to ``int(cin * se)`` with the block's activation, ``p``-group
        1x1 linear projection (BN after each conv); residual at stride 1 with equal widths."""

        def __init__(self, cin, cout, kernels, s, expand, a, p, se, act):
            super().__init__()
            hidden = cin * expand
            layers = [MixConv(cin, hidden, [1] * a), nn.BatchNorm2d(hidden), act()] if expand != 1 else []
            layers += [MixConv(hidden, hidden, kernels, s, depthwise=True), nn.BatchNorm2d(hidden), act()]
            if se:
                layers.append(SE(hidden, max(1, int(cin * se)), act=act))
            layers += [MixConv(hidden, cout, [1] * p), nn.BatchNorm2d(cout)]
            self.block = nn.Sequential(*layers)
            self.res = s == 1 and cin == cout

        def forward(self, x):
            y = self.block(x)
            return x + y if self.res else y

    def mixnet_s(width=1.0):
        """The TF reference's MixNet-S blocks ``(repeats, kernels, expansion groups, projection
        groups, stride, expansion, channels, SE ratio, swish)``, channels ``_div(c * width)``;
        stem 3x3/2 to 16 and a 1x1 head to 1536 (both scaled, ReLU)."""
        cfg = [(1, (3,), 1, 1, 1, 1, 16, 0, False), (1, (3,), 2, 2, 2, 6, 24, 0, False),
               (1, (3,), 2, 2, 1, 3, 24, 0, False), (1, (3, 5, 7), 1, 1, 2, 6, 40, 0.5, True),
               (3, (3, 5), 2, 2, 1, 6, 40, 0.5, True), (1, (3, 5, 7), 1, 2, 2, 6, 80, 0.25, True),
               (2, (3, 5), 1, 2, 1, 6, 80, 0.25, True), (1, (3, 5, 7), 2, 2, 1, 6, 120, 0.5, True),
               (2, (3, 5, 7, 9), 2, 2, 1, 3, 120, 0.5, True), (1, (3, 5, 7, 9, 11), 1, 1, 2, 6, 200, 0.5, True),
               (2, (3, 5, 7, 9), 1, 2, 1, 6, 200, 0.5, True)]
        c = _div(16 * width)
        layers = [cba(3, c, 3, 2)]
        for n, kernels, a, p, s, e, out, se, swish in cfg:
            for i in range(n):
                layers.append(MixBlock(c, _div(out * width), kernels, s if i == 0 else 1, e, a, p, se,
                                       nn.SiLU if swish else nn.ReLU))
                c = _div(out * width)
        last = _div(1536 * width)
        layers.append(cba(c, last, 1))
        return Classifier(nn.Sequential(*layers), last)

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
        "ghostnet_1_0": lambda: GhostNet(1.0),
        "ghostnet_0_5": lambda: GhostNet(0.5),
        "mobilevit_xxs": lambda: mobilevit(16, 16, 24, ((48, 64, 2), (64, 80, 4), (80, 96, 3)), 320, 2),
        "mobilevit_xs": lambda: mobilevit(16, 32, 48, ((64, 96, 2), (80, 120, 4), (96, 144, 3)), 384, 4),
        "googlenet_x0_5": lambda: googlenet(0.5),
        "googlenet_x0_25": lambda: googlenet(0.25),
        "repvgg_a0_x0_5": lambda: repvgg(0.5),
        "repvgg_a0_x0_25": lambda: repvgg(0.25),
        "mixnet_s": lambda: mixnet_s(1.0),
        "mixnet_s_x0_5": lambda: mixnet_s(0.5),
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

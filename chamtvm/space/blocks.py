"""The building blocks of every network of a space: torch builders and closed-form costs.

One registry, ``BLOCKS``, holds the blocks a per-layer space may choose from (FBNet /
NAS-Bench-Macro style: each searchable layer picks one named block):

* ``skip``: identity; when the stride or the channels change, a 1x1 convolution (with the
  stride) + BatchNorm instead (NAS-Bench-Macro's ``Identity``);
* ``ir_k{K}_e{E}`` for K in 3, 5, 7 and E in 1, 3, 4, 6: MobileNetV2's inverted residual
  (1x1 expand to ``E * cin`` unless E is 1, KxK depthwise with the stride, 1x1 linear
  projection; residual add when the stride is 1 and the channels match).

The stage-wise spaces build the same ``inverted_residual`` (their stage fixes K and E per
stage instead of per layer). Activations: ``relu6`` (the stage-wise spaces) or ``relu``
(NAS-Bench-Macro), named by the space.

Costs (``Block.cost``): parameters (BatchNorm weight and bias counted, as torch counts
them) and multiply-accumulates of one forward pass at batch 1, from the input channels,
output channels, stride and input size (px); the tests check them against torch. Torch is
imported only when a module is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..core.registry import Registry

ACTIVATIONS = ("relu6", "relu")


def _down(r: int, stride: int) -> int:
    return -(-r // stride)  # 'same' padding: ceil(r / stride)


ACTIVATION_CLASSES = {"relu6": "ReLU6", "relu": "ReLU", "hardswish": "Hardswish", "silu": "SiLU", "gelu": "GELU",
                      "sigmoid": "Sigmoid", "hardsigmoid": "Hardsigmoid", "none": None}  # name -> torch.nn class


def torch_activation(name: str):
    """The ``torch.nn`` activation class named ``name`` (``ACTIVATION_CLASSES``), None for "none"."""
    if name not in ACTIVATION_CLASSES:
        raise ValueError(f"unknown activation {name!r}; valid: {list(ACTIVATION_CLASSES)}")
    from torch import nn

    cls = ACTIVATION_CLASSES[name]
    return getattr(nn, cls) if cls else None


def conv_bn(cin: int, cout: int, kernel: int, stride: int, groups: int = 1, act="relu6"):
    """Conv2d (no bias, 'same' padding) + BatchNorm2d + an activation, as an ``nn.Sequential``:
    the one conv+BN+activation builder of the project (space, coverage probes, calibration,
    model zoos, benchmarks).

    ``act``: an activation name (``ACTIVATION_CLASSES``), a ``torch.nn`` activation class
    (e.g. ``nn.Hardswish``), or None for none (a linear projection)."""
    from torch import nn

    layers = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    cls = torch_activation(act) if isinstance(act, str) else act
    if cls is not None:
        layers.append(cls())
    return nn.Sequential(*layers)


def inverted_residual(cin: int, cout: int, stride: int, expansion: int, kernel: int, act: str = "relu6"):
    """MobileNetV2 block: 1x1 expand (skipped when expansion is 1), kxk depthwise with
    ``stride``, 1x1 linear projection; residual when stride is 1 and channels match."""
    from torch import nn

    class InvertedResidual(nn.Module):
        def __init__(self):
            super().__init__()
            hidden = cin * expansion
            layers = []
            if expansion != 1:
                layers.append(conv_bn(cin, hidden, 1, 1, act=act))
            layers.append(conv_bn(hidden, hidden, kernel, stride, groups=hidden, act=act))
            layers.append(conv_bn(hidden, cout, 1, 1, act=None))
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            y = self.body(x)
            return x + y if self.residual else y

    return InvertedResidual()


def classifier_head(cin: int, head_channels: int, num_classes: int, act: str = "relu6"):
    """1x1 conv + BN + ``act`` to ``head_channels``, global average pool, linear classifier."""
    from torch import nn

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv_bn(cin, head_channels, 1, 1, act=act)
            self.classifier = nn.Linear(head_channels, num_classes)

        def forward(self, x):
            return self.classifier(self.conv(x).mean(dim=(2, 3)))

    return Head()


def skip_block(cin: int, cout: int, stride: int, act: str = "relu6"):
    """Identity, or a 1x1 conv (with ``stride``) + BN when the shape changes (no activation)."""
    from torch import nn

    if stride == 1 and cin == cout:
        return nn.Identity()
    return conv_bn(cin, cout, 1, stride, act=None)


# ------------------------------------------------------------------ closed-form costs
def conv_cost(cin: int, cout: int, kernel: int, stride: int, h: int, groups: int = 1) -> tuple[int, int, int]:
    """(parameters incl. BN, MACs, output size px) of conv_bn at input size ``h``."""
    h_out = _down(h, stride)
    w = cout * (cin // groups) * kernel * kernel
    return w + 2 * cout, h_out * h_out * w, h_out


def ir_cost(cin: int, cout: int, stride: int, expansion: int, kernel: int, h: int) -> tuple[int, int]:
    """(parameters, MACs) of ``inverted_residual`` at input size ``h`` px."""
    hidden = cin * expansion
    p = m = 0
    if expansion != 1:
        dp, dm, _ = conv_cost(cin, hidden, 1, 1, h)
        p, m = p + dp, m + dm
    dp, dm, h2 = conv_cost(hidden, hidden, kernel, stride, h, groups=hidden)
    p, m = p + dp, m + dm
    dp, dm, _ = conv_cost(hidden, cout, 1, 1, h2)
    return p + dp, m + dm


def head_cost(cin: int, head: int, num_classes: int, h: int) -> tuple[int, int]:
    """(parameters, MACs) of ``classifier_head`` at input size ``h`` px."""
    p, m, _ = conv_cost(cin, head, 1, 1, h)
    return p + head * num_classes + num_classes, m + head * num_classes


@dataclass(frozen=True)
class Block:
    """A named block a layer may pick. ``build(cin, cout, stride, act)`` -> ``nn.Module``;
    ``cost(cin, cout, stride, h)`` -> (parameters, MACs) at input size ``h`` px;
    ``expansion``/``kernel`` describe it for features (0 for ``skip``)."""

    name: str
    build: Callable
    cost: Callable
    expansion: int = 0
    kernel: int = 0

    def is_noop(self, cin: int, cout: int, stride: int) -> bool:
        """True when the block computes nothing for this shape (a plain identity)."""
        return self.expansion == 0 and stride == 1 and cin == cout


BLOCKS: Registry[Block] = Registry("block")


def _skip_cost(cin, cout, stride, h):
    if stride == 1 and cin == cout:
        return 0, 0
    p, m, _ = conv_cost(cin, cout, 1, stride, h)
    return p, m


BLOCKS.register("skip", Block("skip", skip_block, _skip_cost))


def _register_ir(k: int, e: int) -> None:
    def build(cin, cout, stride, act="relu6"):
        return inverted_residual(cin, cout, stride, e, k, act)

    def cost(cin, cout, stride, h):
        return ir_cost(cin, cout, stride, e, k, h)

    name = f"ir_k{k}_e{e}"
    BLOCKS.register(name, Block(name, build, cost, expansion=e, kernel=k))


for _k in (3, 5, 7):
    for _e in (1, 3, 4, 6):
        _register_ir(_k, _e)

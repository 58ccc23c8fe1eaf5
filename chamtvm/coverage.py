"""Every fused kernel a space can produce, found by lowering small *probe* modules.

A MobileNetV2-style network's kernels never cross block boundaries (a block's first
kernel is a convolution, which fusion does not merge into its producer), so the kernels of
any network of the space are the kernels of its stem, its blocks and its head, each at
its input shape. One probe module per (stage, resolution) holds every block the space
allows there, side by side, so the whole space is covered by a few dozen lowerings
instead of one per architecture. ``tests/test_coverage.py`` checks that random networks'
kernels are all covered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from .lowering import Kernel
from .space import SearchSpace


def _down(r: int, stride: int) -> int:
    return -(-r // stride)  # 'same' padding: ceil(r / stride)


@dataclass(frozen=True)
class BlockConfig:
    """One block instance: kind, input channels/resolution and its hyper-parameters."""

    kind: str  # "stem" | "block" | "head"
    cin: int
    cout: int
    resolution: int  # input height = width
    stride: int = 1
    expansion: int = 1
    kernel: int = 3
    num_classes: int = 0


def block_configs(space: SearchSpace) -> Iterator[BlockConfig]:
    """Every distinct block instance (with its input shape) of ``space``."""
    seen = set()

    def emit(c):
        if c not in seen:
            seen.add(c)
            return True
        return False

    for res in space.resolution:
        for stem in space.stem_channels:
            c = BlockConfig("stem", space.in_channels, stem, res, stride=2)
            if emit(c):
                yield c
        r = _down(res, 2)
        prev_channels = space.stem_channels
        for st in space.stages:
            r_out = _down(r, st.stride)
            for cin in prev_channels:
                for cout in st.channels:
                    for e in st.expansion:
                        for k in st.kernel:
                            c = BlockConfig("block", cin, cout, r, st.stride, e, k)
                            if emit(c):
                                yield c
            if max(st.blocks) > 1:
                for cout in st.channels:
                    for e in st.expansion:
                        for k in st.kernel:
                            c = BlockConfig("block", cout, cout, r_out, 1, e, k)
                            if emit(c):
                                yield c
            r, prev_channels = r_out, st.channels
        for cin in prev_channels:
            for head in space.head_channels:
                c = BlockConfig("head", cin, head, r, num_classes=space.num_classes)
                if emit(c):
                    yield c


def _probe_groups(space: SearchSpace) -> dict[tuple, list[BlockConfig]]:
    """Configs grouped so that one probe module lowers each group (by kind and resolution)."""
    groups: dict[tuple, list[BlockConfig]] = {}
    for c in block_configs(space):
        groups.setdefault((c.kind, c.resolution), []).append(c)
    return groups


def _probe_module(configs: list[BlockConfig]):
    """A torch module taking one input per distinct input shape and returning every block's
    output; plus the list of input shapes (NCHW, batch 1)."""
    import torch
    from torch import nn

    from .model import classifier_head, conv_bn, inverted_residual, randomize_batchnorm

    shapes = sorted({(1, c.cin, c.resolution, c.resolution) for c in configs})
    index = {s: i for i, s in enumerate(shapes)}

    def make(c: BlockConfig):
        if c.kind == "stem":
            return conv_bn(c.cin, c.cout, 3, 2)
        if c.kind == "head":
            return classifier_head(c.cin, c.cout, c.num_classes)
        return inverted_residual(c.cin, c.cout, c.stride, c.expansion, c.kernel)

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([make(c) for c in configs])
            self.where = [index[(1, c.cin, c.resolution, c.resolution)] for c in configs]

        def forward(self, *xs):
            return tuple(b(xs[i]) for b, i in zip(self.blocks, self.where))

    torch.manual_seed(0)
    probe = Probe()
    randomize_batchnorm(probe)
    return probe.eval(), shapes


def space_kernels(space: SearchSpace, progress=None) -> list[Kernel]:
    """Every distinct fused kernel of ``space`` (counts are 1: they describe no network).

    ``progress(n)`` is called after each probe with the number of probe groups done.
    """
    from .lowering import extract_kernels, from_torch, fuse

    kernels: dict[str, Kernel] = {}
    for key, configs in _probe_groups(space).items():
        module, shapes = _probe_module(configs)
        for k in extract_kernels(fuse(from_torch(module, shapes))):
            if k.struct_hash not in kernels:
                k.count = 1
                kernels[k.struct_hash] = k
        if progress:
            progress(1)
    return sorted(kernels.values(), key=lambda k: (k.name, k.struct_hash))


def probe_group_count(space: SearchSpace) -> int:
    return len(_probe_groups(space))

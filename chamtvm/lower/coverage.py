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

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

from .kernels import Kernel
from ..space.blocks import BLOCKS
from ..space.layers import LayerSpace
from ..space.schema import Arch, SearchSpace


def _down(r: int, stride: int) -> int:
    return -(-r // stride)  # 'same' padding: ceil(r / stride)


@dataclass(frozen=True)
class BlockConfig:
    """One block instance: kind, input channels/resolution and its hyper-parameters."""

    kind: str  # "stem" | "block" | "head" | "layer" (a per-layer space's block ``block``)
    cin: int
    cout: int
    resolution: int  # input height = width
    stride: int = 1
    expansion: int = 1
    kernel: int = 3
    num_classes: int = 0
    block: str = ""       # kind "layer": the name in space.blocks.BLOCKS
    act: str = "relu6"    # activation of the space

    def is_noop(self) -> bool:
        """A plain identity (a ``skip`` layer keeping the shape): it compiles to no kernel."""
        return self.kind == "layer" and BLOCKS.get(self.block).is_noop(self.cin, self.cout, self.stride)


def _layer_configs(space: LayerSpace, res: int) -> list[list[BlockConfig]]:
    """Per block slot of a per-layer space at input ``res``: the configs of every choice
    (stem and head: one each), in network order."""
    act = space.activation
    slots = [[BlockConfig("stem", space.in_channels, space.stem_channels, res, space.stem_stride,
                          kernel=space.stem_kernel, act=act)]]
    for layer, (cin, cout, stride, h) in zip(space.layers, space.layer_io(res)):
        slots.append([BlockConfig("layer", cin, cout, h, stride, block=name, act=act) for name in layer.choices])
    cin, h = space.head_input(res)
    slots.append([BlockConfig("head", cin, space.head_channels, h, num_classes=space.num_classes, act=act)])
    return slots


def block_configs(space: SearchSpace) -> Iterator[BlockConfig]:
    """Every distinct block instance (with its input shape) of ``space``."""
    seen = set()

    def emit(c):
        if c not in seen:
            seen.add(c)
            return True
        return False

    if isinstance(space, LayerSpace):
        for res in space.resolution:
            for slot in _layer_configs(space, res):
                for c in slot:
                    if emit(c):
                        yield c
        return
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
        if c.is_noop():
            continue
        groups.setdefault((c.kind, c.resolution), []).append(c)
    return groups


def _probe_module(configs: list[BlockConfig]):
    """A torch module taking one input per distinct input shape and returning every block's
    output; plus the list of input shapes (NCHW, batch 1)."""
    import torch
    from torch import nn

    from ..space.blocks import BLOCKS
    from ..space.model import classifier_head, conv_bn, inverted_residual, randomize_batchnorm

    shapes = sorted({(1, c.cin, c.resolution, c.resolution) for c in configs})
    index = {s: i for i, s in enumerate(shapes)}

    def make(c: BlockConfig):
        if c.kind == "stem":
            return conv_bn(c.cin, c.cout, c.kernel, c.stride, act=c.act)
        if c.kind == "head":
            return classifier_head(c.cin, c.cout, c.num_classes, act=c.act)
        if c.kind == "layer":
            return BLOCKS.get(c.block).build(c.cin, c.cout, c.stride, c.act)
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


def arch_block_configs(space: SearchSpace, arch: Arch) -> list[BlockConfig]:
    """The block instances of one network, in order (the same walk as ``build_model``)."""
    if isinstance(space, LayerSpace):
        slots = _layer_configs(space, arch.resolution)
        picks = [0] + [layer.choices.index(b) for layer, b in zip(space.layers, arch.layers)] + [0]
        return [slot[i] for slot, i in zip(slots, picks)]
    configs = [BlockConfig("stem", space.in_channels, arch.stem_channels, arch.resolution, stride=2)]
    r, cin = _down(arch.resolution, 2), arch.stem_channels
    for st_space, st in zip(space.stages, arch.stages):
        for b in range(st.blocks):
            stride = st_space.stride if b == 0 else 1
            configs.append(BlockConfig("block", cin, st.channels, r, stride, st.expansion, st.kernel))
            r, cin = _down(r, stride), st.channels
    configs.append(BlockConfig("head", cin, arch.head_channels, r, num_classes=space.num_classes))
    return configs


def kernels_per_output(fused_mod) -> list[Counter]:
    """For each output of ``main`` (a tuple's fields in order), the kernels (PrimFunc
    names, with multiplicity) that compute it, walking bindings back to the inputs."""
    from tvm import relax

    main = fused_mod["main"]
    bound = {}
    for block in main.body.blocks:
        for b in block.bindings:
            bound[b.var] = b.value

    def resolve(expr):
        while isinstance(expr, relax.Var) and expr in bound and isinstance(bound[expr], relax.Var):
            expr = bound[expr]
        return bound.get(expr, expr) if isinstance(expr, relax.Var) else expr

    def walk(expr, counts: Counter, seen: set):
        if isinstance(expr, relax.Var):
            if expr in seen or expr not in bound:
                return
            seen.add(expr)
            expr = bound[expr]
        if isinstance(expr, relax.Call):
            if getattr(expr.op, "name", None) == "relax.call_tir":
                counts[expr.args[0].name_hint] += 1
            for a in expr.args:
                walk(a, counts, seen)
        elif isinstance(expr, relax.Tuple):
            for f in expr.fields:
                walk(f, counts, seen)
        elif isinstance(expr, relax.TupleGetItem):
            walk(expr.tuple_value, counts, seen)

    out = resolve(main.body.body)
    fields = list(out.fields) if isinstance(out, relax.Tuple) else [main.body.body]
    result = []
    for f in fields:
        c: Counter = Counter()
        walk(f, c, set())
        result.append(c)
    return result


@dataclass
class SpaceKernels:
    """Every kernel of a space and which kernels each block instance compiles to, so a
    network's kernels are known from its architecture alone, without lowering it."""

    space: SearchSpace
    kernels: dict[str, Kernel]
    by_config: dict[BlockConfig, tuple[str, ...]] = field(default_factory=dict)

    def arch_kernel_counts(self, arch: Arch) -> Counter:
        """Structural hash -> calls, for the network ``arch`` (raises KeyError if a block
        instance is outside the space)."""
        counts: Counter = Counter()
        for c in arch_block_configs(self.space, arch):
            counts.update(self.by_config[c])
        return counts


def space_kernel_map(space: SearchSpace, progress=None, lowering: dict | None = None) -> SpaceKernels:
    """Lower the probe modules of ``space`` once: its kernels and the block -> kernels map.
    ``lowering``: the target's (``TargetSpec.lowering``: layout, fast math), as its networks are lowered.

    ``progress(n)`` is called after each probe with the number of probe groups done.
    """
    from .kernels import extract_kernels, from_torch, fuse, kernel_hash

    result = SpaceKernels(space, {})
    for c in block_configs(space):
        if c.is_noop():
            result.by_config[c] = ()
    for key, configs in _probe_groups(space).items():
        module, shapes = _probe_module(configs)
        fused = fuse(from_torch(module, shapes), **(lowering or {}))
        name_to_hash = {gv.name_hint: kernel_hash(f) for gv, f in fused.functions.items()
                        if gv.name_hint != "main" and hasattr(f, "params") and not hasattr(f, "ret_ty")}
        for k in extract_kernels(fused):
            if k.struct_hash not in result.kernels:
                k.count = 1
                result.kernels[k.struct_hash] = k
        outputs = kernels_per_output(fused)
        if len(outputs) != len(configs):
            raise RuntimeError(f"probe {key}: {len(outputs)} outputs for {len(configs)} blocks")
        for c, counts in zip(configs, outputs):
            result.by_config[c] = tuple(sorted(name_to_hash[n] for n, m in counts.items() for _ in range(m)))
        if progress:
            progress(1)
    return result


def space_kernels(space: SearchSpace, progress=None, lowering: dict | None = None) -> list[Kernel]:
    """Every distinct fused kernel of ``space`` (counts are 1: they describe no network)."""
    kernels = space_kernel_map(space, progress, lowering).kernels
    return sorted(kernels.values(), key=lambda k: (k.name, k.struct_hash))


def probe_group_count(space: SearchSpace) -> int:
    return len(_probe_groups(space))

"""Which channels of a torch network must be kept or removed together: its *channel groups*.

A channel group is one set of channel indices shared by every tensor that must keep the same
width: the output channels of a convolution (or linear layer) that creates them, the matching
weights of each depthwise convolution and BatchNorm they pass through, the input channels of
each layer that consumes them, and everything joined to them by an element-wise operation (a
residual ``add`` joins the block's input and output channels into one group, so a stage of
residual blocks is one group). Removing channel ``c`` of a group removes index ``c`` on every
one of its parameter axes, which keeps the network consistent.

The groups come from a ``torch.fx`` trace with shapes. Tensors are NCHW (or NC): the channel
axis is 1. Operations this module does not know (reshape, concatenation, grouped non-depthwise
convolutions, ...) *fix* the groups they touch: those keep their width, which is always safe.
The network's input and output channels are fixed too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from ..graph import UnsupportedModelError

if TYPE_CHECKING:
    import torch


class PruneGraphError(UnsupportedModelError):
    """The model cannot be traced, or has nothing to prune (bad input, exit 2); the message
    says why."""


@dataclass(frozen=True)
class ParamAxis:
    """Axis ``axis`` of parameter or buffer ``param`` of submodule ``module`` (dotted name)."""

    module: str
    param: str
    axis: int


@dataclass
class ChannelGroup:
    """Channels kept or removed together (see the module docstring).

    ``name``: the first layer (in execution order) that produces the channels; ``width``:
    channels in the unpruned network; ``producers``: output-channel axes of the layers that
    create them; ``consumers``: input-channel axes of the layers that read them;
    ``passthrough``: per-channel parameters of depthwise convolutions and BatchNorms on the
    way; ``bn_after``: each producing or depthwise convolution followed directly by a
    BatchNorm, and that BatchNorm (module names)."""

    name: str
    width: int
    producers: list[ParamAxis] = field(default_factory=list)
    consumers: list[ParamAxis] = field(default_factory=list)
    passthrough: list[ParamAxis] = field(default_factory=list)
    bn_after: dict[str, str] = field(default_factory=dict)

    @property
    def axes(self) -> list[ParamAxis]:
        """Every parameter axis indexed by this group's channels."""
        return [*self.producers, *self.consumers, *self.passthrough]


@dataclass
class ChannelGraph:
    """The prunable channel groups of a network (execution order), and how many channels
    stayed fixed (``fixed_channels``: in groups that must keep their width)."""

    groups: list[ChannelGroup]
    fixed_channels: int
    input_shape: tuple[int, ...]

    def group(self, name: str) -> ChannelGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(f"no channel group {name!r}; groups: {[g.name for g in self.groups]}")

    @property
    def widths(self) -> dict[str, int]:
        """Unpruned width of every group, by name."""
        return {g.name: g.width for g in self.groups}


# element-wise operations that keep the channel axis (one tensor in, same channels out)
_PASS_MODULES = ("ReLU", "ReLU6", "Hardswish", "Hardsigmoid", "SiLU", "Sigmoid", "GELU", "Tanh",
                 "LeakyReLU", "Dropout", "Identity", "Hardtanh", "AdaptiveAvgPool2d", "AvgPool2d",
                 "MaxPool2d", "AdaptiveMaxPool2d", "Mish", "ELU")
_PASS_FUNCS = {"relu", "relu6", "hardswish", "hardsigmoid", "silu", "sigmoid", "gelu", "tanh",
               "leaky_relu", "dropout", "hardtanh", "adaptive_avg_pool2d", "avg_pool2d", "max_pool2d",
               "mean", "amax", "sum", "contiguous", "clone", "clamp", "clip", "mish", "elu"}
_JOIN_FUNCS = {"add", "mul", "sub", "truediv", "div", "iadd", "imul", "add_", "mul_", "maximum", "minimum"}


class _UnionFind:
    def __init__(self):
        self.parent: list[int] = []
        self.fixed: list[bool] = []

    def new(self, fixed: bool = False) -> int:
        self.parent.append(len(self.parent))
        self.fixed.append(fixed)
        return len(self.parent) - 1

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)
            self.fixed[min(ra, rb)] = self.fixed[ra] or self.fixed[rb]
        return min(ra, rb)

    def fix(self, i: int) -> None:
        self.fixed[self.find(i)] = True


def _op_name(node) -> str:
    t = node.target
    if node.op == "call_method":
        return str(t)
    name = getattr(t, "__name__", str(t))
    return name.rstrip("_") if name.endswith("_") and name not in ("add_", "mul_") else name


def _shape(node):
    meta = node.meta.get("tensor_meta")
    shape = getattr(meta, "shape", None)
    return tuple(int(d) for d in shape) if shape is not None else None


def trace_channel_groups(model: "torch.nn.Module", input_shape: Sequence[int]) -> ChannelGraph:
    """The channel groups of ``model`` (eval mode) for an input of ``input_shape`` (NCHW).

    A model ``torch.fx`` cannot trace, or one without a single prunable group, is a
    ``PruneGraphError`` saying so."""
    import torch
    from torch import nn
    from torch.fx import symbolic_trace
    from torch.fx.passes.shape_prop import ShapeProp

    try:
        gm = symbolic_trace(model)
    except Exception as e:  # fx raises many types on dynamic control flow
        raise PruneGraphError(f"torch.fx cannot trace the model ({type(e).__name__}: {e}); "
                              f"pruning needs a traceable network") from None
    with torch.no_grad():
        ShapeProp(gm).propagate(torch.zeros(*input_shape))
    modules = dict(model.named_modules())
    uf = _UnionFind()
    space: dict[str, int] = {}  # fx node name -> channel space id (tensors of rank >= 2)
    producers: dict[int, list[ParamAxis]] = {}
    consumers: dict[int, list[ParamAxis]] = {}
    passthrough: dict[int, list[ParamAxis]] = {}
    bn_after: dict[int, dict[str, str]] = {}
    order: dict[int, int] = {}  # space id -> first producing position
    widths: dict[int, int] = {}

    def new_space(node, fixed=False) -> int | None:
        shape = _shape(node)
        if shape is None or len(shape) < 2:
            return None
        s = uf.new(fixed)
        widths[s] = shape[1]
        space[node.name] = s
        return s

    def tensor_args(node):
        return [a for a in node.all_input_nodes if a.name in space]

    def fix_all(node):
        for a in node.all_input_nodes:
            if a.name in space:
                uf.fix(space[a.name])
        new_space(node, fixed=True)

    position = 0
    for node in gm.graph.nodes:
        position += 1
        if node.op == "placeholder":
            new_space(node, fixed=True)
            continue
        if node.op == "output":
            for a in node.all_input_nodes:
                if a.name in space:
                    uf.fix(space[a.name])
            continue
        if node.op == "get_attr":
            new_space(node, fixed=True)
            continue
        shape = _shape(node)
        ins = tensor_args(node)
        if node.op == "call_module":
            mod = modules[node.target]
            kind = type(mod).__name__
            if isinstance(mod, nn.Conv2d) and len(ins) == 1:
                src = space[ins[0].name]
                if mod.groups == 1:
                    consumers.setdefault(src, []).append(ParamAxis(node.target, "weight", 1))
                    s = new_space(node)
                    order.setdefault(s, position)
                    producers.setdefault(s, []).append(ParamAxis(node.target, "weight", 0))
                    if mod.bias is not None:
                        producers[s].append(ParamAxis(node.target, "bias", 0))
                    _note_bn(node, modules, bn_after.setdefault(s, {}))
                elif mod.groups == mod.in_channels == mod.out_channels:  # depthwise: channels pass
                    space[node.name] = src
                    passthrough.setdefault(src, []).append(ParamAxis(node.target, "weight", 0))
                    if mod.bias is not None:
                        passthrough[src].append(ParamAxis(node.target, "bias", 0))
                    _note_bn(node, modules, bn_after.setdefault(src, {}))
                else:
                    fix_all(node)
                continue
            if isinstance(mod, nn.BatchNorm2d) and len(ins) == 1:
                src = space[ins[0].name]
                space[node.name] = src
                for p in ("weight", "bias", "running_mean", "running_var"):
                    if getattr(mod, p, None) is not None:
                        passthrough.setdefault(src, []).append(ParamAxis(node.target, p, 0))
                continue
            if isinstance(mod, nn.Linear) and len(ins) == 1 and shape is not None and len(shape) == 2:
                src = space[ins[0].name]
                consumers.setdefault(src, []).append(ParamAxis(node.target, "weight", 1))
                s = new_space(node)
                order.setdefault(s, position)
                producers.setdefault(s, []).append(ParamAxis(node.target, "weight", 0))
                if mod.bias is not None:
                    producers[s].append(ParamAxis(node.target, "bias", 0))
                continue
            if kind in _PASS_MODULES and len(ins) == 1 and _keeps_channels(ins[0], shape):
                space[node.name] = space[ins[0].name]
                continue
            if kind == "Flatten" and len(ins) == 1 and _flat_keeps_channels(ins[0], shape):
                space[node.name] = space[ins[0].name]
                continue
            fix_all(node)
            continue
        # call_function / call_method
        name = _op_name(node)
        if name in _JOIN_FUNCS and ins and shape is not None and len(shape) >= 2:
            joined = [space[a.name] for a in ins if _shape(a) and len(_shape(a)) >= 2 and _shape(a)[1] == shape[1]]
            broadcast = [a for a in ins if a.name in space and _shape(a)[1] != shape[1]]
            if not joined or any(_shape(a)[1] != 1 for a in broadcast):
                fix_all(node)
                continue
            s = joined[0]
            for o in joined[1:]:
                s = uf.union(s, o)
            space[node.name] = s
            continue
        if name in _PASS_FUNCS and len(ins) == 1 and _keeps_channels(ins[0], shape):
            space[node.name] = space[ins[0].name]
            continue
        if name == "flatten" and len(ins) == 1 and _flat_keeps_channels(ins[0], shape):
            space[node.name] = space[ins[0].name]
            continue
        if name in ("size", "dim", "getattr"):
            continue  # shape queries: no tensor flows
        fix_all(node)

    members: dict[int, list[int]] = {}
    for s in widths:
        members.setdefault(uf.find(s), []).append(s)
    groups, fixed_channels = [], 0
    for root, spaces in members.items():
        if uf.fixed[root] or not any(s in producers for s in spaces):
            fixed_channels += widths[root]
            continue
        spaces.sort(key=lambda s: order.get(s, 10**9))
        g = ChannelGroup(name=producers[spaces[0]][0].module, width=widths[root])
        for s in spaces:
            g.producers += producers.get(s, [])
            g.consumers += consumers.get(s, [])
            g.passthrough += passthrough.get(s, [])
            g.bn_after.update(bn_after.get(s, {}))
        groups.append((order[spaces[0]], g))
    if not groups:
        raise PruneGraphError("the model has no prunable channel group (every channel is fixed by "
                              "the input, the output or an operation pruning does not handle)")
    return ChannelGraph([g for _, g in sorted(groups, key=lambda t: t[0])], fixed_channels, tuple(input_shape))


def _note_bn(node, modules, into: dict[str, str]) -> None:
    """Record the BatchNorm that is the only user of convolution ``node``, if any."""
    from torch import nn

    users = list(node.users)
    if len(users) == 1 and users[0].op == "call_module" and isinstance(modules[users[0].target], nn.BatchNorm2d):
        into[node.target] = users[0].target


def _keeps_channels(src, shape) -> bool:
    s = _shape(src)
    return s is not None and shape is not None and len(s) >= 2 and len(shape) >= 2 and s[1] == shape[1]


def _flat_keeps_channels(src, shape) -> bool:
    """``flatten`` of (N, C, 1, 1) to (N, C) keeps the channel axis; of (N, C, H, W) it mixes."""
    s = _shape(src)
    return s is not None and shape is not None and len(shape) == 2 and s[1] == shape[1] and \
        all(d == 1 for d in s[2:])

